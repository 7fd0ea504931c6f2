"""The anchor (teachable.anchor: the training set's composition), the drift and the target
marginal, and their place in a Phase 2 run's logs. Fast, CPU, a tiny student."""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd
import pytest

from teachable.anchor import (
    anchor_count, anchor_examples, anchor_pool, drift_contexts, drift_kl, kl_rows, marginal_text, run_steps,
    step_ids, student_steps, target_marginal,
)  # fmt: skip
from teachable.training import optimizer_steps

ENV = "BabyAI-GoToLocal-v0"


def _steps(n_tasks: int = 6, n_steps: int = 5) -> pd.DataFrame:
    rows = []
    for t in range(n_tasks):
        for k in range(n_steps):
            rows.append(dict(episode_id=f"A-{t}-0", task_id=f"{ENV}:{t}", step_idx=k, instruction="go to the box",
                             observation=f"obs {t} {k}", history=[], valid_actions=["turn left", "go forward"],
                             action=("turn left", "go forward")[(t + k) % 2]))  # fmt: skip
    s = pd.DataFrame(rows)
    return s.assign(step_id=step_ids(s))


def test_anchor_count_makes_the_configured_share_of_the_training_set():
    for n, share in ((12, 0.5), (72, 0.25), (16, 0.75), (5, 0.0)):
        a = anchor_count(n, share)
        assert abs(a / (n + a) - share) <= 0.5 / (n + a) + 1e-12
    assert anchor_count(12, 0.5) == 12 and anchor_count(12, 0.0) == 0
    with pytest.raises(ValueError, match="phase2.anchor.share=1"):
        anchor_count(12, 1)
    # the optimizer steps cover the anchor too: equal for equal budgets
    assert run_steps(4, 12, 8, 0.5) == optimizer_steps(4, 24, 8) == 12 and run_steps(4, 12, 8, 0) == 6


def test_the_pool_leaves_out_heldout_tasks_and_every_labeled_snapshot_state():
    steps = _steps()
    labeled = pd.DataFrame({"episode_id": ["A-1-0", "A-2-0"], "step_idx": [3, 0]})
    pool = anchor_pool(steps, [f"{ENV}:0"], labeled)
    assert not (pool["task_id"] == f"{ENV}:0").any()
    assert {"A-1-0/t3", "A-2-0/t0"}.isdisjoint(pool["step_id"]) and len(pool) == 5 * 5 - 2


def test_the_draw_is_the_same_for_every_run_and_a_larger_run_extends_it():
    pool = anchor_pool(_steps(), [], pd.DataFrame({"episode_id": [], "step_idx": []}))
    a, ids_a = anchor_examples(pool, 4, 0.5, seed=0)
    b, ids_b = anchor_examples(pool, 4, 0.5, seed=0)
    c, ids_c = anchor_examples(pool, 8, 0.5, seed=0)
    assert ids_a == ids_b and ids_c[:4] == ids_a and len(ids_c) == 8 and len(set(ids_c)) == 8
    assert ids_a != anchor_examples(pool, 4, 0.5, seed=1)[1]  # the seed decides the draw
    by_id = pool.set_index("step_id")
    for (ctx, action), sid in zip(a, ids_a):  # each pair is the student's own action at its own state
        assert action == by_id.loc[sid, "action"] and ctx.observation == by_id.loc[sid, "observation"]
    assert anchor_examples(pool, 4, 0.0, seed=0) == ([], [])
    with pytest.raises(ValueError, match="asks for 300 anchor pairs, the pool holds 30"):
        anchor_examples(pool, 100, 0.75, seed=0)


def test_drift_states_are_the_heldout_tasks_steps_fixed_by_the_seed():
    steps = _steps()
    held = [f"{ENV}:4", f"{ENV}:5"]
    d = drift_contexts(steps, held, 6, seed=0)
    assert len(d) == 6 and set(d["task_id"]) <= set(held)
    assert d["step_id"].tolist() == drift_contexts(steps, held, 6, seed=0)["step_id"].tolist()
    assert len(drift_contexts(steps, held, 100, seed=0)) == 10


def test_kl_is_zero_for_the_base_itself_and_matches_its_definition():
    p = np.log(np.array([0.5, 0.25, 0.25]))
    q = np.log(np.array([0.25, 0.5, 0.25]))
    assert kl_rows([p], [p])[0] == pytest.approx(0.0)
    assert kl_rows([p, q], [q, p]).tolist() == pytest.approx([0.25 * math.log(2)] * 2)
    d = drift_kl([p, p, q, q], [q, p, p, q], ["t0", "t0", "t1", "t1"], seed=0)
    assert d["kl"] == pytest.approx(0.25 * math.log(2) / 2, abs=1e-6) and d["n_states"] == 4 and d["n_tasks"] == 2
    assert d["lo"] <= d["kl"] <= d["hi"] and d["max"] == pytest.approx(0.25 * math.log(2), abs=1e-6)
    with pytest.raises(ValueError, match="2 base and 1 tuned"):
        kl_rows([p, q], [p])


def test_target_marginal_counts_each_action_most_frequent_first():
    m = target_marginal(["turn left", "go forward", "turn left", "turn right", "turn left"])
    assert m == {"turn left": 3, "go forward": 1, "turn right": 1} and list(m)[0] == "turn left"
    assert marginal_text(m) == "turn left 3 (60%), go forward 1 (20%), turn right 1 (20%)"
    assert marginal_text({}) == "none"


# ------------------------------------------------------------------------------------ in a Phase 2 run
@pytest.fixture(scope="module")
def phase2(tmp_path_factory, tiny_student):
    """A plan and two matrix runs (a quadrant run, B1_uniform) of the same budget, anchored."""
    import test_training as tt

    from teachable.io import write_json, write_parquet
    from teachable.matrix import plan_training, train_matrix_run
    from teachable.policies.hf import HFPolicy
    from teachable.student_init import collect_demonstrations
    from teachable.training import LoraTrainer
    from teachable.envs.babyai import BabyAITextEnv

    tmp = tmp_path_factory.mktemp("anchor")
    demos = collect_demonstrations(ENV, range(6), 12, 4, 0.0, 0.0, np.random.default_rng(0), explore_prob=0.3)
    lab, roll = tt._labeled(demos), tt._rollouts(demos)
    write_parquet(lab, tmp / "labeled.parquet")
    write_parquet(roll, tmp / "rollouts.parquet")
    cfg = {"seed": 0, "env": {"id": ENV}, "student": {"device": "cpu", "dtype": "float32"},
           "phase2": tt.P2 | {"anchor": {"share": 0.5, "drift_states": 8}}, "phase5": {"budget": 3}}  # fmt: skip
    heldout, plan = plan_training(lab, cfg)
    write_json(heldout, tmp / "heldout.json")
    write_json(plan, tmp / "plan.json")
    trainer = LoraTrainer(tiny_student, policy=HFPolicy(tiny_student, device="cpu", dtype="float32",
                                                        system_prompt=BabyAITextEnv.SYSTEM_PROMPT))  # fmt: skip
    out = {}
    for rid in ("Q1_highU_highL_demo", "B1_uniform"):
        log = train_matrix_run(rid, tmp / "labeled.parquet", tmp / "heldout.json", tmp / "plan.json", tiny_student,
                               cfg, tmp / rid, progress=False, trainer=trainer,
                               rollouts_path=tmp / "rollouts.parquet")  # fmt: skip
        out[rid] = (log, json.loads((tmp / rid / "train_set.json").read_text()))
    return {"plan": plan, "heldout": heldout, "runs": out, "rollouts": roll, "labeled": lab}


def test_every_run_trains_on_its_targets_plus_the_same_anchor(phase2):
    plan, runs = phase2["plan"], phase2["runs"]
    (q_log, q_set), (b_log, b_set) = runs["Q1_highU_highL_demo"], runs["B1_uniform"]
    k = plan["budget"]
    assert plan["anchor_share"] == 0.5 and plan["runs"]["B1_uniform"]["anchor_examples"] == anchor_count(k, 0.5)
    for log, ts in runs.values():
        assert log["examples"] == k and log["anchor_examples"] == anchor_count(k, 0.5) == len(ts["anchor_step_ids"])
        assert log["optimizer_steps"] == run_steps(plan["epochs"], k, plan["batch_size"], 0.5)
        assert sum(log["target_marginal"].values()) == k and ts["target_marginal"] == log["target_marginal"]
        assert sum(log["anchor_marginal"].values()) == log["anchor_examples"]
    assert q_set["anchor_step_ids"] == b_set["anchor_step_ids"]  # identical across runs of one budget
    # the anchor is the student's own phase 0 steps, never a held-out task's, never a labeled state
    st = phase2["rollouts"].assign(step_id=step_ids(phase2["rollouts"])).set_index("step_id")
    held = set(phase2["heldout"]["task_ids"])
    labeled_states = set(step_ids(phase2["labeled"]))
    for sid in b_set["anchor_step_ids"]:
        assert st.loc[sid, "experiment"] == "A" and st.loc[sid, "source"] == "student"
        assert st.loc[sid, "task_id"] not in held and sid not in labeled_states


def test_each_run_logs_its_drift_at_the_fixed_heldout_states(phase2):
    for log, _ in phase2["runs"].values():
        d = log["drift"]
        assert d["n_states"] == 8 and d["kl"] > 0 and d["lo"] <= d["kl"] <= d["hi"]
    logs = [log for log, _ in phase2["runs"].values()]
    assert logs[0]["drift"]["n_tasks"] == logs[1]["drift"]["n_tasks"]


def test_student_steps_keep_the_students_valid_actions(tmp_path, phase2):
    from teachable.io import write_parquet

    write_parquet(phase2["rollouts"], tmp_path / "r.parquet")
    s = student_steps(tmp_path / "r.parquet")
    assert set(s["source"]) == {"student"} and "<invalid>" not in set(s["action"])
    assert s["step_id"].is_unique
