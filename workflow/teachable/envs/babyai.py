"""MiniGrid/BabyAI levels as a ``TextEnv`` (the BALROG action set, BALROG-style observation text).

- Actions: ``turn left``, ``turn right``, ``go forward``, ``pick up``, ``drop``, ``toggle`` (BALROG's;
  MiniGrid's ``done`` is not offered). ``step(INVALID_ACTION)`` runs MiniGrid's ``done`` action,
  which changes nothing in the world but still counts a step (and can truncate the episode).
- Success (the ONE definition): the mission is completed, i.e. the episode's reward is > 0.
- Expert: minigrid's ``BabyAIBot``. A bot is created on the current state and cached while the
  trajectory only advances by the bot's own actions; any other action, a reset or a restore drops
  it, and the next query plans afresh. It is privileged: its map (``vis_mask``) is the agent's
  whole region (``region_mask``: every cell reachable without passing a shut door, and the walls
  and doors around it), whatever the agent has seen, so its action is a function of the state.
  The bot's planner cannot path through shut doors and asserts a path to every object on its map,
  so objects behind shut doors stay off the map: the bot opens doors to explore, as it does on
  its own (a map of the whole level makes it fail at the first step of multi-room levels).
- Action vocabulary (``mentioned_actions``): every phrase the parser maps to an action (names,
  ``_ALIASES``, ``_MENTIONS`` patterns) with its inflections, found as whole words in any text.
  It is the one list the teacher rules use to decide that a diagnosis names or paraphrases an
  action (``teachers.base.validate_advice``), for the oracle and the API teacher alike.
- The oracle teacher (``expert_advice``): the expert's action, an error type comparing the
  student's action with it, and a diagnosis (``diagnose(student_action)``, written in
  ``babyai_diagnosis``) built from the state and the student's action only: it never asks the
  expert, never reads the bot's plan, and uses no action vocabulary (directions as clock
  positions, distances in cells, doors locked / shut / passable), so the hint cannot carry the
  expert's action by its wording.
"""

from __future__ import annotations

import json
import re
from typing import Any

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid/BabyAI ids with gymnasium)
import numpy as np
from minigrid.envs.babyai.core import verifier as _verifier
from minigrid.envs.babyai.core.verifier import GoToInstr, PickupInstr, PutNextInstr
from minigrid.utils.baby_ai_bot import (
    BabyAIBot,
    DropSubgoal,
    GoNextToSubgoal,
)

from .babyai_diagnosis import diagnosis
from .base import (
    INVALID_ACTION,
    Advice,
    ExpertError,
    Observation,
    ParseMode,
    StepResult,
    TextEnv,
)
from .textualize import textualize

ACTIONS: tuple[str, ...] = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")
# MiniGrid's Actions enum: left=0, right=1, forward=2, pickup=3, drop=4, toggle=5, done=6
_ACTION_TO_IDX = {a: i for i, a in enumerate(ACTIONS)}
_IDX_TO_ACTION = dict(enumerate(ACTIONS))
_DONE_IDX = 6

TURNS = frozenset({"turn left", "turn right"})
MOVES = frozenset({"turn left", "turn right", "go forward"})
INTERACTIONS = frozenset({"pick up", "drop", "toggle"})

ERROR_TYPES = (
    "correct",
    "wrong_turn",
    "moved_instead_of_turning",
    "turned_instead_of_moving",
    "missed_interaction",
    "unneeded_interaction",
    "wrong_interaction",
    "invalid_action",
    "unknown",
)


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


# ----------------------------------------------------------------------------------------------
# action parsing
# ----------------------------------------------------------------------------------------------

# whole-answer variants (after normalisation) -> action
_ALIASES: dict[str, str] = {}
for _a, _variants in {
    "turn left": [
        "left",
        "turn left",
        "turn to the left",
        "turn to your left",
        "turning left",
        "rotate left",
        "turn left 90 degrees",
        "left turn",
    ],
    "turn right": [
        "right",
        "turn right",
        "turn to the right",
        "turn to your right",
        "turning right",
        "rotate right",
        "turn right 90 degrees",
        "right turn",
    ],
    "go forward": [
        "forward",
        "go forward",
        "move forward",
        "moving forward",
        "going forward",
        "go ahead",
        "move ahead",
        "go straight",
        "move straight",
        "step forward",
        "walk forward",
        "forwards",
        "go forwards",
        "move forwards",
        "advance",
    ],
    "pick up": [
        "pick up",
        "pickup",
        "pick it up",
        "picking up",
        "pick",
        "grab",
        "grab it",
        "take",
        "take it",
        "pick up object",
        "pick up the object",
    ],
    "drop": [
        "drop",
        "drop it",
        "dropping",
        "put down",
        "put it down",
        "drop object",
        "drop the object",
        "release",
    ],
    "toggle": [
        "toggle",
        "toggling",
        "toggle it",
        "open",
        "open it",
        "open door",
        "open the door",
        "opening",
        "unlock",
        "unlock the door",
        "close the door",
    ],
}.items():
    for _v in _variants:
        _ALIASES[_v] = _a

# mentions of an action inside a longer answer
_MENTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "turn left",
        re.compile(r"\b(?:turn(?:s|ing|ed)?|rotat(?:e|es|ing))\s+(?:to\s+(?:the|your)\s+)?left\b"),
    ),
    (
        "turn right",
        re.compile(r"\b(?:turn(?:s|ing|ed)?|rotat(?:e|es|ing))\s+(?:to\s+(?:the|your)\s+)?right\b"),
    ),
    (
        "go forward",
        re.compile(
            r"\b(?:go(?:es|ing)?|mov(?:e|es|ing)|step|walk(?:s|ing)?)\s+(?:straight\s+)?(?:forwards?|ahead)\b"
        ),
    ),
    (
        "pick up",
        re.compile(r"\bpick(?:s|ing)?\s+(?:(?:it|them|the\s+\w+(?:\s+\w+)?)\s+)?up\b|\bpickup\b"),
    ),
    ("drop", re.compile(r"\bdrop(?:s|ping)?\b")),
    ("toggle", re.compile(r"\btoggl(?:e|es|ing)\b")),
)

# The vocabulary of each action, for the teacher rules: every phrase the parser maps to the
# action (its name, its aliases, its mention patterns), with the alias's first word inflected
# ("grabbed", "opens", "taken", "went forward"), matched as whole words in any text.
_IRREGULAR_FORMS = {"go": ("went", "gone"), "take": ("took", "taken")}


def _word_forms(word: str) -> list[str]:
    """``word`` with its -s/-es, -ed/-d, -ing forms (final consonant doubled or not, a final e
    dropped) and irregular past forms; over-generated forms ("lefted") are harmless."""
    stem = word[:-1] if word.endswith("e") else word
    forms = {word, word + "s", word + "es", stem + "ed", stem + "ing"}
    forms |= {word + word[-1] + "ed", word + word[-1] + "ing", *_IRREGULAR_FORMS.get(word, ())}
    return sorted(forms, key=len, reverse=True)


def _phrase_pattern(phrase: str) -> str:
    first, *rest = phrase.split()
    head = "(?:" + "|".join(re.escape(f) for f in _word_forms(first)) + ")"
    return r"\s+".join([head, *(re.escape(w) for w in rest)])


def _vocabulary_pattern(action: str) -> re.Pattern[str]:
    phrases = sorted({action, *(v for v, a in _ALIASES.items() if a == action)}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(_phrase_pattern(p) for p in phrases) + r")(?!\w)")


_VOCABULARY: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...] = tuple(
    (a, (_vocabulary_pattern(a), *(pat for b, pat in _MENTIONS if b == a))) for a in ACTIONS
)


def mentioned_actions(text: str) -> dict[str, str]:
    """Every action that ``text`` names or paraphrases, with the (lower-cased) phrase found: its
    name, an alias of the parser ("rotate left", "move ahead", "grab", "open", "release") in any
    inflection ("grabbed", "opens", "taken"), or a mention pattern ("pick the key up"). Case-
    insensitive, whole words: "left" is found in "2 cells left", not in "leftover"."""
    if not isinstance(text, str):
        raise TypeError(f"mentioned_actions needs a string, got {type(text).__name__}: {text!r}")
    t = " ".join(text.lower().replace("_", " ").replace("-", " ").split())
    found = {}
    for action, patterns in _VOCABULARY:
        phrases = [m.group(0) for pat in patterns for m in pat.finditer(t)]
        if phrases:
            found[action] = max(phrases, key=len)
    return found


_JSON_RE = re.compile(r"\{.*\}", re.DOTALL)
_JSON_KEYS = ("action", "Action", "ACTION", "act", "move", "answer", "next_action")


def _strict_norm(text: str) -> str:
    t = text.strip().lower()
    while t.endswith("."):
        t = t[:-1].rstrip()
    return t


def _loose_norm(text: str) -> str:
    t = text.lower().replace("_", " ").replace("-", " ")
    t = re.sub(r"[\"'`*<>\[\]()]", " ", t)
    t = re.sub(r"\s+", " ", t).strip()
    t = t.rstrip(".!?:;, ").lstrip(":;, ")
    return t


def parse_action_text(
    text: Any, mode: ParseMode = "strict", _allow_json: bool = True
) -> str | None:
    """Map a model output to one of ``ACTIONS`` or ``None`` (see ``BabyAITextEnv.parse_action``)."""
    if not isinstance(text, str):
        return None
    if mode not in ("strict", "lenient"):
        raise ValueError(f"unknown parse mode {mode!r}; expected 'strict' or 'lenient'")
    s = _strict_norm(text)
    if s in _ACTION_TO_IDX:
        return s
    if mode == "strict":
        return None

    if _allow_json and "{" in text:
        m = _JSON_RE.search(text)
        if m:
            try:
                obj = json.loads(m.group(0))
            except (ValueError, TypeError):
                obj = None
            if isinstance(obj, dict):
                for k in _JSON_KEYS:
                    if isinstance(obj.get(k), str):
                        return parse_action_text(obj[k], "lenient", _allow_json=False)

    t = _loose_norm(text)
    for prefix in ("action ", "final answer ", "answer ", "next action ", "i will ", "i ll "):
        if t.startswith(prefix) and t[len(prefix) :] in _ALIASES:
            return _ALIASES[t[len(prefix) :]]
    if t in _ALIASES:
        return _ALIASES[t]
    found = {a for a, pat in _MENTIONS if pat.search(t)}
    if len(found) == 1:
        return found.pop()
    return None  # nothing recognisable, or two different actions mentioned (ambiguous)


def classify_error(student_action: str | None, expert_action: str) -> str:
    """A short category comparing the student's action with the expert's."""
    if student_action is None:
        return "unknown"
    if student_action not in _ACTION_TO_IDX:
        return "invalid_action"
    if student_action == expert_action:
        return "correct"
    if expert_action in TURNS:
        if student_action in TURNS:
            return "wrong_turn"
        if student_action == "go forward":
            return "moved_instead_of_turning"
        return "unneeded_interaction"
    if expert_action == "go forward":
        if student_action in TURNS:
            return "turned_instead_of_moving"
        return "unneeded_interaction"
    # the expert interacts (pick up / drop / toggle)
    if student_action in MOVES:
        return "missed_interaction"
    return "wrong_interaction"


# ----------------------------------------------------------------------------------------------
# the environment
# ----------------------------------------------------------------------------------------------


class BabyAITextEnv(TextEnv):
    """A MiniGrid/BabyAI level (``gymnasium.make(env_id, max_steps=...)``) as a text env."""

    family = "babyai"

    def __init__(
        self, env_id: str, max_steps: int | None = None, *, omniscient_expert: bool = True
    ):
        self.env_id = env_id
        self.omniscient_expert = omniscient_expert
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
        self._obs = Observation(self._env.mission, textualize(obs["image"]), ACTIONS)
        return self._obs

    def step(self, action: str) -> StepResult:
        if self._obs is None:
            raise RuntimeError(f"{self.env_id}: call reset(seed) before step()")
        if self._done:
            raise RuntimeError(f"{self.env_id}: the episode is over; reset or restore first")
        invalid = action == INVALID_ACTION
        if invalid:
            idx = _DONE_IDX
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
        if invalid and _verifier.use_done_actions and self._is_babyai:
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
        self._obs = Observation(env.mission, textualize(obs["image"]), ACTIONS)
        info = {
            "success": reward > 0.0,
            "invalid_action": invalid,
            "action": action,
            "steps_taken": env.step_count,
        }
        return StepResult(self._obs, reward, bool(terminated), bool(truncated), info)

    def valid_actions(self) -> tuple[str, ...]:
        return ACTIONS

    def observation(self) -> Observation:
        if self._obs is None:
            raise RuntimeError(f"{self.env_id}: call reset(seed) before observation()")
        return self._obs

    @property
    def steps_taken(self) -> int:
        return int(self._env.step_count)

    @property
    def seed(self) -> int | None:
        return self._seed

    @property
    def done(self) -> bool:
        return self._done

    def is_success(self, total_reward: float, info: dict[str, Any] | None = None) -> bool:
        """Mission completed: the episode's total reward is > 0 (BabyAI pays only on success)."""
        return float(total_reward) > 0.0

    def parse_action(self, text: str, mode: ParseMode = "strict") -> str | None:
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

    def _drop_bot(self) -> None:
        self._bot = None
        self._bot_version = -1
        self._bot_action = -1
        self._expert_cache = None

    def region_mask(self) -> np.ndarray:
        """Cells reachable from the agent without passing a shut door (objects do not block:
        they can be moved), plus the walls and doors that bound them."""
        env = self._env
        grid = env.grid
        mask = np.zeros((grid.width, grid.height), dtype=bool)
        start = (int(env.agent_pos[0]), int(env.agent_pos[1]))
        mask[start] = True
        queue = [start]
        while queue:
            i, j = queue.pop()
            for ni, nj in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if not (0 <= ni < grid.width and 0 <= nj < grid.height) or mask[ni, nj]:
                    continue
                mask[ni, nj] = True
                cell = grid.get(ni, nj)
                if cell is None or (cell.type != "wall" and (cell.type != "door" or cell.is_open)):
                    queue.append((ni, nj))
        return mask

    def _fresh_bot(self) -> BabyAIBot:
        env = self._env
        bot = BabyAIBot(env)
        if self.omniscient_expert:
            bot.vis_mask[:, :] = self.region_mask()
        carrying = env.carrying
        instr = env.instrs
        if carrying is not None and isinstance(instr, (PutNextInstr, PickupInstr, GoToInstr)):
            if isinstance(instr, PutNextInstr) and any(
                o is carrying for o in instr.desc_move.obj_set
            ):
                # already holding the object to move: only "go next to the fixed one, put it down"
                # remains (the plan is [Drop, GoNextTo(fixed), Pickup, GoNextTo(move)])
                del bot.stack[-2:]
            else:
                # holding something the plan cannot use: free the hands first
                drop_pos = bot._find_drop_pos()
                if drop_pos is not None:
                    bot.stack.append(DropSubgoal(bot))
                    bot.stack.append(GoNextToSubgoal(bot, drop_pos))
        return bot

    def expert_action(self) -> str:
        if self._obs is None:
            raise RuntimeError(f"{self.env_id}: call reset(seed) before expert_action()")
        if self._done:
            raise RuntimeError(f"{self.env_id}: the episode is over; no expert action")
        if self._expert_cache is not None and self._expert_cache[0] == self._version:
            return self._expert_cache[1]
        if not hasattr(self._env, "instrs"):
            raise NotImplementedError(
                f"{self.env_id} has no BabyAI instruction; the BabyAI bot expert only covers "
                f"BabyAI-* levels"
            )
        gone = self.vanished_mission_objects()
        if gone:  # the bot would keep trying forever (e.g. "pick up" where a box was toggled away)
            self._drop_bot()
            raise ExpertError(
                f"mission impossible on {self.env_id} seed {self._seed} at step {self.steps_taken}: "
                f"mission object(s) destroyed: {', '.join(gone)}",
                kind="impossible",
            )
        idx = None
        if self._bot is not None and self._bot_version == self._version - 1:
            if self.omniscient_expert:  # a door it opened adds a region to its map
                self._bot.vis_mask |= self.region_mask()
            try:
                idx = int(self._bot.replan())
            except Exception:  # noqa: BLE001 - a stale plan: replan from scratch below
                idx = None
            if idx is not None and idx not in _IDX_TO_ACTION:
                idx = None
        if idx is None:
            try:
                self._bot = self._fresh_bot()
                idx = int(self._bot.replan())
            except Exception as e:  # noqa: BLE001
                self._drop_bot()
                gone = self.vanished_mission_objects()
                why = f" (mission object(s) destroyed: {', '.join(gone)})" if gone else ""
                raise ExpertError(
                    f"BabyAI bot failed on {self.env_id} seed {self._seed} at step "
                    f"{self.steps_taken}{why}: {type(e).__name__}: {e}",
                    kind="impossible" if gone else "planner",
                ) from e
            if idx not in _IDX_TO_ACTION:
                self._drop_bot()
                raise ExpertError(
                    f"BabyAI bot answered 'done' on {self.env_id} seed {self._seed} at step "
                    f"{self.steps_taken} although the mission is not complete"
                )
        self._bot_version = self._version
        self._bot_action = idx
        action = _IDX_TO_ACTION[idx]
        self._expert_cache = (self._version, action)
        return action

    def expert_advice(self, student_action: str | None) -> Advice:
        try:
            expert = self.expert_action()
        except (ExpertError, NotImplementedError) as e:
            return Advice(
                suggested_action=None,
                diagnosis="",
                error_type="unknown",
                ok=False,
                failure_reason=str(e),
                meta={"teacher": "babyai_bot"},
            )
        return Advice(
            suggested_action=expert,
            diagnosis=self.diagnose(student_action),
            error_type=classify_error(student_action, expert),
            meta={"teacher": "babyai_bot", "step": self.steps_taken},
        )

    def vanished_mission_objects(self) -> list[str]:
        """Mission objects no longer in the world (a box toggled open disappears), e.g.
        ``["the purple box"]``; with one of them gone the mission may be impossible."""
        env = self._env
        instr = getattr(env, "instrs", None)
        gone = []
        for d in ("desc", "desc_move", "desc_fixed"):
            desc = getattr(instr, d, None)
            if desc is None or not desc.obj_set:
                continue
            present = False
            for obj in desc.obj_set:
                if obj is env.carrying:
                    present = True
                elif obj.cur_pos is not None:  # (a carried object's cur_pos is (-1, -1))
                    i, j = int(obj.cur_pos[0]), int(obj.cur_pos[1])
                    in_grid = 0 <= i < env.grid.width and 0 <= j < env.grid.height
                    present = present or (in_grid and env.grid.get(i, j) is obj)
            if not present:
                gone.append(f"the {desc.color + ' ' if desc.color else ''}{desc.type}")
        return gone

    # -- diagnosis: from the state and the student's action, never from the expert ------------

    mentioned_actions = staticmethod(mentioned_actions)

    def diagnose(self, student_action: str | None) -> str:
        """The oracle's hint: the mission read from the state, and the student's action judged
        from the state (``None``: what is in front of the agent). It never asks the expert, reads
        the bot's plan nor names an action (see ``babyai_diagnosis``)."""
        if self._obs is None:
            raise RuntimeError(f"{self.env_id}: call reset(seed) before diagnose()")
        if not hasattr(self._env, "instrs"):
            raise NotImplementedError(
                f"{self.env_id} has no BabyAI instruction; the diagnosis only covers BabyAI-* levels"
            )
        return diagnosis(self._env, student_action)


__all__ = [
    "ACTIONS",
    "INTERACTIONS",
    "MOVES",
    "TURNS",
    "ERROR_TYPES",
    "BabyAITextEnv",
    "ExpertError",
    "classify_error",
    "mentioned_actions",
    "parse_action_text",
]
