"""MiniGrid/BabyAI levels as a ``TextEnv`` (the BALROG action set, BALROG-style observation text).

- Actions: ``turn left``, ``turn right``, ``go forward``, ``pick up``, ``drop``, ``toggle`` (BALROG's;
  MiniGrid's ``done`` is not offered). ``step(INVALID_ACTION)`` runs MiniGrid's ``done`` action,
  which changes nothing in the world but still counts a step (and can truncate the episode).
- Success (the ONE definition): the mission is completed, i.e. the episode's reward is > 0.
- Expert: minigrid's ``BabyAIBot``. A bot is created on the current state (with a full map of the
  level: the expert is privileged, so its action is a function of the state, not of what a fresh
  bot happened to have seen) and cached while the trajectory only advances by the bot's own
  actions; any other action, a reset or a restore drops it, and the next query plans afresh.
- The oracle teacher (``expert_advice``) adds a diagnosis built from privileged state that never
  names an action, and an error type comparing the student's action with the expert's.
"""

from __future__ import annotations

import json
import re
from typing import Any

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid/BabyAI ids with gymnasium)
from minigrid.core.world_object import WorldObj
from minigrid.envs.babyai.core import verifier as _verifier
from minigrid.envs.babyai.core.verifier import (
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)
from minigrid.utils.baby_ai_bot import (
    BabyAIBot,
    DropSubgoal,
    GoNextToSubgoal,
)

from .base import INVALID_ACTION, Advice, ExpertError, Observation, ParseMode, StepResult, TextEnv
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


def _steps(n: int, word: str) -> str:
    return f"{n} step{'s' if n != 1 else ''} {word}"


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

    def _fresh_bot(self) -> BabyAIBot:
        env = self._env
        bot = BabyAIBot(env)
        if self.omniscient_expert:
            bot.vis_mask[:, :] = True
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
        idx = None
        if self._bot is not None and self._bot_version == self._version - 1:
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
                    f"{self.steps_taken}{why}: {type(e).__name__}: {e}"
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
            diagnosis=self.diagnose(expert),
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
                elif (
                    obj.cur_pos is not None
                    and env.grid.get(int(obj.cur_pos[0]), int(obj.cur_pos[1])) is obj
                ):
                    present = True
            if not present:
                gone.append(f"the {desc.color + ' ' if desc.color else ''}{desc.type}")
        return gone

    mentioned_actions = staticmethod(mentioned_actions)

    # -- diagnosis from privileged state ---------------------------------------------------

    def _rel(self, pos: Any) -> tuple[int, int]:
        """(right, forward) offsets of a grid position from the agent."""
        env = self._env
        dx = int(pos[0]) - int(env.agent_pos[0])
        dy = int(pos[1]) - int(env.agent_pos[1])
        fx, fy = env.dir_vec
        return dx * (-fy) + dy * fx, dx * fx + dy * fy

    def _where(self, pos: Any) -> str:
        right, fwd = self._rel(pos)
        if right == 0 and fwd == 1:
            return "directly in front of you"
        if right == 0 and fwd == 0:
            return "where you stand"
        parts = []
        if right:
            parts.append(_steps(abs(right), "right" if right > 0 else "left"))
        if fwd > 0:
            parts.append(_steps(fwd, "forward"))
        elif fwd < 0:
            parts.append(_steps(-fwd, "back"))
        return " and ".join(parts)

    def _side(self, pos: Any) -> str:
        right, fwd = self._rel(pos)
        if right == 0:
            return "straight ahead" if fwd > 0 else "behind you"
        side = "on your right" if right > 0 else "on your left"
        if fwd < 0:
            side += ", partly behind you"
        return side

    def _visible(self, pos: Any) -> bool:
        env = self._env
        coords = env.relative_coords(int(pos[0]), int(pos[1]))
        if coords is None:
            return False
        _, vis = env.gen_obs_grid()
        return bool(vis[coords[0], coords[1]])

    def _where_seen(self, pos: Any) -> str:
        w = self._where(pos)
        return w if self._visible(pos) else w + ", out of your view"

    def _route_step(self, target: Any) -> tuple[int, int] | None:
        """(right, forward) offset of the first cell on the expert's shortest route to ``target``."""
        bot = self._bot
        if bot is None or target is None:
            return None
        goal = (int(target[0]), int(target[1]))
        try:
            path, _, _ = bot._shortest_path(lambda pos, cell: pos == goal, try_with_blockers=True)
        except Exception:  # noqa: BLE001
            return None
        if not path:
            return None
        return self._rel(path[0])

    @staticmethod
    def _name(obj: WorldObj | None) -> str:
        if obj is None:
            return "an empty cell"
        return f"the {obj.color} {obj.type}"

    def _locate(self, desc: ObjDesc, adjacent: bool = False) -> tuple[WorldObj | None, Any]:
        """The matching object the expert heads for (the bot's choice), else the nearest one."""
        env = self._env
        if self._bot is not None:
            try:
                obj, pos = self._bot._find_obj_pos(desc, adjacent)
                if obj is not None:
                    return obj, pos
            except Exception:  # noqa: BLE001
                pass
        best = (None, None, 10**9)
        for obj in desc.obj_set:
            if obj is env.carrying or obj.cur_pos is None:
                continue
            d = abs(int(obj.cur_pos[0]) - int(env.agent_pos[0])) + abs(
                int(obj.cur_pos[1]) - int(env.agent_pos[1])
            )
            if d < best[2]:
                best = (obj, obj.cur_pos, d)
        return best[0], best[1]

    def _focus(self) -> tuple[WorldObj | None, Any]:
        """What the expert's current subgoal is about: (object or None, grid position)."""
        env = self._env
        bot = self._bot
        front = tuple(int(v) for v in env.front_pos)
        if bot is None or not bot.stack:
            return env.grid.get(*front), front
        top = bot.stack[-1]
        if isinstance(top, GoNextToSubgoal):
            datum = top.datum
            if isinstance(datum, ObjDesc):
                return self._locate(datum, top.reason == "PutNext")
            if isinstance(datum, WorldObj):
                return datum, datum.cur_pos
            pos = tuple(int(v) for v in datum)
            return env.grid.get(*pos), pos
        return env.grid.get(*front), front

    def _mission_sentence(self) -> str:
        """Where the mission's object(s) really are, relative to the agent."""
        env = self._env
        instr = getattr(env, "instrs", None)
        carrying = env.carrying
        if isinstance(instr, GoToInstr):
            obj, pos = self._locate(instr.desc)
            if obj is None:
                return "The object the mission refers to is not reachable from here."
            lead = ""
            if carrying is not None:
                lead = f"You are holding {self._name(carrying)}, which this mission does not need; "
            s = f"{self._name(obj)} you need to reach is {self._where_seen(pos)}."
            return (lead + s) if lead else s[0].upper() + s[1:]
        if isinstance(instr, PickupInstr):
            obj, pos = self._locate(instr.desc)
            where = self._where_seen(pos) if obj is not None else "nowhere reachable"
            if carrying is not None:
                return (
                    f"You are holding {self._name(carrying)}, not {self._name(obj)} the mission "
                    f"asks for, which is {where}, so your hands must be free first."
                )
            return f"The mission wants {self._name(obj)}, which is {where}."
        if isinstance(instr, PutNextInstr):
            fixed, fpos = self._locate(instr.desc_fixed, adjacent=True)
            fixed_txt = (
                f"{self._name(fixed)} ({self._where_seen(fpos)})"
                if fixed is not None
                else "its partner object"
            )
            if carrying is not None and any(o is carrying for o in instr.desc_move.obj_set):
                return (
                    f"You already hold {self._name(carrying)}, and it has to end up on a free cell "
                    f"right next to {fixed_txt}."
                )
            move, mpos = self._locate(instr.desc_move)
            move_txt = (
                f"{self._name(move)} is {self._where_seen(mpos)}"
                if move is not None
                else "the object to move is out of reach"
            )
            lead = ""
            if carrying is not None:
                lead = f"You are holding {self._name(carrying)}, which the mission does not need; "
            s = f"{move_txt} and must be carried next to {fixed_txt}."
            return lead + s if lead else s[0].upper() + s[1:]
        if isinstance(instr, OpenInstr):
            door, pos = self._locate(instr.desc)
            if door is None:
                return "The door the mission refers to cannot be located."
            state = "locked" if door.is_locked else ("already open" if door.is_open else "closed")
            s = f"The door the mission means is {self._name(door)}, {self._where_seen(pos)}, and it is {state}"
            if door.is_locked:
                has_key = (
                    carrying is not None and carrying.type == "key" and carrying.color == door.color
                )
                if has_key:
                    s += f"; the {door.color} key you hold fits it"
                else:
                    key, kpos = (
                        self._locate(ObjDesc("key", door.color))
                        if self._has_key(door.color)
                        else (None, None)
                    )
                    if key is not None:
                        s += f"; its key, {self._name(key)}, is {self._where_seen(kpos)}"
            return s + "."
        obj, pos = self._focus()
        if pos is None:
            return "The current objective cannot be located."
        return f"Your current objective is {self._name(obj)}, {self._where_seen(pos)}."

    def _has_key(self, color: str) -> bool:
        grid = self._env.grid
        return any(o is not None and o.type == "key" and o.color == color for o in grid.grid)

    def _front_phrase(self) -> str:
        env = self._env
        front = env.grid.get(*env.front_pos)
        if front is None:
            return "the cell ahead of you is free"
        if front.type == "wall":
            return "a wall is right in front of you"
        if front.type == "door":
            st = "open" if front.is_open else ("locked" if front.is_locked else "closed")
            return f"the {st} {front.color} door is right in front of you"
        return f"{self._name(front)} is right in front of you"

    def _situation_sentence(self, expert: str) -> str:
        """The immediate situation that makes the expert's action the right one."""
        env = self._env
        front = env.grid.get(*env.front_pos)
        carrying = env.carrying
        focus, fpos = self._focus()
        instr = getattr(env, "instrs", None)
        targets: list[WorldObj] = []
        for d in ("desc", "desc_move", "desc_fixed"):
            desc = getattr(instr, d, None)
            if desc is not None:
                targets.extend(desc.obj_set)
        what = "your current objective" if focus is None else self._name(focus)
        if expert == "go forward":
            if front is not None and front.type == "door":
                return f"The open {front.color} door ahead of you lets you pass, and the way on continues beyond it."
            if fpos is not None and self._rel(fpos)[0] == 0 and self._rel(fpos)[1] > 1:
                return f"The cells between you and {what} are free, so nothing blocks the straight path."
            return f"The cell ahead of you is free and lies on the shortest route to {what}."
        if expert in TURNS:
            fp = self._front_phrase()
            fp = fp[0].upper() + fp[1:]
            step = self._route_step(fpos)
            if fpos is not None and self._rel(fpos) == (0, 1):
                return f"{fp}, but you must face a different cell to make progress."
            if step is not None and step == self._rel(fpos):
                return f"{fp}, while {what} is right beside you {self._side(fpos)}, so you are not facing it."
            if step is not None and step != (0, 1):
                way = {(1, 0): "on your right side", (-1, 0): "on your left side"}.get(
                    step, "behind you"
                )
                return f"{fp}, and the shortest free route to {what} continues {way}."
            side = self._side(fpos) if fpos is not None else "elsewhere"
            return f"{fp}, while {what} lies {side}, so you are not facing the way you need to go."
        if expert == "pick up":
            if front is not None and any(front is t for t in targets):
                return f"{self._name(front)[0].upper() + self._name(front)[1:]} is directly in front of you and your hands are free, so it can be taken now."
            if front is not None:
                return f"{self._name(front)[0].upper() + self._name(front)[1:]} directly in front of you stands in the way and has to be carried off the path."
            return "Your hands are free and the object you need is within reach."
        if expert == "drop":
            held = self._name(carrying) if carrying is not None else "the object"
            if (
                isinstance(instr, PutNextInstr)
                and carrying is not None
                and any(o is carrying for o in instr.desc_move.obj_set)
            ):
                return f"You hold {held} and the free cell in front of you touches the object it must end up next to, so this is the place to put it down."
            return f"You hold {held} and the free cell in front of you is a harmless place to leave it, out of the way."
        if expert == "toggle":
            if front is not None and front.type == "door":
                if front.is_locked:
                    return f"The {front.color} door in front of you is locked, and the {front.color} key you hold fits it."
                if front.is_open:
                    return f"The {front.color} door in front of you is open, but it should be shut again."
                return f"The {front.color} door in front of you is closed and has to be opened."
            return f"{self._front_phrase()[0].upper() + self._front_phrase()[1:]} and it has to be activated."
        return f"{self._front_phrase()[0].upper() + self._front_phrase()[1:]}."

    def diagnose(self, expert: str | None = None) -> str:
        """One or two sentences from privileged state; never names an action."""
        if expert is None:
            expert = self.expert_action()
        text = f"{self._mission_sentence()} {self._situation_sentence(expert)}"
        return text


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
