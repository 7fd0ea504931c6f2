"""The text observation of a crafter state, in the format of BALROG's Crafter wrapper.

BALROG's leaderboard (e.g. GPT-4o 33.1% progression, Llama-3.1-8B 25.5%) was measured on this
text, so the student here reads the same information in the same line shapes:

    You see:
    - grass 1 step to your west
    - tree 3 steps to your north-east

    You face grass at your front.

    Your status:
    - health: 9/9
    ...

    You have nothing in your inventory.

- The view is crafter's local view: 9 columns (4 west .. 4 east) by 7 rows (3 north .. 3 south)
  around the player, cells outside the map left out. Every visible kind of thing (a material,
  or a creature / plant / arrow, which hides the material under it) is listed once, at its
  nearest cell by Manhattan distance, with the compass directions of that cell joined by "-".
  Grass, sand and path are listed (BALROG's default keeps them).
- "You face X at your front.": the material or object in the facing cell ("nothing" off the map).
- Status lists health / food / drink / energy out of 9; the inventory lists the non-zero items
  (crafter's names, e.g. ``wood_pickaxe``) or says it is empty.

Deviations from BALROG's wrapper, and why:
- Lines of "You see:" are ordered by distance, cells at one distance taken north .. south, then
  west .. east (BALROG: the column-major order of each kind's first cell, an artefact of its
  loop); the same order breaks ties between two nearest cells of one kind.
- The sleeping line is our own wording; BALROG's first observation comes after an extra noop
  step, ours is the state right after reset (a prefix replays exactly without hidden steps).
- The BALROG protocol (``env.protocol: balrog``, ``balrog.py``) takes BALROG's scan order, sleeping
  line and first no-op instead, and adds its prompt history; this text is the study's.
- It is computed from the world (numpy slices of the material / object maps), not from an RGB
  frame or crafter's semantic map, so no pixels are rendered.
"""

from __future__ import annotations

from typing import Any

from .world import MATERIAL_IDS

VIEW_W, VIEW_H = 9, 7
VITALS = ("health", "food", "drink", "energy")
_MATERIAL_NAMES = {i: m for m, i in MATERIAL_IDS.items()}
# the 62 offsets of the view (player's own cell excluded), nearest first, ties north..south, west..east
_HALF_W, _HALF_H = VIEW_W // 2, VIEW_H // 2
_OFFSETS = sorted(
    (
        (dx, dy)
        for dx in range(-_HALF_W, _HALF_W + 1)
        for dy in range(-_HALF_H, _HALF_H + 1)
        if (dx, dy) != (0, 0)
    ),
    key=lambda o: (abs(o[0]) + abs(o[1]), o[1], o[0]),
)


def compass(dx: int, dy: int) -> str:
    """``north-west`` for an offset (x grows east, y grows south); '' for (0, 0)."""
    ns = "north" if dy < 0 else "south" if dy > 0 else ""
    ew = "west" if dx < 0 else "east" if dx > 0 else ""
    return "-".join(w for w in (ns, ew) if w)


def thing_at(world: Any, x: int, y: int) -> str:
    """The name of what occupies a cell: an object's class ("cow", "zombie", "plant", "arrow")
    over its material ("grass", "tree", "table"); "nothing" outside the map."""
    w, h = world.area
    if not (0 <= x < w and 0 <= y < h):
        return "nothing"
    idx = int(world._obj_map[x, y])
    if idx:
        return type(world._objects[idx]).__name__.lower()
    return _MATERIAL_NAMES[int(world._mat_map[x, y])]


def view_offsets(px: int, py: int, area: tuple[int, int]) -> list[tuple[int, int]]:
    """(dx, dy) of the view's cells inside the map around the player at (px, py), in the
    observation's order: nearest first, ties north .. south, then west .. east."""
    w, h = area
    return [(dx, dy) for dx, dy in _OFFSETS if 0 <= px + dx < w and 0 <= py + dy < h]


def visible_things(world: Any, px: int, py: int) -> list[tuple[str, int, int]]:
    """(name, dx, dy) of the nearest cell of each kind of thing in the player's view."""
    seen: dict[str, tuple[int, int]] = {}
    mat, objmap, objs = world._mat_map, world._obj_map, world._objects
    for dx, dy in view_offsets(px, py, world.area):
        x, y = px + dx, py + dy
        idx = objmap[x, y]
        name = type(objs[idx]).__name__.lower() if idx else _MATERIAL_NAMES[mat[x, y]]
        if name not in seen:
            seen[name] = (dx, dy)
    return [(name, dx, dy) for name, (dx, dy) in seen.items()]


def _steps(n: int) -> str:
    return f"{n} step{'s' if n > 1 else ''}"


def describe(world: Any, player: Any) -> str:
    """The full observation text of the state (see the module docstring)."""
    px, py = int(player.pos[0]), int(player.pos[1])
    parts = []
    if player.health <= 0:
        parts.append("You died.")
    elif player.sleeping:
        parts.append("You are asleep; your actions have no effect until your energy is full.")
    seen = visible_things(world, px, py)
    if seen:
        lines = [f"- {n} {_steps(abs(dx) + abs(dy))} to your {compass(dx, dy)}" for n, dx, dy in seen]
        parts.append("You see:\n" + "\n".join(lines))
    else:
        parts.append("You see nothing away from you.")
    fx, fy = int(player.facing[0]), int(player.facing[1])
    parts.append(f"You face {thing_at(world, px + fx, py + fy)} at your front.")
    parts.append(vitals_and_inventory(player))
    return "\n\n".join(parts)


def vitals_and_inventory(player: Any) -> str:
    """The status lines (health / food / drink / energy out of 9), then the non-zero items."""
    inv = player.inventory
    status = "Your status:\n" + "\n".join(f"- {v}: {inv[v]}/9" for v in VITALS)
    items = [f"- {k}: {n}" for k, n in inv.items() if k not in VITALS and n > 0]
    inventory = "Your inventory:\n" + "\n".join(items) if items else "You have nothing in your inventory."
    return f"{status}\n\n{inventory}"
