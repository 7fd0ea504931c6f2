"""Statistics used across phases: intervals for success rates (Wilson for independent trials,
cluster bootstrap for rollouts grouped by task or snapshot) and for any statistic of rows grouped
by task (the same cluster bootstrap), Student-t intervals of means, paired tests, Holm's
adjustment, (partial) Spearman correlations vectorized for resampling, the uncertainty of
action distributions, and the three-valued verdict of a claim on an interval (with Bonferroni's
simultaneous level for a family of intervals). Library calls where a library does it (scipy.stats)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as st


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n == 0."""
    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} outside [0, n={n}]")
    res = st.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(res.low), float(res.high)


def proportion(successes: int, n: int, confidence: float = 0.95) -> dict[str, float]:
    """Point estimate with its n and Wilson interval."""
    lo, hi = wilson_interval(successes, n, confidence)
    return {"p": successes / n if n else float("nan"), "n": int(n), "lo": lo, "hi": hi}


def clopper_pearson(successes, n, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson (exact) interval at level 1 - alpha of binomial proportions, elementwise:
    for one look at a number of trials fixed in advance (``bernoulli_confseq`` for any look)."""
    s, n = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        lo = np.where(s > 0, st.beta.ppf(alpha / 2, s, n - s + 1), 0.0)
        hi = np.where(s < n, st.beta.ppf(1 - alpha / 2, s + 1, n - s), 1.0)
    return lo, hi


CONFSEQ_PRIOR = (0.5, 0.5)  # the Beta mixing distribution of ``bernoulli_confseq`` (Jeffreys)
_BISECTIONS = 60


def bernoulli_confseq(successes, n, alpha: float, prior: tuple[float, float] = CONFSEQ_PRIOR):
    """Anytime-valid confidence sequence for a Bernoulli mean m at level 1 - alpha (a betting CS),
    elementwise over arrays of (successes, n): the set of m where the mixture wealth

        M_n(m) = B(a + S, b + n - S) / B(a, b) / (m^S (1 - m)^(n - S)),   (a, b) = ``prior``

    is below 1 / alpha. M_n(m) is a Beta(a, b)-mixture of the wealths of bettors who stake a constant
    fraction on x - m (the bet with odds p / m is the likelihood ratio of Bernoulli(p)), a
    nonnegative martingale when the mean is m, so by Ville's inequality the sequence covers m at
    every n at once with probability >= 1 - alpha, whatever rule chose the looks or the stopping
    time (Robbins 1970; Howard et al. 2021, "Time-uniform, nonparametric, nonasymptotic
    confidence sequences", Ann. Statist., conjugate mixtures; Waudby-Smith & Ramdas 2023,
    "Estimating means of bounded random variables by betting", JRSS-B). The set is an interval
    around S / n (-log of the denominator is convex in m); its ends are found by bisection and
    rounded outward (to the nearest point shown outside). It depends on (S, n) only, not on the order of the outcomes. n == 0: [0, 1]."""
    if not 0 < alpha < 1:
        raise ValueError(f"bernoulli_confseq: alpha must lie in (0, 1), got {alpha}")
    s, n = np.broadcast_arrays(np.asarray(successes, dtype=float), np.asarray(n, dtype=float))
    if np.any((s < 0) | (s > n)):
        raise ValueError("bernoulli_confseq: successes must lie in [0, n]")
    a, b = prior
    budget = math.log(1 / alpha) - special.betaln(a + s, b + n - s) + special.betaln(a, b)

    def excess(m):  # log M_n(m) - log(1/alpha) (> 0: m is outside), for m in (0, 1)
        return -special.xlogy(s, m) - special.xlog1py(n - s, -m) - budget

    centre = np.where(n > 0, s / np.maximum(n, 1), 0.5)
    out = []
    for inside, outside in ((centre, np.zeros_like(centre)), (centre, np.ones_like(centre))):
        for _ in range(_BISECTIONS):
            mid = (inside + outside) / 2
            out_mid = excess(mid) > 0
            outside, inside = np.where(out_mid, mid, outside), np.where(out_mid, inside, mid)
        out.append(outside)  # a point shown outside (the end lies between), or 0 / 1 where no m is
    lo, hi = out
    return np.where(n > 0, lo, 0.0), np.where(n > 0, hi, 1.0)


def entropy_features(logprobs: np.ndarray) -> dict[str, float]:
    """Uncertainty of a normalised distribution over valid actions (natural log).

    U = H in nats; also H / log|A| (0 when |A| == 1), top-1 probability, top1 - top2 margin and
    the perplexity exp(H)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    p = np.exp(lp - np.logaddexp.reduce(lp))
    h = float(st.entropy(p))
    k = len(p)
    srt = np.sort(p)[::-1]
    return {
        "U": h,
        "U_norm": float(h / np.log(k)) if k > 1 else 0.0,
        "top1_prob": float(srt[0]),
        "margin": float(srt[0] - srt[1]) if k > 1 else float(srt[0]),
        "exp_H": float(np.exp(h)),
    }


def spearman_rho(x, y) -> float:
    """scipy's Spearman rho; NaN (without a warning) when a side is constant, as in some
    bootstrap resamples."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", st.ConstantInputWarning)
        return float(st.spearmanr(x, y).statistic)


# ------------------------------------------------------------------------------------ clustered data
# Rollouts of one task (or snapshot) share it and are not independent: their intervals come from a
# bootstrap over clusters (tasks, snapshots). The statistic is a ratio of sums, sum(values) /
# sum(counts) over the drawn clusters: the per-rollout mean (a success rate for 0/1 values) of the
# resample; or, in ``cluster_bootstrap_statistic``, any statistic of the drawn rows. Percentile
# intervals (scipy.stats.bootstrap over cluster indices), seeded, hence deterministic.
DEFAULT_N_BOOTSTRAP = 2000
BOOTSTRAP_BATCH = 250  # resamples held in memory at once
N_PERMUTATIONS = 9999


def cluster_sums(values, clusters) -> pd.DataFrame:
    """Per cluster (sorted): ``sum`` and ``count`` of its finite values; a cluster without a
    finite value is left out (it carries no observation)."""
    v = pd.Series(np.asarray(values, dtype=float))
    df = pd.DataFrame({"cluster": np.asarray(clusters, dtype=object), "v": v})
    df = df[np.isfinite(df["v"])]
    g = df.groupby("cluster", sort=True)["v"]
    return pd.DataFrame({"sum": g.sum(), "count": g.size().astype(float)})


def _ratio(s, c, axis=-1):
    return s.sum(axis=axis) / c.sum(axis=axis)


def _paired_ratio_diff(sa, ca, sb, cb, axis=-1):
    return _ratio(sa, ca, axis) - _ratio(sb, cb, axis)


def _as_clusters(sums, counts, who: str = "") -> tuple[np.ndarray, np.ndarray]:
    s, c = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    if s.shape != c.shape or s.ndim != 1:
        raise ValueError(f"{who}sums and counts must be 1-d arrays of one length, got {s.shape} and {c.shape}")
    if len(c) and (not np.all(np.isfinite(s)) or np.min(c) <= 0):
        raise ValueError(f"{who}every cluster needs a finite sum and a count > 0")
    return s, c


def _bootstrap(data, statistic, confidence: float, n_resamples: int, seed: int, paired: bool = True):
    return st.bootstrap(data, statistic, n_resamples=int(n_resamples), batch=BOOTSTRAP_BATCH, vectorized=True,
                        paired=paired, confidence_level=confidence, method="percentile",
                        rng=np.random.default_rng(seed))  # fmt: skip


def _percentile_ci(data, statistic, confidence: float, n_resamples: int, seed: int,
                   paired: bool = True) -> tuple[float, float]:  # fmt: skip
    res = _bootstrap(data, statistic, confidence, n_resamples, seed, paired)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _too_few(n_clusters: int) -> str | None:
    if n_clusters < 2:
        return f"{n_clusters} cluster(s): a cluster bootstrap needs at least 2"
    return None


def cluster_bootstrap_rate(sums, counts, confidence: float = 0.95, n_resamples: int = DEFAULT_N_BOOTSTRAP,
                           seed: int = 0) -> dict:  # fmt: skip
    """sum(sums) / sum(counts) (a success rate, or any per-rollout mean) with a percentile
    bootstrap interval over clusters: each resample draws as many clusters as there are, with
    replacement, and keeps each drawn cluster's sum and count together.

    Returns {"value", "lo", "hi", "n_clusters", "n", "reason"}; n = sum(counts) (rollouts). Under
    2 clusters the interval is NaN and ``reason`` says why."""
    s, c = _as_clusters(sums, counts)
    out = {"value": float(s.sum() / c.sum()) if len(c) else math.nan, "lo": math.nan, "hi": math.nan,
           "n_clusters": int(len(c)), "n": int(c.sum()), "reason": _too_few(len(c))}  # fmt: skip
    if out["reason"] is None:
        out["lo"], out["hi"] = _percentile_ci((s, c), _ratio, confidence, n_resamples, seed)
    return out


def paired_cluster_bootstrap_diff(sums_a, counts_a, sums_b, counts_b, confidence: float = 0.95,
                                  n_resamples: int = DEFAULT_N_BOOTSTRAP, seed: int = 0) -> dict:  # fmt: skip
    """rate_a - rate_b (rates as in ``cluster_bootstrap_rate``) for two models that played the
    same clusters (row i of every array is cluster i): each resample draws the clusters once and
    uses them for both models, so what the clusters share cancels out.

    Returns {"value", "lo", "hi", "n_clusters", "n_a", "n_b", "reason"}."""
    sa, ca = _as_clusters(sums_a, counts_a, "model a: ")
    sb, cb = _as_clusters(sums_b, counts_b, "model b: ")
    if len(sa) != len(sb):
        raise ValueError(f"paired clusters differ in number: {len(sa)} vs {len(sb)}")
    n = len(sa)
    out = {"value": float(_paired_ratio_diff(sa, ca, sb, cb)) if n else math.nan, "lo": math.nan, "hi": math.nan,
           "n_clusters": int(n), "n_a": int(ca.sum()), "n_b": int(cb.sum()), "reason": _too_few(n)}  # fmt: skip
    if out["reason"] is None:
        out["lo"], out["hi"] = _percentile_ci((sa, ca, sb, cb), _paired_ratio_diff, confidence, n_resamples, seed)
    return out


def cluster_bootstrap_diff(sums_a, counts_a, sums_b, counts_b, confidence: float = 0.95,
                           n_resamples: int = DEFAULT_N_BOOTSTRAP, seed: int = 0) -> dict:  # fmt: skip
    """rate_a - rate_b for two models on different clusters (unpaired): each model's clusters
    are resampled independently. Returns {"value", "lo", "hi", "n_clusters_a", "n_clusters_b",
    "n_a", "n_b", "reason"}."""
    sa, ca = _as_clusters(sums_a, counts_a, "model a: ")
    sb, cb = _as_clusters(sums_b, counts_b, "model b: ")
    both = len(ca) and len(cb)
    out = {"value": float(_ratio(sa, ca) - _ratio(sb, cb)) if both else math.nan, "lo": math.nan,
           "hi": math.nan, "n_clusters_a": int(len(ca)), "n_clusters_b": int(len(cb)), "n_a": int(ca.sum()),
           "n_b": int(cb.sum()), "reason": _too_few(len(ca)) or _too_few(len(cb))}  # fmt: skip

    def diff(ia, ib, axis=-1):  # resampled cluster indices -> the two rates
        ia, ib = ia.astype(int), ib.astype(int)
        return _ratio(sa[ia], ca[ia], axis) - _ratio(sb[ib], cb[ib], axis)

    if out["reason"] is None:
        data = (np.arange(len(ca), dtype=float), np.arange(len(cb), dtype=float))
        out["lo"], out["hi"] = _percentile_ci(data, diff, confidence, n_resamples, seed, paired=False)
    return out


def cluster_bootstrap_statistic(statistic, clusters, confidence: float = 0.95,
                                n_resamples: int = DEFAULT_N_BOOTSTRAP, seed: int = 0) -> list[tuple[float, float, int]]:  # fmt: skip
    """Percentile intervals of ``statistic(rows)`` (row indices -> one value or a vector of
    values) over a bootstrap of ``clusters`` (one label per row), for statistics that are not a
    ratio of sums (R², Spearman, ranking metrics): each resample draws as many clusters as there
    are, with replacement (taken in order of first appearance), and passes the rows of the drawn
    clusters in draw order. A resample where a value is undefined (not finite) is left out of that
    value's interval. Returns one (lo, hi, n_defined) per value; NaN bounds when none is defined."""
    codes, uniq = pd.factorize(pd.Series(np.asarray(clusters, dtype=object)).astype(str))
    if len(uniq) < 2:
        raise ValueError(_too_few(len(uniq)))
    members = [np.flatnonzero(codes == g) for g in range(len(uniq))]

    def values(drawn, axis=-1):  # (resamples, clusters) drawn cluster indices -> (values, resamples)
        rows = (np.concatenate([members[g] for g in d]) for d in drawn.astype(int))
        v = np.array([np.atleast_1d(statistic(r)) for r in rows], dtype=float).T
        return np.where(np.isfinite(v), v, np.nan)  # undefined (e.g. R² = -inf) as NaN

    with warnings.catch_warnings():  # scipy's own interval is NaN where a resample is undefined: unused
        warnings.simplefilter("ignore", st.DegenerateDataWarning)
        res = _bootstrap((np.arange(len(uniq), dtype=float),), values, confidence, n_resamples, seed)
    a = (1 - confidence) / 2
    out = []
    for v in np.atleast_2d(res.bootstrap_distribution):
        v = v[np.isfinite(v)]
        lo, hi = np.quantile(v, [a, 1 - a]) if len(v) else (math.nan, math.nan)
        out.append((float(lo), float(hi), int(len(v))))
    return out


def cluster_bootstrap_rates_statistic(hits, clusters, statistic, confidence: float = 0.95,
                                      n_resamples: int = DEFAULT_N_BOOTSTRAP, seed: int = 0) -> dict:  # fmt: skip
    """``statistic`` (success rates in percent, one per column, along the last axis -> a value)
    of episodes ``hits`` (episodes x outcomes, 1 = reached) with a percentile bootstrap interval
    over ``clusters`` (one label per episode): each resample draws clusters with replacement,
    pools their episodes, recomputes the rates and the statistic (e.g. a family's score over its
    achievements). Returns {"value", "lo", "hi", "n_clusters", "n", "reason"}."""
    h = np.asarray(hits, dtype=float)
    if h.ndim != 2 or len(h) != len(clusters):
        raise ValueError(f"hits must be episodes x outcomes with one cluster per episode, got {h.shape} "
                         f"and {len(clusters)} clusters")  # fmt: skip
    df = pd.DataFrame(h).assign(cluster=np.asarray(clusters, dtype=object))
    g = df.groupby("cluster", sort=True)
    sums, counts = g.sum().to_numpy(), g.size().to_numpy(dtype=float)

    def score(idx, axis=-1):  # resampled cluster indices (..., n_clusters) -> the score
        idx = idx.astype(int)
        rates = 100.0 * sums[idx].sum(axis=-2) / counts[idx].sum(axis=-1)[..., None]
        return statistic(rates)

    n = len(counts)
    out = {"value": float(score(np.arange(n, dtype=float))) if n else math.nan, "lo": math.nan, "hi": math.nan,
           "n_clusters": int(n), "n": int(counts.sum()), "reason": _too_few(n)}  # fmt: skip
    if out["reason"] is None:
        out["lo"], out["hi"] = _percentile_ci((np.arange(n, dtype=float),), score, confidence, n_resamples, seed)
    return out


@dataclass(frozen=True)
class ClusterBootstrap:
    """The settings of a report's cluster-bootstrap intervals, applied to per-rollout values and
    their cluster labels (task_id, snapshot_id)."""

    confidence: float = 0.95
    n_resamples: int = DEFAULT_N_BOOTSTRAP
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence={self.confidence!r} must be in (0, 1)")
        if isinstance(self.n_resamples, bool) or int(self.n_resamples) != self.n_resamples or self.n_resamples < 1:
            raise ValueError(f"n_bootstrap={self.n_resamples!r} must be a positive integer")

    def rate(self, values, clusters, binary: bool = False) -> dict:
        """Mean of the finite ``values`` with its interval over ``clusters``. ``binary``: the values
        are 0/1 outcomes by definition (a success); where every cluster then holds one of them
        (independent trials: a bench's one rollout per task), the interval is the exact
        Clopper-Pearson one, since the percentile bootstrap collapses at 0 or n successes (0 / 10
        would read [0, 0]). Not for a measure that merely happens to be 0/1 (a count of tool calls)."""
        cs = cluster_sums(values, clusters)
        out = cluster_bootstrap_rate(cs["sum"], cs["count"], self.confidence, int(self.n_resamples), self.seed)
        if binary and len(cs) and (cs["count"] == 1).all():
            if not cs["sum"].isin((0.0, 1.0)).all():
                raise ValueError(f"binary rate: values other than 0/1 ({sorted(set(cs['sum']) - {0.0, 1.0})[:3]})")
            lo, hi = clopper_pearson(int(cs["sum"].sum()), len(cs), 1 - self.confidence)
            out = {**out, "lo": float(lo), "hi": float(hi), "reason": None}
        return out

    def diff(self, values_a, clusters_a, values_b, clusters_b, paired: bool = True) -> dict:
        """mean(a) - mean(b). Paired: over the clusters both have a finite value in (resampled
        jointly); unpaired: each side over its own clusters. ``paired`` is added to the result."""
        a, b = cluster_sums(values_a, clusters_a), cluster_sums(values_b, clusters_b)
        args = (self.confidence, int(self.n_resamples), self.seed)
        if paired:
            common = a.index.intersection(b.index)
            a, b = a.loc[common], b.loc[common]
            out = paired_cluster_bootstrap_diff(a["sum"], a["count"], b["sum"], b["count"], *args)
        else:
            out = cluster_bootstrap_diff(a["sum"], a["count"], b["sum"], b["count"], *args)
        return {**out, "paired": paired}


# ------------------------------------------------------------------------------------ verdicts
# A claim "value <op> threshold" is held when its whole interval lies on the claim's side, not held
# when the whole interval lies on the other side, and undetermined (None) when it straddles the
# threshold or a bound is missing: never two point estimates.
CLAIMS = (">", ">=", "<", "<=")


def interval_verdict(lo, hi, threshold: float = 0.0, claim: str = ">") -> bool | None:
    """The three-valued verdict on "value ``claim`` ``threshold``" from the interval [lo, hi]:
    True when every value of the interval satisfies the claim, False when none does (the interval
    excludes the claim in its direction), None otherwise or when a bound is None / NaN."""
    if claim not in CLAIMS:
        raise ValueError(f"claim {claim!r} must be one of {CLAIMS}")
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    if lo > hi:
        raise ValueError(f"interval [{lo}, {hi}] has its lower bound above its upper bound")
    holds = {">": lambda v: v > threshold, ">=": lambda v: v >= threshold,
             "<": lambda v: v < threshold, "<=": lambda v: v <= threshold}[claim]  # fmt: skip
    low_side, high_side = holds(lo), holds(hi)  # the claim is monotone: its truth changes once
    if low_side and high_side:
        return True
    if not low_side and not high_side:
        return False
    return None


def bonferroni_confidence(confidence: float, m: int) -> float:
    """The per-interval confidence that makes ``m`` intervals simultaneous at ``confidence``
    (Bonferroni: each misses with probability (1 - confidence) / m)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must be in (0, 1)")
    if int(m) != m or m < 1:
        raise ValueError(f"a family of m={m!r} intervals: m must be a positive integer")
    return 1 - (1 - confidence) / int(m)


# ------------------------------------------------------------------------------------ tests
def paired_permutation_test(x, y, n_resamples: int = N_PERMUTATIONS, seed: int = 0) -> dict:
    """Two-sided paired permutation test of mean(x - y) (sign flips of the per-unit differences,
    ``scipy.stats.permutation_test`` with ``permutation_type="samples"``; exact when
    2^n <= n_resamples, else seeded random flips). NaN pairs are dropped.

    Returns {"statistic", "p_value", "exact", "n_units", "reason"}; p is None (with the reason)
    under 2 units or when every difference is zero."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    out = {"statistic": float(np.mean(x - y)) if n else None, "p_value": None, "exact": None, "n_units": int(n),
           "reason": None}  # fmt: skip
    if n < 2:
        out["reason"] = f"{n} paired unit(s): a paired test needs at least 2"
    elif np.all(x == y):
        out["reason"] = "every paired difference is zero (identical outcomes per unit): no variance to test"
    else:
        res = st.permutation_test((x, y), lambda a, b, axis: np.mean(a - b, axis=axis), permutation_type="samples",
                                  vectorized=True, n_resamples=n_resamples, alternative="two-sided",
                                  rng=np.random.default_rng(seed))  # fmt: skip
        out.update(statistic=float(res.statistic), p_value=min(1.0, float(res.pvalue)), exact=bool(2**n <= n_resamples))
    return out


def holm(ps: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error rate); None entries stay None and
    are not counted in the family."""
    idx = [i for i, p in enumerate(ps) if p is not None]
    order = sorted(idx, key=lambda i: ps[i])
    m = len(order)
    out: list[float | None] = [None] * len(ps)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


def mean_interval(x: Sequence[float], confidence: float) -> dict[str, float]:
    """Mean with a Student-t interval (NaNs dropped); zero width for zero variance, NaN if n < 2.
    For independent values only (rollouts of a task are not: the tables use ``ClusterBootstrap``)."""
    v = np.asarray(x, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return {"mean": float("nan"), "n": 0, "lo": float("nan"), "hi": float("nan")}
    m = float(v.mean())
    if n < 2:
        return {"mean": m, "n": 1, "lo": float("nan"), "hi": float("nan")}
    se = float(v.std(ddof=1)) / math.sqrt(n)
    if np.ptp(v) == 0 or se == 0:
        return {"mean": m, "n": n, "lo": m, "hi": m}
    lo, hi = st.t.interval(confidence, n - 1, loc=m, scale=se)
    return {"mean": m, "n": n, "lo": float(lo), "hi": float(hi)}


def _pearson_last(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, (a * b).sum(-1) / np.where(den > 1e-12, den, 1.0), np.nan)


def spearman_along(x, y, axis: int = -1):
    """Spearman rho along ``axis`` (vectorized over the other axes; equals scipy's spearmanr on
    one pair): Pearson correlation of the average ranks. NaN where a side is constant."""
    rx, ry = (np.moveaxis(st.rankdata(np.asarray(v, float), axis=axis), axis, -1) for v in (x, y))
    return _pearson_last(rx, ry)


def partial_spearman(x, y, z, axis: int = -1):
    """Spearman correlation of x and y given z along ``axis``: Pearson correlation of the
    residuals of rank(x) and rank(y) after a least-squares fit on rank(z). NaN when undefined."""
    rx, ry, rz = (np.moveaxis(st.rankdata(np.asarray(v, float), axis=axis), axis, -1) for v in (x, y, z))
    zc = rz - rz.mean(-1, keepdims=True)
    zz = (zc * zc).sum(-1, keepdims=True)

    def resid(r):
        rc = r - r.mean(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return rc - np.where(zz > 0, (zc * rc).sum(-1, keepdims=True) / np.where(zz > 0, zz, 1.0), 0.0) * zc

    return _pearson_last(resid(rx), resid(ry))


# ------------------------------------------------------------------------------------ reliability
# Split-half reliability of a per-unit measure: the measure computed on two disjoint halves of each
# unit's observations (e.g. even and odd rollouts of a snapshot), the Pearson r of the halves across
# units, stepped up to the full length by Spearman-Brown, 2r / (1 + r); a percentile bootstrap over
# units gives its interval. By attenuation, the observable correlation of two measures is at most
# sqrt(rel_x * rel_y) times their true one.


def spearman_brown(r):
    """The reliability of a measure of twice the length of two halves correlated ``r``:
    2r / (1 + r) (NaN where r is NaN or -1)."""
    r = np.asarray(r, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(r > -1, 2 * r / (1 + r), np.nan)
    return float(out) if out.ndim == 0 else out


def _split_half(a, b, axis=-1):
    return spearman_brown(_pearson_last(np.moveaxis(np.asarray(a, float), axis, -1),
                                        np.moveaxis(np.asarray(b, float), axis, -1)))  # fmt: skip


def split_half_reliability(half_a, half_b, confidence: float = 0.95, n_resamples: int = DEFAULT_N_BOOTSTRAP,
                           seed: int = 0) -> dict:  # fmt: skip
    """Split-half reliability of a measure from its values on two halves of each unit's
    observations (``half_a[i]``, ``half_b[i]``: unit i): Spearman-Brown of the Pearson r of the
    halves across units, with a percentile bootstrap interval over units (pairs resampled
    together; resamples where r is undefined are left out and counted). Units with a non-finite
    half are dropped. Returns {"reliability", "lo", "hi", "r_half", "n", "n_undefined", "reason"};
    NaN with ``reason`` under 3 units or when a half is constant."""
    a, b = np.asarray(half_a, dtype=float), np.asarray(half_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"the two halves must be 1-d arrays of one length, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    out = {"reliability": math.nan, "lo": math.nan, "hi": math.nan, "r_half": math.nan, "n": int(len(a)),
           "n_undefined": None, "reason": None}  # fmt: skip
    if len(a) < 3:
        out["reason"] = f"{len(a)} unit(s) with both halves: a split-half correlation needs at least 3"
        return out
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        out["reason"] = "a half is constant across units: no correlation"
        return out
    r = float(_pearson_last(a, b))
    out.update(r_half=r, reliability=spearman_brown(r))
    with warnings.catch_warnings():  # resamples with a constant half are NaN: counted below
        warnings.simplefilter("ignore", st.DegenerateDataWarning)
        res = _bootstrap((a, b), _split_half, confidence, n_resamples, seed)
    dist = np.asarray(res.bootstrap_distribution, dtype=float)
    good = np.isfinite(dist)
    out["n_undefined"] = int((~good).sum())
    if good.any():
        tail = (1 - confidence) / 2
        out["lo"], out["hi"] = (float(v) for v in np.quantile(dist[good], [tail, 1 - tail]))
    return out


def attenuation(rho_observed, rel_x, rel_y) -> dict:
    """What the reliabilities of two measures allow of their correlation (Spearman's correction
    for attenuation): the largest observable correlation sqrt(rel_x * rel_y) (with a true
    correlation of 1) and the true correlation implied by ``rho_observed``, rho / sqrt(rel_x *
    rel_y) (not clipped, so a value over 1 shows the reliabilities are underestimated). NaN with
    ``reason`` where a reliability is missing or not positive."""
    vals = [None if v is None else float(v) for v in (rho_observed, rel_x, rel_y)]
    out = {"max_observable": math.nan, "implied_true": math.nan, "reason": None}
    rx, ry = vals[1], vals[2]
    if rx is None or ry is None or not (np.isfinite(rx) and np.isfinite(ry)):
        out["reason"] = "a reliability is not measured"
    elif rx <= 0 or ry <= 0:
        out["reason"] = f"a reliability is not positive ({rx:.3f}, {ry:.3f}): the measure is noise at this n"
    else:
        out["max_observable"] = math.sqrt(rx * ry)
        if vals[0] is not None and np.isfinite(vals[0]):
            out["implied_true"] = vals[0] / out["max_observable"]
    return out
