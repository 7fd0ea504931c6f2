"""Phase 1 quadrants: the U and L_local thresholds and the quadrant of each labeled snapshot.

- Quadrants on (U, L_local), "high" = strictly above the threshold: Q1 high U high L, Q2 high U
  low L, Q3 low U low L, Q4 low U high L.
- Thresholds: ``auto`` = configured quantiles of this run's labels, ``manual`` = configured values;
  a quantile that falls on a mass point (e.g. most L_local exactly 0) is handled by
  ``split_threshold``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .constants import QUADRANTS

log = logging.getLogger(__name__)


def split_threshold(values, q: float) -> dict:
    """The threshold of "high" (strictly above) at quantile ``q`` of ``values``.

    Without a tie at the quantile's value t, the threshold is t. When t is a mass point (two or
    more values equal t, e.g. most L_local exactly 0), "> t" and ">= t" split the values
    differently; of the two splits that leave both sides non-empty, the one whose share of high
    values is closer to 1 - q is used (ties: "> t"); ">= t" is written as the midpoint between t
    and the largest value below it. The dict says which rule was used and why."""
    v = np.asarray(values, float)
    t = float(np.quantile(v, q))
    n_at = int(np.sum(v == t))
    out = {"value_at_quantile": t, "tie": n_at > 1, "tie_share": n_at / len(v), "threshold": t,
           "rule": "quantile", "high_share": float(np.mean(v > t))}  # fmt: skip
    if n_at <= 1:
        return out
    below = v[v < t]
    cands = []
    if np.any(v > t):
        cands.append(("above the mass point (> t)", t, float(np.mean(v > t))))
    if len(below):
        cands.append(("the mass point counts as high (>= t)", float((below.max() + t) / 2), float(np.mean(v >= t))))
    out["candidates"] = [{"rule": c[0], "threshold": c[1], "high_share": c[2]} for c in cands]
    if not cands:
        out["rule"] = "every value equals the quantile's value: no split exists, all are low"
        return out
    rule, thr, share = min(cands, key=lambda c: abs(c[2] - (1 - q)))
    out.update(rule=f"tie at the quantile: {rule}, the split closest to a high share of {1 - q:.2f}",
               threshold=thr, high_share=share)
    return out


def quadrant_thresholds(df: pd.DataFrame, qcfg: dict) -> dict:
    """U and L_local thresholds: ``auto`` = configured quantiles of this run's labels (mass points
    handled by ``split_threshold``), ``manual`` = the configured values. The quantiles are
    recorded either way."""
    qs = [0.1, 0.25, 0.5, 0.75, 0.9]
    out = {
        "mode": qcfg["mode"],
        "quantiles": {
            col: {str(q): float(df[col].quantile(q)) for q in qs} for col in ("U", "L_local")
        },
        "n": int(len(df)),
    }
    if qcfg["mode"] == "auto":
        out["U_quantile"], out["L_quantile"] = qcfg["u_quantile"], qcfg["l_quantile"]
        out["U_split"] = split_threshold(df["U"], qcfg["u_quantile"])
        out["L_split"] = split_threshold(df["L_local"], qcfg["l_quantile"])
        out["U_threshold"], out["L_threshold"] = out["U_split"]["threshold"], out["L_split"]["threshold"]
    elif qcfg["mode"] == "manual":
        out["U_threshold"], out["L_threshold"] = float(qcfg["u_threshold"]), float(qcfg["l_threshold"])
    else:
        raise ValueError(f"phase1.quadrants.mode={qcfg['mode']!r}: expected auto or manual")
    return out


def assign_quadrants(U: np.ndarray, L: np.ndarray, u_thr: float, l_thr: float) -> np.ndarray:
    """Q1 high U high L, Q2 high U low L, Q3 low U low L, Q4 low U high L; high = strictly above."""
    hu, hl = np.asarray(U) > u_thr, np.asarray(L) > l_thr
    return np.select([hu & hl, hu & ~hl, ~hu & ~hl], QUADRANTS[:3], default=QUADRANTS[3])


def add_quadrants(df: pd.DataFrame, qcfg: dict) -> tuple[pd.DataFrame, dict]:
    thr = quadrant_thresholds(df, qcfg)
    out = df.copy()
    out["quadrant"] = assign_quadrants(out["U"].to_numpy(), out["L_local"].to_numpy(),
                                       thr["U_threshold"], thr["L_threshold"])
    sizes = out["quadrant"].value_counts().reindex(QUADRANTS, fill_value=0)
    thr["sizes"] = {q: int(v) for q, v in sizes.items()}
    thr["small_quadrants"] = [q for q, v in thr["sizes"].items() if v < qcfg["min_size"]]
    for q in thr["small_quadrants"]:
        log.warning("quadrant %s has %d snapshots, under phase1.quadrants.min_size=%d",
                    q, thr["sizes"][q], qcfg["min_size"])
    return out, thr


# ------------------------------------------------------------------------------------ bands
BANDS = ("decided", "uncertain")


def quadrant_bands(lo, hi, l_thr: float) -> np.ndarray:
    """Whether each snapshot's L side is decided by its L_local interval [lo, hi]: ``decided``
    when the whole interval lies on one side of the threshold (all > l_thr, or all <= l_thr),
    ``uncertain`` when it straddles it or a bound is missing (``stats.interval_verdict``). The
    quadrant itself is not changed: the band says how far to trust its L side."""
    from .stats import interval_verdict

    return np.array([BANDS[interval_verdict(a, b, l_thr, ">") is None] for a, b in zip(lo, hi)], dtype=object)
