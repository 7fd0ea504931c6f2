"""LoRA training (training.py), phase 1B (microtrain.py) and the phase 2 matrix data (matrix.py),
on a tiny random Llama with a BPE trained on real BabyAI texts. Fast, CPU, no pipeline."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as st

from teachable.constants import QUADRANTS, RUN_IDS
from teachable.envs.babyai import BabyAITextEnv
from teachable.labeling import snapshot_context
from teachable.matrix import (
    plan_training, run_spec, run_training_set, train_matrix_run, training_examples, training_summary,
)  # fmt: skip
from teachable.splits import apply_heldout, heldout_record, heldout_split
from teachable.microtrain import (
    RESULT_COLUMNS, SHARD_COLUMNS, correlation_report, gate_verdict, partial_spearman, run_micro_training,
    select_gate_sample, select_micro_snapshots, select_uniform,
    success_intervals,
)  # fmt: skip
from teachable.training import (
    LoraTrainer, latest_checkpoint, optimizer_steps, sft_config, supervision_example, train_lora,
)  # fmt: skip

ENV = "BabyAI-GoToLocal-v0"
LORA = dict(r=4, alpha=8, dropout=0.0, target_modules="all-linear", lr=2e-2, steps=6, batch_size=1, seed=0,
            save_steps=100)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tests on a shared 2-core box: one torch thread (configure_threads honours OMP)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(old)


@pytest.fixture(scope="module")
def demos():
    from teachable.student_init import collect_demonstrations

    return collect_demonstrations(ENV, range(6), 12, 4, 0.0, 0.0, np.random.default_rng(0), explore_prob=0.3)


@pytest.fixture(scope="module")
def tiny_dir(tiny_student):
    return tiny_student


@pytest.fixture(scope="module")
def trainer(tiny_dir):
    from teachable.policies.hf import HFPolicy

    return LoraTrainer(tiny_dir, policy=HFPolicy(tiny_dir, device="cpu", dtype="float32",
                                                 system_prompt=BabyAITextEnv.SYSTEM_PROMPT))  # fmt: skip


def _labeled(demos, n: int = 22) -> pd.DataFrame:
    """Labeled-snapshot rows (the columns supervision needs) from oracle demo states."""
    rows = []
    for i, d in enumerate(demos[:n]):
        ctx = d.context
        wrong = next(a for a in ctx.valid_actions if a != d.target)
        rows.append(dict(
            snapshot_id=f"{ENV}/s{i:03d}", task_id=f"{ENV}:{i // 2}", episode_id=f"A-{i // 2}-1", step_idx=i % 2,
            quadrant=QUADRANTS[(i // 2) % 4] if i < 19 else QUADRANTS[0],
            instruction=ctx.instruction, observation=ctx.observation, history=list(ctx.history),
            valid_actions=list(ctx.valid_actions), student_action=wrong, suggested_action=d.target,
            diagnosis="the target is not where this leads.", route_net=("demo", "hint", "contrast")[i % 3],
            ELP_net=(i % 5) / 5, p_policy=(i % 4) / 4, L_local=(i % 3) / 3, U=(i % 7) / 7,
        ))  # fmt: skip
    return pd.DataFrame(rows)


def _p(policy, ctx, action) -> float:
    return float(np.exp(policy.action_logprobs([ctx])[0][list(ctx.valid_actions).index(action)]))


# ------------------------------------------------------------------------------------ formats
def test_supervision_formats_differ_only_in_the_prompt_patch(demos):
    row = _labeled(demos).iloc[1]
    demo, hint, contrast = (supervision_example(row, f) for f in ("demo", "hint", "contrast"))
    assert demo[0] == snapshot_context(row) and demo[0].patch is None
    assert hint[0].patch == row["diagnosis"] and row["suggested_action"] not in hint[0].patch
    assert row["student_action"] in contrast[0].patch and row["suggested_action"] in contrast[0].patch
    assert demo[1] == hint[1] == contrast[1] == row["suggested_action"]
    with pytest.raises(ValueError):
        supervision_example(row, "placebo")
    bad = row.copy()
    bad["suggested_action"] = "fly away"
    with pytest.raises(ValueError, match="not one of its valid actions"):
        supervision_example(bad, "demo")


# ------------------------------------------------------------------------------------ training
def test_completion_only_loss_masks_every_prompt_token(trainer, demos, tmp_path):
    pol = trainer.policy
    examples = [(d.context, d.target) for d in demos[:3]]
    tr, encoded = trainer.build_trainer(examples, dict(LORA, batch_size=3), tmp_path / "ck")
    try:
        batch = next(iter(tr.get_train_dataloader()))
    finally:
        trainer.release()
    for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist()):
        ex = next(e for e in examples if ids[: len(pol.prompt_ids([e[0]])[0])] == pol.prompt_ids([e[0]])[0])
        p = pol.prompt_ids([ex[0]])[0]
        c = pol.candidate_ids(ex[1])
        assert ids[: len(p) + len(c)] == p + c  # the sequence HFPolicy scores (padding after)
        assert all(t == -100 for t in labels[: len(p)])  # prompt masked
        assert labels[len(p) : len(p) + len(c)] == c  # the action + end of turn is the target
        assert all(t == -100 for t in labels[len(p) + len(c) :])  # padding masked
    assert all(sum(e["completion_mask"]) == len(pol.candidate_ids(t)) for e, (_, t) in zip(encoded, examples))


def test_one_demo_example_raises_target_probability_and_adapter_loads(trainer, tiny_dir, demos, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from teachable.policies.hf import HFPolicy

    ctx, target = demos[4].context, demos[4].target
    pol = trainer.policy
    before = _p(pol, ctx, target)
    base_scores = pol.action_logprobs([demos[7].context])[0]
    cfg = dict(LORA, steps=10)
    log = train_lora(tiny_dir, [(ctx, target)], cfg, tmp_path / "run", trainer=trainer, progress=False)
    out = tmp_path / "run"
    assert (out / "adapter" / "adapter_config.json").is_file() and not (out / "checkpoints").exists()
    assert json.loads((out / "train_log.json").read_text()) == json.loads(json.dumps(log))
    assert log["examples"] == 1 and log["optimizer_steps"] == 10 and len(log["loss_curve"]) == 10
    n_tok = len(pol.prompt_ids([ctx])[0]) + len(pol.candidate_ids(target))
    assert log["epochs"] == 10 and log["tokens_trained"] == 10 * n_tok
    assert log["final_loss"] < log["loss_curve"][0][1] and log["trainable_params"] > 0
    # the shared base model is left without LoRA layers
    assert _p(pol, ctx, target) == pytest.approx(before, abs=1e-6)
    # HF peft format: loads with PeftModel, and the scorer sees the change
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), out / "adapter")
    assert any("lora_" in n for n, _ in peft_model.named_parameters())
    tuned = HFPolicy(tiny_dir, adapter_dir=out / "adapter", device="cpu", dtype="float32", system_prompt=BabyAITextEnv.SYSTEM_PROMPT)
    assert np.log(_p(tuned, ctx, target)) > np.log(before) + 1.0  # e times more likely, at least
    assert not np.allclose(tuned.action_logprobs([demos[7].context])[0], base_scores)
    # merged into the weights (as evaluation loads it): the same scores, and no adapter swap after
    merged = HFPolicy(tiny_dir, adapter_dir=out / "adapter", device="cpu", dtype="float32", merge_adapter=True, system_prompt=BabyAITextEnv.SYSTEM_PROMPT)
    ctxs = [d.context for d in demos[:12]]
    for a, b in zip(merged.action_logprobs(ctxs), tuned.action_logprobs(ctxs)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not any("lora_" in n for n, _ in merged.model.named_parameters())
    with pytest.raises(RuntimeError, match="merged"):
        merged.load_adapter(None)


def test_same_seed_same_adapter(trainer, tiny_dir, demos, tmp_path):
    from safetensors.torch import load_file

    ex = [(d.context, d.target) for d in demos[:3]]
    cfg = dict(LORA, steps=3, dropout=0.1, batch_size=2)
    a = train_lora(tiny_dir, ex, cfg, tmp_path / "a", trainer=trainer, progress=False)
    b = train_lora(tiny_dir, ex, cfg, tmp_path / "b", trainer=trainer, progress=False)
    assert a["loss_curve"] == b["loss_curve"]
    wa, wb = (load_file(tmp_path / x / "adapter" / "adapter_model.safetensors") for x in "ab")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class _Killed(Exception):
    pass


def _kill_after_first_save():
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise _Killed(state.global_step)

    return Kill()


def test_killed_run_resumes_from_its_last_checkpoint(trainer, tiny_dir, demos, tmp_path):
    from safetensors.torch import load_file

    ex = [(d.context, d.target) for d in demos[:3]]
    cfg = dict(LORA, steps=4, save_steps=2, batch_size=2, dropout=0.1)
    out = tmp_path / "run"
    with pytest.raises(_Killed):
        train_lora(tiny_dir, ex, cfg, out, trainer=trainer, progress=False, callbacks=[_kill_after_first_save()])
    assert latest_checkpoint(out / "checkpoints").name == "checkpoint-2" and not (out / "adapter").exists()
    log = train_lora(tiny_dir, ex, cfg, out, trainer=trainer, progress=False)
    assert log["resumed_from"] == "checkpoint-2" and log["optimizer_steps"] == 4
    assert [s for s, _ in log["loss_curve"]] == [1, 2, 3, 4]
    assert not (out / "checkpoints").exists()
    ref = train_lora(tiny_dir, ex, cfg, tmp_path / "ref", trainer=trainer, progress=False)
    assert ref["resumed_from"] is None
    assert np.allclose([v for _, v in log["loss_curve"]], [v for _, v in ref["loss_curve"]], atol=1e-5)
    w, wr = (load_file(d / "adapter" / "adapter_model.safetensors") for d in (out, tmp_path / "ref"))
    assert all(torch.allclose(w[k], wr[k], atol=1e-5) for k in w)
    # checkpoints of other examples/config are never resumed
    with pytest.raises(_Killed):
        train_lora(tiny_dir, ex, cfg, out, trainer=trainer, progress=False, callbacks=[_kill_after_first_save()])
    other = train_lora(tiny_dir, ex, dict(cfg, lr=1e-2), out, trainer=trainer, progress=False)
    assert other["resumed_from"] is None and [s for s, _ in other["loss_curve"]] == [1, 2, 3, 4]


def test_lora_config_keys_are_exact(trainer, demos, tmp_path):
    ex = [(demos[0].context, demos[0].target)]
    with pytest.raises(KeyError, match="unknown keys"):
        train_lora(None, ex, dict(LORA, warmup=3), tmp_path, trainer=trainer)
    with pytest.raises(KeyError, match="missing keys"):
        train_lora(None, ex, {k: v for k, v in LORA.items() if k != "seed"}, tmp_path, trainer=trainer)
    with pytest.raises(KeyError, match="exactly one of"):
        train_lora(None, ex, dict(LORA, epochs=2), tmp_path, trainer=trainer)


def test_sft_config_shares_the_run_settings_and_checkpoints_only_inside_the_run(tmp_path):
    run = dict(steps=10, lr=1e-3, batch_size=4, seed=7, on_cuda=False, progress=False)
    args = sft_config(tmp_path, save_steps=3, **run, lr_scheduler_type="cosine", weight_decay=0.01)
    assert (args.max_steps, args.learning_rate, args.per_device_train_batch_size, args.seed, args.data_seed) == (
        10, 1e-3, 4, 7, 7)
    assert args.completion_only_loss and args.use_cpu and args.disable_tqdm and not args.packing
    assert (args.lr_scheduler_type, args.weight_decay) == ("cosine", 0.01)  # the path's own settings
    assert (args.save_strategy, args.save_steps, args.save_total_limit) == ("steps", 3, 1)
    for save_steps in (0, 10):  # none, or not before the run ends
        assert sft_config(tmp_path, save_steps=save_steps, **run).save_strategy == "no"


def test_epochs_give_equal_optimizer_steps_for_equal_budgets(trainer, tiny_dir, demos, tmp_path):
    assert optimizer_steps(4, 16, 8) == 8 and optimizer_steps(4, 500, 8) == 250 and optimizer_steps(2.5, 3, 2) == 4
    cfg = {k: v for k, v in LORA.items() if k != "steps"} | {"epochs": 2, "batch_size": 2}
    logs = [train_lora(tiny_dir, [(d.context, d.target) for d in demos[i : i + 3]], cfg, tmp_path / str(i),
                       trainer=trainer, progress=False) for i in (0, 5)]  # fmt: skip
    for log in logs:
        assert log["examples"] == 3 and log["epochs"] == 2 and log["optimizer_steps"] == optimizer_steps(2, 3, 2) == 3
        assert log["tokens_trained"] > 0 and len(log["loss_curve"]) == 3


# ------------------------------------------------------------------------------------ phase 2 data
P2 = {"heldout_frac": 0.25, "min_heldout_tasks": 1, "budget": None, "min_budget": 2,
      "lora": {k: v for k, v in LORA.items() if k != "steps"} | {"epochs": 2, "batch_size": 2}}  # fmt: skip


def test_heldout_split_keeps_min_heldout_tasks_per_stratum_and_reports_a_short_one():
    sizes = dict(zip(QUADRANTS, (6, 3, 1, 2)))  # tasks per stratum
    lab = pd.DataFrame([{"snapshot_id": f"{q}/t{t}/s{i}", "task_id": f"{q}/t{t}", "quadrant": q}
                        for q, n in sizes.items() for t in range(n) for i in range(2)])  # fmt: skip

    def held(split):
        return {q: split.loc[split.heldout & (split.quadrant == q), "task_id"].nunique() for q in QUADRANTS}

    one, two = heldout_split(lab, 0.2, 0, min_tasks=1), heldout_split(lab, 0.2, 0, min_tasks=2)
    assert list(held(one).values()) == [1, 1, 0, 1]
    assert list(held(two).values()) == [2, 2, 0, 1]  # Q3: its only task trains; Q4: one of two stays for training
    rec = heldout_record(two, 0.2, 0, min_tasks=2)
    assert rec["min_heldout_tasks"] == 2 and set(rec["short_strata"]) == {"Q3_lowU_lowL", "Q4_lowU_highL"}
    assert "holds out 1 task(s) < phase2.min_heldout_tasks=2" in rec["short_strata"]["Q4_lowU_highL"]
    assert heldout_record(one, 0.2, 0, min_tasks=1)["short_strata"] == {"Q3_lowU_lowL": (
        "holds out 0 task(s) < phase2.min_heldout_tasks=1: the stratum has 1 task(s), of which one stays for training")}
    _, plan = plan_training(lab, {"seed": 0, "phase2": {**P2, "heldout_frac": 0.2, "min_heldout_tasks": 2},
                                  "phase5": {"budget": 3}})  # fmt: skip
    assert plan["short_strata"] == rec["short_strata"]
    with pytest.raises(ValueError, match="min_heldout_tasks"):
        heldout_split(lab, 0.2, 0, min_tasks=0)


def test_heldout_split_is_by_task_stratified_and_deterministic(demos):
    lab = _labeled(demos)
    a = heldout_split(lab, 0.25, seed=3)
    b = heldout_split(lab.sample(frac=1.0, random_state=1), 0.25, seed=3)
    assert set(a.loc[a.heldout, "snapshot_id"]) == set(b.loc[b.heldout, "snapshot_id"])
    c = heldout_split(lab, 0.25, seed=4)
    assert set(a.loc[a.heldout, "snapshot_id"]) != set(c.loc[c.heldout, "snapshot_id"])
    # no task on both sides; every stratum of >= 2 tasks holds out at least one task
    assert not set(a.loc[a.heldout, "task_id"]) & set(a.loc[~a.heldout, "task_id"])
    for q, g in a.groupby("quadrant"):
        if g["task_id"].nunique() >= 2:
            assert g.loc[g.heldout, "task_id"].nunique() >= 1


def test_plan_trains_equal_budgets_and_skips_a_too_small_quadrant(demos):
    lab = _labeled(demos)
    heldout, plan = plan_training(lab, {"seed": 3, "phase2": P2, "phase5": {"budget": 3}})
    split = apply_heldout(lab, heldout)
    assert set(heldout["snapshot_ids"]) == set(split.loc[split.heldout, "snapshot_id"])
    assert set(heldout["task_ids"]) == set(split.loc[split.heldout, "task_id"])
    k = plan["budget"]
    assert k == min((~split.heldout & (split.quadrant == q)).sum() for q in QUADRANTS)
    steps = {r: v["optimizer_steps"] for r, v in plan["runs"].items() if v["trained"] and r != "B2_all"}
    # the anchor (phase2.anchor.share, the schema's 0.5 here) adds k pairs: its steps are counted too
    assert plan["anchor_share"] == 0.5 and set(steps.values()) == {optimizer_steps(2, 2 * k, 2)} and len(steps) == 13
    assert plan["runs"]["B2_all"]["examples"] == (~split.heldout).sum() == plan["n_train"]
    held = set(heldout["snapshot_ids"])
    sets = {}
    for rid in RUN_IDS:
        q, fmt, kind = run_spec(rid)
        if kind == "traces":
            with pytest.raises(ValueError, match="trains on phase 0's traces"):
                run_training_set(split, rid, k, seed=3)
            continue
        ts = run_training_set(split, rid, k, seed=3)
        assert not held & set(ts["snapshot_id"]) and not set(heldout["task_ids"]) & set(ts["task_id"])
        assert ts.equals(run_training_set(split, rid, k, seed=3))
        if q is not None:
            assert (ts["quadrant"] == q).all()
        sets[rid] = tuple(ts["snapshot_id"])
    for q in QUADRANTS:  # the three formats of a quadrant train on the same snapshots
        assert sets[f"{q}_demo"] == sets[f"{q}_hint"] == sets[f"{q}_contrast"]
    # a missing (empty) quadrant: its runs are skipped with the reason, the others still train
    no_q3 = lab[lab.quadrant != "Q3_lowU_lowL"]
    _, plan2 = plan_training(no_q3, {"seed": 3, "phase2": P2, "phase5": {"budget": 3}})
    assert set(plan2["skipped_runs"]) == {f"Q3_lowU_lowL_{f}" for f in ("demo", "hint", "contrast")} | {"B3_traces"}
    assert "0 train snapshot(s), under phase2.min_budget=2" in plan2["skipped_runs"]["Q3_lowU_lowL_demo"]
    assert "B1_uniform" in plan2["trained_runs"] and len(plan2["trained_runs"]) == 11
    # too few candidates for Phase 5: skipped with the reason
    _, plan3 = plan_training(lab, {"seed": 3, "phase2": P2, "phase5": {"budget": 500}})
    assert not plan3["selection"]["run"] and "phase5.budget=500" in plan3["selection"]["reason"]
    assert len(RUN_IDS) == 15 and RUN_IDS[-3:] == ("B1_uniform", "B2_all", "B3_traces")
    assert "without phase 0's rollouts" in plan["skipped_runs"]["B3_traces"]
    assert run_spec("Q2_highU_lowL_contrast") == ("Q2_highU_lowL", "contrast", "quadrant")
    with pytest.raises(ValueError):
        run_spec("Q5_demo")


def test_a_heldout_task_in_training_is_an_error(demos):
    lab = _labeled(demos)
    heldout, _ = plan_training(lab, {"seed": 3, "phase2": P2, "phase5": {"budget": 3}})
    bad = dict(heldout, snapshot_ids=heldout["snapshot_ids"][1:])  # one snapshot of a held-out task moved back
    with pytest.raises(ValueError, match="held-out task"):
        apply_heldout(lab, bad)


def test_matrix_runs_write_audit_files_and_summary(trainer, tiny_dir, demos, tmp_path):
    from teachable.io import write_json, write_parquet

    lab = _labeled(demos)
    path = tmp_path / "labeled.parquet"
    write_parquet(lab, path)
    write_parquet(_rollouts(demos), tmp_path / "rollouts.parquet")  # the anchor's pairs, the drift states
    cfg = {"seed": 0, "env": {"id": ENV}, "student": {"device": "cpu", "dtype": "float32"}, "phase2": P2,
           "phase5": {"budget": 3}}  # fmt: skip
    heldout, plan = plan_training(lab, cfg)
    write_json(heldout, tmp_path / "heldout.json")
    write_json(plan, tmp_path / "plan.json")
    dirs = []
    for rid in ("Q1_highU_highL_hint", "B1_uniform", "B2_all"):
        d = tmp_path / rid
        log = train_matrix_run(rid, path, tmp_path / "heldout.json", tmp_path / "plan.json", tiny_dir, cfg, d,
                               progress=False, trainer=trainer, rollouts_path=tmp_path / "rollouts.parquet")  # fmt: skip
        ts = json.loads((d / "train_set.json").read_text())
        assert log["meta"]["run_id"] == rid and log["examples"] == ts["examples"] == len(ts["snapshot_ids"])
        assert log["optimizer_steps"] == plan["runs"][rid]["optimizer_steps"]
        assert not set(ts["snapshot_ids"]) & set(ts["heldout_snapshot_ids"]) and ts["heldout_snapshot_ids"]
        assert not set(ts["task_ids"]) & set(ts["heldout_task_ids"])
        assert (d / "adapter" / "adapter_config.json").is_file()
        dirs.append(d)
    s = training_summary(dirs, plan)
    assert s["equal_budgets"] and s["same_heldout_set"] and not s["heldout_leaks"]
    assert s["runs"]["Q1_highU_highL_hint"]["format"] == "hint" and s["runs"]["B2_all"]["examples"] > s["budget"]
    assert s["runs"]["B1_uniform"]["optimizer_steps"] == s["runs"]["Q1_highU_highL_hint"]["optimizer_steps"]
    assert set(s["missing_runs"]) == set(plan["trained_runs"]) - {"Q1_highU_highL_hint", "B1_uniform", "B2_all"}


def _rollouts(demos, n_tasks: int = 11) -> pd.DataFrame:
    """Phase 0 step rows (schemas.ROLLOUT_STEPS): per task an A episode that succeeds, one that
    fails, and a B (expert) episode; 3 steps each, contexts from oracle demo states."""
    rows = []
    for t in range(n_tasks):
        for exp, e, ok in (("A", 0, True), ("A", 1, False), ("B", 0, True)):
            for k in range(3):
                ctx = demos[(3 * t + k) % len(demos)].context
                rows.append(dict(
                    experiment=exp, episode_id=f"{exp}-{t}-{e}", task_id=f"{ENV}:{t}", env_id=ENV, seed=t,
                    step_idx=k, instruction=ctx.instruction, observation=ctx.observation,
                    valid_actions=list(ctx.valid_actions), history=list(ctx.history),
                    action=ctx.valid_actions[k % len(ctx.valid_actions)] if k < 2 or exp == "B" else "<invalid>",
                    source="student" if exp == "A" else "expert", action_prob=0.5, U=1.0, reward=0.0,
                    done=k == 2, episode_success=ok, episode_return=float(ok), episode_length=3, expert_error=None,
                ))  # fmt: skip
    return pd.DataFrame(rows)


def test_b3_traces_trains_on_the_students_kept_episodes_outside_heldout_tasks(trainer, tiny_dir, demos, tmp_path):
    from teachable.io import write_json, write_parquet
    from teachable.schemas import ROLLOUT_STEPS

    lab, roll = _labeled(demos), _rollouts(demos)
    write_parquet(lab, tmp_path / "labeled.parquet")
    write_parquet(roll, tmp_path / "rollouts.parquet")
    traces = {"experiment": "A", "source": "student", "success_only": True, "min_reward": None, "max_turns": None,
              "min_achievements": None}  # fmt: skip
    cfg = {"seed": 0, "env": {"id": ENV}, "student": {"device": "cpu", "dtype": "float32"},
           "phase2": P2 | {"traces": traces}, "phase5": {"budget": 3}}  # fmt: skip
    heldout, plan = plan_training(lab, cfg, rollouts=tmp_path / "rollouts.parquet")
    assert set(ROLLOUT_STEPS.names) == set(roll.columns)
    kept_tasks = sorted(set(roll["task_id"]) - set(heldout["task_ids"]))
    b3 = plan["runs"]["B3_traces"]
    # one successful A episode per task outside the held-out ones; its 3rd step is an invalid output
    assert heldout["task_ids"] and b3["trained"] and b3["examples"] == 2 * len(kept_tasks)
    assert b3["anchor_examples"] == b3["examples"]  # the schema's anchor share 0.5: as many anchor pairs
    assert b3["optimizer_steps"] == optimizer_steps(2, 2 * b3["examples"], 2) and "B3_traces" in plan["trained_runs"]
    assert plan["b3_traces_compute_ratio"] == pytest.approx(b3["examples"] / plan["budget"])
    write_json(heldout, tmp_path / "heldout.json")
    write_json(plan, tmp_path / "plan.json")
    d = tmp_path / "B3_traces"
    log = train_matrix_run("B3_traces", tmp_path / "labeled.parquet", tmp_path / "heldout.json",
                           tmp_path / "plan.json", tiny_dir, cfg, d, progress=False, trainer=trainer,
                           rollouts_path=tmp_path / "rollouts.parquet")  # fmt: skip
    ts = json.loads((d / "train_set.json").read_text())
    assert ts["kind"] == "traces" and ts["task_ids"] == kept_tasks and not ts["snapshot_ids"]
    assert sorted(ts["episode_ids"]) == sorted(f"A-{t.split(':')[1]}-0" for t in kept_tasks)
    assert log["examples"] == b3["examples"] and log["optimizer_steps"] == b3["optimizer_steps"]
    # a filter that keeps too little skips it with the reason
    few = cfg | {"phase2": P2 | {"traces": traces | {"max_turns": 2}}}
    _, plan2 = plan_training(lab, few, rollouts=tmp_path / "rollouts.parquet")
    assert "keeps 0 step(s) of 0 episode(s)" in plan2["skipped_runs"]["B3_traces"]
    with pytest.raises(ValueError, match="min-achievements needs the episode_achievements column"):
        plan_training(lab, cfg | {"phase2": P2 | {"traces": traces | {"min_achievements": 1}}},
                      rollouts=tmp_path / "rollouts.parquet")


def test_training_examples_follow_the_format(demos):
    lab = _labeled(demos)
    ex = training_examples(lab.iloc[:4], "hint")
    assert [t for _, t in ex] == lab["suggested_action"].iloc[:4].tolist()
    assert all(c.patch == lab["diagnosis"].iloc[0] for c, _ in ex)


# ------------------------------------------------------------------------------------ phase 1B
def test_select_micro_snapshots_per_quadrant(demos):
    lab = _labeled(demos)
    s = select_micro_snapshots(lab, 2, seed=0)
    assert s["quadrant"].value_counts().to_dict() == {q: 2 for q in QUADRANTS}
    assert s.equals(select_micro_snapshots(lab.iloc[::-1], 2, seed=0))
    big = select_micro_snapshots(lab, 100, seed=0)
    assert len(big) == len(lab)
    lab2 = lab.assign(heldout=lab.index % 2 == 0)
    assert not select_micro_snapshots(lab2, 100, seed=0)["heldout"].any()


def test_the_gate_sample_is_uniform_by_default(demos):
    lab = _labeled(demos)
    s = select_uniform(lab, 8, seed=0)
    assert len(s) == 8 and s.equals(select_uniform(lab.iloc[::-1], 8, seed=0))
    assert s["snapshot_id"].isin(select_uniform(lab, 12, seed=0)["snapshot_id"]).all()  # a prefix of one order
    assert s["quadrant"].value_counts().max() < 8  # drawn from all quadrants, whatever their sizes
    assert len(select_uniform(lab, 100, seed=0)) == len(lab)
    assert not select_uniform(lab.assign(heldout=lab.index % 2 == 0), 100, seed=0)["heldout"].any()
    assert select_gate_sample(lab, {"n_snapshots": 8}, 0).equals(s)
    assert select_gate_sample(lab, {"sample": "per_quadrant", "per_quadrant": 2}, 0).equals(
        select_micro_snapshots(lab, 2, seed=0))
    with pytest.raises(ValueError, match="phase1b.sample='stratified'"):
        select_gate_sample(lab, {"sample": "stratified"}, 0)


def test_run_micro_training_rows(trainer, tiny_dir):
    from teachable.envs import make_env

    env = make_env(ENV, max_steps=6)
    rows = []
    for seed in (0, 1):
        obs = env.restore(seed, ["turn left"])
        expert = env.expert_action()
        wrong = next(a for a in obs.valid_actions if a != expert)
        rows.append(dict(snapshot_id=f"{ENV}/m{seed}", env_id=ENV, seed=seed, actions=["turn left"],
                         instruction=obs.instruction, observation=obs.text, history=["turn left"],
                         valid_actions=list(obs.valid_actions), student_action=wrong, suggested_action=expert,
                         diagnosis=env.expert_advice(wrong).diagnosis, quadrant=QUADRANTS[seed],
                         ELP_net=0.1 * seed, route_net=("demo", "hint")[seed], task_id=f"{ENV}:{seed}",
                         ELP_net_naive=0.2, p_policy=0.5, L_local=0.1, U=1.0))  # fmt: skip
    cfg = {"seed": 0, "env": {"id": ENV, "history_len": 4, "max_steps": 6},
           "student": {"temperature": 1.0, "batch_size": 8, "device": "cpu", "dtype": "float32"},
           "phase1b": {"n_validation_rollouts": 3, "lora": dict(LORA, steps=2)}}  # fmt: skip
    res = run_micro_training(pd.DataFrame(rows), tiny_dir, cfg, progress=False, policy=trainer.policy)
    assert list(res.columns[: len(SHARD_COLUMNS)]) == list(SHARD_COLUMNS) and len(res) == 2
    assert (res["before_n"] == 3).all() and (res["after_n"] == 3).all()
    assert [sum(y) for y in res["y_before"]] == res["before_k"].tolist() and all(len(y) == 3 for y in res["y_after"])
    res = success_intervals(res, 0.95)  # what micro_merge adds
    assert list(res.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert np.allclose(res["delta"], res["after"] - res["before"])
    assert ((res["before_lo"] <= res["before"]) & (res["before"] <= res["before_hi"])).all()
    assert res["route"].tolist() == ["demo", "hint"] and (res["train_seconds"] > 0).all()
    assert (res["p_policy"] == 0.5).all() and res["task_id"].tolist() == [f"{ENV}:0", f"{ENV}:1"]
    assert trainer.policy.model is trainer.policy.base_model  # adapters removed after each snapshot


def _report_df(x, y, p_policy=None):
    q = np.array(QUADRANTS)[np.arange(len(x)) % 4]
    pp = np.linspace(0.1, 0.9, len(x)) if p_policy is None else p_policy
    return pd.DataFrame(dict(ELP_net=x, delta=y, quadrant=q, route=np.where(np.arange(len(x)) % 2, "demo", "hint"),
                             before=0.5, after=0.5 + np.asarray(y), p_policy=pp, L_local=np.cos(np.arange(len(x))),
                             U=np.sin(np.arange(len(x)))))  # fmt: skip


P1B = dict(alpha=0.05, rho_threshold=0.3, bootstrap_resamples=300, permutation_resamples=300, gate="stop")


def test_correlation_report_matches_scipy_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(size=16)
    y = np.round(0.8 * x + 0.5 * rng.normal(size=16), 1)
    df = _report_df(x, y)
    rep = correlation_report(df, P1B, seed=1)
    assert rep["rho"] == pytest.approx(st.spearmanr(x, y).statistic)
    assert rep["rho_ci"][0] <= rep["rho"] <= rep["rho_ci"][1]
    assert 0 < rep["p_value"] <= 1 and rep["n"] == 16
    assert rep["pass"] == (rep["rho_ci"][0] > 0 and rep["rho"] >= 0.3) and rep["pass"] and rep["verdict"] == "pass"
    assert rep == correlation_report(df, P1B, seed=1)
    for q, g in df.groupby("quadrant"):
        pq = rep["per_quadrant"][q]
        assert pq["n"] == len(g) and pq["mean"] == pytest.approx(g["delta"].mean())
        assert pq["lo"] <= pq["mean"] <= pq["hi"] and pq["method"] == "t"
    anti = correlation_report(_report_df(x, -y), P1B, seed=1)
    assert not anti["pass"] and anti["verdict"] == "fail" and anti["blocks_downstream"] and anti["p_value"] > 0.5
    # the trivial predictors, scored the same way; headroom = 1 - p_policy
    for name, col in (("L_local", df["L_local"]), ("headroom", 1 - df["p_policy"]), ("U", df["U"])):
        b = rep["baselines"][name]
        assert b["rho"] == pytest.approx(st.spearmanr(col, y).statistic)
        assert b["rho_ci"][0] <= b["rho"] <= b["rho_ci"][1]
    for route, g in df.groupby("route"):
        assert rep["per_route"][route]["rho"] == pytest.approx(st.spearmanr(g["ELP_net"], g["delta"]).statistic)
    assert rep["partial_rho"]["given"] == "p_policy" and np.isfinite(rep["partial_rho"]["p_value"])
    assert rep["partial_rho_L_local"]["rho"] == pytest.approx(partial_spearman(x, y, df["L_local"]))
    diff = rep["rho_minus_L_local"]
    assert diff["rho"] == pytest.approx(rep["rho"] - rep["baselines"]["L_local"]["rho"])
    assert diff["rho_ci"][0] <= diff["rho"] <= diff["rho_ci"][1] and diff["p_value"] is None
    assert rep["sample"] == "uniform" and rep["reliability"]["delta"]["reason"]  # no per-rollout outcomes here


def test_the_gate_has_three_outcomes_and_one_rule():
    from teachable.gate import gate_rule

    assert gate_rule(0.35, 0.05, 0.6, 0.3) == "pass"  # lower bound > 0 and rho >= the threshold
    assert gate_rule(0.1, -0.2, 0.29, 0.3) == "fail"  # the interval excludes the threshold
    assert gate_rule(0.25, 0.05, 0.5, 0.3) == "undetermined"  # positive, but not as strong as required
    assert gate_rule(0.4, -0.1, 0.7, 0.3) == "undetermined"  # strong, but the interval reaches 0
    assert gate_rule(float("nan"), None, None, 0.3) == "undetermined"
    rng = np.random.default_rng(3)
    x = rng.normal(size=10)
    small = correlation_report(_report_df(x, np.round(0.3 * x + rng.normal(size=10), 1)), P1B, seed=0)
    assert small["verdict"] == "undetermined" and not small["pass"] and "cannot decide" in small["reason"]
    assert "[" in small["reason"]  # the interval is shown
    with pytest.raises(ValueError, match="undetermined"):  # gate "stop": not shown to pass stops the downstream
        gate_verdict(small, "stop", "cpt_correlation.json")
    warn = gate_verdict(small, "warn", "cpt_correlation.json")
    assert warn["verdict"] == "undetermined" and warn["pass"] is False
    per_q = correlation_report(_report_df(x, x), dict(P1B, sample="per_quadrant"), seed=0)
    assert per_q["sample"] == "per_quadrant" and per_q["weighting"].startswith("unweighted")


def test_gate_reliability_of_the_sample_and_attenuation():
    rng = np.random.default_rng(4)
    n = 40
    x = rng.normal(size=n)
    before = (rng.random((n, 16)) < 0.5).astype(float)
    after = (rng.random((n, 16)) < np.clip(0.5 + 0.2 * x, 0, 1)[:, None]).astype(float)
    df = _report_df(x, after.mean(1) - before.mean(1)).assign(snapshot_id=[f"s{i}" for i in range(n)],
                                                               y_before=list(before), y_after=list(after))
    rep = correlation_report(df, P1B, seed=0, reliability_floor=0.5)["reliability"]
    d = rep["delta"]
    assert np.isfinite(d["reliability"]) and d["lo"] <= d["reliability"] <= d["hi"]
    assert d["below_floor"] == (d["reliability"] < 0.5) and rep["labels"] == {}  # no labeled rows given


def test_partial_rho_removes_what_headroom_explains():
    rng = np.random.default_rng(2)
    p = rng.random(200)
    x = 1 - p + 0.05 * rng.normal(size=200)  # an ELP that is only headroom
    y = 1 - p + 0.05 * rng.normal(size=200)  # a delta that is only headroom
    assert st.spearmanr(x, y).statistic > 0.8
    rep = correlation_report(_report_df(x, y, p_policy=p), P1B, seed=0)
    assert abs(rep["partial_rho"]["rho"]) < 0.2 and rep["adds_beyond_headroom"] is False
    # = the correlation of the least-squares residuals of the ranks on the ranks of p
    rx, ry, rz = (st.rankdata(v) for v in (x, y, p))
    z = np.c_[np.ones(200), rz]
    res = [r - z @ np.linalg.lstsq(z, r, rcond=None)[0] for r in (rx, ry)]
    assert partial_spearman(x, y, p) == pytest.approx(np.corrcoef(*res)[0, 1])


def test_correlation_report_undefined_cases_are_nan_never_fabricated():
    x = np.linspace(0, 1, 8)
    for df, why in ((_report_df(x, np.zeros(8)), "constant"), (_report_df(x[:2], x[:2]), "< 3")):
        rep = correlation_report(df, P1B, seed=0)
        assert np.isnan(rep["rho"]) and np.isnan(rep["p_value"]) and all(np.isnan(rep["rho_ci"]))
        assert rep["pass"] is False and why in rep["reason"]
