"""Crafter's 17 actions as text: names, the one alias table, the parser and the action vocabulary.

- ``ACTIONS``: BALROG's names, in crafter's own order (``crafter.constants.actions``), so
  ``ACTIONS[i]`` is crafter action ``i``.
- ``PHRASES`` is the ONE alias table. For each action it lists phrase templates built from word
  lists: a verb (inflected: "heads", "went", "crafted"), optional fillers ("to the", "a") and an
  object ("west", "wood pickaxe", "table"). One regex per action is compiled from it; the lenient
  parser matches it against a whole answer, and ``mentioned_actions`` searches it anywhere in a
  text (whole words, any case). Nothing else maps text to actions.
- Ordinary words are deliberately NOT aliases when they carry state: a bare direction ("the water
  is 4 cells north-east"), "drink" and "food" as the names of the vital statistics, "plant" as
  the object, "nothing". The verbs of acting are aliases in every inflection, bare ("do",
  "interact", "hit", "mine", "collect", "use", "sleep", "rest", "wait") or with their object
  ("go west", "head north", "craft a wood pickaxe", "build a table", "put a stone", "drink
  water", "eat the cow", "plant a sapling").
- A text that mentions two actions where one phrase lies inside the other ("do nothing" holds
  "do") counts as the longer one for the parser; the vocabulary check reports both.
"""

from __future__ import annotations

import re
from typing import Any

from ..base import INVALID_ACTION, ParseMode, json_action_field, shared_error_type

ACTIONS: tuple[str, ...] = (
    "Noop",
    "Move West",
    "Move East",
    "Move North",
    "Move South",
    "Do",
    "Sleep",
    "Place Stone",
    "Place Table",
    "Place Furnace",
    "Place Plant",
    "Make Wood Pickaxe",
    "Make Stone Pickaxe",
    "Make Iron Pickaxe",
    "Make Wood Sword",
    "Make Stone Sword",
    "Make Iron Sword",
)
ACTION_INDEX = {a: i for i, a in enumerate(ACTIONS)}
INVALID_CODE = len(ACTIONS)  # the code of INVALID_ACTION in an encoded action prefix
MOVES = ACTIONS[1:5]  # West, East, North, South: crafter's move_left/right/up/down
PLACES = ACTIONS[7:11]
MAKES = ACTIONS[11:17]

ERROR_TYPES = (
    "correct",
    "wrong_direction",
    "moved_instead_of_acting",
    "acted_instead_of_moving",
    "wrong_interaction",
    "idled",
    "slept",
    "invalid_action",
    "unknown",
)

# -------------------------------------------------------------------------------- word lists

_MOVE_VERBS = ("move", "go", "walk", "head", "step", "travel", "run", "proceed", "turn", "face")
_TOWARD = ("to the", "towards the", "toward the", "to", "towards", "toward", "one step", "a step")
_DIRECTIONS = {
    "Move West": ("west", "left", "westward", "westwards"),
    "Move East": ("east", "right", "eastward", "eastwards"),
    "Move North": ("north", "up", "northward", "northwards", "upward", "upwards"),
    "Move South": ("south", "down", "southward", "southwards", "downward", "downwards"),
}
_DO_VERBS = (
    "do", "interact", "use", "hit", "attack", "strike", "punch", "mine", "chop", "dig", "collect",
    "gather", "harvest", "fight", "kill", "defeat", "slay", "break", "cut",
)  # fmt: skip
_THINGS = (
    "tree", "wood", "stone", "rock", "coal", "iron", "diamond", "water", "lake", "grass", "sand",
    "cow", "zombie", "skeleton", "plant", "sapling", "it", "that", "this",
)  # fmt: skip
_ARTICLES = ("a", "an", "the", "some", "one", "your", "my")
_PLACE_VERBS = ("place", "put", "build", "set", "set up", "lay", "construct", "drop", "install")
_MAKE_VERBS = ("make", "craft", "build", "create", "forge", "produce")
_PLACED = {
    "Place Stone": ("stone", "rock", "stone block", "block of stone"),
    "Place Table": ("table", "crafting table", "work bench", "workbench", "bench"),
    "Place Furnace": ("furnace", "oven", "kiln", "smelter"),
    "Place Plant": ("plant", "sapling", "seed", "seedling"),
}
_MATERIALS = {"Wood": ("wood", "wooden"), "Stone": ("stone",), "Iron": ("iron",)}
_TOOLS = {"Pickaxe": ("pickaxe", "pick axe", "pick"), "Sword": ("sword",)}

# inflections a suffix rule gets wrong or misses
_IRREGULAR = {
    "go": ("went", "gone", "goes"), "run": ("ran",), "make": ("made",), "build": ("built",),
    "dig": ("dug",), "strike": ("struck",), "fight": ("fought",), "lay": ("laid",),
    "eat": ("ate", "eaten"), "drink": ("drank", "drunk"), "sleep": ("slept",), "break": ("broke", "broken"),
    "slay": ("slew", "slain"), "set": (), "put": (), "cut": (), "hit": (),
}  # fmt: skip


def word_forms(word: str) -> tuple[str, ...]:
    """``word`` and its inflections: -s/-es, -ed/-d, -ing (final e dropped, final consonant
    doubled), plus irregular forms. Over-generated forms ("goed") are harmless."""
    stem = word[:-1] if word.endswith("e") else word
    forms = {word, word + "s", word + "es", stem + "ed", stem + "ing", word + "d"}
    if word[-1] not in "aeiouwy":
        forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    forms |= set(_IRREGULAR.get(word, ()))
    return tuple(sorted(forms, key=len, reverse=True))


def _alt(options: tuple[str, ...] | list[str]) -> str:
    """A regex alternation of literal phrases (longest first; spaces match any whitespace)."""
    ordered = sorted(set(options), key=len, reverse=True)
    return "(?:" + "|".join(r"\s+".join(re.escape(w) for w in o.split()) for o in ordered) + ")"


def _verb(verbs: tuple[str, ...]) -> str:
    """Any inflection of any of ``verbs`` (multi-word verbs inflect their first word)."""
    forms = []
    for v in verbs:
        first, *rest = v.split()
        forms += [" ".join([f, *rest]) for f in word_forms(first)]
    return _alt(forms)


_OPT_ARTICLE = r"(?:" + _alt(_ARTICLES) + r"\s+)?"
_SP = r"\s+"
_NOT_A_TOOL = r"(?!\s*(?:pick|sword|axe))"  # "build a stone" but not "build a stone sword"

# ------------------------------------------------------------------------------- the table

PHRASES: dict[str, tuple[str, ...]] = {
    "Noop": (
        _alt(("noop", "no op", "nop", "no action", "do nothing", "nothing to do", "stand still")),
        _verb(("wait", "idle", "pause", "stay")) + r"(?:\s+(?:here|put|still|in\s+place))?",
    ),
    **{
        action: (_verb(_MOVE_VERBS) + r"(?:\s+" + _alt(_TOWARD) + r")?" + _SP + _alt(words),)
        for action, words in _DIRECTIONS.items()
    },
    "Do": (
        _verb(_DO_VERBS) + r"(?:\s+(?:with\s+)?" + _OPT_ARTICLE + _alt(_THINGS) + r")?",
        _verb(("drink",)) + _SP + r"(?:from\s+)?" + _OPT_ARTICLE + _alt(("water", "lake", "river")),
        _verb(("eat",)) + _SP + _OPT_ARTICLE + _alt(("cow", "plant", "food", "meat", "it")),
    ),
    "Sleep": (
        _verb(("sleep", "rest", "nap")),
        _alt(("go to sleep", "go to bed", "take a nap", "lie down", "fall asleep")),
    ),
    "Place Stone": (_verb(_PLACE_VERBS) + _SP + _OPT_ARTICLE + _alt(_PLACED["Place Stone"]) + _NOT_A_TOOL,),
    "Place Plant": (
        _verb(_PLACE_VERBS) + _SP + _OPT_ARTICLE + _alt(_PLACED["Place Plant"]),
        _verb(("plant", "sow")) + _SP + _OPT_ARTICLE + _alt(("sapling", "seed", "seedling", "it")),
    ),
    "Place Table": (_verb(_PLACE_VERBS + _MAKE_VERBS) + _SP + _OPT_ARTICLE + _alt(_PLACED["Place Table"]),),
    "Place Furnace": (
        _verb(_PLACE_VERBS + _MAKE_VERBS) + _SP + _OPT_ARTICLE + _alt(_PLACED["Place Furnace"]),
    ),
    **{
        f"Make {m} {t}": (_verb(_MAKE_VERBS) + _SP + _OPT_ARTICLE + _alt(ms) + _SP + _alt(ts),)
        for m, ms in _MATERIALS.items()
        for t, ts in _TOOLS.items()
    },
}
assert set(PHRASES) == set(ACTIONS), sorted(set(ACTIONS) ^ set(PHRASES))

_PATTERNS: dict[str, re.Pattern[str]] = {
    a: re.compile(r"(?<![\w-])(?:" + "|".join(PHRASES[a]) + r")(?![\w-])") for a in ACTIONS
}


def normalise(text: str) -> str:
    """Lower case; underscores, hyphens, quotes and brackets become spaces; whitespace collapsed."""
    t = text.lower().replace("_", " ").replace("-", " ")
    t = re.sub(r"[\"'`*<>\[\](){}]", " ", t)
    return " ".join(t.split())


def _spans(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, action, phrase) of every vocabulary match in the normalised ``text``."""
    return [(m.start(), m.end(), a, m.group(0)) for a, pat in _PATTERNS.items() for m in pat.finditer(text)]


def mentioned_actions(text: str) -> dict[str, str]:
    """Every action that ``text`` names or paraphrases, with the longest phrase found: a name
    ("Place Table"), crafter's own name ("make_wood_pickaxe"), or an alias of ``PHRASES`` in
    any inflection ("headed west", "crafting a wooden pick", "put a stone", "interacts", "do").
    Case-insensitive, whole words: "west" alone or "a drink of 2" mention nothing."""
    if not isinstance(text, str):
        raise TypeError(f"mentioned_actions needs a string, got {type(text).__name__}: {text!r}")
    found: dict[str, str] = {}
    for _, _, action, phrase in _spans(normalise(text)):
        if len(phrase) > len(found.get(action, "")):
            found[action] = phrase
    return found


_PREFIXES = ("action ", "final answer ", "answer ", "next action ", "i will ", "i ll ", "i choose ")


def _strict_norm(text: str) -> str:
    t = " ".join(text.strip().lower().split())
    while t.endswith("."):
        t = t[:-1].rstrip()
    return t


_STRICT = {a.lower(): a for a in ACTIONS}


def parse_action_text(text: Any, mode: ParseMode = "strict", _allow_json: bool = True) -> str | None:
    """Map a model output to one of ``ACTIONS`` or ``None``.

    strict: after strip / lower case / collapsed spaces / trailing periods, the text IS an
    action name ("move west", "Make Wood Pickaxe."). lenient: also a JSON object with an
    "action" field, a whole answer that is one alias ("go west", "move_left", "craft a wooden
    pick", "attack the zombie"), or a longer text whose aliases name exactly one action (an
    alias inside a longer alias of another action does not count); two actions -> ``None``."""
    if mode not in ("strict", "lenient"):
        raise ValueError(f"unknown parse mode {mode!r}; expected 'strict' or 'lenient'")
    if not isinstance(text, str):
        return None
    exact = _STRICT.get(_strict_norm(text))
    if exact is not None or mode == "strict":
        return exact
    inner = json_action_field(text) if _allow_json else None
    if inner is not None:
        return parse_action_text(inner, "lenient", _allow_json=False)
    t = normalise(text).rstrip(".!?:;, ").lstrip(":;, ")
    for prefix in _PREFIXES:
        if t.startswith(prefix):
            t = t[len(prefix) :]
            break
    whole = [a for a, pat in _PATTERNS.items() if pat.fullmatch(t)]
    if len(whole) == 1:
        return whole[0]
    spans = _spans(t)
    outer = {
        a for s, e, a, _ in spans
        if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) and a2 != a for s2, e2, a2, _ in spans)
    }  # fmt: skip
    return outer.pop() if len(outer) == 1 else None


def classify_error(student_action: str | None, expert_action: str) -> str:
    """A short category comparing the student's action with the expert's (``ERROR_TYPES``)."""
    shared = shared_error_type(student_action, expert_action, ACTION_INDEX)
    if shared is not None:
        return shared
    if student_action in MOVES:
        return "wrong_direction" if expert_action in MOVES else "moved_instead_of_acting"
    if student_action == "Noop":
        return "idled"
    if student_action == "Sleep":
        return "slept"
    if expert_action in MOVES:
        return "acted_instead_of_moving"
    return "wrong_interaction"


def encode(actions: list[str] | tuple[str, ...]) -> bytes:
    """An action prefix as bytes (one code per action, ``INVALID_CODE`` for INVALID_ACTION); an
    unknown action is an error naming it."""
    out = bytearray()
    for a in actions:
        code = INVALID_CODE if a == INVALID_ACTION else ACTION_INDEX.get(a, -1)
        if code < 0:
            raise ValueError(f"{a!r} is not a Crafter action nor INVALID_ACTION (valid: {ACTIONS})")
        out.append(code)
    return bytes(out)
