"""What every scoring backend on a local HF model directory shares (``HFPolicy``, ``VLLMPolicy``):
the tokenizer and its chat template, the rendered prompt of a context, the token ids of an
action's complete answer, and the memo of normalised scores.

An action's score is its *sequence* log-likelihood as the assistant's complete answer: the
action's tokens followed by the end-of-turn token(s) the model's chat template writes after an
assistant message, normalised over the valid set (log-softmax), as the SPEC's U asks. Two
backends that share this class score the same token ids after the same prompt ids, so they
differ only by their engines' arithmetic.

On a free-form family (``generative``: the HTML family, whose actions are tool calls) such a
backend generates instead (``policies.base`` module docstring): ``generate`` samples up to
``student.generate.max_new_tokens`` tokens per request after the same prompt, each request's
tokens drawn from its own stream seeded by its rendered prompt and sample key (``sample_seed``),
so a re-run draws the same text whatever the batch; an answer that reaches the limit is counted
(``usage_summary``: ``truncations``). Its acts and U come from samples (``base.sampled_acts``,
``generated_u.keyed_estimates`` with ``student.generate.k_samples``): ``exact_u`` is false there.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import numpy as np

from .base import (
    Act,
    ActionDistribution,
    Context,
    Draw,
    Parser,
    Policy,
    SampleRequest,
    free_form,
    sample_seed,
    sampled_acts,
)
from .prompt import build_messages

_SENTINEL = "\u2063ACTION\u2063"  # an improbable string, located in the rendered assistant turn
_DUMMY = Context(instruction="x", observation="x", history=(), valid_actions=("x",))


def check_model_dir(model_dir: str | os.PathLike | None) -> Path:
    """A local HF model directory with a config and weights, or an error naming what lacks."""
    if model_dir is None or not Path(model_dir).is_dir():
        raise FileNotFoundError(
            f"student model directory {model_dir} does not exist (config key student.model_path, or the "
            "output of rule student_init: a local Hugging Face model directory; hub ids are never downloaded)"
        )
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"student model directory {path} has no config.json")
    weights = [p.name for p in path.iterdir() if p.name.endswith((".safetensors", ".bin", ".safetensors.index.json",
                                                                  ".bin.index.json"))]  # fmt: skip
    if not weights:
        raise FileNotFoundError(f"student model directory {path} has no weights (no *.safetensors or *.bin file): "
                                "an interrupted save_pretrained? rebuild it (rule student_init) or point "
                                "student.model_path at a complete model directory")  # fmt: skip
    return path


def check_adapter_dir(adapter_dir: str | os.PathLike) -> Path:
    path = Path(adapter_dir)
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"LoRA adapter directory {path} is missing or has no adapter_config.json")
    return path


class ChatScoringPolicy(Policy):
    """Prompts, candidate token ids and the score memo of a scoring backend (module docstring).

    A subclass loads its engine and implements ``_score(prompt_ids, actions)``: the normalised
    log-probabilities of each prompt's actions. ``memo_size`` bounds the memo of normalised
    scores keyed by rendered prompt and valid actions; a subclass clears it whenever the
    weights it scores with change (``clear_memo``)."""

    config_section = "student.generate"  # the keys of a free-form family's generation
    generative = False  # generates its actions (a free-form family) instead of scoring valid ones

    def _init_chat(self, model_dir: str | os.PathLike, system_prompt: str, memo_size: int) -> None:
        from transformers import AutoTokenizer

        self.model_dir = check_model_dir(model_dir)
        self.system_prompt = system_prompt  # the env family's (envs.registry.system_prompt)
        self.memo_size = int(memo_size)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        if self.tokenizer.chat_template is None:
            raise ValueError(f"tokenizer in {self.model_dir} has no chat_template")
        self._prefix_text, self._suffix_text = self._assistant_wrapping()
        self._cand_cache: dict[str, list[int]] = {}
        self._memo: OrderedDict[tuple[str, tuple[str, ...]], np.ndarray] = OrderedDict()
        self.memo_hits = 0
        self.memo_misses = 0

    # ------------------------------------------------------------------ memo
    def clear_memo(self) -> None:
        self._memo.clear()

    @property
    def memo_stats(self) -> dict[str, int]:
        return {"hits": self.memo_hits, "misses": self.memo_misses, "size": len(self._memo)}

    def usage_summary(self) -> dict[str, int | str]:
        """The model, the states scored (memo misses) and the states answered from the memo; on a
        free-form family the samples, generated tokens and truncated answers."""
        out = {"model": self.name, "states_scored": self.memo_misses, "memo_hits": self.memo_hits}
        return {**out, **self.generation_usage} if self.generative else out

    def _memo_put(self, key: tuple[str, tuple[str, ...]], value: np.ndarray) -> None:
        if self.memo_size <= 0:
            return
        self._memo[key] = value
        if len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)

    # ------------------------------------------------------------------ prompts and candidates
    def render_prompt(self, ctx: Context) -> str:
        return self.tokenizer.apply_chat_template(
            build_messages(ctx, system=self.system_prompt), add_generation_prompt=True, tokenize=False
        )

    def _assistant_wrapping(self) -> tuple[str, str]:
        """Text the chat template puts before / after the assistant's content, derived from the
        template itself. The suffix is cut after its first special token (the end of turn), so a
        candidate is the complete answer and nothing of a following turn."""
        tok = self.tokenizer
        msgs = build_messages(_DUMMY, system=self.system_prompt)
        prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        full = tok.apply_chat_template(
            msgs + [{"role": "assistant", "content": _SENTINEL}], tokenize=False
        )
        eos = tok.eos_token or ""
        if not full.startswith(prompt) or _SENTINEL not in full[len(prompt) :]:
            return "", eos
        turn = full[len(prompt) :]
        i = turn.index(_SENTINEL)
        prefix, suffix = turn[:i], turn[i + len(_SENTINEL) :]
        specials = sorted((t for t in tok.all_special_tokens if t), key=len, reverse=True)
        cut = None
        for pos in range(len(suffix)):
            for t in specials:
                if suffix.startswith(t, pos):
                    cut = pos + len(t)
                    break
            if cut is not None:
                break
        if cut is not None:
            suffix = suffix[:cut]
        elif not suffix.strip():
            suffix = eos
        return prefix, suffix

    def candidate_text(self, action: str) -> str:
        return self._prefix_text + action + self._suffix_text

    def candidate_ids(self, action: str) -> list[int]:
        """Token ids of an action's complete answer, as tokenized right after a prompt."""
        ids = self._cand_cache.get(action)
        if ids is None:
            tok = self.tokenizer
            prompt = self.render_prompt(_DUMMY)
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            f_ids = tok(prompt + self.candidate_text(action), add_special_tokens=False)["input_ids"]
            if f_ids[: len(p_ids)] == p_ids:
                ids = f_ids[len(p_ids) :]
            else:  # a token merges across the boundary: fall back to tokenizing alone
                ids = tok(self.candidate_text(action), add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError(f"action {action!r} tokenizes to nothing")
            self._cand_cache[action] = ids
        return ids

    def prompt_ids(self, contexts: Sequence[Context]) -> list[list[int]]:
        prompts = [self.render_prompt(c) for c in contexts]
        return self.tokenizer(prompts, add_special_tokens=False)["input_ids"]

    # ------------------------------------------------------------------ generation (a free-form family)
    def _init_generation(self, generate: Mapping | None, free: bool) -> None:
        """Generate on a free-form family (``free``) with the ``student.generate`` keys
        ``max_new_tokens`` and ``k_samples`` (module docstring)."""
        self.generative = bool(free)
        self.exact_u = not self.generative
        self.generation_usage = {"samples": 0, "generated_tokens": 0, "truncations": 0}
        if not self.generative:
            return
        if not generate:
            raise ValueError(f"{self.name}: a free-form family needs the config section student.generate "
                             "(max_new_tokens, k_samples)")  # fmt: skip
        self.max_new_tokens = int(generate["max_new_tokens"])
        self.k_samples = int(generate["k_samples"])
        tok = self.tokenizer
        stop = {tok.eos_token_id} if tok.eos_token_id is not None else set()
        specials = set(tok.all_special_ids)
        stop |= {t for t in tok(self._suffix_text, add_special_tokens=False)["input_ids"] if t in specials}
        if not stop:
            raise ValueError(f"tokenizer in {self.model_dir} has no end-of-turn token to stop generation at")
        self.stop_ids = frozenset(stop)

    def act(self, contexts: Sequence[Context], draws: Sequence[Draw], *, temperature: float,
            parsers: Sequence[Parser] = (), with_u: bool = False) -> list[Act]:  # fmt: skip
        """Scored (``Policy.act``), or on a free-form family sampled (``base.sampled_acts``)."""
        if not self._generating(parsers):
            return super().act(contexts, draws, temperature=temperature, parsers=parsers, with_u=with_u)
        return sampled_acts(self, contexts, draws, temperature=temperature, parsers=parsers, with_u=with_u)

    def distribution(self, contexts: Sequence[Context], parsers: Sequence[Parser] = ()) -> list[ActionDistribution]:
        """The exact scores, or on a free-form family ``k_samples`` samples grouped by key."""
        if not self._generating(parsers):
            return super().distribution(contexts, parsers)
        from .generated_u import keyed_estimates

        return keyed_estimates(self, contexts, parsers, self.k_samples) if contexts else []

    def _generating(self, parsers: Sequence[Parser]) -> bool:
        if not self.generative:
            return False
        if not parsers or not free_form(parsers):
            raise ValueError(f"{self.name} acts on a free-form family: give each state a policies.base.StateReader "
                             "(its parse and the key of an action's effect there, ActionSpace.at(env))")  # fmt: skip
        return True

    def generate(self, requests: list[SampleRequest]) -> list[str]:
        """Each request's answer text: at most ``max_new_tokens`` tokens sampled at its
        temperature from the stream seeded by its rendered prompt and sample key, up to the end
        of turn (not included)."""
        if not requests:
            return []
        prompts = [self.render_prompt(r.ctx) for r in requests]
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        seeds = [sample_seed(f"{p}\0{r.sample}") for p, r in zip(prompts, requests)]
        outs = self._sample_ids(ids, [float(r.temperature) for r in requests], seeds, self.max_new_tokens)
        u = self.generation_usage
        u["samples"] += len(outs)
        u["generated_tokens"] += sum(len(t) for t, _ in outs)
        u["truncations"] += sum(trunc for _, trunc in outs)
        return self.tokenizer.batch_decode([t for t, _ in outs], skip_special_tokens=True)

    def _sample_ids(self, prompt_ids: list[list[int]], temperatures: list[float], seeds: list[int],
                    max_new: int) -> list[tuple[list[int], bool]]:  # fmt: skip
        """Per prompt, the sampled token ids (without the stop token) and whether ``max_new`` cut
        the answer short."""
        raise NotImplementedError(f"{type(self).__name__} cannot generate")

    # ------------------------------------------------------------------ scoring
    def action_logprobs(self, contexts: list[Context]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(contexts)
        pending: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        for i, ctx in enumerate(contexts):
            if not ctx.valid_actions:
                raise ValueError("context has no valid actions")
            key = (self.render_prompt(ctx), tuple(ctx.valid_actions))
            hit = self._memo.get(key)
            if hit is not None:
                self._memo.move_to_end(key)
                self.memo_hits += 1
                out[i] = hit.copy()
            elif key in pending:
                self.memo_hits += 1  # a duplicate inside this call is scored once
                pending[key].append(i)
            else:
                self.memo_misses += 1
                pending[key] = [i]
        if pending:
            keys = list(pending)
            ids = self.tokenizer([k[0] for k in keys], add_special_tokens=False)["input_ids"]
            scores = self._score(ids, [k[1] for k in keys])
            for key, sc in zip(keys, scores):
                self._memo_put(key, sc)
                for i in pending[key]:
                    out[i] = sc.copy()
        return out  # type: ignore[return-value]

    @abstractmethod
    def _score(self, prompt_ids: list[list[int]], actions: list[tuple[str, ...]]) -> list[np.ndarray]:
        """For each prompt (token ids), the normalised log-probabilities of its actions."""
