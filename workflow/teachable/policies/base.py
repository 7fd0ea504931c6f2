"""Student policy interfaces and the context they act on. A backend declares what it can do
(``capability``):

- ``SCORE`` (``Policy``; HF transformers): for each context, the log-probability of every valid
  action, normalised over the valid set (each action's sequence log-likelihood under the model).
  Sampling with a temperature is done by the caller (``teachable.rollouts``), so every scoring
  backend shares one sampler, and U is the entropy of that distribution.
- ``GENERATE`` (``GenerativePolicy``; an OpenAI-compatible chat endpoint): only text for a
  context (with the server's top token logprobs where asked: ``Answer.tokens``). The caller
  parses it with the env family's lenient parser (unparseable -> ``INVALID_ACTION``, counted).
  U is estimated at the state (``policies.generated_u``, by the policy's ``u_source``) from
  ``k_samples`` parsed samples, or from the answers' top token logprobs; tables that carry such
  a U say which (``U_estimator``, ``U_k``, ``U_logprob_mass``, ``U_logprob_split``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SCORE = "score"
GENERATE = "generate"
U_SAMPLES = "samples"  # U_estimator of a U estimated from k parsed samples
U_LOGPROBS = "logprobs"  # U_estimator of a U from the answers' top token logprobs
U_AUTO = "auto"  # u_source: logprobs where they resolve the distribution, else samples
U_SOURCES = (U_AUTO, U_LOGPROBS, U_SAMPLES)
U_TEMPERATURE = 1.0  # U is the entropy of the model's own distribution (T = 1), as for a scoring backend


@dataclass(frozen=True)
class Context:
    instruction: str
    observation: str
    history: tuple[str, ...]  # the student's most recent actions, oldest first
    valid_actions: tuple[str, ...]
    patch: str | None = None  # CPT / supervision text shown with the observation


class Policy(ABC):
    """A scoring backend."""

    name: str
    capability = SCORE

    @abstractmethod
    def action_logprobs(self, contexts: list[Context]) -> list[np.ndarray]:
        """For each context, log p(a | context) for a in context.valid_actions, normalised
        over the valid set (logsumexp == 0). Batched: one call scores many states."""


@dataclass(frozen=True)
class SampleRequest:
    """One sample of a generate-only policy: the same ``(context, sample, temperature)`` is the
    same sample (a backend with a cache answers it from disk the second time)."""

    ctx: Context
    sample: str  # the sample's key at this context ("u0".."u{k-1}": U's samples; "r<n>": a rollout's)
    temperature: float
    top_logprobs: int = 0  # > 0: ask for the answer's token logprobs with this many alternatives


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token as an OpenAI-compatible server reports it (``logprobs.content``):
    its text, its log-probability, and the top alternatives at its position (text, logprob),
    the sampled token usually among them."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]

    @classmethod
    def from_api(cls, entry: dict) -> TokenLogprob:
        """From the API's JSON (``{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}``)."""
        top = tuple((t["token"], float(t["logprob"])) for t in entry.get("top_logprobs") or ())
        return cls(entry["token"], float(entry["logprob"]), top)


@dataclass(frozen=True)
class Answer:
    text: str
    tokens: tuple[TokenLogprob, ...] | None = None  # None: no logprobs asked, or the server sent none


class GenerativePolicy(ABC):
    """A generate-only backend: text for each request (with token logprobs where asked and
    the server returns them), nothing else. How U is estimated (``policies.generated_u``):
    ``u_source`` (``U_SOURCES``), ``k_samples`` answers at most, ``top_logprobs`` alternatives per
    token and ``min_logprob_mass``; ``config_section`` names the config keys in errors."""

    name: str
    capability = GENERATE
    config_section = "student"
    k_samples: int  # answers behind a U estimate at most (written beside U as U_k)
    u_source: str = U_SAMPLES
    top_logprobs: int = 0
    min_logprob_mass: float = 1.0
    warned_u_fallback: bool = False  # auto fell back to samples, and the log said so once

    @abstractmethod
    def answer(self, requests: list[SampleRequest]) -> list[Answer]:
        """The model's answer for each request, in order. Batched: the backend runs many
        requests at once."""

    def record_u(self, counts: dict[str, int]) -> None:
        """How many states' U came from each source (and why not from logprobs), from one
        ``generated_u.estimate_u`` call; a backend with a usage log counts them."""

    def generate(self, requests: list[SampleRequest]) -> list[str]:
        """The model's answer text for each request, in order."""
        return [a.text for a in self.answer(requests)]

    def u_requests(self, ctx: Context, start: int = 0, stop: int | None = None,
                   top_logprobs: int = 0) -> list[SampleRequest]:  # fmt: skip
        """U's requests ``u<start>``..``u<stop - 1>`` at ``ctx`` (all ``k_samples`` by default)."""
        stop = self.k_samples if stop is None else stop
        return [SampleRequest(ctx, f"u{i}", U_TEMPERATURE, top_logprobs) for i in range(start, stop)]


StudentPolicy = Policy | GenerativePolicy


def generates(policy: object) -> bool:
    """Whether ``policy`` is generate-only (any object with ``action_logprobs`` and no declared
    capability scores)."""
    return getattr(policy, "capability", SCORE) == GENERATE


def sampled_logprobs(parsed: Sequence[str | None], valid_actions: Sequence[str]) -> tuple[np.ndarray, int]:
    """(log of the empirical distribution over ``valid_actions`` of the parsed samples, the
    number of samples that were not a valid action). Invalid samples are left out of the
    distribution (a scoring backend's distribution is over the valid set too); an action never
    sampled has log-probability -inf; with no valid sample every entry is NaN."""
    counts = Counter(a for a in parsed if a in valid_actions)
    n_valid = sum(counts.values())
    n_invalid = len(parsed) - n_valid
    if n_valid == 0:
        return np.full(len(valid_actions), np.nan), n_invalid
    with np.errstate(divide="ignore"):
        lp = np.log(np.array([counts[a] for a in valid_actions], dtype=np.float64) / n_valid)
    return lp, n_invalid


def entropy_of(lp: np.ndarray) -> float:
    """Entropy (nats) of a normalised log-distribution (-inf entries: probability 0)."""
    p = np.exp(lp)
    return float(-(p[p > 0] * lp[p > 0]).sum())
