"""Phase 4 metrics: how well the predictor's out-of-fold predictions (``teachable.predictor``)
match each target, beside the entropy-only baseline's, and whether ranking by predicted ELP_net
beats ranking by U.

- Regression: R² (sklearn ``r2_score``) and Spearman (scipy, with its p-value), each with a
  percentile *cluster* bootstrap interval over tasks (``n_bootstrap`` resamples, seeded from the
  config seed): snapshots of one task are correlated, so a resample draws whole tasks. Spearman's
  p-value (scipy's) treats snapshots as independent and is on the small side.
- Classification: accuracy with its Wilson interval (``stats.proportion``; it treats snapshots as
  independent, so it is on the narrow side) and, for reference, the accuracy of always
  predicting the most frequent class.
- Ranking by predicted ELP_net, K = min(top_k, n): Precision@K = the fraction of the predicted
  top K (ties by snapshot_id, as Phase 5) whose true ELP_net is at least the K-th largest true
  value (ties at the K-th value all count as "in the true top K"; the size of that set and the
  precision of a random ranking, size / n, are reported); NDCG@K by sklearn ``ndcg_score`` with
  relevance ELP_net - min(ELP_net). The entropy baseline ranks by U itself (no fitted model).
  ``predictor_beats_entropy`` (``beats``): the point flag, strictly higher Precision@K and
  strictly higher NDCG@K; null when any of the four numbers is undefined. It describes the
  point estimates only. The verdict is ``beats_by_interval`` (``INTERVAL_RULE``), from
  ``difference``: predictor - entropy in Precision@K and in NDCG@K with percentile intervals of
  a cluster bootstrap over tasks (``ranking_difference``; both rankings scored on each
  resample): held iff both lower bounds are > 0, not held iff either upper bound is <= 0, else
  null (undetermined).
- An undefined metric (constant truth or prediction, ...) is null with its reason in
  ``null_reasons``, never a made-up number.

Config: ``top_k`` (K), ``n_bootstrap`` (resamples) and ``confidence`` (level of every interval) of
``cfg["phase4"]``, and ``cfg["seed"]``. ``predictor_metrics`` returns the content of
``training_result.json`` (its layout is in its docstring).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .predictor import BASELINE, CROSSFIT_TARGET, TARGETS, predictor_params


# ----------------------------------------------------------------------------------- metrics
def _r2(y: np.ndarray, p: np.ndarray) -> float:
    """sklearn's R²; NaN or -inf (never forced to a finite number) where the truth is constant."""
    from sklearn.metrics import r2_score

    return float(r2_score(y, p, force_finite=False))


def bootstrap_ci(y, p, stat, n_boot: int, confidence: float, seed: int, groups):
    """Percentile interval of ``stat(y, p)`` over a cluster bootstrap of the ``groups`` (tasks;
    ``stats.cluster_bootstrap_statistic``), so snapshots of one task stay together. Resamples
    where it is undefined (not finite) are left out. Returns (lo, hi, n_defined)."""
    from .stats import cluster_bootstrap_statistic

    y, p = np.asarray(y, float), np.asarray(p, float)
    [ci] = cluster_bootstrap_statistic(lambda rows: stat(y[rows], p[rows]), groups, confidence, n_boot, seed)
    return ci


def regression_metrics(y, pred, groups, n_boot: int, confidence: float, seed: int) -> dict[str, Any]:
    """R² and Spearman of out-of-fold predictions, with cluster-bootstrap intervals over the
    ``groups`` (tasks)."""
    from scipy.stats import spearmanr

    from .seeding import derive_seed
    from .stats import spearman_rho

    y, pred = np.asarray(y, float), np.asarray(pred, float)
    nan = float("nan")
    m: dict[str, Any] = {"r2": nan, "r2_lo": nan, "r2_hi": nan, "spearman": nan, "spearman_lo": nan,
                         "spearman_hi": nan, "spearman_p": nan, "n": len(y)}  # fmt: skip
    reasons: dict[str, str] = {}
    if len(y) < 2 or np.ptp(y) == 0:
        reasons["r2"] = reasons["spearman"] = "the true values are constant: R² and Spearman are undefined"
    else:
        m["r2"] = _r2(y, pred)
        m["r2_lo"], m["r2_hi"], m["r2_boot_defined"] = bootstrap_ci(
            y, pred, _r2, n_boot, confidence, derive_seed(seed, "phase4", "r2"), groups)
        if np.ptp(pred) == 0:
            reasons["spearman"] = "the predictions are constant: Spearman is undefined"
        else:
            res = spearmanr(y, pred)
            m["spearman"], m["spearman_p"] = float(res.statistic), float(res.pvalue)
            m["spearman_lo"], m["spearman_hi"], m["spearman_boot_defined"] = bootstrap_ci(
                y, pred, spearman_rho, n_boot, confidence, derive_seed(seed, "phase4", "spearman"), groups)
    for k in ("r2_lo", "spearman_lo"):
        name = k[:-3]
        if name not in reasons and not np.isfinite(m[k]):
            reasons[k] = reasons[f"{name}_hi"] = f"{name} is undefined on every bootstrap resample"
    m["null_reasons"] = reasons
    return m


def classification_metrics(y, pred, confidence: float) -> dict[str, Any]:
    """Accuracy with its Wilson interval; majority-class accuracy for reference."""
    from .stats import proportion

    y, pred = np.asarray(y, dtype=object), np.asarray(pred, dtype=object)
    n = len(y)
    pr = proportion(int((y == pred).sum()), n, confidence)
    counts = pd.Series(y).value_counts()
    return {"accuracy": pr["p"], "lo": pr["lo"], "hi": pr["hi"], "n": n,
            "majority_accuracy": float(counts.iloc[0] / n) if n else float("nan"),
            "majority_class": str(counts.index[0]) if n else None,
            "class_counts": {str(k): int(v) for k, v in counts.sort_index().items()},
            "null_reasons": {} if n else {"accuracy": "no snapshots"}}  # fmt: skip


def _order(score: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Indices by score descending, ties by id ascending (as Phase 5's selection)."""
    return np.lexsort((np.asarray(ids, dtype=str), -np.asarray(score, float)))


def precision_at_k(true: np.ndarray, score: np.ndarray, ids: np.ndarray, k: int) -> tuple[float, int]:
    """Fraction of the top k by ``score`` (ties by id) whose true value is >= the k-th largest
    true value; also returns the size of that tie-inclusive true top-k set."""
    true = np.asarray(true, float)
    kth = np.sort(true)[::-1][k - 1]
    in_true_top = true >= kth
    picked = _order(score, ids)[:k]
    return float(in_true_top[picked].mean()), int(in_true_top.sum())


def ranking_metrics(true, score, ids, k: int) -> dict[str, Any]:
    """Precision@K, NDCG@K (relevance = true - min(true)) and Spearman of a ranking score."""
    from scipy.stats import spearmanr
    from sklearn.metrics import ndcg_score

    true, score = np.asarray(true, float), np.asarray(score, float)
    nan = float("nan")
    out: dict[str, Any] = {"precision_at_k": nan, "ndcg_at_k": nan, "spearman": nan, "spearman_p": nan}
    reasons: dict[str, str] = {}
    if np.ptp(true) == 0:
        reasons = {m: "the true values are constant: every ranking ties" for m in out}
    else:
        out["precision_at_k"], _ = precision_at_k(true, score, ids, k)
        out["ndcg_at_k"] = float(ndcg_score((true - true.min())[None, :], score[None, :], k=k))
        if np.ptp(score) == 0:
            reasons["spearman"] = reasons["spearman_p"] = "the ranking score is constant"
        else:
            res = spearmanr(true, score)
            out["spearman"], out["spearman_p"] = float(res.statistic), float(res.pvalue)
    out["null_reasons"] = reasons
    return out


BEATS_RULE = "strictly higher precision_at_k and strictly higher ndcg_at_k; null if any of the four is undefined"
INTERVAL_RULE = ("held iff the lower bounds of both differences (predictor - entropy in precision_at_k and in "
                 "ndcg_at_k) are > 0; not held iff either upper bound is <= 0 (that interval excludes a gain); else "
                 "undetermined (null)")  # fmt: skip
RANKING_METRICS = ("precision_at_k", "ndcg_at_k")


def beats(pred: dict, ent: dict) -> bool | None:
    """The point flag "the predictor beats entropy": strictly higher Precision@K AND strictly
    higher NDCG@K; None when any of the four is undefined (None or NaN). A description of the
    point estimates, not a verdict: the verdict is ``beats_by_interval``."""
    vals = [pred.get("precision_at_k"), ent.get("precision_at_k"), pred.get("ndcg_at_k"), ent.get("ndcg_at_k")]
    if not all(v is not None and np.isfinite(v) for v in vals):
        return None
    return bool(pred["precision_at_k"] > ent["precision_at_k"] and pred["ndcg_at_k"] > ent["ndcg_at_k"])


def beats_by_interval(difference: dict) -> bool | None:
    """The study's verdict "the predictor ranks better than entropy" (Phase 4 and the summary),
    from the cluster-bootstrap intervals of the two differences (``ranking_difference``):
    ``INTERVAL_RULE``."""
    from .stats import interval_verdict

    each = [interval_verdict((difference.get(m) or {}).get("lo"), (difference.get(m) or {}).get("hi"), 0.0, ">")
            for m in RANKING_METRICS]  # fmt: skip
    if False in each:
        return False
    return True if all(each) else None


def ranking_difference(true, pred, ent, ids, groups, k: int, n_boot: int, confidence: float,
                       seed: int) -> dict[str, Any]:  # fmt: skip
    """Predictor minus entropy in Precision@K and NDCG@K (``ranking_metrics``' definitions, K =
    min(k, rows)), each with a percentile interval over a cluster bootstrap of tasks: a resample
    draws whole tasks and scores both rankings on it. Resamples with constant truth (every
    ranking ties) are left out and counted in ``n_defined``."""
    from sklearn.metrics import ndcg_score

    from .stats import cluster_bootstrap_statistic

    true, pred, ent = (np.asarray(a, float) for a in (true, pred, ent))
    ids = np.asarray(ids, dtype=str)

    def diffs(idx: np.ndarray) -> tuple[float, float]:
        t = true[idx]
        if np.ptp(t) == 0:
            return float("nan"), float("nan")
        kk, rel = min(k, len(idx)), (t - t.min())[None, :]
        dp = precision_at_k(t, pred[idx], ids[idx], kk)[0] - precision_at_k(t, ent[idx], ids[idx], kk)[0]
        dn = ndcg_score(rel, pred[idx][None, :], k=kk) - ndcg_score(rel, ent[idx][None, :], k=kk)
        return float(dp), float(dn)

    point = diffs(np.arange(len(true)))
    boot = cluster_bootstrap_statistic(diffs, groups, confidence, n_boot, seed)
    out: dict[str, Any] = {}
    for name, v, (lo, hi, n_def) in zip(RANKING_METRICS, point, boot):
        out[name] = {"value": v, "lo": lo, "hi": hi, "n_defined": n_def}
    out.update(statistic="predictor - entropy", n_resamples=n_boot, confidence=confidence, method="percentile",
               unit="task (all snapshots of a drawn task)")
    return out


# -------------------------------------------------------------------------- the metrics step
def predictor_metrics(oof_df: pd.DataFrame, one_class_folds: dict[str, list[int]], cfg: dict) -> dict[str, Any]:
    """The result of Phase 4 from the out-of-fold predictions (``fit_predictor``): per target,
    its metrics beside the entropy-only baseline's, and the ranking by predicted ELP_net against
    ranking by U with the cluster-bootstrap intervals of their differences. Layout:

    {"n_snapshots", "n_tasks", "n_folds", "cv", "confidence", "seed", "params", "bootstrap",
     "targets": {target: {"kind", "column", "inputs", "excluded_inputs", "uses_defining_inputs",
                          "note", "model", "folds_with_one_class", "metrics",
                          "baseline": {"name", "inputs", "metrics"} | None, "baseline_reason"}},
     "ranking": {"target", "k", "relevance", "true_top_k", "precision_at_k_random", "tie_rule",
                 "predictor": {...}, "entropy": {...}, "predictor_beats_entropy", "beats_rule",
                 "difference": {"precision_at_k": {"value", "lo", "hi", "n_defined"}, "ndcg_at_k": {...},
                                "statistic", "n_resamples", "confidence", "method", "unit"},
                 "beats_by_interval", "interval_rule"}}
    """
    from .seeding import derive_seed

    params = predictor_params(cfg)
    seed = int(cfg["seed"])
    nb, conf = params["n_bootstrap"], params["confidence"]
    n, tasks = len(oof_df), oof_df["task_id"].astype(str).to_numpy()

    def target_metrics(kind, y, pred):
        if kind == "regression":
            return regression_metrics(y, pred, tasks, nb, conf, seed)
        return classification_metrics(y, pred, conf)

    targets = {}
    for t in TARGETS:
        y = oof_df[t.column].to_numpy(dtype=float if t.kind == "regression" else object)
        baseline = None
        if t.baseline_reason is None:
            baseline = {**BASELINE, "metrics": target_metrics(t.kind, y, oof_df[f"baseline_{t.name}"].to_numpy())}
        targets[t.name] = {
            "kind": t.kind, "column": t.column, "inputs": t.inputs, "excluded_inputs": t.excluded,
            "uses_defining_inputs": list(t.uses_defining_inputs), "note": t.note,
            "model": "Ridge" if t.kind == "regression" else "LogisticRegression",
            "folds_with_one_class": one_class_folds[t.name],
            "metrics": target_metrics(t.kind, y, oof_df[f"pred_{t.name}"].to_numpy()),
            "baseline": baseline, "baseline_reason": t.baseline_reason,
        }  # fmt: skip

    true = oof_df[CROSSFIT_TARGET].to_numpy(dtype=float)
    pred = oof_df[f"pred_{CROSSFIT_TARGET}"].to_numpy(dtype=float)
    u = oof_df["U"].to_numpy(dtype=float)
    k = min(params["top_k"], n)
    ids = oof_df["snapshot_id"].astype(str).to_numpy()
    pred_rank, ent_rank = ranking_metrics(true, pred, ids, k), ranking_metrics(true, u, ids, k)
    top_size = precision_at_k(true, true, ids, k)[1]
    diff = ranking_difference(true, pred, u, ids, tasks, k, nb, conf, derive_seed(seed, "phase4", "ranking"))
    ranking = {
        "target": CROSSFIT_TARGET, "k": k,
        "relevance": f"NDCG relevance = {CROSSFIT_TARGET} - min({CROSSFIT_TARGET}) (non-negative, as ndcg_score needs)",
        "tie_rule": f"predicted top K ties by snapshot_id; a pick is in the true top K when its {CROSSFIT_TARGET} "
                    f">= the K-th largest true value",
        "true_top_k": top_size, "precision_at_k_random": top_size / n,
        "predictor": pred_rank, "entropy": {**ent_rank, "score": "U (descending), no fitted model"},
        "predictor_beats_entropy": beats(pred_rank, ent_rank),
        "beats_rule": BEATS_RULE,
        "difference": diff,
        "beats_by_interval": beats_by_interval(diff),
        "interval_rule": INTERVAL_RULE,
    }  # fmt: skip
    return {
        "n_snapshots": n, "n_tasks": len(set(tasks)), "n_folds": int(oof_df["fold"].nunique()),
        "cv": "GroupKFold by task_id", "confidence": conf, "seed": seed, "params": params,
        "bootstrap": {"n_resamples": nb, "method": "percentile", "unit": "task (all snapshots of a drawn task)"},
        "targets": targets, "ranking": ranking,
    }  # fmt: skip


def summary_lines(result: dict) -> list[str]:
    """A short table of the main metrics (for the log)."""

    def f(x):
        return "   n/a" if x is None or not np.isfinite(x) else f"{x:6.3f}"

    lines = [f"{'target':<20} {'model':<13} {'R2/acc':>6} {'rho':>6} {'n':>5}"]
    for name, t in result["targets"].items():
        rows = [("predictor", t["metrics"])] + ([("entropy_only", t["baseline"]["metrics"])] if t["baseline"] else [])
        for model, m in rows:
            main = m["r2"] if t["kind"] == "regression" else m["accuracy"]
            lines.append(f"{name:<20} {model:<13} {f(main)} {f(m.get('spearman'))} {m['n']:>5}")
    rk = result["ranking"]
    for model in ("predictor", "entropy"):
        m = rk[model]
        lines.append(f"ranking {rk['target']} by {model:<9}: P@{rk['k']} {f(m['precision_at_k'])}  "
                     f"NDCG@{rk['k']} {f(m['ndcg_at_k'])}  rho {f(m['spearman'])}")  # fmt: skip
    d = rk["difference"]
    lines.append("predictor - entropy: " + ", ".join(
        f"{m} {f(d[m]['value'])} [{f(d[m]['lo'])}, {f(d[m]['hi'])}]" for m in RANKING_METRICS))  # fmt: skip
    lines.append(f"predictor beats entropy (intervals): {rk['beats_by_interval']}; point flag "
                 f"{rk['predictor_beats_entropy']} (random ranking P@K {f(rk['precision_at_k_random'])})")  # fmt: skip
    return lines
