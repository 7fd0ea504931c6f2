"""Supervision/patch texts: one definition used by CPT (phase 1), the embedded student's
training data, micro-training (1B) and the training matrix (phase 2).

- demo: states the teacher's action.
- hint: the diagnosis only (the teacher's diagnosis never names the action).
- contrast: the student's action was worse than the teacher's, and why.
- placebo (one per format): uninformative filler whose length matches that format's patch.
  Neither its words nor its length depend on the teacher's action: the length is the mean, over
  the state's candidate actions (``ActionSpace.candidate_actions``, a finite menu whatever the
  family's action set), of the length of the format's patch naming one (demo: the action's name
  varies; contrast: both named actions vary, over every ordered pair of distinct candidates;
  hint: the diagnosis alone, which never depends on the action). gain_net[m] = p_m - p_placebo_m.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations

from .constants import FORMATS, PLACEBOS

CPT_CONDITIONS = ("base", *PLACEBOS, *FORMATS)
_PLACEBO_UNIT = "this line is only here to take up room. "


def demo_patch(teacher_action: str) -> str:
    return f"The best action now is: {teacher_action}."


def hint_patch(diagnosis: str) -> str:
    return diagnosis.strip()


def contrast_patch(student_action: str, teacher_action: str, diagnosis: str) -> str:
    d = diagnosis.strip()
    return f"'{student_action}' was worse than '{teacher_action}' because {d[:1].lower() + d[1:]}"


def filler(length: int) -> str:
    """Uninformative text of ``length`` characters (at least one)."""
    reps = length // len(_PLACEBO_UNIT) + 1
    return (_PLACEBO_UNIT * reps)[:length].strip() or "."


def placebo_length(fmt: str, candidates: Sequence[str], diagnosis: str) -> int:
    """The length of format ``fmt``'s placebo: its patch's length averaged over the ``candidates``
    the teacher could name (never the one it did name), rounded."""
    if fmt == "demo":
        lengths = [len(demo_patch(a)) for a in candidates]
    elif fmt == "hint":
        lengths = [len(hint_patch(diagnosis))]
    elif fmt == "contrast":
        lengths = [len(contrast_patch(x, a, diagnosis)) for x, a in permutations(candidates, 2)]
    else:
        raise ValueError(f"unknown supervision format {fmt!r}; expected one of {FORMATS}")
    if not lengths:
        raise ValueError(f"no candidate actions to size the {fmt} placebo by")
    return int(round(sum(lengths) / len(lengths)))


def placebo_patch(fmt: str, candidates: Sequence[str], diagnosis: str) -> str:
    return filler(placebo_length(fmt, candidates, diagnosis))


def make_patch(kind: str, *, teacher_action: str, student_action: str, diagnosis: str,
               candidates: Sequence[str] = ()) -> str | None:  # fmt: skip
    """The patch text of a CPT condition or supervision format; ``base`` has none.
    ``student_action`` is the action a contrast calls worse; ``candidates`` (the state's
    candidate actions) size placebos."""
    if kind == "base":
        return None
    if kind == "demo":
        return demo_patch(teacher_action)
    if kind == "hint":
        return hint_patch(diagnosis)
    if kind == "contrast":
        return contrast_patch(student_action, teacher_action, diagnosis)
    if kind in PLACEBOS:
        return placebo_patch(kind.removeprefix("placebo_"), candidates, diagnosis)
    raise ValueError(f"unknown patch kind {kind!r}; expected one of {CPT_CONDITIONS}")
