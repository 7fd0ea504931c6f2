"""Route search on the crafter map for the expert: a shortest path over (cell, facing) states.

Crafter's moves are not plain grid moves: "Move West" steps west when the west cell is free
(walkable material, no object) and otherwise only turns the player to face it; "Do" acts on the
faced cell. So the search state is (x, y, facing) and its transitions are exactly crafter's:

- move a: into the neighbour when it is enterable (``enter > 0``, cost ``enter``); never when
  ``enter < 0`` (lava: crafter lets the player walk in and die); else a turn to face a (cost 1);
- mine: when the faced neighbour is minable (``mine > 0``: a material the player can take with
  its tools, e.g. stone with a wood pickaxe, or a tree), "Do" then a move into it (cost
  ``mine``), since the material leaves a walkable cell behind.

A goal is a boolean mask over states [facing, x, y] (e.g. "facing a tree", "standing where a
table is within the 3 x 3 square"). Dijkstra (a binary heap, compiled with numba) stops at the
first goal state popped and returns the first action of that route, so one call answers "what
is the next step toward the nearest goal". Costs are small positive integers. ``costs`` runs the
same search to the end and returns every state's route cost (to rank goals by route, not by
straight-line distance, so that the choice does not flip as the player walks toward it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

# crafter's move_left / move_right / move_up / move_down, i.e. West, East, North, South
DIRS: tuple[tuple[int, int], ...] = ((-1, 0), (1, 0), (0, -1), (0, 1))
DIR_OF = {d: i for i, d in enumerate(DIRS)}
AT_GOAL = -1
DO = 4
_DX = np.array([d[0] for d in DIRS], dtype=np.int64)
_DY = np.array([d[1] for d in DIRS], dtype=np.int64)


@numba.njit(cache=True)
def _push(heap, size, key):
    i = size
    heap[i] = key
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] <= heap[i]:
            break
        heap[parent], heap[i] = heap[i], heap[parent]
        i = parent
    return size + 1


@numba.njit(cache=True)
def _pop(heap, size):
    top = heap[0]
    size -= 1
    heap[0] = heap[size]
    i = 0
    while True:
        lo, l, r = i, 2 * i + 1, 2 * i + 2
        if l < size and heap[l] < heap[lo]:
            lo = l
        if r < size and heap[r] < heap[lo]:
            lo = r
        if lo == i:
            break
        heap[lo], heap[i] = heap[i], heap[lo]
        i = lo
    return top, size


@numba.njit(cache=True)
def _search(enter, mine, goal, sx, sy, sd, limit, dx, dy, dist):
    w, h = enter.shape
    n = w * h * 4
    first = np.full(n, -1, np.int8)
    heap = np.empty(4 * n + 8, np.int64)
    s0 = (sx * h + sy) * 4 + sd
    dist[s0] = 0
    size = _push(heap, 0, s0)
    while size > 0:
        key, size = _pop(heap, size)
        c = key // n
        s = key - c * n
        if c != dist[s]:
            continue
        if c > limit:
            break
        d = s & 3
        x = (s >> 2) // h
        y = (s >> 2) - x * h
        if goal[d, x, y]:
            return first[s], c, x, y, d
        for a in range(4):
            nx, ny = x + dx[a], y + dy[a]
            inside = 0 <= nx < w and 0 <= ny < h
            if inside and enter[nx, ny] > 0:
                ns, nc, act = (nx * h + ny) * 4 + a, c + enter[nx, ny], a
            elif inside and enter[nx, ny] < 0:
                continue  # the move would enter a deadly cell (lava): never taken
            elif inside and a == d and mine[nx, ny] > 0:
                ns, nc, act = (nx * h + ny) * 4 + a, c + mine[nx, ny], DO
            elif a != d:
                ns, nc, act = (x * h + y) * 4 + a, c + 1, a
            else:
                continue
            if nc < dist[ns]:
                dist[ns] = nc
                first[ns] = act if s == s0 else first[s]
                size = _push(heap, size, nc * n + ns)
    return -2, -1, -1, -1, -1


@dataclass(frozen=True)
class Route:
    """The first action toward the nearest goal state (``AT_GOAL``, a direction index of
    ``DIRS`` for a move / turn, or ``DO`` to mine the faced cell), the route's cost and the goal
    state reached (x, y, facing index)."""

    action: int
    cost: int
    goal: tuple[int, int, int]


def search(
    enter: np.ndarray,
    mine: np.ndarray,
    goal: np.ndarray,
    start: tuple[int, int],
    facing: int,
    limit: int = 1 << 20,
) -> Route | None:
    """The route from ``start`` facing ``facing`` to the nearest state of ``goal`` ([4, W, H]
    bool), or ``None`` when none is within ``limit`` cost. ``enter`` / ``mine``: [W, H] int costs
    (0 = not possible)."""
    act, cost, x, y, d = _run(enter, mine, goal, start, facing, limit)[0]
    if act == -2:
        return None
    return Route(int(act), int(cost), (int(x), int(y), int(d)))


UNREACHED = 1 << 30  # the cost ``costs`` gives a state no route reaches within its limit


def costs(
    enter: np.ndarray, mine: np.ndarray, start: tuple[int, int], facing: int, limit: int = 1 << 20
) -> np.ndarray:
    """The route cost from ``start`` facing ``facing`` to every state [facing, x, y] (int64,
    ``UNREACHED`` beyond ``limit``), with ``search``'s moves and costs."""
    goal = np.zeros((4, *enter.shape), dtype=bool)
    dist = _run(enter, mine, goal, start, facing, limit)[1]
    dist[dist > limit] = UNREACHED
    return dist.reshape(enter.shape[0], enter.shape[1], 4).transpose(2, 0, 1)


def _run(enter, mine, goal, start, facing, limit) -> tuple[tuple, np.ndarray]:
    if goal.shape != (4, *enter.shape) or mine.shape != enter.shape:
        raise ValueError(f"search: goal {goal.shape} / mine {mine.shape} do not fit the map {enter.shape}")
    dist = np.full(enter.size * 4, UNREACHED, np.int64)
    found = _search(
        enter.astype(np.int64, copy=False), mine.astype(np.int64, copy=False), goal,
        int(start[0]), int(start[1]), int(facing), int(limit), _DX, _DY, dist,
    )  # fmt: skip
    return found, dist


def facing_goal(target: np.ndarray) -> np.ndarray:
    """Goal states "facing a cell of ``target``": [a, x, y] = target[(x, y) + DIRS[a]]."""
    w, h = target.shape
    goal = np.zeros((4, w, h), dtype=bool)
    goal[0, 1:, :] = target[:-1, :]  # facing west: the target is at x - 1
    goal[1, :-1, :] = target[1:, :]
    goal[2, :, 1:] = target[:, :-1]
    goal[3, :, :-1] = target[:, 1:]
    return goal


def facing_costs(state_costs: np.ndarray) -> np.ndarray:
    """The cheapest route cost to face each cell (the inverse of ``facing_goal``) from the
    [facing, x, y] costs of ``costs``; ``UNREACHED`` where no state faces the cell."""
    _, w, h = state_costs.shape
    out = np.full((w, h), UNREACHED, dtype=np.int64)
    out[:-1, :] = np.minimum(out[:-1, :], state_costs[0, 1:, :])  # facing west from x + 1
    out[1:, :] = np.minimum(out[1:, :], state_costs[1, :-1, :])
    out[:, :-1] = np.minimum(out[:, :-1], state_costs[2, :, 1:])
    out[:, 1:] = np.minimum(out[:, 1:], state_costs[3, :, :-1])
    return out


def standing_goal(cells: np.ndarray) -> np.ndarray:
    """Goal states "standing on a cell of ``cells``", whatever the facing."""
    return np.broadcast_to(cells, (4, *cells.shape)).copy()


def near(mask: np.ndarray) -> np.ndarray:
    """Cells whose 3 x 3 square (Chebyshev distance <= 1) holds a cell of ``mask``: where
    crafter's ``World.nearby(pos, 1)`` finds it."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    grown = out.copy()
    grown[:, 1:] |= out[:, :-1]
    grown[:, :-1] |= out[:, 1:]
    return grown


def neighbours4(mask: np.ndarray) -> np.ndarray:
    """Cells with a 4-neighbour in ``mask`` (the cell itself excluded)."""
    out = np.zeros_like(mask)
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out
