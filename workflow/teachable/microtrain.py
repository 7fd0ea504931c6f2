"""Phase 1B: does the cheap CPT signal predict real training utility?

For snapshots sampled per quadrant: success of the student from the snapshot (no patch) before
and after training a fresh LoRA adapter on that one snapshot's route-matched supervision
(``training.supervision_example(row, row.route_net)``, prompt tokens masked, a few high-LR steps).
Δ = after - before. Then Spearman ρ(ELP_net, Δ) with a bootstrap CI and a permutation p-value,
where ELP_net is Phase 1's cross-fitted estimate.

A gate that discriminates: the same ρ (CI, p) for the trivial predictors of Δ (``baselines``:
L_local, headroom = 1 - p_policy, U), the partial Spearman ρ(ELP_net, Δ | p_policy) with its CI
and p (``partial_rho``: Pearson correlation of the rank residuals after regressing the ranks of
ELP_net and of Δ on the ranks of p_policy), and ρ per route (``per_route``). CPT adds information
beyond headroom when the partial ρ's interval lies above 0 (``adds_beyond_headroom``).

Choices:
- before and after use the same rollout seeds per snapshot (common random numbers): each is an
  ordinary binomial sample, and Δ has less noise than with independent seeds.
- ``before`` rollouts of all sampled snapshots run in one batched ``run_rollouts`` call; every
  ``after`` needs its own adapter, so it runs per snapshot.
- p_target_before / p_target_after: the student's probability of the teacher's action at the
  snapshot (no patch), a check that the update took, whatever the outcome did.
- drift_kl: mean KL(base || tuned) of the action distributions at the OTHER sampled snapshots
  (no patch): how far the update reaches beyond its snapshot. A large drift means Δ measures a
  global policy change more than a local correction (lower phase1b.lora.lr or steps).
- the permutation tests are one-sided (alternative "greater"): the claim under test is a positive
  association. Intervals are percentile bootstraps over snapshots at confidence 1 - alpha.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as st
from tqdm.auto import tqdm

from .constants import FORMATS, QUADRANTS
from .labeling import snapshot_context, snapshot_parsers
from .rollouts import RolloutSpec, group_success, study_rollouts
from .schemas import MICRO_RESULTS, MICRO_SHARD
from .seeding import derive_seed, rollout_key
from .stats import mean_interval, partial_spearman, proportion, spearman_along
from .training import LoraTrainer, supervision_example

log = logging.getLogger(__name__)

# a microtrain shard's columns (counts, no statistic) and what micro_merge adds
# (``success_intervals``: rates with their Wilson intervals): ``schemas.MICRO_SHARD`` / ``MICRO_RESULTS``
SHARD_COLUMNS = tuple(MICRO_SHARD.names)
RESULT_COLUMNS = tuple(MICRO_RESULTS.names)
# the trivial predictors of Δ the gate compares ELP_net with (name -> column or derivation)
BASELINES = ("L_local", "headroom", "U")
CARRIED = ("task_id", "ELP_net_naive", "p_policy", "L_local", "U")  # copied from the labels


def select_micro_snapshots(labeled: pd.DataFrame, per_quadrant: int, seed: int) -> pd.DataFrame:
    """Up to ``per_quadrant`` snapshots per quadrant (all of a smaller quadrant), chosen by the
    order of derive_seed(seed, "phase1b", snapshot_id): deterministic, independent of row order.
    Rows with ``heldout == True`` are skipped when that column exists."""
    if per_quadrant < 1:
        raise ValueError(f"per_quadrant must be >= 1, got {per_quadrant}")
    df = labeled
    if "heldout" in df.columns:
        df = df[~df["heldout"].astype(bool)]
    parts = []
    for q in QUADRANTS:
        g = df[df["quadrant"] == q]
        if len(g) < per_quadrant:
            log.warning("phase 1B: quadrant %s has %d snapshots, fewer than per_quadrant=%d", q, len(g), per_quadrant)
        order = g["snapshot_id"].map(lambda s: (derive_seed(int(seed), "phase1b", str(s)), str(s)))
        parts.append(g.loc[order.sort_values().index[:per_quadrant]])
    return pd.concat(parts, ignore_index=True) if parts else df.iloc[:0].copy()


def shard_sample(labeled: pd.DataFrame, per_quadrant: int, seed: int, shard: int, n_shards: int) -> pd.DataFrame:
    """One microtrain job's share (rows ``shard::n_shards``) of the per-quadrant sample."""
    from .splits import shard_rows

    sample = select_micro_snapshots(labeled, per_quadrant, seed)
    mine = shard_rows(sample, shard, n_shards)
    log.info("micro-training %d of %d sampled snapshots (shard %d/%d; sample per quadrant %s)", len(mine),
             len(sample), shard, n_shards, sample["quadrant"].value_counts().to_dict())  # fmt: skip
    return mine


def merge_results(shards: list[pd.DataFrame], cfg: dict) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The merged shards with their success intervals, and the correlation report."""
    results = pd.concat(shards, ignore_index=True)
    if results["snapshot_id"].duplicated().any():
        raise ValueError("micro-training shards overlap: a snapshot appears twice")
    results = success_intervals(results.sort_values(["quadrant", "snapshot_id"]).reset_index(drop=True),
                                float(cfg["phase1"]["confidence"]))  # fmt: skip
    return results, correlation_report(results, cfg["phase1b"], cfg["seed"])


def gate_verdict(report: dict, gate: str, source: str) -> dict[str, Any]:
    """The gate's verdict on a correlation report: pass, or fail with a warning (gate "warn") or
    an error that stops the downstream phases (gate "stop")."""
    verdict = {"pass": bool(report.get("pass")), "gate": gate, "correlation": source}
    if not verdict["pass"]:
        msg = (f"CPT gate failed: rho={report.get('rho')} (threshold {report.get('rho_threshold')}), "
               f"p={report.get('p_value')} (alpha {report.get('alpha')}); see {source}")  # fmt: skip
        if gate == "stop":
            raise ValueError(msg + " -- phase1b.gate is 'stop', so downstream phases do not run")
        log.warning("%s -- phase1b.gate is 'warn', continuing", msg)
    return verdict


def _specs(row, n: int, seed: int, key: str) -> list[RolloutSpec]:
    sid = row["snapshot_id"]
    return [
        RolloutSpec(env_id=row["env_id"], seed=int(row["seed"]), prefix=tuple(row["actions"]), key=(sid, key),
                    stream=rollout_key(int(seed), "phase1b", sid, i))  # fmt: skip
        for i in range(n)
    ]


def _logprobs(policy, rows: list) -> list[np.ndarray]:
    """The student's distribution over the valid actions at each snapshot row."""
    ctxs = [snapshot_context(r) for r in rows]
    return [d.logprobs for d in policy.distribution(ctxs, snapshot_parsers(r["env_id"] for r in rows))]


def _p_target(policy, row) -> float:
    lp = _logprobs(policy, [row])[0]
    return float(np.exp(lp[list(row["valid_actions"]).index(row["suggested_action"])]))


def _drift_kl(base: list, tuned: list, skip: int) -> float:
    kls = [float(np.sum(np.exp(b) * (b - t))) for i, (b, t) in enumerate(zip(base, tuned)) if i != skip]
    return float(np.mean(kls)) if kls else math.nan


def run_micro_training(labeled_sample: pd.DataFrame, model_dir, cfg: dict, *, progress: bool = True,
                       policy=None) -> pd.DataFrame:  # fmt: skip
    """One row per snapshot: before/after successes and rollouts (``SHARD_COLUMNS``), Δ, train
    seconds; no interval (``success_intervals`` adds them when the shards are merged).
    ``policy``: the student on ``model_dir`` to reuse (else one is loaded from cfg["student"])."""

    p1b = cfg["phase1b"]
    n = int(p1b["n_validation_rollouts"])
    seed = int(cfg["seed"])
    from .policies import make_student, trainer_policy

    if policy is None:
        policy = make_student(cfg["student"], model_dir, env_id=cfg["env"]["id"])
    policy.load_adapter(None)
    # the student that acts trains too (hf), or a transformers copy trains what it serves (vllm)
    trainer = LoraTrainer(model_dir, policy=trainer_policy(policy, cfg["student"], model_dir, env_id=cfg["env"]["id"]))
    rows = list(labeled_sample.iterrows())
    if not rows:
        return pd.DataFrame(columns=list(SHARD_COLUMNS))

    before_specs = [s for _, r in rows for s in _specs(r, n, seed, "before")]
    before = group_success(study_rollouts(before_specs, policy, cfg, desc="phase1b before", progress=progress))
    p_before = {r["snapshot_id"]: _p_target(policy, r) for _, r in rows}
    snaps = [r for _, r in rows]
    base_lp = _logprobs(policy, snaps)

    out = []
    bar = tqdm(rows, desc="phase1b micro-training", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="phase1b_") as tmp:
        for k, (_, r) in enumerate(bar):
            sid = r["snapshot_id"]
            example = supervision_example(r, r["route_net"])
            run_dir = f"{tmp}/{k}"
            t0 = time.time()
            tlog = trainer.run([example], p1b["lora"], run_dir, progress=False)
            train_seconds = time.time() - t0
            policy.load_adapter(f"{run_dir}/adapter")
            try:
                after = group_success(study_rollouts(_specs(r, n, seed, "after"), policy, cfg, progress=False))
                p_after = _p_target(policy, r)
                drift = _drift_kl(base_lp, _logprobs(policy, snaps), skip=k)
            finally:
                policy.load_adapter(None)
            (bk, bn), (ak, an) = before[(sid, "before")], after[(sid, "after")]
            out.append({
                "snapshot_id": sid, "quadrant": r["quadrant"], "ELP_net": float(r["ELP_net"]),
                "route": r["route_net"], "before_k": bk, "before_n": bn, "after_k": ak, "after_n": an,
                "delta": ak / an - bk / bn, "train_seconds": round(train_seconds, 3),
                "p_target_before": p_before[sid], "p_target_after": p_after, "drift_kl": drift,
                "final_loss": tlog["final_loss"], "first_loss": tlog["loss_curve"][0][1] if tlog["loss_curve"] else math.nan,
                **{c: r[c] for c in CARRIED if c in r.index},
            })  # fmt: skip
            bar.set_postfix(delta=f"{ak / an - bk / bn:+.2f}")
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------ statistics
def success_intervals(shards: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Merged shard rows with before/after success rates and their Wilson intervals
    (``schemas.MICRO_RESULTS``)."""
    out = shards.copy()
    for side in ("before", "after"):
        prs = [proportion(int(k), int(n), confidence) for k, n in zip(out[f"{side}_k"], out[f"{side}_n"])]
        out[side] = [pr["p"] for pr in prs]
        out[f"{side}_lo"] = [pr["lo"] for pr in prs]
        out[f"{side}_hi"] = [pr["hi"] for pr in prs]
    return out[[c for c in RESULT_COLUMNS if c in out.columns]]


def _finite(*cols: np.ndarray) -> np.ndarray:
    return np.all([np.isfinite(c) for c in cols], axis=0)


def rho_test(cols: tuple[np.ndarray, ...], stat, cfg: dict, seed: int, tag: str) -> dict[str, Any]:
    """``stat`` (Spearman or partial Spearman) of paired columns over snapshots: value, percentile
    bootstrap CI (resamples with an undefined value are left out and counted), one-sided
    permutation p-value (the first column permuted against the others). NaN with ``reason``
    when fewer than 3 snapshots or a constant column make it undefined."""
    alpha = float(cfg["alpha"])
    ok = _finite(*cols)
    cols = tuple(np.asarray(c, float)[ok] for c in cols)
    n = int(ok.sum())
    rep: dict[str, Any] = {"n": n, "rho": math.nan, "rho_ci": [math.nan, math.nan], "p_value": math.nan,
                           "bootstrap_degenerate": None, "reason": None}  # fmt: skip
    if n < 3:
        rep["reason"] = f"n = {n} < 3 snapshots: rho undefined"
        return rep
    const = [i for i, c in enumerate(cols) if np.ptp(c) == 0]
    if const:
        rep["reason"] = f"constant column(s) {const} ({tag}): rho undefined"
        return rep
    rho = float(stat(*cols))
    if not np.isfinite(rho):
        rep["reason"] = f"{tag}: rho undefined on these data"
        return rep
    rep["rho"] = float(rho)
    rng = np.random.default_rng(derive_seed(int(seed), "phase1b", tag, "bootstrap"))
    boot = st.bootstrap(cols, stat, paired=True, vectorized=True, n_resamples=int(cfg["bootstrap_resamples"]),
                        confidence_level=1 - alpha, method="percentile", rng=rng)  # fmt: skip
    dist = np.asarray(boot.bootstrap_distribution)
    good = np.isfinite(dist)
    rep["bootstrap_degenerate"] = int((~good).sum())
    if good.any():
        rep["rho_ci"] = [float(v) for v in np.percentile(dist[good], [100 * alpha / 2, 100 * (1 - alpha / 2)])]
    rng = np.random.default_rng(derive_seed(int(seed), "phase1b", tag, "permutation"))
    perm = st.permutation_test(cols, stat, permutation_type="pairings", vectorized=True,
                               n_resamples=int(cfg["permutation_resamples"]), alternative="greater", rng=rng)  # fmt: skip
    rep["p_value"] = float(perm.pvalue)
    return rep


def correlation_report(results: pd.DataFrame, p1b_cfg: dict, seed: int) -> dict[str, Any]:
    """Spearman ρ(ELP_net, delta) with a paired percentile-bootstrap CI and a one-sided
    permutation p-value, the pass flag ρ >= rho_threshold and p <= alpha, per-quadrant mean Δ
    with t intervals; the trivial predictors' ρ (``baselines``), the partial ρ given p_policy
    and ρ per route (module docstring). Undefined statistics are NaN with a ``reason``."""
    alpha = float(p1b_cfg["alpha"])
    thr = float(p1b_cfg["rho_threshold"])
    conf = 1.0 - alpha
    delta = results["delta"].to_numpy(float)
    main = rho_test((results["ELP_net"].to_numpy(float), delta), spearman_along, p1b_cfg, seed, "ELP_net")
    rep: dict[str, Any] = {
        **main, "n_dropped_nonfinite": int(len(results) - main["n"]),
        "ci_method": "percentile bootstrap (paired, over snapshots)", "confidence": conf,
        "bootstrap_resamples": int(p1b_cfg["bootstrap_resamples"]),
        "p_method": "permutation (pairings), one-sided: rho > 0",
        "permutation_resamples": int(p1b_cfg["permutation_resamples"]),
        "rho_threshold": thr, "alpha": alpha, "gate": p1b_cfg["gate"], "pass": False,
    }  # fmt: skip
    if math.isfinite(rep["rho"]):
        rep["pass"] = bool(rep["rho"] >= thr and rep["p_value"] <= alpha)
        if not rep["pass"]:
            rep["reason"] = f"rho = {rep['rho']:.3f} (threshold {thr}), p = {rep['p_value']:.4f} (alpha {alpha})"
    rep["blocks_downstream"] = bool(not rep["pass"] and rep["gate"] == "stop")
    rep["baselines"] = {}
    for name in BASELINES:
        col = "p_policy" if name == "headroom" else name
        if col not in results.columns:
            rep["baselines"][name] = {"rho": math.nan, "reason": f"column {col} missing from the results"}
            continue
        x = results[col].to_numpy(float)
        rep["baselines"][name] = rho_test((1.0 - x if name == "headroom" else x, delta), spearman_along, p1b_cfg,
                                          seed, name)  # fmt: skip
    if "p_policy" in results.columns:
        rep["partial_rho"] = rho_test((results["ELP_net"].to_numpy(float), delta, results["p_policy"].to_numpy(float)),
                                      partial_spearman, p1b_cfg, seed, "partial")  # fmt: skip
        rep["partial_rho"]["given"] = "p_policy"
    else:
        rep["partial_rho"] = {"rho": math.nan, "reason": "column p_policy missing from the results"}
    lo = rep["partial_rho"].get("rho_ci", [math.nan])[0]
    rep["adds_beyond_headroom"] = bool(lo > 0) if math.isfinite(lo) else None
    rep["per_route"] = {}
    for route in FORMATS:
        sub = results[results["route"] == route]
        if len(sub):
            rep["per_route"][route] = rho_test((sub["ELP_net"].to_numpy(float), sub["delta"].to_numpy(float)),
                                               spearman_along, p1b_cfg, seed, f"route_{route}")  # fmt: skip
    rep["per_quadrant"] = {}
    for q in QUADRANTS:
        sub = results[results["quadrant"] == q]
        d = {**mean_interval(sub["delta"].to_numpy(float), conf), "method": "t"}
        if d["n"] < 2:
            d["note"] = "no snapshots" if d["n"] == 0 else "n = 1: no interval"
        elif d["lo"] == d["hi"]:
            d["note"] = "all deltas equal: zero-width interval"
        d["mean_ELP_net"] = float(sub["ELP_net"].mean()) if len(sub) else math.nan
        d["mean_before"] = float(sub["before"].mean()) if len(sub) else math.nan
        d["mean_after"] = float(sub["after"].mean()) if len(sub) else math.nan
        rep["per_quadrant"][q] = d
    rep["routes"] = {k: int(v) for k, v in results["route"].value_counts().items()} if len(results) else {}
    return rep
