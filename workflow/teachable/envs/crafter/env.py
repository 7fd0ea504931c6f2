"""Crafter (crafter 1.8.3) as a ``TextEnv``: env ids ``CrafterReward-v1`` / ``CrafterNoReward-v1``.

- Actions: the 17 BALROG names in crafter's order (``actions.ACTIONS``). ``step(INVALID_ACTION)``
  runs crafter's noop: the world goes on (creatures move, hunger grows), one step is consumed,
  ``info["invalid_action"]`` is True.
- Goal and success (the ONE definition): ``goal`` is one of crafter's 22 achievements; the task
  is a success iff that achievement is unlocked within the episode (``is_success`` reads
  ``info["achievements"][goal] > 0``). The episode terminates when the goal is unlocked (as a
  BabyAI episode ends at its mission), when the player dies, and is truncated at ``max_steps``
  (default crafter's 10000). ``end_on_success=False`` plays on after the goal (the expert
  benchmark measures progression over crafter's whole episode that way).
- Reward: crafter's (+1 per newly unlocked achievement, health change / 10) for
  ``CrafterReward-v1``, always 0 for ``CrafterNoReward-v1``.
- ``StepResult.info``: ``achievements`` (name -> count, crafter's), ``unlocked`` (names with a
  count > 0, crafter's order), ``progression`` (unlocked / 22), ``success``, ``inventory``,
  ``dead``, ``invalid_action``, ``action``, ``steps_taken``.
- The instruction states the goal in words; the observation is BALROG's text (``text.py``).
- Exact restore, fast: the world is deterministic (``world.World``); ``restore(seed, prefix)``
  starts from the longest cached prefix (``world.SNAPSHOTS``, shared per process: the state at
  every 100th step of a replayed prefix and at its end) or from the current state when the
  prefix extends it, and replays the rest without rendering text.
- Expert (``expert.py``) and oracle teacher (``diagnosis.py``): privileged, functions of the
  state; the diagnosis never calls the expert.
- Protocol (``protocol``, config key ``env.protocol``): ``study`` is all of the above;
  ``balrog`` is BALROG's evaluation (``balrog.py``): no goal (``goal`` must be unset), the episode
  ends only at death or at ``max_steps`` agent steps (default ``balrog.MAX_STEPS``, 2,000; an
  explicit ``max_steps`` replaces it), after one hidden no-op at reset (not in the prefix, not
  counted in ``steps_taken``; its states are cached apart, ``BALROG_SNAPSHOTS``). Success is
  survival: the player is alive when the episode ends (the cap reached). The observation text is
  BALROG's prompt history (``balrog.history_text``); the expert and the oracle plan through the
  whole curriculum (``EXPERT_GOAL_BALROG``, as the expert benchmark does).
"""

from __future__ import annotations

from typing import Any

from ..base import INVALID_ACTION, Advice, ExpertError, Observation, ParseMode, StepResult, TextEnv
from .family import CRAFTER_IDS
from . import diagnosis
from .actions import (
    ACTION_INDEX,
    ACTIONS,
    INVALID_CODE,
    classify_error,
    encode,
    mentioned_actions,
    parse_action_text,
)
from . import balrog
from .expert import expert_action
from .rules import ACHIEVEMENTS, GOAL_WORDS
from .text import describe
from .world import SNAPSHOTS, Snapshots, World

DEFAULT_MAX_STEPS = 10000  # crafter's episode length
DEFAULT_GOAL = "collect_stone"
PROTOCOLS = ("study", "balrog")
EXPERT_GOAL_BALROG = "collect_wood"  # the expert's first goal under balrog; it then works through every achievement
BALROG_SNAPSHOTS = Snapshots()  # states after BALROG's hidden no-op, apart from the study's (shared per process)


def _name(code: int) -> str:
    """The action name of an encoded action (``INVALID_ACTION`` for the invalid code)."""
    return INVALID_ACTION if code == INVALID_CODE else ACTIONS[code]


def instruction(goal: str) -> str:
    return f"Your goal in Crafter: {GOAL_WORDS[goal]} (the achievement {goal}), and stay alive."


class CrafterTextEnv(TextEnv):
    """One crafter world as a text environment (see the module docstring)."""

    family = "crafter"
    ACTIONS = ACTIONS
    ACHIEVEMENTS = ACHIEVEMENTS
    SYSTEM_PROMPT = (
        "You are an agent playing Crafter, a 2D survival game. Each turn you read what you see around "
        "you, your health, food, drink and energy, and your inventory. Keep food, drink and energy up "
        "(eat, drink water, sleep when tired), fight or avoid zombies and skeletons, collect materials "
        "and craft tools to reach your goal. Actions: Noop waits; Move West, Move East, Move North and "
        "Move South face that way and step there when the cell is free; Do uses what is in front of you "
        "(collect a material, drink water, eat, hit a creature); Sleep rests; Place Stone, Place Table, "
        "Place Furnace and Place Plant put one in front of you (a table costs wood, a furnace stone and "
        "needs a table nearby); Make Wood Pickaxe, Make Stone Pickaxe, Make Iron Pickaxe, Make Wood "
        "Sword, Make Stone Sword and Make Iron Sword craft next to a table (iron tools also need a "
        "furnace, coal and iron). Answer with exactly one action from the list of valid actions."
    )
    mentioned_actions = staticmethod(mentioned_actions)

    def __init__(
        self,
        env_id: str,
        max_steps: int | None = None,
        *,
        goal: str | None = None,
        end_on_success: bool | None = None,
        snapshots: Snapshots | None = None,
        protocol: str = "study",
    ):
        if env_id not in CRAFTER_IDS:
            raise ValueError(f"unknown Crafter env id {env_id!r}; expected one of {sorted(CRAFTER_IDS)}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown Crafter protocol env.protocol={protocol!r}; expected one of {PROTOCOLS}")
        self._balrog = protocol == "balrog"
        if self._balrog and (goal is not None or end_on_success):
            raise ValueError(f"env.protocol=balrog has no goal and no early end: got env.goal={goal!r}, "
                             f"end_on_success={end_on_success!r}")  # fmt: skip
        goal = None if self._balrog else DEFAULT_GOAL if goal is None else goal
        if goal not in ACHIEVEMENTS and not self._balrog:
            raise ValueError(
                f"unknown Crafter goal {goal!r}; expected one of the achievements {ACHIEVEMENTS}"
            )
        if max_steps is not None and int(max_steps) <= 0:
            raise ValueError(f"max_steps must be positive, got {max_steps}")
        self.env_id = env_id
        self.protocol = protocol
        self.goal = goal  # None under balrog
        self.expert_goal = EXPERT_GOAL_BALROG if self._balrog else goal
        self.end_on_success = not self._balrog and end_on_success is not False
        default_steps = balrog.MAX_STEPS if self._balrog else DEFAULT_MAX_STEPS
        self.max_steps = default_steps if max_steps is None else int(max_steps)
        self.snapshots = snapshots if snapshots is not None else BALROG_SNAPSHOTS if self._balrog else SNAPSHOTS
        self._hidden = balrog.HIDDEN_NOOPS if self._balrog else 0  # world steps before the first observation
        self.world = World(reward=CRAFTER_IDS[env_id])
        self.instruction = balrog.instruction() if self._balrog else instruction(goal)
        self._turns: list[tuple[str, str]] = []  # balrog: (scene, action) of the states since reset
        self._scene = ""  # balrog: the current state's scene
        self._seed: int | None = None
        self._prefix = bytearray()  # the encoded actions since reset
        self._obs: Observation | None = None
        self._done = False
        self._version = 0  # bumped on every reset, step and restore
        self._expert_cache: tuple[int, str] | None = None

    # -- core API --------------------------------------------------------------------------

    def reset(self, seed: int) -> Observation:
        self._reset_world(int(seed))
        return self._settle()

    def _reset_world(self, seed: int) -> None:
        cached = self.snapshots.nearest(seed, b"")
        if cached is None:
            self.world.reset_world(seed)
            for _ in range(self._hidden):
                self.world.step(0)
            self.snapshots.put(seed, b"", self.world.dump())
        else:
            self.world.load(cached[1])
        self._seed = seed
        self._prefix = bytearray()
        self._turns = []
        self._scene = self._scene_now(False) if self._balrog else ""

    def step(self, action: str) -> StepResult:
        self._require_reset("step()")
        if self._done:
            raise RuntimeError(f"{self.env_id}: the episode is over; reset or restore first")
        invalid = action == INVALID_ACTION
        code = INVALID_CODE if invalid else ACTION_INDEX.get(action, -1)
        if code < 0:
            raise ValueError(
                f"{action!r} is not a valid action of {self.env_id} (valid: {ACTIONS}); parse model "
                f"output with parse_action() and step(INVALID_ACTION) when it is None"
            )
        if self._balrog:
            self._turns = [*self._turns[1 - balrog.HISTORY:], (self._scene, action)]  # the window's 16 turns
        reward, crafter_info = self._advance(code)
        if self._balrog:
            self._scene = self._scene_now(invalid)
        obs = self._settle()
        terminated, truncated = self._ended()
        achievements = crafter_info["achievements"]
        unlocked = tuple(a for a in ACHIEVEMENTS if achievements[a] > 0)
        info = {
            "achievements": achievements,
            "unlocked": unlocked,
            "progression": len(unlocked) / len(ACHIEVEMENTS),
            "success": self._success(achievements),
            "inventory": crafter_info["inventory"],
            "dead": self.world._player.health <= 0,
            "invalid_action": invalid,
            "action": action,
            "steps_taken": self.steps_taken,
        }
        return StepResult(obs, float(reward), terminated, truncated, info)

    def _advance(self, code: int) -> tuple[float, dict]:
        """One crafter step (INVALID_CODE runs crafter's noop), no text."""
        _, reward, _, info = self.world.step(0 if code == INVALID_CODE else code)
        self._prefix.append(code)
        return reward, info

    def _ended(self) -> tuple[bool, bool]:
        """(terminated, truncated) of the current state under this env's goal and step limit."""
        player = self.world._player
        terminated = player.health <= 0 or (self.end_on_success and player.achievements[self.goal] > 0)
        return bool(terminated), bool(not terminated and self.world._step - self._hidden >= self.max_steps)

    def _success(self, achievements: dict[str, int]) -> bool:
        """The study: the goal is unlocked; balrog: the player is alive."""
        return self.world._player.health > 0 if self._balrog else achievements[self.goal] > 0

    def _scene_now(self, after_invalid: bool) -> str:
        """balrog: the current state's scene (``balrog.scene_text``), after an invalid answer or not."""
        scene = balrog.scene_text(self.world._world, self.world._player)
        return balrog.after_invalid(scene) if after_invalid else scene

    def _settle(self) -> Observation:
        """Bookkeeping after the state changed: version, done flag, observation text."""
        self._version += 1
        self._expert_cache = None
        self._done = any(self._ended())
        self._obs = Observation(self.instruction, self._text(), ACTIONS)
        return self._obs

    def _text(self) -> str:
        """The observation text: the study's state text, or balrog's prompt history."""
        world, player = self.world._world, self.world._player
        if not self._balrog:
            return describe(world, player)
        status = balrog.vitals_and_inventory(player)
        return balrog.history_text(balrog.window(self._turns), self._scene, status)

    def restore(self, seed: int, actions: list[str] | tuple[str, ...]) -> Observation:
        """Exact restore: the state after ``reset(seed)`` and ``actions``, replayed from the
        longest cached prefix (or from the current state when ``actions`` extends its prefix);
        under balrog, the last ``balrog.HISTORY - 1`` steps are replayed with their scenes, for the
        prompt history."""
        seed, code = int(seed), encode(actions)
        if len(code) >= self.max_steps:
            raise ValueError(self._early_end(seed, len(code)))
        if not self._balrog:
            return self._restore_code(seed, code)
        cut = max(0, len(code) - (balrog.HISTORY - 1))
        self._restore_code(seed, code[:cut])
        self._turns = [("", _name(code[cut - 1]))] if cut else []  # the window's opening action
        self._scene = self._scene_now(cut > 0 and code[cut - 1] == INVALID_CODE)
        for c in code[cut:]:
            self._turns.append((self._scene, _name(c)))
            self._advance(c)
            if any(self._ended()):
                self._settle()
                raise ValueError(self._early_end(seed, len(code)))
            self._scene = self._scene_now(c == INVALID_CODE)
        if len(code) > cut:
            self.snapshots.put(seed, code, self.world.dump())
        return self._settle()

    def _restore_code(self, seed: int, code: bytes) -> Observation:
        """The state after ``reset(seed)`` and the encoded actions ``code`` (``restore``)."""
        if len(code) >= self.max_steps:
            raise ValueError(self._early_end(seed, len(code)))
        current = self._seed == seed and self._obs is not None and code.startswith(self._prefix)
        start = len(self._prefix) if current else 0
        cached = self.snapshots.nearest(seed, code)
        if cached is not None and (not current or cached[0] > start):
            start = cached[0]
            self.world.load(cached[1])
            self._seed, self._prefix = seed, bytearray(code[:start])
        elif not current:
            self._reset_world(seed)
        every = self.snapshots.every
        for i in range(start, len(code) + 1):
            if any(self._ended()):  # at or before the end of the prefix: not a snapshot state
                self._settle()
                raise ValueError(self._early_end(seed, len(code)))
            if i == len(code):
                break
            self._advance(code[i])
            if (i + 1) % every == 0:
                self.snapshots.put(seed, code[: i + 1], self.world.dump())
        if len(code) > start:
            self.snapshots.put(seed, code, self.world.dump())
        return self._settle()

    def _early_end(self, seed: int, n: int) -> str:
        return (
            f"action prefix of length {n} ends the episode of {self.env_id} (goal {self.goal}, "
            f"protocol {self.protocol}, max_steps {self.max_steps}) seed {seed} early; it cannot be a snapshot"
        )

    @property
    def steps_taken(self) -> int:
        self._require_reset("steps_taken")
        return int(self.world._step) - self._hidden

    def episode_values(self) -> dict[str, Any]:
        """The achievements unlocked since reset (crafter's order) and progression = their
        share of the 22."""
        self._require_reset("episode_values()")
        counts = self.world._player.achievements
        unlocked = [a for a in ACHIEVEMENTS if counts[a] > 0]
        return {"achievements": unlocked, "progression": len(unlocked) / len(ACHIEVEMENTS)}

    def is_success(self, total_reward: float, info: dict[str, Any]) -> bool:
        """The goal achievement is unlocked within the episode (``info["achievements"]``, the
        counts since reset, of the episode's last step); under balrog, the player is alive at the
        episode's last step (``info["dead"]``). The reward plays no part."""
        key = "dead" if self._balrog else "achievements"
        if not isinstance(info, dict) or key not in info:
            raise ValueError(f"{self.env_id}: is_success ({self.protocol}) needs a step's info with {key!r}, "
                             f"got {info!r}")
        return not info["dead"] if self._balrog else info["achievements"][self.goal] > 0

    @staticmethod
    def parse_action(text: str, mode: ParseMode = "strict") -> str | None:
        """See ``actions.parse_action_text``: strict = the exact name; lenient = aliases too."""
        return parse_action_text(text, mode)

    def state_key(self) -> tuple:
        """The exact world state (``world.World.state_key``)."""
        self._require_reset("state_key()")
        return self.world.state_key()

    # -- expert and oracle teacher -----------------------------------------------------------

    def expert_action(self) -> str:
        """The privileged expert's action (``expert.expert_action``), a function of the state
        (cached for the current state only)."""
        self._require_reset("expert_action()")
        if self._done:
            raise RuntimeError(f"{self.env_id}: the episode is over; no expert action")
        if self._expert_cache is None or self._expert_cache[0] != self._version:
            action = expert_action(self.world, self.expert_goal)
            self._expert_cache = (self._version, action)
        return self._expert_cache[1]

    def diagnose(self, student_action: str | None) -> str:
        """The oracle's hint from the state and the student's action (``diagnosis.diagnose``);
        it never asks the expert."""
        self._require_reset("diagnose()")
        return diagnosis.diagnose(self.world, self.expert_goal, student_action)

    def expert_advice(self, student_action: str | None) -> Advice:
        try:
            expert = self.expert_action()
        except ExpertError as e:
            return Advice(
                None, "", "unknown", ok=False, failure_reason=str(e), meta={"teacher": "crafter_expert"}
            )
        return Advice(
            suggested_action=expert,
            diagnosis=self.diagnose(student_action),
            error_type=classify_error(student_action, expert),
            meta={"teacher": "crafter_expert", "step": self.steps_taken},
        )
