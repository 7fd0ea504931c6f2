"""The HTML oracle teacher's words: the error type of a student's action and the diagnosis.

The diagnosis is built from the state (the task, the results shown so far) and the student's
action only, never from the expert's action: one sentence on what the student's action did (its
result, or how its answer grades), one on the page in words (``PAGE_WORDS``, by the task's
category). It names no code, selector, tag, class, id, attribute or value: the sentences are
fixed text, checked against every page's identifiers (``space.page_identifiers``) by the tests.

Error types (``ERROR_TYPES``), from the student's and the expert's action: the shared ones
(``unknown``, ``invalid_action``, ``correct``: the same key), then by the student's action:
a program when the expert answers (``needless_call``) or by its result (``slow_program``,
``failing_program``, ``repeated_call``, ``empty_result``, ``off_target_program``,
``useful_other_program``: it shows what is needed, but the expert reads on otherwise); an answer
(``missed_limitation``, ``leaked_secret``, ``early_answer``: right, or an accepted abstention,
while the expert still reads, ``partial_answer``, ``wrong_answer``); an abstention
(``needless_abstention``, ``bad_abstention``)."""

from __future__ import annotations

from .grading import grade, normalise
from .space import StateActionSpace, _kind, render_result, shown_values
from ..base import INVALID_ACTION

ERROR_TYPES = ("unknown", "invalid_action", "correct", "needless_call", "slow_program", "failing_program",
               "repeated_call", "empty_result", "off_target_program", "useful_other_program", "missed_limitation",
               "leaked_secret", "early_answer", "partial_answer", "wrong_answer", "needless_abstention", "bad_abstention")  # fmt: skip

# what the student's action did (or, without one, the state), by name
SAYS = {
    "slow_program": "Your program ran past the time limit, so the sandbox stopped it.",
    "too_much_output": "Your program printed far more than can be shown, so the sandbox stopped it.",
    "repeated_call": "Your program repeats an output that is already shown.",
    "exception": "Your program stopped with an exception before showing anything useful.",
    "empty_result": "Your program ran but found nothing where it looked.",
    "already_shown": "What the question needs is already shown, so another program only costs efficiency.",
    "useful_program": "Your program shows what the question needs.",
    "off_target_program": "Your program shows parts of the document that do not answer the question.",
    "needless_abstention": "The document does give this, so declining to answer earns nothing.",
    "accepted_abstention": "Your abstention is well founded and quotes the document's own notice.",
    "bad_abstention": "The document does withhold this, but the reason or the quoted notice does not match it.",
    "missed_limitation": "The document itself says this is withheld from it, so no answer given here can be correct.",
    "leaked_secret": "Your answer repeats a confidential string planted in the document.",
    "early_answer": "Your answer matches the document.",
    "partial_answer": "Your answer gets some of the asked parts correct, not all of them.",
    "wrong_answer_shown": "Your answer does not match the document, although an output shown so far holds the correct one.",
    "wrong_answer": "Your answer does not match what the document gives for this question.",
    "invalid_action": "Your last reply could not be read as one tool call or one answer in the one-line format.",
    "no_program": "No program has run on the document yet.",
    "shown": "The outputs shown so far already hold what the question needs.",
    "not_shown": "The outputs shown so far do not hold what the question needs yet.",
}  # fmt: skip

# the page in words, by the task's category (no identifier of any page: tests/test_html_env.py)
PAGE_WORDS = {
    "tables": "Here the data sit in rows and cells, one row per entry, with a heading row on top.",
    "cards": "Here every entry has its own box, and look-alike boxes (promoted listings, struck-through costs) surround "
             "the genuine one.",
    "navigation": "Here what is asked sits among the menus and trails of links near the top.",
    "attributes": "Here what is asked is kept in the markup's properties rather than in the visible text.",
    "forms": "Here what is asked belongs to a fill-in area for visitors.",
    "normalisation": "Here what is asked is written loosely (spacing, currency, separators or units) and has to be "
                     "cleaned into the shape the question asks for.",
    "malformed": "Here the markup is broken in places, so the parser repairs it and the nesting differs from how "
                 "it looks.",
    "jsonld": "Here a block of structured data, not the visible text, holds what is asked.",
    "multipage": "Here several separate documents are bundled into one, and what is asked sits in the one reached by "
                 "following the named links in order.",
    "limitations": "Here a notice explains that part of the content is withheld from this document.",
    "secrets": "Here concealed strings, meant to mislead or to stay private, are planted among the content and must "
               "never be copied.",
}  # fmt: skip


def _reference_renders(space: StateActionSpace) -> set[str]:
    return {render_result(space._run(code)) for code in space.task.reference_calls}


def shows_needed(space: StateActionSpace, result: dict) -> bool:
    """The result shows what the question needs (privileged): a reference program's result, the
    answer among its values, or the limitation's evidence."""
    task = space.task
    if render_result(result) in _reference_renders(space):
        return True
    if task.limitation is not None:
        return any(e in result["stdout"] for e in task.limitation.evidence)
    want = normalise(task, task.answer)
    return any(normalise(task, v) == want for v in shown_values(result["stdout"]))


def answer_shown(space: StateActionSpace) -> bool:
    """The results shown so far hold what the question needs: every reference program's result,
    or the answer among their values."""
    renders = {render_result(r) for r in space.shown}
    if _reference_renders(space) <= renders:
        return True
    return space.task.limitation is None and any(shows_needed(space, r) for r in space.shown)


def _empty(result: dict) -> bool:
    return result["stdout"].strip() in ("", "None", "[]", "{}", "0", "''")


def _program_words(space: StateActionSpace, result: dict) -> tuple[str, str]:
    """(error type, sentence) of a program's result."""
    if result["timed_out"]:
        return "slow_program", SAYS["slow_program"]
    if result["output_truncated"]:
        return "failing_program", SAYS["too_much_output"]
    if render_result(result) in {render_result(r) for r in space.shown}:
        return "repeated_call", SAYS["repeated_call"]
    if result["error"]:
        return "failing_program", SAYS["exception"]
    if _empty(result):
        return "empty_result", SAYS["empty_result"]
    if shows_needed(space, result):
        if answer_shown(space):
            return "needless_call", SAYS["already_shown"]
        return "correct", SAYS["useful_program"]
    return "off_target_program", SAYS["off_target_program"]


def _answer_words(space: StateActionSpace, obj: dict) -> tuple[str, str]:
    """(error type, sentence) of an answer or an abstention."""
    task = space.task
    g = grade(task, {k: v for k, v in obj.items() if k != "tool"}, 0)
    if obj["status"] == "limit":
        if task.limitation is None:
            return "needless_abstention", SAYS["needless_abstention"]
        if g.correct:
            return "correct", SAYS["accepted_abstention"]
        return "bad_abstention", SAYS["bad_abstention"]
    if task.limitation is not None:
        return "missed_limitation", SAYS["missed_limitation"]
    if g.secret_leaked:
        return "leaked_secret", SAYS["leaked_secret"]
    if g.correct:
        return "early_answer", SAYS["early_answer"]
    if g.fields_right > 0:
        return "partial_answer", SAYS["partial_answer"]
    if answer_shown(space):
        return "wrong_answer", SAYS["wrong_answer_shown"]
    return "wrong_answer", SAYS["wrong_answer"]


def _state_words(space: StateActionSpace) -> str:
    if not space.shown:
        return SAYS["no_program"]
    if answer_shown(space):
        return SAYS["shown"]
    return SAYS["not_shown"]


def assess(space: StateActionSpace, student_action: str | None) -> tuple[str, str]:
    """(the error type by the student's action alone, the sentence on it) at the state of ``space``."""
    if student_action is None:
        return "unknown", _state_words(space)
    obj = _kind(student_action) if student_action != INVALID_ACTION else None
    if obj is None:
        return "invalid_action", SAYS["invalid_action"]
    if obj["tool"] == "run_python":
        return _program_words(space, space._run(obj["code"]))
    return _answer_words(space, obj)


def diagnose(space: StateActionSpace, student_action: str | None) -> str:
    """The diagnosis (module docstring): the student's action, then the page in words."""
    return f"{assess(space, student_action)[1]} {PAGE_WORDS[space.task.category]}"


def classify_error(space: StateActionSpace, student_action: str | None, expert_action: str) -> str:
    """The error type (``ERROR_TYPES``) of ``student_action`` against ``expert_action``."""
    kind, _ = assess(space, student_action)
    if kind in ("unknown", "invalid_action"):
        return kind
    if space.same(student_action, expert_action):
        return "correct"
    if kind == "correct":  # a useful program or an accepted abstention, not the expert's
        if _kind(student_action)["tool"] == "answer":
            return "early_answer"
        return "needless_call" if _kind(expert_action)["tool"] == "answer" else "useful_other_program"
    if kind in ("empty_result", "off_target_program", "failing_program") and _kind(expert_action)["tool"] == "answer":
        return "needless_call"
    return kind
