"""The privileged Crafter expert: a rule planner with full access to the world (not only the view).

``expert_action(world, goal)`` is a function of the state: it reads the world, keeps no memory
between calls and draws no random numbers, so a restored state gets the same action. Each call
walks one ordered list of rules and returns the first action a rule gives:

1. asleep: any action is ignored while asleep -> "Noop".
2. fight: a zombie or skeleton in a 4-neighbour cell -> face it and hit it (fleeing an adjacent
   zombie rarely works: it follows at the player's speed).
3. dodge: an arrow flying at the player within 4 cells -> step aside (a free cell with no zombie
   next to it), else, facing it, place a stone in its way.
4. keep drinking: facing water with drink < 9 -> drink to the full (hysteresis for rule 5).
5. needs: drink <= 4 -> nearest water; food <= 4 -> a ripe plant or the nearest cow (any cow on
   the map at food <= 1); energy <= 2 -> sleep in a shelter (most urgent first). In the dark
   (daylight < 0.5, when crafter keeps 2-3 zombies a grass chunk, or rising below 0.85, before
   its despawning clears the night's zombies) drink and food wait until 0 and health <= 6: a
   wait costs a health point in 16 steps, a zombie's strike 2. By day (not from a shelter at
   health <= 6) food <= 5 -> a cow within 12 steps. From daylight 0.95, fading, drink <= 7 or
   food <= 6 -> fill up before the night (water, a ripe plant or a cow within 30 steps). At
   dusk (daylight < 0.8, fading), at night or at health <= 6 -> hide in a shelter, asleep when
   energy is not full; a player inside a shelter stays while health < 8, in the dark or while a
   zombie is within 4 cells (by day it leaves at drink or food 0).
6. arm: standing by a table with no sword and wood beyond the plan's budget -> a wood sword (a
   zombie then falls before its second strike).
7. stock up: when a tree / stone / coal / iron the remaining plan needs is within 6 steps and the
   inventory is below the plan's budget (``budget``), take it (saves return trips).
8. the goal, through the tech tree (``achieve``): collect with the right pickaxe, place, make next
   to a table (and furnace), hunt cows / zombies / skeletons, plant and guard a sapling, sleep.
   Tools, materials and stations it lacks are obtained first, recursively; a table or furnace is
   placed anew when none is within 25 steps of route.
9. after the goal (only when the episode goes on, ``end_on_success=False``): the same for every
   achievement still locked, in ``CURRICULUM`` order; then, by day, fill up (water, a ripe plant
   or a cow within 40 steps) and rest in a shelter (or nap, or "Noop").

Movement: a shortest route over (cell, facing) states (``navigation.search``) through free cells
(+4 per cell next to a zombie unless hunting zombies, and per cell an arrow may cross soon:
``Scene.line_of_fire``), clearing minable cells on the way (cost 3:
trees, and stone / coal / iron / diamond the player's pickaxe can take), never into lava.

Shelter (to sleep, to hide): two cells P, F = P + d walled on five sides, entered from
B = P - d; the route clears P and F, steps into F, back into P (now facing B) and places a stone
on B. Chosen by route cost, one choice (a cascade of limits, or a straight-line distance, flips
between targets on either side of the player, and the player walks back and forth until a zombie
comes): the nearest within 40 steps of route, one by water counting 8 steps nearer (drinking
from inside saves a trip out at night), or the nearest pocket walled in on open ground with the
stones held (``build_shelter``, walking only, so that no route mines the stones just placed),
counting 15 steps more plus its route and 3 per stone. Walls are
cells no creature crosses; water and lava count only with no skeleton near, since arrows fly over
them. A pocket of at most 12 walkable cells closer than
crafter's spawn distance with no hostile in it counts as a shelter as it is. In bright daylight
with no hostile within 12 cells, a short nap (energy >= 6, over by the end of the day) is taken
in the open.

``ExpertError``: "impossible" when the player is dead or the goal's material is gone from the
world (e.g. no tree left for wood); "planner" when the material exists but no route reaches it.
Goals that wait for the world (wake_up at full energy, hunting a creature that is not there yet,
a plant ripening) give "Noop".
"""

from __future__ import annotations

import numpy as np

from ..base import ExpertError
from .actions import MOVES
from .navigation import (
    AT_GOAL, DO, UNREACHED, Route, costs, facing_costs, facing_goal, near, neighbours4, search, standing_goal,
)  # fmt: skip
from .rules import ACHIEVEMENTS, ITEM_MAX, MAKE, PLACE, REQUIRES, SOURCE, SWORD_DAMAGE, prerequisites
from .scene import HOSTILE, Scene, cell, dawning, daylight, manhattan
from .world import World

CURRICULUM = (
    "collect_wood", "place_table", "make_wood_pickaxe", "make_wood_sword", "collect_sapling",
    "place_plant", "collect_drink", "eat_cow", "collect_stone", "place_stone", "make_stone_pickaxe",
    "make_stone_sword", "place_furnace", "collect_coal", "wake_up", "defeat_zombie", "collect_iron",
    "make_iron_pickaxe", "make_iron_sword", "collect_diamond", "defeat_skeleton", "eat_plant",
)  # fmt: skip
DRINK_LOW, FOOD_LOW, ENERGY_LOW, HEALTH_LOW = 4, 4, 2, 6
HEALTH_SAFE = 8  # a player hiding for its health leaves the shelter at this health
NIGHT = 0.5  # daylight below which the expert hides in a shelter (crafter keeps 2-3 zombies a chunk)
DAWN = 0.85  # rising daylight below which a sheltered player stays in (the night's zombies linger
# until crafter's despawning clears them above daylight ~0.834)
SIEGE = 4  # a zombie this near keeps a sheltered player inside (unless drink or food is dire)
NEAR_SHELTER, BUILD_RADIUS = 15, 6  # a shelter this near beats walling one in within this radius
WATER_PREF = 8  # route cost a shelter by water may add over one away from water
DIRE = (0, 0)  # drink, food at which a player in the dark or besieged goes out (at night: once
# at HEALTH_LOW too)
FILL, DUSK_LOW = 0.95, (7, 6)  # fading daylight: drink / eat up to these before the night
DUSK_REACH = 30  # route cost within which a cow is hunted to fill up before the night
DUSK = 0.8  # fading daylight below which the expert gets into a shelter (crafter's zombie target
# per grass chunk, 3.5 - 3 * daylight, passes 1)
SNACK_FOOD, SNACK_REACH = 5, 12  # by day, a cow this near is eaten at this food
REST_REACH = 40  # route cost within which water / a cow is sought with nothing else to do
ARROW_REACH = 4  # an arrow flying at the player from this near is dodged
MINE_COST = 3  # "Do" + the move, +1 so that walking around is preferred at equal length
ZOMBIE_PENALTY = 4
STATION_REACH = 25  # route cost beyond which a new table / furnace is placed
STOCK_REACH = 6
HUNT_REACH = {"cow": 80, "zombie": 40, "skeleton": 80}
HUNT_HEALTH = {"cow": 0, "zombie": 5, "skeleton": 6}
NAP_DAYLIGHT = 0.85  # crafter spawns no zombie above daylight ~0.834
KIT = ("wood_pickaxe", "wood_sword")  # held before a long wait (a plant ripening, a nap to come)
PLANT_GROWS = 18  # crafter updates objects (a plant ripening) closer than this to the player
PLANT_STONES = 5  # stones held before planting: up to 3 guard stones, a shelter's closing stone
WAITS = ("wake_up", "eat_cow", "defeat_zombie", "defeat_skeleton", "eat_plant")
assert sorted(CURRICULUM) == sorted(ACHIEVEMENTS), "the curriculum lists every achievement once"


def expert_action(env: World, goal: str) -> str:
    """The expert's action at the current state of ``env`` for ``goal`` (module docstring)."""
    scene = Scene(env)
    if scene.player.health <= 0:
        raise ExpertError(f"the player is dead at step {scene.step}", kind="impossible")
    return Planner(scene, goal).act()


def _title(name: str) -> str:
    return name.replace("_", " ").title()


class Planner:
    """The rules of the module docstring over one ``Scene``."""

    def __init__(self, scene: Scene, goal: str):
        self.s = scene
        self.goal = goal
        self.inv = scene.inv
        done = scene.ach
        if done[goal] == 0:
            self.plan = [a for a in CURRICULUM if a in prerequisites(goal) and done[a] == 0] + [goal]
        else:
            self.plan = [a for a in CURRICULUM if done[a] == 0]
        self.mine = np.where(scene.minable(), MINE_COST, 0)
        self.no_mine = np.zeros_like(self.mine)
        enter = scene.free.astype(np.int64)
        enter[scene.pos] = 1
        enter[scene.is_("lava")] = -1
        self.enter_plain = enter
        danger = (neighbours4(scene.mask_of(scene.creatures["zombie"])) | scene.line_of_fire()) & (enter > 0)
        self.enter = enter + ZOMBIE_PENALTY * danger

    # -- the rule list ------------------------------------------------------------------------

    def act(self) -> str:
        for rule in (self.asleep, self.fight, self.dodge, self.keep_drinking, self.needs, self.arm):
            action = rule()
            if action:
                return action
        if self.s.ach[self.goal] == 0:
            toward_goal = self.achieve(self.goal) or self.stuck(self.goal)
            return self.stock_up() or toward_goal
        action = self.stock_up()
        if action:
            return action
        for achievement in self.plan:
            action = self.achieve(achievement)
            if action:
                return action
        return self.rest()

    def asleep(self) -> str | None:
        return "Noop" if self.s.player.sleeping else None

    def fight(self) -> str | None:
        s = self.s
        hostile = [d for d in range(4) if type(s.object_at(s.ahead(s.pos, d))).__name__.lower() in HOSTILE]
        if not hostile:
            return None
        return "Do" if s.facing in hostile else MOVES[hostile[0]]

    def dodge(self) -> str | None:
        """An arrow flying at the player along a free line within ``ARROW_REACH`` cells: step
        aside into a free cell with no zombie next to it, else (facing the arrow) put a stone in
        its way. Crafter's arrows fly straight, one cell a step, and hit what is in front."""
        s = self.s
        for arrow in s.creatures["arrow"]:
            (ax, ay), (fx, fy) = cell(arrow), (int(arrow.facing[0]), int(arrow.facing[1]))
            k = (s.pos[0] - ax) * fx + (s.pos[1] - ay) * fy
            if not 0 < k <= ARROW_REACH or (s.pos[0] - ax, s.pos[1] - ay) != (k * fx, k * fy):
                continue
            line = [(ax + i * fx, ay + i * fy) for i in range(1, k)]
            if any(not s.passable_by_arrows[c] or s.objmap[c] for c in line):
                continue
            for d in ((2, 3) if fx else (0, 1)):
                side = s.ahead(s.pos, d)
                if s.inside(side) and self.enter[side] == 1:
                    return MOVES[d]
            if s.front == (s.pos[0] - fx, s.pos[1] - fy) and s.free[s.front] and self.inv["stone"] >= 1:
                return "Place Stone"
        return None

    def keep_drinking(self) -> str | None:
        s = self.s
        return "Do" if s.material(s.front) == "water" and self.inv["drink"] < ITEM_MAX["drink"] else None

    def needs(self) -> str | None:
        inv, s = self.inv, self.s
        night, inside = s.daylight < NIGHT, s.enclosed
        dawn = dawning(s.step) and s.daylight < DAWN
        zombies_near = any(manhattan(s.pos, cell(z)) <= SIEGE for z in s.creatures["zombie"])
        besieged = inside and (night or dawn or zombies_near)
        low = (DRINK_LOW, FOOD_LOW)
        if night or dawn:  # waiting costs a health point in 16 steps, a zombie's strike 2
            low = DIRE if s.player.health <= HEALTH_LOW else (-1, -1)  # (-1, -1): no trip out
        elif besieged:  # by day the zombies outside stay: better met at full health
            low = DIRE
        urgent = []
        if inv["drink"] <= low[0]:
            urgent.append((inv["drink"], 0, self.drink))
        if inv["food"] <= low[1]:
            urgent.append((inv["food"], 1, self.eat))
        if inv["energy"] <= ENERGY_LOW:
            urgent.append((inv["energy"], 2, lambda: self.sleep(nap=False)))
        for _, _, rule in sorted(urgent, key=lambda u: u[:2]):
            action = rule()
            if action:
                return action
        healthy = not inside or s.player.health > HEALTH_LOW
        day = not (night or dawn or besieged) and healthy
        if day and inv["food"] <= SNACK_FOOD:  # a cow at hand, before the food runs low
            action = self.eat(limit=SNACK_REACH)
            if action:
                return action
        fading = not dawning(s.step)
        if day and fading and s.daylight < FILL:
            action = self.fill_up(DUSK_REACH)
            if action:
                return action
        if night or s.player.health <= HEALTH_LOW or (fading and s.daylight < DUSK):
            return self.hide(limit=40)
        if besieged or (inside and s.player.health < HEALTH_SAFE):  # out once healed and clear
            return self.hide(limit=0)
        return None

    def arm(self) -> str | None:
        """Standing by a table with wood to spare and no sword: make the wood sword (zombies then
        fall in 3 blows, before their second strike)."""
        s = self.s
        if any(s.inv[t] for t, _ in SWORD_DAMAGE) or "table" not in s.world.nearby(s.pos, 1)[0]:
            return None
        spare = self.inv["wood"] - self.budget()["wood"] + MAKE["wood_sword"]["uses"]["wood"]
        return "Make Wood Sword" if spare >= MAKE["wood_sword"]["uses"]["wood"] else None

    def stock_up(self) -> str | None:
        budget = self.budget()
        for item in ("wood", "stone", "coal", "iron"):
            material = SOURCE[item]
            if self.inv[item] < budget[item] and self.s.can_take(material):
                action = self.go(facing_goal(self.s.is_(material)), "Do", limit=STOCK_REACH)
                if action:
                    return action
        return None

    def budget(self) -> dict[str, int]:
        """Materials the remaining plan still consumes (capped at crafter's inventory max): the
        tools not held, a table when one is to be placed, a furnace, a placed stone, plus one
        spare table's wood and a shelter stone while iron tools remain."""
        need = dict.fromkeys(("wood", "stone", "coal", "iron"), 0)
        for a in self.plan:
            kind, _, what = a.partition("_")
            uses = {}
            if kind == "make" and self.inv[what] == 0:
                uses = MAKE[what]["uses"]
            elif kind == "place" and what in ("table", "furnace", "stone"):
                uses = PLACE[what]["uses"]
            for item, n in uses.items():
                need[item] += n
        if not any(self.inv[t] for t, _ in SWORD_DAMAGE):  # the wood sword of ``arm``
            need["wood"] += MAKE["wood_sword"]["uses"]["wood"]
        if any(a in self.plan for a in ("make_iron_pickaxe", "make_iron_sword")):
            need["wood"] += PLACE["table"]["uses"]["wood"]
            need["stone"] += 1
        return {k: min(v, ITEM_MAX[k]) for k, v in need.items()}

    # -- achievements ----------------------------------------------------------------------------

    def achieve(self, achievement: str) -> str | None:
        """An action toward unlocking ``achievement``, or ``None`` when none is possible now."""
        kind, _, what = achievement.partition("_")
        if kind == "collect":
            return self.collect(what)
        if kind == "place":
            return self.place(what)
        if kind == "make":
            return self.make(what)
        if achievement == "eat_plant":
            return self.eat_plant()
        if achievement == "wake_up":
            return self.wake_up(achievement == self.goal)
        return self.hunt(
            {"eat_cow": "cow", "defeat_zombie": "zombie", "defeat_skeleton": "skeleton"}[achievement]
        )

    def get(self, item: str) -> str | None:
        return self.make(item) if item in MAKE else self.collect(item)

    def collect(self, item: str) -> str | None:
        material = SOURCE[item]
        target = self.s.is_(material)
        if material == "grass":
            target &= self.s.objmap == 0
        if not target.any():  # none left: no use getting the tools first
            return None
        for tool, n in REQUIRES[material].items():
            if self.inv[tool] < n:
                return self.get(tool)
        return self.go(facing_goal(target), "Do")

    def place(self, what: str) -> str | None:
        spec = PLACE[what]
        for item, n in spec["uses"].items():
            if self.inv[item] < n:
                return self.get(item)
        goal = facing_goal(self.s.is_(*spec["where"]) & (self.s.objmap == 0))
        if what == "furnace":  # beside a table, where the iron tools are made
            by_table = goal & near(self.s.is_("table"))[None]
            action = self.go(by_table, "Place Furnace", limit=STATION_REACH)
            if action:
                return action
        return self.go(goal, f"Place {_title(what)}")

    def make(self, tool: str) -> str | None:
        spec = MAKE[tool]
        for item, n in spec["uses"].items():
            if self.inv[item] < n:
                return self.get(item)
        cells = np.ones(self.s.shape, dtype=bool)
        for station in spec["nearby"]:
            cells &= near(self.s.is_(station))
        action = self.go(standing_goal(cells), f"Make {_title(tool)}", limit=STATION_REACH)
        return action or self.build_stations(spec)

    def build_stations(self, spec: dict) -> str | None:
        """Place the table (and furnace) a tool needs when none is within reach."""
        tables = standing_goal(near(self.s.is_("table")))
        if self.route(tables, STATION_REACH) is None:
            wood = PLACE["table"]["uses"]["wood"] + spec["uses"].get("wood", 0)
            return self.collect("wood") if self.inv["wood"] < wood else self.place("table")
        stone = PLACE["furnace"]["uses"]["stone"] + spec["uses"].get("stone", 0)
        return self.collect("stone") if self.inv["stone"] < stone else self.place("furnace")

    def hunt(self, kind: str, limit: int | None = None) -> str | None:
        objs = self.s.creatures[kind]
        if not objs or self.s.player.health < HUNT_HEALTH[kind]:
            return None
        enter = self.enter_plain if kind == "zombie" else self.enter
        limit = HUNT_REACH[kind] if limit is None else limit
        return self.go(facing_goal(self.s.mask_of(objs)), "Do", limit=limit, enter=enter)

    def eat_plant(self) -> str | None:
        """Eat a ripe plant. Else, with a pickaxe and a sword for the long wait, guard the nearest
        plant (a stone on each free side, so no creature can stand next to it: crafter's plants
        die next to a cow / zombie / skeleton; no route mines a guard back) and wait while it
        ripens in a shelter closer than 18 cells (it only grows while the player is that near),
        else within 8 cells, getting into a shelter there; with no plant near, plant a sapling on
        grass within 6 cells of a shelter, so the night can be spent close to it."""
        s = self.s
        ripe = [p for p in s.creatures["plant"] if p.ripe]
        if ripe:
            return self.go(facing_goal(s.mask_of(ripe)), "Do", limit=80)
        for tool in KIT:
            if self.inv[tool] < 1:
                return self.get(tool)
        plant = s.nearest(s.creatures["plant"])
        where = None if plant is None else cell(plant)
        if where is None or manhattan(s.pos, where) > 12:
            return self.plant_sapling()
        sides = neighbours4(s.mask_of([plant]))
        open_sides = sides & s.free
        if open_sides.any():
            if self.inv["stone"] < 1:
                return self.collect("stone")
            # a route that mines a guard stone just placed would take it back
            guarded = np.where(sides, 0, self.mine)
            return self.go(facing_goal(open_sides), "Place Stone", limit=30, mine=guarded)
        if s.enclosed and manhattan(s.pos, where) < PLANT_GROWS:
            return self.hide(limit=0)
        if manhattan(s.pos, where) > 8:
            return self.go(standing_goal(near(near(near(s.mask_of([plant]))))), "Noop", limit=40)
        return self.shelter(8) or self.build_shelter() or self.rest()

    def plant_sapling(self) -> str | None:
        s = self.s
        if self.inv["sapling"] < 1:
            return self.collect("sapling")
        if self.inv["stone"] < PLANT_STONES:
            return self.collect("stone")
        sites = s.shelters()[0].any(axis=0)
        for _ in range(6):
            sites |= neighbours4(sites)
        action = self.go(facing_goal(sites & s.is_("grass") & (s.objmap == 0)), "Place Plant", limit=40)
        return action or self.place("plant")

    # -- needs -----------------------------------------------------------------------------------

    def drink(self) -> str | None:
        return self.go(facing_goal(self.s.is_("water")), "Do")

    def eat(self, limit: int | None = None) -> str | None:
        ripe = [p for p in self.s.creatures["plant"] if p.ripe]
        if ripe:
            action = self.go(facing_goal(self.s.mask_of(ripe)), "Do", limit=20)
            if action:
                return action
        if limit is None and self.inv["food"] <= 1:  # starving: any cow on the map
            limit = 1 << 20
        return self.hunt("cow", limit)

    def sleep(self, nap: bool, limit: int = 60) -> str | None:
        """Sleep where it is safe: in a shelter (built on the way, see the module docstring), or
        with ``nap`` in the open in bright daylight; ``None`` at full energy or when neither."""
        if self.inv["energy"] >= ITEM_MAX["energy"]:
            return None
        if self.s.enclosed:
            return "Sleep"
        return self.get_in(limit) or ("Sleep" if nap and self.nap_safe() else None)

    def hide(self, limit: int) -> str | None:
        """Stay in a shelter (asleep when energy is not full), or get into one: a near one, else
        wall one in with stones here, else one within ``limit``."""
        if self.s.enclosed:
            return "Sleep" if self.inv["energy"] < ITEM_MAX["energy"] else "Noop"
        return self.get_in(limit)

    def get_in(self, limit: int) -> str | None:
        """The next action into a shelter: the cheaper of the nearest shelter within ``limit``
        (``shelter``) and the nearest pocket walled in here (``build_shelter``), the latter
        costing ``NEAR_SHELTER`` more. One choice over route costs: a cascade of limits ("a
        near one, else ...") flips between targets on either side of the player as a zombie's
        detour cost moves a route across a limit."""
        near_shelter, build = self._shelter_choice(limit), self._build_choice()
        if build and (near_shelter is None or NEAR_SHELTER + build[0] < near_shelter[0]):
            return self.go(facing_goal(build[1]), "Place Stone", limit=2 * BUILD_RADIUS, mine=self.no_mine)
        return self._enter(near_shelter, limit)

    def build_shelter(self) -> str | None:
        """Place a stone on an open wall of the nearest pocket that the stones held can wall in
        (``Scene.unfinished_shelter``); ``shelter`` then closes it."""
        build = self._build_choice()
        if build is None:
            return None
        return self.go(facing_goal(build[1]), "Place Stone", limit=2 * BUILD_RADIUS, mine=self.no_mine)

    def _build_choice(self) -> tuple[int, np.ndarray] | None:
        """(route cost to its nearest open wall + 3 per open wall, the open walls) of the pocket
        ``build_shelter`` walls in, or ``None``."""
        if self.inv["stone"] < 2:
            return None
        # walking only: a route that mines would take back the stones just placed
        dist = costs(self.enter, self.no_mine, self.s.pos, self.s.facing, 2 * BUILD_RADIUS)
        reach = facing_costs(dist)
        walls = self.s.unfinished_shelter(self.inv["stone"], BUILD_RADIUS, reach)
        if walls is None:
            return None
        return int(reach[walls].min()) + 3 * int(walls.sum()), walls

    def shelter(self, limit: int) -> str | None:
        """The next action toward the nearest closed two-cell shelter within ``limit`` route
        cost, one by water ``WATER_PREF`` nearer (drinking from inside saves a trip out at
        night)."""
        return self._enter(self._shelter_choice(limit), limit)

    def _shelter_choice(self, limit: int) -> tuple[int, np.ndarray, np.ndarray] | None:
        """(score, the one goal state of ``shelter``'s choice, the mining costs to get there)."""
        s = self.s
        goal, pocket = s.shelters()
        if self.inv["stone"] < 1:  # the closing stone must come from digging the pocket itself
            goal &= self._digs_stone(pocket)
        if not goal.any():
            return None
        mine = np.where(pocket & (self.mine > 0), MINE_COST, 0)
        dist = costs(self.enter, mine, s.pos, s.facing, limit)
        score = np.where(goal, dist, UNREACHED) + WATER_PREF * ~neighbours4(s.is_("water"))[None]
        i = int(np.argmin(score))
        if score.flat[i] >= UNREACHED:
            return None
        state = np.zeros(goal.shape, dtype=bool)
        state.flat[i] = True
        return int(score.flat[i]), state, mine

    def _enter(self, choice: tuple[int, np.ndarray, np.ndarray] | None, limit: int) -> str | None:
        s = self.s
        if choice is None:
            return None
        route = self.route(choice[1], limit, mine=choice[2])
        if route is None:
            return None
        if route.action != AT_GOAL:
            return self._step(route)
        if s.free[s.front] and self.inv["stone"] < 1:  # nothing to close it with: dig a stone first
            return self.collect("stone")
        return "Place Stone" if s.free[s.front] else "Do"

    def _digs_stone(self, pocket: np.ndarray) -> np.ndarray:
        """Goal cells whose pocket holds stone to dig (a rough test: stone within the pocket
        cells next to the goal cell or the goal cell itself)."""
        stone = pocket & self.s.is_("stone") & (self.mine > 0)
        return np.broadcast_to(near(stone), (4, *self.s.shape))

    def nap_safe(self) -> bool:
        s, inv = self.s, self.inv
        if inv["energy"] < 6 or s.player.health < 6 or s.hostiles_within(12):
            return False
        length = (ITEM_MAX["energy"] - inv["energy"]) * 12 + 3
        return min(daylight(s.step + t) for t in (0, length // 2, length)) > NAP_DAYLIGHT

    def wake_up(self, is_goal: bool) -> str | None:
        """Sleep (a nap in bright daylight, else in a shelter); with full energy, as the goal,
        wait in a shelter (with a pickaxe to dig one) until energy drops; on the way to other
        achievements, come back when tired."""
        tired = self.inv["energy"] < ITEM_MAX["energy"]
        if tired and self.nap_safe():
            return "Sleep"
        if not (tired or is_goal):
            return None
        action = self.hide(limit=60)
        if action:
            return action
        for tool in KIT:
            if self.inv[tool] < 1:
                return self.get(tool)
        return self.collect("stone") if self.inv["stone"] < 2 else None

    def rest(self) -> str:
        """Nothing left to do now: by day top up drink and food (``fill_up``), then wait in a
        shelter, else nap in bright daylight, else "Noop"."""
        s = self.s
        dark = s.daylight < NIGHT or (dawning(s.step) and s.daylight < DAWN)
        fill = None if dark else self.fill_up(REST_REACH)
        return fill or self.hide(limit=40) or self.sleep(nap=True) or "Noop"

    def fill_up(self, limit: int) -> str | None:
        """Drink at ``DUSK_LOW`` drink or below (to the full: ``keep_drinking``), eat a ripe plant or
        a cow within ``limit`` at ``DUSK_LOW`` food or below."""
        if self.inv["drink"] <= DUSK_LOW[0]:
            action = self.go(facing_goal(self.s.is_("water")), "Do", limit=limit)
            if action:
                return action
        return self.eat(limit=limit) if self.inv["food"] <= DUSK_LOW[1] else None

    def stuck(self, goal: str) -> str:
        """No action toward the goal: wait where the world may still provide, else an error."""
        if goal in WAITS:
            return "Noop"
        missing = [
            m for m in ("tree", "stone", "coal", "iron", "diamond", "water") if not self.s.is_(m).any()
        ]
        needed = {
            SOURCE[a.partition("_")[2]] for a in [goal, *prerequisites(goal)] if a.startswith("collect_")
        }
        gone = sorted(needed & set(missing))
        kind = "impossible" if gone else "planner"
        why = f"no {', '.join(gone)} left in the world" if gone else "no route reaches what it needs"
        raise ExpertError(f"the expert cannot pursue {goal} at step {self.s.step}: {why}", kind=kind)

    # -- movement --------------------------------------------------------------------------------

    def route(self, goal: np.ndarray, limit: int = 1 << 20, *, enter=None, mine=None) -> Route | None:
        enter = self.enter if enter is None else enter
        mine = self.mine if mine is None else mine
        return search(enter, mine, goal, self.s.pos, self.s.facing, limit)

    def _step(self, route: Route) -> str:
        return "Do" if route.action == DO else MOVES[route.action]

    def go(self, goal: np.ndarray, act: str, limit: int = 1 << 20, *, enter=None, mine=None) -> str | None:
        """The next action toward the nearest goal state, ``act`` once there; ``None`` if none is
        within ``limit``."""
        route = self.route(goal, limit, enter=enter, mine=mine)
        if route is None:
            return None
        return act if route.action == AT_GOAL else self._step(route)
