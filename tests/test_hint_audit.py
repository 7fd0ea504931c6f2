"""The hint audit: naming counted from the text, grouped cross-validated action accuracies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from teachable.envs.babyai import ACTIONS
from teachable.hint_audit import ACCURACIES, hint_audit

ENV_ID = "BabyAI-GoToLocal-v0"
NEUTRAL_WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()


def labeled(diagnoses, actions, tasks) -> pd.DataFrame:
    return pd.DataFrame({
        "snapshot_id": [f"s{i}" for i in range(len(actions))],
        "task_id": tasks,
        "env_id": ENV_ID,
        "valid_actions": [list(ACTIONS)] * len(actions),
        "suggested_action": actions,
        "diagnosis": diagnoses,
    })


def random_rows(n_tasks: int = 60, per_task: int = 4, seed: int = 0):
    """Actions drawn 60 / 25 / 15 from three actions; tasks of ``per_task`` snapshots."""
    rng = np.random.default_rng(seed)
    n = n_tasks * per_task
    actions = list(rng.choice(["go forward", "turn left", "pick up"], size=n, p=[0.6, 0.25, 0.15]))
    tasks = [f"t{i // per_task}" for i in range(n)]
    return actions, tasks, rng


def test_a_diagnosis_that_is_the_action_text_is_predicted_and_counted():
    actions, tasks, _ = random_rows()
    out = hint_audit(labeled(actions, actions, tasks), seed=0)
    assert out["n"] == 240 and out["n_tasks"] == 60 and out["n_folds"] == 5 and out["reason"] is None
    assert out["hint_action_accuracy"]["p"] > 0.97 and out["demo_action_accuracy"]["p"] > 0.97
    assert 0.5 < out["majority_accuracy"]["p"] < 0.7
    for name in ACCURACIES:
        acc = out[name]
        assert acc["n"] == 240 and acc["lo"] <= acc["p"] <= acc["hi"]
    assert out["diagnoses_naming_action"] == 240  # every diagnosis names its action
    assert len(out["examples_naming_action"]) == 5
    first = out["examples_naming_action"][0]
    assert first == {"snapshot_id": "s0", "action": actions[0], "phrase": actions[0]}
    assert "GroupKFold by task_id" in out["method"] and "LogisticRegression" in out["method"]


def test_unrelated_random_text_predicts_no_better_than_the_majority():
    actions, tasks, rng = random_rows(seed=1)
    texts = [" ".join(rng.choice(NEUTRAL_WORDS, size=8)) for _ in actions]
    out = hint_audit(labeled(texts, actions, tasks), seed=0)
    hint, majority = out["hint_action_accuracy"], out["majority_accuracy"]
    assert hint["p"] <= majority["p"] + 0.03 and hint["lo"] <= majority["p"]  # not above the floor
    assert out["demo_action_accuracy"]["p"] > 0.97
    assert out["diagnoses_naming_action"] == 0 and out["examples_naming_action"] == []


def test_diagnoses_paraphrasing_a_valid_action_are_counted_with_the_phrase():
    actions, tasks, _ = random_rows(n_tasks=10)
    texts = ["The red key is at your 2 o'clock, 3 cells away."] * len(actions)
    texts[3] = "Grab the key at your 12 o'clock."
    texts[7] = "The door has to be opened."
    out = hint_audit(labeled(texts, actions, tasks), seed=0)
    assert out["diagnoses_naming_action"] == 2
    assert out["examples_naming_action"] == [
        {"snapshot_id": "s3", "action": "pick up", "phrase": "grab"},
        {"snapshot_id": "s7", "action": "toggle", "phrase": "opened"},
    ]


def test_an_action_outside_the_rows_valid_actions_is_not_counted():
    actions, tasks, _ = random_rows(n_tasks=4)
    df = labeled(["Grab the key."] * len(actions), actions, tasks)
    df["valid_actions"] = [["go forward", "turn left", "turn right"]] * len(df)
    assert hint_audit(df, seed=0)["diagnoses_naming_action"] == 0


def test_the_audit_is_deterministic_given_the_seed():
    actions, tasks, rng = random_rows(seed=2)
    texts = [" ".join(rng.choice(NEUTRAL_WORDS, size=6)) for _ in actions]
    df = labeled(texts, actions, tasks)
    assert hint_audit(df, seed=5) == hint_audit(df, seed=5)


def test_fewer_tasks_than_folds_uses_one_fold_per_task():
    actions, tasks, _ = random_rows(n_tasks=3, per_task=10)
    out = hint_audit(labeled(actions, actions, tasks), seed=0, n_folds=5)
    assert out["n_folds"] == 3 and out["hint_action_accuracy"]["n"] == 30


@pytest.mark.parametrize(
    "rows, reason",
    [
        (0, "no rows"),
        (1, "1 task(s)"),
        (2, "one value only ('go forward')"),
    ],
)
def test_degenerate_inputs_give_null_accuracies_with_a_reason(rows, reason):
    if rows == 0:
        df = labeled([], [], [])
    elif rows == 1:
        df = labeled(["a b", "c d"], ["go forward", "turn left"], ["t0", "t0"])
    else:
        df = labeled(["a b", "c d"], ["go forward", "go forward"], ["t0", "t1"])
    out = hint_audit(df, seed=0)
    assert reason in out["reason"]
    assert all(out[name] is None for name in ACCURACIES)


def test_bad_input_errors_name_the_problem():
    df = labeled(["x y"], ["go forward"], ["t0"])
    with pytest.raises(ValueError, match="task_id"):
        hint_audit(df.drop(columns="task_id"), seed=0)
    df.loc[0, "diagnosis"] = "  "
    with pytest.raises(ValueError, match=r"diagnosis.*'s0'"):
        hint_audit(df, seed=0)
    with pytest.raises(ValueError, match="n_folds"):
        hint_audit(labeled(["x y"], ["go forward"], ["t0"]), seed=0, n_folds=1)
