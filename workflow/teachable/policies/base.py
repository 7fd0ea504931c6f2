"""The student protocol (``StudentPolicy``): every backend behind one call, as BALROG puts its
model backends, so that no caller branches on what the backend is. A backend implements:

- ``act(contexts, draws, temperature=, parsers=, with_u=)``: what the student does at each
  context (``Act``: the action played, ``INVALID_ACTION`` where an answer parses to no valid
  action; its probability; U at the state; the answer's text). The random draws are the
  caller's, one ``Draw`` per context, so the caller decides which contexts share randomness
  (``teachable.rollouts``: keyed by (snapshot or task, rollout index, step)).
- ``distribution(contexts, parsers)``: the student's distribution over each context's valid
  actions, with how it was estimated (``ActionDistribution.estimator``): exact scores, or a
  generate-only backend's estimate from its answers.
- ``usage_summary()``, ``close()``; ``load_adapter`` where the backend serves LoRA adapters.
- Declared for callers that must know: ``exact_u`` (the distribution is the model's own, so the
  tables carry no columns saying how U was estimated) and ``metered`` (``usage_summary`` counts
  API requests, tokens and cost).

Two kinds of backend implement it:

- ``Policy``, a scoring backend (HF transformers, vLLM): for each context, the log-probability
  of every valid action, normalised over the valid set (each action's sequence log-likelihood
  under the model). It samples with the temperature by inverse CDF (``sample_action``: one
  uniform of the context's draw), and U is the entropy of that distribution.
- ``GenerativePolicy``, a generate-only backend (an OpenAI-compatible chat endpoint): only text
  for a context (with the server's top token logprobs where asked: ``Answer.tokens``). Each act
  asks for one sample keyed by the context's draw (so a re-run asks for the same samples) and
  parses it with the caller's parser (the env family's lenient one; unparseable ->
  ``INVALID_ACTION``, counted). U is estimated at the state (``policies.generated_u``, by the
  policy's ``u_source``) from ``k_samples`` parsed samples, or from the answers' top token
  logprobs; tables that carry such a U say which (``U_estimator``, ``U_k``,
  ``U_logprob_mass``, ``U_logprob_split``).

On a free-form family (an action is any well-formed call of its tools, and the
observation's ``valid_actions`` are templates, not a menu) every backend generates: the caller
gives a ``StateReader`` per state instead of a bare parser (the family's lenient parse, which
also says whether it repaired the text, and the state's key of an action's effect,
``ActionSpace.at(env).key``). An act is one sample keyed by the draw, read by the reader
(unreadable -> ``INVALID_ACTION``; ``Act.repaired``); U is the entropy of ``k_samples`` samples
grouped by key (``ActionDistribution.keys``), and the act's ``prob`` is its key's share of them
(``sampled_acts``, ``generated_u.from_keyed_samples``).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..envs.base import INVALID_ACTION

U_EXACT = "exact"  # estimator of a scoring backend's distribution: its exact scores (no U_estimator column)
U_SAMPLES = "samples"  # U_estimator of a U estimated from k parsed samples
U_LOGPROBS = "logprobs"  # U_estimator of a U from the answers' top token logprobs
U_AUTO = "auto"  # u_source: logprobs where they resolve the distribution, else samples
U_SOURCES = (U_AUTO, U_LOGPROBS, U_SAMPLES)
U_TEMPERATURE = 1.0  # U is the entropy of the model's own distribution (T = 1), as for a scoring backend

Parser = Callable[[str], "str | None"]  # an answer's text -> an action (the family's lenient parser)


@dataclass(frozen=True)
class StateReader:
    """How a free-form family's answers are read at one state (module docstring): ``read`` (text
    -> (the canonical action or None, whether the parser repaired the text to read it)) and
    ``key`` (an action -> the key of its effect at the state). Called on a text it is a
    ``Parser``."""

    read: Callable[[str], "tuple[str | None, bool]"]
    key: Callable[[str], str]

    def __call__(self, text: str) -> str | None:
        return self.read(text)[0]


def free_form(parsers: Sequence[Parser]) -> bool:
    """Whether ``parsers`` are a free-form family's ``StateReader``s (all of them) rather than a
    finite family's parsers (none); an error where a batch mixes the two."""
    kinds = {isinstance(p, StateReader) for p in parsers}
    if len(kinds) > 1:
        raise ValueError("a batch of contexts mixes free-form states (StateReader) and finite ones (a bare parser)")
    return kinds == {True}


@dataclass(frozen=True)
class Context:
    instruction: str
    observation: str
    history: tuple[str, ...]  # the student's most recent actions, oldest first
    valid_actions: tuple[str, ...]
    patch: str | None = None  # CPT / supervision text shown with the observation


class Draw:
    """The random draws of one context at one step, taken on demand from ``rng``: a scoring
    backend takes one uniform (none at T = 0), a generate-only backend one sample key. The caller
    chooses the stream: ``teachable.rollouts`` gives each step of a rollout its own generator,
    keyed by (snapshot or task, rollout index, step) (``seeding.RolloutKey``), so conditions stay
    paired whatever a step consumes, and a generate-only backend's sample key is the same for
    every condition at that (snapshot, rollout, step)."""

    __slots__ = ("rng",)

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def uniform(self) -> float:
        """A uniform draw in [0, 1)."""
        return float(self.rng.random())

    def key(self) -> int:
        """A sample key in [0, 2**62)."""
        return int(self.rng.integers(2**62))


@dataclass(frozen=True)
class ActionDistribution:
    """The student's distribution over a context's valid actions and how it was estimated:
    ``U_EXACT`` (a scoring backend's scores), ``U_SAMPLES`` or ``U_LOGPROBS`` (a generate-only
    backend's answers, ``policies.generated_u``; the tables' ``U_estimator``)."""

    logprobs: np.ndarray  # log distribution over the valid actions (all NaN: none, e.g. no valid sample)
    estimator: str  # U_EXACT | U_SAMPLES | U_LOGPROBS
    k: int = 0  # answers behind it: parsed samples, or answers whose logprobs were merged (0: exact)
    mass: float = float("nan")  # the resolved logprob mass (NaN unless logprobs)
    split: float = float("nan")  # the undescended branches' mass split evenly into it (NaN unless logprobs)
    n_invalid: int = 0  # answers that parsed to no valid action
    # a free-form state's support (None: the context's valid_actions): the effects' keys sampled, in
    # first-sampled order, and the first action sampled with each (``logprobs`` is over these)
    keys: tuple[str, ...] | None = None
    actions: tuple[str, ...] | None = None

    def key_prob(self, key: str) -> float:
        """The probability of the effect ``key`` (a free-form state's): its share of the valid
        samples (0 where none had it; NaN where no sample was valid)."""
        if self.keys is None:
            raise ValueError("key_prob needs a free-form state's distribution (over keys); this one is over the "
                             "context's valid actions")  # fmt: skip
        if np.isnan(self.logprobs).any():
            return float("nan")
        return float(np.exp(self.logprobs[self.keys.index(key)])) if key in self.keys else 0.0

    @property
    def U(self) -> float:  # noqa: N802 - the SPEC's name
        return float("nan") if np.isnan(self.logprobs).any() else entropy_of(self.logprobs)


@dataclass(frozen=True)
class Act:
    """What the student did at one context (``StudentPolicy.act``)."""

    action: str  # a valid action, or INVALID_ACTION (an answer that parsed to none)
    prob: float  # the student's probability of it (NaN: not known, a generate-only student)
    U: float  # entropy (nats) of its distribution at the state (NaN: not estimated)
    u_est: ActionDistribution | None = None  # U's estimate where it is not exact (asked with with_u)
    text: str | None = None  # the answer's text (a generate-only student)
    repaired: bool = False  # the reader had to repair the text to read the action (a free-form family)


class StudentPolicy(ABC):
    """The student protocol (module docstring): what every backend implements and declares."""

    name: str
    exact_u: bool = True  # distribution() is the model's own; False: estimated, rows say how (generated_u.u_columns)
    metered: bool = False  # usage_summary() counts API requests, tokens and cost

    @abstractmethod
    def act(self, contexts: Sequence[Context], draws: Sequence[Draw], *, temperature: float,
            parsers: Sequence[Parser], with_u: bool = False) -> list[Act]:  # fmt: skip
        """The student's act at each context at sampling ``temperature``, ``draws[i]`` its random
        draws and ``parsers[i]`` reading an answer at ``contexts[i]``; with ``with_u``, U at the
        state also where it costs requests (a backend that estimates U leaves it NaN otherwise).
        Batched: one call acts at many states."""

    @abstractmethod
    def distribution(self, contexts: Sequence[Context], parsers: Sequence[Parser]) -> list[ActionDistribution]:
        """The student's distribution over each context's valid actions, ``parsers[i]`` reading
        answers at ``contexts[i]``. Batched."""

    def usage_summary(self) -> dict[str, Any]:
        """What the backend has used so far: its own counts (``metered``: API requests, tokens and
        cost); empty where it counts nothing."""
        return {}

    def load_adapter(self, adapter_dir: str | os.PathLike | None, merge: bool = False) -> None:
        """Act with the LoRA adapter in ``adapter_dir`` from now on (None: the base model); a
        backend that serves no adapters refuses."""
        raise ValueError(f"the student {self.name} cannot load LoRA adapters ({adapter_dir}): a trained adapter needs "
                         "student.backend: hf or vllm")  # fmt: skip

    def close(self) -> None:
        """Free what the backend holds (an engine, connections); nothing by default."""


def sampling_probs(logprobs: np.ndarray, temperature: float) -> np.ndarray:
    """The distribution ``sample_action`` draws from: softmax(logprobs / T); T == 0 puts all the
    mass on the argmax (first on ties)."""
    if temperature <= 0:
        p = np.zeros(len(logprobs))
        p[int(np.argmax(logprobs))] = 1.0
        return p
    z = logprobs / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    if not np.isfinite(p).all():
        raise ValueError(f"cannot sample from the log-probabilities {np.asarray(logprobs).tolist()}")
    return p


def sample_action(logprobs: np.ndarray, temperature: float, draw: Draw) -> int:
    """Index of an action sampled from softmax(logprobs / T) (``sampling_probs``) by inverse CDF
    with one uniform of ``draw`` (the index numpy's ``Generator.choice`` draws from the same
    stream); T == 0 is argmax (first on ties) and takes no draw."""
    if temperature <= 0:
        return int(np.argmax(logprobs))
    p = sampling_probs(logprobs, temperature)
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return int(cdf.searchsorted(draw.uniform(), side="right"))


class Policy(StudentPolicy):
    """A scoring backend: it implements ``action_logprobs``, and acts by sampling it."""

    @abstractmethod
    def action_logprobs(self, contexts: list[Context]) -> list[np.ndarray]:
        """For each context, log p(a | context) for a in context.valid_actions, normalised
        over the valid set (logsumexp == 0). Batched: one call scores many states."""

    def act(self, contexts: Sequence[Context], draws: Sequence[Draw], *, temperature: float,
            parsers: Sequence[Parser] = (), with_u: bool = False) -> list[Act]:  # fmt: skip
        """Each context's action sampled from its scores (``sample_action``), with its probability
        and U under them, from one ``action_logprobs`` call (``parsers``: unused, every action
        is a valid one; U costs nothing, so it is always there)."""
        if parsers and free_form(parsers):
            raise ValueError(f"the student {self.name} scores a finite menu of actions and cannot act on a free-form "
                             "family (its actions are written, not chosen): it needs a backend that generates")  # fmt: skip
        out = []
        for ctx, draw, lp in zip(contexts, draws, self.action_logprobs(list(contexts))):
            j = sample_action(lp, temperature, draw)
            p = np.exp(lp - np.logaddexp.reduce(lp))
            u = float(-(p * np.log(np.clip(p, 1e-300, None))).sum())
            out.append(Act(ctx.valid_actions[j], float(p[j]), u))
        return out

    def distribution(self, contexts: Sequence[Context], parsers: Sequence[Parser] = ()) -> list[ActionDistribution]:
        """The exact scores (``action_logprobs``; ``parsers`` unused)."""
        if parsers and free_form(parsers):
            raise ValueError(f"the student {self.name} scores a finite menu of actions; a free-form family's "
                             "distribution comes from generated samples")  # fmt: skip
        return [ActionDistribution(lp, U_EXACT) for lp in self.action_logprobs(list(contexts))] if contexts else []


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


class GenerativePolicy(StudentPolicy):
    """A generate-only backend: it implements ``answer`` (text for each request, with token
    logprobs where asked and the server returns them), and acts by parsing one sample. How U is
    estimated (``policies.generated_u``): ``u_source`` (``U_SOURCES``), ``k_samples`` answers at
    most, ``top_logprobs`` alternatives per token and ``min_logprob_mass``; ``config_section``
    names the config keys in errors."""

    name: str
    exact_u = False
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

    def act(self, contexts: Sequence[Context], draws: Sequence[Draw], *, temperature: float,
            parsers: Sequence[Parser], with_u: bool = False) -> list[Act]:  # fmt: skip
        """Each context's action: the parsed answer of one sample keyed by its draw
        (``INVALID_ACTION`` where it parses to no valid action), all in one batched request;
        with ``with_u``, U's estimate at the state (``distribution``), else U is NaN
        (``sampled_acts``)."""
        return sampled_acts(self, contexts, draws, temperature=temperature, parsers=parsers, with_u=with_u)

    def distribution(self, contexts: Sequence[Context], parsers: Sequence[Parser]) -> list[ActionDistribution]:
        """U's estimate at each state by ``u_source`` (``policies.generated_u.estimate_u``)."""
        from .generated_u import estimate_u

        return estimate_u(self, contexts, parsers)

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


def sample_seed(sample: str) -> int:
    """The seed of a sample key (stable across runs and machines): a request's seed (OpenAI), the
    sampling stream of a generating local backend."""
    return int.from_bytes(hashlib.sha256(sample.encode("utf-8")).digest()[:4], "big")


def sampled_acts(policy: StudentPolicy, contexts: Sequence[Context], draws: Sequence[Draw], *, temperature: float,
                 parsers: Sequence[Parser], with_u: bool) -> list[Act]:  # fmt: skip
    """A generating student's acts (``GenerativePolicy.act``; any backend on a free-form family):
    per context the answer of one sample ``r<key>`` keyed by its draw, read by its parser
    (``INVALID_ACTION`` where it reads no valid action: a finite family's, one outside the
    context's valid actions; a free-form family's, none). With ``with_u``, U's estimate at the
    state (``policy.distribution``); on a free-form family the act's ``prob`` is then its key's
    share of the samples (``ActionDistribution.key_prob``), else NaN."""
    reqs = [SampleRequest(ctx, f"r{draw.key()}", temperature) for ctx, draw in zip(contexts, draws)]
    texts = policy.generate(reqs)
    ests = policy.distribution(contexts, parsers) if with_u else [None] * len(contexts)
    nan = float("nan")
    out = []
    for ctx, parse, text, est in zip(contexts, parsers, texts, ests):
        if isinstance(parse, StateReader):
            action, repaired = parse.read(text)
            action = INVALID_ACTION if action is None else action
            prob = est.key_prob(parse.key(action)) if est is not None and action != INVALID_ACTION else nan
        else:
            action, repaired, prob = parse(text), False, nan
            action = action if action in ctx.valid_actions else INVALID_ACTION
        out.append(Act(action, prob, est.U if est is not None else nan, est, text, repaired))
    return out


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
