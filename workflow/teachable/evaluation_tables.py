"""Phase 3 tables: the evaluation rollouts (``teachable.evaluation``) summarised per model with
their intervals (overall, per quadrant, transfer, retention, stuckness, the family's metrics), and
one model's benchmark-style result (``benchmark_json``).

Summary definitions (``summarize``; every interval from ``stats.ClusterBootstrap``):

- Rollouts of one task share it and are not independent, so every interval is a percentile
  bootstrap over *clusters*: tasks, for both suites (the snapshots of one task share its layout,
  so the ``snapshot`` suite clusters them by task too, not by snapshot). A resample draws as many clusters as there are, with replacement, and
  keeps all rollouts of each; the statistic is the per-rollout mean of the resample (sum of
  values / number of rollouts), so success, loop and invalid rates and the means of return,
  steps, repeat rate and wasted steps are all computed the same way (NaN values left out).
  ``phase3.n_bootstrap`` resamples, seeded by the config seed: the tables are deterministic.
  Fewer than 2 clusters give a NaN interval.
- Differences between two models (gain vs base, transfer delta, retention drop) are *paired*:
  both models played the same clusters with the same random streams, so a resample draws the
  clusters once for both models. A model evaluated on other tasks than the base is compared
  unpaired (each side resampled on its own; ``gain_paired`` says which).
- Every row carries ``n_tasks`` (the clusters; snapshot-suite rows also ``n_snapshots``) and
  ``n_rollouts``; ``n`` is kept and is the number of rollouts.
- Transfer locality (``transfer_locality``, the summary's transfer check): the mean
  delta_success of the quadrant runs' in-quadrant cells (trained_on == evaluated_on) minus the
  mean of their cross-quadrant cells, every cell recomputed on each resample of the snapshot
  suite's tasks (base and runs drawn together); a resample that misses a cell is left out and
  counted (``n_defined``).
- Stuckness is measured on the ``overall`` suite (every model on the same tasks, from reset).
- Family metrics (``family_metrics_table``), on the ``overall`` suite: the metrics the family
  declares (``Family.metrics``, e.g. a progression, a score, each achievement's success rate),
  their intervals from the same bootstrap over tasks; none for a family that declares none.
  Episodes end at the goal or ``env.max_steps``, so these measure the configured task, not a
  longer game the family may come from.

Retention (``retention_split``), free of the winner's curse:

- With R = ``phase3.rollouts_per_task`` rollouts per task (the base's, the same for every task),
  rollouts ``rollout_idx < R // 2`` form the *selection half* and ``rollout_idx >= R // 2`` the
  *measurement half*.
- A task is *solved by the base* when the base's success rate over its selection half is
  >= 0.5. Base success, model success and drop = base - model (paired bootstrap over the solved
  tasks) are all measured on the measurement half, for the base and every model alike: the
  rollouts that chose a task never measure it, so the base's success there is not optimistic.
- With R < 2 there is no second half: retention is undefined (NaN, with ``reason``), never
  measured on the selecting rollouts. No solved task: NaN with its reason, too.
- "No run forgets" is a claim about every run at once, so each drop also has a simultaneous
  interval (``drop_sim_lo``/``drop_sim_hi``): Bonferroni over the ``n_family`` models other than
  the base in the table, each at confidence 1 - (1 - confidence) / n_family
  (``sim_confidence``), from the same resamples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .envs.registry import family_metrics
from .evaluation import ROLLOUT_COLUMNS, SUITES
from .schemas import PHASE3_TABLES
from .stats import DEFAULT_N_BOOTSTRAP, ClusterBootstrap, bonferroni_confidence, cluster_bootstrap_statistic

BASE_ID = "base"
QUADRANT_PREFIXES = ("Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL", "Q4_lowU_highL")
SOLVED_THRESHOLD = 0.5

# The phase 3 tables (``summarize``): their columns and files are declared in teachable.schemas
SUMMARY_COLUMNS = {k: t.names for k, t in PHASE3_TABLES.items()}
CSV_NAMES = {k: t.path.rsplit("/", 1)[-1] for k, t in PHASE3_TABLES.items()}


# ------------------------------------------------------------------------------------ intervals
def rate_of(bs: ClusterBootstrap, g: pd.DataFrame, col: str, unit: str) -> dict:
    """``bs.rate`` of column ``col`` of the rollouts ``g``, clustered by ``unit`` (``success`` is a
    0/1 outcome: ``binary``)."""
    return bs.rate(g[col].astype(float).to_numpy(), g[unit].to_numpy(), binary=col == "success")


def diff_of(bs: ClusterBootstrap, ga: pd.DataFrame, gb: pd.DataFrame, col: str, unit: str) -> dict:
    """mean(a) - mean(b) of ``col``: paired when both played the same units, else unpaired."""
    paired = set(ga[unit]) == set(gb[unit])
    return bs.diff(ga[col].astype(float).to_numpy(), ga[unit].to_numpy(), gb[col].astype(float).to_numpy(),
                   gb[unit].to_numpy(), paired=paired)  # fmt: skip


# ------------------------------------------------------------------------------------ retention
@dataclass(frozen=True)
class RetentionSplit:
    """Which eval tasks retention measures, and on which rollouts (module docstring)."""

    tasks: tuple[str, ...]  # solved by the base on the selection half
    half: int  # rollout_idx < half: selection; rollout_idx >= half: measurement
    rollouts_per_task: int
    reason: str | None  # why retention is undefined; None when it is defined


def retention_split(df: pd.DataFrame, model_id: str = BASE_ID, threshold: float = SOLVED_THRESHOLD) -> RetentionSplit:
    """The tasks ``model_id`` solves on the first half of its overall-suite rollouts
    (``rollout_idx < R // 2``, success rate >= threshold), measured on the other half."""
    g = df[(df["suite"] == "overall") & (df["model_id"] == model_id)]
    if g.empty:
        raise ValueError(f"retention needs the overall-suite rollouts of {model_id!r}; models: {_models(df)}")
    per = g.groupby("task_id")["rollout_idx"].nunique()
    if per.nunique() != 1:
        raise ValueError(f"{model_id!r} has {per.min()} to {per.max()} rollouts per eval task (e.g. task "
                         f"{per.idxmin()!r}); retention splits phase3.rollouts_per_task, the same for every task")
    r = int(per.iloc[0])
    if r < 2:
        return RetentionSplit((), 0, r, f"phase3.rollouts_per_task = {r}: retention chooses the base-solved tasks on "
                                        "half of the base's rollouts and measures them on the other half, and 1 "
                                        "rollout has no second half")  # fmt: skip
    half = r // 2
    rate = g[g["rollout_idx"] < half].groupby("task_id")["success"].mean()
    tasks = tuple(sorted(rate.index[rate >= threshold]))
    reason = None if tasks else (f"{model_id!r} solves no eval task on its selection half (rollouts 0-{half - 1}, "
                                 f"success rate >= {threshold})")  # fmt: skip
    return RetentionSplit(tasks, half, r, reason)


def solved_tasks(df: pd.DataFrame, model_id: str = BASE_ID, threshold: float = SOLVED_THRESHOLD) -> list[str]:
    """The overall-suite tasks ``model_id`` solves on its selection half (``retention_split``)."""
    return list(retention_split(df, model_id, threshold).tasks)


def measured_half(g: pd.DataFrame, split: RetentionSplit, who: str = "model") -> pd.DataFrame:
    """The overall-suite rollouts of ``g`` retention measures: solved tasks, ``rollout_idx >= half``."""
    ov = g[g["suite"] == "overall"]
    out = ov[ov["task_id"].isin(split.tasks) & (ov["rollout_idx"] >= split.half)]
    lacking = sorted(set(split.tasks) - set(out["task_id"]))
    if lacking:
        raise ValueError(f"{who} has no measurement-half rollouts (rollout_idx >= {split.half}) on base-solved "
                         f"tasks {lacking[:5]}")  # fmt: skip
    return out


def retention_row(bs: ClusterBootstrap, base: pd.DataFrame, model: pd.DataFrame, split: RetentionSplit,
                  who: str, n_family: int = 1) -> dict:  # fmt: skip
    """Base and model success on the measurement half of the base-solved tasks and drop = base -
    model (paired over tasks), its interval and its simultaneous interval over ``n_family``
    models (Bonferroni, module docstring); NaN numbers with ``reason`` when retention is
    undefined."""
    sim = ClusterBootstrap(bonferroni_confidence(bs.confidence, n_family), bs.n_resamples, bs.seed)
    row = dict(n_base_solved_tasks=len(split.tasks) if split.rollouts_per_task >= 2 else None,
               rollouts_per_task=split.rollouts_per_task, selection_rollouts=split.half, reason=split.reason,
               n_family=int(n_family), sim_confidence=sim.confidence)  # fmt: skip
    if split.reason is not None:
        nan = float("nan")
        return {**row, "base_success": nan, "model_success": nan, "drop": nan, "drop_lo": nan, "drop_hi": nan,
                "drop_sim_lo": nan, "drop_sim_hi": nan, "n": 0, "base_lo": nan, "base_hi": nan, "model_lo": nan,
                "model_hi": nan, "n_tasks": 0, "n_rollouts": 0}  # fmt: skip
    gb, gm = measured_half(base, split, "the base"), measured_half(model, split, who)
    b, m = rate_of(bs, gb, "success", "task_id"), rate_of(bs, gm, "success", "task_id")
    pair = (gb["success"].astype(float), gb["task_id"], gm["success"].astype(float), gm["task_id"])
    d, ds = bs.diff(*pair, paired=True), sim.diff(*pair, paired=True)
    return {**row, "base_success": b["value"], "model_success": m["value"], "drop": d["value"], "drop_lo": d["lo"],
            "drop_hi": d["hi"], "drop_sim_lo": ds["lo"], "drop_sim_hi": ds["hi"], "n": m["n"], "base_lo": b["lo"],
            "base_hi": b["hi"], "model_lo": m["lo"], "model_hi": m["hi"], "n_tasks": m["n_clusters"],
            "n_rollouts": m["n"]}  # fmt: skip


# ------------------------------------------------------------------------------------ summaries
def trained_on(model_id: str) -> str:
    """The quadrant a Phase 2 run trained on (``Q1_highU_highL_demo`` -> ``Q1_highU_highL``);
    any other run (B1_uniform, B2_all, selection methods) is its own row label."""
    for q in QUADRANT_PREFIXES:
        if model_id == q or model_id.startswith(q + "_"):
            return q
    return model_id


def _models(df: pd.DataFrame) -> list[str]:
    ids = sorted(df["model_id"].unique(), key=lambda m: (m != BASE_ID, m))
    return ids


def _require_base(df: pd.DataFrame, what: str) -> None:
    if BASE_ID not in set(df["model_id"]):
        raise ValueError(f"{what} needs the base model's rollouts (model_id {BASE_ID!r}); got {_models(df)}")


def _gain(bs: ClusterBootstrap, g: pd.DataFrame, base: pd.DataFrame) -> dict:
    if base.empty:
        return {"gain_vs_base": float("nan"), "gain_lo": float("nan"), "gain_hi": float("nan"), "gain_paired": None}
    d = diff_of(bs, g, base, "success", "task_id")
    return {"gain_vs_base": d["value"], "gain_lo": d["lo"], "gain_hi": d["hi"], "gain_paired": d["paired"]}


def overall_table(df: pd.DataFrame, confidence: float, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                  seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Per model on the overall suite: success, mean return and steps, and the gain in success
    vs the base (paired), each with its interval over tasks."""
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    ov = df[df["suite"] == "overall"]
    base = ov[ov["model_id"] == BASE_ID]
    rows = []
    for m in _models(ov):
        g = ov[ov["model_id"] == m]
        s, ret, stp = (rate_of(bs, g, c, "task_id") for c in ("success", "return", "steps"))
        rows.append(dict(model_id=m, n=len(g), success_rate=s["value"], success_lo=s["lo"], success_hi=s["hi"],
                         mean_return=ret["value"], return_lo=ret["lo"], return_hi=ret["hi"],
                         mean_steps=stp["value"], steps_lo=stp["lo"], steps_hi=stp["hi"],
                         n_tasks=int(g["task_id"].nunique()), n_rollouts=len(g), **_gain(bs, g, base)))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS["overall"])


def per_quadrant_table(df: pd.DataFrame, confidence: float, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                       seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Per model and quadrant: success from the held-out snapshots, interval over their tasks."""
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    sn = df[df["suite"] == "snapshot"]
    rows = []
    for m in _models(sn):
        g = sn[sn["model_id"] == m]
        for q, gq in sorted(g.groupby("quadrant"), key=lambda t: t[0]):
            r = rate_of(bs, gq, "success", "task_id")
            rows.append(dict(model_id=m, quadrant=q, n=len(gq), success_rate=r["value"], lo=r["lo"], hi=r["hi"],
                             n_snapshots=int(gq["snapshot_id"].nunique()), n_tasks=r["n_clusters"],
                             n_rollouts=len(gq)))  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS["per_quadrant"])


def transfer_table(df: pd.DataFrame, confidence: float, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                   seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """delta_success = model's per-quadrant success - base's, on the same held-out snapshots
    (paired bootstrap over their tasks)."""
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    sn = df[df["suite"] == "snapshot"]
    if sn.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS["transfer"])
    _require_base(sn, "the transfer matrix")
    base = sn[sn["model_id"] == BASE_ID]
    rows = []
    for m in _models(sn):
        if m == BASE_ID:
            continue
        g = sn[sn["model_id"] == m]
        for q in sorted(g["quadrant"].unique()):
            gm, gb = g[g["quadrant"] == q], base[base["quadrant"] == q]
            if set(gm["snapshot_id"]) != set(gb["snapshot_id"]):
                raise ValueError(f"model {m} and the base were evaluated on different {q} snapshots")
            d = diff_of(bs, gm, gb, "success", "task_id")
            rows.append(dict(trained_on=trained_on(m), evaluated_on=q, model_id=m, delta_success=d["value"],
                             lo=d["lo"], hi=d["hi"], n=len(gm), base_success=float(gb["success"].mean()),
                             model_success=float(gm["success"].mean()), n_snapshots=int(gm["snapshot_id"].nunique()),
                             n_tasks=d["n_clusters"], n_rollouts=len(gm)))  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS["transfer"])


def snapshot_gain(df: pd.DataFrame, model_id: str, confidence: float, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                  seed: int = 0) -> dict:  # fmt: skip
    """``model_id``'s success minus the base's over the whole snapshot suite (every held-out
    snapshot, quadrants pooled), paired bootstrap over its tasks (the positive control's gain):
    {"value", "lo", "hi", "n", "n_tasks", "base_success", "model_success"}; NaN with ``reason``
    when the model or the base has no snapshot-suite rollouts."""
    sn = df[df["suite"] == "snapshot"]
    gm, gb = sn[sn["model_id"] == model_id], sn[sn["model_id"] == BASE_ID]
    if gm.empty or gb.empty:
        who = model_id if gm.empty else BASE_ID
        return {"value": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": int(len(gm)), "n_tasks": 0,
                "base_success": float("nan"), "model_success": float("nan"),
                "reason": f"{who} has no snapshot-suite rollouts"}  # fmt: skip
    if set(gm["snapshot_id"]) != set(gb["snapshot_id"]):
        raise ValueError(f"model {model_id} and the base were evaluated on different held-out snapshots")
    d = diff_of(ClusterBootstrap(confidence, n_bootstrap, seed), gm, gb, "success", "task_id")
    return {"value": d["value"], "lo": d["lo"], "hi": d["hi"], "n": int(len(gm)), "n_tasks": d["n_clusters"],
            "base_success": float(gb["success"].mean()), "model_success": float(gm["success"].mean()), "reason": None}


def transfer_locality(df: pd.DataFrame, confidence: float, n_bootstrap: int = DEFAULT_N_BOOTSTRAP, seed: int = 0,
                      models=None) -> dict:  # fmt: skip
    """Mean delta_success of the in-quadrant cells (trained_on == evaluated_on) minus that of the
    cross-quadrant cells, over the quadrant runs ``models`` (None: every model whose trained_on
    is a quadrant) on the snapshot suite, with a percentile interval over a bootstrap of its
    tasks (module docstring). Returns {"value", "lo", "hi", "n_tasks", "n_defined",
    "n_resamples", "n_diagonal_cells", "n_off_diagonal_cells", "models", "reason"}."""
    sn = df[df["suite"] == "snapshot"]
    runs = sorted(m for m in set(sn["model_id"]) if m != BASE_ID and trained_on(m) in QUADRANT_PREFIXES
                  and (models is None or m in set(models)))  # fmt: skip
    quads = sorted(sn["quadrant"].dropna().unique())
    out = {"value": float("nan"), "lo": float("nan"), "hi": float("nan"), "n_tasks": int(sn["task_id"].nunique()),
           "n_defined": 0, "n_resamples": int(n_bootstrap), "n_diagonal_cells": 0, "n_off_diagonal_cells": 0,
           "models": runs, "reason": None}  # fmt: skip
    if not runs:
        return {**out, "reason": "no quadrant run has snapshot-suite rollouts"}
    _require_base(sn, "transfer locality")
    sn = sn[sn["model_id"].isin([BASE_ID, *runs])]
    for m in runs:
        if set(sn.loc[sn["model_id"] == m, "snapshot_id"]) != set(sn.loc[sn["model_id"] == BASE_ID, "snapshot_id"]):
            raise ValueError(f"model {m} and the base were evaluated on different held-out snapshots")
    mi = sn["model_id"].map({m: i for i, m in enumerate([BASE_ID, *runs])}).to_numpy()
    qi = sn["quadrant"].map({q: i for i, q in enumerate(quads)}).to_numpy()
    cell, y, size = mi * len(quads) + qi, sn["success"].astype(float).to_numpy(), (len(runs) + 1) * len(quads)
    diag = np.array([[trained_on(m) == q for q in quads] for m in runs])
    out.update(n_diagonal_cells=int(diag.sum()), n_off_diagonal_cells=int((~diag).sum()))
    if not diag.any() or diag.all():
        return {**out, "reason": f"{out['n_diagonal_cells']} in-quadrant and {out['n_off_diagonal_cells']} "
                                 "cross-quadrant cells: locality needs both"}  # fmt: skip

    def locality(rows) -> float:  # rows (with repeats) -> in-quadrant minus cross-quadrant mean delta
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = (np.bincount(cell[rows], y[rows], size) / np.bincount(cell[rows], minlength=size))
        rate = rate.reshape(len(runs) + 1, len(quads))
        delta = rate[1:] - rate[0]
        return float(delta[diag].mean() - delta[~diag].mean())  # NaN when a resample misses a cell

    out["value"] = locality(np.arange(len(sn)))
    if out["n_tasks"] < 2:
        return {**out, "reason": f"{out['n_tasks']} held-out task(s): a bootstrap over tasks needs at least 2"}
    ((lo, hi, n_def),) = cluster_bootstrap_statistic(locality, sn["task_id"].to_numpy(), confidence, n_bootstrap, seed)
    return {**out, "lo": lo, "hi": hi, "n_defined": n_def}


def retention_table(df: pd.DataFrame, confidence: float, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                    seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Per model: success on the tasks the base solves, drop = base - model (module docstring:
    chosen on the base's first half of rollouts, measured on the second half)."""
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    ov = df[df["suite"] == "overall"]
    if ov.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS["retention"])
    _require_base(ov, "retention")
    split = retention_split(ov)
    base = ov[ov["model_id"] == BASE_ID]
    family = max(1, len(_models(ov)) - 1)  # the models other than the base: "no run forgets" covers them all
    rows = [dict(model_id=m, **retention_row(bs, base, ov[ov["model_id"] == m], split, f"model {m}", family))
            for m in _models(ov)]  # fmt: skip
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS["retention"])
    return out.astype({"n_base_solved_tasks": "Int64"})


def stuckness_table(df: pd.DataFrame, confidence: float, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                    seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Repeat rate, loop rate, wasted steps, invalid rate on the overall suite (intervals over tasks)."""
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    ov = df[df["suite"] == "overall"]
    rows = []
    for m in _models(ov):
        g = ov[ov["model_id"] == m]
        rr, lp, ws, iv = (rate_of(bs, g, c, "task_id") for c in ("repeat_rate", "loop", "wasted_steps", "invalid_rate"))
        rows.append(dict(model_id=m, n=len(g), repeat_rate=rr["value"], repeat_rate_lo=rr["lo"],
                         repeat_rate_hi=rr["hi"], n_repeat=rr["n"], loop_rate=lp["value"], loop_rate_lo=lp["lo"],
                         loop_rate_hi=lp["hi"], wasted_steps=ws["value"], wasted_steps_lo=ws["lo"],
                         wasted_steps_hi=ws["hi"], n_wasted=ws["n"], invalid_rate=iv["value"],
                         invalid_rate_lo=iv["lo"], invalid_rate_hi=iv["hi"], n_tasks=int(g["task_id"].nunique()),
                         n_rollouts=len(g)))  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS["stuckness"])


def family_metrics_table(df: pd.DataFrame, confidence: float, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                         seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Per model on the overall suite: the metrics the rollouts' family declares
    (``registry.family_metrics``), intervals over tasks (module docstring); no rows for a family
    that declares none (or rollouts without its columns). One family per table."""
    cols = SUMMARY_COLUMNS["family"]
    ov = df[df["suite"] == "overall"]
    metrics, _ = family_metrics(sorted(ov["env_id"].unique()), ov.columns)
    if metrics is None or ov.empty:
        return pd.DataFrame(columns=cols)
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    rows = []
    for m in _models(ov):
        g = ov[ov["model_id"] == m]
        tasks = int(g["task_id"].nunique())
        # n_tasks: the tasks behind the metric (a metric over some of the episodes, e.g. one mission kind's)
        rows.extend(dict(model_id=m, metric=metric, value=r["value"], lo=r["lo"], hi=r["hi"], n=r["n"],
                         n_tasks=int(r.get("n_clusters", tasks))) for metric, r in metrics(g, bs))  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def check_rollouts(df: pd.DataFrame) -> None:
    missing = [c for c in ROLLOUT_COLUMNS if c not in df.columns and c not in ("expert_steps", "expert_error", "rng_seed")]
    if missing:
        raise ValueError(f"rollouts lack columns {missing}")
    bad = set(df["suite"]) - set(SUITES)
    if bad:
        raise ValueError(f"unknown suite(s) {sorted(bad)}; expected {SUITES}")
    dup = df.duplicated(["model_id", "suite", "task_id", "snapshot_id", "rollout_idx"])
    if dup.any():
        r = df[dup].iloc[0]
        unit = r["snapshot_id"] if isinstance(r["snapshot_id"], str) else r["task_id"]
        raise ValueError(f"duplicate eval rollout rows, e.g. model {r['model_id']} {r['suite']} {unit} "
                         f"rollout {r['rollout_idx']}")


def summarize(rollouts: pd.DataFrame, confidence: float, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
              seed: int = 0) -> dict[str, pd.DataFrame]:  # fmt: skip
    """The phase 3 tables (keys = ``CSV_NAMES``; columns = ``SUMMARY_COLUMNS``), intervals
    from ``n_bootstrap`` cluster-bootstrap resamples seeded by ``seed``. The transfer matrix and
    retention need the base model (``model_id == "base"``)."""
    check_rollouts(rollouts)
    args = (rollouts, confidence, n_bootstrap, seed)
    return {
        "overall": overall_table(*args),
        "per_quadrant": per_quadrant_table(*args),
        "transfer": transfer_table(*args),
        "retention": retention_table(*args),
        "stuckness": stuckness_table(*args),
        "family": family_metrics_table(*args),
    }


def write_summaries(tables: dict[str, pd.DataFrame], out) -> list[str]:
    """Each table to its CSV (``schemas.PHASE3_TABLES``, checked, atomic writes): ``out`` is a
    directory, or the list of the CSV paths (in any order); returns the paths."""
    from pathlib import Path

    from .io import write_table

    if isinstance(out, (str, Path)):
        paths = {k: Path(out) / name for k, name in CSV_NAMES.items()}
    else:
        by_name = {Path(p).name: Path(p) for p in out}
        if set(by_name) != set(CSV_NAMES.values()) or len({p.parent for p in by_name.values()}) != 1:
            raise ValueError(f"the phase 3 tables must be the files {sorted(CSV_NAMES.values())} in one directory, "
                             f"got {sorted(map(str, out))}")  # fmt: skip
        paths = {k: by_name[name] for k, name in CSV_NAMES.items()}
    for key, p in paths.items():
        write_table(tables[key], PHASE3_TABLES[key], p)
    return [str(p) for p in paths.values()]


def benchmark_json(rollouts: pd.DataFrame, model_id: str, confidence: float = 0.95,
                   n_bootstrap: int = DEFAULT_N_BOOTSTRAP, seed: int = 0) -> dict:  # fmt: skip
    """A benchmark-style result of one model on the overall suite (eval tasks from reset): pass
    rate with its n and interval (percentile bootstrap over tasks), average reward, and the same
    per level (env id); the family's headline metrics too (``Family.headline_metrics``)."""
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    g = rollouts[(rollouts["model_id"] == model_id) & (rollouts["suite"] == "overall")]
    if g.empty:
        raise ValueError(f"no overall-suite rollouts for model {model_id!r}")
    pr = rate_of(bs, g, "success", "task_id")
    by_level = {}
    for env_id, ge in sorted(g.groupby("env_id"), key=lambda t: t[0]):
        pe = rate_of(bs, ge, "success", "task_id")
        by_level[str(env_id)] = {"pass_rate": pe["value"], "n": pe["n"], "ci": [pe["lo"], pe["hi"]],
                                 "avg_reward": float(ge["return"].mean()), "n_tasks": pe["n_clusters"],
                                 "n_rollouts": pe["n"]}  # fmt: skip
    key = "ci95" if abs(confidence - 0.95) < 1e-12 else f"ci{round(confidence * 100):g}"
    family = {}
    fm = family_metrics_table(g, confidence, n_bootstrap, seed)
    _, headline = family_metrics(sorted(g["env_id"].unique()), g.columns)
    for _, r in fm[fm["metric"].isin(headline)].iterrows():
        family[r["metric"]] = {"value": r["value"], "n": int(r["n"]), key: [r["lo"], r["hi"]], "n_tasks": int(r["n_tasks"])}
    return {
        "model": model_id,
        "suite": "overall",
        "pass_rate": pr["value"],
        "n": pr["n"],
        key: [pr["lo"], pr["hi"]],
        "confidence": confidence,
        "interval": f"percentile bootstrap over tasks ({bs.n_resamples} resamples, seed {bs.seed})",
        "avg_reward": float(g["return"].mean()),
        "avg_steps": float(g["steps"].mean()),
        "n_tasks": int(g["task_id"].nunique()),
        "n_rollouts": int(len(g)),
        "rollouts_per_task": int(g.groupby("task_id").size().max()),
        "by_level": by_level,
        **family,  # the family's headline metrics (Family.headline_metrics), each with n and interval
    }
