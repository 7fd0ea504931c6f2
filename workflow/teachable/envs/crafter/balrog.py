"""The BALROG protocol of the Crafter family (``env.protocol: balrog``): what BALROG's Crafter
evaluation shows its agent, so that a progression measured here stands beside its leaderboard.

- Episode: no goal; it runs until the player dies or ``MAX_STEPS`` (2,000) agent steps, after one
  hidden no-op that BALROG's reset takes (its first observation is the state after that no-op).
- Instruction: the game's 22 achievements, numbered in BALROG's order (``ACHIEVEMENT_ORDER``,
  the order of the Crafter paper's figures, not crafter's alphabetical one), and that a history
  of observations and actions follows.
- State text (``state_text``): BALROG's two parts of a state, the scene (``scene_text``: a
  status line, what is seen, what is faced) and the vitals with the inventory (``text.py``'s
  lines). It differs from the study text (``text.describe``) in two ways: the nearest cell of a
  kind is the first one met scanning the view column by column, west to east, each column north
  to south, and the lines of "You see:" are listed in the order the scan first meets each kind;
  and the sleeping line is BALROG's own observation string. Away from the map's edge (the 9 x 7
  view inside the 64 x 64 map) the text equals BALROG's; at the edge BALROG slices past the
  map and its text breaks, while this one lists the cells inside the map.
- Prompt history (``history_text``): the last ``HISTORY`` observations with the actions between
  them, as BALROG's prompt builder keeps them (a window of 2 x 16 events ending at the current
  observation, so from step 16 on it opens with the action whose observation fell out), past
  scenes as "Observation:", the current state as "Current Observation:" with the vitals and
  inventory before the scene. An invalid answer is played as Noop (BALROG's default action too)
  and the next scene says so; the history names it ``INVALID_ACTION``, as the env received it
  (BALROG shows the model's raw answer, which the env never sees).
- Left out: BALROG's closing line on the answer's format (the student's prompt ends with the valid
  actions and "Action:", ``policies.prompt``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .rules import ACHIEVEMENTS
from .text import VIEW_H, VIEW_W, _steps, compass, thing_at, vitals_and_inventory
from .world import MATERIAL_IDS

MAX_STEPS = 2000  # BALROG's Crafter horizon (agent steps after the hidden no-op)
HIDDEN_NOOPS = 1  # BALROG's reset steps the world once with a no-op before the first observation
HISTORY = 16  # observations in BALROG's prompt (its max_text_history)
ACHIEVEMENT_ORDER = (
    "collect_wood", "place_table", "eat_cow", "collect_sapling", "collect_drink", "make_wood_pickaxe",
    "make_wood_sword", "place_plant", "defeat_zombie", "collect_stone", "place_stone", "eat_plant",
    "defeat_skeleton", "make_stone_pickaxe", "make_stone_sword", "wake_up", "place_furnace", "collect_coal",
    "collect_iron", "make_iron_pickaxe", "make_iron_sword", "collect_diamond",
)  # fmt: skip
assert sorted(ACHIEVEMENT_ORDER) == sorted(ACHIEVEMENTS), "BALROG's list names crafter's 22 achievements"
SLEEPING = "You are sleeping, and will not be able take actions until energy is full."  # BALROG's string, verbatim
DEAD = "You died."
_NAMES = {i: m for m, i in MATERIAL_IDS.items()}
_HALF_W, _HALF_H = VIEW_W // 2, VIEW_H // 2
_COLUMN_MAJOR = [(dx, dy) for dx in range(-_HALF_W, _HALF_W + 1) for dy in range(-_HALF_H, _HALF_H + 1)
                 if (dx, dy) != (0, 0)]  # fmt: skip


def achievement_title(name: str) -> str:
    """``collect_wood`` -> ``Collect Wood``."""
    return name.replace("_", " ").title()


def instruction() -> str:
    """The task under the protocol: no goal, every achievement, numbered in BALROG's order."""
    listed = "\n".join(f"{i}. {achievement_title(a)}" for i, a in enumerate(ACHIEVEMENT_ORDER, 1))
    return (f"Play Crafter and get as far as you can: unlock as many of these {len(ACHIEVEMENT_ORDER)} "
            f"achievements as possible.\n{listed}\n"
            "The observation shows your recent observations and actions, oldest first, then the current one.")


def sightings(world: Any, px: int, py: int) -> list[tuple[str, int, int]]:
    """(name, dx, dy) of each kind in the view at its nearest cell (Manhattan), the first met
    on a column-major scan where cells tie, listed in the order the scan first meets each kind."""
    best: dict[str, tuple[int, int, int]] = {}
    w, h = world.area
    mat, objmap, objs = world._mat_map, world._obj_map, world._objects
    for dx, dy in _COLUMN_MAJOR:
        x, y = px + dx, py + dy
        if not (0 <= x < w and 0 <= y < h):
            continue
        idx = objmap[x, y]
        name = type(objs[idx]).__name__.lower() if idx else _NAMES[mat[x, y]]
        d = abs(dx) + abs(dy)
        if name not in best or d < best[name][0]:
            best[name] = (d, dx, dy)
    return [(name, dx, dy) for name, (_, dx, dy) in best.items()]


def scene_text(world: Any, player: Any) -> str:
    """The scene of a state: BALROG's status line (asleep before dead, as BALROG checks), what is
    seen and what is faced (module docstring)."""
    px, py = int(player.pos[0]), int(player.pos[1])
    seen = sightings(world, px, py)
    lines = [f"- {n} {_steps(abs(dx) + abs(dy))} to your {compass(dx, dy)}" for n, dx, dy in seen]
    fx, fy = int(player.facing[0]), int(player.facing[1])
    scene = (("You see:\n" + "\n".join(lines)) if lines else "You see nothing away from you.") + \
        f"\n\nYou face {thing_at(world, px + fx, py + fy)} at your front."  # fmt: skip
    status = SLEEPING if player.sleeping else DEAD if player.health <= 0 else ""
    return f"{status}\n\n\n\n{scene}" if status else scene  # BALROG: the status block, then an empty line block


def state_text(world: Any, player: Any) -> tuple[str, str]:
    """(scene, vitals and inventory) of a state: BALROG's long- and short-term context."""
    return scene_text(world, player), vitals_and_inventory(player)


def after_invalid(scene: str) -> str:
    """The scene after an answer that named no valid action (played as Noop)."""
    return f"Your previous answer named no valid action; Noop was played.\n\nObservation:\n{scene}"


def history_text(turns: Iterable[tuple[str | None, str]], scene: str, status: str) -> str:
    """The prompt history: ``turns`` are (past scene or None, the action taken after it), oldest
    first (None: the window's opening action, whose scene fell out); then the current state."""
    parts: list[str] = []
    for past, action in turns:
        if past is not None:
            parts.append(f"Observation:\n{past}")
        parts.append(f"Action: {action}")
    parts.append(f"Current Observation:\n{status}\n{scene}")
    return "\n\n".join(parts)


def window(turns: Sequence[tuple[str | None, str]]) -> list[tuple[str | None, str]]:
    """The turns BALROG's window keeps: the last ``HISTORY - 1`` scenes with their actions, and
    the action before them (its scene dropped) when there is one."""
    kept = list(turns[-(HISTORY - 1):])
    if len(turns) >= HISTORY:
        kept.insert(0, (None, turns[-HISTORY][1]))
    return kept
