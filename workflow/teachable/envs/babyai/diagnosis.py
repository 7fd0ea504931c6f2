"""The oracle's diagnosis of a BabyAI state (the hint patch), from the world and the student's action.

Rules (SPEC, "teacher"; every diagnosis passes ``teachers.base.validate_advice``):
- Inputs are the level's world (grid, agent position and direction, carried object, instruction)
  and the student's action, nothing else: the expert bot, its plan and its action are not
  arguments here, so the diagnosis cannot follow from the expert's action.
- Two sentences, at most 400 characters, in words disjoint from the action vocabulary
  (``babyai.mentioned_actions``): egocentric directions are clock positions (12 o'clock = straight
  ahead, 3 o'clock = the agent's right-hand side, 6 o'clock = behind, 9 o'clock = the left-hand
  side), distances are cells, door states are "locked", "shut" and "passable", and no verb of
  acting (go, move, turn, pick, take, grab, drop, put down, release, open, unlock, toggle,
  advance) appears.
- Distances are free-path lengths (floor and doors of any state are free; walls and objects
  stop a path at their cell), or Manhattan distances "with no free path" when objects wall a
  target off. "The nearest" matching object is nearest by that distance, objects in the
  agent's view first.
- Places come from the agent's view only: an object out of view is "out of view", with no clock
  position or distance, and sentence 2 measures nothing to it (read from the whole grid, the
  clock position of an unseen target gave the expert's next turn away).
- Sentence 1, the mission (its part still to do, for composite instructions): where its object
  is (or that it is out of view), what the hands hold when that matters (an object the mission
  does not need, the object to place), a door's state and where its key is, both objects of a
  "put next to" mission.
- Sentence 2, the student's choice ("your choice" = the student's action) judged from the state:
  what it would change (nothing: a blocked cell, nothing to carry, full or empty hands, a wall or
  a locked door without its key), where the mission's object would be after it (distance after
  a step, clock position after a rotation), what would be held or left on the floor, what a door
  or box would become. Without a student action (``None``) it says what is in front of the agent.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from minigrid.core.constants import DIR_TO_VEC
from minigrid.core.world_object import WorldObj
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    AndInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)

Cell = tuple[int, int]
_NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1))


# ---------------------------------------------------------------------------------- words


def cells(n: int) -> str:
    return f"{n} cell{'s' if n != 1 else ''}"


def clock(right: int, ahead: int) -> int:
    """The clock position (1..12) of an offset: 12 = straight ahead, 3 = the right-hand side,
    6 = behind, 9 = the left-hand side; halves round away from 12 o'clock on both sides."""
    hours = math.degrees(math.atan2(right, ahead)) / 30
    return int(math.copysign(math.floor(abs(hours) + 0.5), hours)) % 12 or 12


def door_state(door: WorldObj) -> str:
    return "locked" if door.is_locked else ("passable" if door.is_open else "shut")


def thing(obj: WorldObj | None) -> str:
    """``the red ball``, ``the shut blue door``, ``a wall``, ``nothing``."""
    if obj is None:
        return "nothing"
    if obj.type == "wall":
        return "a wall"
    if obj.type == "door":
        return f"the {door_state(obj)} {obj.color} door"
    return f"the {obj.color} {obj.type}"


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _fills_front(obj: WorldObj | None) -> str:
    if obj is None:
        return "The cell in front of you is empty"
    return f"{_cap(thing(obj))} fills the cell in front of you"


# ------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Pose:
    pos: Cell
    dir: int  # MiniGrid's: 0 = +x, 1 = +y, 2 = -x, 3 = -y; +1 is a quarter clockwise

    @property
    def front(self) -> Cell:
        dx, dy = DIR_TO_VEC[self.dir]
        return self.pos[0] + int(dx), self.pos[1] + int(dy)

    def offset(self, cell: Cell) -> tuple[int, int]:
        """(cells to the right-hand side, cells ahead) of ``cell``."""
        fx, fy = (int(v) for v in DIR_TO_VEC[self.dir])
        dx, dy = cell[0] - self.pos[0], cell[1] - self.pos[1]
        return dx * (-fy) + dy * fx, dx * fx + dy * fy

    def rotated(self, quarters: int) -> Pose:
        return Pose(self.pos, (self.dir + quarters) % 4)


def path_lengths(grid: Any, start: Cell) -> dict[Cell, int]:
    """Free-path length from ``start`` to every cell a path reaches: floor and doors (any state)
    are free; a wall or an object gets a length but ends the path there."""
    dist = {start: 0}
    queue = deque([start])
    while queue:
        x, y = queue.popleft()
        for dx, dy in _NEIGHBOURS:
            nxt = (x + dx, y + dy)
            if nxt in dist or not (0 <= nxt[0] < grid.width and 0 <= nxt[1] < grid.height):
                continue
            dist[nxt] = dist[(x, y)] + 1
            cell = grid.get(*nxt)
            if cell is None or cell.type == "door":
                queue.append(nxt)
    return dist


def _manhattan(a: Cell, b: Cell) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def _cell(obj: WorldObj) -> Cell:
    return int(obj.cur_pos[0]), int(obj.cur_pos[1])


class World:
    """The level's state as the diagnosis reads it: pose, grid, carried object, distances."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.grid = env.grid
        self.pose = Pose((int(env.agent_pos[0]), int(env.agent_pos[1])), int(env.agent_dir))
        self.carrying: WorldObj | None = env.carrying
        self.front: WorldObj | None = self.grid.get(*self.pose.front)
        self._dist = path_lengths(self.grid, self.pose.pos)
        self._vis = None

    def on_floor(self, obj: WorldObj) -> bool:
        """Whether ``obj`` lies in the grid (a carried object's cur_pos is (-1, -1))."""
        if obj.cur_pos is None:
            return False
        i, j = _cell(obj)
        return 0 <= i < self.grid.width and 0 <= j < self.grid.height and self.grid.get(i, j) is obj

    def distance(self, cell: Cell, start: Cell | None = None) -> tuple[int, bool]:
        """(cells, whether a free path exists) from the agent (or ``start``) to ``cell``."""
        dist = self._dist if start is None else path_lengths(self.grid, start)
        if cell in dist:
            return dist[cell], True
        return _manhattan(cell, self.pose.pos if start is None else start), False

    def visible(self, cell: Cell) -> bool:
        coords = self.env.relative_coords(*cell)
        if coords is None:
            return False
        if self._vis is None:
            self._vis = self.env.gen_obs_grid()[1]
        return bool(self._vis[coords[0], coords[1]])

    def in_view(self, obj: WorldObj | None) -> bool:
        """Whether ``obj`` lies on the floor in a cell the agent sees."""
        return obj is not None and self.on_floor(obj) and self.visible(_cell(obj))

    def nearest(self, objs: list[WorldObj]) -> WorldObj | None:
        """The nearest of ``objs`` lying on the floor (in view first, then free path, then
        Manhattan)."""
        here = [o for o in objs if self.on_floor(o)]
        if not here:
            return None

        def key(o: WorldObj) -> tuple[int, int, int]:
            n, free = self.distance(_cell(o))
            return (0 if self.visible(_cell(o)) else 1, 0 if free else 1, n)

        return min(here, key=key)

    def place(self, obj: WorldObj, pose: Pose | None = None) -> str:
        """``at your 10 o'clock, 3 cells away``, ``in the cell in front of you``; ``out of view``
        (nothing more) for an object the agent does not see from where it stands."""
        pose = pose or self.pose
        cell = _cell(obj)
        if pose == self.pose and not self.visible(cell):
            return "out of view"
        right, ahead = pose.offset(cell)
        if (right, ahead) == (0, 1):
            where = "in the cell in front of you"
        elif (right, ahead) == (0, 0):
            where = "in the cell where you stand"
        else:
            n, free = self.distance(cell, None if pose.pos == self.pose.pos else pose.pos)
            where = f"at your {clock(right, ahead)} o'clock, {cells(n)} away"
            where += "" if free else " with no free path"
        return where


# -------------------------------------------------------------------------------- mission


def active_part(instr: Any) -> Any:
    """The part of a composite instruction (BabyAI's before / after / and) still to do."""
    if isinstance(instr, BeforeInstr):
        return active_part(instr.instr_b if instr.a_done == "success" else instr.instr_a)
    if isinstance(instr, AfterInstr):
        return active_part(instr.instr_a if instr.b_done == "success" else instr.instr_b)
    if isinstance(instr, AndInstr):
        return active_part(instr.instr_b if instr.a_done == "success" else instr.instr_a)
    return instr


@dataclass
class Mission:
    """What the mission (its active part) asks for, read from the instruction and the world."""

    sentence: str  # sentence 1
    focus: WorldObj | None = None  # the object sentence 2 measures distances and clock to
    roles: dict[int, str] | None = None  # id(object) -> relative clause on its use in hand
    movers: tuple[WorldObj, ...] = ()  # "put next to": the objects to place ...
    beside: tuple[WorldObj, ...] = ()  # ... beside these
    doors: tuple[WorldObj, ...] = ()  # "open": the doors to make passable
    objects: tuple[WorldObj, ...] = ()  # every object the instruction refers to

    def role(self, obj: WorldObj) -> str:
        if self.roles and id(obj) in self.roles:
            return self.roles[id(obj)]
        return "which the mission does not need"


def _desc_name(desc: ObjDesc) -> str:
    return " ".join(w for w in (desc.color, desc.type or "object") if w)


def _intro(desc: ObjDesc, obj: WorldObj) -> str:
    if len(desc.obj_set) > 1 and (desc.color is None or desc.type is None):
        return f"The nearest {_desc_name(desc)} the mission accepts, {thing(obj)},"
    return f"The mission's {obj.color} {obj.type}"


def _absent(w: World, desc: ObjDesc) -> str:
    if w.carrying is not None and any(o is w.carrying for o in desc.obj_set):
        return f"The mission's {_desc_name(desc)} is in your hands, not on the floor"
    return f"The mission's {_desc_name(desc)} no longer exists, so the mission cannot be completed"


def _hands_clause(w: World, mission_objs: list[WorldObj]) -> str:
    if w.carrying is None or any(o is w.carrying for o in mission_objs):
        return ""
    return f", while your hands hold {thing(w.carrying)}, which the mission does not need"


def _go_to(w: World, instr: GoToInstr) -> Mission:
    objs = list(instr.desc.obj_set)
    obj = w.nearest(objs)
    if obj is None:
        return Mission(_absent(w, instr.desc) + ".", objects=tuple(objs))
    roles = {id(o): "which the mission needs on the floor" for o in objs}
    return Mission(f"{_intro(instr.desc, obj)} is {w.place(obj)}.", obj, roles, objects=tuple(objs))


def _pick_up(w: World, instr: PickupInstr) -> Mission:
    objs = list(instr.desc.obj_set)
    roles = {id(o): "the object the mission asks for" for o in objs}
    obj = w.nearest(objs)
    if obj is None:
        return Mission(_absent(w, instr.desc) + ".", roles=roles, objects=tuple(objs))
    text = f"{_intro(instr.desc, obj)} is {w.place(obj)}{_hands_clause(w, objs)}."
    return Mission(text, obj, roles, objects=tuple(objs))


def _put_next(w: World, instr: PutNextInstr) -> Mission:
    movers, fixed = list(instr.desc_move.obj_set), list(instr.desc_fixed.obj_set)
    held = next((o for o in movers if o is w.carrying), None)
    mover = held if held is not None else w.nearest(movers)
    anchors = [o for o in fixed if o is not mover and w.on_floor(o)]
    anchor = w.nearest(anchors)
    objs = movers + fixed
    if anchor is None:
        return Mission(_absent(w, instr.desc_fixed) + ".", objects=tuple(objs))
    where = f"{thing(anchor)} {w.place(anchor)}"
    roles = {id(o): "which the mission needs on the floor" for o in fixed}
    roles.update({id(o): f"which the mission wants beside {thing(anchor)}" for o in movers})
    if held is not None:
        text = f"Your hands hold the mission's {held.color} {held.type}, which has to end up beside {where}."
        return Mission(text, anchor, roles, tuple(movers), tuple(anchors), objects=tuple(objs))
    if mover is None:
        return Mission(_absent(w, instr.desc_move) + ".", roles=roles, objects=tuple(objs))
    text = (
        f"{_intro(instr.desc_move, mover)} is {w.place(mover)}; it has to end up beside "
        f"{where}{_hands_clause(w, objs)}."
    )
    return Mission(text, mover, roles, tuple(movers), tuple(anchors), objects=tuple(objs))


def _fitting_keys(w: World, door: WorldObj) -> list[WorldObj]:
    return [o for o in w.grid.grid if o is not None and o.type == "key" and o.color == door.color]


def _open_door(w: World, instr: OpenInstr) -> Mission:
    doors = list(instr.desc.obj_set)
    door = w.nearest(doors)
    if door is None:
        return Mission(_absent(w, instr.desc) + ".", objects=tuple(doors))
    text = f"The mission's {door.color} door is {door_state(door)}, {w.place(door)}"
    held, focus = w.carrying, door
    floor_keys = _fitting_keys(w, door)
    holds_key = held is not None and held.type == "key" and held.color == door.color
    fitting = floor_keys + ([held] if holds_key else [])
    roles = {id(k): f"which fits the locked {door.color} door" for k in fitting} if door.is_locked else {}
    if door.is_locked and holds_key:
        text += f", and the {held.color} key in your hands fits it"
    elif door.is_locked:
        key = w.nearest(floor_keys)
        if key is not None:
            text += f"; the {door.color} key that fits it is {w.place(key)}"
            focus = key
        else:
            text += f"; no {door.color} key lies on the floor"
        if held is not None:
            text += f", and your hands hold {thing(held)}, which does not fit it"
    return Mission(text + ".", focus, roles, doors=tuple(doors), objects=tuple(doors))


_MISSIONS = {GoToInstr: _go_to, PickupInstr: _pick_up, PutNextInstr: _put_next, OpenInstr: _open_door}


def read_mission(w: World, instr: Any) -> Mission:
    part = active_part(instr)
    handler = _MISSIONS.get(type(part))
    if handler is None:
        raise NotImplementedError(
            f"no diagnosis for the BabyAI instruction {type(part).__name__}; known: "
            f"{sorted(t.__name__ for t in _MISSIONS)}"
        )
    return handler(w, part)


# ---------------------------------------------------------------------- the student's choice


def _change(before: int, after: int) -> str:
    if after < before:
        return f"{cells(before - after)} nearer than now"
    if after > before:
        return f"{cells(after - before)} farther than now"
    return "no nearer than now"


def _step_ahead(w: World, m: Mission, action: str) -> str:
    front = w.front
    if front is not None and not front.can_overlap():
        return f"{_fills_front(front)}, so your choice would leave you in place."
    after = Pose(w.pose.front, w.pose.dir)
    target = m.focus if w.in_view(m.focus) else None
    if target is None:
        return "The cell in front of you is free, and after your choice you would stand in it."
    if _cell(target) == after.pos:
        return f"After your choice you would stand in the doorway of {thing(target)}."
    before, _ = w.distance(_cell(target))
    now, _ = w.distance(_cell(target), after.pos)
    return f"After your choice {thing(target)} would be {w.place(target, after)}, {_change(before, now)}."


def _rotation(w: World, m: Mission, action: str) -> str:
    after = w.pose.rotated(-1 if action == "turn left" else 1)
    ahead = w.grid.get(*after.front)
    front_txt = "the cell in front of you empty"
    if ahead is not None:
        front_txt = f"{thing(ahead)} in the cell in front of you"
    if not w.in_view(m.focus) or _cell(m.focus) == after.front:
        return f"After your choice you would have {front_txt}."
    right, fwd = after.offset(_cell(m.focus))
    return (
        f"After your choice {thing(m.focus)} would be at your {clock(right, fwd)} o'clock, with {front_txt}."
    )


def _lifting(w: World, m: Mission, action: str) -> str:
    if w.carrying is not None:
        return f"Your hands already hold {thing(w.carrying)}, so your choice would change nothing."
    if w.front is None or not w.front.can_pickup():
        return f"{_fills_front(w.front)}, so your choice would change nothing."
    return f"After your choice you would hold {thing(w.front)}, {m.role(w.front)}."


def _beside(cell: Cell, anchors: tuple[WorldObj, ...]) -> str:
    """Where ``cell`` is relative to the nearest of ``anchors`` (beside = one cell apart, no diagonal)."""
    anchor = min(anchors, key=lambda a: _manhattan(cell, _cell(a)))
    n = _manhattan(cell, _cell(anchor))
    if n == 1:
        return f", beside {thing(anchor)} as the mission asks"
    return f", {cells(n)} from {thing(anchor)}, not beside it"


def _setting_down(w: World, m: Mission, action: str) -> str:
    held = w.carrying
    if held is None:
        return "Your hands are empty, so your choice would change nothing."
    if w.front is not None:
        return f"{_fills_front(w.front)}, so your choice would change nothing."
    text = f"After your choice {thing(held)}, {m.role(held)}, would lie in the cell in front of you"
    if any(o is held for o in m.movers):
        return text + _beside(w.pose.front, m.beside) + "."
    if m.roles is None or id(held) not in m.roles:
        return text + " and your hands would be free."
    return text + "."


def _activation(w: World, m: Mission, action: str) -> str:
    front = w.front
    if front is None or front.type not in ("door", "box"):
        return f"{_fills_front(front)}, so your choice would change nothing."
    if front.type == "box":
        inside = front.contains
        text = f"After your choice {thing(front)} in front of you would vanish, leaving "
        text += "its cell empty" if inside is None else f"{thing(inside)} in its cell"
        return text + (", though the mission needs that box." if any(o is front for o in m.objects) else ".")
    held = w.carrying
    if front.is_locked and not (held is not None and held.type == "key" and held.color == front.color):
        return (
            f"The locked {front.color} door fills the cell in front of you and your hands hold "
            f"no {front.color} key, so your choice would change nothing."
        )
    becomes = "shut" if front.is_open else "passable"
    goal = any(d is front for d in m.doors) and becomes == "passable"
    return (
        f"After your choice {thing(front)} in front of you would be {becomes}"
        f"{', as the mission asks' if goal else ''}."
    )


# keyed by the action names of babyai.ACTIONS (that module imports this one)
_CHOICES = {
    "turn left": _rotation,
    "turn right": _rotation,
    "go forward": _step_ahead,
    "pick up": _lifting,
    "drop": _setting_down,
    "toggle": _activation,
}


def front_sentence(w: World) -> str:
    if w.front is None:
        return "The cell in front of you is empty."
    return f"{_fills_front(w.front)}."


def choice_sentence(w: World, m: Mission, student_action: str | None) -> str:
    if student_action is None:
        return front_sentence(w)
    judge = _CHOICES.get(student_action)
    if judge is None:
        return "Your choice is none of the valid ones, so it would change nothing and only cost time."
    return judge(w, m, student_action)


def diagnosis(env: Any, student_action: str | None) -> str:
    """Sentence 1 (the mission, from the state) and sentence 2 (the student's action judged from
    the state) for a BabyAI level's unwrapped MiniGrid env; see the module docstring."""
    w = World(env)
    mission = read_mission(w, env.instrs)
    return f"{mission.sentence} {choice_sentence(w, mission, student_action)}"
