"""A MiniGrid/BabyAI level as a ``TextEnv``: reset, step, observation text, the one success
definition, exact state keys; the expert comes from ``expert.BotExpert`` and the oracle's
diagnosis from ``diagnosis``.

The protocol (``env.protocol``, ``text.PROTOCOLS``) decides two things: the observation text
(``text``: the study's or BALROG's) and what an invalid output does. ``study``: MiniGrid's no-op
``done``, which counts a step and changes nothing else. ``balrog``: ``go forward``, BALROG's
default action for an answer that is not an action. Either way the step is recorded as
``INVALID_ACTION`` (``info["invalid_action"]``), so a prefix replays exactly under its protocol."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid/BabyAI ids with gymnasium)
from minigrid.envs.babyai.core import verifier as _verifier
from minigrid.utils.baby_ai_bot import BabyAIBot

from ..base import INVALID_ACTION, Observation, ParseMode, StepResult, TextEnv
from .actions import _ACTION_TO_IDX, _DONE_IDX, ACTIONS, mentioned_actions, parse_action_text
from .diagnosis import diagnosis
from .expert import BotExpert
from .levels import MIXED_LOCAL_ID
from .missions import mission_archetype
from .text import PROTOCOLS, textualize

class _NullWriter:
    """A stdout sink for BabyAI's 'Sampling rejected: ...' prints during level generation."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


_NULL = _NullWriter()


class _quiet:
    """``contextlib.redirect_stdout`` to a sink, minus the per-call object churn."""

    def __enter__(self) -> None:
        import sys

        self._saved = sys.stdout
        sys.stdout = _NULL

    def __exit__(self, *exc: object) -> None:
        import sys

        sys.stdout = self._saved



class BabyAITextEnv(BotExpert, TextEnv):
    """A MiniGrid/BabyAI level (``gymnasium.make(env_id, max_steps=...)``) as a text env."""

    family = "babyai"
    ACTIONS = ACTIONS
    SYSTEM_PROMPT = (
        "You are an agent acting in a text game. Read the mission and the observation, "
        "then answer with exactly one action from the list of valid actions."
    )

    def __init__(
        self, env_id: str, max_steps: int | None = None, *, omniscient_expert: bool = True,
        protocol: str = "study",
    ):
        if protocol not in PROTOCOLS:
            raise ValueError(f"env.protocol={protocol!r} is not a protocol of {env_id}; expected one of {PROTOCOLS}")
        self.env_id = env_id
        self.omniscient_expert = omniscient_expert
        self.protocol = protocol
        # the MiniGrid action an invalid output plays (module docstring)
        self._invalid_idx = _ACTION_TO_IDX["go forward"] if protocol == "balrog" else _DONE_IDX
        kwargs: dict[str, Any] = {}
        if max_steps is not None:
            if int(max_steps) <= 0:
                raise ValueError(f"max_steps must be positive, got {max_steps}")
            kwargs["max_steps"] = int(max_steps)
        with _quiet():
            self._gym_env = gym.make(env_id, **kwargs)
        self._env = self._gym_env.unwrapped
        self._max_steps_override = kwargs.get("max_steps")
        self._is_babyai = hasattr(self._env, "instrs") or hasattr(self._env, "gen_mission")
        self._seed: int | None = None
        self._obs: Observation | None = None
        self._done = False
        self._version = 0  # bumped on every reset and step: identifies "the current state"
        self._bot: BabyAIBot | None = None
        self._bot_version = -1  # the state at which the cached bot last planned
        self._bot_action = -1  # ... and the action it suggested there
        self._expert_cache: tuple[int, str] | None = None
        # Without an override BabyAI sets the limit per episode from the instruction; a probe
        # reset gives ``max_steps`` a value before the first real reset.
        with _quiet():
            self._env.reset(seed=0)
        self.max_steps = int(self._env.max_steps)

    # -- core API --------------------------------------------------------------------------

    def reset(self, seed: int) -> Observation:
        seed = int(seed)
        with _quiet():
            obs, _ = self._env.reset(seed=seed)
        self._seed = seed
        self._done = False
        self._version += 1
        self._drop_bot()
        self.max_steps = int(self._env.max_steps)
        self._obs = Observation(self._env.mission, textualize(obs["image"], self.protocol), ACTIONS)
        return self._obs

    def step(self, action: str) -> StepResult:
        self._require_reset("step()")
        if self._done:
            raise RuntimeError(f"{self.env_id}: the episode is over; reset or restore first")
        invalid = action == INVALID_ACTION
        if invalid:
            idx = self._invalid_idx
        else:
            idx = _ACTION_TO_IDX.get(action, -1)
            if idx < 0:
                raise ValueError(
                    f"{action!r} is not a valid action of {self.env_id} (valid: {ACTIONS}); parse "
                    f"model output with parse_action() and step(INVALID_ACTION) when it is None"
                )
        # keep the cached bot only when it planned at this very state and this is its action
        if self._bot is not None and not (
            self._bot_version == self._version and self._bot_action == idx
        ):
            self._drop_bot()
        env = self._env
        if idx == _DONE_IDX and _verifier.use_done_actions and self._is_babyai:
            # BABYAI_DONE_ACTIONS makes `done` end the episode: do the no-op step by hand
            env.step_count += 1
            obs = env.gen_obs()
            reward, terminated, truncated = 0.0, False, env.step_count >= env.max_steps
        else:
            obs, reward, terminated, truncated, _ = env.step(idx)
        self._version += 1
        self._expert_cache = None
        reward = float(reward)
        self._done = bool(terminated or truncated)
        self._obs = Observation(env.mission, textualize(obs["image"], self.protocol), ACTIONS)
        info = {
            "success": reward > 0.0,
            "invalid_action": invalid,
            "action": action,
            "steps_taken": env.step_count,
        }
        return StepResult(self._obs, reward, bool(terminated), bool(truncated), info)

    @property
    def steps_taken(self) -> int:
        return int(self._env.step_count)

    def episode_values(self) -> dict[str, Any]:
        """``BabyAI-MixedLocal-v0``: the episode's mission kind (``levels.KINDS``, BALROG's task
        names); other levels add nothing."""
        self._require_reset("episode_values()")
        return {"mission_kind": self._env.kind} if self.env_id == MIXED_LOCAL_ID else {}

    def is_success(self, total_reward: float, info: dict[str, Any] | None = None) -> bool:
        """Mission completed: the episode's total reward is > 0 (BabyAI pays only on success)."""
        return float(total_reward) > 0.0

    @staticmethod
    def archetype(instruction: str) -> str | None:
        """The mission's kind (``missions.mission_archetype``): ``go to``, ``pick up``, ``open``,
        ``put next to``, or a compound's kinds with its connectives; None outside BabyAI's grammar."""
        return mission_archetype(instruction)

    @staticmethod
    def parse_action(text: str, mode: ParseMode = "strict") -> str | None:
        """strict: after strip/lowercase/trailing-period removal the text IS an action.
        lenient: also variants ("forward", "turn_left", "pickup", "pick up the key"), a JSON
        object with an "action" field, or a text mentioning exactly one action; two different
        actions mentioned -> None."""
        return parse_action_text(text, mode)

    def state_key(self) -> tuple:
        """The exact world state (agent pos/dir, carried object, step count, full grid)."""
        env = self._env
        carrying = None if env.carrying is None else (env.carrying.type, env.carrying.color)
        return (
            tuple(int(v) for v in env.agent_pos),
            int(env.agent_dir),
            carrying,
            int(env.step_count),
            env.grid.encode().tobytes(),
        )

    # -- expert ----------------------------------------------------------------------------

    # -- diagnosis: from the state and the student's action, never from the expert ------------

    mentioned_actions = staticmethod(mentioned_actions)

    def diagnose(self, student_action: str | None) -> str:
        """The oracle's hint: the mission read from the state, and the student's action judged
        from the state (``None``: what is in front of the agent). It never asks the expert, reads
        the bot's plan nor names an action (see ``diagnosis``)."""
        self._require_reset("diagnose()")
        if not hasattr(self._env, "instrs"):
            raise NotImplementedError(
                f"{self.env_id} has no BabyAI instruction; the diagnosis only covers BabyAI-* levels"
            )
        return diagnosis(self._env, student_action)


