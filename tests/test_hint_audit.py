"""The hint audit: naming counted from the text, grouped cross-validated action accuracies, the
leakage index and its band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from teachable.envs.babyai import ACTIONS
from teachable.hint_audit import ACCURACIES, BAND_NAMES, band_of, hint_audit, leakage_index

ENV_ID = "BabyAI-GoToLocal-v0"
NEUTRAL_WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()


def labeled(diagnoses, actions, tasks, observations=None) -> pd.DataFrame:
    """Rows of one mission; the observation is ``observations`` (default: one text for all)."""
    n = len(actions)
    return pd.DataFrame({
        "snapshot_id": [f"s{i}" for i in range(n)],
        "task_id": tasks,
        "env_id": ENV_ID,
        "instruction": "go to the red ball",
        "observation": list(observations) if observations is not None else ["a wall 3 steps forward"] * n,
        "history": [[]] * n,
        "valid_actions": [list(ACTIONS)] * n,
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


# ------------------------------------------------------------------------------------ the leakage index
CUES = {"go forward": "clear lane", "turn left": "port side", "pick up": "low shelf"}


def cued_observations(actions, rng, informative: float = 0.8) -> list[str]:
    """An observation whose cue matches the action with probability ``informative``, else a
    random cue: the state alone predicts the action above the majority but not perfectly."""
    cues = list(CUES.values())
    return [f"a red ball {CUES[a] if rng.random() < informative else rng.choice(cues)}" for a in actions]


def test_a_diagnosis_that_copies_the_action_is_demo_like():
    actions, tasks, _ = random_rows()
    leak = hint_audit(labeled(actions, actions, tasks), seed=0)["leakage_index"]
    assert leak["lambda"] > 0.9 and leak["lo"] >= 0.75 and leak["reason"] is None
    assert leak["band"] == leak["band_point"] == "demo-like" and leak["bands_spanned"] == ["demo-like"]
    assert leak["n_defined"] == leak["n_resamples"] == 2000


def test_a_diagnosis_independent_of_the_action_is_a_hint():
    actions, tasks, rng = random_rows(seed=3)
    observations = cued_observations(actions, rng)
    colors = ["red", "green", "blue", "purple", "yellow", "grey"]
    texts = [f"The {rng.choice(colors)} box is {rng.integers(1, 6)} cells away." for _ in actions]
    out = hint_audit(labeled(texts, actions, tasks, observations), seed=0)
    state, majority = out["state_action_accuracy"], out["majority_accuracy"]
    assert state["lo"] > majority["p"]  # the state carries the action ...
    leak = out["leakage_index"]
    assert abs(leak["lambda"]) < 0.15 and leak["hi"] < 0.25  # ... and the diagnosis adds none of it
    assert leak["band"] == leak["band_point"] == "hint"


def test_a_diagnosis_restating_the_state_predicts_the_action_yet_is_a_hint():
    actions, tasks, rng = random_rows(seed=4)
    observations = cued_observations(actions, rng)
    out = hint_audit(labeled([f"Look: {o}." for o in observations], actions, tasks, observations), seed=0)
    assert out["hint_action_accuracy"]["lo"] > out["majority_accuracy"]["p"]  # the hint alone predicts ...
    assert out["leakage_index"]["band"] == "hint"  # ... what the state already shows


def test_a_state_that_gives_the_action_away_leaves_lambda_undefined():
    actions, tasks, rng = random_rows(seed=5)
    out = hint_audit(labeled(actions, actions, tasks, [f"the answer is {a}" for a in actions]), seed=0)
    leak = out["leakage_index"]
    assert out["state_action_accuracy"]["p"] == out["demo_action_accuracy"]["p"] == 1.0
    assert leak["lambda"] is None and leak["band"] is None and leak["band_point"] is None
    assert leak["bands_spanned"] == list(BAND_NAMES) and "no better than the state" in leak["reason"]


def test_bands_are_fixed_half_open_intervals():
    assert [band_of(v) for v in (-0.3, 0.0, 0.2499, 0.25, 0.5, 0.7499, 0.75, 1.4)] == [
        "hint", "hint", "hint", "informative hint", "informative hint", "informative hint", "demo-like",
        "demo-like"]  # fmt: skip


def _hits(share_state_hint: float, n_tasks: int = 40, per_task: int = 5, seed: int = 0):
    """State hits 0, demo hits 1: lambda is the state + hint hit rate."""
    rng = np.random.default_rng(seed)
    n = n_tasks * per_task
    tasks = np.repeat(np.arange(n_tasks), per_task)
    return {"state_hint": rng.random(n) < share_state_hint, "state": np.zeros(n), "demo": np.ones(n)}, tasks


def test_the_band_is_decided_only_when_the_interval_lies_inside_it():
    hits, tasks = _hits(0.5)
    leak = leakage_index(hits, tasks, confidence=0.95, n_bootstrap=500, seed=0)
    assert leak["lambda"] == pytest.approx(hits["state_hint"].mean())
    assert 0.25 < leak["lo"] < leak["lambda"] < leak["hi"] < 0.75 and leak["band"] == "informative hint"
    hits, tasks = _hits(0.25, seed=1)
    leak = leakage_index(hits, tasks, confidence=0.95, n_bootstrap=500, seed=0)
    assert leak["lo"] < 0.25 < leak["hi"] < 0.75
    assert leak["band"] is None and leak["bands_spanned"] == ["hint", "informative hint"]
    assert leak["band_point"] == band_of(leak["lambda"])


def test_an_interval_with_too_many_undefined_resamples_is_not_placed():
    hits, tasks = _hits(0.5, n_tasks=10)
    hits["demo"] = np.zeros_like(hits["demo"])
    hits["demo"][tasks == 0] = 1  # the demo beats the state on one task of ten only
    leak = leakage_index(hits, tasks, confidence=0.95, n_bootstrap=500, seed=0)
    assert leak["lambda"] is not None and leak["n_defined"] < 0.95 * 500
    assert leak["lo"] is None and leak["band"] is None and leak["bands_spanned"] == list(BAND_NAMES)
    assert "resamples" in leak["reason"]


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
    assert all(out[name] is None for name in ACCURACIES) and out["leakage_index"] is None


def test_bad_input_errors_name_the_problem():
    df = labeled(["x y"], ["go forward"], ["t0"])
    with pytest.raises(ValueError, match="task_id"):
        hint_audit(df.drop(columns="task_id"), seed=0)
    df.loc[0, "diagnosis"] = "  "
    with pytest.raises(ValueError, match=r"diagnosis.*'s0'"):
        hint_audit(df, seed=0)
    with pytest.raises(ValueError, match="n_folds"):
        hint_audit(labeled(["x y"], ["go forward"], ["t0"]), seed=0, n_folds=1)
