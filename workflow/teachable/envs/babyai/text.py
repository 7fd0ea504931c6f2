"""Text rendering of a MiniGrid/BabyAI egocentric partial view, in BALROG's BabyAI wording.

Input is the ``obs["image"]`` array of a MiniGrid env: shape ``(W, H, 3)`` (7x7 by default) of
``(object index, color index, state)`` triples, indexed ``image[column, row]``. The agent sits at
column ``W // 2`` of the last row ``H - 1`` and faces "up" (towards row 0); the agent's own cell
holds the carried object, if any.

Wording follows BALROG's BabyAI text observations (which strip BabyAI-Text's "You see " prefix),
so numbers stay comparable with BALROG-style prompts:

- ``You carry a blue key`` (first line; absent when the hands are empty);
- ``a wall 3 steps forward`` / ``a wall 1 step left`` / ``a wall 2 steps right``: the nearest wall
  straight ahead, straight to the left and straight to the right (at most one line each, in that
  order);
- one line per visible object, the lateral offset first: ``a red ball 1 step left and 2 steps
  forward``, ``a grey key 3 steps forward``, ``a green box 2 steps right``; doors carry their state:
  ``a closed red door ...``, ``a locked purple door ...``, ``an open blue door ...``. Objects are
  listed column by column from left to right, and from far to near within a column (BALROG's
  order), which makes the ordering deterministic.

The study's text (``protocol="study"``) deviates from BabyAI-Text's generator twice, both towards
faithfulness to BabyAI's own observation (see flowersteam/Grounding_LLMs_with_online_RL issue #20):
a wall is still reported when a key/ball/box stands between the agent and it (objects never block
the view in BabyAI), and an open door is written "an open ..." rather than "a open ...". Its ray
stops at a door (the door is listed as an object) and at an unseen cell (nothing behind it is
visible).

BALROG's text (``protocol="balrog"``, ``PROTOCOLS``) is BabyAI-Text's as BALROG shows it: a ray
passes empty and unseen cells and stops at the first other one, reporting it only when it is a
wall (a wall behind a key, ball, box or door goes unreported), and an open door is "a open ...".
The lines and their order are otherwise the same.
"""

from __future__ import annotations

from typing import Any

from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT

_UNSEEN = 0
_EMPTY = 1
_WALL = 2
_DOOR = 4
_DOOR_STATES = {0: "open", 1: "closed", 2: "locked"}

# object types that are never listed as objects (walls get their own ray lines)
_NOT_OBJECTS = frozenset({_UNSEEN, _EMPTY, _WALL})
PROTOCOLS = ("study", "balrog")  # the texts (module docstring); ``env.protocol`` picks one


def steps(n: int, direction: str) -> str:
    """``1 step left`` / ``3 steps forward``."""
    return f"{n} step{'s' if n != 1 else ''} {direction}"


def offset_phrase(right: int, forward: int) -> str:
    """The relative position of a cell, lateral offset first (BALROG order).

    ``right`` > 0 is to the agent's right, < 0 to its left; ``forward`` > 0 is ahead.
    """
    parts = []
    if right > 0:
        parts.append(steps(right, "right"))
    elif right < 0:
        parts.append(steps(-right, "left"))
    if forward > 0:
        parts.append(steps(forward, "forward"))
    elif forward < 0:
        parts.append(steps(-forward, "back"))
    return " and ".join(parts)


def object_name(type_idx: int, color_idx: int, state: int = 0, protocol: str = "study") -> str:
    """``a red ball`` / ``a locked purple door`` / ``an open blue door`` (balrog: ``a open blue door``)."""
    obj = IDX_TO_OBJECT.get(type_idx, "object")
    color = IDX_TO_COLOR.get(color_idx, "")
    if type_idx == _DOOR:
        st = _DOOR_STATES.get(state, "closed")
        article = "an" if st == "open" and protocol == "study" else "a"
        return f"{article} {st} {color} door"
    if obj == "lava":
        return "lava"
    return f"a {color} {obj}" if color else f"a {obj}"


def describe_view(image: Any, protocol: str = "study") -> list[str]:
    """The observation lines for one egocentric view in ``protocol``'s text (module docstring)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown BabyAI text protocol {protocol!r}; expected one of {PROTOCOLS}")
    balrog = protocol == "balrog"
    # nested Python lists are much faster to index than a numpy array element by element
    cells = image.tolist() if hasattr(image, "tolist") else image
    width = len(cells)
    height = len(cells[0])
    ax, ay = width // 2, height - 1
    lines: list[str] = []

    carried = cells[ax][ay]
    if carried[0] not in _NOT_OBJECTS:
        # BALROG: "You carry a blue key"
        lines.append("You carry " + object_name(carried[0], carried[1], carried[2], protocol))

    # walls straight ahead, to the left, to the right
    rays = (
        ("forward", [(ax, ay - d) for d in range(1, ay + 1)]),
        ("left", [(ax - d, ay) for d in range(1, ax + 1)]),
        ("right", [(ax + d, ay) for d in range(1, width - ax)]),
    )
    for direction, ray in rays:
        for dist, (i, j) in enumerate(ray, start=1):
            kind = cells[i][j][0]
            if kind == _WALL:
                lines.append("a wall " + steps(dist, direction))
                break
            if balrog and kind != _EMPTY and kind != _UNSEEN:
                break  # balrog: the first thing on the ray hides any wall behind it
            if not balrog and (kind == _UNSEEN or kind == _DOOR):
                break
            # study: empty floor or a key/ball/box, the view goes on behind it

    for i in range(width):
        col = cells[i]
        for j in range(height):
            if i == ax and j == ay:
                continue
            t, c, s = col[j]
            if t in _NOT_OBJECTS:
                continue
            lines.append(object_name(t, c, s, protocol) + " " + offset_phrase(i - ax, ay - j))
    return lines


def textualize(image: Any, protocol: str = "study") -> str:
    """The observation text: ``describe_view`` lines joined by newlines."""
    return "\n".join(describe_view(image, protocol))
