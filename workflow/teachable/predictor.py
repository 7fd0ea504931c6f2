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
  targets. Every metric is computed on the out-of-fold predictions, by
  ``teachable.predictor_metrics``.

Config (``cfg["phase4"]``, defaults and ranges from the config schema; ``cfg["seed"]`` is required):
``n_features`` (hashing size), ``ridge_alpha``, ``logreg_C``, ``n_folds``, ``top_k`` (K),
``n_bootstrap`` (resamples), ``confidence`` (level of every interval).

Outputs of ``train_predictor``:
- the predictor directory: ``feature_config.json``; ``{target}.joblib`` per target, fitted on all
  rows; the cross-fitted ``ELP_net_fold{k}.joblib`` (the fold models that made the out-of-fold
  ELP_net predictions) and ``folds.json`` (``fold_of_task``: the fold in which a task was test
  data, ``train_tasks`` per fold). Each joblib file holds a dict {"target", "fold",
  "train_tasks", "model"}. The directory is built under a temp name and renamed into place.
- ``training_result.json`` (metrics, layout in ``predictor_metrics.predictor_metrics``) and
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


def train_predictor(labeled_df: pd.DataFrame, cfg: dict, out_dir_predictor, out_result_json,
                    out_oof_parquet) -> dict[str, Any]:  # fmt: skip
    """``fit_predictor`` then ``predictor_metrics`` (the two Phase 4 rules in one call); writes
    and returns the result."""
    from .io import read_json, write_json

    from .predictor_metrics import predictor_metrics

    oof = fit_predictor(labeled_df, cfg, out_dir_predictor, out_oof_parquet)
    one_class = read_json(Path(out_dir_predictor) / "crossfit.json")["folds_with_one_class"]
    result = predictor_metrics(oof, one_class, cfg)
    write_json(result, out_result_json)
    return result


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
