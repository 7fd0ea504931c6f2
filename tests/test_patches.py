"""Patch texts: per-format placebos carry no information about the teacher's action."""
import pytest

from teachable.constants import FORMATS
from teachable.patches import CPT_CONDITIONS, PLACEBOS, make_patch, placebo_length

VALID = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")
DIAG = "The red ball you need is 3 cells away at your 10 o'clock."


def _patch(kind, teacher, student="drop"):
    return make_patch(kind, teacher_action=teacher, student_action=student, diagnosis=DIAG, candidates=VALID)


def test_placebo_words_and_length_do_not_depend_on_the_teachers_action():
    for m in FORMATS:
        texts = {_patch(f"placebo_{m}", a, s) for a in VALID for s in VALID if s != a}
        assert len(texts) == 1, m  # one text whatever the teacher (and student) action
        (text,) = texts
        assert not any(a in text for a in VALID)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_placebo_matches_its_formats_patch_length(fmt):
    lengths = [len(_patch(fmt, a, s)) for a in VALID for s in VALID if s != a]
    mean = sum(lengths) / len(lengths)
    placebo = _patch(f"placebo_{fmt}", "go forward")
    assert abs(len(placebo) - mean) <= 1
    assert abs(len(placebo) - placebo_length(fmt, VALID, DIAG)) <= 1  # strip() may drop a trailing space
    assert all(abs(len(placebo) - n) <= max(lengths) - min(lengths) + 1 for n in lengths)


def test_conditions_and_unknown_kind():
    assert CPT_CONDITIONS == ("base", *PLACEBOS, *FORMATS) and PLACEBOS == tuple(f"placebo_{m}" for m in FORMATS)
    assert _patch("base", "drop") is None
    assert _patch("hint", "drop") == DIAG and "go forward" in _patch("demo", "go forward")
    with pytest.raises(ValueError, match="unknown patch kind"):
        _patch("placebo", "drop")
