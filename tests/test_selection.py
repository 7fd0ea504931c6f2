"""Phase 5 selection: what each method picks, its errors, its fresh value, its counted cost, and
the summary's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from teachable.schemas import STUDENT_CONDITIONS
from teachable.selection import (
    EQ_SCOPE,
    METHODS,
    VALUE_SCOPE,
    budget,
    candidates,
    eq_specs,
    model_id,
    oracle_gains,
    select,
    selection_summary,
    set_value,
    value_rollouts,
    value_specs,
)
from teachable.selection_costs import oracle_rollouts, signal_cost, u_passes
from teachable.seeding import rollout_key
from teachable.stats import ClusterBootstrap, paired_cluster_bootstrap_diff

Q = ("Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL", "Q4_lowU_highL")
N_ROLLOUTS = 6


def _labeled(n: int = 40) -> pd.DataFrame:
    """Labeled snapshots of the direct estimator: N_ROLLOUTS 0/1 outcomes per student condition
    (``y_<condition>``), 3 expert rollouts, and the advice columns."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "snapshot_id": [f"s{i:03d}" for i in range(n)],
        "task_id": [f"t{i // 2}" for i in range(n)],
        "quadrant": [Q[i % 4] for i in range(n)],
        "U": rng.uniform(0, 1.5, n),
        "ELP_net": rng.uniform(-0.5, 0.5, n),
        "p_policy": rng.choice(np.arange(9) / 8, n),
        "student_action": ["turn left"] * n,
        "contrast_action": ["turn left" if i % 3 else "turn right" for i in range(n)],
        "y_expert": [[1.0, 1.0, 0.0]] * n,
    })  # fmt: skip
    for c in STUDENT_CONDITIONS:
        df[f"y_{c}"] = list(rng.integers(0, 2, (n, N_ROLLOUTS)).astype(float))
    return df


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


def _half_gain(df: pd.DataFrame, fmt: str, start: int) -> np.ndarray:
    """gain_net of ``fmt`` on the rollout indices start, start + 2, ... of direct rows, by hand."""
    return np.array([np.mean(r[f"y_{fmt}"][start::2]) - np.mean(r[f"y_placebo_{fmt}"][start::2])
                     for _, r in df.iterrows()])  # fmt: skip


def test_oracle_ranks_by_the_even_half_gain_of_the_trained_format_and_reports_the_odd_half():
    cands = _candidates()
    k = 5
    for fmt in ("demo", "hint"):
        oracle = select(cands, "ORACLE", k, 0, fmt=fmt)
        even, odd = _half_gain(cands, fmt, 0), _half_gain(cands, fmt, 1)
        top = cands.assign(g=even, sid=cands["snapshot_id"]).sort_values(["g", "sid"], ascending=[False, True])
        assert list(oracle["snapshot_id"]) == list(top["snapshot_id"][:k])  # ties by snapshot_id
        assert oracle["selection_score"].to_numpy() == pytest.approx(top["g"][:k].to_numpy())
        assert oracle["oof_gain"].to_numpy() == pytest.approx(odd[top.index[:k]])
        assert (oracle_gains(cands, fmt)[0], oracle_gains(cands, fmt)[1]) == (pytest.approx(even), pytest.approx(odd))
    # the ranking never reads the odd half: scrambling it moves the reported value, not the set
    flipped = cands.copy()
    for c in ("demo", "placebo_demo"):
        flipped[f"y_{c}"] = [np.where(np.arange(N_ROLLOUTS) % 2 == 1, 1 - y, y) for y in cands[f"y_{c}"]]
    a, b = select(cands, "ORACLE", k, 0, fmt="demo"), select(flipped, "ORACLE", k, 0, fmt="demo")
    assert list(a["snapshot_id"]) == list(b["snapshot_id"]) and not np.allclose(a["oof_gain"], b["oof_gain"])
    with pytest.raises(ValueError, match="phase5.format"):
        select(cands, "ORACLE", k, 0)
    with pytest.raises(ValueError, match="phase5.format='route'"):
        select(cands, "ORACLE", k, 0, fmt="route")


def test_oracle_gain_of_first_action_rows_is_the_pi_weighted_cell_rates_per_half():
    # two cells (a: y 1,1,0,0; b: 0,0,1,1): demo puts pi (0.8, 0.2), its placebo (0.3, 0.7)
    row = {"snapshot_id": "s", "y_cells": [[1.0, 1, 0, 0], [0.0, 0, 1, 1]], "cell_actions": ["a", "b"],
           **{f"pi_{c}": [0.5, 0.5] for c in STUDENT_CONDITIONS}, "pi_demo": [0.8, 0.2],
           "pi_placebo_demo": [0.3, 0.7]}  # fmt: skip
    even, odd = oracle_gains(pd.DataFrame([row]), "demo")  # even indices 0, 2: a 1, 0 / b 0, 1; odd: the same
    assert even[0] == pytest.approx((0.8 * 0.5 + 0.2 * 0.5) - (0.3 * 0.5 + 0.7 * 0.5))
    row["y_cells"] = [[1.0, 1, 1, 0], [0.0, 0, 0, 1]]  # even: a 1, 1 / b 0, 0; odd: a 1, 0 / b 0, 1
    even, odd = oracle_gains(pd.DataFrame([row]), "demo")
    assert (even[0], odd[0]) == (pytest.approx(0.8 - 0.3), pytest.approx(0.0))


def test_oracle_and_entropy_take_the_top_k_of_their_score():
    cands = _candidates()
    k = 5
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
    assert set(a["snapshot_id"]) != set(select(cands, "ORACLE", 8, 1, fmt="demo")["snapshot_id"])


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


def _selected(method: str, ids: list[str], oracle_overlap: float = 0.5) -> dict:
    """A selected.json: two fresh value rollouts per snapshot (format wins on the first id), a
    cost, ORACLE's out-of-fold gains."""
    snaps = [{"snapshot_id": s, "task_id": f"t{j}", "y_format": [1.0, 1.0] if j == 0 else [0.0, 1.0],
              "y_placebo": [0.0, 1.0]} for j, s in enumerate(ids)]  # fmt: skip
    return {"method": method, "k": len(ids), "format": "demo", "n_candidates": 10, "selected_ids": ids,
            "oracle_overlap": oracle_overlap, "cost": signal_cost("RANDOM", _candidates()),
            "value_rollouts": {"format": "demo", "scope": VALUE_SCOPE, "n_per_snapshot": 2, "snapshots": snaps},
            "oracle_oof": {"rank": "even", "report": "odd", "format": "demo", "gains": [0.5, 0.0, 0.25][:len(ids)]}
            if method == "ORACLE" else None}  # fmt: skip


def test_summary_gain_and_retention_match_hand_computation():
    base = [True, True, True, False, False, False, True, True]  # tasks 0,3 solved (rate >= .5); task 1: 1/2
    ora = [True, True, True, True, True, False, True, False]
    rnd = [False, True, False, False, False, False, True, True]
    df = _rollouts({"base": base, model_id("ORACLE"): ora, model_id("RANDOM"): rnd})
    sel = {m: _selected(m, ["a", "b"], oracle_overlap=1.0 if m == "ORACLE" else 0.5) for m in ("ORACLE", "RANDOM")}
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
    # the set's value: fresh format - placebo successes (3 - 2 of 4 per condition), paired over tasks
    v = out["methods"]["RANDOM"]["value"]
    assert (v["gain_net"], v["n"], v["n_snapshots"], v["format"]) == (pytest.approx(0.25), 4, 2, "demo")
    ref = paired_cluster_bootstrap_diff([2.0, 1], [2.0, 2], [1.0, 1], [2.0, 2], 0.95, 500, 2)
    assert (v["lo"], v["hi"], v["n_tasks"]) == (pytest.approx(ref["lo"]), pytest.approx(ref["hi"]), 2)
    o = out["methods"]["ORACLE"]["oracle_oof"]
    assert o["gain_net"] == pytest.approx(0.25) and o["n_snapshots"] == 2 and o["lo"] < 0.25 < o["hi"]
    assert out["methods"]["RANDOM"]["oracle_oof"] is None
    assert out["methods"]["ORACLE"]["cost"] == sel["ORACLE"]["cost"]


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
    assert METHODS == ("RANDOM", "ENTROPY", "LEARNABILITY", "LEARNABILITY_EQ", "PREDICTOR", "ORACLE")


def _five_methods(n_tasks=12) -> tuple[pd.DataFrame, dict]:
    """Per method, the eval tasks it solves (2 rollouts each): PREDICTOR solves the most."""
    solves = {"base": 3, "RANDOM": 4, "ENTROPY": 5, "LEARNABILITY": 6, "LEARNABILITY_EQ": 8, "PREDICTOR": 11,
              "ORACLE": 6}
    runs = {}
    for m, k in solves.items():
        succ = [t < k for t in range(n_tasks) for _ in range(2)]
        runs["base" if m == "base" else model_id(m)] = succ
    sel = {m: _selected(m, ["a", "b", "c"]) for m in solves if m != "base"}
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
    eq = c["oracle_vs_learnability_eq"]  # CPT at equal cost: ORACLE solves 6 tasks, LEARNABILITY_EQ 8
    assert (eq["model"], eq["baseline"]) == ("ORACLE", "LEARNABILITY_EQ") and eq["difference"]["value"] < 0
    assert eq["p_value"] == pytest.approx(2 / 2**2) and c["oracle_reason_eq"] is None
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
    assert c["oracle_vs_learnability_eq"] is None and "LEARNABILITY_EQ" in c["oracle_reason_eq"]
    assert c["best_baseline"] == "ENTROPY"


def test_learnability_eq_ranks_by_the_variance_of_its_own_rollouts():
    cands = _candidates()
    rng = np.random.default_rng(3)
    outs = {sid: rng.integers(0, 2, 2 + j % 5).astype(float) for j, sid in enumerate(cands["snapshot_id"])}
    chosen = select(cands, "LEARNABILITY_EQ", 6, 0, eq_outcomes=outs)
    p = np.array([outs[sid].mean() for sid in cands["snapshot_id"]])
    assert chosen["selection_score"].tolist() == sorted(np.sort(p * (1 - p))[::-1][:6].tolist(), reverse=True)
    assert chosen["eq_p_policy"].to_numpy() == pytest.approx([outs[sid].mean() for sid in chosen["snapshot_id"]])
    with pytest.raises(ValueError, match="eq_outcomes"):
        select(cands, "LEARNABILITY_EQ", 6, 0)
    with pytest.raises(ValueError, match=repr(cands["snapshot_id"].iloc[0])):
        select(cands, "LEARNABILITY_EQ", 6, 0, eq_outcomes={k: v for k, v in list(outs.items())[1:]})


def test_fresh_rollouts_have_their_own_keys_paired_within_a_snapshot():
    from teachable.labeling import labeled_patches

    cands = _labeled_advice(_candidates().head(2))
    specs = value_specs(cands, "hint", 3, seed=7)
    assert len(specs) == 2 * 3 * 2 and {s.key[1] for s in specs} == {"hint", "placebo_hint"}
    for s in specs:
        sid, cond, i = s.key
        assert s.stream == rollout_key(7, VALUE_SCOPE, sid, i) != rollout_key(7, "phase1", sid, i)
        row = cands.set_index("snapshot_id").loc[sid]
        assert s.patch == labeled_patches(row)[cond] and s.prefix == tuple(row["actions"]) and not s.forced
    eq = eq_specs(cands, [2, 4], seed=7)
    assert [s.key for s in eq] == [(cands["snapshot_id"].iloc[0], "policy", i) for i in range(2)] + [
        (cands["snapshot_id"].iloc[1], "policy", i) for i in range(4)]
    assert all(s.patch is None and s.stream == rollout_key(7, EQ_SCOPE, s.key[0], s.key[2]) for s in eq)
    outs = {(sid, c): np.array([1.0, 0.0, 1.0]) for sid in cands["snapshot_id"] for c in ("hint", "placebo_hint")}
    rec = value_rollouts(cands, "hint", outs)
    assert rec["n_per_snapshot"] == 3 and rec["scope"] == VALUE_SCOPE
    assert set_value(rec, ClusterBootstrap(0.95, 200, 0))["gain_net"] == 0


def _labeled_advice(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` on BabyAI-GoToLocal-v0 with the advice columns a labeled row carries."""
    return df.assign(env_id="BabyAI-GoToLocal-v0", seed=[3, 4][: len(df)], actions=[["turn left"]] * len(df),
                     valid_actions=[["turn left", "turn right", "go forward"]] * len(df),
                     suggested_action="go forward", diagnosis="The box is at your 12 o'clock.",
                     contrast_diagnosis="Turning right faces the wall.")  # fmt: skip


def test_labeled_patches_rebuild_the_patches_phase1_rolled_out():
    from teachable.labeling import condition_patches, labeled_patches
    from teachable.teachers.base import Advice

    row = _labeled_advice(_candidates().head(1)).iloc[0].copy()
    row["_logprobs"] = np.log([0.2, 0.5, 0.3])  # the student's other most likely action: turn right
    row["student_action"] = "go forward"  # the teacher's: the contrast is about turn right (a second diagnosis)
    row["contrast_action"] = "turn right"
    adv = Advice("go forward", row["diagnosis"], "wrong_turn")
    assert labeled_patches(row) == condition_patches(row, adv, row["contrast_diagnosis"])
    assert "Turning right" not in labeled_patches(row)["hint"] and "turning right" in labeled_patches(row)["contrast"]


def test_signal_costs_count_what_each_signal_read():
    cands = _candidates()
    n = len(cands)
    per = len(STUDENT_CONDITIONS) * N_ROLLOUTS
    oracle = signal_cost("ORACLE", cands)
    contrast_calls = int((cands["contrast_action"] != cands["student_action"]).sum())
    assert (oracle["student_rollouts"], oracle["expert_rollouts"], oracle["forward_passes"]) == (n * per, 3 * n, n)
    assert oracle["teacher_calls"] == n + contrast_calls > n and oracle["n_labels"] == n
    assert oracle["student_rollouts_per_candidate"] == per and oracle["tokens"] is None and oracle["tokens_reason"]
    assert (oracle_rollouts(cands) == per).all()
    learn = signal_cost("LEARNABILITY", cands)
    assert (learn["student_rollouts"], learn["teacher_calls"], learn["forward_passes"]) == (n * N_ROLLOUTS, 0, 0)
    eq = signal_cost("LEARNABILITY_EQ", cands, eq_rollouts=oracle_rollouts(cands))
    assert eq["student_rollouts"] == oracle["student_rollouts"] and eq["teacher_calls"] == 0
    ent = signal_cost("ENTROPY", cands)
    assert (ent["student_rollouts"], ent["forward_passes"]) == (0, n)
    assert signal_cost("ENTROPY", cands.assign(U_k=8))["forward_passes"] == 8 * n  # a generate-only student's U
    assert u_passes(pd.Series({"U_k": 0})) == 1 and u_passes(pd.Series({"U_k": np.nan})) == 1
    lab = _labeled()
    pred = signal_cost("PREDICTOR", cands, fit_labels=lab)
    assert pred["student_rollouts"] == len(lab) * per and pred["forward_passes"] == n + len(lab)
    assert pred["n_labels"] == len(lab) and pred["teacher_calls"] == signal_cost("ORACLE", lab)["teacher_calls"]
    assert signal_cost("RANDOM", cands)["student_rollouts"] == signal_cost("RANDOM", cands)["forward_passes"] == 0
    with pytest.raises(ValueError, match="fit_labels"):
        signal_cost("PREDICTOR", cands)
    with pytest.raises(ValueError, match="eq_rollouts"):
        signal_cost("LEARNABILITY_EQ", cands)
    # first_action: the cells' rollouts (NaN past an adaptive cell's last one uncounted), pi per patched condition
    row = {"snapshot_id": "s", "y_cells": [[1.0, 0, 1, np.nan], [0.0, 1, 1, 1]], "cell_actions": ["a", "b"],
           **{f"pi_{c}": [0.5, 0.5] for c in STUDENT_CONDITIONS}, "pi_policy": [1.0, 0.0], "y_expert": [1.0],
           "student_action": "a", "contrast_action": "a", "U": 0.3}  # fmt: skip
    fa = signal_cost("ORACLE", pd.DataFrame([row]))
    assert (fa["student_rollouts"], fa["forward_passes"], fa["teacher_calls"]) == (7, 1 + len(STUDENT_CONDITIONS) - 1, 1)
    fl = signal_cost("LEARNABILITY", pd.DataFrame([row]))
    assert (fl["student_rollouts"], fl["forward_passes"]) == (3, 1)  # only cell a has policy weight


def test_fresh_value_rollouts_play_the_base_student(tiny_student):
    from teachable.selection import _play, base_student

    cands = _labeled_advice(_candidates().head(1))
    cfg = {"seed": 0, "student": {"temperature": 1.0}, "env": {"id": "BabyAI-GoToLocal-v0", "history_len": 2,
                                                              "max_steps": 4}}  # fmt: skip
    specs = value_specs(cands, "demo", 2, 0)
    with base_student(str(tiny_student), cfg) as policy:
        outs = _play(specs, policy, cfg, "test", progress=False)
    rec = value_rollouts(cands, "demo", outs)
    assert rec["n_per_snapshot"] == 2 and all(set(s["y_format"]) <= {0.0, 1.0} for s in rec["snapshots"])
    with base_student(str(tiny_student), cfg) as policy:
        assert value_rollouts(cands, "demo", _play(specs, policy, cfg, "test", progress=False)) == rec
