"""Statistics used across phases: intervals for success rates and uncertainty of action
distributions. Library calls where a library does it (scipy.stats)."""

from __future__ import annotations

import warnings

import numpy as np
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
