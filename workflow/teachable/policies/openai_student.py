"""A generate-only student behind any OpenAI-compatible chat completions API
(``student.backend: openai``; keys under ``student.openai``).

- The prompt is the family's chat prompt (``prompt.build_messages`` with the family's system
  prompt); the answer is text that the caller parses (``teachable.rollouts``).
- Sampling: temperature of the request (the rollouts' ``student.temperature``; U's samples at
  1.0), ``top_p`` and ``max_tokens`` from the config; with ``send_seed`` a seed derived from the
  sample key, so a server that honours seeds gives the same sample again.
- U (``policies.generated_u``, by ``u_source``): U's requests ask for ``logprobs`` with
  ``top_logprobs`` alternatives unless ``u_source: samples``. A server that refuses them (HTTP
  400) is asked again without (``auto``: counted as ``logprobs_refused``, and later requests no
  longer ask) or stops the job with an error naming ``student.openai.u_source`` (``logprobs``).
- Transport: ``teachable.openai_api`` (the openai client's retries with backoff on 429 honouring
  Retry-After, 5xx, timeouts, dropped connections); ``concurrency`` requests in flight. What
  the client gives up on stops the job with an error naming the fault (``StudentRequestError``):
  a network fault is never played as the student's action.
- Every answer (with its token logprobs) is cached on disk under sha256(model, messages, sampling
  parameters with the logprobs asked, sample key), so a re-run asks for nothing. ``usage`` counts requests, cache hits, tokens, cost and retries,
  and the answers that used all ``max_tokens`` (``truncations``: cut short).
- On a free-form family (HTML) its answers are programs and JSON: ``policies.make_student``
  refuses ``max_tokens`` below ``FREE_FORM_MIN_TOKENS`` (1024) there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import openai

from .. import openai_api
from .base import Answer, GenerativePolicy, SampleRequest, TokenLogprob, sample_seed
from .prompt import build_messages

log = logging.getLogger(__name__)


class StudentRequestError(RuntimeError):
    """A student request failed after the client's retries; ``kind`` is its transport kind."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class OpenAIStudentConfig(openai_api.EndpointConfig):
    """The ``student.openai`` config section: the endpoint's keys and the student's own."""

    SECTION = "student.openai"
    max_tokens: int
    top_p: float
    send_seed: bool  # send a seed derived from the sample key
    k_samples: int  # answers behind a U estimate at most
    u_source: str  # samples | logprobs | auto (policies.generated_u)
    top_logprobs: int  # alternatives per token asked with U's requests (OpenAI: at most 20)
    min_logprob_mass: float  # resolved mass below which the logprobs do not give U


def _empty_usage() -> dict[str, Any]:
    return {"requests": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
            "transport_retries": 0, "failures": 0, "logprobs_refused": 0, "truncations": 0}  # fmt: skip


class OpenAIStudent(GenerativePolicy):
    config_section = OpenAIStudentConfig.SECTION
    metered = True  # usage_summary counts requests, tokens and cost

    def __init__(self, cfg: OpenAIStudentConfig | dict[str, Any] | None = None, *, system_prompt: str) -> None:
        if not isinstance(cfg, OpenAIStudentConfig):
            cfg = OpenAIStudentConfig.from_dict(cfg)
        self.cfg = cfg
        self.name = f"openai:{cfg.model}"
        self.k_samples = int(cfg.k_samples)
        self.u_source = cfg.u_source
        self.top_logprobs = 0 if cfg.u_source == "samples" else int(cfg.top_logprobs)
        self.min_logprob_mass = float(cfg.min_logprob_mass)
        self._logprobs_refused = False  # the server answered HTTP 400 to a request for logprobs (auto)
        self.system_prompt = system_prompt  # the env family's (envs.registry.system_prompt)
        key = openai_api.resolve_api_key(cfg.api_key_env, cfg.base_url, who="the OpenAI student",
                                         section="student.openai", instead="student.backend: hf")  # fmt: skip
        self.client = openai_api.make_client(cfg.base_url, key, cfg.timeout_s, cfg.max_retries)
        self.cache = openai_api.ResponseCache(cfg.cache_dir) if cfg.cache_dir else None
        self.usage = _empty_usage()
        self.u_states: Counter[str] = Counter()  # states whose U came from samples / logprobs, and why not logprobs
        self._lock = threading.Lock()

    def answer(self, requests: list[SampleRequest]) -> list[Answer]:
        workers = min(max(1, int(self.cfg.concurrency)), len(requests))
        if workers <= 1:
            return [self._answer(r) for r in requests]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._answer, requests))

    def close(self) -> None:
        log.info("OpenAI student usage: %s", self.usage_summary())
        self.client.close()

    def usage_summary(self) -> dict[str, Any]:
        """Requests, cache hits, tokens, cost, retries and failures so far, with the config, and
        the states whose U came from each source (``u_states``)."""
        with self._lock:
            return dict(self.usage, u_states=dict(self.u_states), model=self.cfg.model, config=asdict(self.cfg))

    def record_u(self, counts: dict[str, int]) -> None:
        with self._lock:
            self.u_states.update(counts)

    # -- one sample, from the cache or the API

    def params(self, temperature: float, top_logprobs: int = 0) -> dict[str, Any]:
        """The sampling parameters of a request, with the logprobs asked (part of its cache key)."""
        out = {"temperature": float(temperature), "top_p": self.cfg.top_p, "max_tokens": self.cfg.max_tokens}
        return {**out, "logprobs": True, "top_logprobs": int(top_logprobs)} if top_logprobs else out

    def _answer(self, req: SampleRequest) -> Answer:
        if req.top_logprobs and self._logprobs_refused:
            req = SampleRequest(req.ctx, req.sample, req.temperature)  # auto: the server refused them before
        messages = build_messages(req.ctx, system=self.system_prompt)
        params = self.params(req.temperature, req.top_logprobs)
        key = openai_api.cache_key(model=self.cfg.model, messages=messages, params=params, sample=req.sample)
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            self._count(cache_hits=1, truncations=self._truncated(int((cached.get("usage") or {}).get("completion_tokens", 0))))
            return self._as_answer(cached["content"], cached.get("logprobs"))
        kwargs: dict[str, Any] = {"model": self.cfg.model, "messages": messages, **params}
        if self.cfg.send_seed:
            kwargs["seed"] = sample_seed(req.sample)
        try:
            done = openai_api.complete(self.client, **kwargs)
        except openai.BadRequestError as exc:
            if req.top_logprobs:
                return self._logprobs_refused_by(req, exc)
            self._count(failures=1)
            raise StudentRequestError(self._failed(exc), "http_error") from exc
        except openai_api.TransportFailure as exc:
            self._count(failures=1)
            raise StudentRequestError(self._failed(exc), exc.kind) from exc
        cost = self.cfg.cost_usd(done.prompt_tokens, done.completion_tokens)
        self._count(requests=1, prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens,
                    cost_usd=cost, transport_retries=done.retries, truncations=self._truncated(done.completion_tokens))  # fmt: skip
        if self.cache:
            usage = {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens}
            record = {"model": self.cfg.model, "messages": messages, "params": params, "sample": req.sample}
            self.cache.put(key, {"key": key, "request": record, "content": done.content, "usage": usage,
                                 "logprobs": done.logprobs, "created_unix": time.time()})  # fmt: skip
        return self._as_answer(done.content, done.logprobs)

    def _truncated(self, completion_tokens: int) -> int:
        """1 where an answer used all ``student.openai.max_tokens`` (cut short, counted: ``truncations``)."""
        return int(completion_tokens >= int(self.cfg.max_tokens))

    def _failed(self, exc: Exception) -> str:
        return (f"OpenAI student request to {self.cfg.base_url} (model {self.cfg.model}) failed after "
                f"{self.cfg.max_retries} retries (student.openai.max_retries): {exc}")  # fmt: skip

    def _logprobs_refused_by(self, req: SampleRequest, exc: openai.BadRequestError) -> Answer:
        """The server answered HTTP 400 to a request for logprobs: with ``u_source: logprobs`` an
        error naming the key; with ``auto`` the request again without them (counted, logged once)."""
        if self.u_source == "logprobs":
            self._count(failures=1)
            raise StudentRequestError(
                f"{self._failed(exc)}; the server refuses logprobs=true, top_logprobs={req.top_logprobs}, which "
                "config key student.openai.u_source: logprobs needs (set it to auto or samples, or lower "
                "student.openai.top_logprobs)", "http_error") from exc  # fmt: skip
        with self._lock:
            first, self._logprobs_refused = not self._logprobs_refused, True
            self.usage["logprobs_refused"] += 1
        if first:
            log.warning("the server refuses logprobs (%s); student.openai.u_source auto: U from %d samples "
                        "(student.openai.k_samples) from now on", exc, self.k_samples)  # fmt: skip
        return self._answer(SampleRequest(req.ctx, req.sample, req.temperature))

    @staticmethod
    def _as_answer(text: str, logprobs: list[dict[str, Any]] | None) -> Answer:
        return Answer(text, None if logprobs is None else tuple(TokenLogprob.from_api(t) for t in logprobs))

    def _count(self, **delta: float) -> None:
        with self._lock:
            for k, v in delta.items():
                self.usage[k] += v
