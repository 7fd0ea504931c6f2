"""What every client of an OpenAI-compatible chat completions API shares (the teacher, the
OpenAI student): the API key read from a named environment variable, one ``openai.OpenAI``
client, a completion with its token usage and fault kind, and the on-disk response cache.

Transport retries (429 with Retry-After / retry-after-ms honoured, 5xx, timeouts, dropped
connections) are the openai client's own loop: ``max_retries`` attempts after the first, with
exponential backoff (0.5 s doubling, at most 8 s) where the server gives no Retry-After. What the
client gives up on becomes a ``TransportFailure`` whose ``kind`` says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import openai

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
LOCAL_DUMMY_KEY = "sk-local-dummy"
# Errors that no retry can fix: the configuration is wrong, so stop instead of recording
# one failure per request.
CONFIG_ERRORS = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


@dataclass(frozen=True)
class EndpointConfig:
    """What every OpenAI-compatible endpoint section shares (``teacher.openai``,
    ``student.openai``); a subclass adds its own fields and names its ``SECTION``."""

    SECTION: ClassVar[str]
    base_url: str
    model: str
    api_key_env: str  # the NAME of the variable holding the key
    timeout_s: float
    max_retries: int  # transport retries (the openai client's backoff)
    concurrency: int  # requests in flight
    cache_dir: str | None  # None: no disk cache
    price_per_1m_input: float
    price_per_1m_output: float

    @classmethod
    def from_dict(cls, cfg: dict[str, Any] | None):
        """The section with the config schema's defaults (the only source of them) and checks;
        an unknown key is an error naming it."""
        from teachable.config import section

        return cls(**section(cls.SECTION, cfg))

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """A request's cost at the configured prices per million tokens."""
        return (prompt_tokens * self.price_per_1m_input + completion_tokens * self.price_per_1m_output) / 1e6


class MissingAPIKeyError(RuntimeError):
    """The environment variable named by ``<section>.api_key_env`` is not set."""


def is_local(base_url: str) -> bool:
    return (urlparse(base_url).hostname or "") in LOCAL_HOSTS


def resolve_api_key(api_key_env: str, base_url: str, *, who: str, section: str, instead: str) -> str:
    """The key in the variable named ``api_key_env``; a dummy key for a local server; else a
    ``MissingAPIKeyError`` naming the variable, the config key ``<section>.api_key_env`` and
    what to configure ``instead``. The key itself is never logged or written."""
    key = os.environ.get(api_key_env, "").strip()
    if key:
        return key
    if is_local(base_url):
        return LOCAL_DUMMY_KEY
    raise MissingAPIKeyError(
        f"{who} needs an API key in the environment variable {api_key_env} (named by "
        f"{section}.api_key_env), which is not set; export {api_key_env}=... or use {instead}"
    )


def make_client(base_url: str, api_key: str, timeout_s: float, max_retries: int) -> openai.OpenAI:
    """One client (a connection pool shared by threads) with the client's retry loop."""
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries)


# ------------------------------------------------------------------------------ completions


class TransportFailure(Exception):
    """The request failed after the client's own retries (or could not be made); ``kind`` is
    one of ``TRANSPORT_KINDS``."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


TRANSPORT_KINDS = ("rate_limited", "server_error", "timeout", "connection", "http_error")


@dataclass(frozen=True)
class Completion:
    content: str  # the assistant message text ("" when the server sent none)
    prompt_tokens: int
    completion_tokens: int
    retries: int  # transport retries the client took before this answer
    # the answer's token logprobs as the API sends them (``logprobs.content``: per token its
    # "token", "logprob" and "top_logprobs"); None where not asked or not sent
    logprobs: list[dict[str, Any]] | None = None


def complete(client: openai.OpenAI, **kwargs: Any) -> Completion:
    """One chat completion (``kwargs`` go to ``chat.completions.create``). Configuration errors
    (401, 403, 404) are raised as they are; ``BadRequestError`` is raised for the caller to
    inspect; every other API error becomes a ``TransportFailure``."""
    try:
        raw = client.chat.completions.with_raw_response.create(**kwargs)
    except (*CONFIG_ERRORS, openai.BadRequestError):
        raise
    except openai.APIError as exc:
        raise TransportFailure(describe(exc), transport_kind(exc)) from exc
    completion = raw.parse()
    text = completion.choices[0].message.content if completion.choices else None
    usage = completion.usage
    lp = getattr(completion.choices[0], "logprobs", None) if completion.choices else None
    content = getattr(lp, "content", None)
    return Completion(
        content=text or "",
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        retries=int(getattr(raw, "retries_taken", 0) or 0),
        logprobs=None if content is None else [
            {"token": t.token, "logprob": t.logprob,
             "top_logprobs": [{"token": a.token, "logprob": a.logprob} for a in t.top_logprobs or ()]}
            for t in content
        ],
    )  # fmt: skip


def transport_kind(exc: openai.APIError) -> str:
    """The ``TRANSPORT_KINDS`` kind of an error the client gave up on."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    status = getattr(exc, "status_code", None) or 0
    return "rate_limited" if status == 429 else "server_error" if status >= 500 else "http_error"


def describe(exc: openai.APIError) -> str:
    status = getattr(exc, "status_code", None)
    prefix = f"HTTP {status}" if status else type(exc).__name__
    return f"{prefix}: {exc}"


# ---------------------------------------------------------------------------- disk cache


def cache_key(**fields: Any) -> str:
    """sha256 of the request fields (model, messages, sampling parameters, sample index...)
    as canonical JSON."""
    blob = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """One JSON file per key; writes are atomic (temp file in the same folder + os.replace)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:  # cannot happen with atomic writes; treat as a miss
            log.warning("unreadable cache entry %s; ignoring it", self.path(key))
            return None

    def put(self, key: str, record: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, ensure_ascii=False, indent=1)
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
