"""U of a generate-only student (``policies.base.GenerativePolicy``) at a state, by the policy's
``u_source``:

- ``samples``: the entropy of the empirical distribution of ``k_samples`` parsed answers
  (``base.sampled_logprobs``); ``U_k`` = k.
- ``logprobs``: from the server's top token logprobs of the answers (``resolve``): each answer is
  one sampled path through the model's token tree with, at every position, the top alternatives.
  An alternative extends the sampled prefix into a candidate answer (probability: the prefix's x
  its own). The answers' paths are descended to their ends, so an action an answer named gets the
  probability of its full text; a candidate no answer went on with is assigned to the one valid
  action it is consistent with; one consistent with several actions ("turn" of "turn left" and
  "turn right") is resolved only where an answer descends it, and the probability of one no
  answer descended (its *undescended* mass, e.g. "Make " of a family's six "Make ..." actions) is
  split evenly among the actions it is consistent with (``U_logprob_split``: how much of the
  distribution is that assumption); one consistent with none is mass outside the valid actions.
  Answers are
  asked at T = 1, a few at a time (1, 1, 2, 4, ... up to ``k_samples``), and their trees merged,
  until the resolved probability on valid actions (``U_logprob_mass``) reaches
  ``min_logprob_mass``, or, after ``k_samples`` answers, the resolved plus the split
  (``U_logprob_split``) does; U is the entropy of the assigned and split
  probabilities normalised over the valid actions. (Without the split, a shared prefix never
  descended takes its actions' probability out of U: on the embedded student of that family, whose
  "Make "/"Place " branches hold about 9 % spread over ten actions, U came out 0.2 nats low.) Where the server returns no logprobs, or ``k_samples`` answers resolve too little, it
  is an error naming the config key.
- ``auto``: logprobs where they resolve the distribution; elsewhere the answers already asked are
  samples, topped up to ``k_samples`` (``U_estimator: samples``).

On a free-form family (the parsers are ``base.StateReader``s) U is always the entropy of
``k_samples`` samples grouped by the key of their effect at the state (``from_keyed_samples``,
``keyed_estimates``; any backend that generates): the token tree cannot be resolved into
effects, so ``u_source: logprobs`` is an error naming the key there, and ``auto`` is samples.

Consistency of a candidate with an action: the answer formats are the bare action name and every
frame seen at the state (a sampled answer that parses to action a and contains a's name literally
is ``prefix + a + suffix``, e.g. ``{"action": "turn left"}``: frame ``{"action": "`` / ``"}``). A
candidate is consistent with action b when, compared case-insensitively without leading
whitespace, some format of b starts with it, or it starts with that format and the rest is
whitespace or periods. Assumed, not observed: a prefix no answer went on with, consistent with
one action only, is completed to it (an upper bound on that action's probability), and a sampled
answer that ends where it completes an action (while a longer one could go on) is that action. Not resolved: alternatives beyond the top ``top_logprobs``, branches
consistent with several actions that no answer descended, aliases the lenient parser maps
("forward" -> "go forward"). The end-of-turn token is not in ``logprobs.content``, so an action's
probability here is that of its text, without the end of turn a scoring backend multiplies in.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .base import (
    U_AUTO,
    U_LOGPROBS,
    U_SAMPLES,
    U_SOURCES,
    ActionDistribution,
    Answer,
    Context,
    GenerativePolicy,
    U_TEMPERATURE,
    Parser,
    SampleRequest,
    StateReader,
    TokenLogprob,
    free_form,
    sampled_logprobs,
)

log = logging.getLogger(__name__)

_TAIL = " \t\r\n."  # what may follow a complete answer


class UEstimateError(RuntimeError):
    """U cannot come from the configured source (``u_source: logprobs``)."""


# ------------------------------------------------------------------------ the token tree


@dataclass(frozen=True)
class Resolution:
    """Where the probability of the answers' token tree went (each a sum of probabilities)."""

    probs: np.ndarray  # per valid action, the probability assigned to it
    undescended: float  # branches consistent with several actions that no answer descended
    outside: float  # branches consistent with no valid action
    split: np.ndarray | None = None  # per valid action, its even share of the undescended branches

    @property
    def mass(self) -> float:
        """The resolved mass: the probability assigned to valid actions (before normalising;
        the split of undescended branches not counted)."""
        return float(self.probs.sum())

    @property
    def split_mass(self) -> float:
        return 0.0 if self.split is None else float(self.split.sum())

    def logprobs(self) -> np.ndarray:
        """log of the assigned probabilities plus the undescended branches' even split,
        normalised over the valid actions (-inf: none assigned; all NaN where nothing was)."""
        if self.mass <= 0:
            return np.full(len(self.probs), np.nan)
        p = self.probs if self.split is None else self.probs + self.split
        with np.errstate(divide="ignore"):
            return np.log(p / p.sum())


def answer_frame(text: str, action: str | None) -> tuple[str, str] | None:
    """(the text before, the text after) ``action``'s name in an answer that parsed to it, where
    the name is in it literally (case-insensitive, first occurrence); None otherwise."""
    if not action:
        return None
    i = text.lower().find(action.lower())
    return None if i < 0 else (text[:i], text[i + len(action):])


def _norm(s: str) -> str:
    return s.lstrip().lower()


def _consistent(candidate: str, target: str) -> bool:
    return target.startswith(candidate) or (candidate.startswith(target) and not candidate[len(target):].strip(_TAIL))


def _complete(candidate: str, target: str) -> bool:
    return candidate.startswith(target) and not candidate[len(target):].strip(_TAIL)


def resolve(paths: Sequence[Sequence[TokenLogprob]], valid_actions: Sequence[str],
            frames: Iterable[tuple[str, str]] = ()) -> Resolution:  # fmt: skip
    """The valid actions' probabilities from the token logprobs of sampled answers (``paths``),
    merged into one tree (module docstring). ``frames``: the answer formats seen at the state,
    besides the bare action name."""
    fmts = {("", ""), *frames}
    targets = {a: {_norm(f + a + s) for f, s in fmts} for a in valid_actions}
    prob: dict[tuple[str, ...], float] = {}  # node (the token texts from the root) -> its probability
    expanded: set[tuple[str, ...]] = set()  # nodes whose alternatives an answer reported
    ends: set[tuple[str, ...]] = set()  # where an answer ended
    for path in paths:
        node, lp = (), 0.0
        for tok in path:
            expanded.add(node)
            alts: dict[str, float] = defaultdict(float)
            for text, alt_lp in tok.top:
                if text != tok.token:  # an alternative with the sampled token's text IS the sampled token
                    alts[text] += math.exp(lp + alt_lp)
            for text, p in alts.items():
                prob.setdefault((*node, text), p)
            lp += tok.logprob
            node = (*node, tok.token)
            prob.setdefault(node, math.exp(lp))
        if node:
            ends.add(node)
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
    for node in prob:
        children[node[:-1]].append(node)

    probs = dict.fromkeys(valid_actions, 0.0)
    split = dict.fromkeys(valid_actions, 0.0)
    undescended = outside = 0.0
    stack = [((), tuple(valid_actions))] if () in expanded else []
    while stack:  # every node an answer went through is descended; the others are classified
        node, parent_cons = stack.pop()
        for child in children[node]:
            text = _norm("".join(child))
            cons = tuple(a for a in parent_cons if any(_consistent(text, t) for t in targets[a]))
            if not cons:
                outside += prob[child]
            elif child in expanded:
                stack.append((child, cons))
            elif len(cons) == 1:  # the answer that ended here, or a prefix assumed to complete
                probs[cons[0]] += prob[child]
            elif child in ends and len(done := [a for a in cons if any(_complete(text, t) for t in targets[a])]) == 1:
                probs[done[0]] += prob[child]
            else:
                undescended += prob[child]
                for a in cons:
                    split[a] += prob[child] / len(cons)
    return Resolution(np.array([probs[a] for a in valid_actions], dtype=np.float64), undescended, outside,
                      np.array([split[a] for a in valid_actions], dtype=np.float64))  # fmt: skip


# ------------------------------------------------------------------------ U at many states


def u_columns(est: ActionDistribution | None) -> dict[str, object]:
    """The columns beside U that say how a generate-only student's U was estimated
    (``schemas.SAMPLED_U``), of ``est`` or of a state whose U was not estimated (None)."""
    if est is None:
        return {"U_estimator": None, "U_k": 0, "U_logprob_mass": float("nan"), "U_logprob_split": float("nan")}
    return {"U_estimator": est.estimator, "U_k": est.k, "U_logprob_mass": est.mass, "U_logprob_split": est.split}


def _parsed(parse: Parser, text: str, ctx: Context) -> str | None:
    a = parse(text)
    return a if a in ctx.valid_actions else None


def from_samples(texts: Sequence[str], parse: Parser, ctx: Context) -> ActionDistribution:
    lp, n_invalid = sampled_logprobs([_parsed(parse, t, ctx) for t in texts], ctx.valid_actions)
    return ActionDistribution(lp, U_SAMPLES, len(texts), n_invalid=n_invalid)


def from_logprobs(answers: Sequence[Answer], parse: Parser, ctx: Context) -> tuple[ActionDistribution, Resolution]:
    parsed = [_parsed(parse, a.text, ctx) for a in answers]
    frames = [f for a, p in zip(answers, parsed) if (f := answer_frame(a.text, p))]
    res = resolve([a.tokens or () for a in answers], ctx.valid_actions, frames)
    est = ActionDistribution(res.logprobs(), U_LOGPROBS, len(answers), res.mass, res.split_mass, sum(p is None for p in parsed))
    return est, res


def from_keyed_samples(texts: Sequence[str], reader: StateReader) -> ActionDistribution:
    """A free-form state's distribution from its samples ``texts``: the samples ``reader`` reads
    grouped by the key of their effect (``ActionDistribution.keys``, first-sampled order, with the
    first action of each); unreadable samples are left out and counted (``n_invalid``)."""
    support: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for text in texts:
        action = reader(text)
        if action is not None:
            key = reader.key(action)
            support.setdefault(key, action)
            counts[key] += 1
    n_valid = sum(counts.values())
    if n_valid == 0:
        lp = np.full(1, np.nan)
    else:
        lp = np.log(np.array([counts[k] for k in support], dtype=np.float64) / n_valid)
    return ActionDistribution(lp, U_SAMPLES, len(texts), n_invalid=len(texts) - n_valid, keys=tuple(support),
                              actions=tuple(support.values()))  # fmt: skip


def keyed_estimates(policy, ctxs: Sequence[Context], readers: Sequence[StateReader], k: int) -> list[ActionDistribution]:
    """U's estimate at each free-form state: ``k`` samples ``u0``..``u{k-1}`` at T = 1
    (``policy.generate``, one batched call), grouped by key (``from_keyed_samples``)."""
    texts = policy.generate([SampleRequest(ctx, f"u{i}", U_TEMPERATURE) for ctx in ctxs for i in range(k)])
    return [from_keyed_samples(texts[n * k:(n + 1) * k], r) for n, r in enumerate(readers)]


def estimate_u(policy: GenerativePolicy, ctxs: Sequence[Context], parsers: Sequence[Parser]) -> list[ActionDistribution]:
    """U's estimate at each state (module docstring), ``parsers[i]`` reading answers at
    ``ctxs[i]``; every round of requests is one batched ``policy.answer`` call."""
    source, k, key = policy.u_source, policy.k_samples, policy.config_section
    if source not in U_SOURCES:
        raise ValueError(f"config key {key}.u_source={source!r}: expected one of {list(U_SOURCES)}")
    if not ctxs:
        return []
    if free_form(parsers):
        if source == U_LOGPROBS:
            raise UEstimateError(
                f"config key {key}.u_source is 'logprobs', but on a free-form family (its actions are tool calls) "
                f"U is the entropy of {key}.k_samples samples grouped by their effect at the state: set "
                f"{key}.u_source: samples or auto")  # fmt: skip
        out = keyed_estimates(policy, ctxs, parsers, k)
        policy.record_u({U_SAMPLES: len(ctxs)})
        return out
    if source == U_SAMPLES:
        texts = policy.generate([q for ctx in ctxs for q in policy.u_requests(ctx)])
        return [from_samples(texts[n * k:(n + 1) * k], parse, ctx) for n, (ctx, parse) in enumerate(zip(ctxs, parsers))]
    answers: list[list[Answer]] = [[] for _ in ctxs]
    out: list[ActionDistribution | None] = [None] * len(ctxs)
    fallback: dict[int, str] = {}  # state -> why its U comes from samples
    todo = list(range(len(ctxs)))
    while todo:  # rounds of 1, 1, 2, 4, ... answers per state, up to k
        reqs, owners = [], []
        for i in todo:
            n = len(answers[i])
            new = policy.u_requests(ctxs[i], n, n + min(max(n, 1), k - n), top_logprobs=policy.top_logprobs)
            reqs.extend(new)
            owners.extend([i] * len(new))
        for i, a in zip(owners, policy.answer(reqs)):
            answers[i].append(a)
        left = []
        for i in todo:
            ctx, ans = ctxs[i], answers[i]
            if any(a.tokens is None for a in ans):
                if source == U_LOGPROBS:
                    raise UEstimateError(
                        f"config key {key}.u_source is 'logprobs', but the server ({policy.name}) returned no "
                        f"token logprobs; set {key}.u_source: auto (U from {key}.k_samples samples where none "
                        "come back) or samples")  # fmt: skip
                fallback[i] = "no logprobs returned"
                continue
            est, res = from_logprobs(ans, parsers[i], ctx)
            if est.mass >= policy.min_logprob_mass:  # resolved by what the answers showed
                out[i] = est
            elif len(ans) < k:
                left.append(i)
            elif est.mass + est.split >= policy.min_logprob_mass:  # k answers: the even split accounts for the rest
                out[i] = est
            elif source == U_LOGPROBS:
                raise UEstimateError(
                    f"U from logprobs: {k} answers ({key}.k_samples) account for only {est.mass + est.split:.3f} of "
                    f"the answer's probability at a state with valid actions {list(ctx.valid_actions)} (below config "
                    f"key {key}.min_logprob_mass={policy.min_logprob_mass}: {est.mass:.3f} resolved, "
                    f"{res.undescended:.3f} on branches shared by several actions and never descended (split evenly), "
                    f"{res.outside:.3f} on no valid action, the rest beyond the top "
                    f"{key}.top_logprobs={policy.top_logprobs}); lower it, or set {key}.u_source: auto")  # fmt: skip
            else:
                fallback[i] = f"resolved mass below {key}.min_logprob_mass"
        todo = left
    # the answers already asked are samples (T = 1; logprobs do not change sampling); top up to k
    rest = [(i, j) for i in fallback for j in range(len(answers[i]), k)]
    texts = policy.generate([q for i, j in rest for q in policy.u_requests(ctxs[i], j, j + 1)]) if rest else []
    for (i, _), t in zip(rest, texts):
        answers[i].append(Answer(t))
    for i in fallback:
        out[i] = from_samples([a.text for a in answers[i]], parsers[i], ctxs[i])
    n_lp = sum(e.estimator == U_LOGPROBS for e in out)
    why = {w: sum(v == w for v in fallback.values()) for w in set(fallback.values())}
    policy.record_u({U_LOGPROBS: n_lp, U_SAMPLES: len(ctxs) - n_lp, **why})
    log.debug("U at %d states: %d from token logprobs, %d from %d samples %s", len(ctxs), n_lp, len(fallback), k, why)
    if fallback and source == U_AUTO and not policy.warned_u_fallback:
        policy.warned_u_fallback = True
        log.warning("%s.u_source auto: U at %d of %d states from samples instead of token logprobs (%s); each row "
                    "says so (U_estimator), the usage counts them", key, len(fallback), len(ctxs), why)  # fmt: skip
    return out  # type: ignore[return-value]
