"""The one environment interface every family implements (BabyAI, Crafter, HTML extraction).

An environment is a *text* environment: observations are strings, actions are strings; the
observation's ``valid_actions`` is the menu the state offers (BabyAI and Crafter: a fixed
discrete set; HTML extraction: free-form tool calls, where it lists the tool-call templates).
Generic code sees actions through the family's ``ActionSpace`` (``registry.action_space``:
validity, canonical key, mentions, candidates; ``.at(env)`` at a state, where a free-form
family's depend on it), never as a finite set. A state is identified exactly by
``(env_id, seed, action prefix)``: ``restore`` resets with the seed and replays the prefix.

Invalid model outputs never reach ``step``: the caller parses with ``parse_action`` and, when it
returns ``None``, calls ``step(INVALID_ACTION)``, which consumes one step and changes nothing else,
so a prefix containing it replays exactly.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

INVALID_ACTION = "<invalid>"
ParseMode = Literal["strict", "lenient"]


class ExpertError(RuntimeError):
    """The privileged expert cannot give an action from this state. Callers record it as a
    teacher failure / failed expert rollout, never replace it, and count it by ``kind``:

    - ``"impossible"``: the mission cannot be completed any more (e.g. an object it needs was
      destroyed); a failure of the task, not of the expert;
    - ``"planner"``: the planner failed on a state where the mission may still be possible.
    """

    KINDS = ("impossible", "planner")

    def __init__(self, message: str, kind: str = "planner"):
        if kind not in self.KINDS:
            raise ValueError(f"ExpertError kind {kind!r}: expected one of {self.KINDS}")
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Observation:
    instruction: str  # the mission / task statement
    text: str  # the textual observation of the current state
    valid_actions: tuple[str, ...]


@dataclass(frozen=True)
class StepResult:
    observation: Observation
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


@dataclass(frozen=True)
class Advice:
    """What an expert/teacher says at a state. ``diagnosis`` never names the action."""

    suggested_action: str | None
    diagnosis: str
    error_type: str
    ok: bool = True  # False: a teacher failure (recorded, never silently replaced)
    failure_reason: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # tokens, cost, attempts, cache hit


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
JSON_ACTION_KEYS = ("action", "Action", "ACTION", "act", "move", "answer", "next_action")


def json_action_field(text: str) -> str | None:
    """The string under the first action-like key (``JSON_ACTION_KEYS``) of a JSON object in
    ``text`` (a model that answers ``{"action": "..."}``), or None."""
    if "{" not in text:
        return None
    m = _JSON_OBJECT.search(text)
    try:
        obj = json.loads(m.group(0)) if m else None
    except (ValueError, TypeError):
        return None
    if isinstance(obj, dict):
        for k in JSON_ACTION_KEYS:
            if isinstance(obj.get(k), str):
                return obj[k]
    return None


def shared_error_type(student_action: str | None, expert_action: str, valid: tuple[str, ...] | dict) -> str | None:
    """The error types every family shares (``unknown``: no student action; ``invalid_action``;
    ``correct``), or None when the family's own categories decide."""
    if student_action is None:
        return "unknown"
    if student_action not in valid:
        return "invalid_action"
    if student_action == expert_action:
        return "correct"
    return None


class TextEnv(ABC):
    """A text environment instance. Subclasses fill one family."""

    SYSTEM_PROMPT: str  # the family's student system prompt (the game, its actions, the answer format)
    env_id: str
    family: str  # "babyai" | "crafter" | "html"
    max_steps: int  # the step limit of one episode

    @abstractmethod
    def reset(self, seed: int) -> Observation: ...

    @abstractmethod
    def step(self, action: str) -> StepResult:
        """Apply one action from ``valid_actions()`` or ``INVALID_ACTION`` (a no-op step)."""

    # The state every family keeps: the current observation (None before the first reset), the
    # task's seed and whether the episode is over; the accessors below read it.
    ACTIONS: tuple[str, ...] = ()  # a discrete family's fixed action set
    _obs: Observation | None = None
    _seed: int | None = None
    _done: bool = False

    def _require_reset(self, what: str) -> None:
        if self._obs is None:
            raise RuntimeError(f"{self.env_id}: call reset(seed) before {what}")

    def valid_actions(self) -> tuple[str, ...]:
        return self.ACTIONS

    def observation(self) -> Observation:
        self._require_reset("observation()")
        return self._obs  # type: ignore[return-value]

    @property
    def seed(self) -> int | None:
        return self._seed

    @property
    def done(self) -> bool:
        return self._done

    @property
    @abstractmethod
    def steps_taken(self) -> int: ...

    def episode_values(self) -> dict[str, Any]:
        """Per-episode measures of the current state beyond success, reward and steps (Crafter:
        the achievements unlocked since reset and the progression); the rollout tables carry them
        as the family's columns, declared in ``Family.episode_columns``. None by default."""
        return {}

    @staticmethod
    def archetype(instruction: str) -> str | None:
        """The kind of task ``instruction`` asks for, whatever its particulars (BabyAI: the
        mission's kind, e.g. ``go to`` or ``open, then pick up``); the bench breaks its metrics
        down by it. A function of the text alone (``registry.task_archetype`` calls it without an
        instance); None: the family defines no archetypes (the default), or the text has none."""
        return None

    @abstractmethod
    def is_success(self, total_reward: float, info: dict[str, Any]) -> bool:
        """The ONE success definition of this family (BabyAI: mission done, reward > 0)."""

    @staticmethod
    @abstractmethod
    def parse_action(text: str, mode: ParseMode = "strict") -> str | None:
        """Map a model output to a valid action, or ``None`` when it is invalid (a function of
        the text alone: ``registry.parse_action`` calls it without an instance)."""

    @classmethod
    def read_action(cls, text: str, mode: ParseMode = "strict") -> tuple[str | None, bool]:
        """(``parse_action``'s action, whether the parser had to repair the text to read it: a
        free-form family's truncated JSON, counted by the env's ``step(action, repaired=True)``);
        a family whose parser repairs nothing never reports a repair."""
        return cls.parse_action(text, mode), False

    @abstractmethod
    def expert_action(self) -> str:
        """The privileged expert's action from the current state (replanned here)."""

    @staticmethod
    @abstractmethod
    def mentioned_actions(text: str) -> dict[str, str]:
        """Every action of this family that ``text`` names or paraphrases, with the phrase found:
        the parser's whole vocabulary (names, aliases, mention patterns, their inflections),
        whole words, any case. The teacher rules (``teachers.base.validate_advice``) use it."""

    @abstractmethod
    def expert_advice(self, student_action: str | None) -> Advice:
        """Oracle teacher: the expert's action, a diagnosis built from the state and
        ``student_action`` (never from the expert's action) that names or paraphrases no
        action, and an error type comparing the two actions."""

    def restore(self, seed: int, actions: list[str] | tuple[str, ...]) -> Observation:
        """Exact restore: reset(seed) and replay the action prefix."""
        obs = self.reset(seed)
        for a in actions:
            res = self.step(a)
            obs = res.observation
            if res.done:
                raise ValueError(
                    f"action prefix of length {len(actions)} ends the episode of "
                    f"{self.env_id} seed {seed} early; it cannot be a snapshot"
                )
        return obs
