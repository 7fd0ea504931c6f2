"""Hint audit: does the teacher's diagnosis (the hint patch) give its action away beyond the state?

Input: labeled snapshots with at least ``snapshot_id, task_id, env_id, instruction, observation,
history, valid_actions, suggested_action, diagnosis``. Output (``hint_audit``), all computed from
the rows:
- ``diagnoses_naming_action``: how many diagnoses name or paraphrase one of their row's candidate
  actions, by the env family's action vocabulary (``teachers.base.named_actions`` with
  ``ActionSpace.mentions``, the check every teacher passes), and up to five examples.
- five cross-validated accuracies of predicting ``suggested_action`` (its family's
  ``ActionSpace.audit_label``: a finite family's action itself), out of fold, over sklearn's
  ``GroupKFold`` by ``task_id`` (a task's snapshots never sit on both sides), with
  ``n_splits = min(n_folds, number of tasks)``, shuffled by ``seed``, each from a bag of words
  (``CountVectorizer`` unigrams + bigrams and ``LogisticRegression``):
  ``state_action_accuracy`` on the state text the student reads (its unpatched user message,
  ``policies.prompt.user_message`` of ``labeling.snapshot_context``: mission, observation, recent
  actions, valid actions), ``state_hint_action_accuracy`` on the state
  and the diagnosis (one vocabulary each), ``hint_action_accuracy`` on the diagnosis alone,
  ``demo_action_accuracy`` on the demo patch ``patches.demo_patch(suggested_action)``, which states
  the action (the ceiling), and ``majority_accuracy`` (``DummyClassifier(most_frequent)`` in the
  same folds: the floor). Each is ``{"p", "n", "lo", "hi"}`` with a Wilson interval
  (``stats.proportion``).
- ``leakage_index``: lambda = (acc(state+diag) - acc(state)) / (acc(demo) - acc(state)), the share of
  the demo's advantage over the state that the diagnosis gives, with a percentile interval from a
  bootstrap over tasks (``stats.cluster_bootstrap_statistic``) of the three models' paired
  out-of-fold hits (the models are not refitted: the interval is over snapshots, not over fits).
  The bands are fixed in advance (``BANDS``): lambda < 0.25 "hint", 0.25-0.75 "informative hint",
  >= 0.75 "demo-like". ``band`` is decided when the interval lies wholly inside one band, else
  None (undetermined) with ``bands_spanned`` the bands the interval reaches; ``band_point`` is the
  point estimate's band. Lambda is undefined (None, with a ``reason``) when acc(demo) - acc(state)
  <= 0: the demo carries nothing beyond the state to leak. A resample where that difference is
  <= 0 is undefined too and left out of the interval (``n_defined``); when more than
  1 - confidence of the resamples are undefined the interval is not placed (None, every band
  spanned, with the reason).
- A training fold whose snapshots all share one action cannot fit a classifier; that fold
  predicts its one action and is counted in ``folds_with_one_action``.
- No rows, fewer than two tasks or a single action give ``None`` accuracies and a ``reason``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline

from .envs import registry
from .patches import demo_patch
from .labeling import snapshot_context
from .policies.prompt import user_message
from .stats import DEFAULT_N_BOOTSTRAP, cluster_bootstrap_statistic, proportion
from .teachers.base import named_actions

REQUIRED_COLUMNS = ("snapshot_id", "task_id", "env_id", "instruction", "observation", "history", "valid_actions",
                    "suggested_action", "diagnosis")  # fmt: skip
ACCURACIES = ("state_action_accuracy", "state_hint_action_accuracy", "hint_action_accuracy", "demo_action_accuracy",
              "majority_accuracy")  # fmt: skip
# the leakage index's bands, fixed in advance: (name, lower bound inclusive), ascending
BANDS = (("hint", -math.inf), ("informative hint", 0.25), ("demo-like", 0.75))
MAX_EXAMPLES = 5


def _check_input(labeled: pd.DataFrame, n_folds: int) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in labeled.columns]
    if missing:
        raise ValueError(f"hint_audit: missing column(s) {missing}; needs {list(REQUIRED_COLUMNS)}")
    if int(n_folds) < 2:
        raise ValueError(f"hint_audit: n_folds must be at least 2, got {n_folds}")
    for col in ("suggested_action", "diagnosis"):
        bad = [
            s
            for s, v in zip(labeled["snapshot_id"], labeled[col], strict=True)
            if not isinstance(v, str) or not v.strip()
        ]
        if bad:
            raise ValueError(f"hint_audit: {col} is missing or empty for snapshot(s) {bad[:5]}")


def naming_examples(labeled: pd.DataFrame, spaces: registry.StateSpaces | None = None) -> list[dict[str, str]]:
    """One entry per diagnosis that names or paraphrases one of its row's candidate actions:
    ``{"snapshot_id", "action", "phrase"}`` (the first action found), by the action space at the
    row's state (``spaces``: the run's ``registry.StateSpaces``; a free-form family's candidates
    and vocabulary are its state's: rows with ``seed`` and ``actions``)."""
    spaces = spaces or registry.StateSpaces()
    found = []
    for row in labeled.itertuples(index=False):
        space = spaces.of_row(row)
        named = named_actions(row.diagnosis, space.candidate_actions(row.valid_actions), space.mentions)
        if named:
            action, phrase = next(iter(named.items()))
            found.append({"snapshot_id": row.snapshot_id, "action": action, "phrase": phrase})
    return found


def audit_labels(labeled: pd.DataFrame) -> np.ndarray:
    """What the audit predicts per row: the suggested action's ``ActionSpace.audit_label`` (a
    finite family: the action; a free-form family: its kind, where every suggested line differs)."""
    spaces = {e: registry.action_space(e) for e in labeled["env_id"].unique()}
    return np.array([spaces[e].audit_label(a) for e, a in zip(labeled["env_id"], labeled["suggested_action"])],
                    dtype=object)  # fmt: skip


def _degenerate(labeled: pd.DataFrame) -> str | None:
    if labeled.empty:
        return "no rows"
    n_tasks = labeled["task_id"].nunique()
    if n_tasks < 2:
        return f"{n_tasks} task(s): grouped cross-validation needs at least 2"
    actions = pd.unique(audit_labels(labeled))
    if len(actions) < 2:
        return f"suggested_action has one value only ({actions[0]!r}): nothing to predict"
    return None


def state_texts(labeled: pd.DataFrame) -> np.ndarray:
    """The state as the student reads it at each row, without a patch (the user message of
    ``labeling.snapshot_context``), one string per row."""
    return np.array([user_message(snapshot_context(r)) for _, r in labeled.iterrows()], dtype=object)


def _bag_of_words(seed: int) -> Any:
    return make_pipeline(
        CountVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000, random_state=seed)
    )


def _two_bags_of_words(seed: int) -> Any:
    """Columns 0 (state) and 1 (diagnosis) of a 2-column text array, each with its own vocabulary."""
    bags = ColumnTransformer([(name, CountVectorizer(ngram_range=(1, 2)), i) for i, name in enumerate(("state", "diag"))])
    return make_pipeline(bags, LogisticRegression(max_iter=1000, random_state=seed))


def _majority(seed: int) -> Any:
    return DummyClassifier(strategy="most_frequent")


def out_of_fold(
    make_model: Callable[[int], Any], texts: np.ndarray, y: np.ndarray, folds: list, seed: int
) -> np.ndarray:
    """Out-of-fold predictions of ``y`` from ``texts`` (one text, or one row of texts, per
    label); a fold whose training part holds one action only predicts that action."""
    pred = np.empty(len(y), dtype=object)
    for train, test in folds:
        model = make_model(seed) if len(np.unique(y[train])) > 1 else _majority(seed)
        pred[test] = model.fit(texts[train], y[train]).predict(texts[test])
    return pred


# ------------------------------------------------------------------------------------ the leakage index
BAND_NAMES = tuple(name for name, _ in BANDS)
BAND_RULES = {name: " and ".join(f"lambda {op} {b}" for op, b in ((">=", lo), ("<", hi)) if math.isfinite(b))
              for (name, lo), hi in zip(BANDS, [*(lo for _, lo in BANDS[1:]), math.inf])}  # fmt: skip


def band_of(value: float) -> str:
    """The band (``BANDS``) that holds ``value``."""
    return next(name for name, lower in reversed(BANDS) if value >= lower)


def _leakage(state_hint: float, state: float, demo: float) -> float:
    """lambda from three hit rates; NaN where acc(demo) - acc(state) <= 0."""
    den = demo - state
    return (state_hint - state) / den if den > 0 else math.nan


def leakage_index(hits: dict[str, np.ndarray], tasks, *, confidence: float, n_bootstrap: int, seed: int) -> dict:
    """lambda with its task-bootstrap interval and band from the per-row out-of-fold hits (0/1) of
    the ``"state_hint"``, ``"state"`` and ``"demo"`` models (see the module docstring)."""
    h = [np.asarray(hits[k], dtype=float) for k in ("state_hint", "state", "demo")]
    den = float(h[2].mean() - h[1].mean())
    out: dict[str, Any] = {"lambda": None, "lo": None, "hi": None, "denominator": den, "n_defined": None,
                           "n_resamples": int(n_bootstrap), "band": None, "band_point": None,
                           "bands_spanned": list(BAND_NAMES), "bands": BAND_RULES, "reason": None}  # fmt: skip
    if den <= 0:
        return out | {"reason": f"acc(demo) - acc(state) = {den:.3f} <= 0: the demo predicts the action no better "
                                "than the state alone, so there is nothing for the diagnosis to leak"}  # fmt: skip
    out["lambda"] = _leakage(*(float(v.mean()) for v in h))
    out["band_point"] = band_of(out["lambda"])
    [(lo, hi, n_defined)] = cluster_bootstrap_statistic(
        lambda rows: _leakage(*(float(v[rows].mean()) for v in h)), tasks, confidence, n_bootstrap, seed
    )
    out["n_defined"] = n_defined
    if n_defined < confidence * n_bootstrap:
        return out | {"reason": f"acc(demo) - acc(state) <= 0 in {n_bootstrap - n_defined} of {n_bootstrap} "
                                f"resamples (more than {1 - confidence:.0%}): the interval is not placed"}  # fmt: skip
    spanned = list(BAND_NAMES[BAND_NAMES.index(band_of(lo)) : BAND_NAMES.index(band_of(hi)) + 1])
    return out | {"lo": lo, "hi": hi, "bands_spanned": spanned, "band": spanned[0] if len(spanned) == 1 else None}


# ------------------------------------------------------------------------------------ the audit
def hint_audit(labeled: pd.DataFrame, *, seed: int, n_folds: int = 5, confidence: float = 0.95,
               n_bootstrap: int = DEFAULT_N_BOOTSTRAP, spaces: registry.StateSpaces | None = None) -> dict:  # fmt: skip
    """The hint audit of ``labeled`` (see the module docstring for every key; ``spaces``:
    ``naming_examples``')."""
    _check_input(labeled, n_folds)
    naming = naming_examples(labeled, spaces)
    n_tasks = int(labeled["task_id"].nunique())
    k = min(int(n_folds), n_tasks)
    out: dict[str, Any] = {
        "n": int(len(labeled)),
        "n_tasks": n_tasks,
        "diagnoses_naming_action": len(naming),
        "examples_naming_action": naming[:MAX_EXAMPLES],
        "n_folds": k,
        "method": (
            f"out-of-fold predictions of suggested_action over sklearn GroupKFold by task_id "
            f"(n_splits = min(n_folds={n_folds}, n_tasks={n_tasks}) = {k}, shuffle=True, "
            f"random_state={seed}); state, state + hint, hint and demo: CountVectorizer(ngram_range=(1, 2)) + "
            f"LogisticRegression(max_iter=1000) on the student's state text (policies.prompt.user_message of labeling.snapshot_context), "
            f"on the state and the diagnosis (one vocabulary each), on the diagnosis and on "
            f"patches.demo_patch(suggested_action); majority: DummyClassifier(strategy="
            f"'most_frequent') in the same folds; Wilson intervals at confidence {confidence}; leakage index "
            f"lambda = (acc(state+hint) - acc(state)) / (acc(demo) - acc(state)) with a percentile interval "
            f"over {n_bootstrap} resamples of tasks (paired out-of-fold hits), bands {BAND_RULES}"
        ),
        "reason": _degenerate(labeled),
        "folds_with_one_action": None,
        "leakage_index": None,
    }
    if out["reason"] is not None:
        return out | {name: None for name in ACCURACIES}
    y = audit_labels(labeled)
    folds = list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y, labeled["task_id"]))
    state, diagnosis = state_texts(labeled), labeled["diagnosis"].to_numpy(dtype=object)
    inputs = {
        "state_action_accuracy": (_bag_of_words, state),
        "state_hint_action_accuracy": (_two_bags_of_words, np.stack([state, diagnosis], axis=1)),
        "hint_action_accuracy": (_bag_of_words, diagnosis),
        "demo_action_accuracy": (_bag_of_words, np.array([demo_patch(a) for a in y], dtype=object)),
        "majority_accuracy": (_majority, diagnosis),
    }
    hits = {}
    for name, (make_model, texts) in inputs.items():
        hits[name] = out_of_fold(make_model, texts, y, folds, seed) == y
        out[name] = proportion(int(hits[name].sum()), len(y), confidence)
    out["folds_with_one_action"] = sum(len(np.unique(y[train])) < 2 for train, _ in folds)
    out["leakage_index"] = leakage_index(
        {"state_hint": hits["state_hint_action_accuracy"], "state": hits["state_action_accuracy"],
         "demo": hits["demo_action_accuracy"]},
        labeled["task_id"].to_numpy(), confidence=confidence, n_bootstrap=n_bootstrap, seed=seed,
    )  # fmt: skip
    return out
