"""Student policy interfaces and the context they act on. A backend declares what it can do
(``capability``):

- ``SCORE`` (``Policy``; HF transformers): for each context, the log-probability of every valid
  action, normalised over the valid set (each action's sequence log-likelihood under the model).
  Sampling with a temperature is done by the caller (``teachable.rollouts``), so every scoring
  backend shares one sampler, and U is the entropy of that distribution.
- ``GENERATE`` (``GenerativePolicy``; an OpenAI-compatible chat endpoint): only text for a
  context. The caller parses it with the env family's lenient parser (unparseable ->
  ``INVALID_ACTION``, counted), and U is estimated from ``k_samples`` parsed samples at the state
  (``sampled_logprobs``); tables that carry such a U say so (``U_estimator``, ``U_k``).
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


class GenerativePolicy(ABC):
    """A generate-only backend: text for each request, nothing else."""

    name: str
    capability = GENERATE
    k_samples: int  # parsed samples behind a U estimate (written beside U as U_k)

    @abstractmethod
    def generate(self, requests: list[SampleRequest]) -> list[str]:
        """The model's answer text for each request, in order. Batched: the backend runs many
        requests at once."""

    def u_requests(self, ctx: Context) -> list[SampleRequest]:
        """The ``k_samples`` requests whose parsed answers estimate U at ``ctx``."""
        return [SampleRequest(ctx, f"u{i}", U_TEMPERATURE) for i in range(self.k_samples)]


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
