"""Phase 1B's pass rule, written once: micro-merge (``cpt_correlation.json``'s ``verdict`` and
``pass``), the cpt-gate step and summary.md's check (a) all call ``gate_rule``.

With ρ = Spearman ρ(ELP_net, Δ) over the gate sample, [lo, hi] its percentile bootstrap interval
at confidence 1 - alpha, and t = ``phase1b.rho_threshold``:

- **pass** iff lo > 0 and ρ ≥ t (the association is positive and as strong as required: the
  criterion of the power table in docs/protocol.md);
- **fail** iff hi < t (the interval excludes the required strength);
- **undetermined** otherwise (or with no interval): the sample cannot decide; the interval is
  reported with it.
"""

from __future__ import annotations

import math

VERDICTS = ("pass", "fail", "undetermined")
RULE = "pass iff the interval's lower bound > 0 and rho >= rho_threshold; fail iff its upper bound < rho_threshold; " \
       "else undetermined"  # fmt: skip


def _finite(v) -> bool:
    return v is not None and math.isfinite(float(v))


def gate_rule(rho, lo, hi, threshold: float) -> str:
    """The gate's verdict (module docstring) on ρ with its interval [lo, hi]: pass, fail or
    undetermined (also when ρ or a bound is missing / NaN)."""
    if not (_finite(rho) and _finite(lo) and _finite(hi)):
        return "undetermined"
    if lo > hi:
        raise ValueError(f"interval [{lo}, {hi}] of rho has its lower bound above its upper bound")
    if lo > 0 and rho >= threshold:
        return "pass"
    if hi < threshold:
        return "fail"
    return "undetermined"


def gate_reason(verdict: str, rho, lo, hi, threshold: float) -> str:
    """Why ``gate_rule`` gave ``verdict``, with the interval."""
    if verdict not in VERDICTS:
        raise ValueError(f"gate verdict {verdict!r}: expected one of {VERDICTS}")
    if not (_finite(rho) and _finite(lo) and _finite(hi)):
        return "undetermined: rho or its interval is undefined"
    ci = f"rho = {float(rho):.3f} [{float(lo):.3f}, {float(hi):.3f}]"
    return {"pass": f"pass: {ci}, lower bound > 0 and rho >= {threshold}",
            "fail": f"fail: {ci}, upper bound < {threshold}",
            "undetermined": f"undetermined: {ci} neither has lower bound > 0 with rho >= {threshold} nor upper bound "
                            f"< {threshold}: the sample cannot decide"}[verdict]  # fmt: skip
