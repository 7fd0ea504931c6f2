"""Phase 4: the teachability predictor. Can cheap observables tell, before any rollout or teacher
call, how teachable a failure snapshot is?

Inputs (``cheap_features``), in named groups; nothing else is ever a model input:
- ``text``: instruction, observation and the action history, joined as
  ``instruction + " \\n " + observation + " \\n " + " \\n ".join(history)``, embedded by
  sklearn's HashingVectorizer (word unigrams + bigrams, lowercase, tokens of one or more word
  characters so the distances "1", "2" count, ``alternate_sign=False``, l2-normalised).
- ``uncertainty``: U, U_norm, top1_prob, margin, exp_H, p_student_action (from the student's own
  log-probabilities: one forward pass, no rollout).
- ``step``: step_idx.
- ``structural``: number of valid actions, history length, observation lines and words,
  experiment == "B" (1/0).
Rollout outcomes, teacher outputs and hindsight (p_*, gain_*, L_upper, episode_length,
first_irrecoverable_step, suggested_action, diagnosis, ... and the targets themselves) are never
read: the features are built from ``RAW_COLUMNS`` only. Numeric groups are standardised
(StandardScaler); a NaN in an input is an error, never imputed.

Targets and their inputs (``TARGETS``; every exclusion is written out with its reason):
- ``U`` (regression): without the uncertainty group (those are functions of the same
  distribution, so predicting U from them is circular); no entropy-only baseline (U is its input).
- ``L_local``, ``ELP_net`` (regression), ``route_net`` (classification): all groups.
- ``quadrant`` (classification): all groups, flagged ``uses_defining_inputs: ["U"]`` because the
  quadrant is defined by U > U_threshold; the variant ``quadrant_without_U`` drops the uncertainty
  group and shows what is left without reading U back.
Models: a Pipeline (features -> ColumnTransformer -> Ridge(alpha) or LogisticRegression(C)).
A classification training fold with one class only predicts that class (DummyClassifier, the
fold is listed in ``folds_with_one_class``); a class absent from a training fold simply cannot be
predicted in that fold. Baseline (``entropy_only``): the same model family on the single feature U.

Protocol:
- Cross-validation: sklearn GroupKFold by task_id (its deterministic assignment: groups by size
  to the lightest fold), n_splits = min(n_folds, distinct tasks); one fold assignment for all
  targets. Every metric is computed on the out-of-fold predictions.
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
  resample): held iff both lower bounds are > 0, not held iff either upper bound is < 0, else
  null (undetermined).
- An undefined metric (constant truth or prediction, ...) is null with its reason in
  ``null_reasons``, never a made-up number.

Config (``cfg["phase4"]``, defaults and ranges from the config schema; ``cfg["seed"]`` is required):
``n_features`` (hashing size), ``ridge_alpha``, ``logreg_C``, ``n_folds``, ``top_k`` (K),
``n_bootstrap`` (resamples), ``confidence`` (level of every interval).

Outputs of ``train_predictor``:
- the predictor directory: ``feature_config.json``; ``{target}.joblib`` per target, fitted on all
  rows; the cross-fitted ``ELP_net_fold{k}.joblib`` (the fold models that made the out-of-fold
  ELP_net predictions) and ``folds.json`` (``fold_of_task``: the fold in which a task was test
  data, ``train_tasks`` per fold). Each joblib file holds a dict {"target", "fold",
  "train_tasks", "model"}. The directory is built under a temp name and renamed into place.
- ``training_result.json`` (metrics, layout in ``train_predictor``) and
  ``oof_predictions.parquet`` (snapshot_id, task_id, fold, each target's truth, ``pred_{target}``
  and ``baseline_{target}``).
``load_crossfit_predictor`` scores a snapshot with the fold model trained without its task;
anything missing or unloadable is an error, never a fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

UNCERTAINTY = ["U", "U_norm", "top1_prob", "margin", "exp_H", "p_student_action"]
GROUPS: dict[str, list[str]] = {
    "text": ["text"],
    "uncertainty": UNCERTAINTY,
    "step": ["step_idx"],
    "structural": ["n_valid_actions", "history_len", "obs_lines", "obs_words", "is_experiment_B"],
}
# the labeled-snapshot columns the features are built from: the only columns a model reads
RAW_COLUMNS = ["instruction", "observation", "history", "valid_actions", "experiment", "step_idx", *UNCERTAINTY]
TOKEN_PATTERN = r"(?u)\b\w+\b"
NGRAM_RANGE = (1, 2)
LOGREG_MAX_ITER = 2000
BASELINE = {"name": "entropy_only", "inputs": ["U"]}
CROSSFIT_TARGET = "ELP_net"

_CIRCULAR = "functions of the student's same action distribution as U: predicting U from them is circular"
_DEFINES_QUADRANT = "U defines the quadrant (U > U_threshold); U_norm, exp_H, ... are functions of it"


@dataclass(frozen=True)
class Target:
    name: str  # key in the outputs
    column: str  # the labeled column it predicts
    kind: str  # "regression" | "classification"
    excluded: dict[str, str]  # group -> reason
    uses_defining_inputs: tuple[str, ...] = ()
    note: str | None = None
    baseline_reason: str | None = None  # set <=> no entropy-only baseline

    @property
    def inputs(self) -> list[str]:
        return [g for g in GROUPS if g not in self.excluded]


TARGETS = [
    Target("U", "U", "regression", {"uncertainty": _CIRCULAR},
           note="can text, step and structure predict the student's uncertainty without running it?",
           baseline_reason="the entropy-only baseline's input U is this target itself"),
    Target("L_local", "L_local", "regression", {}),
    Target("ELP_net", "ELP_net", "regression", {}),
    Target("quadrant", "quadrant", "classification", {}, uses_defining_inputs=("U",),
           note="the quadrant is defined by U > U_threshold (and L_local > L_threshold) and U is an input "
                "here, so part of this accuracy is reading U back; see quadrant_without_U"),
    Target("quadrant_without_U", "quadrant", "classification", {"uncertainty": _DEFINES_QUADRANT},
           note="the quadrant without the uncertainty group (the baseline still reads U)"),
    Target("route_net", "route_net", "classification", {}),
]  # fmt: skip


# ------------------------------------------------------------------------------------ config
def predictor_params(cfg: dict) -> dict[str, Any]:
    """``cfg["phase4"]`` with the schema's defaults and checks (``config.section``)."""
    from .config import section

    if "seed" not in cfg:
        raise ValueError("the config needs 'seed' (it seeds the bootstrap)")
    return section("phase4", cfg.get("phase4"))


# ---------------------------------------------------------------------------------- features
def _as_list(v: Any) -> list:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    return list(v)


def cheap_features(df: pd.DataFrame) -> pd.DataFrame:
    """The feature columns of ``GROUPS`` from the ``RAW_COLUMNS`` of labeled snapshots."""
    missing = [c for c in RAW_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"snapshots lack the predictor's input column(s) {missing}")
    nan = [c for c in ["step_idx", *UNCERTAINTY] if df[c].isna().any()]
    if nan:
        raise ValueError(f"predictor input column(s) {nan} have NaN values (no imputation)")
    obs = df["observation"].fillna("").astype(str)
    hist = df["history"].map(_as_list)
    text = [f"{i} \n {o} \n " + " \n ".join(map(str, h))
            for i, o, h in zip(df["instruction"].fillna("").astype(str), obs, hist)]  # fmt: skip
    out = pd.DataFrame({
        "text": text,
        **{c: df[c].to_numpy(dtype=float) for c in UNCERTAINTY},
        "step_idx": df["step_idx"].to_numpy(dtype=float),
        "n_valid_actions": df["valid_actions"].map(lambda v: len(_as_list(v))).to_numpy(dtype=float),
        "history_len": hist.map(len).to_numpy(dtype=float),
        "obs_lines": obs.map(lambda s: sum(1 for ln in s.splitlines() if ln.strip())).to_numpy(dtype=float),
        "obs_words": obs.map(lambda s: len(s.split())).to_numpy(dtype=float),
        "is_experiment_B": (df["experiment"] == "B").to_numpy(dtype=float),
    }, index=df.index)  # fmt: skip
    return out


def _hashing(n_features: int):
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=n_features, alternate_sign=False, ngram_range=NGRAM_RANGE,
                             token_pattern=TOKEN_PATTERN, lowercase=True, norm="l2")


def build_model(kind: str, groups: dict[str, list[str]], params: dict, one_class: bool = False):
    """Pipeline: cheap_features -> ColumnTransformer(groups) -> Ridge / LogisticRegression (or,
    for a training set with one class only, a DummyClassifier predicting it)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    parts = [(g, _hashing(params["n_features"]), "text") if g == "text" else (g, StandardScaler(), cols)
             for g, cols in groups.items()]  # fmt: skip
    if kind == "regression":
        est = Ridge(alpha=params["ridge_alpha"])
    elif one_class:
        est = DummyClassifier(strategy="most_frequent")
    else:
        est = LogisticRegression(C=params["logreg_C"], max_iter=LOGREG_MAX_ITER)
    return Pipeline([("features", FunctionTransformer(cheap_features)),
                     ("columns", ColumnTransformer(parts, remainder="drop")), ("model", est)])  # fmt: skip


def _fit(kind: str, groups: dict, params: dict, X: pd.DataFrame, y: np.ndarray):
    one_class = kind == "classification" and len(pd.unique(y)) < 2
    return build_model(kind, groups, params, one_class).fit(X, y), one_class


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
                 "ndcg_at_k) are > 0; not held iff either upper bound is < 0; else undetermined (null)")  # fmt: skip
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
    bounds = [(difference.get(m) or {}).get(b) for m in RANKING_METRICS for b in ("lo", "hi")]
    if not all(v is not None and np.isfinite(v) for v in bounds):
        return None
    lo_p, hi_p, lo_n, hi_n = bounds
    if lo_p > 0 and lo_n > 0:
        return True
    if hi_p < 0 or hi_n < 0:
        return False
    return None


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


# ---------------------------------------------------------------------------------- training
def _check_labeled(df: pd.DataFrame) -> None:
    need = ["snapshot_id", "task_id", *sorted({t.column for t in TARGETS})]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"labeled snapshots lack column(s) {missing} (phase 4 targets: "
                         f"{[t.name for t in TARGETS]})")  # fmt: skip
    if df["snapshot_id"].duplicated().any():
        raise ValueError(f"duplicate snapshot_id {df.loc[df['snapshot_id'].duplicated(), 'snapshot_id'].iloc[0]!r}")
    for c in ["task_id", *sorted({t.column for t in TARGETS})]:
        if df[c].isna().any():
            raise ValueError(f"column {c!r} has missing values in {int(df[c].isna().sum())} snapshot(s)")
    n_tasks = df["task_id"].nunique()
    if n_tasks < 2:
        raise ValueError(f"task-grouped cross-validation needs at least 2 distinct task_id, got {n_tasks}")


def _feature_config(params: dict, seed: int, one_class: dict[str, bool], n_folds: int) -> dict:
    import sklearn

    reg = f"Ridge(alpha={params['ridge_alpha']})"
    cls = f"LogisticRegression(C={params['logreg_C']}, max_iter={LOGREG_MAX_ITER})"
    return {
        "groups": {g: {"columns": cols, "transform": "HashingVectorizer" if g == "text" else "StandardScaler"}
                   for g, cols in GROUPS.items()},
        "raw_columns": RAW_COLUMNS,
        "text": 'instruction + " \\n " + observation + " \\n " + " \\n ".join(history)',
        "structural": {"n_valid_actions": "len(valid_actions)", "history_len": "len(history)",
                       "obs_lines": "non-empty observation lines", "obs_words": "observation words",
                       "is_experiment_B": "experiment == 'B' as 1/0"},
        "hashing": {"n_features": params["n_features"], "ngram_range": list(NGRAM_RANGE), "alternate_sign": False,
                    "norm": "l2", "lowercase": True, "token_pattern": TOKEN_PATTERN},
        "never_inputs": "every column not in raw_columns: rollout outcomes, teacher outputs, hindsight, targets",
        "targets": {t.name: {"kind": t.kind, "column": t.column, "inputs": t.inputs, "excluded_inputs": t.excluded,
                             "uses_defining_inputs": list(t.uses_defining_inputs),
                             "model": (reg if t.kind == "regression" else
                                       "DummyClassifier(most_frequent): one class in the training data"
                                       if one_class[t.name] else cls),
                             "file": f"{t.name}.joblib"} for t in TARGETS},
        "models": {"regression": reg, "classification": cls,
                   "one_class_training": "DummyClassifier(most_frequent): predicts the only class seen"},
        "baseline": {**BASELINE, "ranking": "rank by U (descending), no fitted model"},
        "crossfit": {"target": CROSSFIT_TARGET, "files": [f"{CROSSFIT_TARGET}_fold{k}.joblib" for k in range(n_folds)],
                     "folds": "folds.json"},
        "phase4": params, "seed": seed, "sklearn_version": sklearn.__version__,
    }  # fmt: skip


def _write_dir(out_dir: Path, files: dict[str, Any]) -> None:
    """Writes ``files`` (name -> JSON-able dict or joblib object) into ``out_dir`` atomically
    (``io.atomic_dir``: an existing predictor directory, or an empty one, is replaced; any other
    existing directory is an error)."""
    import joblib

    from .io import atomic_dir, write_json

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "feature_config.json").exists():
        raise ValueError(f"{out_dir} exists and is not a predictor directory: not replacing it")
    with atomic_dir(out_dir) as tmp:
        for name, obj in files.items():
            if name.endswith(".json"):
                write_json(obj, tmp / name)
            else:
                joblib.dump(obj, tmp / name)


FIT_KEYS = ("n_features", "ridge_alpha", "logreg_C", "n_folds")  # what fitting reads; the rest are metrics


def fit_predictor(labeled_df: pd.DataFrame, cfg: dict, out_dir_predictor, out_oof_parquet) -> pd.DataFrame:
    """Cross-validates every target (GroupKFold by task), fits the final models, writes the
    predictor directory (models, ``folds.json``, ``feature_config.json``, ``crossfit.json`` with
    each target's folds whose training data held one class) and the out-of-fold predictions
    (``snapshot_id, task_id, fold, U``, each target's truth, ``pred_{target}`` and
    ``baseline_{target}``), which it returns. Reads ``FIT_KEYS`` of phase4 and the seed only."""
    from sklearn.model_selection import GroupKFold

    from .io import write_parquet

    params = predictor_params(cfg)
    seed = int(cfg["seed"])
    df = labeled_df.reset_index(drop=True)
    _check_labeled(df)
    cheap_features(df)  # input columns present and NaN-free, before any fitting
    n, tasks = len(df), df["task_id"].astype(str).to_numpy()
    n_folds = min(params["n_folds"], len(set(tasks)))
    splits = list(GroupKFold(n_splits=n_folds).split(df, groups=tasks))
    fold = np.empty(n, dtype=int)
    for k, (_, te) in enumerate(splits):
        fold[te] = k
    log.info("phase 4: %d snapshots, %d tasks, %d task-grouped folds", n, len(set(tasks)), n_folds)

    def crossfit(kind, groups, y, keep=False):
        oof = np.empty(n, dtype=float if kind == "regression" else object)
        models, one_class = [], []
        for k, (tr, te) in enumerate(splits):
            model, single = _fit(kind, groups, params, df.iloc[tr], y[tr])
            oof[te] = model.predict(df.iloc[te])
            one_class += [k] if single else []
            if keep:
                models.append({"target": CROSSFIT_TARGET, "fold": k, "train_tasks": sorted(set(tasks[tr])),
                               "model": model})  # fmt: skip
        return oof, models, one_class

    oof_df = pd.DataFrame({"snapshot_id": df["snapshot_id"], "task_id": tasks, "fold": fold,
                           "U": df["U"].to_numpy(dtype=float)})  # fmt: skip
    files, final_one_class, one_class_folds, baselines = {}, {}, {}, {}
    for t in TARGETS:
        y = df[t.column].to_numpy(dtype=float if t.kind == "regression" else object)
        groups = {g: GROUPS[g] for g in t.inputs}
        oof, fold_models, one_class_folds[t.name] = crossfit(t.kind, groups, y, keep=t.name == CROSSFIT_TARGET)
        final, final_one_class[t.name] = _fit(t.kind, groups, params, df, y)
        files[f"{t.name}.joblib"] = {"target": t.name, "fold": None, "train_tasks": sorted(set(tasks)),
                                     "model": final}  # fmt: skip
        for m in fold_models:
            files[f"{CROSSFIT_TARGET}_fold{m['fold']}.joblib"] = m
        oof_df[t.column] = y
        oof_df[f"pred_{t.name}"] = oof
        if t.baseline_reason is None:
            if t.column not in baselines:  # one baseline per target column (quadrant's twice)
                baselines[t.column] = crossfit(t.kind, {"U": ["U"]}, y)[0]
            oof_df[f"baseline_{t.name}"] = baselines[t.column]
    files["folds.json"] = {
        "cv": "GroupKFold by task_id", "n_folds": n_folds,
        "fold_of_task": {str(tk): int(fold[np.flatnonzero(tasks == tk)[0]]) for tk in sorted(set(tasks))},
        "train_tasks": {str(k): sorted(set(tasks[tr])) for k, (tr, _) in enumerate(splits)},
        "n_test_snapshots": {str(k): len(te) for k, (_, te) in enumerate(splits)},
    }  # fmt: skip
    files["crossfit.json"] = {"folds_with_one_class": one_class_folds, "params": {k: params[k] for k in FIT_KEYS}}
    files["feature_config.json"] = _feature_config(params, seed, final_one_class, n_folds)
    _write_dir(Path(out_dir_predictor), files)
    write_parquet(oof_df, out_oof_parquet)
    return oof_df


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


def train_predictor(labeled_df: pd.DataFrame, cfg: dict, out_dir_predictor, out_result_json,
                    out_oof_parquet) -> dict[str, Any]:  # fmt: skip
    """``fit_predictor`` then ``predictor_metrics`` (the two Phase 4 rules in one call); writes
    and returns the result."""
    from .io import read_json, write_json

    oof = fit_predictor(labeled_df, cfg, out_dir_predictor, out_oof_parquet)
    one_class = read_json(Path(out_dir_predictor) / "crossfit.json")["folds_with_one_class"]
    result = predictor_metrics(oof, one_class, cfg)
    write_json(result, out_result_json)
    return result


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


# ---------------------------------------------------------------------------------- loading
def load_model_file(path) -> dict:
    """One joblib file of the predictor directory: FileNotFoundError if absent, ValueError if it
    cannot be loaded or is not a predictor bundle."""
    import joblib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictor model file {path} does not exist")
    try:
        obj = joblib.load(path)
    except Exception as e:  # any unpickling failure: the file is unusable
        raise ValueError(f"cannot load predictor model file {path}: {type(e).__name__}: {e}") from e
    if not isinstance(obj, dict) or not {"target", "fold", "train_tasks", "model"} <= set(obj):
        raise ValueError(f"predictor model file {path} is not a phase 4 model bundle")
    return obj


class CrossfitPredictor:
    """Scores snapshots by predicted ELP_net, each with the fold model trained without its task."""

    def __init__(self, fold_of_task: dict[str, int], models: dict[int, Any], directory: Path):
        self.fold_of_task = fold_of_task
        self.models = models
        self.directory = directory

    def predict_elp(self, df: pd.DataFrame) -> np.ndarray:
        if "task_id" not in df.columns:
            raise ValueError("snapshots to score lack the task_id column")
        tasks = df["task_id"].astype(str).to_numpy()
        unknown = sorted(set(tasks) - set(self.fold_of_task))
        if unknown:
            raise ValueError(f"task_id(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''} are not in "
                             f"{self.directory / 'folds.json'}: no cross-fitted model excludes them")  # fmt: skip
        fold = np.array([self.fold_of_task[t] for t in tasks], dtype=int)
        out = np.full(len(df), np.nan)
        for k in np.unique(fold):
            rows = np.flatnonzero(fold == k)
            out[rows] = self.models[int(k)].predict(df.iloc[rows])
        return out


def load_crossfit_predictor(predictor_dir) -> CrossfitPredictor:
    """The cross-fitted ELP_net models of a predictor directory (see the module docstring)."""
    from .io import read_json

    d = Path(predictor_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"predictor directory {d} does not exist")
    for name in ("feature_config.json", "folds.json"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"predictor file {d / name} does not exist")
    try:
        folds = read_json(d / "folds.json")
        fold_of_task = {str(t): int(k) for t, k in folds["fold_of_task"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"cannot read the fold assignment in {d / 'folds.json'}: {e}") from e
    models = {}
    for k in sorted(set(fold_of_task.values())):
        path = d / f"{CROSSFIT_TARGET}_fold{k}.joblib"
        bundle = load_model_file(path)
        leaked = sorted({t for t, f in fold_of_task.items() if f == k} & set(map(str, bundle["train_tasks"])))
        if bundle["fold"] != k or bundle["target"] != CROSSFIT_TARGET or leaked:
            raise ValueError(f"{path} does not match folds.json (fold {bundle['fold']} of {bundle['target']}; "
                             f"trained on its own test task(s) {leaked[:5]})")  # fmt: skip
        models[k] = bundle["model"]
    return CrossfitPredictor(fold_of_task, models, d)
