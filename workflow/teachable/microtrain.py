"""Phase 1B: does the cheap CPT signal predict real training utility?

For the gate sample (``select_gate_sample``: ``phase1b.sample`` uniform, the default, or per
quadrant): success of the student from the snapshot (no patch) before
and after training a fresh LoRA adapter on that one snapshot's route-matched supervision
(``training.supervision_example(row, row.route_net)``, prompt tokens masked, a few high-LR steps).
Δ = after - before. Then Spearman ρ(ELP_net, Δ) with a bootstrap CI and a permutation p-value,
where ELP_net is Phase 1's cross-fitted estimate. The verdict is ``gate.gate_rule``'s: pass,
fail or undetermined.

A gate that discriminates: the same ρ (CI, p) for the trivial predictors of Δ (``baselines``:
L_local, headroom = 1 - p_policy, U), the partial Spearman ρ(ELP_net, Δ | p_policy) with its CI
and p (``partial_rho``: Pearson correlation of the rank residuals after regressing the ranks of
ELP_net and of Δ on the ranks of p_policy) and given L_local (``partial_rho_L_local``),
ρ(ELP_net, Δ) - ρ(L_local, Δ) with its paired interval (``rho_minus_L_local``), and ρ per route
(``per_route``). CPT adds information beyond headroom when the partial ρ's interval lies above 0
(``adds_beyond_headroom``). How precise the gate can be: the split-half reliability of Δ and, on
the gate sample, of ELP_net and L_local, with the attenuation they put on ρ
(``reliability.gate_reliability``).

Choices:
- before and after use the same rollout seeds per snapshot (common random numbers): each is an
  ordinary binomial sample, and Δ has less noise than with independent seeds. Each rollout's
  outcome is kept (``y_before``, ``y_after``, in rollout order) for Δ's split-half reliability.
- a per-quadrant sample over-represents the small quadrants; its ρ is reported unweighted (the
  report says so, ``weighting``): only a uniform sample estimates ρ over the labeled snapshots.
- ``before`` rollouts of all sampled snapshots run in one batched ``run_rollouts`` call; every
  ``after`` needs its own adapter, so it runs per snapshot.
- p_target_before / p_target_after: the student's probability of the teacher's action at the
  snapshot (no patch; a free-form state's: its key's share of the samples), a check that the
  update took, whatever the outcome did.
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
from .envs.registry import StateSpaces
from .labeling import action_prob, snapshot_context, snapshot_parsers
from .gate import RULE, gate_reason, gate_rule
from .reliability import gate_reliability
from .rollouts import RolloutSpec, study_rollouts
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


def select_uniform(labeled: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Up to ``n`` snapshots drawn uniformly from all quadrants, in the order of
    derive_seed(seed, "phase1b", snapshot_id) (``select_micro_snapshots``'s order), then sorted
    by quadrant and id. Rows with ``heldout == True`` are skipped when that column exists."""
    if n < 1:
        raise ValueError(f"phase1b.n_snapshots must be >= 1, got {n}")
    df = labeled[~labeled["heldout"].astype(bool)] if "heldout" in labeled.columns else labeled
    if len(df) < n:
        log.warning("phase 1B: %d labeled snapshots, fewer than n_snapshots=%d: all are sampled", len(df), n)
    order = df["snapshot_id"].map(lambda s: (derive_seed(int(seed), "phase1b", str(s)), str(s)))
    return df.loc[order.sort_values().index[:n]].sort_values(["quadrant", "snapshot_id"]).reset_index(drop=True)


SAMPLES = ("uniform", "per_quadrant")


def select_gate_sample(labeled: pd.DataFrame, p1b: dict, seed: int) -> pd.DataFrame:
    """The gate sample: ``phase1b.sample`` uniform (``n_snapshots``, ``select_uniform``) or
    per_quadrant (``per_quadrant`` each, ``select_micro_snapshots``)."""
    how = p1b.get("sample", "uniform")
    if how == "uniform":
        return select_uniform(labeled, int(p1b["n_snapshots"]), seed)
    if how == "per_quadrant":
        return select_micro_snapshots(labeled, int(p1b["per_quadrant"]), seed)
    raise ValueError(f"phase1b.sample={how!r}: expected one of {SAMPLES}")


def shard_sample(labeled: pd.DataFrame, p1b: dict, seed: int, shard: int, n_shards: int) -> pd.DataFrame:
    """One microtrain job's share (rows ``shard::n_shards``) of the gate sample."""
    from .splits import shard_rows

    sample = select_gate_sample(labeled, p1b, seed)
    mine = shard_rows(sample, shard, n_shards)
    log.info("micro-training %d of %d sampled snapshots (shard %d/%d; %s sample, per quadrant %s)", len(mine),
             len(sample), shard, n_shards, p1b.get("sample", "uniform"), sample["quadrant"].value_counts().to_dict())
    return mine


def merge_results(shards: list[pd.DataFrame], cfg: dict,
                  labeled: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:  # fmt: skip
    """The merged shards with their success intervals, and the correlation report (with the
    reliability of the gate sample's labels when ``labeled`` is given)."""
    results = pd.concat(shards, ignore_index=True)
    if results["snapshot_id"].duplicated().any():
        raise ValueError("micro-training shards overlap: a snapshot appears twice")
    results = success_intervals(results.sort_values(["quadrant", "snapshot_id"]).reset_index(drop=True),
                                float(cfg["phase1"]["confidence"]))  # fmt: skip
    return results, correlation_report(results, cfg["phase1b"], cfg["seed"], labeled=labeled,
                                       reliability_floor=float(cfg["phase1"]["reliability_floor"]))  # fmt: skip


def gate_verdict(report: dict, gate: str, source: str) -> dict[str, Any]:
    """The gate's verdict on a correlation report (``gate.gate_rule``, recomputed from its ρ and
    interval): pass, or, when it fails or is undetermined, a warning (gate "warn") or an error
    that stops the downstream phases (gate "stop": they rest on CPT predicting utility, which an
    undetermined gate has not shown)."""
    ci = report.get("rho_ci") or [None, None]
    thr = float(report["rho_threshold"])
    v = gate_rule(report.get("rho"), ci[0], ci[1], thr)
    verdict = {"pass": v == "pass", "verdict": v, "gate": gate, "correlation": source,
               "reason": gate_reason(v, report.get("rho"), ci[0], ci[1], thr)}  # fmt: skip
    if not verdict["pass"]:
        msg = f"CPT gate {verdict['reason']} (n = {report.get('n')}); see {source}"
        if gate == "stop":
            raise ValueError(msg + " -- phase1b.gate is 'stop', so downstream phases do not run")
        log.warning("%s -- phase1b.gate is 'warn', continuing", msg)
    return verdict


def _specs(row, n: int, seed: int, key: str) -> list[RolloutSpec]:
    sid = row["snapshot_id"]
    return [
        RolloutSpec(env_id=row["env_id"], seed=int(row["seed"]), prefix=tuple(row["actions"]), key=(sid, key, i),
                    stream=rollout_key(int(seed), "phase1b", sid, i))  # fmt: skip
        for i in range(n)
    ]


def _outcomes(results) -> dict[tuple[str, str], list[float]]:
    """0/1 success of every rollout per (snapshot, before | after), in rollout order."""
    by: dict[tuple[str, str], dict[int, float]] = {}
    for r in results:
        sid, side, i = r.spec.key
        by.setdefault((sid, side), {})[i] = float(r.success)
    return {k: [v[i] for i in sorted(v)] for k, v in by.items()}


def _dists(policy, rows: list, spaces: StateSpaces) -> list:
    """The student's distribution at each snapshot row (over its valid actions, or a free-form
    state's sampled keys: ``labeling.snapshot_parsers``)."""
    ctxs = [snapshot_context(r) for r in rows]
    return policy.distribution(ctxs, snapshot_parsers(rows, spaces))


def _p_target(policy, row, spaces: StateSpaces) -> float:
    """The student's probability of the teacher's action (a free-form state's: of its key, the
    share of the samples with its effect)."""
    d = _dists(policy, [row], spaces)[0]
    if d.actions is None:
        return float(np.exp(d.logprobs[list(row["valid_actions"]).index(row["suggested_action"])]))
    return action_prob(row["suggested_action"], d.actions, d.logprobs, spaces.of_row(row))


def _aligned(base, tuned) -> tuple[np.ndarray, np.ndarray]:
    """The log probabilities of base's support under base and under tuned (a free-form state's:
    tuned's share of each key base sampled, 0 where it sampled none)."""
    if base.keys is None:
        return base.logprobs, tuned.logprobs
    with np.errstate(divide="ignore"):
        return base.logprobs, np.log([tuned.key_prob(k) for k in base.keys])


def _drift_kl(base: list, tuned: list, skip: int) -> float:
    kls = [float(np.sum(np.exp(b) * (b - t))) for i, (b, t) in
           enumerate(_aligned(bd, td) for bd, td in zip(base, tuned)) if i != skip]  # fmt: skip
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
    before = _outcomes(study_rollouts(before_specs, policy, cfg, desc="phase1b before", progress=progress))
    spaces = StateSpaces.of_config(cfg["env"])
    p_before = {r["snapshot_id"]: _p_target(policy, r, spaces) for _, r in rows}
    snaps = [r for _, r in rows]
    base_lp = _dists(policy, snaps, spaces)

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
                after = _outcomes(study_rollouts(_specs(r, n, seed, "after"), policy, cfg, progress=False))
                p_after = _p_target(policy, r, spaces)
                drift = _drift_kl(base_lp, _dists(policy, snaps, spaces), skip=k)
            finally:
                policy.load_adapter(None)
            yb, ya = before[(sid, "before")], after[(sid, "after")]
            (bk, bn), (ak, an) = (int(sum(yb)), len(yb)), (int(sum(ya)), len(ya))
            out.append({
                "snapshot_id": sid, "quadrant": r["quadrant"], "ELP_net": float(r["ELP_net"]),
                "route": r["route_net"], "before_k": bk, "before_n": bn, "after_k": ak, "after_n": an,
                "delta": ak / an - bk / bn, "train_seconds": round(train_seconds, 3),
                "p_target_before": p_before[sid], "p_target_after": p_after, "drift_kl": drift,
                "final_loss": tlog["final_loss"], "first_loss": tlog["loss_curve"][0][1] if tlog["loss_curve"] else math.nan,
                **{c: r[c] for c in CARRIED if c in r.index}, "y_before": yb, "y_after": ya,
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


def rho_test(cols: tuple[np.ndarray, ...], stat, cfg: dict, seed: int, tag: str,
             permute: bool = True) -> dict[str, Any]:  # fmt: skip
    """``stat`` (Spearman or partial Spearman) of paired columns over snapshots: value, percentile
    bootstrap CI (resamples with an undefined value are left out and counted), one-sided
    permutation p-value (the first column permuted against the others; None without ``permute``,
    for a statistic with no null of independence, e.g. a difference of two ρ). NaN with ``reason``
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
    if not permute:
        rep["p_value"] = None
        return rep
    rng = np.random.default_rng(derive_seed(int(seed), "phase1b", tag, "permutation"))
    perm = st.permutation_test(cols, stat, permutation_type="pairings", vectorized=True,
                               n_resamples=int(cfg["permutation_resamples"]), alternative="greater", rng=rng)  # fmt: skip
    rep["p_value"] = float(perm.pvalue)
    return rep


def rho_minus(x, other, y, axis: int = -1):
    """Spearman ρ(x, y) - ρ(other, y) along ``axis`` (vectorized for the paired bootstrap)."""
    return spearman_along(x, y, axis) - spearman_along(other, y, axis)


def correlation_report(results: pd.DataFrame, p1b_cfg: dict, seed: int, labeled: pd.DataFrame | None = None,
                       reliability_floor: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Spearman ρ(ELP_net, delta) with a paired percentile-bootstrap CI and a one-sided
    permutation p-value, the gate's verdict (``gate.gate_rule``: pass | fail | undetermined;
    ``pass`` is verdict == pass), per-quadrant mean Δ with t intervals; the trivial predictors'
    ρ (``baselines``), the partial ρ given p_policy and given L_local, ρ(ELP_net) - ρ(L_local)
    with its interval, ρ per route, and the reliability of Δ (and, with ``labeled``, of the gate
    sample's ELP_net and L_local) with the attenuation it implies (module docstring). Undefined
    statistics are NaN with a ``reason``."""
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
    rep["rule"] = RULE
    rep["verdict"] = gate_rule(rep["rho"], *rep["rho_ci"], thr)
    rep["pass"] = rep["verdict"] == "pass"
    rep["reason"] = rep["reason"] or gate_reason(rep["verdict"], rep["rho"], *rep["rho_ci"], thr)
    rep["blocks_downstream"] = bool(not rep["pass"] and rep["gate"] == "stop")
    how = p1b_cfg.get("sample", "uniform")
    rep["sample"] = how
    rep["weighting"] = ("none needed: a uniform sample of the labeled snapshots" if how == "uniform" else
                        "unweighted: a per-quadrant sample over-represents small quadrants (no inverse-probability "
                        "weights), so rho describes the sample, not all labeled snapshots")  # fmt: skip
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
    if "L_local" in results.columns:
        ll = results["L_local"].to_numpy(float)
        rep["partial_rho_L_local"] = rho_test((results["ELP_net"].to_numpy(float), delta, ll), partial_spearman,
                                              p1b_cfg, seed, "partial_L_local")  # fmt: skip
        rep["partial_rho_L_local"]["given"] = "L_local"
        rep["rho_minus_L_local"] = rho_test((results["ELP_net"].to_numpy(float), ll, delta), rho_minus, p1b_cfg,
                                            seed, "rho_minus_L_local", permute=False)  # fmt: skip
    else:
        why = {"rho": math.nan, "reason": "column L_local missing from the results"}
        rep["partial_rho_L_local"], rep["rho_minus_L_local"] = dict(why), dict(why)
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
    rep["reliability"] = gate_reliability(results, labeled, {"ELP_net": rep["rho"],
                                                             "L_local": rep["baselines"]["L_local"].get("rho")},
                                          conf, int(p1b_cfg["bootstrap_resamples"]), int(seed), reliability_floor)
    return rep
