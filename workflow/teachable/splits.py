"""Task splits: disjoint seed ranges fixed by config (never Python's salted hash())."""

from __future__ import annotations

SPLITS = ("train", "eval", "bench", "demo")  # demo: the embedded student's demonstrations


def split_seeds(splits_cfg: dict, name: str) -> list[int]:
    s = splits_cfg[name]
    return list(range(int(s["start"]), int(s["start"]) + int(s["count"])))


def check_disjoint(splits_cfg: dict) -> None:
    """Raise if any two splits share a seed (a leak between training and evaluation, or between
    the embedded student's demonstrations and the study's tasks)."""
    ranges = {n: (splits_cfg[n]["start"], splits_cfg[n]["start"] + splits_cfg[n]["count"]) for n in SPLITS if n in splits_cfg}
    names = list(ranges)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            (a0, a1), (b0, b1) = ranges[a], ranges[b]
            if a0 < b1 and b0 < a1:
                raise ValueError(
                    f"config splits.{a} [{a0}, {a1}) and splits.{b} [{b0}, {b1}) overlap: "
                    "train/eval/bench/demo seeds must be disjoint"
                )
