"""The HF scoring policy and the embedded default student (offline, CPU, fast)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch

from teachable.envs.babyai import BabyAITextEnv
from teachable.patches import make_patch
from teachable.policies.base import Context
from teachable.policies.prompt import build_messages
from teachable.student_init import CONFIG_KEYS, EOS

ACTIONS = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done")
SYSTEM = BabyAITextEnv.SYSTEM_PROMPT  # the family prompt the students are rendered with


def _contexts(n: int, seed: int = 0) -> list[Context]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        valid = tuple(a for a in ACTIONS if rng.random() < 0.75) or ACTIONS[:2]
        hist = tuple(str(a) for a in rng.choice(ACTIONS, size=i % 4))
        obs = " ".join(
            f"a {c} {o} {int(rng.integers(1, 5))} steps ahead."
            for c, o in zip(rng.choice(["red", "green", "blue"], 1 + i % 3), rng.choice(["ball", "box", "key"], 3))
        )
        patch = None if i % 3 else make_patch("demo", teacher_action=valid[0], student_action=valid[-1], diagnosis="")
        out.append(Context(f"go to the {('red', 'blue')[i % 2]} ball", obs, hist, valid, patch))
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine OpenMP threads that
    wait for a busy core make every small op ~30x slower; HFPolicy honours OMP_NUM_THREADS."""
    old_env, old_n = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old_n)
    if old_env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = old_env


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from teachable.student_init import build_random_student

    # a peaked random model (weights N(0, 0.3)), so score differences are not all ~0
    return build_random_student(tmp_path_factory.mktemp("tiny_student"), seeds=range(12), init_std=0.3)


@pytest.fixture(scope="module")
def policy(tiny_dir):
    from teachable.policies.hf import HFPolicy

    return HFPolicy(tiny_dir, batch_size=5, system_prompt=SYSTEM)


def _naive_logprobs(pol, ctx: Context) -> np.ndarray:
    """Independent reference: the full chat rendering of prompt + assistant answer, one
    sequence at a time, no padding, no cache; sum of the answer's token log-probs."""
    tok, model = pol.tokenizer, pol.model
    p_ids = tok(tok.apply_chat_template(build_messages(ctx, system=SYSTEM), add_generation_prompt=True, tokenize=False),
                add_special_tokens=False)["input_ids"]  # fmt: skip
    lls = []
    for a in ctx.valid_actions:
        full = tok.apply_chat_template(build_messages(ctx, a, system=SYSTEM), tokenize=False)
        ids = tok(full, add_special_tokens=False)["input_ids"]
        assert ids[: len(p_ids)] == p_ids and ids[-1] == tok.convert_tokens_to_ids(EOS)
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
        tgt = torch.tensor(ids[len(p_ids) :])
        lls.append(lp[len(p_ids) - 1 : len(ids) - 1].gather(-1, tgt[:, None]).sum().item())
    lls = np.array(lls)
    return lls - np.logaddexp.reduce(lls)


def test_chat_template_round_trip(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_dir), local_files_only=True)
    ctx = _contexts(3)[0]
    msgs = build_messages(ctx, "go forward", system=SYSTEM)
    prompt = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(msgs, tokenize=False)
    assert prompt.startswith("<|bos|><|system|>") and prompt.endswith("<|assistant|>")
    assert full == prompt + "go forward" + EOS
    for m in msgs:
        assert m["content"] in full
    ids = tok(full, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == full  # byte-level BPE is lossless
    assert tok.decode(ids, skip_special_tokens=True) == "".join(m["content"] for m in msgs)
    # assistant-token mask (trl's assistant_only_loss) covers exactly the answer + end of turn
    out = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(masked) == "go forward" + EOS


@pytest.mark.parametrize("kv_mode,attn", [("packed", "sdpa"), ("packed", "eager"), ("expand", "sdpa")])
def test_batched_kv_scoring_equals_naive(tiny_dir, kv_mode, attn):
    from teachable.policies.hf import HFPolicy

    pol = HFPolicy(tiny_dir, batch_size=5, kv_mode=kv_mode, attn_implementation=attn, system_prompt=SYSTEM)
    assert pol.kv_mode == kv_mode
    ctxs = _contexts(13, seed=3)  # chunks of 5: uneven prompt lengths and action counts
    assert pol._common_prefix_len(pol.prompt_ids(ctxs[:5])) >= pol.min_shared_prefix  # prefix shared
    batched = pol.action_logprobs(ctxs)
    full = pol.action_logprobs_full(ctxs, batch_size=4)
    for ctx, b, f in zip(ctxs, batched, full):
        naive = _naive_logprobs(pol, ctx)
        assert b.shape == (len(ctx.valid_actions),)
        np.testing.assert_allclose(b, naive, atol=1e-4)
        np.testing.assert_allclose(f, naive, atol=1e-4)
    assert max(float(np.ptp(b)) for b in batched) > 0.1  # the check is not vacuous


def test_logprobs_normalised_and_memo(policy):
    ctxs = _contexts(8, seed=4)
    policy.clear_memo()
    h0, m0 = policy.memo_hits, policy.memo_misses
    first = policy.action_logprobs(ctxs + ctxs[:2])  # duplicates in one call are scored once
    for lp in first:
        assert np.all(lp <= 0) and abs(np.logaddexp.reduce(lp)) < 1e-9
    assert policy.memo_misses - m0 == 8 and policy.memo_hits - h0 == 2
    again = policy.action_logprobs(ctxs)
    assert policy.memo_hits - h0 == 10
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    one = Context("x", "y", (), ("done",))
    np.testing.assert_allclose(policy.action_logprobs([one])[0], [0.0])


def test_adapter_changes_scores(tiny_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from teachable.policies.hf import HFPolicy

    base = AutoModelForCausalLM.from_pretrained(str(tiny_dir), local_files_only=True)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "lora_" in n:
                p.normal_(0.0, 0.5)
    lora.save_pretrained(tmp_path / "adapter")

    ctxs = _contexts(6, seed=5)
    plain = HFPolicy(tiny_dir, batch_size=4, system_prompt=SYSTEM)
    with_adapter = HFPolicy(tiny_dir, adapter_dir=tmp_path / "adapter", batch_size=4, system_prompt=SYSTEM)
    a, b = plain.action_logprobs(ctxs), with_adapter.action_logprobs(ctxs)
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b)) > 1e-3
    for ctx, lp in zip(ctxs, b):  # the KV-shared path is exact with an adapter too
        np.testing.assert_allclose(lp, _naive_logprobs(with_adapter, ctx), atol=1e-4)
    # swapping the adapter clears the memo and restores the base scores
    plain.action_logprobs(ctxs)
    plain.load_adapter(tmp_path / "adapter")
    assert plain.memo_stats["size"] == 0
    for x, y in zip(plain.action_logprobs(ctxs), b):
        np.testing.assert_allclose(x, y, atol=1e-5)
    plain.load_adapter(None)
    for x, y in zip(plain.action_logprobs(ctxs), a):
        np.testing.assert_allclose(x, y, atol=1e-5)


def test_missing_model_dir_names_path(tmp_path):
    from teachable.policies.hf import HFPolicy

    missing = tmp_path / "no_such_student"
    with pytest.raises(FileNotFoundError, match="no_such_student"):
        HFPolicy(missing, system_prompt=SYSTEM)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        HFPolicy(tmp_path / "empty", system_prompt=SYSTEM)


def test_train_student_short_run(tmp_path):
    from teachable.policies.hf import HFPolicy
    from teachable.student_init import train_student

    cfg = {
        "env_id": "BabyAI-GoToLocal-v0", "env_options": {}, "max_steps": 20, "history_len": 2, "demo_seeds": list(range(300000, 300005)),
        "patch_fraction": 0.5, "noise_fraction": 0.1, "explore_prob": 0.1, "vocab_size": 300,
        "hidden_size": 32, "n_layers": 1, "n_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 512, "train_steps": 20, "lr": 3e-3, "batch_size": 8, "seed": 0,
    }  # fmt: skip
    assert set(cfg) == set(CONFIG_KEYS)
    out = tmp_path / "student"
    card = train_student(cfg, out, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["student"]  # no temp directory left
    saved = json.loads((out / "student_card.json").read_text())
    assert saved == json.loads(json.dumps(card))
    for key in ("env_id", "demo_seeds", "demos", "patched_fraction", "noise_fraction",
                "train_steps", "final_loss", "params", "seconds"):  # fmt: skip
        assert key in saved
    assert saved["demo_seeds"] == cfg["demo_seeds"] and saved["demos"] > 5 and np.isfinite(saved["final_loss"])
    assert set(saved["patched_fraction"]) == {"demo", "hint", "contrast", "placebo_demo", "placebo_hint",
                                              "placebo_contrast"}
    pol = HFPolicy(out, batch_size=16, system_prompt=SYSTEM)
    from teachable.envs import make_env

    env = make_env("BabyAI-GoToLocal-v0", max_steps=20)
    obs = env.reset(100000)
    ctx = Context(obs.instruction, obs.text, (), obs.valid_actions)
    lp = pol.action_logprobs([ctx])[0]
    assert lp.shape == (len(obs.valid_actions),) and abs(np.logaddexp.reduce(lp)) < 1e-9


def test_demo_hints_judge_the_wrong_action_and_name_no_action():
    """The demonstrations' hint and contrast patches carry the oracle's diagnosis of the "student's"
    wrong action (``expert_advice(wrong)``), which passes the family vocabulary check."""
    from teachable.envs.babyai import BabyAITextEnv
    from teachable.student_init import collect_demonstrations

    demos = collect_demonstrations("BabyAI-GoToLocal-v0", range(8), 32, 4, 1.0, 0.0, np.random.default_rng(0))
    hints = [d.context.patch for d in demos if d.kind == "hint"]
    assert hints and all("your choice" in h for h in hints)
    assert all(BabyAITextEnv.mentioned_actions(h) == {} for h in hints)
