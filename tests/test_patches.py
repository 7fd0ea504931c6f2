"""Patch texts: per-format placebos carry no information about the teacher's action, on every
family's action set (the ``family`` fixture)."""
import pytest

from teachable.constants import FORMATS
from teachable.patches import CPT_CONDITIONS, PLACEBOS, make_patch, placebo_length

DIAG = "The red ball you need is 3 cells away at your 10 o'clock."


@pytest.fixture
def patch(family):
    """(valid actions, ``make_patch`` on them with the diagnosis DIAG and by default the student
    action valid[4]); BabyAI's valid actions: turn left, turn right, go forward, pick up, drop, toggle."""
    valid = family.actions

    def _patch(kind, teacher, student=valid[4]):
        return make_patch(kind, teacher_action=teacher, student_action=student, diagnosis=DIAG, candidates=valid)

    return valid, _patch


def test_placebo_words_and_length_do_not_depend_on_the_teachers_action(patch):
    VALID, _patch = patch
    for m in FORMATS:
        texts = {_patch(f"placebo_{m}", a, s) for a in VALID for s in VALID if s != a}
        assert len(texts) == 1, m  # one text whatever the teacher (and student) action
        (text,) = texts
        assert not any(a in text for a in VALID)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_placebo_matches_its_formats_patch_length(fmt, patch):
    VALID, _patch = patch
    lengths = [len(_patch(fmt, a, s)) for a in VALID for s in VALID if s != a]
    mean = sum(lengths) / len(lengths)
    placebo = _patch(f"placebo_{fmt}", VALID[2])
    assert abs(len(placebo) - mean) <= 1
    assert abs(len(placebo) - placebo_length(fmt, VALID, DIAG)) <= 1  # strip() may drop a trailing space
    assert all(abs(len(placebo) - n) <= max(lengths) - min(lengths) + 1 for n in lengths)


def test_conditions_and_unknown_kind(patch):
    VALID, _patch = patch
    assert CPT_CONDITIONS == ("base", *PLACEBOS, *FORMATS) and PLACEBOS == tuple(f"placebo_{m}" for m in FORMATS)
    assert _patch("base", VALID[4]) is None
    assert _patch("hint", VALID[4]) == DIAG and VALID[2] in _patch("demo", VALID[2])
    with pytest.raises(ValueError, match="unknown patch kind"):
        _patch("placebo", VALID[4])
