import pytest

from teachable.io import atomic_dir


def _entries(parent):
    return sorted(p.name for p in parent.iterdir())


def test_atomic_dir_renames_a_written_directory_into_place(tmp_path):
    dest = tmp_path / "sub" / "out"
    with atomic_dir(dest) as tmp:
        assert tmp.is_dir() and tmp.parent == dest.parent and not dest.exists()
        (tmp / "a.txt").write_text("a")
    assert (dest / "a.txt").read_text() == "a"
    assert _entries(dest.parent) == ["out"]  # no temp directory left


def test_atomic_dir_failure_leaves_no_destination_and_no_temp_dir(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_dir(dest) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("killed mid-write")
    assert _entries(tmp_path) == []


def test_atomic_dir_replaces_an_existing_destination(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with atomic_dir(dest) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _entries(dest) == ["new.txt"]
    assert _entries(tmp_path) == ["out"]  # the old directory, moved aside, is deleted


def test_atomic_dir_failure_keeps_an_existing_destination(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(ValueError):
        with atomic_dir(dest) as tmp:
            (tmp / "new.txt").write_text("new")
            raise ValueError("bad")
    assert _entries(dest) == ["old.txt"]
    assert _entries(tmp_path) == ["out"]
