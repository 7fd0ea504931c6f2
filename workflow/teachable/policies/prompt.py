"""One place that renders a state as prompt text: the student's chat messages (rollouts, SFT
data, trace export) and the state lines of the teacher's prompt (``state_lines``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .base import Context



def state_lines(instruction: str, observation: str, history: Sequence[str], valid_actions: Sequence[str],
                *, json_actions: bool = False) -> list[str]:  # fmt: skip
    """The mission, the observation, the recent actions and the valid actions (a JSON list for a
    teacher that must copy one verbatim)."""
    hist = ", ".join(history) if history else "none"
    actions = json.dumps(list(valid_actions)) if json_actions else ", ".join(valid_actions)
    return [f"Mission: {instruction}", "Observation:", observation, f"Recent actions: {hist}", f"Valid actions: {actions}"]


def user_message(ctx: Context) -> str:
    lines = state_lines(ctx.instruction, ctx.observation, ctx.history, ctx.valid_actions)
    if ctx.patch:
        lines.append(f"Advice: {ctx.patch}")
    lines.append("Action:")
    return "\n".join(lines)


def build_messages(ctx: Context, action: str | None = None, *, system: str) -> list[dict[str, str]]:
    """Chat messages for a context: the family's system prompt (``TextEnv.SYSTEM_PROMPT``,
    ``envs.registry.system_prompt(env_id)``), then the state; with ``action`` the assistant's
    answer is appended."""
    msgs = [
        {"role": "system", "content": system},
        {"role": "user", "content": user_message(ctx)},
    ]
    if action is not None:
        msgs.append({"role": "assistant", "content": action})
    return msgs
