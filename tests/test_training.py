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

from teachable.labeling import QUADRANTS, snapshot_context
from teachable.matrix import (
    RUN_IDS, heldout_split, matrix_budget, run_spec, run_training_set, train_matrix_run, training_examples,
    training_summary,
)  # fmt: skip
from teachable.microtrain import RESULT_COLUMNS, correlation_report, run_micro_training, select_micro_snapshots
from teachable.training import LoraTrainer, latest_checkpoint, supervision_example, train_lora

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
def tiny_dir(tmp_path_factory, demos):
    from teachable.student_init import build_model, build_tokenizer, tokenizer_corpus

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny_student")
    tok = build_tokenizer(tokenizer_corpus(demos), 400)
    model = build_model(tok, hidden_size=32, n_layers=2, n_heads=4, intermediate_size=64, max_position_embeddings=512)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def trainer(tiny_dir):
    return LoraTrainer(tiny_dir, device="cpu", dtype="float32")


def _labeled(demos, n: int = 22) -> pd.DataFrame:
    """Labeled-snapshot rows (the columns supervision needs) from oracle demo states."""
    rows = []
    for i, d in enumerate(demos[:n]):
        ctx = d.context
        wrong = next(a for a in ctx.valid_actions if a != d.target)
        rows.append(dict(
            snapshot_id=f"{ENV}/s{i:03d}", quadrant=QUADRANTS[i % 4] if i < 19 else QUADRANTS[0],
            instruction=ctx.instruction, observation=ctx.observation, history=list(ctx.history),
            valid_actions=list(ctx.valid_actions), student_action=wrong, suggested_action=d.target,
            diagnosis="the target is not where this leads.", route_net=("demo", "hint", "contrast")[i % 3],
            ELP_net=(i % 5) / 5,
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
    assert log["n_examples"] == 1 and log["steps"] == 10 and len(log["loss_curve"]) == 10
    assert log["final_loss"] < log["loss_curve"][0][1] and log["trainable_params"] > 0
    # the shared base model is left without LoRA layers
    assert _p(pol, ctx, target) == pytest.approx(before, abs=1e-6)
    # HF peft format: loads with PeftModel, and the scorer sees the change
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), out / "adapter")
    assert any("lora_" in n for n, _ in peft_model.named_parameters())
    tuned = HFPolicy(tiny_dir, adapter_dir=out / "adapter", device="cpu", dtype="float32")
    assert np.log(_p(tuned, ctx, target)) > np.log(before) + 1.0  # e times more likely, at least
    assert not np.allclose(tuned.action_logprobs([demos[7].context])[0], base_scores)
    # merged into the weights (as evaluation loads it): the same scores, and no adapter swap after
    merged = HFPolicy(tiny_dir, adapter_dir=out / "adapter", device="cpu", dtype="float32", merge_adapter=True)
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
    assert log["resumed_from"] == "checkpoint-2" and log["steps"] == 4
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


# ------------------------------------------------------------------------------------ phase 2 data
def test_heldout_split_is_deterministic_and_never_trained_on(demos):
    lab = _labeled(demos)
    a = heldout_split(lab, 0.25, seed=3)
    b = heldout_split(lab.sample(frac=1.0, random_state=1), 0.25, seed=3)
    assert set(a.loc[a.heldout, "snapshot_id"]) == set(b.loc[b.heldout, "snapshot_id"])
    c = heldout_split(lab, 0.25, seed=4)
    assert set(a.loc[a.heldout, "snapshot_id"]) != set(c.loc[c.heldout, "snapshot_id"])
    for q, g in a.groupby("quadrant"):
        assert g["heldout"].sum() == min(len(g) - 1, max(1, int(0.25 * len(g) + 0.5)))
    budget = matrix_budget(a, {"budget": None})
    assert budget == min((~a.heldout & (a.quadrant == q)).sum() for q in QUADRANTS)
    assert matrix_budget(a, {"budget": 2}) == 2
    held = set(a.loc[a.heldout, "snapshot_id"])
    sizes, sets = {}, {}
    for rid in RUN_IDS:
        q, fmt, kind = run_spec(rid)
        ts = run_training_set(a, rid, budget, seed=3)
        assert not held & set(ts["snapshot_id"])
        assert ts.equals(run_training_set(a, rid, budget, seed=3))
        if q is not None:
            assert (ts["quadrant"] == q).all()
        sizes[rid], sets[rid] = len(ts), tuple(ts["snapshot_id"])
    assert {v for k, v in sizes.items() if k != "B2_all"} == {budget}
    assert sizes["B2_all"] == (~a.heldout).sum()
    for q in QUADRANTS:  # the three formats of a quadrant train on the same snapshots
        assert sets[f"{q}_demo"] == sets[f"{q}_hint"] == sets[f"{q}_contrast"]
    with pytest.raises(ValueError, match="Q3_lowU_lowL"):
        matrix_budget(heldout_split(lab[lab.quadrant != "Q3_lowU_lowL"], 0.25, 3), {"budget": None})
    assert len(RUN_IDS) == 14 and RUN_IDS[-2:] == ("B1_uniform", "B2_all")
    assert run_spec("Q2_highU_lowL_contrast") == ("Q2_highU_lowL", "contrast", "quadrant")
    with pytest.raises(ValueError):
        run_spec("Q5_demo")


def test_matrix_runs_write_audit_files_and_summary(trainer, tiny_dir, demos, tmp_path):
    from teachable.io import write_parquet

    lab = _labeled(demos)
    path = tmp_path / "labeled.parquet"
    write_parquet(lab, path)
    cfg = {"seed": 0, "student": {"device": "cpu", "dtype": "float32"},
           "phase2": {"heldout_frac": 0.25, "budget": None, "lora": dict(LORA, steps=2, batch_size=2)}}  # fmt: skip
    dirs = []
    for rid in ("Q1_highU_highL_hint", "B1_uniform", "B2_all"):
        d = tmp_path / rid
        log = train_matrix_run(rid, path, tiny_dir, cfg, d, progress=False, trainer=trainer)
        ts = json.loads((d / "train_set.json").read_text())
        assert log["meta"]["run_id"] == rid and log["n_examples"] == ts["n_examples"] == len(ts["train_ids"])
        assert not set(ts["train_ids"]) & set(ts["heldout_ids"]) and ts["heldout_ids"]
        assert (d / "adapter" / "adapter_config.json").is_file()
        dirs.append(d)
    s = training_summary(dirs)
    assert s["equal_budgets"] and s["same_heldout_set"] and not s["heldout_leaks"]
    assert s["runs"]["Q1_highU_highL_hint"]["format"] == "hint" and s["runs"]["B2_all"]["examples"] > s["budget"]
    assert set(s["missing_runs"]) == set(RUN_IDS) - {"Q1_highU_highL_hint", "B1_uniform", "B2_all"}


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
                         ELP_net=0.1 * seed, route_net=("demo", "hint")[seed]))  # fmt: skip
    cfg = {"seed": 0, "env": {"history_len": 4, "max_steps": 6},
           "student": {"temperature": 1.0, "batch_size": 8, "device": "cpu", "dtype": "float32"},
           "phase1b": {"n_validation_rollouts": 3, "lora": dict(LORA, steps=2)}}  # fmt: skip
    res = run_micro_training(pd.DataFrame(rows), tiny_dir, cfg, progress=False, policy=trainer.policy)
    assert list(res.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS) and len(res) == 2
    assert (res["before_n"] == 3).all() and (res["after_n"] == 3).all()
    assert np.allclose(res["delta"], res["after"] - res["before"])
    assert ((res["before_lo"] <= res["before"]) & (res["before"] <= res["before_hi"])).all()
    assert res["route"].tolist() == ["demo", "hint"] and (res["train_seconds"] > 0).all()
    assert trainer.policy.model is trainer.policy.base_model  # adapters removed after each snapshot


def _report_df(x, y):
    q = np.array(QUADRANTS)[np.arange(len(x)) % 4]
    return pd.DataFrame(dict(ELP_net=x, delta=y, quadrant=q, route="demo", before=0.5, after=0.5 + np.asarray(y)))


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
    assert rep["pass"] == (rep["rho"] >= 0.3 and rep["p_value"] <= 0.05) and rep["pass"]
    assert rep == correlation_report(df, P1B, seed=1)
    for q, g in df.groupby("quadrant"):
        pq = rep["per_quadrant"][q]
        assert pq["n"] == len(g) and pq["mean"] == pytest.approx(g["delta"].mean())
        assert pq["lo"] <= pq["mean"] <= pq["hi"]
    anti = correlation_report(_report_df(x, -y), P1B, seed=1)
    assert not anti["pass"] and anti["blocks_downstream"] and anti["p_value"] > 0.5


def test_correlation_report_undefined_cases_are_nan_never_fabricated():
    x = np.linspace(0, 1, 8)
    for df, why in ((_report_df(x, np.zeros(8)), "constant"), (_report_df(x[:2], x[:2]), "< 3")):
        rep = correlation_report(df, P1B, seed=0)
        assert np.isnan(rep["rho"]) and np.isnan(rep["p_value"]) and all(np.isnan(rep["rho_ci"]))
        assert rep["pass"] is False and why in rep["reason"]
