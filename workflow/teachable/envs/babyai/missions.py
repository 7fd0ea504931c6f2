"""BabyAI's mission grammar (minigrid ``envs/babyai/core/verifier.py``), read back from the text:
a mission's *archetype*, the kind of task it asks for whatever the objects.

The grammar: an action clause is ``go to X``, ``pick up X``, ``open X`` or ``put X next to Y``,
where an object X is ``the|a [color] door|key|ball|box|object [in front of you|behind you|on your
left|on your right]``; ``A and B`` (both, any order), ``A, then B`` and ``A after you B`` (B
first) join two missions, at most one sequencing (``then`` / ``after you``) around ``and`` pairs.

The archetype is the mission with every object removed, connectives kept in mission order:
``go to``, ``pick up``, ``open``, ``put next to`` for one clause; a compound mission keeps the
kinds of its clauses and how they are joined, e.g. ``go to and pick up``, ``open, then go to``,
``put next to after you open``. A compound is not folded into one ``compound`` bucket: its kind
(which clauses, in what order) is what makes it hard, and the text states it. ``after you`` is
kept as written, not reordered into ``then``: the archetype describes what the student reads.
A mission outside this grammar (a plain MiniGrid level's, e.g. ``get to the green goal square``)
has no archetype (None).
"""

from __future__ import annotations

import re

# BALROG's BabyAI tasks, one per mission kind of BabyAI-MixedLocal-v0 (``levels``), in BALROG's order
BALROG_KINDS = ("goto", "pickup", "open", "putnext", "pick_up_seq_go_to")
COLORS = ("red", "green", "blue", "purple", "yellow", "grey")
OBJECT_TYPES = ("door", "key", "ball", "box", "object")
LOCATIONS = ("in front of you", "behind you", "on your left", "on your right")
# one clause's kind, the pattern of its text (verifier.py's surface() of each ActionInstr)
_OBJ = rf"(?:the|a) (?:(?:{'|'.join(COLORS)}) )?(?:{'|'.join(OBJECT_TYPES)})(?: (?:{'|'.join(LOCATIONS)}))?"
CLAUSES = {
    "go to": re.compile(rf"go to {_OBJ}"),
    "pick up": re.compile(rf"pick up {_OBJ}"),
    "open": re.compile(rf"open {_OBJ}"),
    "put next to": re.compile(rf"put {_OBJ} next to {_OBJ}"),
}
CONNECTIVES = (", then ", " after you ", " and ")  # SeqInstr surfaces: BeforeInstr, AfterInstr, AndInstr
_SPLIT = re.compile("(" + "|".join(map(re.escape, CONNECTIVES)) + ")")


def clause_kind(text: str) -> str | None:
    """The kind of one action clause (``CLAUSES``), or None when ``text`` is not one."""
    for kind, pattern in CLAUSES.items():
        if pattern.fullmatch(text):
            return kind
    return None


def mission_archetype(mission: str) -> str | None:
    """The archetype of a BabyAI mission (module docstring), or None outside BabyAI's grammar."""
    parts = _SPLIT.split(mission.strip())
    kinds = [clause_kind(p) for p in parts[::2]]
    if any(k is None for k in kinds):
        return None
    out = kinds[0]
    for connective, kind in zip(parts[1::2], kinds[1:]):
        out += connective + kind
    return out
