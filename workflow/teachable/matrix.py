"""Phase 2: the 14-run training matrix and the B3_traces baseline (the plan, data selection and
one job per run).

Runs: ``{quadrant}_{fmt}`` for the four quadrants x demo/hint/contrast, ``B1_uniform`` (the same
budget drawn uniformly at random from all non-held-out snapshots, demo format), ``B2_all``
(every non-held-out snapshot, demo format) and ``B3_traces``: plain SFT on the student's own
phase 0 traces, the episodes ``phase2.traces`` keeps (``teachable traces``' filter: by default
experiment A's successful student episodes), every step one example (its context -> the action
taken), held-out tasks excluded. Formats are defined in ``teachable.training``.

The plan (``plan_training``, rule ``plan_training``: ``phase2/heldout.json`` and
``phase2/plan.json``) is written once and read by every training and evaluation job of
Phases 2, 3 and 5:

- Held-out split (``splits.heldout_split``), by TASK: every snapshot of a task on one side,
  stratified by quadrant, at least ``phase2.min_heldout_tasks`` tasks per stratum where it has
  more (its rule is in ``teachable.splits``; a stratum short of it is listed in heldout.json's and
  plan.json's ``short_strata`` and logged). Held-out snapshots never enter
  any run's training set (Phase 3 evaluates on them; Phase 5 never selects them); a training task
  that is also a held-out task is an error.
- Budget K: min(phase2.budget if set, the smallest train pool among the quadrants whose pool
  reaches phase2.min_budget). A quadrant under min_budget (empty included) is not trained: its
  three runs are listed under ``skipped`` with the reason, and everything else runs. With no
  quadrant eligible, K = min(phase2.budget, all train snapshots) for B1_uniform.
- Equal compute: every budgeted run (12 quadrant runs, B1_uniform; Phase 5's methods with their
  own K) trains ceil(epochs x (K + A) / batch_size) optimizer steps, A = the anchor's pairs
  (``anchor.run_steps``, ``phase2.lora.epochs``, ``phase2.anchor.share``); B2_all trains the same epochs over all N train snapshots, i.e.
  ceil(epochs x N / batch_size) steps, and the plan states its extra compute (N / K); so does
  B3_traces over its kept steps (``b3_traces_compute_ratio``). Too few kept steps (under
  phase2.min_budget) skip it with the reason.
- Phase 5 runs when there are more candidates (non-held-out snapshots) than phase5.budget, so
  that the methods can pick different sets; otherwise it is skipped with the reason.
- Selection (``run_training_set``): the three formats of one quadrant train on the SAME
  snapshots (ordered by derive_seed(seed, "matrix", quadrant, snapshot_id)), so format effects
  are not confounded with snapshot choice; B1_uniform takes the first K of all train snapshots in
  derive_seed(seed, "matrix", "uniform", snapshot_id) order (not stratified by quadrant).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from .constants import FORMATS, QUADRANTS, RUN_IDS, TRACES_RUN
from .splits import (
    apply_heldout,
    check_task_disjoint,
    heldout_record,
    heldout_split,
    seeded_order,
)

log = logging.getLogger(__name__)

BASELINES = ("B1_uniform", "B2_all", TRACES_RUN)
TRACE_FORMAT = "trace"  # B3_traces' examples: the student's own context -> the action it took


def run_spec(run_id: str) -> tuple[str | None, str, str]:
    """(quadrant or None, format, kind) of a run id; kind is "quadrant", "uniform", "all" or "traces"."""
    if run_id == "B1_uniform":
        return None, "demo", "uniform"
    if run_id == "B2_all":
        return None, "demo", "all"
    if run_id == TRACES_RUN:
        return None, TRACE_FORMAT, "traces"
    for q in QUADRANTS:
        if run_id.startswith(q + "_") and run_id[len(q) + 1 :] in FORMATS:
            return q, run_id[len(q) + 1 :], "quadrant"
    raise ValueError(f"unknown phase 2 run id {run_id!r}; expected one of {RUN_IDS}")


def train_pools(split_df: pd.DataFrame) -> dict[str, int]:
    train = split_df[~split_df["heldout"]]
    return {q: int((train["quadrant"] == q).sum()) for q in QUADRANTS}


def trace_set(rollouts, cfg: dict, heldout_task_ids) -> tuple[pd.DataFrame, dict]:
    """B3_traces' training steps: phase 0's steps of the episodes kept by ``phase2.traces``
    (``traces.query_traces``), held-out tasks excluded; and the filter's stats."""
    from .traces import FILTER_KEYS, query_traces

    filt = {k: cfg["phase2"]["traces"][k] for k in FILTER_KEYS}
    return query_traces(rollouts, **filt, exclude_tasks=heldout_task_ids)


def plan_training(labeled: pd.DataFrame, cfg: dict, rollouts=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(heldout.json, plan.json) of the study (module docstring); ``rollouts``: phase 0's
    rollouts.parquet, the source of B3_traces (without it B3_traces is not trained, and the plan
    says so)."""
    from .anchor import anchor_count, run_steps
    from .traces import trace_examples

    p2, seed = cfg["phase2"], int(cfg["seed"])
    min_held = int(p2["min_heldout_tasks"])
    split = heldout_split(labeled, float(p2["heldout_frac"]), seed, min_held)
    heldout = heldout_record(split, float(p2["heldout_frac"]), seed, min_held)
    for q, why in heldout["short_strata"].items():
        log.warning("phase 2: held-out stratum %s %s", q, why)
    held_tasks = sorted(set(split.loc[split["heldout"], "task_id"]))
    traces = None
    if rollouts is not None:
        steps, stats = trace_set(rollouts, cfg, held_tasks)
        traces = {"examples": len(trace_examples(steps)), "episodes": stats["kept"]["episodes"],
                  "filter": dict(p2["traces"]), "stats": stats}  # fmt: skip
    pools = train_pools(split)
    n_train = int((~split["heldout"]).sum())
    min_budget, cap = int(p2["min_budget"]), p2.get("budget")
    eligible = {q: v for q, v in pools.items() if v >= min_budget}
    k = min(eligible.values()) if eligible else n_train
    if cap is not None:
        k = min(k, int(cap))
    epochs, bs = float(p2["lora"]["epochs"]), int(p2["lora"]["batch_size"])
    share = anchor_share(cfg)
    steps = run_steps(epochs, k, bs, share) if k >= 1 else 0
    runs: dict[str, dict[str, Any]] = {}
    for run_id in RUN_IDS:
        q, fmt, kind = run_spec(run_id)
        reason = None
        if kind == "quadrant" and q not in eligible:
            reason = f"quadrant {q} has {pools[q]} train snapshot(s), under phase2.min_budget={min_budget}"
        elif kind == "uniform" and k < min_budget:
            reason = f"{n_train} train snapshot(s) in all give a budget of {k}, under phase2.min_budget={min_budget}"
        elif kind == "all" and n_train < min_budget:
            reason = f"{n_train} train snapshot(s), under phase2.min_budget={min_budget}"
        elif kind == "traces" and traces is None:
            reason = "the plan was made without phase 0's rollouts (the source of the traces)"
        elif kind == "traces" and traces["examples"] < min_budget:
            reason = (f"phase2.traces keeps {traces['examples']} step(s) of {traces['episodes']} episode(s) outside "
                      f"the held-out tasks, under phase2.min_budget={min_budget}")  # fmt: skip
        n_ex = {"all": n_train, "traces": traces["examples"] if traces else 0}.get(kind, k)
        runs[run_id] = (
            {"trained": False, "reason": reason} if reason else
            {"trained": True, "quadrant": q, "format": fmt, "kind": kind, "examples": n_ex, "epochs": epochs,
             "anchor_examples": anchor_count(n_ex, share), "optimizer_steps": run_steps(epochs, n_ex, bs, share)}
        )  # fmt: skip
    k5 = int(cfg["phase5"]["budget"])
    sel_reason = None
    if n_train <= k5:
        sel_reason = (f"{n_train} candidate snapshot(s) (labeled, not held out) for phase5.budget={k5}: every "
                      "method would pick the same set; label more snapshots or lower phase5.budget")  # fmt: skip
    plan = {
        "seed": seed, "budget": k, "epochs": epochs, "batch_size": bs, "optimizer_steps": steps, "anchor_share": share,
        "min_budget": min_budget, "configured_budget": cap, "train_pools": pools, "n_train": n_train,
        "n_heldout": int(split["heldout"].sum()), "short_strata": heldout["short_strata"],
        "b2_all_compute_ratio": (n_train / k) if k else None,
        "traces": traces,
        "b3_traces_compute_ratio": (traces["examples"] / k) if traces and k else None,
        "runs": runs,
        "trained_runs": [r for r in RUN_IDS if runs[r]["trained"]],
        "skipped_runs": {r: v["reason"] for r, v in runs.items() if not v["trained"]},
        "selection": {"run": sel_reason is None, "reason": sel_reason, "k": k5, "n_candidates": n_train,
                      "epochs": epochs, "optimizer_steps": run_steps(epochs, k5, bs, share)},
    }  # fmt: skip
    for r, why in plan["skipped_runs"].items():
        log.warning("phase 2: run %s is not trained: %s", r, why)
    if sel_reason:
        log.warning("phase 5 is not run: %s", sel_reason)
    return heldout, plan


def anchor_share(cfg: dict) -> float:
    """``phase2.anchor.share`` (the schema's default where the section is left out)."""
    from .config import section

    return float(section("phase2.anchor", cfg["phase2"].get("anchor"))["share"])


def anchor_and_drift(rollouts_path, labeled: pd.DataFrame, heldout_task_ids, n_examples: int,
                     cfg: dict) -> tuple[list, list[str], pd.DataFrame]:  # fmt: skip
    """(anchor pairs, their step ids, drift states) of a run of ``n_examples`` supervised
    examples (``teachable.anchor``; the same rule for Phases 2 and 5)."""
    from .anchor import anchor_examples, anchor_pool, drift_contexts, student_steps
    from .config import section

    a = section("phase2.anchor", cfg["phase2"].get("anchor"))
    if rollouts_path is None:
        raise ValueError("the anchor and the drift states come from phase 0's rollouts: give the rollouts file")
    steps, seed = student_steps(rollouts_path), int(cfg["seed"])
    pairs, ids = anchor_examples(anchor_pool(steps, heldout_task_ids, labeled), n_examples, float(a["share"]), seed)
    return pairs, ids, drift_contexts(steps, heldout_task_ids, int(a["drift_states"]), seed)


def run_training_set(split_df: pd.DataFrame, run_id: str, budget: int, seed: int) -> pd.DataFrame:
    """The snapshots run ``run_id`` trains on (never a held-out one), deterministic."""
    quadrant, _, kind = run_spec(run_id)
    if kind == "traces":
        raise ValueError(f"run {run_id} trains on phase 0's traces (trace_set), not on labeled snapshots")
    train = split_df[~split_df["heldout"].astype(bool)]
    if kind == "all":
        return train.sort_values("snapshot_id").reset_index(drop=True)
    if kind == "uniform":
        pool, parts = train, (int(seed), "matrix", "uniform")
    else:
        pool, parts = train[train["quadrant"] == quadrant], (int(seed), "matrix", quadrant)
    if len(pool) < budget:
        raise ValueError(f"run {run_id}: train pool of {len(pool)} snapshots is smaller than the budget {budget}")
    return pool.loc[seeded_order(pool["snapshot_id"], *parts)[:budget]].reset_index(drop=True)


def training_examples(train_df: pd.DataFrame, fmt: str) -> list:
    from .training import supervision_example

    return [supervision_example(r, fmt) for _, r in train_df.iterrows()]


def train_matrix_run(run_id: str, labeled_path, heldout_path, plan_path, model_dir, cfg: dict, out_dir, *,
                     progress: bool = True, trainer=None, rollouts_path=None) -> dict[str, Any]:  # fmt: skip
    """One phase 2 job: the plan's split and budget, select, train (``adapter/`` and
    ``train_log.json``, resuming from ``checkpoints/`` if a job was killed), then write
    ``train_set.json`` (ids used, tasks used, held out)."""
    from .anchor import target_marginal
    from .documents import HELDOUT, PLAN, TRAIN_SET
    from .io import read_doc, read_parquet, write_doc
    from .training import train_lora

    seed = int(cfg["seed"])
    plan, heldout = read_doc(plan_path, PLAN), read_doc(heldout_path, HELDOUT)
    entry = plan["runs"].get(run_id)
    if entry is None or not entry["trained"]:
        why = entry["reason"] if entry else "not in the plan"
        raise ValueError(f"run {run_id} is not trained by the plan {plan_path}: {why}")
    quadrant, fmt, kind = run_spec(run_id)
    split = apply_heldout(read_parquet(labeled_path), heldout)
    held = split[split["heldout"]]
    if kind == "traces":
        from .traces import trace_examples

        if rollouts_path is None:
            raise ValueError(f"run {run_id} trains on phase 0's traces: give the rollouts file")
        steps, _ = trace_set(rollouts_path, cfg, heldout["task_ids"])
        examples = [(ctx, action) for ctx, action, _ in trace_examples(steps)]
        train_df = steps.drop_duplicates("episode_id")
        ids = {"snapshot_ids": [], "episode_ids": train_df["episode_id"].tolist()}
    else:
        train_df = run_training_set(split, run_id, int(plan["budget"]), seed)
        examples = training_examples(train_df, fmt)
        ids = {"snapshot_ids": train_df["snapshot_id"].tolist()}
    check_task_disjoint(train_df["task_id"], heldout["task_ids"], f"the training set of {run_id}")
    if len(examples) != entry["examples"]:
        raise AssertionError(f"run {run_id} has {len(examples)} examples, the plan says {entry['examples']}")
    train_set = {
        "run_id": run_id, "quadrant": quadrant, "format": fmt, "kind": kind, "seed": seed,
        "budget": int(plan["budget"]), "examples": len(examples), **ids, "task_ids": sorted(set(train_df["task_id"])),
        "train_quadrants": {q: int((train_df["quadrant"] == q).sum()) if "quadrant" in train_df else 0
                            for q in QUADRANTS},
        "heldout_snapshot_ids": sorted(held["snapshot_id"]), "heldout_task_ids": heldout["task_ids"],
        "train_pools": plan["train_pools"], "labeled_snapshots": int(len(split)),
    }  # fmt: skip
    anchor, anchor_ids, drift = anchor_and_drift(rollouts_path, split, heldout["task_ids"], len(examples), cfg)
    train_set.update(anchor_step_ids=anchor_ids, target_marginal=target_marginal(t for _, t in examples),
                     anchor_marginal=target_marginal(t for _, t in anchor))  # fmt: skip
    lora = {k: v for k, v in cfg["phase2"]["lora"].items()}
    meta = {k: train_set[k] for k in ("run_id", "quadrant", "format", "kind", "budget")}
    out = train_lora(model_dir, examples, lora, out_dir, progress=progress, trainer=trainer, meta=meta,
                     student=cfg.get("student"), env_id=cfg["env"]["id"], anchor=anchor, drift=drift)  # fmt: skip
    if out["optimizer_steps"] != entry["optimizer_steps"]:
        raise AssertionError(f"run {run_id} trained {out['optimizer_steps']} steps, the plan says "
                             f"{entry['optimizer_steps']}")
    # written last, beside the adapter and the train log: a job killed mid-training leaves none of its
    # outputs, so the same command resumes it (Snakemake flags an output left by a killed job)
    write_doc(train_set, TRAIN_SET, Path(out_dir) / "train_set.json")
    return out


def training_summary(run_dirs, plan: dict) -> dict[str, Any]:
    """Per trained run (from train_log.json and train_set.json): examples, epochs, optimizer
    steps, tokens, seconds, losses; the runs the plan did not train, with the reason; audits:
    equal examples and steps for all budgeted runs, one held-out set, no held-out snapshot or task
    in any training set."""
    from .documents import TRAIN_LOG, TRAIN_SET
    from .io import read_doc

    runs: dict[str, dict[str, Any]] = {}
    heldout_sets, leaks = set(), []
    for d in run_dirs:
        d = Path(d)
        tl, ts = read_doc(d / "train_log.json", TRAIN_LOG), read_doc(d / "train_set.json", TRAIN_SET)
        rid = ts["run_id"]
        runs[rid] = {
            "examples": tl["examples"], "epochs": tl["epochs"], "optimizer_steps": tl["optimizer_steps"],
            "tokens_trained": tl["tokens_trained"], "seconds": tl["seconds"], "train_seconds": tl["train_seconds"],
            "final_loss": tl["final_loss"], "first_loss": tl["loss_curve"][0][1] if tl["loss_curve"] else None,
            "format": ts["format"], "quadrant": ts["quadrant"], "kind": ts["kind"], "budget": ts["budget"],
            "n_train_tasks": len(ts["task_ids"]), "n_heldout": len(ts["heldout_snapshot_ids"]),
            "resumed_from": tl.get("resumed_from"), "trainable_params": tl.get("trainable_params"),
            "anchor_examples": tl.get("anchor_examples", 0), "target_marginal": tl.get("target_marginal"),
            "anchor_marginal": tl.get("anchor_marginal"), "drift": tl.get("drift"),
            "dir": str(d),
        }  # fmt: skip
        heldout_sets.add(tuple(ts["heldout_snapshot_ids"]))
        leaks += sorted(set(ts["snapshot_ids"]) & set(ts["heldout_snapshot_ids"]))
        leaks += sorted(set(ts["task_ids"]) & set(ts["heldout_task_ids"]))
    budgeted = {r: (v["examples"], v["optimizer_steps"]) for r, v in runs.items() if r not in ("B2_all", TRACES_RUN)}
    return {
        "runs": runs,
        "n_runs": len(runs),
        "skipped_runs": plan["skipped_runs"],
        "missing_runs": [r for r in plan["trained_runs"] if r not in runs],
        "budget": plan["budget"], "epochs": plan["epochs"], "optimizer_steps": plan["optimizer_steps"],
        "anchor_share": plan.get("anchor_share", 0.0),
        "b2_all_compute_ratio": plan["b2_all_compute_ratio"],
        "b3_traces_compute_ratio": plan.get("b3_traces_compute_ratio"),
        "equal_budgets": len(set(budgeted.values())) <= 1,
        "same_heldout_set": len(heldout_sets) <= 1,
        "heldout_leaks": leaks,
    }  # fmt: skip
