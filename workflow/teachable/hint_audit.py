"""Hint audit: does the wording of the teacher's diagnosis (the hint patch) give its action away?

Input: labeled snapshots with at least ``snapshot_id, task_id, env_id, valid_actions,
suggested_action, diagnosis``. Output (``hint_audit``), all computed from the rows:
- ``diagnoses_naming_action``: how many diagnoses name or paraphrase one of their row's candidate
  actions, by the env family's action vocabulary (``teachers.base.named_actions`` with
  ``ActionSpace.mentions``, the check every teacher passes), and up to five examples.
- three cross-validated accuracies of predicting ``suggested_action``, out of fold, over
  sklearn's ``GroupKFold`` by ``task_id`` (a task's snapshots never sit on both sides), with
  ``n_splits = min(n_folds, number of tasks)``, shuffled by ``seed``:
  ``hint_action_accuracy`` (bag of words: ``CountVectorizer`` unigrams + bigrams and
  ``LogisticRegression``, on the diagnosis), ``demo_action_accuracy`` (the same on the demo patch
  ``patches.demo_patch(suggested_action)``, which states the action: the ceiling) and
  ``majority_accuracy`` (``DummyClassifier(most_frequent)`` in the same folds: the floor). Each is
  ``{"p", "n", "lo", "hi"}`` with a Wilson interval (``stats.proportion``). A hint accuracy near
  the majority's says the wording alone does not carry the action; near the demo's, the hint is
  a demo in disguise. State information can legitimately predict the action above the floor.
- A training fold whose snapshots all share one action cannot fit a classifier; that fold
  predicts its one action and is counted in ``folds_with_one_action``.
- No rows, fewer than two tasks or a single action give ``None`` accuracies and a ``reason``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline

from .envs import registry
from .patches import demo_patch
from .stats import proportion
from .teachers.base import named_actions

REQUIRED_COLUMNS = ("snapshot_id", "task_id", "env_id", "valid_actions", "suggested_action", "diagnosis")
ACCURACIES = ("hint_action_accuracy", "demo_action_accuracy", "majority_accuracy")
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


def naming_examples(labeled: pd.DataFrame) -> list[dict[str, str]]:
    """One entry per diagnosis that names or paraphrases one of its row's valid actions:
    ``{"snapshot_id", "action", "phrase"}`` (the first action found)."""
    spaces = {e: registry.action_space(e) for e in labeled["env_id"].unique()}
    found = []
    for row in labeled.itertuples(index=False):
        space = spaces[row.env_id]
        named = named_actions(row.diagnosis, space.candidate_actions(row.valid_actions), space.mentions)
        if named:
            action, phrase = next(iter(named.items()))
            found.append({"snapshot_id": row.snapshot_id, "action": action, "phrase": phrase})
    return found


def _degenerate(labeled: pd.DataFrame) -> str | None:
    if labeled.empty:
        return "no rows"
    n_tasks = labeled["task_id"].nunique()
    if n_tasks < 2:
        return f"{n_tasks} task(s): grouped cross-validation needs at least 2"
    actions = labeled["suggested_action"].unique()
    if len(actions) < 2:
        return f"suggested_action has one value only ({actions[0]!r}): nothing to predict"
    return None


def _bag_of_words(seed: int) -> Any:
    return make_pipeline(
        CountVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000, random_state=seed)
    )


def _majority(seed: int) -> Any:
    return DummyClassifier(strategy="most_frequent")


def out_of_fold(
    make_model: Callable[[int], Any], texts: np.ndarray, y: np.ndarray, folds: list, seed: int
) -> np.ndarray:
    """Out-of-fold predictions of ``y`` from ``texts``; a fold whose training part holds one
    action only predicts that action."""
    pred = np.empty(len(y), dtype=object)
    for train, test in folds:
        model = make_model(seed) if len(np.unique(y[train])) > 1 else _majority(seed)
        pred[test] = model.fit(texts[train], y[train]).predict(texts[test])
    return pred


def hint_audit(labeled: pd.DataFrame, *, seed: int, n_folds: int = 5, confidence: float = 0.95) -> dict:
    """The hint audit of ``labeled`` (see the module docstring for every key)."""
    _check_input(labeled, n_folds)
    naming = naming_examples(labeled)
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
            f"random_state={seed}); hint and demo: CountVectorizer(ngram_range=(1, 2)) + "
            f"LogisticRegression(max_iter=1000) on the diagnosis and on "
            f"patches.demo_patch(suggested_action); majority: DummyClassifier(strategy="
            f"'most_frequent') in the same folds; Wilson intervals at confidence {confidence}"
        ),
        "reason": _degenerate(labeled),
        "folds_with_one_action": None,
    }
    if out["reason"] is not None:
        return out | {name: None for name in ACCURACIES}
    y = labeled["suggested_action"].to_numpy(dtype=object)
    folds = list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y, labeled["task_id"]))
    inputs = {
        "hint_action_accuracy": (_bag_of_words, labeled["diagnosis"].to_numpy(dtype=object)),
        "demo_action_accuracy": (_bag_of_words, np.array([demo_patch(a) for a in y], dtype=object)),
        "majority_accuracy": (_majority, labeled["diagnosis"].to_numpy(dtype=object)),
    }
    for name, (make_model, texts) in inputs.items():
        pred = out_of_fold(make_model, texts, y, folds, seed)
        out[name] = proportion(int((pred == y).sum()), len(y), confidence)
    out["folds_with_one_action"] = sum(len(np.unique(y[train])) < 2 for train, _ in folds)
    return out
