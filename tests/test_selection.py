"""Phase 5 selection: what each method picks, its errors, and the summary's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from teachable.selection import METHODS, budget, candidates, model_id, select, selection_summary
from teachable.stats import paired_cluster_bootstrap_diff

Q = ("Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL", "Q4_lowU_highL")


def _labeled(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "snapshot_id": [f"s{i:03d}" for i in range(n)],
        "task_id": [f"t{i // 2}" for i in range(n)],
        "quadrant": [Q[i % 4] for i in range(n)],
        "U": rng.uniform(0, 1.5, n),
        "ELP_net": rng.uniform(-0.5, 0.5, n),
        "p_policy": rng.choice(np.arange(9) / 8, n),
    })  # fmt: skip


def _heldout(lab: pd.DataFrame) -> dict:
    from teachable.splits import heldout_record, heldout_split

    return heldout_record(heldout_split(lab, 0.25, 0), 0.25, 0)


def _candidates() -> pd.DataFrame:
    lab = _labeled()
    return candidates(lab, _heldout(lab))


def test_candidates_never_include_a_heldout_snapshot_or_task():
    lab = _labeled()
    held = _heldout(lab)
    cands = candidates(lab, held)
    assert set(cands["snapshot_id"]) == set(lab["snapshot_id"]) - set(held["snapshot_ids"])
    assert not set(cands["task_id"]) & set(held["task_ids"])
    assert 0 < len(cands) < len(lab)


def test_oracle_and_entropy_take_the_top_k_of_their_score():
    cands = _candidates()
    k = 5
    oracle = select(cands, "ORACLE", k, 0)
    assert set(oracle["snapshot_id"]) == set(cands.nlargest(k, "ELP_net")["snapshot_id"])
    entropy = select(cands, "ENTROPY", k, 0)
    assert set(entropy["snapshot_id"]) == set(cands.nlargest(k, "U")["snapshot_id"])
    assert list(entropy["selection_score"]) == sorted(entropy["selection_score"], reverse=True)


def test_random_is_deterministic_per_seed_and_differs_across_seeds():
    cands = _candidates()
    a, b = select(cands, "RANDOM", 8, 1), select(cands, "RANDOM", 8, 1)
    c = select(cands, "RANDOM", 8, 2)
    assert list(a["snapshot_id"]) == list(b["snapshot_id"])
    assert set(a["snapshot_id"]) != set(c["snapshot_id"])
    # not a disguised ranking by U or ELP
    assert set(a["snapshot_id"]) != set(select(cands, "ORACLE", 8, 1)["snapshot_id"])


def test_ties_break_by_snapshot_id():
    cands = pd.DataFrame({"snapshot_id": ["b", "a", "c"], "U": [1.0, 1.0, 0.5], "ELP_net": [0.0, 0.0, 0.0]})
    assert list(select(cands, "ENTROPY", 2, 0)["snapshot_id"]) == ["a", "b"]


def test_predictor_without_a_predictor_is_an_error_not_a_fallback(tmp_path):
    cands = _candidates()
    with pytest.raises(ValueError, match="predictor"):
        select(cands, "PREDICTOR", 3, 0, predictor_dir=None)
    with pytest.raises(FileNotFoundError):
        select(cands, "PREDICTOR", 3, 0, predictor_dir=tmp_path / "missing")


def test_budget_over_the_pool_names_the_key_and_unknown_method_raises():
    with pytest.raises(ValueError, match="phase5.budget=50"):
        budget({"budget": 50}, 10)
    with pytest.raises(ValueError, match="unknown selection method"):
        model_id("BEST")


def _rollouts(success_by_model: dict[str, list[bool]]) -> pd.DataFrame:
    rows = []
    for m, succ in success_by_model.items():
        for i, s in enumerate(succ):
            rows.append(dict(model_id=m, suite="overall", env_id="E", seed=i // 2, task_id=f"E/{i // 2}",
                             snapshot_id=None, quadrant=None, rollout_idx=i % 2, success=s, steps=5,
                             actions=["a"], n_invalid=0, repeat_rate=0.0, loop=False, wasted_steps=0.0,
                             invalid_rate=0.0, expert_steps=3.0, rng_seed=i, **{"return": float(s)}))
    return pd.DataFrame(rows)


def test_summary_gain_and_retention_match_hand_computation():
    base = [True, True, True, False, False, False, True, True]  # tasks 0,3 solved (rate >= .5); task 1: 1/2
    ora = [True, True, True, True, True, False, True, False]
    rnd = [False, True, False, False, False, False, True, True]
    df = _rollouts({"base": base, model_id("ORACLE"): ora, model_id("RANDOM"): rnd})
    sel = {m: {"method": m, "k": 2, "format": "demo", "n_candidates": 10, "selected_ids": ["a", "b"],
               "mean_true_elp": 0.1, "oracle_overlap": 1.0 if m == "ORACLE" else 0.5}
           for m in ("ORACLE", "RANDOM")}  # fmt: skip
    out = selection_summary(df, sel, 0.95, n_bootstrap=500, seed=2)
    # per-task successes (2 rollouts each): ORACLE 2, 2, 1, 1; base 2, 1, 0, 2; paired over the 4 tasks
    ref = paired_cluster_bootstrap_diff([2.0, 2, 1, 1], [2.0] * 4, [2.0, 1, 0, 2], [2.0] * 4, 0.95, 500, 2)
    g = out["methods"]["ORACLE"]["reliability_gain"]
    assert (g["delta"], g["lo"], g["hi"]) == pytest.approx((ref["value"], ref["lo"], ref["hi"]))
    assert g["delta"] == pytest.approx((6 - 5) / 8) and g["paired"] and g["n_tasks"] == 4
    # base-solved tasks on rollout 0: tasks 0, 1, 3 (task 2: F); measured on rollout 1: base T, F, T and
    # random T, F, T
    r = out["methods"]["RANDOM"]["retention"]
    assert r["n_base_solved_tasks"] == 3 and r["n"] == 3
    assert r["drop"] == 0
    assert out["base"]["success"]["n"] == 8 and out["k"] == 2
    assert set(out["methods"]) == {"ORACLE", "RANDOM"} and set(METHODS) >= set(out["methods"])


def test_learnability_takes_the_top_k_of_success_variance():
    cands = _candidates()
    k = 6
    chosen = select(cands, "LEARNABILITY", k, 0)
    v = cands["p_policy"] * (1 - cands["p_policy"])
    assert chosen["selection_score"].tolist() == sorted(v.nlargest(k).tolist(), reverse=True)
    assert chosen["selection_score"].to_numpy() == pytest.approx(chosen["p_policy"] * (1 - chosen["p_policy"]))
    # p = 0.5 is the most learnable; 0 and 1 (always fails / always succeeds) the least; ties by id
    toy = pd.DataFrame({"snapshot_id": ["d", "c", "b", "a"], "p_policy": [1.0, 0.25, 0.75, 0.5]})
    assert list(select(toy, "LEARNABILITY", 3, 0)["snapshot_id"]) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="p_policy"):
        select(toy.drop(columns="p_policy"), "LEARNABILITY", 1, 0)
    assert METHODS == ("RANDOM", "ENTROPY", "LEARNABILITY", "PREDICTOR", "ORACLE")


def _five_methods(n_tasks=12) -> tuple[pd.DataFrame, dict]:
    """Per method, the eval tasks it solves (2 rollouts each): PREDICTOR solves the most."""
    solves = {"base": 3, "RANDOM": 4, "ENTROPY": 5, "LEARNABILITY": 6, "PREDICTOR": 11, "ORACLE": 6}
    runs = {}
    for m, k in solves.items():
        succ = [t < k for t in range(n_tasks) for _ in range(2)]
        runs["base" if m == "base" else model_id(m)] = succ
    sel = {m: {"method": m, "k": 3, "format": "demo", "n_candidates": 9, "selected_ids": ["a", "b", "c"],
               "mean_true_elp": 0.1, "oracle_overlap": 0.5} for m in solves if m != "base"}  # fmt: skip
    return _rollouts(runs), sel


def test_summary_compares_predictor_with_each_baseline_under_holm():
    df, sel = _five_methods()
    out = selection_summary(df, sel, 0.95, n_bootstrap=500)
    c = out["comparisons"]
    assert c["best_baseline"] == "LEARNABILITY"  # ties ORACLE's gain but ORACLE is no baseline
    rows = {r["baseline"]: r for r in c["predictor_vs_baselines"]}
    assert list(rows) == ["RANDOM", "ENTROPY", "LEARNABILITY"]
    for b, r in rows.items():
        d = r["difference"]
        gap = out["methods"]["PREDICTOR"]["success"]["p"] - out["methods"][b]["success"]["p"]
        assert d["value"] == pytest.approx(gap) and d["paired"] and d["lo"] <= d["value"] <= d["hi"]
        # tasks where PREDICTOR wins (the others tie): an exact sign-flip test
        n_diff = 11 - {"RANDOM": 4, "ENTROPY": 5, "LEARNABILITY": 6}[b]
        assert r["p_value"] == pytest.approx(2 / 2**n_diff) and r["test"]["exact"]
    ps = [rows[b]["p_value"] for b in ("RANDOM", "ENTROPY", "LEARNABILITY")]
    # Holm step-down: p sorted ascending times 3, 2, 1, kept monotone
    assert [rows[b]["p_holm"] for b in ("RANDOM", "ENTROPY", "LEARNABILITY")] == pytest.approx(
        [3 * ps[0], max(3 * ps[0], 2 * ps[1]), max(3 * ps[0], 2 * ps[1], ps[2])])
    o = c["oracle_vs_learnability"]
    assert (o["model"], o["baseline"]) == ("ORACLE", "LEARNABILITY")
    assert (o["difference"]["value"], o["difference"]["lo"], o["difference"]["hi"]) == (0, 0, 0)
    assert o["p_value"] is None and "zero" in o["test"]["reason"]
    assert list(out["methods"]) == list(METHODS)


def test_summary_takes_any_subset_and_order_of_methods():
    df, sel = _five_methods()
    sub = {m: sel[m] for m in ("ORACLE", "ENTROPY")}
    out = selection_summary(df, sub, 0.95, n_bootstrap=200)
    assert list(out["methods"]) == ["ENTROPY", "ORACLE"]
    c = out["comparisons"]
    assert c["predictor_vs_baselines"] == [] and "PREDICTOR" in c["predictor_reason"]
    assert c["oracle_vs_learnability"] is None and "LEARNABILITY" in c["oracle_reason"]
    assert c["best_baseline"] == "ENTROPY"
