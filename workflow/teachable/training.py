"""LoRA supervision of the student: one path from labeled snapshots to a trained adapter.

Used by Phase 1B (one fresh adapter per sampled snapshot) and Phase 2 (the 14-run matrix).

Supervision formats (``supervision_example``)
---------------------------------------------
Every example is (prompt context, target) with target = the teacher's ``suggested_action``, so the
completion-only loss is on the action alone. The formats differ in what the *prompt* carries:

- ``demo``: the snapshot's context with NO patch. The demo's information (the action) is the
  target itself: a plain demonstration of the teacher's action at that state.
- ``hint``: the context with the hint patch (the diagnosis, which never names the action) as
  ``Advice:``; the target is the action.
- ``contrast``: the context with the contrast patch ("'student action' was worse than 'teacher
  action' because <diagnosis>"); the target is the action.

Patch texts come from ``teachable.patches`` (the same texts CPT measured in Phase 1).

Why demo has no patch. Utility (Phase 1B's after - before, Phase 3's evaluation) is measured
WITHOUT any patch. A demo patch in the prompt ("The best action now is: X.") turns the example
into a copy task: a student that reads patches (the embedded one is trained to) already gives X
a high probability under that prompt, so the loss and gradient are small, and what is learnt is
"copy the advised action", which the patch-free test context never triggers. Demo-route
snapshots would then show Δ ~ 0 by construction, whatever their teachability, biasing the CPT
validation, and the demo-format baselines (B1_uniform, B2_all) would not be the standard
behaviour-cloning baseline. Delivered as the target, the demo's information (the action) reaches
the patch-free context directly, as CPT's demo condition delivered it in context. Hint and
contrast carry information that is not the action (the diagnosis, the rejected action), which a
target equal to the action cannot carry, so it can only be in the prompt. (The measured
comparison of the two demo definitions is in ``benchmarks/bench_training.py --compare-demo``.)

Training (``train_lora`` / ``LoraTrainer``)
-------------------------------------------
LoRA (peft) + trl ``SFTTrainer`` with ``completion_only_loss``. Each example is tokenized here
exactly as ``HFPolicy`` scores it: the prompt = the model's chat template applied to
``build_messages(ctx)`` with the generation prompt, tokenized without added special tokens; the
completion = ``HFPolicy.candidate_ids(action)`` (the action and the end-of-turn token(s)). The
pairs go to trl as a pre-tokenized prompt-completion dataset (``input_ids`` + ``completion_mask``)
because trl's own tokenization of string prompts adds the tokenizer's special tokens (a second
BOS for many models) and appends EOS to completions whose end of turn is not EOS; either would
train on sequences the scorer never sees. trl turns the mask into labels (-100 on the prompt).

Fixed choices (not in config; ``sft_config`` builds trl's config): AdamW, constant learning rate
(no warmup: micro runs have ~8 steps), weight decay 0, gradient clipping at 1.0, fp32 on CPU
(bf16 autocast on a bf16 CUDA model), gradient checkpointing (trl's default, written out), no
truncation (an example longer than the model's context is an error), a loss logged every step.
Config keys: r, alpha, dropout, target_modules, lr,
batch_size, seed, save_steps and exactly one of ``steps`` (a fixed number of optimizer steps:
Phase 1B's one-example runs) or ``epochs`` (equal compute: ``optimizer_steps(epochs, K,
batch_size)`` = ceil(epochs x K / batch_size) steps for K examples, the rule of every budgeted
run of Phases 2 and 5, where K counts the anchor's pairs too: ``teachable.anchor``). ``train_log.json``
records ``examples`` (the supervised ones), ``anchor_examples``, ``epochs`` (configured, or
steps x batch / examples for a fixed-steps run), ``optimizer_steps``, ``tokens_trained``
(non-padding tokens of every training batch, counted by the trainer), the targets' and the
anchor's action marginals and, given drift states, ``drift`` (the adapter's KL to the base there). Checkpoints go to ``out_dir/checkpoints`` every
``save_steps`` steps (none when ``save_steps >= steps``); a rerun of a killed job resumes from
the latest complete one if it belongs to the same examples and config, and they are deleted
after success. The adapter is written atomically to ``out_dir/adapter`` (peft format).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from .envs.registry import action_space
from .labeling import snapshot_context
from .patches import FORMATS, make_patch
from .policies.base import Context

log = logging.getLogger(__name__)

LORA_KEYS = ("r", "alpha", "dropout", "target_modules", "lr", "batch_size", "seed", "save_steps")
LENGTH_KEYS = ("steps", "epochs")  # exactly one: a fixed step count, or epochs over the examples
_CKPT = re.compile(r"^checkpoint-(\d+)$")
_FINGERPRINT = "run_fingerprint.json"


# ------------------------------------------------------------------------------------ examples
def supervision_example(row, fmt: str) -> tuple[Context, str]:
    """(prompt context, target action) of a labeled snapshot in supervision format ``fmt``
    (see the module docstring: demo = no patch, hint/contrast = their patch; target = the
    teacher's action)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown supervision format {fmt!r}; expected one of {FORMATS}")
    target = row["suggested_action"]
    valid = tuple(row["valid_actions"])
    env_id = row.get("env_id")  # the family's check (ActionSpace.allows): a free-form family's is validity
    if not (action_space(env_id).allows(target, valid) if isinstance(env_id, str) else target in valid):
        raise ValueError(
            f"snapshot {row.get('snapshot_id', '?')}: suggested_action {target!r} is not one of its "
            f"valid actions {valid}"
        )
    patch = None
    if fmt != "demo":
        # the action the contrast calls worse: labeling's contrast_action (never the target itself)
        worse = row["contrast_action"] if "contrast_action" in row else row["student_action"]
        diagnosis = row["contrast_diagnosis"] if fmt == "contrast" and "contrast_diagnosis" in row else row["diagnosis"]
        patch = make_patch(fmt, teacher_action=target, student_action=worse, diagnosis=diagnosis)
    return snapshot_context(row, patch), target


# ------------------------------------------------------------------------------------ config
def optimizer_steps(epochs: float, n_examples: int, batch_size: int) -> int:
    """ceil(epochs x n_examples / batch_size): the optimizer steps of a budgeted run."""
    if epochs <= 0 or n_examples < 1 or batch_size < 1:
        raise ValueError(f"optimizer_steps needs epochs > 0, examples >= 1, batch >= 1; got {epochs}, "
                         f"{n_examples}, {batch_size}")
    return int(math.ceil(float(epochs) * int(n_examples) / int(batch_size) - 1e-9))


def check_lora_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in LORA_KEYS if k not in cfg]
    unknown = [k for k in cfg if k not in LORA_KEYS + LENGTH_KEYS]
    length = [k for k in LENGTH_KEYS if k in cfg]
    if missing or unknown or len(length) != 1:
        raise KeyError(f"LoRA config: missing keys {missing}, unknown keys {unknown}, length keys {length}; "
                       f"expected {LORA_KEYS} and exactly one of {LENGTH_KEYS}")
    if int(cfg["batch_size"]) < 1 or int(cfg["r"]) < 1 or float(cfg[length[0]]) <= 0:
        raise ValueError(f"LoRA config: {length[0]}, batch_size and r must be positive, got {cfg}")
    return dict(cfg)


def resolve_steps(cfg: dict[str, Any], n_examples: int) -> tuple[int, float]:
    """(optimizer steps, epochs) of a run on ``n_examples`` examples."""
    bs = int(cfg["batch_size"])
    if "epochs" in cfg:
        return optimizer_steps(float(cfg["epochs"]), n_examples, bs), float(cfg["epochs"])
    steps = int(cfg["steps"])
    return steps, steps * bs / n_examples


def lora_config(cfg: dict[str, Any]):
    from peft import LoraConfig

    tm = cfg["target_modules"]
    return LoraConfig(
        r=int(cfg["r"]),
        lora_alpha=float(cfg["alpha"]),
        lora_dropout=float(cfg["dropout"]),
        target_modules=tm if isinstance(tm, str) else list(tm),
        bias="none",
        task_type="CAUSAL_LM",
    )


def sft_config(output_dir: str | os.PathLike, *, steps: int, lr: float, batch_size: int, seed: int,
               on_cuda: bool, progress: bool, save_steps: int = 0, **settings):  # fmt: skip
    """trl's ``SFTConfig`` of a run, for both training paths (the LoRA runs here, the embedded
    student's training in ``student_init``): the run's hyperparameters (``steps`` optimizer steps
    of ``batch_size`` examples at ``lr``; ``seed`` seeds the init and the data order), a
    checkpoint under ``output_dir`` every ``save_steps`` steps when 0 < save_steps < steps (the
    last one kept), and what the paths share: completion-only loss, no packing, no gradient
    accumulation, gradients clipped at norm 1, fp16 off, the CPU unless ``on_cuda``, the loss
    logged by steps, no progress bar unless ``progress``, nothing reported or pushed, no worker
    processes. ``settings``: the path's own ``SFTConfig`` fields (schedule, warmup, weight decay,
    optimizer, precision, logging interval, ...)."""
    from trl import SFTConfig

    if 0 < save_steps < steps:
        settings.update(save_strategy="steps", save_steps=save_steps, save_total_limit=1, save_only_model=False)
    else:
        settings.update(save_strategy="no")
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=int(steps),
        learning_rate=float(lr),
        per_device_train_batch_size=int(batch_size),
        gradient_accumulation_steps=1,
        max_grad_norm=1.0,
        seed=int(seed),
        data_seed=int(seed),
        completion_only_loss=True,
        packing=False,
        fp16=False,
        use_cpu=not on_cuda,
        report_to="none",
        push_to_hub=False,
        logging_strategy="steps",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        **settings,
    )


def _fingerprint(encoded: list[dict], cfg: dict, model_dir: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"cfg": cfg, "model": str(model_dir)}, sort_keys=True, default=str).encode())
    for e in encoded:
        h.update(json.dumps([e["input_ids"], e["completion_mask"]]).encode())
    return h.hexdigest()


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the highest step (trainer_state.json is written last)."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return None
    found = []
    for p in d.iterdir():
        m = _CKPT.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


# ------------------------------------------------------------------------------------ trainer
def _bar_only_callback():
    """A progress bar that shows the last loss instead of printing every log line."""
    from transformers.trainer_callback import ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    return BarOnly()


class LoraTrainer:
    """Keeps one base model and tokenizer in memory (``policy``, an ``HFPolicy`` on
    ``model_dir``, whose system prompt renders the examples as it renders rollouts); every ``run``
    trains a fresh LoRA adapter on it and removes the adapter layers afterwards, so many micro runs
    pay the model load once. Sharing the policy used for rollouts is fine: its model is used in
    place, so do not score with it during ``run``."""

    def __init__(self, model_dir: str | os.PathLike, *, policy) -> None:
        from .policies.hf import configure_threads

        self.threads = configure_threads()
        self.policy = policy
        self.model_dir = Path(model_dir)
        self._peft = None

    @property
    def tokenizer(self):
        return self.policy.tokenizer

    def encode(self, examples: Sequence[tuple[Context, str]]) -> list[dict[str, list[int]]]:
        """Prompt + completion token ids and the completion mask, as HFPolicy scores them."""
        pol = self.policy
        prompts = pol.prompt_ids([ctx for ctx, _ in examples]) if examples else []
        limit = getattr(pol.base_model.config, "max_position_embeddings", None)
        out = []
        for (ctx, target), p in zip(examples, prompts):
            if target not in ctx.valid_actions and not pol.free_form:  # a free-form family's: checked by the example
                raise ValueError(f"target {target!r} is not a valid action {ctx.valid_actions}")
            c = pol.candidate_ids(target)
            if limit is not None and len(p) + len(c) > limit:
                raise ValueError(f"example of {len(p) + len(c)} tokens exceeds the model's context of {limit}")
            out.append({"input_ids": list(p) + list(c), "completion_mask": [0] * len(p) + [1] * len(c)})
        return out

    def _args(self, cfg: dict, steps: int, ckpt_dir: Path, progress: bool):
        import torch

        on_cuda = self.policy.device.type == "cuda"
        return sft_config(
            ckpt_dir, steps=steps, lr=float(cfg["lr"]), batch_size=int(cfg["batch_size"]), seed=int(cfg["seed"]),
            on_cuda=on_cuda, progress=progress, save_steps=int(cfg["save_steps"] or 0),
            lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, optim="adamw_torch", max_length=None,
            gradient_checkpointing=True, bf16=on_cuda and self.policy.dtype == torch.bfloat16, logging_steps=1,
            logging_first_step=True, remove_unused_columns=False, include_num_input_tokens_seen="non_padding",
        )  # fmt: skip

    def build_trainer(self, examples: Sequence[tuple[Context, str]], cfg: dict, ckpt_dir, *,
                      progress: bool = False, callbacks=None):  # fmt: skip
        """A fresh LoRA adapter on the base model and the ``SFTTrainer`` that trains it. The
        caller must call ``release()`` afterwards (removes the adapter layers)."""
        from datasets import Dataset
        from peft import get_peft_model
        from transformers import set_seed
        from trl import SFTTrainer

        cfg = check_lora_cfg(cfg)
        if not examples:
            raise ValueError("no training examples")
        steps, _ = resolve_steps(cfg, len(examples))
        encoded = self.encode(examples)
        self.release()
        if self.policy.model is not self.policy.base_model:
            self.policy.load_adapter(None)  # train on the bare base model
        set_seed(int(cfg["seed"]))  # LoRA init (and everything after) depends on the seed only
        # LoRA layers go into the base model in place: the shared policy scores WITH them until
        # release(), so nothing may score with it during a run
        self._peft = get_peft_model(self.policy.base_model, lora_config(cfg))
        tok = self.tokenizer
        side = tok.padding_side
        try:
            trainer = SFTTrainer(
                model=self._peft,
                args=self._args(cfg, steps, Path(ckpt_dir), progress),
                train_dataset=Dataset.from_list(encoded),
                processing_class=tok,
                callbacks=callbacks,
            )
        except BaseException:
            self.release()
            raise
        finally:
            tok.padding_side = side
        # the loss is logged every step (for train_log.json), not printed every step
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        if progress:
            trainer.add_callback(_bar_only_callback())
        return trainer, encoded

    def release(self) -> None:
        """Remove the LoRA layers of the last run from the base model (no merge)."""
        peft = getattr(self, "_peft", None)
        if peft is not None:
            base = peft.unload()
            self.policy.base_model = base
            self.policy.model = base
            base.eval()
            self._peft = None
            self.policy.clear_memo()

    def base_logprobs(self, contexts: Sequence[Context]) -> list:
        """The bare base model's action log-probabilities at ``contexts`` (no adapter)."""
        self.release()
        if self.policy.model is not self.policy.base_model:
            self.policy.load_adapter(None)
        return self.policy.action_logprobs(list(contexts)) if len(contexts) else []

    def run(self, examples: Sequence[tuple[Context, str]], cfg: dict, out_dir: str | os.PathLike, *,
            progress: bool = True, callbacks=None, meta: dict | None = None,
            anchor: Sequence[tuple[Context, str]] = (), drift=None) -> dict[str, Any]:  # fmt: skip
        """Train a fresh adapter on ``examples`` plus the ``anchor`` pairs (``teachable.anchor``);
        write ``adapter/`` and ``train_log.json`` under ``out_dir`` (see the module docstring).
        ``drift``: ``anchor.drift_contexts``' frame: the log records the adapter's KL to the base
        there. Returns the train log."""
        import peft
        import torch
        import transformers
        import trl

        from .documents import TRAIN_LOG
        from .io import atomic_dir, write_doc, write_json

        t0 = time.time()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        ckpt_dir = out_dir / "checkpoints"
        cfg = check_lora_cfg(cfg)
        from .anchor import drift_kl, target_marginal

        base_lp = self.base_logprobs(drift["context"].tolist()) if drift is not None else None
        trainer, encoded = self.build_trainer([*examples, *anchor], cfg, ckpt_dir, progress=progress,
                                              callbacks=callbacks)  # fmt: skip
        try:
            fp = _fingerprint(encoded, cfg, str(self.model_dir))
            resume = latest_checkpoint(ckpt_dir)
            fp_file = ckpt_dir / _FINGERPRINT
            if resume is not None:
                old = json.loads(fp_file.read_text()).get("fingerprint") if fp_file.is_file() else None
                if old != fp:
                    log.warning("discarding checkpoints in %s: they belong to other examples or config", ckpt_dir)
                    shutil.rmtree(ckpt_dir)
                    resume = None
                else:
                    log.info("resuming from %s", resume)
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            write_json({"fingerprint": fp}, fp_file)
            t1 = time.time()
            result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
            train_seconds = time.time() - t1
            state = trainer.state
            curve = [[int(h["step"]), float(h["loss"])] for h in state.log_history if "loss" in h]
            model = trainer.model
            with atomic_dir(out_dir / "adapter") as tmp:
                model.save_pretrained(str(tmp))
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            total = sum(p.numel() for p in model.parameters())
            drift_log = None
            if drift is not None:  # the adapter's layers sit in the policy's model until release()
                model.eval()
                self.policy.clear_memo()
                tuned_lp = self.policy.action_logprobs(drift["context"].tolist()) if len(drift) else []
                drift_log = drift_kl(base_lp, tuned_lp, drift["task_id"].tolist(), seed=int(cfg["seed"]))
        finally:
            self.release()
        n_tok = [sum(e["completion_mask"]) for e in encoded]
        _, epochs = resolve_steps(cfg, len(encoded))
        log_dict = {
            "examples": len(examples),
            "anchor_examples": len(anchor),
            "target_marginal": target_marginal(t for _, t in examples),
            "anchor_marginal": target_marginal(t for _, t in anchor),
            "drift": drift_log,
            "epochs": epochs,
            "optimizer_steps": int(state.global_step),
            "tokens_trained": int(state.num_input_tokens_seen),
            "loss_curve": curve,
            "final_loss": curve[-1][1] if curve else float(result.training_loss),
            "mean_train_loss": float(result.training_loss),
            "mean_prompt_tokens": sum(len(e["input_ids"]) - k for e, k in zip(encoded, n_tok)) / len(encoded),
            "mean_completion_tokens": sum(n_tok) / len(encoded),
            "trainable_params": int(trainable),
            "total_params": int(total),
            "resumed_from": resume.name if resume else None,
            "train_seconds": round(train_seconds, 3),
            "seconds": round(time.time() - t0, 3),
            "cfg": cfg,
            "model_dir": str(self.model_dir),
            "device": str(self.policy.device),
            "threads": int(torch.get_num_threads()),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "trl": trl.__version__, "peft": peft.__version__},  # fmt: skip
            **({"meta": meta} if meta else {}),
        }
        write_doc(log_dict, TRAIN_LOG, out_dir / "train_log.json")
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        return log_dict


def train_lora(model_dir: str | os.PathLike, examples: Sequence[tuple[Context, str]], cfg: dict,
               out_dir: str | os.PathLike, *, progress: bool = True, trainer: LoraTrainer | None = None,
               callbacks=None, meta: dict | None = None, student: dict | None = None,
               env_id: str | None = None, anchor: Sequence[tuple[Context, str]] = (),
               drift=None) -> dict[str, Any]:  # fmt: skip
    """LoRA SFT of the model in ``model_dir`` on ``examples`` (see the module docstring).

    ``trainer``: a ``LoraTrainer`` that already holds the model (many runs, one load); else one is
    made from the ``student`` config section (device, dtype; the schema's defaults) for
    ``env_id``'s family (its system prompt renders the examples).
    ``meta``: run metadata copied into train_log.json. ``callbacks``: transformers callbacks.
    ``anchor``, ``drift``: ``LoraTrainer.run``'s."""
    if trainer is None:
        from .policies import make_trainable

        if env_id is None:
            raise ValueError("train_lora needs env_id (its family's system prompt renders the examples) or a trainer")
        trainer = LoraTrainer(model_dir, policy=make_trainable(student or {}, str(model_dir), env_id=env_id))
    return trainer.run(examples, cfg, out_dir, progress=progress, callbacks=callbacks, meta=meta, anchor=anchor,
                       drift=drift)
