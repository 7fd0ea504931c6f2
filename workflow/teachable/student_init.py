"""The embedded default student, built offline (no hub, no GPU).

A small Llama-architecture causal LM with a byte-level BPE tokenizer trained on the domain's own
prompts, SFT-trained with trl on oracle demonstrations with completion-only loss. It is imperfect
on purpose (limited demonstrations, a fraction of noisy targets, few steps: under two passes
over the demos at the pilot settings) and it has learned to *read* in-context supervision: a
fraction of its training contexts carry a demo / hint / contrast patch (whose information is
correct: the target is the expert's action) or a placebo patch (no information, same target
noise as unpatched contexts, length independent of the target), including on off-expert-path
recovery states reached by random exploration actions.

Everything goes through the same prompt format as every other student (``policies.prompt``) and
the same patch texts as CPT and training (``teachable.patches``), so a real HF model directory
replaces the embedded student with no code change.

Config (the ``student.init`` section of the pipeline config): env_id, env_options (the family's
constructor options, ``registry.env_options``), max_steps, history_len,
demo_seeds (from the demo split, disjoint from train/eval/bench), patch_fraction, noise_fraction,
explore_prob, vocab_size, hidden_size, n_layers, n_heads, intermediate_size,
max_position_embeddings, train_steps, lr, batch_size, seed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .constants import FORMATS
from .patches import PLACEBOS, demo_patch, make_patch
from .policies.base import Context
from .envs.registry import DEFAULT_ENV_ID, action_space, free_form, system_prompt
from .policies.prompt import build_messages

log = logging.getLogger(__name__)

PATCH_KINDS = ("demo", "hint", "contrast", "placebo")
CONFIG_KEYS = (
    "env_id", "env_options", "max_steps", "history_len", "demo_seeds", "patch_fraction", "noise_fraction",
    "explore_prob", "vocab_size", "hidden_size", "n_layers", "n_heads", "intermediate_size",
    "max_position_embeddings", "train_steps", "lr", "batch_size", "seed",
)  # fmt: skip

# Special tokens of the embedded student's chat format.
BOS, EOS, PAD, UNK = "<|bos|>", "<|end|>", "<|pad|>", "<|unk|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
PIECE_BOUNDARY = r"[\n,.;!?()']"  # BPE merges never cross these characters (see build_tokenizer)
CODE_PIECE_BOUNDARY = r"[\n'\"\[\]]"  # a free-form family's (build_tokenizer's code)
# A minimal chat template: <|bos|><|system|>..<|end|><|user|>..<|end|><|assistant|>..<|end|>.
# The end-of-turn token is the EOS token; the assistant's content is marked with
# {% generation %} so assistant-token masks work as for real chat models.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>' }}{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>' }}{{ message['content'] }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


@dataclass(frozen=True)
class Demo:
    """One SFT example: a student context and the target action."""

    context: Context
    target: str
    kind: str  # "none" | a patch kind
    noisy: bool  # the target is a random non-expert action (only without an informative patch)
    off_path: bool  # the state was reached after an exploration (non-expert) action
    seed: int
    step: int


# ---------------------------------------------------------------------------------------- demos
def collect_demonstrations(
    env_id: str,
    seeds: Iterable[int],
    max_steps: int | None,
    history_len: int,
    patch_fraction: float,
    noise_fraction: float,
    rng: np.random.Generator,
    explore_prob: float = 0.0,
    env_factory: Any = None,
    env_options: dict[str, Any] | None = None,
) -> list[Demo]:
    """Roll the oracle expert on each seed and turn every visited state into an SFT example.

    - target = the expert action at that state;
    - with probability ``patch_fraction`` the context carries a patch of a kind drawn uniformly
      from demo/hint/contrast/placebo (a placebo: one of the three per-format placebos, sized as
      CPT sizes them, so its length never depends on the target), built against a random *other*
      valid action (the "student's" mistake) with the oracle's diagnosis of it; the target stays
      the expert action;
    - with probability ``noise_fraction`` a context without information in its patch (no patch,
      or a placebo) gets a uniformly random target: the same noise with and without a placebo,
      so the placebo's length/presence is not a cue for a cleaner target;
    - with probability ``explore_prob`` the executed action is a random non-expert action (not
      recorded as a target), so later states include recovery states off the expert's path.
    The actions drawn are the state's candidates (``action_space(env_id).at(env)``: a finite
    family's members; a free-form family's menu at that state, e.g. HTML's G programs on the page,
    the values shown and the abstentions), and "other" means another effect (``space.same``).
    ``history`` holds the actions actually executed (exploration included), as at rollout time.
    """
    if env_factory is None:
        from .envs import make_env as env_factory
    env = env_factory(env_id, max_steps=max_steps, **(env_options or {}))
    max_steps = env.max_steps if max_steps is None else max_steps  # None: the family's step limit
    family_space = action_space(env_id)
    demos: list[Demo] = []
    expert_failures = 0
    for seed in seeds:
        seed = int(seed)
        env.reset(seed)
        history: list[str] = []
        off_path = False
        for step in range(max_steps):
            obs = env.observation()
            space = family_space.at(env)  # a free-form family's candidates and keys are the state's
            valid = space.candidate_actions(obs.valid_actions)
            try:
                expert = env.expert_action()
            except RuntimeError as e:  # e.g. exploration made the mission impossible
                log.debug("seed %d step %d: no expert action (%s); episode cut", seed, step, e)
                expert_failures += 1
                break
            others = [a for a in valid if not space.same(a, expert)]
            kind, patch = "none", None
            if others and rng.random() < patch_fraction:
                kind = PATCH_KINDS[int(rng.integers(len(PATCH_KINDS)))]
                if kind == "placebo":  # one of the three per-format placebos, as CPT shows them
                    kind = f"placebo_{FORMATS[int(rng.integers(len(FORMATS)))]}"
                wrong = others[int(rng.integers(len(others)))]
                advice = env.expert_advice(wrong)
                diagnosis = advice.diagnosis.strip() if advice.ok else ""
                if not diagnosis and kind != "demo":  # no diagnosis to show: unpatched instead
                    kind = "none"
                if kind != "none":
                    patch = make_patch(kind, teacher_action=expert, student_action=wrong, diagnosis=diagnosis,
                                       candidates=valid)  # fmt: skip
            # noise hits the contexts whose patch carries no information (none and placebo), so a
            # placebo is not a cue for "the target is clean" (it would otherwise act as a patch)
            noisy = (kind == "none" or kind.startswith("placebo")) and rng.random() < noise_fraction
            target = valid[int(rng.integers(len(valid)))] if noisy else expert
            ctx = Context(
                instruction=obs.instruction,
                observation=obs.text,
                history=tuple(history[-history_len:]) if history_len > 0 else (),
                valid_actions=obs.valid_actions,  # what the rollouts show (a free-form family: templates)
                patch=patch,
            )
            demos.append(Demo(ctx, target, kind, noisy and target != expert, off_path, seed, step))
            act = expert
            if others and rng.random() < explore_prob:
                act = others[int(rng.integers(len(others)))]
                off_path = True
            res = env.step(act)
            history.append(act)
            if res.done:
                break
    close = getattr(env, "close", None)
    if callable(close):
        close()
    if expert_failures:
        log.warning("%d demo episodes were cut where the expert had no action", expert_failures)
    return demos


# ---------------------------------------------------------------------------------------- tokenizer
def build_tokenizer(texts: Iterable[str], vocab_size: int, code: bool = False):
    """A byte-level BPE trained on ``texts``, wrapped as a ``PreTrainedTokenizerFast`` with
    bos/eos/pad/unk, chat role tokens and a chat template (``apply_chat_template`` works as for
    an HF chat model; the end of an assistant turn is the EOS token ``<|end|>``). Every byte is a
    token of its own before merges, so any text round-trips (code, JSON, any Unicode).

    ``code`` (a free-form family, whose answers are programs and JSON): pieces are also split at
    quotes, brackets and the JSON/code punctuation (``CODE_PIECE_BOUNDARY``) and digits stand
    alone, so a value printed by a tool result and the same value in an answer (a string between
    quotes, a list's item, a number) are the same tokens: the student answers by copying them."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, UNK, *ROLE_TOKENS]
    tok = Tokenizer(models.BPE(unk_token=None))
    # Pieces are split at newlines and punctuation (not at ':' or spaces), so merges may span
    # words within a clause: frequent domain phrases ("a wall 2 steps left", " turn left",
    # "Mission: go to the red ball", "The best action now is: turn left") become single tokens.
    # Prompts are ~2.7x shorter than with GPT-2-style word-level pieces (~55 vs ~150 tokens on
    # the default env id, registry.DEFAULT_ENV_ID), which makes training and scoring on CPU that much faster.
    split = [pre_tokenizers.Split(Regex(CODE_PIECE_BOUNDARY if code else PIECE_BOUNDARY), behavior="isolated")]
    if code:
        split.append(pre_tokenizers.Digits(individual_digits=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([*split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=int(vocab_size),
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        max_token_length=48,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=list(ROLE_TOKENS),
        padding_side="left",
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tokenizer_corpus(demos: Sequence[Demo], system: str) -> list[str]:
    """Texts the BPE is trained on: the system/user/assistant contents of the demos, plus the
    demo patch of every action seen, as often as the demos' own lines, so that each demo
    patch clause ("The best action now is: X") becomes a token of its own."""
    out: list[str] = []
    actions: set[str] = set()
    for d in demos:
        actions.update(d.context.valid_actions)
        for m in build_messages(d.context, d.target, system=system):
            out.append(m["content"])
    reps = max(1, len(demos))
    for a in sorted(actions):
        out.extend([demo_patch(a)] * reps)
    return out


# ---------------------------------------------------------------------------------------- model
def build_model(
    tokenizer,
    hidden_size: int,
    n_layers: int,
    n_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
):
    """A small randomly initialised ``LlamaForCausalLM`` (tied embeddings) for ``tokenizer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % n_heads:
        raise ValueError(f"hidden_size {hidden_size} is not divisible by n_heads {n_heads}")
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=int(hidden_size),
        num_hidden_layers=int(n_layers),
        num_attention_heads=int(n_heads),
        num_key_value_heads=int(n_heads),
        intermediate_size=int(intermediate_size),
        max_position_embeddings=int(max_position_embeddings),
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rope_theta=10000.0,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(cfg)


def build_random_student(out_dir: str | os.PathLike, env_id: str = DEFAULT_ENV_ID, *,
                         seeds: Sequence[int] = range(6), max_steps: int = 12, vocab_size: int = 400,
                         hidden_size: int = 32, n_layers: int = 2, intermediate_size: int = 64,
                         init_std: float | None = None, seed: int = 0,
                         env_options: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """A tiny UNTRAINED student for tests and benchmarks: a BPE trained on the texts of the
    expert's demonstrations on ``seeds`` (so prompts tokenize as in a study) and a random Llama
    (``init_std``: weights redrawn from N(0, std), which peaks its action distributions; the
    family's options in ``env_options``). Saved
    with ``save_pretrained`` in ``out_dir``, which it returns."""
    import torch

    torch.manual_seed(seed)
    demos = collect_demonstrations(env_id, seeds, max_steps, 4, 0.0, 0.0, np.random.default_rng(seed),
                                   env_options=env_options)  # fmt: skip
    tok = build_tokenizer(tokenizer_corpus(demos, system_prompt(env_id)), vocab_size, code=free_form(env_id))
    model = build_model(tok, hidden_size=hidden_size, n_layers=n_layers, n_heads=4,
                        intermediate_size=intermediate_size, max_position_embeddings=512)  # fmt: skip
    if init_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, init_std)
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def sized_to_demos(tokenizer, demos: Sequence[Demo], system: str, configured: int) -> int:
    """The model's context (positions, also SFT's max_length): ``configured``
    (``student.init.max_position_embeddings``), raised to the longest demo (prompt and target)
    in tokens, rounded up to 64, where one is longer, so no demo is cut (a free-form family's:
    its prompts hold the tool results, its targets code; a finite family keeps the configured
    context, and its numbers)."""
    longest = max(len(tokenizer.apply_chat_template(build_messages(d.context, d.target, system=system), tokenize=True,
                                                    return_dict=False)) for d in demos)  # fmt: skip
    if longest <= configured:
        return configured
    sized = -(-longest // 64) * 64
    log.info("student context sized to the demos: %d positions (longest demo %d tokens; "
             "student.init.max_position_embeddings %d)", sized, longest, configured)  # fmt: skip
    return sized


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------- training
def demo_seed_list(spec) -> list[int]:
    """The demonstration seeds: a list, or a range ``{"start": s, "count": n}`` (the first n
    seeds of the demo split, as the workflow passes them)."""
    if isinstance(spec, dict):
        return list(range(int(spec["start"]), int(spec["start"]) + int(spec["count"])))
    return [int(s) for s in spec]


def _check_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        raise KeyError(f"student.init config lacks keys: {missing}")
    unknown = [k for k in cfg if k not in CONFIG_KEYS]
    if unknown:
        raise KeyError(f"student.init config has unknown keys: {unknown}")
    return cfg


def demos_to_dataset(demos: Sequence[Demo], system: str):
    """Conversational prompt-completion rows (trl masks the prompt: completion-only loss)."""
    from datasets import Dataset

    rows = {"prompt": [], "completion": []}
    for d in demos:
        msgs = build_messages(d.context, d.target, system=system)
        rows["prompt"].append(msgs[:-1])
        rows["completion"].append(msgs[-1:])
    return Dataset.from_dict(rows)


def demo_summary(demos: Sequence[Demo]) -> dict[str, Any]:
    n = max(len(demos), 1)
    kinds = Counter(d.kind for d in demos)
    uninformed = max(kinds.get("none", 0) + sum(kinds.get(k, 0) for k in PLACEBOS), 1)
    return {
        "demos": len(demos),
        "patched_fraction": {k: kinds.get(k, 0) / n for k in (*FORMATS, *PLACEBOS)},
        "noisy_fraction": sum(d.noisy for d in demos) / n,
        "noisy_fraction_of_unpatched_or_placebo": sum(d.noisy for d in demos) / uninformed,
        "off_path_fraction": sum(d.off_path for d in demos) / n,
    }


def train_student(cfg: dict[str, Any], out_dir: str | os.PathLike, progress: bool = True) -> dict[str, Any]:
    """Collect demos, build tokenizer + model, SFT with trl, save to ``out_dir`` atomically
    (``io.atomic_dir``; an existing ``out_dir`` is replaced).

    Returns the student card (also written to ``out_dir/student_card.json``).
    """
    import torch
    from transformers import set_seed
    from trl import SFTTrainer

    from .io import atomic_dir
    from .policies.hf import configure_threads
    from .training import sft_config

    cfg = _check_cfg(dict(cfg))
    t0 = time.time()
    threads = configure_threads()
    set_seed(int(cfg["seed"]))
    rng = np.random.default_rng(int(cfg["seed"]))
    seeds = demo_seed_list(cfg["demo_seeds"])
    demos = collect_demonstrations(
        cfg["env_id"], seeds, None if cfg["max_steps"] is None else int(cfg["max_steps"]), int(cfg["history_len"]),
        float(cfg["patch_fraction"]), float(cfg["noise_fraction"]), rng,
        explore_prob=float(cfg["explore_prob"]), env_options=cfg["env_options"],
    )  # fmt: skip
    if not demos:
        raise RuntimeError("no demonstrations collected")
    t_demo = time.time() - t0
    system = system_prompt(cfg["env_id"])
    free = free_form(cfg["env_id"])
    tokenizer = build_tokenizer(tokenizer_corpus(demos, system), int(cfg["vocab_size"]), code=free)
    positions = int(cfg["max_position_embeddings"])
    if free:  # a free-form family's prompts grow with the tool results and code: no demo is cut
        positions = sized_to_demos(tokenizer, demos, system, positions)
    model = build_model(
        tokenizer, cfg["hidden_size"], cfg["n_layers"], cfg["n_heads"],
        cfg["intermediate_size"], positions,
    )  # fmt: skip
    dataset = demos_to_dataset(demos, system)

    with atomic_dir(out_dir) as tmp:
        steps = int(cfg["train_steps"])
        args = sft_config(
            tmp / "_trainer", steps=steps, lr=float(cfg["lr"]), batch_size=int(cfg["batch_size"]),
            seed=int(cfg["seed"]), on_cuda=torch.cuda.is_available(), progress=progress,
            lr_scheduler_type="cosine", warmup_steps=max(1, int(0.05 * steps)), weight_decay=0.01,
            max_length=positions, gradient_checkpointing=False, bf16=False,
            logging_steps=max(1, steps // 20),
        )  # fmt: skip
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        t1 = time.time()
        result = trainer.train()
        t_train = time.time() - t1
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        model = trainer.model
        model.eval()
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(tmp / "_trainer", ignore_errors=True)

        prompt_lens = [
            len(tokenizer.apply_chat_template(build_messages(d.context, system=system), add_generation_prompt=True,
                                              tokenize=True, return_dict=False))
            for d in demos[:: max(1, len(demos) // 500)]
        ]  # fmt: skip
        card = {
            "model": "embedded default student (LlamaForCausalLM, byte-level BPE, SFT on oracle demos)",
            "env_id": cfg["env_id"],
            "env_options": dict(cfg["env_options"]),
            "max_steps": None if cfg["max_steps"] is None else int(cfg["max_steps"]),
            "history_len": int(cfg["history_len"]),
            "demo_seeds": seeds,
            **demo_summary(demos),
            "patch_fraction": float(cfg["patch_fraction"]),
            "noise_fraction": float(cfg["noise_fraction"]),
            "explore_prob": float(cfg["explore_prob"]),
            "train_steps": int(cfg["train_steps"]),
            "lr": float(cfg["lr"]),
            "batch_size": int(cfg["batch_size"]),
            "seed": int(cfg["seed"]),
            "final_loss": float(losses[-1]) if losses else float(result.training_loss),
            "mean_train_loss": float(result.training_loss),
            "loss_curve": [float(x) for x in losses],
            "params": n_params(model),
            "vocab_size": len(tokenizer),
            "mean_prompt_tokens": float(np.mean(prompt_lens)),
            "max_position_embeddings": positions,
            "demo_seconds": round(t_demo, 2),
            "train_seconds": round(t_train, 2),
            "seconds": round(time.time() - t0, 2),
            "threads": threads,
            "config": {k: cfg[k] for k in CONFIG_KEYS if k != "demo_seeds"},
        }
        (tmp / "student_card.json").write_text(json.dumps(card, indent=2))
    return card
