"""One crafter state as the expert and the diagnosis read it: the player, the maps, the creatures,
and masks over the map (free cells, minable cells, shelters). Built once per query, read-only.

Coordinates are crafter's: x grows east, y grows south; ``DIRS`` (navigation) orders the
directions West, East, North, South like crafter's move actions.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from typing import Any

import numpy as np

from .navigation import DIR_OF, DIRS
from .rules import PLACE, REQUIRES, WALKABLE
from .world import MATERIAL_IDS, World

MAT = MATERIAL_IDS
_WALKABLE_IDS = np.array([MAT[m] for m in WALKABLE])
HOSTILE = ("zombie", "skeleton")
PLACE_STONE_ON = tuple(PLACE["stone"]["where"])
# a Plant's ``grown`` must exceed this for it to be ripe (crafter's ``Plant.ripe``)
RIPE_AFTER = 300
POCKET_MAX = 12  # cells of a pocket that counts as a shelter
SKELETON_RANGE = 12  # a skeleton this near (Manhattan) makes water and lava walls that arrows cross
ARROW_RANGE = 5  # crafter's skeletons shoot at a player this near (Manhattan)
SPAWN_DISTANCE = 6  # crafter spawns zombies at least 6 cells (Manhattan) from the player


def daylight(step: int) -> float:
    """crafter's daylight at a step (``Env._update_time``): 1 at noon, 0 at midnight, period 300."""
    progress = (step / 300) % 1 + 0.3
    return 1 - abs(math.cos(math.pi * progress)) ** 3


def dawning(step: int) -> bool:
    """Whether crafter's daylight is rising at a step: from midnight (step 210 of each 300) to
    noon (step 60)."""
    return not 60 <= step % 300 < 210


def cell(obj: Any) -> tuple[int, int]:
    """The cell an object (creature, plant, arrow) occupies."""
    return int(obj.pos[0]), int(obj.pos[1])


def manhattan(a: tuple[int, int], b: tuple[int, int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


class Scene:
    """The state of a ``world.World`` for planning and explaining (see the module docstring)."""

    def __init__(self, env: World):
        w, p = env._world, env._player
        self.world, self.player = w, p
        self.mat: np.ndarray = w._mat_map
        self.objmap: np.ndarray = w._obj_map
        self.shape = self.mat.shape
        self.pos = (int(p.pos[0]), int(p.pos[1]))
        self.facing = DIR_OF[(int(p.facing[0]), int(p.facing[1]))]
        self.front = self.ahead(self.pos, self.facing)
        self.inv: dict[str, int] = p.inventory
        self.ach: dict[str, int] = p.achievements
        self.step = int(env._step)
        self.daylight = float(w.daylight)
        self.creatures: dict[str, list[Any]] = {
            k: [] for k in ("zombie", "skeleton", "cow", "plant", "arrow")
        }
        for obj in w._objects:
            if obj is not None and obj is not p:
                self.creatures.setdefault(type(obj).__name__.lower(), []).append(obj)
        self.walkable = np.isin(self.mat, _WALKABLE_IDS)
        self.free = self.walkable & (self.objmap == 0)
        # cells a creature can cross: zombies and cows walk grass / sand / path; arrows also fly over
        # water and lava (crafter's Arrow.walkable), which counts only with a skeleton near
        self.skeleton_near = any(
            manhattan(self.pos, cell(o)) <= SKELETON_RANGE for o in self.creatures["skeleton"]
        )
        self.passable_by_arrows = self.walkable | self.is_("water", "lava")
        self.passable = self.passable_by_arrows if self.skeleton_near else self.walkable

    # -- cells ---------------------------------------------------------------------------------

    @staticmethod
    def ahead(cell: tuple[int, int], d: int) -> tuple[int, int]:
        return cell[0] + DIRS[d][0], cell[1] + DIRS[d][1]

    def inside(self, cell: tuple[int, int]) -> bool:
        return 0 <= cell[0] < self.shape[0] and 0 <= cell[1] < self.shape[1]

    def material(self, cell: tuple[int, int]) -> str | None:
        if not self.inside(cell):
            return None
        m = int(self.mat[cell])
        return next(k for k, v in MAT.items() if v == m) if m else None

    def object_at(self, cell: tuple[int, int]) -> Any:
        if not self.inside(cell):
            return None
        idx = int(self.objmap[cell])
        return self.world._objects[idx] if idx else None

    def is_(self, *materials: str) -> np.ndarray:
        """Mask of the cells made of one of ``materials``."""
        return np.isin(self.mat, [MAT[m] for m in materials])

    def mask_of(self, objs: list[Any]) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        for o in objs:
            out[cell(o)] = True
        return out

    def can_take(self, material: str) -> bool:
        """Whether the player's tools let it take ``material`` (crafter's ``collect`` rules)."""
        return material in REQUIRES and all(self.inv[t] >= n for t, n in REQUIRES[material].items())

    def minable(self) -> np.ndarray:
        """Cells the player can clear with its tools and then walk into (their material leaves a
        walkable cell: tree -> grass, stone / coal / iron / diamond -> path)."""
        names = [m for m in ("tree", "stone", "coal", "iron", "diamond") if self.can_take(m)]
        return self.is_(*names) if names else np.zeros(self.shape, dtype=bool)

    def nearest(self, objs: list[Any], origin: tuple[int, int] | None = None) -> Any:
        """The object of ``objs`` nearest (Manhattan; ties: smallest x, then y) to ``origin``
        (default: the player)."""
        origin = origin or self.pos
        return min(objs, key=lambda o: (manhattan(origin, cell(o)), cell(o)), default=None)

    def nearest_cell(self, mask: np.ndarray, origin: tuple[int, int] | None = None) -> tuple[int, int] | None:
        """The cell of ``mask`` nearest (Manhattan; ties: smallest x, then y) to ``origin``."""
        xs, ys = np.nonzero(mask)
        if len(xs) == 0:
            return None
        ox, oy = origin or self.pos
        i = int(np.argmin(np.abs(xs - ox) + np.abs(ys - oy)))
        return int(xs[i]), int(ys[i])

    def hostiles(self) -> list[Any]:
        return [o for k in HOSTILE for o in self.creatures[k]]

    def hostiles_within(self, radius: int) -> list[Any]:
        return [o for o in self.hostiles() if manhattan(self.pos, cell(o)) <= radius]

    # -- safety -------------------------------------------------------------------------------

    def line_of_fire(self) -> np.ndarray:
        """Cells an arrow may cross soon: up to ``ARROW_RANGE`` cells along the row and column of
        each skeleton within ``SKELETON_RANGE`` of the player (crafter's skeletons shoot at a
        player within 5 cells, along one axis) and ahead of each arrow in flight (it flies
        straight, a cell a step), over cells an arrow crosses."""
        out = np.zeros(self.shape, dtype=bool)
        rays = [(cell(a), DIR_OF[(int(a.facing[0]), int(a.facing[1]))]) for a in self.creatures["arrow"]]
        for sk in self.creatures["skeleton"]:
            if manhattan(self.pos, cell(sk)) <= SKELETON_RANGE:
                rays += [(cell(sk), d) for d in range(4)]
        for c, d in rays:
            for _ in range(ARROW_RANGE):
                c = self.ahead(c, d)
                if not self.inside(c) or not self.passable_by_arrows[c] or (self.objmap[c] and c != self.pos):
                    break
                out[c] = True
        return out

    @functools.cached_property
    def enclosed(self) -> bool:
        """Whether the cells connected to the player that a creature can cross (``passable``) form a small pocket (at most ``POCKET_MAX`` cells, all closer than crafter's
        spawn distance) holding no zombie, skeleton or arrow: nothing can reach the player and
        nothing can spawn next to it."""
        seen = {self.pos}
        queue = deque([self.pos])
        passable = self.passable
        while queue:
            cell = queue.popleft()
            for d in range(4):
                nxt = self.ahead(cell, d)
                if nxt in seen or not self.inside(nxt) or not passable[nxt]:
                    continue
                obj = self.object_at(nxt)
                if type(obj).__name__.lower() in (*HOSTILE, "arrow"):
                    return False
                if len(seen) >= POCKET_MAX or manhattan(self.pos, nxt) >= SPAWN_DISTANCE:
                    return False
                seen.add(nxt)
                queue.append(nxt)
        return True

    def _pocket_masks(self, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Padded masks (off the map: False, False, True): cells a pocket may hold (free, minable,
        the player's), walkable cells, wall cells (no creature crosses them)."""
        ok_cells = self.free | self.minable()
        ok_cells[self.pos] = True
        cell_ok = np.pad(ok_cells, pad, constant_values=False)
        walk = np.pad(self.walkable, pad, constant_values=False)
        solid = ~np.pad(self.passable, pad, constant_values=False)
        return cell_ok, walk, solid

    @staticmethod
    def _pocket_walls(d: int) -> tuple[tuple[int, int], ...]:
        """The five wall offsets of a pocket P, P + d, relative to P: both sides of P and of
        P + d, and the cell beyond P + d."""
        dx, dy = DIRS[d]
        ex, ey = dy, dx  # a side direction
        return ((ex, ey), (-ex, -ey), (dx + ex, dy + ey), (dx - ex, dy - ey), (2 * dx, 2 * dy))

    def unfinished_shelter(self, stones: int, radius: int, reach: np.ndarray) -> np.ndarray | None:
        """The open wall cells of the nearest pocket (as in ``shelters``, within ``radius`` cells
        of the player) that at most ``stones - 1`` placed stones complete, the last stone being
        kept to close its entrance; ``None`` if there is none. ``reach`` [W, H]: the route cost
        to face each cell (``navigation.facing_costs``). Nearest = the cost to face its nearest
        open wall + 3 per missing wall: walking that route lowers the chosen pocket's cost by
        each step's cost and no other pocket's by more, so the choice holds while the player
        walks (a straight-line distance flips between two pockets on either side of its path);
        ties go to the first cell in (x, y) order."""
        pad = 2
        cell_ok, walk, solid = self._pocket_masks(pad)
        # the player's own cell counts as open: it steps off to wall it (else the pocket it stands
        # at the wall of drops out, and the choice flips with each step)
        open_cells = self.objmap == 0
        open_cells[self.pos] = True
        placeable = np.pad(self.is_(*PLACE_STONE_ON) & open_cells, pad, constant_values=False)
        far = np.iinfo(np.int64).max // 4
        reach_p = np.pad(np.minimum(reach, far), pad, constant_values=far)
        w, h = self.shape
        xs, ys = np.meshgrid(np.arange(w), np.arange(h), indexing="ij")
        dist = np.abs(xs - self.pos[0]) + np.abs(ys - self.pos[1])

        def at(a: np.ndarray, ox: int, oy: int) -> np.ndarray:
            return a[pad + ox : pad + ox + w, pad + oy : pad + oy + h]

        best = None
        for d, (dx, dy) in enumerate(DIRS):
            ok = at(cell_ok, 0, 0) & at(cell_ok, dx, dy) & at(walk, -dx, -dy) & (dist <= radius)
            missing = np.zeros((w, h), dtype=np.int64)
            cost = np.full((w, h), far, dtype=np.int64)
            for ox, oy in self._pocket_walls(d):
                open_wall = at(placeable, ox, oy) & ~at(solid, ox, oy)
                ok &= at(solid, ox, oy) | open_wall
                missing += open_wall
                cost = np.where(open_wall, np.minimum(cost, at(reach_p, ox, oy)), cost)
            ok &= (missing >= 1) & (missing <= stones - 1) & (cost < far)
            if ok.any():
                score = np.where(ok, cost + 3 * missing, far)
                i = int(np.argmin(score))
                if best is None or score.flat[i] < best[0]:
                    best = (int(score.flat[i]), d, divmod(i, h))
        if best is None:
            return None
        _, d, (x, y) = best
        walls = np.zeros((w, h), dtype=bool)
        for ox, oy in self._pocket_walls(d):
            cx, cy = x + ox, y + oy
            if self.inside((cx, cy)) and self.passable[cx, cy]:
                walls[cx, cy] = True
        return walls

    def shelters(self) -> tuple[np.ndarray, np.ndarray]:
        """Two-cell shelters: (goal states [facing, x, y], the cells of their pockets). A goal
        state stands in P facing the entrance B, where the pocket P, F = P + d (free, or minable
        with the player's tools) is walled on its other five sides by non-walkable cells and
        B = P - d is walkable: one stone placed on B closes the pocket. Reaching P facing B
        means entering P from F, so a route there clears P and F on the way in. Walls are cells
        no creature crosses (``passable``: not grass, sand or path; with a skeleton near, not
        water or lava either, which its arrows fly over)."""
        pad = 2
        cell_ok, walk, solid = self._pocket_masks(pad)
        w, h = self.shape
        goal = np.zeros((4, w, h), dtype=bool)
        pocket = np.zeros((w + 2 * pad, h + 2 * pad), dtype=bool)

        def at(a: np.ndarray, ox: int, oy: int) -> np.ndarray:
            return a[pad + ox : pad + ox + w, pad + oy : pad + oy + h]

        for d, (dx, dy) in enumerate(DIRS):
            ok = at(cell_ok, 0, 0) & at(cell_ok, dx, dy) & at(walk, -dx, -dy)
            for ox, oy in self._pocket_walls(d):
                ok &= at(solid, ox, oy)
            goal[DIR_OF[(-dx, -dy)]] |= ok
            at(pocket, 0, 0)[...] |= ok
            at(pocket, dx, dy)[...] |= ok
        return goal, pocket[pad : pad + w, pad : pad + h].copy()
