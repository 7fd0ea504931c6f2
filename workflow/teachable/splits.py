"""Splits: the disjoint seed ranges of tasks (train / eval / bench / demo, fixed by config, never
Python's salted ``hash()``), task ids, the held-out split of labeled snapshots BY TASK that
phases 2, 3 and 5 share, and shard slicing.

The held-out split (``heldout_split``): every snapshot of a task (both experiments, every
episode) is on one side. Each task is put in the stratum of the quadrant most of its snapshots
fall in (ties: quadrant order); within a stratum the tasks are ordered by
derive_seed(seed, "heldout", task_id) (ties by id) and the first round(frac x tasks) are held
out, at least ``phase2.min_heldout_tasks`` (the snapshot suite's intervals are a bootstrap over
held-out tasks, which needs >= 2) and at most tasks - 1 (one task stays for training), none
when the stratum has 1 task. A stratum (quadrant) that holds out fewer than the minimum is
listed in heldout.json's ``short_strata`` with the reason, never silently short.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .constants import QUADRANTS
from .seeding import derive_seed

SPLITS = ("train", "eval", "bench", "demo")  # demo: the embedded student's demonstrations


def split_seeds(splits_cfg: dict, name: str) -> list[int]:
    s = splits_cfg[name]
    return list(range(int(s["start"]), int(s["start"]) + int(s["count"])))


def first_seeds(splits_cfg: dict, name: str, n: int, key: str) -> list[int]:
    """The first ``n`` seeds of split ``name``; ``key`` (the config key that set ``n``) is named
    when the split is too short."""
    seeds = split_seeds(splits_cfg, name)
    if int(n) > len(seeds):
        raise ValueError(f"config key {key}={int(n)} exceeds splits.{name}.count={len(seeds)}")
    return seeds[: int(n)]


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


def task_id(env_id: str, seed: int) -> str:
    """The id of a task (one environment instance): env id and seed."""
    return f"{env_id}:{seed}"


def shard_rows(df: pd.DataFrame, shard: int, n_shards: int) -> pd.DataFrame:
    """Rows ``shard::n_shards`` of ``df`` (a job's share of sorted work)."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is not in [0, {n_shards})")
    return df.iloc[shard::n_shards]


def seeded_order(ids: pd.Series, *parts: object) -> pd.Index:
    """Index of ``ids`` sorted by derive_seed(*parts, id), ties by id (never Python's hash)."""
    keys = ids.map(lambda s: (derive_seed(*parts, str(s)), str(s)))
    return keys.sort_values().index


def task_strata(labeled: pd.DataFrame) -> pd.Series:
    """Each task's stratum: the quadrant most of its snapshots fall in (ties: quadrant order)."""
    counts = labeled.groupby(["task_id", "quadrant"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=[q for q in QUADRANTS if q in counts.columns])
    return counts.idxmax(axis=1)  # first maximum = quadrant order


def heldout_split(labeled: pd.DataFrame, frac: float, seed: int, min_tasks: int = 1) -> pd.DataFrame:
    """A copy of ``labeled`` with a bool column ``heldout``, chosen by task, at least
    ``min_tasks`` held-out tasks per stratum where it has more (module docstring)."""
    if not 0 <= frac < 1:
        raise ValueError(f"phase2.heldout_frac must be in [0, 1), got {frac}")
    if int(min_tasks) != min_tasks or min_tasks < 1:
        raise ValueError(f"phase2.min_heldout_tasks must be a positive integer, got {min_tasks!r}")
    if labeled["snapshot_id"].duplicated().any():
        raise ValueError("labeled snapshots have duplicate snapshot_id values")
    out = labeled.copy()
    out["heldout"] = False
    if out.empty:
        return out
    strata = task_strata(out)
    held_tasks: list[str] = []
    for _, tasks in strata.groupby(strata, sort=True):
        ids = pd.Series(tasks.index, index=tasks.index)
        n = len(ids)
        k = min(n - 1, max(int(min_tasks), int(frac * n + 0.5))) if n >= 2 and frac > 0 else 0
        held_tasks += list(ids.loc[seeded_order(ids, int(seed), "heldout")[:k]])
    out["heldout"] = out["task_id"].isin(held_tasks)
    return out


def short_strata(strata: dict[str, dict[str, int]], min_tasks: int) -> dict[str, str]:
    """Quadrant -> why its stratum holds out fewer than ``min_tasks`` tasks (``heldout_record``'s
    ``strata``); empty when every stratum has its minimum."""
    out = {}
    for q, st in strata.items():
        n, k = st["tasks"], st["heldout_tasks"]
        if k < min_tasks:
            why = "no task" if n == 0 else f"{n} task(s), of which one stays for training" if k == n - 1 else f"{n} task(s)"
            out[q] = f"holds out {k} task(s) < phase2.min_heldout_tasks={min_tasks}: the stratum has {why}"
    return out


def heldout_record(split: pd.DataFrame, frac: float, seed: int, min_tasks: int = 1) -> dict[str, Any]:
    """phase2/heldout.json: the held-out snapshot and task ids, the strata, and the strata
    short of ``min_tasks`` held-out tasks (``short_strata``)."""
    held = split[split["heldout"]]
    strata = task_strata(split) if len(split) else pd.Series(dtype=object)
    held_tasks = set(held["task_id"])
    by_stratum = {q: {"tasks": int((strata == q).sum()),
                      "heldout_tasks": int(sum(1 for t in strata.index[strata == q] if t in held_tasks))}
                  for q in QUADRANTS}  # fmt: skip
    return {
        "by": "task", "seed": int(seed), "heldout_frac": float(frac),
        "snapshot_ids": sorted(held["snapshot_id"]), "task_ids": sorted(held_tasks),
        "n_snapshots": int(len(split)), "n_tasks": int(split["task_id"].nunique()),
        "strata": by_stratum, "min_heldout_tasks": int(min_tasks),
        "short_strata": short_strata(by_stratum, int(min_tasks)),
        "heldout_snapshots_by_quadrant": {q: int((held["quadrant"] == q).sum()) for q in QUADRANTS},
    }  # fmt: skip


def apply_heldout(labeled: pd.DataFrame, heldout: dict) -> pd.DataFrame:
    """``labeled`` with the bool column ``heldout`` from a phase2/heldout.json record; an error
    when a held-out snapshot is missing or a task is on both sides."""
    ids = set(heldout["snapshot_ids"])
    missing = ids - set(labeled["snapshot_id"])
    if missing:
        raise ValueError(f"heldout.json names {len(missing)} snapshot(s) not in the labeled snapshots, e.g. "
                         f"{sorted(missing)[:3]}: it belongs to other labels (rerun rule plan_training)")
    out = labeled.assign(heldout=labeled["snapshot_id"].isin(ids))
    check_task_disjoint(out[~out["heldout"]]["task_id"], heldout["task_ids"], "the non-held-out snapshots")
    return out


def heldout_snapshots(labeled: pd.DataFrame, heldout: dict) -> pd.DataFrame:
    """The held-out snapshots of phase2/heldout.json (Phase 3's snapshot suite)."""
    split = apply_heldout(labeled, heldout)
    return split[split["heldout"]].drop(columns="heldout").reset_index(drop=True)


def check_task_disjoint(train_tasks, heldout_tasks, what: str) -> None:
    both = sorted(set(train_tasks) & set(heldout_tasks))
    if both:
        raise ValueError(f"{what} include {len(both)} held-out task(s), e.g. {both[:3]}: a task must be on "
                         "one side of the held-out split")
