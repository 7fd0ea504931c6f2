"""Phase 3 evaluation suite and model comparison.

eval_model runs a real tiny random Llama student (built with student_init's builders) on the real
BabyAI env; the pure summary / compare functions run on synthetic rollout tables."""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd
import pytest

from teachable.compare import IMPROVEMENT, NO_CHANGE, REGRESSION, compare, compare_all, to_markdown
from teachable.envs.base import INVALID_ACTION
from teachable.evaluation import (
    ROLLOUT_COLUMNS,
    check_eval_disjoint,
    eval_model,
    has_loop,
    repeat_rate,
    rollout_metrics,
    wasted_steps,
)
from teachable.evaluation_tables import (
    CSV_NAMES,
    SUMMARY_COLUMNS,
    benchmark_json,
    solved_tasks,
    summarize,
    trained_on,
    transfer_locality,
    write_summaries,
)
from teachable.stats import cluster_bootstrap_rate, cluster_sums, paired_cluster_bootstrap_diff

ENV = "BabyAI-GoToLocal-v0"
Q = ("Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL", "Q4_lowU_highL")


def _cfg(**phase3) -> dict:
    return {
        "seed": 0,
        "env": {"id": ENV, "max_steps": 8, "history_len": 2},
        "splits": {"train": {"start": 0, "count": 100}, "eval": {"start": 1000, "count": 50},
                   "bench": {"start": 2000, "count": 50}},
        "student": {"backend": "hf", "device": "cpu", "dtype": "float32", "batch_size": 16, "temperature": 1.0},
        "phase3": {"eval_tasks": 2, "rollouts_per_task": 2, "rollouts_per_snapshot": 2, "confidence": 0.95,
                   **phase3},
    }


# ------------------------------------------------------------------------------------ seed checks
def test_overlapping_split_ranges_raise_naming_both_splits():
    cfg = _cfg()
    cfg["splits"]["eval"] = {"start": 90, "count": 50}
    with pytest.raises(ValueError, match=r"splits\.train.*splits\.eval|splits\.eval.*splits\.train"):
        check_eval_disjoint(cfg)


def test_explicit_train_seed_list_overlapping_eval_seeds_raises():
    cfg = _cfg()
    cfg["student"]["init"] = {"train_seeds": [3, 1001]}  # 1001 is the second eval task
    with pytest.raises(ValueError, match=r"splits\.eval.*student\.init\.train_seeds"):
        check_eval_disjoint(cfg)
    cfg["student"]["init"] = {"train_seeds": [3, 1040]}  # an eval-split seed phase 3 does not play
    check_eval_disjoint(cfg)  # the split ranges are disjoint, the played seeds too: no error


def test_disjoint_config_passes_and_too_many_eval_tasks_raise():
    check_eval_disjoint(_cfg())
    with pytest.raises(ValueError, match="eval_tasks"):
        check_eval_disjoint(_cfg(eval_tasks=51))


def test_eval_model_refuses_overlap_before_loading_a_model(tmp_path):
    cfg = _cfg()
    cfg["splits"]["train"] = {"start": 0, "count": 1010}
    with pytest.raises(ValueError, match="splits.train"):
        eval_model("base", str(tmp_path / "no_model"), None, _heldout(), cfg, progress=False)


# ------------------------------------------------------------------------------------ tiny real model
def _heldout() -> pd.DataFrame:
    """Two real snapshots on train seeds: states after a short expert prefix."""
    from teachable.envs import make_env

    env = make_env(ENV, max_steps=8)
    rows = []
    for seed, k, q in ((3, 1, Q[0]), (4, 2, Q[2])):
        env.reset(seed)
        prefix = []
        for _ in range(k):
            a = env.expert_action()
            env.step(a)
            prefix.append(a)
        rows.append({"snapshot_id": f"{ENV}/A-{seed}/t{k}", "env_id": ENV, "seed": seed, "actions": prefix,
                     "quadrant": q, "task_id": f"{ENV}:{seed}"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from teachable.student_init import build_random_student

    # a peaked random model: non-uniform action distributions
    return str(build_random_student(tmp_path_factory.mktemp("tiny_eval_student"), vocab_size=300, n_layers=1,
                                    init_std=0.3))


@pytest.fixture(scope="module")
def two_evals(tiny_dir):
    cfg, held = _cfg(), _heldout()
    a = eval_model("base", tiny_dir, None, held, cfg, progress=False)
    b = eval_model("again", tiny_dir, None, held, cfg, progress=False)
    return cfg, held, a, b


def test_eval_model_rows_and_columns(two_evals):
    cfg, held, a, _ = two_evals
    p3 = cfg["phase3"]
    assert len(a) == p3["eval_tasks"] * p3["rollouts_per_task"] + len(held) * p3["rollouts_per_snapshot"]
    assert list(a.columns) == ROLLOUT_COLUMNS
    ov, sn = a[a["suite"] == "overall"], a[a["suite"] == "snapshot"]
    assert sorted(ov["seed"].unique()) == [1000, 1001]  # the eval split's head
    assert ov["snapshot_id"].isna().all() and ov["quadrant"].isna().all()
    assert set(sn["snapshot_id"]) == set(held["snapshot_id"]) and set(sn["quadrant"]) == {Q[0], Q[2]}
    assert (a["steps"] == a["actions"].map(len)).all()
    assert (a["steps"] >= 1).all() and (a["steps"] <= cfg["env"]["max_steps"]).all()
    # a snapshot rollout has only the steps left after its prefix
    for _, r in sn.iterrows():
        k = len(held.set_index("snapshot_id").loc[r["snapshot_id"], "actions"])
        assert r["steps"] <= cfg["env"]["max_steps"] - k
    assert (a["n_invalid"] == 0).all() and (a["invalid_rate"] == 0).all()  # a scoring student
    # the expert reference: every start of this tiny config is solvable by the expert
    assert a["expert_steps"].notna().all()
    for _, r in a.iterrows():
        assert r["wasted_steps"] == wasted_steps(r["success"], r["steps"], r["expert_steps"])


def test_same_model_twice_gives_identical_rows_common_random_numbers(two_evals):
    _, _, a, b = two_evals
    assert (b["model_id"] == "again").all()
    cols = [c for c in ROLLOUT_COLUMNS if c != "model_id"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
    # rollouts of one unit use different random streams
    assert a.groupby(["suite", "task_id", "snapshot_id"], dropna=False)["rng_seed"].nunique().ge(2).all()


def test_eval_rows_round_trip_parquet_and_summarize(two_evals, tmp_path):
    _, _, a, b = two_evals
    df = pd.concat([a, b], ignore_index=True)
    df.to_parquet(tmp_path / "rollouts.parquet", index=False)
    back = pd.read_parquet(tmp_path / "rollouts.parquet")
    assert list(back["actions"].iloc[0]) == list(a["actions"].iloc[0])
    tables = summarize(back, 0.95)
    tr = tables["transfer"]
    assert (tr["delta_success"] == 0).all()  # identical rows: no change anywhere
    assert (tables["retention"]["drop"] == 0).all()


# ------------------------------------------------------------------------------------ per-rollout metrics
def test_repeat_rate_on_hand_made_actions():
    assert repeat_rate(["L", "L", "F", "F", "F"]) == pytest.approx(3 / 4)
    assert repeat_rate(["L", "R", "F"]) == 0
    assert math.isnan(repeat_rate(["L"]))


@pytest.mark.parametrize(
    "actions, loop",
    [
        (["L", "R", "L", "R", "L", "R"], True),  # 2-gram x3
        (["F", "L", "R", "L", "R", "L", "R", "F"], True),  # inside a longer path
        (["L", "L", "F", "L", "L", "F", "L", "L", "F"], True),  # 3-gram x3
        (["a", "b", "c", "d"] * 3, True),  # 4-gram x3
        (["L", "R", "L", "R", "F"], False),  # only twice
        (["L", "R", "F", "L", "R", "F", "F", "L", "R"], False),  # thrice, but not back to back
        (["F"] * 5, False),  # a single action 5 times: repeat rate, not a loop
        (["F"] * 6, True),  # ... 6 times = the 2-gram (F, F) three times
        ([], False),
    ],
)
def test_loop_detection(actions, loop):
    assert has_loop(actions) is loop


def test_invalid_rate_and_wasted_steps_definitions():
    m = rollout_metrics(["F", INVALID_ACTION, "L", INVALID_ACTION], success=True, expert_steps=3)
    assert m["n_invalid"] == 2 and m["invalid_rate"] == 0.5
    assert m["wasted_steps"] == 1  # 4 steps vs the expert's 3
    assert wasted_steps(True, 2, 5) == 0  # shorter than the expert: nothing wasted
    assert wasted_steps(False, 7, 3) == 7  # a failure wastes every step
    assert math.isnan(wasted_steps(True, 4, float("nan")))  # no expert reference from that start


# ------------------------------------------------------------------------------------ synthetic tables
def _snapshot_task(unit: str) -> str:
    """Snapshot s<quadrant><j> comes from task j: each task has one snapshot in every quadrant."""
    return f"{ENV}:{unit[-1]}"


def _rows(model_id: str, task_success: dict[str, list[bool]], suite="overall", quadrant_of=None, steps=10,
          actions=None, task_of=_snapshot_task) -> list[dict]:
    rows = []
    for unit, succ in task_success.items():
        for i, s in enumerate(succ):
            acts = list(actions) if actions is not None else ["go forward"] * (steps // 2) + ["turn left"] * (steps - steps // 2)
            rows.append({
                "model_id": model_id, "suite": suite, "env_id": ENV, "seed": 0,
                "task_id": unit if suite == "overall" else task_of(unit),
                "snapshot_id": None if suite == "overall" else unit,
                "quadrant": None if suite == "overall" else quadrant_of[unit], "rollout_idx": i,
                "success": bool(s), "return": 0.9 if s else 0.0, "steps": len(acts), "actions": acts,
                "expert_steps": 4.0, "rng_seed": i, **rollout_metrics(acts, bool(s), 4.0),
            })
    return rows


def _synthetic(models: dict[str, tuple[dict, dict]]) -> pd.DataFrame:
    """models: id -> (overall successes per task, snapshot successes per snapshot)."""
    quadrant_of = {f"s{q}{j}": q for q in Q for j in range(3)}
    rows = []
    for m, (ov, sn) in models.items():
        rows += _rows(m, ov)
        rows += _rows(m, sn, suite="snapshot", quadrant_of=quadrant_of)
    return pd.DataFrame(rows, columns=ROLLOUT_COLUMNS)


def _tasks(pattern: dict[str, int], n=4):
    """task -> n rollouts, the first k successes."""
    return {t: [i < k for i in range(n)] for t, k in pattern.items()}


BASE_OV = _tasks({"t0": 4, "t1": 3, "t2": 2, "t3": 1, "t4": 0, "t5": 0})  # solved: t0, t1, t2
BASE_SN = {f"s{q}{j}": [True, False, False, False] for q in Q for j in range(3)}


def test_summarize_columns_exactly_as_named(tmp_path):
    model_sn = {k: [True, True, False, False] for k in BASE_SN}
    df = _synthetic({"base": (BASE_OV, BASE_SN), "Q1_highU_highL_demo": (BASE_OV, model_sn),
                     "B1_uniform": (BASE_OV, BASE_SN)})
    tables = summarize(df, 0.95)
    assert set(tables) == {"overall", "per_quadrant", "transfer", "retention", "stuckness", "family"}
    assert tables["family"].empty  # a family without achievements (BabyAI)
    issue = {
        "overall": ["model_id", "n", "success_rate", "success_lo", "success_hi", "mean_return", "return_lo",
                    "return_hi", "mean_steps", "steps_lo", "steps_hi"],
        "per_quadrant": ["model_id", "quadrant", "n", "success_rate", "lo", "hi"],
        "transfer": ["trained_on", "evaluated_on", "model_id", "delta_success", "lo", "hi", "n"],
        "retention": ["model_id", "n_base_solved_tasks", "base_success", "model_success", "drop", "drop_lo",
                      "drop_hi"],
        "stuckness": ["model_id", "repeat_rate", "loop_rate", "wasted_steps", "invalid_rate"],
    }
    for key, cols in issue.items():
        got = list(tables[key].columns)
        assert got == SUMMARY_COLUMNS[key]
        if key == "stuckness":
            assert all(c in got for c in cols)
            for c in cols[1:]:  # every stuckness number has an interval
                assert f"{c}_lo" in got and f"{c}_hi" in got
        else:
            assert got[: len(cols)] == cols  # the issue's columns first, in order
    paths = write_summaries(tables, tmp_path)
    assert sorted(os.path.basename(p) for p in paths) == sorted(CSV_NAMES.values())
    back = pd.read_csv(tmp_path / "transfer_matrix.csv")
    assert list(back.columns) == SUMMARY_COLUMNS["transfer"]
    ov = tables["overall"].set_index("model_id")
    assert ov.loc["base", "n"] == 24 and ov.loc["base", "success_rate"] == pytest.approx(10 / 24)
    assert ov.loc["base", "success_lo"] < 10 / 24 < ov.loc["base", "success_hi"]
    assert list(tables["overall"]["model_id"])[0] == "base"


def test_transfer_delta_is_model_minus_base_per_quadrant():
    model_sn = dict(BASE_SN)
    for j in range(3):
        model_sn[f"s{Q[1]}{j}"] = [True, True, True, False]  # Q2 snapshots: 1/4 -> 3/4
    df = _synthetic({"base": (BASE_OV, BASE_SN), "Q2_highU_lowL_hint": (BASE_OV, model_sn),
                     "B2_all": (BASE_OV, BASE_SN)})
    tr = summarize(df, 0.95)["transfer"]
    pq = summarize(df, 0.95)["per_quadrant"].set_index(["model_id", "quadrant"])
    assert len(tr) == 2 * 4  # two trained models x four evaluated quadrants; no base rows
    for _, r in tr.iterrows():
        expect = pq.loc[(r["model_id"], r["evaluated_on"]), "success_rate"] - pq.loc[("base", r["evaluated_on"]), "success_rate"]
        assert r["delta_success"] == pytest.approx(expect)
        assert r["lo"] <= r["delta_success"] <= r["hi"] and r["n"] == 12
    r = tr[(tr["model_id"] == "Q2_highU_lowL_hint") & (tr["evaluated_on"] == Q[1])].iloc[0]
    assert r["trained_on"] == Q[1] and r["delta_success"] == pytest.approx(0.5) and r["lo"] > 0
    assert set(tr.loc[tr["model_id"] == "B2_all", "trained_on"]) == {"B2_all"}
    assert trained_on("Q4_lowU_highL_contrast") == Q[3] and trained_on("B1_uniform") == "B1_uniform"


# base rollouts per task as (selection half | measurement half): the halves disagree on purpose
RET_BASE = {"a": [True, True, False, False],    # solved on the first half; measured 0/2
            "b": [False, False, True, True],    # 2/4 overall but 0/2 on the first half: not solved
            "c": [True, False, True, True],     # 1/2 on the first half counts; measured 2/2
            "d": [False, False, False, False]}  # fmt: skip


def test_retention_chooses_tasks_on_the_first_half_and_measures_on_the_second():
    forgetful = dict(RET_BASE, a=[True, True, False, False], c=[True, True, False, False])
    # same outcomes as the base where retention measures; different where it selects
    same_measured = dict(RET_BASE, a=[False, False, False, False], c=[False, False, True, True])
    better_unsolved = dict(RET_BASE, b=[True] * 4, d=[True] * 4)  # gains on unsolved tasks do not count
    df = _synthetic({"base": (RET_BASE, BASE_SN), "M1": (forgetful, BASE_SN), "M2": (same_measured, BASE_SN),
                     "M3": (better_unsolved, BASE_SN)})
    ret = summarize(df, 0.95, n_bootstrap=500, seed=1)["retention"].set_index("model_id")
    assert solved_tasks(df) == ["a", "c"]
    assert (ret["n_base_solved_tasks"] == 2).all() and (ret["n_tasks"] == 2).all()
    assert (ret["rollouts_per_task"] == 4).all() and (ret["selection_rollouts"] == 2).all()
    assert ret["reason"].isna().all()
    # measured on rollouts 2-3 of a and c only: base 0 + 2 of 4
    assert ret.loc["base", "base_success"] == pytest.approx(2 / 4) and ret.loc["base", "n"] == 4
    assert ret.loc["M1", "model_success"] == 0 and ret.loc["M1", "drop"] == pytest.approx(0.5)
    for m in ("M2", "M3", "base"):  # identical to the base on the measured half: drop 0, zero width
        assert (ret.loc[m, "drop"], ret.loc[m, "drop_lo"], ret.loc[m, "drop_hi"]) == (0, 0, 0), m
    # the drop's interval is the paired bootstrap over the two solved tasks
    d = paired_cluster_bootstrap_diff([0.0, 2.0], [2.0, 2.0], [0.0, 0.0], [2.0, 2.0], 0.95, 500, 1)
    assert (ret.loc["M1", "drop_lo"], ret.loc["M1", "drop_hi"]) == pytest.approx((d["lo"], d["hi"]))


def test_retention_simultaneous_intervals_are_bonferroni_over_the_runs_and_wider():
    """"No run forgets" covers every run at once: each drop's simultaneous interval is the same
    paired bootstrap at 1 - alpha / m, m = the models other than the base, so it contains the
    per-run interval."""
    base = _tasks({f"t{i}": 4 for i in range(8)})
    runs = {f"M{i}": _tasks({f"t{j}": 4 - (i + j) % 3 for j in range(8)}) for i in range(4)}
    df = _synthetic({"base": (base, BASE_SN), **{m: (ov, BASE_SN) for m, ov in runs.items()}})
    ret = summarize(df, 0.95, n_bootstrap=1000, seed=2)["retention"].set_index("model_id")
    assert (ret["n_family"] == 4).all() and np.allclose(ret["sim_confidence"], 1 - 0.05 / 4)
    m = ret.drop(index="base")
    assert (m["drop_sim_lo"] <= m["drop_lo"]).all() and (m["drop_sim_hi"] >= m["drop_hi"]).all()
    assert ((m["drop_sim_hi"] - m["drop_sim_lo"]) > (m["drop_hi"] - m["drop_lo"])).any()
    g = df[(df["suite"] == "overall") & (df["rollout_idx"] >= 2)]
    a, b = (cluster_sums(g.loc[g["model_id"] == k, "success"], g.loc[g["model_id"] == k, "task_id"]) for k in ("base", "M1"))
    d = paired_cluster_bootstrap_diff(a["sum"], a["count"], b["sum"], b["count"], 1 - 0.05 / 4, 1000, 2)
    assert (m.loc["M1", "drop_sim_lo"], m.loc["M1", "drop_sim_hi"]) == pytest.approx((d["lo"], d["hi"]))


def test_transfer_locality_is_bootstrapped_over_tasks():
    local = {k: ([True, True, True, False] if k.startswith(f"s{Q[0]}") else [True, False, False, False])
             for k in BASE_SN}  # fmt: skip
    df = _synthetic({"base": (BASE_OV, BASE_SN), "Q1_highU_highL_demo": (BASE_OV, local),
                     "Q2_highU_lowL_demo": (BASE_OV, BASE_SN), "B2_all": (BASE_OV, local)})
    loc = transfer_locality(df, 0.95, n_bootstrap=400, seed=0)
    assert loc["models"] == ["Q1_highU_highL_demo", "Q2_highU_lowL_demo"]  # B2_all is no quadrant run
    assert loc["n_diagonal_cells"] == 2 and loc["n_off_diagonal_cells"] == 6 and loc["n_tasks"] == 3
    assert loc["value"] == pytest.approx(0.25)  # in-quadrant (0.5 + 0) / 2 minus cross-quadrant 0
    assert loc["n_defined"] == 400 and loc["lo"] == pytest.approx(0.25) and loc["hi"] == pytest.approx(0.25)
    one = transfer_locality(df[df["model_id"] != "Q2_highU_lowL_demo"], 0.95, n_bootstrap=100)
    assert one["n_diagonal_cells"] == 1 and one["reason"] is None
    none = transfer_locality(df, 0.95, n_bootstrap=100, models=["B2_all"])
    assert none["models"] == [] and "no quadrant run" in none["reason"] and math.isnan(none["lo"])


def test_retention_with_three_rollouts_selects_on_one_and_measures_on_two():
    base = {"a": [True, False, False], "b": [False, True, True]}
    df = _synthetic({"base": (base, BASE_SN)})
    ret = summarize(df, 0.95, n_bootstrap=200)["retention"].iloc[0]
    assert solved_tasks(df) == ["a"] and ret["selection_rollouts"] == 1
    assert ret["base_success"] == 0 and ret["n"] == 2  # rollouts 1 and 2 of task a


def test_retention_with_one_rollout_per_task_is_undefined_never_measured_on_the_same_rollout():
    one = {t: [s] for t, s in {"a": True, "b": False, "c": True}.items()}
    df = _synthetic({"base": (one, BASE_SN), "M": (one, BASE_SN)})
    ret = summarize(df, 0.95, n_bootstrap=200)["retention"]
    assert ret["drop"].isna().all() and ret["base_success"].isna().all() and ret["n_base_solved_tasks"].isna().all()
    assert ret["reason"].str.contains("rollouts_per_task = 1").all()


def test_retention_with_no_solved_task_says_so():
    df = _synthetic({"base": ({"a": [False] * 4, "b": [False, False, True, True]}, BASE_SN)})
    r = summarize(df, 0.95, n_bootstrap=200)["retention"].iloc[0]
    assert r["n_base_solved_tasks"] == 0 and math.isnan(r["drop"]) and "solves no eval task" in r["reason"]


def test_intervals_resample_tasks_and_do_not_shrink_with_copied_rollouts():
    pattern = {f"t{k}": [k % 3 == 0, k % 2 == 0] for k in range(12)}
    copies = {t: r * 10 for t, r in pattern.items()}  # each task's rollouts ten times over
    one = summarize(_synthetic({"base": (pattern, BASE_SN)}), 0.95, n_bootstrap=800, seed=4)
    ten = summarize(_synthetic({"base": (copies, BASE_SN)}), 0.95, n_bootstrap=800, seed=4)
    a, b = one["overall"].iloc[0], ten["overall"].iloc[0]
    assert (a["n_tasks"], a["n_rollouts"], a["n"]) == (12, 24, 24) and b["n_rollouts"] == 240
    for c in ("success_rate", "success_lo", "success_hi", "mean_return", "return_lo", "return_hi"):
        assert b[c] == pytest.approx(a[c]), c
    k = np.array([sum(pattern[t]) for t in sorted(pattern)], float)  # per-task successes (tasks sorted)
    ref = cluster_bootstrap_rate(k, np.full(12, 2.0), 0.95, 800, 4)
    assert (a["success_lo"], a["success_hi"]) == pytest.approx((ref["lo"], ref["hi"]))
    sa, sb = one["stuckness"].iloc[0], ten["stuckness"].iloc[0]
    assert (sb["wasted_steps_lo"], sb["wasted_steps_hi"]) == pytest.approx((sa["wasted_steps_lo"], sa["wasted_steps_hi"]))
    assert sa["n_tasks"] == 12 and sb["n_rollouts"] == 240
    assert summarize(_synthetic({"base": (pattern, BASE_SN)}), 0.95, n_bootstrap=800, seed=4)["overall"].equals(one["overall"])


def test_gain_and_transfer_are_paired_over_tasks_and_snapshots():
    model_sn = {k: [True, True, False, False] for k in BASE_SN}
    df = _synthetic({"base": (BASE_OV, BASE_SN), "copy": (BASE_OV, model_sn)})
    t = summarize(df, 0.95, n_bootstrap=500, seed=0)
    ov = t["overall"].set_index("model_id")
    for m in ("base", "copy"):  # the same overall rollouts as the base: exactly no gain
        assert (ov.loc[m, "gain_vs_base"], ov.loc[m, "gain_lo"], ov.loc[m, "gain_hi"]) == (0, 0, 0)
        assert ov.loc[m, "gain_paired"]
    tr = t["transfer"]
    assert (tr["delta_success"] == 0.25).all() and (tr["n_snapshots"] == 3).all() and (tr["n_rollouts"] == 12).all()
    # every snapshot gains exactly one success of four: the paired interval has no width
    assert (tr["lo"] == 0.25).all() and (tr["hi"] == 0.25).all()
    pq = t["per_quadrant"]
    assert (pq["n_snapshots"] == 3).all() and (pq["n_rollouts"] == 12).all()
    assert (pq["n_tasks"] == 3).all() and (tr["n_tasks"] == 3).all()


def test_snapshot_suite_intervals_cluster_by_task_not_snapshot():
    """Three snapshots of one task are one cluster: no interval (a bootstrap needs 2 tasks), where a
    bootstrap over snapshots would have pretended to three independent units."""
    sn = {f"s{Q[0]}{j}": [j == 0, j == 1, False, False] for j in range(3)}
    q_of = dict.fromkeys(sn, Q[0])
    rows = []
    for m, succ in (("base", sn), ("Q1_highU_highL_demo", {k: [True] * 4 for k in sn})):
        rows += _rows(m, BASE_OV) + _rows(m, succ, suite="snapshot", quadrant_of=q_of, task_of=lambda u: f"{ENV}:7")
    t = summarize(pd.DataFrame(rows, columns=ROLLOUT_COLUMNS), 0.95, n_bootstrap=200)
    pq, tr = t["per_quadrant"], t["transfer"]
    assert (pq["n_snapshots"] == 3).all() and (pq["n_tasks"] == 1).all()
    assert pq["lo"].isna().all() and pq["hi"].isna().all()
    assert tr["n_tasks"].tolist() == [1] and math.isnan(tr["lo"].iloc[0]) and tr["delta_success"].iloc[0] == pytest.approx(5 / 6)
    rows = [{**r, "task_id": f"{ENV}:{r['snapshot_id'][-1]}"} if r["suite"] == "snapshot" else r for r in rows]
    two = summarize(pd.DataFrame(rows, columns=ROLLOUT_COLUMNS), 0.95, n_bootstrap=200)["per_quadrant"]
    assert (two["n_tasks"] == 3).all() and two["lo"].notna().all()  # one task per snapshot: three clusters


def test_summary_needs_the_base_model():
    df = _synthetic({"M1": (BASE_OV, BASE_SN)})
    with pytest.raises(ValueError, match="base"):
        summarize(df, 0.95)


def test_stuckness_table_from_rollout_metrics():
    loopy = ["turn left", "turn right"] * 4
    rows = _rows("base", {"t0": [False, False]}, actions=loopy) + _rows("base", {"t1": [True, True]})
    df = pd.DataFrame(rows, columns=ROLLOUT_COLUMNS)
    st_ = summarize(df, 0.95)["stuckness"].iloc[0]
    assert st_["loop_rate"] == 0.5 and st_["n"] == 4
    # straight path: 10 actions, 4+4 repeats of 9 pairs; loop: no repeats
    assert st_["repeat_rate"] == pytest.approx((8 / 9 + 8 / 9 + 0 + 0) / 4)
    assert st_["wasted_steps"] == pytest.approx((8 + 8 + 6 + 6) / 4)
    assert st_["invalid_rate"] == 0 and st_["invalid_rate_lo"] == 0 == st_["invalid_rate_hi"]


def test_benchmark_json():
    df = _synthetic({"base": (BASE_OV, BASE_SN)})
    bj = benchmark_json(df, "base")
    json.dumps(bj)
    assert bj["model"] == "base" and bj["n"] == 24 and bj["pass_rate"] == pytest.approx(10 / 24)
    assert bj["ci95"][0] < bj["pass_rate"] < bj["ci95"][1]
    assert bj["avg_reward"] == pytest.approx(0.9 * 10 / 24)
    assert bj["by_level"][ENV]["n"] == 24 and bj["by_level"][ENV]["pass_rate"] == pytest.approx(10 / 24)
    assert bj["n_tasks"] == 6 and bj["n_rollouts"] == 24 and "over tasks" in bj["interval"]
    k = np.array([sum(BASE_OV[t]) for t in sorted(BASE_OV)], float)
    ref = cluster_bootstrap_rate(k, np.full(6, 4.0), 0.95, 2000, 0)
    assert bj["ci95"] == pytest.approx([ref["lo"], ref["hi"]])
    with pytest.raises(ValueError, match="nope"):
        benchmark_json(df, "nope")


# ------------------------------------------------------------------------------------ compare
def _many_tasks(rate_fn, n_tasks=30, n=4):
    return {f"t{k}": [i < rate_fn(k) for i in range(n)] for k in range(n_tasks)}


def test_compare_flags_a_clear_improvement():
    base = _many_tasks(lambda k: 1 if k % 2 else 0)  # 15/120 successes
    good = _many_tasks(lambda k: 3 if k % 2 else 2)  # 75/120
    base_sn = {k: [False] * 4 for k in BASE_SN}
    good_sn = {k: [True, True, True, False] for k in BASE_SN}
    df = _synthetic({"base": (base, base_sn), "Q1_highU_highL_demo": (good, good_sn)})
    rep = compare(df, "base", "Q1_highU_highL_demo")
    by = {m["metric"]: m for m in rep["metrics"]}
    os_ = by["overall_success"]
    assert os_["verdict"] == IMPROVEMENT and "overall_success" in rep["improvements"]
    assert os_["test"]["paired"] and 0 <= os_["p_value"] < 1e-3
    assert os_["difference"]["value"] == pytest.approx(0.5) and os_["difference"]["lo"] > 0
    pb, pm = 15 / 120, 75 / 120
    assert os_["effect_size"]["name"] == "cohen_h"
    assert os_["effect_size"]["value"] == pytest.approx(2 * math.asin(math.sqrt(pm)) - 2 * math.asin(math.sqrt(pb)))
    # mean return: Cohen's d with the pooled SD of per-rollout returns
    rb = np.where(df[(df.model_id == "base") & (df.suite == "overall")]["success"], 0.9, 0.0)
    rm = np.where(df[(df.model_id != "base") & (df.suite == "overall")]["success"], 0.9, 0.0)
    sp = math.sqrt(((len(rb) - 1) * rb.var(ddof=1) + (len(rm) - 1) * rm.var(ddof=1)) / (len(rb) + len(rm) - 2))
    assert by["mean_return"]["effect_size"]["value"] == pytest.approx((rm.mean() - rb.mean()) / sp)
    assert by["mean_return"]["verdict"] == IMPROVEMENT
    # 3 snapshots per quadrant: an exact paired test cannot reach p < 0.05 (2 / 2^3 = 0.25)
    q = by[f"success_{Q[0]}"]
    assert q["test"]["exact"] and q["p_value"] == pytest.approx(0.25) and q["verdict"] == NO_CHANGE
    for m in rep["metrics"]:
        assert m["p_value"] is None or 0 <= m["p_value"] <= 1
        assert m["p_value"] is not None or m["test"]["reason"]
    json.dumps(rep)  # JSON-ready: no NaN
    md = to_markdown(rep)
    assert "overall_success" in md and "improvement" in md and md.count("\n|") >= len(rep["metrics"]) + 2


def test_compare_identical_models_is_no_change_with_reasoned_null_p():
    df = _synthetic({"base": (BASE_OV, BASE_SN), "copy": (BASE_OV, BASE_SN)})
    rep = compare(df, "base", "copy")
    assert rep["improvements"] == [] and rep["regressions"] == []
    for m in rep["metrics"]:
        assert m["verdict"] == NO_CHANGE
        assert m["difference"]["value"] == 0
        if m["p_value"] is None:
            assert m["test"]["reason"]
    assert {m["metric"] for m in rep["metrics"]} >= {"overall_success", "mean_return", "mean_steps", "repeat_rate",
                                                      "loop_rate", "invalid_rate", "wasted_steps",
                                                      "retention_success", "snapshot_success",
                                                      *[f"success_{q}" for q in Q]}
    by = {m["metric"]: m for m in rep["metrics"]}
    assert "zero" in by["overall_success"]["test"]["reason"]
    for name in ("overall_success", "mean_return", "retention_success", "snapshot_success"):
        d = by[name]["difference"]  # paired bootstrap of identical outcomes: no width
        assert (d["value"], d["lo"], d["hi"]) == (0, 0, 0) and "paired" in d["method"]
    assert by["invalid_rate"]["effect_size"]["value"] is None  # no variance at all


def test_compare_regression_and_scipy_p_values_match():
    from scipy import stats as st

    base = _many_tasks(lambda k: 3, n_tasks=10)
    worse = _many_tasks(lambda k: 3 if k < 2 else 0, n_tasks=10)
    df = _synthetic({"base": (base, BASE_SN), "M": (worse, BASE_SN)})
    rep = compare(df, "base", "M")
    os_ = {m["metric"]: m for m in rep["metrics"]}["overall_success"]
    assert os_["verdict"] == REGRESSION and "retention_success" in rep["regressions"]
    # 10 tasks: the exact sign-flip test; 8 of 10 units differ by -0.75, 2 by 0
    d = np.array([0, 0] + [-0.75] * 8)
    ref = st.permutation_test((d, np.zeros(10)), lambda x, y, axis: np.mean(x - y, axis=axis),
                              permutation_type="samples", vectorized=True, n_resamples=9999)
    assert os_["p_value"] == pytest.approx(ref.pvalue)
    assert os_["p_value"] == pytest.approx(2 * 4 / 2**10)  # all-negative flips of 8 units (x2 zeros), two-sided


def test_compare_verdicts_use_the_holm_adjusted_p():
    # 6 tasks, each 1/4 -> 2/4: every paired difference is +0.25, the exact sign-flip p = 2/2^6 =
    # 0.031 < 0.05 for success, return and wasted steps; Holm over those three gives 0.094
    base, better = _tasks({f"t{k}": 1 for k in range(6)}), _tasks({f"t{k}": 2 for k in range(6)})
    df = _synthetic({"base": (base, BASE_SN), "M": (better, BASE_SN)})
    rep = compare(df, "base", "M")
    by = {m["metric"]: m for m in rep["metrics"]}
    os_ = by["overall_success"]
    assert os_["p_value"] == pytest.approx(2 / 2**6) and os_["p_value"] < rep["alpha"]
    tested = [m for m in rep["metrics"] if m["p_value"] is not None]
    assert {m["metric"] for m in tested} == {"overall_success", "mean_return", "wasted_steps"}
    assert os_["p_holm"] == pytest.approx(3 * 2 / 2**6) and os_["p_holm"] > rep["alpha"]
    assert os_["verdict"] == NO_CHANGE and rep["improvements"] == [] and not os_["significant_holm"]
    assert os_["difference"]["lo"] > 0  # the interval alone would not decide it
    assert "Holm" in to_markdown(rep)


def test_compare_retention_uses_the_halves():
    forgetful = dict(RET_BASE, a=[True, True, False, False], c=[True, True, False, False])
    df = _synthetic({"base": (RET_BASE, BASE_SN), "M1": (forgetful, BASE_SN)})
    r = {m["metric"]: m for m in compare(df, "base", "M1", n_bootstrap=300)["metrics"]}["retention_success"]
    assert r["n_baseline_solved_tasks"] == 2 and r["selection_rollouts"] == 2
    assert r["baseline"]["value"] == pytest.approx(0.5) and r["baseline"]["n"] == 4
    assert r["model"]["value"] == 0 and r["difference"]["value"] == pytest.approx(-0.5)
    one = {t: [v[0]] for t, v in RET_BASE.items()}
    df1 = _synthetic({"base": (one, BASE_SN), "M": (one, BASE_SN)})
    r1 = {m["metric"]: m for m in compare(df1, "base", "M")["metrics"]}["retention_success"]
    assert r1["p_value"] is None and r1["model"]["value"] is None and "rollouts_per_task = 1" in r1["test"]["reason"]


def test_compare_unpaired_when_units_differ_uses_fisher():
    df = _synthetic({"base": (_tasks({"a": 4, "b": 0}), BASE_SN), "M": (_tasks({"c": 0, "d": 0}), BASE_SN)})
    rep = compare(df, "base", "M")
    os_ = {m["metric"]: m for m in rep["metrics"]}["overall_success"]
    assert not os_["test"]["paired"] and "Fisher" in os_["test"]["name"]
    from scipy import stats as st

    assert os_["p_value"] == pytest.approx(st.fisher_exact([[0, 8], [4, 4]]).pvalue)


def test_compare_all_and_unknown_model():
    df = _synthetic({"base": (BASE_OV, BASE_SN), "A": (BASE_OV, BASE_SN), "B": (BASE_OV, BASE_SN)})
    reps = compare_all(df)
    assert sorted(reps) == ["A", "B"] and all(r["baseline"] == "base" for r in reps.values())
    assert "A vs base" in to_markdown(reps)
    with pytest.raises(ValueError, match="nope"):
        compare(df, "base", "nope")


def test_crafter_family_metrics_progression_and_score():
    """Crafter rollouts: progression, Crafter's score and per-achievement rates, as defined."""
    from teachable.envs.crafter.rules import ACHIEVEMENTS
    from teachable.evaluation_tables import family_metrics_table
    from teachable.envs.crafter.metrics import crafter_score

    df = _synthetic({"base": (BASE_OV, {})}).assign(env_id="CrafterReward-v1")
    unlocked = [list(ACHIEVEMENTS[: (i % 5)]) for i in range(len(df))]  # 0..4 achievements, crafter's order
    df = df.assign(achievements=unlocked, progression=[len(u) / 22 for u in unlocked])
    t = family_metrics_table(df, 0.95, n_bootstrap=500).set_index("metric")
    assert len(t) == 2 + 22 and (t["n"] == len(df)).all() and (t["n_tasks"] == 6).all()
    assert t.loc["progression", "value"] == pytest.approx(np.mean([len(u) for u in unlocked]) / 22)
    rates = [100 * np.mean([a in u for u in unlocked]) for a in ACHIEVEMENTS]
    assert t.loc["crafter_score", "value"] == pytest.approx(crafter_score(rates))
    assert t.loc["success:collect_coal", "value"] == pytest.approx(rates[0] / 100)
    assert t.loc["success:wake_up", "value"] == 0  # never unlocked here: counts as 0 in the score
    for m in ("progression", "crafter_score", "success:collect_coal"):
        assert t.loc[m, "lo"] <= t.loc[m, "value"] <= t.loc[m, "hi"]
    assert crafter_score([100.0] * 22) == pytest.approx(100) and crafter_score([0.0] * 22) == 0
