"""BabyAI's actions (BALROG's six), the parser of model outputs, the action vocabulary (every
phrase the parser maps to an action: the one list the teacher rules check diagnoses against) and
the error categories comparing a student's action with the expert's."""

from __future__ import annotations

import re
from typing import Any

from ..base import ParseMode, json_action_field, shared_error_type

ACTIONS: tuple[str, ...] = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")
# MiniGrid's Actions enum: left=0, right=1, forward=2, pickup=3, drop=4, toggle=5, done=6
_ACTION_TO_IDX = {a: i for i, a in enumerate(ACTIONS)}
_IDX_TO_ACTION = dict(enumerate(ACTIONS))
_DONE_IDX = 6

TURNS = frozenset({"turn left", "turn right"})
MOVES = frozenset({"turn left", "turn right", "go forward"})
INTERACTIONS = frozenset({"pick up", "drop", "toggle"})

ERROR_TYPES = (
    "correct",
    "wrong_turn",
    "moved_instead_of_turning",
    "turned_instead_of_moving",
    "missed_interaction",
    "unneeded_interaction",
    "wrong_interaction",
    "invalid_action",
    "unknown",
)



# whole-answer variants (after normalisation) -> action
_ALIASES: dict[str, str] = {}
for _a, _variants in {
    "turn left": [
        "left",
        "turn left",
        "turn to the left",
        "turn to your left",
        "turning left",
        "rotate left",
        "turn left 90 degrees",
        "left turn",
    ],
    "turn right": [
        "right",
        "turn right",
        "turn to the right",
        "turn to your right",
        "turning right",
        "rotate right",
        "turn right 90 degrees",
        "right turn",
    ],
    "go forward": [
        "forward",
        "go forward",
        "move forward",
        "moving forward",
        "going forward",
        "go ahead",
        "move ahead",
        "go straight",
        "move straight",
        "step forward",
        "walk forward",
        "forwards",
        "go forwards",
        "move forwards",
        "advance",
    ],
    "pick up": [
        "pick up",
        "pickup",
        "pick it up",
        "picking up",
        "pick",
        "grab",
        "grab it",
        "take",
        "take it",
        "pick up object",
        "pick up the object",
    ],
    "drop": [
        "drop",
        "drop it",
        "dropping",
        "put down",
        "put it down",
        "drop object",
        "drop the object",
        "release",
    ],
    "toggle": [
        "toggle",
        "toggling",
        "toggle it",
        "open",
        "open it",
        "open door",
        "open the door",
        "opening",
        "unlock",
        "unlock the door",
        "close the door",
    ],
}.items():
    for _v in _variants:
        _ALIASES[_v] = _a

# mentions of an action inside a longer answer
_MENTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "turn left",
        re.compile(r"\b(?:turn(?:s|ing|ed)?|rotat(?:e|es|ing))\s+(?:to\s+(?:the|your)\s+)?left\b"),
    ),
    (
        "turn right",
        re.compile(r"\b(?:turn(?:s|ing|ed)?|rotat(?:e|es|ing))\s+(?:to\s+(?:the|your)\s+)?right\b"),
    ),
    (
        "go forward",
        re.compile(
            r"\b(?:go(?:es|ing)?|mov(?:e|es|ing)|step|walk(?:s|ing)?)\s+(?:straight\s+)?(?:forwards?|ahead)\b"
        ),
    ),
    (
        "pick up",
        re.compile(r"\bpick(?:s|ing)?\s+(?:(?:it|them|the\s+\w+(?:\s+\w+)?)\s+)?up\b|\bpickup\b"),
    ),
    ("drop", re.compile(r"\bdrop(?:s|ping)?\b")),
    ("toggle", re.compile(r"\btoggl(?:e|es|ing)\b")),
)

# The vocabulary of each action, for the teacher rules: every phrase the parser maps to the
# action (its name, its aliases, its mention patterns), with the alias's first word inflected
# ("grabbed", "opens", "taken", "went forward"), matched as whole words in any text.
_IRREGULAR_FORMS = {"go": ("went", "gone"), "take": ("took", "taken")}


def _word_forms(word: str) -> list[str]:
    """``word`` with its -s/-es, -ed/-d, -ing forms (final consonant doubled or not, a final e
    dropped) and irregular past forms; over-generated forms ("lefted") are harmless."""
    stem = word[:-1] if word.endswith("e") else word
    forms = {word, word + "s", word + "es", stem + "ed", stem + "ing"}
    forms |= {word + word[-1] + "ed", word + word[-1] + "ing", *_IRREGULAR_FORMS.get(word, ())}
    return sorted(forms, key=len, reverse=True)


def _phrase_pattern(phrase: str) -> str:
    first, *rest = phrase.split()
    head = "(?:" + "|".join(re.escape(f) for f in _word_forms(first)) + ")"
    return r"\s+".join([head, *(re.escape(w) for w in rest)])


def _vocabulary_pattern(action: str) -> re.Pattern[str]:
    phrases = sorted({action, *(v for v, a in _ALIASES.items() if a == action)}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(_phrase_pattern(p) for p in phrases) + r")(?!\w)")


_VOCABULARY: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...] = tuple(
    (a, (_vocabulary_pattern(a), *(pat for b, pat in _MENTIONS if b == a))) for a in ACTIONS
)


def mentioned_actions(text: str) -> dict[str, str]:
    """Every action that ``text`` names or paraphrases, with the (lower-cased) phrase found: its
    name, an alias of the parser ("rotate left", "move ahead", "grab", "open", "release") in any
    inflection ("grabbed", "opens", "taken"), or a mention pattern ("pick the key up"). Case-
    insensitive, whole words: "left" is found in "2 cells left", not in "leftover"."""
    if not isinstance(text, str):
        raise TypeError(f"mentioned_actions needs a string, got {type(text).__name__}: {text!r}")
    t = " ".join(text.lower().replace("_", " ").replace("-", " ").split())
    found = {}
    for action, patterns in _VOCABULARY:
        phrases = [m.group(0) for pat in patterns for m in pat.finditer(t)]
        if phrases:
            found[action] = max(phrases, key=len)
    return found




def _strict_norm(text: str) -> str:
    t = text.strip().lower()
    while t.endswith("."):
        t = t[:-1].rstrip()
    return t


def _loose_norm(text: str) -> str:
    t = text.lower().replace("_", " ").replace("-", " ")
    t = re.sub(r"[\"'`*<>\[\]()]", " ", t)
    t = re.sub(r"\s+", " ", t).strip()
    t = t.rstrip(".!?:;, ").lstrip(":;, ")
    return t


def parse_action_text(
    text: Any, mode: ParseMode = "strict", _allow_json: bool = True
) -> str | None:
    """Map a model output to one of ``ACTIONS`` or ``None`` (see ``BabyAITextEnv.parse_action``)."""
    if not isinstance(text, str):
        return None
    if mode not in ("strict", "lenient"):
        raise ValueError(f"unknown parse mode {mode!r}; expected 'strict' or 'lenient'")
    s = _strict_norm(text)
    if s in _ACTION_TO_IDX:
        return s
    if mode == "strict":
        return None

    inner = json_action_field(text) if _allow_json else None
    if inner is not None:
        return parse_action_text(inner, "lenient", _allow_json=False)

    t = _loose_norm(text)
    for prefix in ("action ", "final answer ", "answer ", "next action ", "i will ", "i ll "):
        if t.startswith(prefix) and t[len(prefix) :] in _ALIASES:
            return _ALIASES[t[len(prefix) :]]
    if t in _ALIASES:
        return _ALIASES[t]
    found = {a for a, pat in _MENTIONS if pat.search(t)}
    if len(found) == 1:
        return found.pop()
    return None  # nothing recognisable, or two different actions mentioned (ambiguous)


def classify_error(student_action: str | None, expert_action: str) -> str:
    """A short category comparing the student's action with the expert's."""
    shared = shared_error_type(student_action, expert_action, _ACTION_TO_IDX)
    if shared is not None:
        return shared
    if expert_action in TURNS:
        if student_action in TURNS:
            return "wrong_turn"
        if student_action == "go forward":
            return "moved_instead_of_turning"
        return "unneeded_interaction"
    if expert_action == "go forward":
        if student_action in TURNS:
            return "turned_instead_of_moving"
        return "unneeded_interaction"
    # the expert interacts (pick up / drop / toggle)
    if student_action in MOVES:
        return "missed_interaction"
    return "wrong_interaction"


