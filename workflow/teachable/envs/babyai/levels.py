"""The family's own BabyAI level, registered with gymnasium beside minigrid's:
``BabyAI-MixedLocal-v0``, the level BALROG evaluates BabyAI on.

BALROG plays BabyAI-Text's ``MixedTrainLocal`` (its minigrid fork) with ``num_dists=0`` and scores
five tasks, one per mission kind, with as many episodes each. The facts kept here:

- the kinds (``KINDS``, BALROG's task names): ``goto`` (go to an object), ``pickup`` (pick up an
  object), ``open`` (open the door of a locked room), ``putnext`` (put an object next to another)
  and ``pick_up_seq_go_to`` (pick up A, then go to B; written ``pick up A, then go to B`` or ``go
  to B after you pick up A``, each half the time);
- one 8x8 room holding the mission's objects only (one for ``goto`` / ``pickup``, two for the
  others; keys, balls or boxes of any colour, duplicates allowed), every object reachable; for
  ``open``, two rooms joined by a locked door (yellow, green, blue or purple) with its key in the
  agent's room, the mission naming the door by colour or not, each half the time;
- missions with a held-out pair of MixedTrainLocal (``EXCLUDED``) are redrawn;
- the step limit is BabyAI's: 64 steps per navigation per room (``num_navs_needed``).

The kind is a function of the seed, ``KINDS[seed % 5]`` (``mission_kind_of``), so consecutive seeds
give the five kinds in equal numbers, as BALROG's equal episodes per task do; everything else is
drawn from the seeded generator. A reset without a seed draws the kind from the generator.
Instructions, verification and the step limit are minigrid's (``LevelGen``, ``verifier``).
"""

from __future__ import annotations

from minigrid.envs.babyai.core.levelgen import LevelGen
from minigrid.envs.babyai.core.roomgrid_level import RejectSampling
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)

from .missions import BALROG_KINDS as KINDS  # BALROG's task names, in its order

MIXED_LOCAL_ID = "BabyAI-MixedLocal-v0"
EXCLUDED = ("yellow box", "red key", "red door", "green ball", "grey door")  # MixedTrainLocal's held-out pairs
DOOR_COLORS = ("yellow", "green", "blue", "purple")  # the locked door of ``open`` (red and grey held out)
OBJECTS = {"goto": 1, "pickup": 1, "putnext": 2, "pick_up_seq_go_to": 2}  # a one-room kind -> objects it places


def mission_kind_of(seed: int) -> str:
    """The mission kind of ``BabyAI-MixedLocal-v0`` at ``seed`` (module docstring)."""
    return KINDS[int(seed) % len(KINDS)]


class MixedLocal(LevelGen):
    """BALROG's mixed local level (module docstring); ``kind`` is the current episode's."""

    def __init__(self, room_size: int = 8, num_dists: int = 0, **kwargs):
        self.kind: str | None = None
        self._seeded_kind: str | None = None
        super().__init__(room_size=room_size, num_rows=1, num_cols=1, num_dists=num_dists, locked_room_prob=0.0,
                         locations=False, unblocking=False, implicit_unlock=False, action_kinds=KINDS,
                         instr_kinds=("action", "seq"), **kwargs)  # fmt: skip

    def reset(self, *, seed: int | None = None, options=None):
        self._seeded_kind = None if seed is None else mission_kind_of(seed)
        return super().reset(seed=seed, options=options)

    def _gen_grid(self, width: int, height: int) -> None:
        # the kind fixes the layout (``open``: two rooms side by side), so it is set before the grid
        self.kind = self._seeded_kind or self._rand_elem(KINDS)
        self.num_cols = 2 if self.kind == "open" else 1
        self.width = (self.room_size - 1) * self.num_cols + 1
        super()._gen_grid(self.width, height)

    def gen_mission(self) -> None:
        # a RejectSampling makes ``RoomGridLevel._gen_grid`` build a fresh grid and call again
        self.locked_room = None
        if self.kind == "open":
            self.instrs = self._open_mission()
        else:
            self.place_agent()
            objs = self.add_distractors(num_distractors=self.num_dists + OBJECTS[self.kind], all_unique=False)
            self.check_objs_reachable()
            a = self._rand_elem(objs)
            if self.kind == "goto":
                self.instrs = GoToInstr(ObjDesc(a.type, a.color))
            elif self.kind == "pickup":
                self.instrs = PickupInstr(ObjDesc(a.type, a.color))
            else:
                b = self._other(a, objs)
                if self.kind == "putnext":
                    self.instrs = PutNextInstr(ObjDesc(a.type, a.color), ObjDesc(b.type, b.color))
                else:
                    first, then = PickupInstr(ObjDesc(a.type, a.color)), GoToInstr(ObjDesc(b.type, b.color))
                    self.instrs = BeforeInstr(first, then) if self._rand_bool() else AfterInstr(then, first)
        surface = self.instrs.surface(self)
        held_out = [s for s in EXCLUDED if s in surface]
        if held_out:
            raise RejectSampling(f"mission {surface!r} names held-out {held_out}")

    def _other(self, a, objs):
        """A second object; one with ``a``'s description only where another object shares it."""
        b = self._rand_elem(objs)
        if (b.type, b.color) == (a.type, a.color) and sum((o.type, o.color) == (a.type, a.color) for o in objs) < 2:
            while (b.type, b.color) == (a.type, a.color):
                b = self._rand_elem(objs)
        return b

    def _open_mission(self) -> OpenInstr:
        """Two rooms, one locked behind a door of ``DOOR_COLORS`` whose key lies in the other,
        where the agent starts among the distractors; open that door."""
        color = self._rand_elem(DOOR_COLORS)
        locked = self._rand_int(0, 2)  # the locked room's column
        door, _ = self.add_door(locked, 0, 2 if locked else 0, color=color, locked=True)
        self.locked_room = self.get_room(locked, 0)
        free = 1 - locked
        self.add_object(free, 0, "key", color)
        self.add_distractors(free, 0, num_distractors=self.num_dists, all_unique=False)
        self.place_agent(free, 0)
        self.check_objs_reachable()
        return OpenInstr(ObjDesc("door", self._rand_elem([None, color])))


def register() -> None:
    """Register ``MIXED_LOCAL_ID`` with gymnasium (once per process)."""
    import gymnasium as gym

    if MIXED_LOCAL_ID not in gym.envs.registry:
        gym.register(id=MIXED_LOCAL_ID, entry_point=f"{__name__}:MixedLocal")


register()
