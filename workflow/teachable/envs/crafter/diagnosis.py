"""The oracle's diagnosis of a Crafter state (the hint patch), from the world and the student's action.

Rules (SPEC, "teacher"; every diagnosis passes ``teachers.base.validate_advice``):
- Inputs are the world, the goal and the student's action, nothing else: the expert and its
  action are not arguments, so the diagnosis cannot follow from the expert's action.
- Places come from the student's view only (``text.view_offsets``: the 9 x 7 cells its
  observation lists): a target is the nearest of its kind in view, in the observation's order,
  and a kind with none in view is "not in view", with no direction or distance. Read from the
  whole map, the direction to the nearest tree gave the expert's next step away (the Crafter
  pilot: the diagnosis predicted the action at 0.899, the majority 0.266).
- Two sentences, at most 400 characters, in words disjoint from the action vocabulary
  (``actions.mentioned_actions``): no verb of acting ("do", "use", "hit", "collect", "mine",
  "place", "put", "make", "craft", "move", "go", "head", "sleep", "rest", "wait", ...) and no
  achievement name (they start with such verbs). Directions are compass words after a distance
  ("4 cells to the north-east"), distances are Manhattan cells, both of cells in view.
- Sentence 1, the situation: a hostile right next to the player, else a vital statistic at 3 or
  less (drink: the nearest water in view; food: the nearest ripe plant or cow in view; energy;
  health: the nearest hostile in view), else the goal's first unmet need in crafter's tech tree
  (a tool and what it costs, a table / furnace within one cell, a material and where it is, a
  creature and its health, a plant's growth and open sides). Asleep: the energy still to recover.
- Sentence 2, the student's choice judged from the state: what it would change (a cell entered
  and the distance to sentence 1's target after it, a cell that blocks, lava, damage dealt and
  health left, an item gained or nothing for lack of a tool, a station out of reach, materials
  short, energy already full). ``None``: what the player faces.
"""

from __future__ import annotations

from typing import Any

from .actions import ACTION_INDEX, MAKES, MOVES, PLACES
from .navigation import DIRS
from .rules import CHANCE, GOAL_WORDS, ITEM_MAX, MAKE, PLACE, REQUIRES, SOURCE, SWORD_DAMAGE, item_achievement
from .scene import HOSTILE, RIPE_AFTER, Scene, cell, manhattan
from .text import compass, thing_at, view_offsets
from .world import World

# the goal as a state of the world, in words free of the action vocabulary
GOAL_STATE = {
    "collect_coal": "coal in your inventory",
    "collect_diamond": "a diamond in your inventory",
    "collect_drink": "thirst quenched at a water cell",
    "collect_iron": "iron in your inventory",
    "collect_sapling": "a sapling in your inventory",
    "collect_stone": "stone in your inventory",
    "collect_wood": "wood in your inventory",
    "defeat_skeleton": "a skeleton brought to 0 health",
    "defeat_zombie": "a zombie brought to 0 health",
    "eat_cow": "a cow eaten",
    "eat_plant": "a ripe plant eaten",
    "make_iron_pickaxe": "an iron pickaxe in your inventory",
    "make_iron_sword": "an iron sword in your inventory",
    "make_stone_pickaxe": "a stone pickaxe in your inventory",
    "make_stone_sword": "a stone sword in your inventory",
    "make_wood_pickaxe": "a wood pickaxe in your inventory",
    "make_wood_sword": "a wood sword in your inventory",
    "place_furnace": "a furnace of your own on the map",
    "place_plant": "a sapling of yours in the ground",
    "place_stone": "a stone block of yours on the map",
    "place_table": "a table of your own on the map",
    "wake_up": "waking once your energy is back to full",
}
assert set(GOAL_STATE) == set(GOAL_WORDS)
PLACED = {"stone": "stone block", "table": "table", "furnace": "furnace", "plant": "sapling in the ground"}
SENTENCE_1_MAX = 230  # characters, so that both sentences fit the teacher rules' 400
LOW = 3  # a vital statistic at or below this leads sentence 1


def a(noun: str) -> str:
    """``noun`` with its indefinite article."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def cells(n: int) -> str:
    return f"{n} cell{'s' if n != 1 else ''}"


def name(item: str) -> str:
    return item.replace("_", " ")


def where(s: Scene, cell: tuple[int, int]) -> str:
    """``4 cells to the north-east`` from the player; ``right in front of you``."""
    if cell == s.front:
        return "right in front of you"
    dx, dy = cell[0] - s.pos[0], cell[1] - s.pos[1]
    return f"{cells(abs(dx) + abs(dy))} to the {compass(dx, dy)}"


def nearest_in_view(s: Scene, mask: Any) -> tuple[int, int] | None:
    """The cell of ``mask`` that the student's observation lists first (nearest in view; ties
    north .. south, then west .. east); ``None`` when none is in view."""
    x, y = s.pos
    return next(((x + dx, y + dy) for dx, dy in view_offsets(x, y, s.shape) if mask[x + dx, y + dy]), None)


def object_in_view(s: Scene, objs: list[Any]) -> Any:
    """The object of ``objs`` that the observation lists first (``nearest_in_view``), or ``None``."""
    here = nearest_in_view(s, s.mask_of(objs))
    return None if here is None else s.object_at(here)


def within_one_cell(s: Scene) -> tuple[str, ...]:
    """The materials crafter's making rule sees around the player (``World.nearby(pos, 1)``)."""
    return s.world.nearby(s.pos, 1)[0]


def damage(s: Scene) -> int:
    return max([1] + [d for tool, d in SWORD_DAMAGE if s.inv[tool] > 0])


class Situation:
    """Sentence 1 and the cell it is about (sentence 2 measures distances to it)."""

    def __init__(self, s: Scene, goal: str):
        self.s, self.goal = s, goal
        self.focus: tuple[int, int] | None = None  # the cell sentence 1 is about ...
        self.label = ""  # ... and its name ("the water")
        self.sentence = self._read()

    def _cell_of(self, material: str) -> tuple[int, int] | None:
        target = self.s.is_(material)
        if material == "grass":
            target &= self.s.objmap == 0
        return nearest_in_view(self.s, target)

    def _creature(self, kind: str) -> tuple[int, int] | None:
        obj = object_in_view(self.s, self.s.creatures[kind])
        return None if obj is None else cell(obj)

    def _locate(self, what: str, cell: tuple[int, int] | None) -> str:
        self.focus, self.label = cell, f"the {what}"
        return f"the nearest {what} is {where(self.s, cell)}" if cell else f"no {what} is in view"

    def _read(self) -> str:
        s, inv = self.s, self.s.inv
        if s.player.sleeping:
            return f"You are asleep with energy {inv['energy']} of 9, and no choice counts until it is full."
        for d in range(4):
            obj = s.object_at(s.ahead(s.pos, d))
            kind = type(obj).__name__.lower()
            if kind in HOSTILE:
                self.focus, self.label = cell(obj), f"the {kind}"
                where_ = f"1 cell to the {compass(*DIRS[d])}"
                return f"{a(kind).capitalize()} with {obj.health} health is right beside you, {where_}."
        vitals = sorted((inv[v], v) for v in ("drink", "food", "energy", "health") if inv[v] <= LOW)
        if vitals:
            return self._vital(*vitals[0])
        if s.ach[self.goal] > 0:
            return f"Your goal ({GOAL_STATE[self.goal]}) is reached; your health is {inv['health']} of 9."
        head = f"Your goal is {GOAL_STATE[self.goal]}: "
        chain = self._need(self.goal)
        while len(chain) > 1 and len(head) + len("; ".join(chain)) > SENTENCE_1_MAX:
            chain = chain[1:]  # too long: keep the deepest needs
        return head + "; ".join(chain) + "."

    def _vital(self, value: int, vital: str) -> str:
        s = self.s
        if vital == "drink":
            return f"Your drink is {value} of 9 and {self._locate('water', self._cell_of('water'))}."
        if vital == "food":
            ripe = object_in_view(self.s, [p for p in s.creatures["plant"] if p.ripe])
            if ripe is not None:
                return f"Your food is {value} of 9 and {self._locate('ripe plant', cell(ripe))}."
            return f"Your food is {value} of 9 and {self._locate('cow', self._creature('cow'))}."
        if vital == "energy":
            return f"Your energy is {value} of 9; at 0 your health drains, and daylight is {s.daylight:.0%}."
        hostile = object_in_view(self.s, s.hostiles())
        if hostile is None:
            return f"Your health is {value} of 9 and no zombie or skeleton is in view."
        return (
            f"Your health is {value} of 9 and {self._locate(type(hostile).__name__.lower(), cell(hostile))}."
        )

    def _need(self, achievement: str) -> list[str]:
        """The chain of unmet needs of ``achievement`` in the tech tree, outermost first, down to
        the first one the player can meet where it stands (a material and where it is, ...)."""
        s, inv = self.s, self.s.inv
        kind, _, what = achievement.partition("_")
        if kind == "collect":
            material = SOURCE[what]
            for tool, n in REQUIRES[material].items():
                if inv[tool] < n:
                    return [
                        f"{name(material)} yields only to {a(name(tool))}, which you lack",
                        *self._need("make_" + tool),
                    ]
            return [
                self._locate("free grass" if material == "grass" else name(material), self._cell_of(material))
            ]
        if kind == "make":
            return self._costs(name(what), MAKE[what]["uses"], MAKE[what]["nearby"])
        if kind == "place":
            return self._costs(PLACED[what], PLACE[what]["uses"], ())
        if achievement == "eat_plant":
            return [self._plant()]
        if achievement == "wake_up":
            return [f"your energy is {inv['energy']} of 9 and falls by one about every 30 turns awake"]
        creature = {"eat_cow": "cow", "defeat_zombie": "zombie", "defeat_skeleton": "skeleton"}[achievement]
        return [f"{self._locate(creature, self._creature(creature))}, and your blows deal {damage(s)} damage"]

    def _costs(self, thing: str, uses: dict[str, int], stations: tuple[str, ...] | list[str]) -> list[str]:
        """What ``thing`` costs and the stations it needs within one cell: the first short
        material (and where it comes from), else the first station out of reach."""
        inv = self.s.inv
        cost = " and ".join(f"{n} {name(i)}" for i, n in uses.items())
        short = [i for i, n in uses.items() if inv[i] < n]
        if short:
            item = short[0]
            return [
                f"{a(thing)} costs {cost} and you hold {inv[item]} {name(item)}",
                *self._need(item_achievement(item)),
            ]
        for station in stations:
            if station not in within_one_cell(self.s):
                needs = f"{a(thing)} needs {a(station)} within one cell"
                nearest = self._cell_of(station)
                if nearest is not None:
                    return [f"{needs}, and {self._locate(station, nearest)}"]
                return [f"{needs} and none is in view", *self._need("place_" + station)]
        return [
            f"{a(thing)} costs {cost}, all of which you hold"
            + (" with the stations beside you" if stations else "")
        ]

    def _plant(self) -> str:
        s = self.s
        plant = object_in_view(self.s, s.creatures["plant"])
        if plant is None:
            return f"no plant grows in view and you hold {s.inv['sapling']} sapling"
        here = cell(plant)
        self.focus, self.label = here, "the plant"
        sides = sum(1 for d in range(4) if s.inside(s.ahead(here, d)) and s.free[s.ahead(here, d)])
        state = "ripe" if plant.ripe else f"{plant.grown} of {RIPE_AFTER} turns grown"
        open_sides = f"{sides} open side{'s' if sides != 1 else ''}"
        return f"your nearest plant is {where(s, here)}, {state}, with {open_sides}"


# ---------------------------------------------------------------------- the student's choice

NO_CHANGE = "so your choice would change nothing"


def _move(s: Scene, situation: Situation, d: int) -> str:
    target, side = s.ahead(s.pos, d), f"the cell to the {compass(*DIRS[d])}"
    if not s.inside(target):
        return f"The map ends to the {compass(*DIRS[d])}, {NO_CHANGE}."
    if s.material(target) == "lava":
        return f"{side.capitalize()} is lava, and entering it is fatal."
    if not s.free[target]:
        blocker = thing_at(s.world, *target)
        return f"{side.capitalize()} holds {blocker}, so your choice would only turn your front toward it."
    text = f"Your choice would bring you onto the {s.material(target)} of {side}"
    focus = situation.focus
    if focus is None or focus == target:
        return text + "."
    before, after = manhattan(s.pos, focus), manhattan(target, focus)
    change = "nearer" if after < before else "farther" if after > before else "no nearer"
    return text + f", {cells(after)} from {situation.label} ({change} than now)."


def _act_on_object(s: Scene, obj: Any) -> str:
    kind = type(obj).__name__.lower()
    if kind == "plant":
        if obj.ripe:
            return "The plant in front of you is ripe, and your choice would add 4 food."
        return f"The plant in front of you is {obj.grown} of {RIPE_AFTER} turns grown, {NO_CHANGE}."
    if kind not in ("cow", *HOSTILE):
        return f"The {kind} in front of you takes no blows, {NO_CHANGE}."
    left = max(int(obj.health) - damage(s), 0)
    return (
        f"Your choice would deal {damage(s)} damage to the {kind} in front of you, leaving it {left} health."
    )


def _act(s: Scene) -> str:
    obj = s.object_at(s.front)
    if obj is not None:
        return _act_on_object(s, obj)
    material = s.material(s.front)
    if material is None:
        return f"The map ends in front of you, {NO_CHANGE}."
    if material == "water":
        return (
            f"Your choice would raise your drink from {s.inv['drink']} toward 9 at the water in front of you."
        )
    if material not in SOURCE.values():
        return f"In front of you is {material}, which yields nothing, {NO_CHANGE}."
    lacking = [t for t, n in REQUIRES[material].items() if s.inv[t] < n]
    if lacking:
        return f"The {material} in front of you yields only to {a(name(lacking[0]))}, {NO_CHANGE}."
    item = next(i for i, m in SOURCE.items() if m == material)
    chance = "" if CHANCE[material] >= 1 else f" with a {CHANCE[material]:.0%} chance"
    gain = f"1 {name(item)}{chance} from the {material} in front of you"
    return f"Your choice would add {gain} (you hold {s.inv[item]})."


def _put(s: Scene, what: str) -> str:
    spec = PLACE[what]
    thing = PLACED[what]
    short = [(i, n) for i, n in spec["uses"].items() if s.inv[i] < n]
    if short:
        i, n = short[0]
        return f"{a(thing).capitalize()} costs {n} {name(i)} and you hold {s.inv[i]}, {NO_CHANGE}."
    material = s.material(s.front)
    if s.object_at(s.front) is not None or material not in spec["where"]:
        return f"No {thing} fits on the {thing_at(s.world, *s.front)} in front of you, {NO_CHANGE}."
    cost = " and ".join(f"{n} of your {s.inv[i]} {name(i)}" for i, n in spec["uses"].items())
    return f"Your choice would turn the {material} in front of you into {a(thing)}, costing {cost}."


def _craft(s: Scene, tool: str) -> str:
    spec = MAKE[tool]
    thing = a(name(tool)).capitalize()
    for station in spec["nearby"]:
        if station not in within_one_cell(s):
            return f"{thing} needs {a(station)} within one cell and none is, {NO_CHANGE}."
    short = [(i, n) for i, n in spec["uses"].items() if s.inv[i] < n]
    if short:
        i, n = short[0]
        return f"{thing} costs {n} {name(i)} and you hold {s.inv[i]}, {NO_CHANGE}."
    cost = " and ".join(f"{n} {name(i)}" for i, n in spec["uses"].items())
    return f"Your choice would turn {cost} into {a(name(tool))} (you hold {s.inv[tool]})."


def _rest(s: Scene) -> str:
    if s.inv["energy"] >= ITEM_MAX["energy"]:
        return f"Your energy is already full, {NO_CHANGE}."
    walls = "walls close you in" if s.enclosed else "nothing walls you in"
    hostile = object_in_view(s, s.hostiles())
    if hostile is not None:
        walls += f", the nearest {type(hostile).__name__.lower()} being {where(s, cell(hostile))}"
    return f"Your choice would leave you unconscious until your energy is full, while {walls}."


def choice_sentence(s: Scene, situation: Situation, student_action: str | None) -> str:
    if student_action is None:
        return f"In front of you is {thing_at(s.world, *s.front)}."
    if student_action not in ACTION_INDEX:
        return "Your answer is none of the valid actions, so the turn would be lost while the world goes on."
    if s.player.sleeping:
        return "Any choice is ignored until you wake."
    if student_action in MOVES:
        return _move(s, situation, MOVES.index(student_action))
    if student_action == "Do":
        return _act(s)
    if student_action == "Sleep":
        return _rest(s)
    if student_action in PLACES:
        return _put(s, student_action.split()[1].lower())
    if student_action in MAKES:
        return _craft(s, "_".join(student_action.split()[1:]).lower())
    return "Your choice would leave you as you are this turn, while food, drink and energy keep falling."


def diagnose(world: World, goal: str, student_action: str | None) -> str:
    """Sentence 1 (the situation, from the state) and sentence 2 (the student's action judged
    from the state) for a crafter world; see the module docstring."""
    s = Scene(world)
    situation = Situation(s, goal)
    return f"{situation.sentence} {choice_sentence(s, situation, student_action)}"
