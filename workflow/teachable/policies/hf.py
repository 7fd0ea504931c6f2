"""Scoring policy backed by a local Hugging Face causal LM (optionally with a LoRA adapter).

Each valid action is scored by its *sequence* log-likelihood as the assistant's complete answer:
the action's tokens followed by the end-of-turn token(s) the model's chat template writes after an
assistant message. Scores are normalised over the valid set (log-softmax), as the SPEC's U asks.

Batching: a chunk of (left-padded) prompts runs through the model once, filling a KV cache; then
only the candidate tokens run against that cache, with position ids that continue each prompt's
real length. Two equivalent ways of sharing the prompt cache among a prompt's candidates:

- ``packed`` (default with sdpa/eager attention): all candidates of a prompt are packed into ONE
  row after the prompt, with a 4D attention mask in which every candidate sees the prompt's real
  tokens and the earlier tokens of its own candidate only; the cache is never copied per candidate.
- ``expand`` (any attention implementation): the cache is expanded to one row per candidate
  (``DynamicCache.batch_select_indices`` with repeated row indices, so states may have different
  numbers of valid actions) and the candidates run right-padded with a 2D mask.

Both equal scoring every full prompt+candidate sequence on its own (tested to 1e-4).

Nothing here touches the network: the model directory must be a local directory with a
``config.json`` (the embedded student built by ``teachable.student_init``, or any HF model dir).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .base import Context
from .chat_scoring import ChatScoringPolicy, check_adapter_dir


def configure_threads() -> int:
    """Use every CPU core unless the environment pins a thread count (OMP_NUM_THREADS)."""
    if not os.environ.get("OMP_NUM_THREADS"):
        n = os.cpu_count() or 1
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    return torch.get_num_threads()


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, dtype)


class HFPolicy(ChatScoringPolicy):
    """Scores valid actions with a local causal LM; see the module docstring.

    ``batch_size`` is the number of *prompts* per forward pass. ``memo_size`` bounds the memo of
    normalised scores keyed by rendered prompt (and valid actions); it is cleared whenever the
    adapter changes. ``kv_mode``: "packed", "expand" or "auto" (packed with sdpa/eager
    attention). ``device``/``dtype`` "auto": CUDA + bf16 where available, else CPU + float32.
    Threads: all CPU cores unless OMP_NUM_THREADS is set (Snakemake sets it to the rule's threads).
    ``system_prompt``: the env family's student system prompt (``envs.registry.system_prompt``).
    ``generates``: the family is free-form, so the policy generates (``ChatScoringPolicy``) with
    the ``student.generate`` keys in ``generate``.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        adapter_dir: str | os.PathLike | None = None,
        device: str = "auto",
        dtype: str | torch.dtype = "auto",
        batch_size: int = 64,
        memo_size: int = 200_000,
        name: str | None = None,
        kv_mode: str = "auto",
        attn_implementation: str | None = None,
        merge_adapter: bool = False,
        *,
        system_prompt: str,
        generate: Mapping | None = None,
        generates: bool = False,
    ) -> None:
        from transformers import AutoModelForCausalLM

        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._init_chat(model_dir, system_prompt, memo_size)
        configure_threads()
        self.device = _resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        self.batch_size = int(batch_size)
        self.name = name or f"hf:{self.model_dir.name}"

        self.tokenizer.padding_side = "left"
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0

        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        self.base_model = AutoModelForCausalLM.from_pretrained(
            str(self.model_dir), local_files_only=True, dtype=self.dtype, **extra
        ).to(self.device)
        self.base_model.eval()
        self.model = self.base_model
        attn = getattr(self.base_model.config, "_attn_implementation", None)
        if kv_mode == "auto":
            kv_mode = "packed" if attn in ("sdpa", "eager") else "expand"
        if kv_mode not in ("packed", "expand"):
            raise ValueError(f"kv_mode must be 'auto', 'packed' or 'expand', got {kv_mode!r}")
        if kv_mode == "packed" and attn not in ("sdpa", "eager"):
            raise ValueError(f"kv_mode='packed' needs sdpa or eager attention, the model uses {attn!r}")
        self.kv_mode = kv_mode
        self.min_shared_prefix = 4  # tokens; a shorter common prefix is not run separately
        self._additive_mask = attn == "eager"
        self.adapter_dir: Path | None = None
        self._merged = False
        if adapter_dir is not None:
            self.load_adapter(adapter_dir, merge=merge_adapter)
        self._init_generation(generate, generates)

    # ------------------------------------------------------------------ adapters / memo
    def load_adapter(self, adapter_dir: str | os.PathLike | None, merge: bool = False) -> None:
        """Put a LoRA adapter on the base model (``None``: back to the base model).

        ``merge=True`` folds the adapter into the base weights (peft ``merge_and_unload``): the
        same function, without the LoRA layers' extra work on every forward pass (evaluation
        is ~2x faster on a small model); the base weights are then gone, so no other adapter
        can be loaded afterwards."""
        from peft import PeftModel

        if self._merged:
            raise RuntimeError(f"adapter {self.adapter_dir} was merged into the weights; load a new policy")
        if self.model is not self.base_model:
            self.base_model = self.model.unload()  # removes the LoRA layers, no merge
            self.model = self.base_model
        self.adapter_dir = None
        if adapter_dir is not None:
            path = check_adapter_dir(adapter_dir)
            self.model = PeftModel.from_pretrained(self.base_model, str(path), is_trainable=False)
            self.model.to(self.device)
            self.adapter_dir = path
            if merge:
                self.base_model = self.model = self.model.merge_and_unload()
                self._merged = True
        self.model.eval()
        self.clear_memo()

    # ------------------------------------------------------------------ scoring
    def _score(self, prompt_ids: list[list[int]], actions: list[tuple[str, ...]]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(prompt_ids)
        order = sorted(range(len(prompt_ids)), key=lambda j: len(prompt_ids[j]))  # less padding per chunk
        score = self._score_packed if self.kv_mode == "packed" else self._score_shared_kv
        for s in range(0, len(order), self.batch_size):
            chunk = order[s : s + self.batch_size]
            for j, sc in zip(chunk, score([prompt_ids[j] for j in chunk], [actions[j] for j in chunk])):
                out[j] = sc
        return out  # type: ignore[return-value]

    @staticmethod
    def _normalise(seq_ll: torch.Tensor, counts: list[int]) -> list[np.ndarray]:
        res, k = [], 0
        for n in counts:
            v = seq_ll[k : k + n].double()
            res.append((v - torch.logsumexp(v, 0)).numpy())
            k += n
        return res

    def _prompt_pass(self, prompt_ids: list[list[int]]):
        """Prompts through the model: (attention mask (B, K), next-token log-probs after each
        prompt (B, V), the KV cache of length K).

        The chunk's common token prefix (the system prompt and more) runs once, as one row, and
        its cache is repeated for every prompt; the rest of each prompt runs left-padded after
        it (padding sits between prefix and suffix; masks and position ids skip it)."""
        from transformers import DynamicCache

        dev = self.device
        B = len(prompt_ids)
        L = self._common_prefix_len(prompt_ids) if B > 1 else 0
        cache = DynamicCache(config=self.base_model.config)
        if L >= self.min_shared_prefix:
            self.model(
                input_ids=torch.tensor([prompt_ids[0][:L]], dtype=torch.long, device=dev),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            cache.batch_repeat_interleave(B)
        else:
            L = 0
        rest = [p[L:] for p in prompt_ids]
        R = max(len(r) for r in rest)
        inp = torch.full((B, R), self.pad_id, dtype=torch.long)
        att = torch.zeros((B, L + R), dtype=torch.long)
        att[:, :L] = 1
        for b, r in enumerate(rest):
            inp[b, R - len(r) :] = torch.tensor(r, dtype=torch.long)
            att[b, L + R - len(r) :] = 1
        inp, att = inp.to(dev), att.to(dev)
        pos = (att.cumsum(-1) - 1).clamp(min=0)[:, L:]
        out = self.model(
            input_ids=inp,
            attention_mask=att,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        first_lp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        return att, first_lp, out.past_key_values

    @staticmethod
    def _common_prefix_len(seqs: list[list[int]]) -> int:
        """Length of the common prefix, leaving every sequence at least one token of its own."""
        first, n = seqs[0], min(len(x) for x in seqs) - 1
        for x in seqs[1:]:
            k = 0
            while k < n and x[k] == first[k]:
                k += 1
            n = k
            if n == 0:
                break
        return max(n, 0)

    @torch.inference_mode()
    def _score_packed(self, prompt_ids: list[list[int]], actions: list[tuple[str, ...]]) -> list[np.ndarray]:
        dev = self.device
        att, first_lp, cache = self._prompt_pass(prompt_ids)
        B, P = att.shape
        plen = att.sum(-1)
        # per row: the candidates' input tokens (all but the last) back to back; each predicts
        # the next token of its own candidate; the first token is predicted by the prompt
        rows_in, rows_tgt, rows_seg, rows_pos, first, cand_row = [], [], [], [], [], []
        n = 0
        for b, acts in enumerate(actions):
            r_in, r_tgt, r_seg, r_pos = [], [], [], []
            for a in acts:
                ids = self.candidate_ids(a)
                first.append(ids[0])
                cand_row.append(b)
                r_in += ids[:-1]
                r_tgt += ids[1:]
                r_seg += [n] * (len(ids) - 1)
                r_pos += list(range(len(ids) - 1))
                n += 1
            rows_in.append(r_in)
            rows_tgt.append(r_tgt)
            rows_seg.append(r_seg)
            rows_pos.append(r_pos)
        N = n
        row_idx = torch.tensor(cand_row, dtype=torch.long, device=dev)
        seq_ll = first_lp[row_idx, torch.tensor(first, dtype=torch.long, device=dev)]
        S = max(len(r) for r in rows_in)
        if S > 0:
            inp = torch.full((B, S), self.pad_id, dtype=torch.long)
            tgt = torch.zeros((B, S), dtype=torch.long)
            seg = torch.full((B, S), -1, dtype=torch.long)
            rel = torch.zeros((B, S), dtype=torch.long)
            for b in range(B):
                k = len(rows_in[b])
                if k:
                    inp[b, :k] = torch.tensor(rows_in[b])
                    tgt[b, :k] = torch.tensor(rows_tgt[b])
                    seg[b, :k] = torch.tensor(rows_seg[b])
                    rel[b, :k] = torch.tensor(rows_pos[b])
            inp, tgt, seg, rel = inp.to(dev), tgt.to(dev), seg.to(dev), rel.to(dev)
            real = seg >= 0
            q = torch.arange(S, device=dev)
            # candidate part: same candidate and not in the future (pads see nothing there)
            same = (seg[:, :, None] == seg[:, None, :]) & real[:, :, None]
            cand_vis = same & (q[None, None, :] <= q[None, :, None])
            prompt_vis = att.bool()[:, None, :].expand(B, S, P)  # every query sees the real prompt
            mask = torch.cat([prompt_vis, cand_vis], dim=-1)[:, None]  # (B, 1, S, P + S)
            if self._additive_mask:
                mask = torch.zeros(mask.shape, dtype=self.dtype, device=dev).masked_fill(
                    ~mask, torch.finfo(self.dtype).min
                )
            out = self.model(
                input_ids=inp,
                attention_mask=mask,
                position_ids=plen[:, None] + rel,
                past_key_values=cache,
                use_cache=True,
            )
            lp = torch.log_softmax(out.logits.float(), dim=-1)
            tok_lp = lp.gather(-1, tgt[:, :, None]).squeeze(-1).masked_fill(~real, 0.0)
            seg_flat = torch.where(real, seg, torch.full_like(seg, N)).reshape(-1)
            sums = torch.zeros(N + 1, dtype=tok_lp.dtype, device=dev).scatter_add_(0, seg_flat, tok_lp.reshape(-1))
            seq_ll = seq_ll + sums[:N]
        return self._normalise(seq_ll.cpu(), [len(a) for a in actions])

    @torch.inference_mode()
    def _score_shared_kv(
        self, prompt_ids: list[list[int]], actions: list[tuple[str, ...]]
    ) -> list[np.ndarray]:
        dev = self.device
        att, first_lp, cache = self._prompt_pass(prompt_ids)

        rows: list[int] = []
        cands: list[list[int]] = []
        for b, acts in enumerate(actions):
            for a in acts:
                rows.append(b)
                cands.append(self.candidate_ids(a))
        N = len(rows)
        C = max(len(c) for c in cands)
        cid = torch.full((N, C), self.pad_id, dtype=torch.long)
        cmask = torch.zeros((N, C), dtype=torch.long)
        for n, c in enumerate(cands):
            cid[n, : len(c)] = torch.tensor(c, dtype=torch.long)
            cmask[n, : len(c)] = 1
        cid, cmask = cid.to(dev), cmask.to(dev)
        row_idx = torch.tensor(rows, dtype=torch.long, device=dev)

        seq_ll = first_lp[row_idx, cid[:, 0]]
        if C > 1:
            cache.batch_select_indices(row_idx)  # one KV row per candidate (rows repeat)
            plen = att.sum(-1)[row_idx]  # each prompt's real length
            c_pos = plen[:, None] + torch.arange(C - 1, device=dev)[None, :]
            c_att = torch.cat([att[row_idx], cmask[:, : C - 1]], dim=1)
            out2 = self.model(
                input_ids=cid[:, : C - 1],
                attention_mask=c_att,
                position_ids=c_pos,
                past_key_values=cache,
                use_cache=True,
            )
            lp = torch.log_softmax(out2.logits.float(), dim=-1)  # (N, C-1, V)
            tok_lp = lp.gather(-1, cid[:, 1:, None]).squeeze(-1) * cmask[:, 1:]
            seq_ll = seq_ll + tok_lp.sum(-1)
        return self._normalise(seq_ll.cpu(), [len(a) for a in actions])

    # ------------------------------------------------------------------ generation
    def _sample_ids(self, prompt_ids: list[list[int]], temperatures: list[float], seeds: list[int],
                    max_new: int) -> list[tuple[list[int], bool]]:  # fmt: skip
        out: list[tuple[list[int], bool] | None] = [None] * len(prompt_ids)
        order = sorted(range(len(prompt_ids)), key=lambda j: len(prompt_ids[j]))  # less padding per chunk
        for s in range(0, len(order), self.batch_size):
            chunk = order[s : s + self.batch_size]
            got = self._sample_chunk([prompt_ids[j] for j in chunk], [temperatures[j] for j in chunk],
                                     [seeds[j] for j in chunk], max_new)  # fmt: skip
            for j, res in zip(chunk, got):
                out[j] = res
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _sample_chunk(self, prompt_ids: list[list[int]], temperatures: list[float], seeds: list[int],
                      max_new: int) -> list[tuple[list[int], bool]]:  # fmt: skip
        """Token by token on the prompts' KV cache (``_prompt_pass``): row b's next token is drawn
        by inverse CDF of softmax(log p / T_b) with a uniform of its own stream (seed ``seeds[b]``;
        T_b <= 0: argmax), so what a row draws does not depend on the other rows."""
        dev = self.device
        B = len(prompt_ids)
        att, lp, cache = self._prompt_pass(prompt_ids)
        pos = att.sum(-1)  # the next token's position in each row
        rngs = [np.random.default_rng(s) for s in seeds]
        temps = torch.tensor(temperatures, dtype=torch.float64, device=dev)
        hot = temps > 0
        stop = torch.tensor(sorted(self.stop_ids), dtype=torch.long, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        tokens: list[torch.Tensor] = []
        for t in range(max_new):
            z = lp.double() / temps.clamp(min=1e-6)[:, None]
            cdf = torch.softmax(z, dim=-1).cumsum(-1)
            u = torch.tensor([r.random() for r in rngs], dtype=torch.float64, device=dev) * cdf[:, -1]
            drawn = torch.searchsorted(cdf, u[:, None], right=True).squeeze(1).clamp(max=cdf.shape[1] - 1)
            nxt = torch.where(hot, drawn, lp.argmax(-1))
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            tokens.append(torch.where(done, torch.full_like(nxt, -1), nxt))
            done = done | torch.isin(nxt, stop)
            if bool(done.all()) or t == max_new - 1:
                break
            att = torch.cat([att, torch.ones((B, 1), dtype=att.dtype, device=dev)], dim=1)
            out = self.model(input_ids=nxt[:, None], attention_mask=att, position_ids=pos[:, None],
                             past_key_values=cache, use_cache=True)  # fmt: skip
            pos = pos + 1
            lp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        drawn_ids = torch.stack(tokens, dim=1).cpu().tolist() if tokens else [[] for _ in range(B)]
        res = []
        for b, row in enumerate(drawn_ids):
            ids = [t for t in row if t >= 0]
            ended = bool(ids) and ids[-1] in self.stop_ids
            res.append((ids[:-1] if ended else ids, not ended))
        return res

    @torch.inference_mode()
    def action_logprobs_full(self, contexts: list[Context], batch_size: int = 1) -> list[np.ndarray]:
        """Reference scorer without KV sharing or memo: every prompt+candidate sequence runs in
        full (``batch_size`` sequences per pass, right-padded). For tests and benchmarks."""
        p_ids = self.prompt_ids(contexts)
        seqs: list[tuple[list[int], int]] = []  # (ids, prompt length)
        counts = []
        for ctx, p in zip(contexts, p_ids):
            counts.append(len(ctx.valid_actions))
            for a in ctx.valid_actions:
                seqs.append((p + self.candidate_ids(a), len(p)))
        lls = torch.empty(len(seqs), dtype=torch.float64)
        for s in range(0, len(seqs), batch_size):
            chunk = seqs[s : s + batch_size]
            L = max(len(x) for x, _ in chunk)
            inp = torch.full((len(chunk), L), self.pad_id, dtype=torch.long)
            att = torch.zeros((len(chunk), L), dtype=torch.long)
            for r, (x, _) in enumerate(chunk):
                inp[r, : len(x)] = torch.tensor(x)
                att[r, : len(x)] = 1
            logits = self.model(input_ids=inp.to(self.device), attention_mask=att.to(self.device)).logits
            lp = torch.log_softmax(logits.float(), dim=-1).cpu()
            for r, (x, pl) in enumerate(chunk):
                tgt = torch.tensor(x[pl:])
                lls[s + r] = lp[r, pl - 1 : len(x) - 1].gather(-1, tgt[:, None]).sum().double()
        return self._normalise(lls, counts)
