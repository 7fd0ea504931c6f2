"""How precise the labels are: split-half reliability of the Phase 1 labels and of Phase 1B's Δ,
the attenuation it puts on the gate's ρ, and the L_local interval that bands each quadrant
``decided`` or ``uncertain``.

- Split-half: every label is recomputed (``labeling.label_stats``) on the even and on the odd
  rollout indices of its snapshot (``restrict_rollouts``: the last axis of every ``y_*`` column,
  the shared data convention, so a first-action row's ``y_cells`` splits the same way); the two
  halves are correlated across snapshots (Pearson) and stepped up to the full n by
  Spearman-Brown, with a percentile bootstrap interval over snapshots
  (``stats.split_half_reliability``). Rollout i of every condition shares a random stream, so a
  half keeps the conditions paired. ``y_expert`` is not split: the expert's rollouts have no
  stream index (and repeat, the expert being deterministic).
- U: exact for a scoring student (one forward pass, no sampling: reliability 1 by construction,
  not measured); a generate-only student's U is estimated from k samples that are not stored per
  snapshot, so it cannot be split: reported as not measured, with that reason.
- Δ = after - before (micro-training): the halves are the even and odd validation rollouts,
  before and after alike (rollout i of both shares a stream).
- Attenuation (``stats.attenuation``): the observable ρ(ELP_net, Δ) is at most
  sqrt(rel(ELP_net) · rel(Δ)); the label report, before Δ exists, gives sqrt(rel(ELP_net)), the
  bound with a perfectly reliable Δ. The reliabilities are Pearson's and the gate's ρ is
  Spearman's: the bound is the usual approximation.
- A label whose reliability is below ``phase1.reliability_floor`` is flagged; where it is
  L_local, the quadrants rest on an unreliable label (the summary says so).
- Quadrant band: a snapshot whose L_local interval (a paired percentile bootstrap over rollout
  indices of p_force - p_policy, ``labeling.Rollouts``) straddles the L
  threshold is ``uncertain`` (``quadrants.quadrant_bands``); its quadrant is not changed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .constants import FORMATS, QUADRANTS
from .quadrants import BANDS, quadrant_bands
from .seeding import derive_seed
from .stats import attenuation, split_half_reliability

# the labels whose split-half reliability is reported (U aside: ``u_reliability``)
LABELS = ("p_policy", "L_local", *(f"gain_net_{m}" for m in FORMATS), "ELP_net")
UNINDEXED = ("y_expert",)  # outcome columns whose rollouts share no stream index: not split
MIN_SPLIT = 4  # rollouts a snapshot needs to be split (2 per half: ELP_net cross-fits within a half)
SPLIT = "even / odd rollout indices"


# ------------------------------------------------------------------------------------ restricting rows
def outcome_columns(df: pd.DataFrame) -> list[str]:
    """The per-rollout outcome columns (``y_*``) that are indexed by the shared rollout streams."""
    return [c for c in df.columns if c.startswith("y_") and c not in UNINDEXED]


def n_rollouts(df: pd.DataFrame) -> np.ndarray:
    """The rollouts per condition of each row: the fewest any condition or cell has (rows may
    differ, and under adaptive allocation the cells of a row too: NaN past a cell's last rollout);
    ValueError naming the snapshot where a row's columns differ in their last axis (the rollout
    indices, ``restrict_rollouts``)."""
    cols = outcome_columns(df)
    if not cols:
        raise ValueError(f"no y_* outcome column among {list(df.columns)}: nothing to split")
    out = []
    for k, sid in enumerate(df["snapshot_id"]):
        ys = {c: _outcome_array(df[c].iloc[k]) for c in cols}
        ns = {c: y.shape[-1] for c, y in ys.items()}
        if len(set(ns.values())) != 1:
            raise ValueError(f"snapshot {sid!r}: its outcome columns differ in rollouts ({ns}): rollout i of every "
                             "condition must share a stream")  # fmt: skip
        out.append(min(int((~np.isnan(y)).sum(-1).min()) for y in ys.values()))
    return np.asarray(out, dtype=int)


def restrict_rollouts(df: pd.DataFrame, idx) -> pd.DataFrame:
    """``df`` with every rollout-indexed ``y_*`` column restricted to the rollout indices ``idx``
    (indices, or a slice applied to each row's own rollouts; the last axis sliced: a list per
    condition, or cells x rollouts), other columns unchanged."""
    idx = idx if isinstance(idx, slice) else np.asarray(idx, dtype=np.intp)
    out = df.copy()
    for c in outcome_columns(df):
        out[c] = [_outcome_array(v)[..., idx].tolist() for v in df[c]]
    return out


def _outcome_array(v) -> np.ndarray:
    """One row's ``y_*`` value as a float array: a list over rollouts, or cells x rollouts (read back
    from Parquet as an object array of arrays: ``labeling.cell_outcomes``)."""
    from .labeling import cell_outcomes

    a = np.asarray(v, dtype=object)
    return cell_outcomes(v) if a.dtype == object and a.ndim == 1 and len(a) and np.ndim(a[0]) else np.asarray(v, float)


def split_halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The even and the odd rollout indices of n rollouts (``half_rows``'s halves)."""
    return np.arange(0, n, 2), np.arange(1, n, 2)


def half_rows(df: pd.DataFrame, parity: int) -> pd.DataFrame:
    """Every row restricted (``restrict_rollouts``) to its own even (parity 0) or odd (1)
    rollout indices, whatever its rollout count."""
    n_rollouts(df)  # each row's conditions share its rollout indices
    return restrict_rollouts(df, slice(parity, None, 2)).reset_index(drop=True)


# ------------------------------------------------------------------------------------ Phase 1 labels
def half_labels(labeled: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labels (``labeling.label_stats``) of every snapshot on its even and on its odd rollouts."""
    from .labeling import label_stats

    return label_stats(half_rows(labeled, 0)), label_stats(half_rows(labeled, 1))


def u_reliability(labeled: pd.DataFrame) -> dict[str, Any]:
    """U's reliability: exact (scoring student) or not measured (generate-only: its samples are
    not stored per snapshot)."""
    est = labeled["U_estimator"].dropna() if "U_estimator" in labeled.columns else pd.Series([], dtype=object)
    if len(est):
        return {"reliability": None, "exact": False, "estimator": sorted(set(est)),
                "reason": "not measured: a generate-only student's U is estimated from k samples per snapshot, which "
                          "are not stored, so they cannot be split"}  # fmt: skip
    return {"reliability": None, "exact": True,
            "reason": "not applicable: U is exact (one forward pass of a scoring student, no sampling): reliability 1 "
                      "by construction"}  # fmt: skip


def _flag(rep: dict, floor: float | None) -> dict:
    """``rep`` with ``below_floor``: None where the reliability or the floor is missing."""
    r = rep["reliability"]
    return {**rep, "below_floor": None if r is None or floor is None or not math.isfinite(r) else bool(r < floor)}


def label_reliability(labeled: pd.DataFrame, confidence: float, n_resamples: int, seed: int,
                      floor: float | None) -> dict[str, Any]:  # fmt: skip
    """Split-half reliability (module docstring) of every label of ``LABELS`` over the labeled
    snapshots with at least ``MIN_SPLIT`` rollouts (the others are counted in ``n_too_few``),
    each flagged when below ``floor``, and U's (``u_reliability``)."""
    ns = n_rollouts(labeled)
    keep = ns >= MIN_SPLIT
    out: dict[str, Any] = {"n_snapshots": int(len(labeled)), "n_rollouts": int(ns.min()) if len(ns) else 0,
                           "n_rollouts_max": int(ns.max()) if len(ns) else 0, "n_too_few": int((~keep).sum()),
                           "split": SPLIT, "floor": floor, "confidence": float(confidence), "U": u_reliability(labeled),
                           "labels": {}}  # fmt: skip
    if keep.sum() < 3:
        why = (f"{int(keep.sum())} snapshot(s) with at least {MIN_SPLIT} rollouts per condition (2 per half): a "
               "split-half correlation needs 3")  # fmt: skip
        out["labels"] = {k: {"reliability": math.nan, "lo": math.nan, "hi": math.nan, "n": int(keep.sum()),
                             "reason": why, "below_floor": None} for k in LABELS}  # fmt: skip
    else:
        a, b = half_labels(labeled.loc[keep].reset_index(drop=True))
        for k in LABELS:
            rep = split_half_reliability(a[k], b[k], confidence, n_resamples, derive_seed(seed, "reliability", k))
            out["labels"][k] = _flag(rep, floor)
    out["flagged"] = [k for k, v in out["labels"].items() if v["below_floor"]]
    out["unmeasured"] = [k for k, v in out["labels"].items() if v["below_floor"] is None]
    return out


# ------------------------------------------------------------------------------------ quadrant bands
def l_local_interval(labeled: pd.DataFrame, confidence: float, n_resamples: int, seed: int) -> pd.DataFrame:
    """Per snapshot, the paired percentile bootstrap interval of L_local over its rollout indices
    (rollout i of policy and force drawn together: they share a stream): ``L_local_lo/_hi``, from
    the estimator's rollouts (``labeling.Rollouts``: direct, the 0/1 outcomes; first_action, the
    pi-weighted cell rates, resampled among the indices the same cells have, so under adaptive
    allocation every cell keeps its count), whose p_force - p_policy is L_local; ValueError
    naming the snapshot where it is not."""
    from .labeling import Rollouts, estimator_of, rollout_interval

    def l_local(y: Rollouts, idx) -> np.ndarray:
        m = y.means(slice(None) if idx is None else idx)
        return m["force"] - m["policy"]

    estimator = estimator_of(labeled)
    rows = []
    for _, r in labeled.iterrows():
        sid, L = r["snapshot_id"], r["L_local"]
        y = Rollouts.of(r, estimator, ("policy", "force"))
        if not np.isclose(l_local(y, None), L):
            raise ValueError(f"snapshot {sid!r}: L_local = {L} is not the mean p_force - p_policy of its rollouts "
                             f"({estimator} estimator)")  # fmt: skip
        lo, hi = rollout_interval(y, l_local, parity=False, n_resamples=n_resamples, confidence=confidence,
                                  seed=derive_seed(seed, "L_local", sid))  # fmt: skip
        rows.append({"snapshot_id": sid, "L_local_lo": lo, "L_local_hi": hi})
    return pd.DataFrame(rows, columns=["snapshot_id", "L_local_lo", "L_local_hi"])


def band_counts(quadrant, band) -> dict[str, dict[str, int]]:
    """Snapshots per quadrant and band."""
    tab = pd.crosstab(pd.Series(list(quadrant), name="q"), pd.Series(list(band), name="band"))
    tab = tab.reindex(index=list(QUADRANTS), columns=list(BANDS), fill_value=0)
    return {q: {b: int(tab.loc[q, b]) for b in BANDS} for q in QUADRANTS}


def label_report(labeled: pd.DataFrame, thresholds: dict, confidence: float, n_resamples: int, seed: int,
                 floor: float) -> tuple[pd.DataFrame, dict[str, Any]]:  # fmt: skip
    """The label report's reliability part: per snapshot the L_local interval and its quadrant's
    band (``snapshot_id, L_local_lo, L_local_hi, quadrant_band``), and the document
    ``label_reliability.json``: every label's reliability (``label_reliability``), the bound it
    puts on the gate's ρ and the bands counted per quadrant."""
    rel = label_reliability(labeled, confidence, n_resamples, seed, floor)
    iv = l_local_interval(labeled, confidence, n_resamples, seed)
    iv["quadrant_band"] = quadrant_bands(iv["L_local_lo"], iv["L_local_hi"], float(thresholds["L_threshold"]))
    elp, ll = rel["labels"]["ELP_net"], rel["labels"]["L_local"]
    rel["gate_bound"] = {**attenuation(None, elp["reliability"], 1.0), "assumes": "a perfectly reliable delta "
                         "(rel 1): the largest observable rho(ELP_net, delta) is sqrt(rel(ELP_net)); the gate's "
                         "report divides by rel(delta) too"}  # fmt: skip
    rel["quadrants_reliable"] = ll["below_floor"] is False
    rel["bands"] = {"interval": f"paired percentile bootstrap of L_local over rollout indices ({n_resamples} "
                                f"resamples, {round(100 * confidence)}%)",
                    "L_threshold": float(thresholds["L_threshold"]), "n_uncertain": int((iv["quadrant_band"] ==
                                                                                          "uncertain").sum()),
                    "per_quadrant": band_counts(labeled.set_index("snapshot_id").loc[iv["snapshot_id"], "quadrant"],
                                                iv["quadrant_band"])}  # fmt: skip
    return iv, rel


# ------------------------------------------------------------------------------------ Phase 1B
def delta_halves(results: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Δ of every micro-trained snapshot on its even and on its odd validation rollouts
    (``y_before`` / ``y_after``, rollout i of both on one stream)."""
    halves = ([], [])
    for sid, yb, ya in zip(results["snapshot_id"], results["y_before"], results["y_after"]):
        yb, ya = np.asarray(yb, float), np.asarray(ya, float)
        if len(yb) != len(ya):
            raise ValueError(f"snapshot {sid!r}: {len(yb)} rollouts before but {len(ya)} after, cannot pair them")
        for out, h in zip(halves, split_halves(len(yb))):
            out.append(ya[h].mean() - yb[h].mean() if len(h) else math.nan)
    return np.asarray(halves[0], float), np.asarray(halves[1], float)


def gate_reliability(results: pd.DataFrame, labeled: pd.DataFrame | None, rho: dict[str, float], confidence: float,
                     n_resamples: int, seed: int, floor: float | None) -> dict[str, Any]:  # fmt: skip
    """On the gate sample: Δ's reliability, ELP_net's and L_local's (their labeled rows, when
    ``labeled`` is given), each flagged below ``floor``, and the attenuation of ρ(label, Δ) for
    the observed ``rho[label]``."""
    out: dict[str, Any] = {"split": SPLIT, "floor": floor, "labels": {}}
    if {"y_before", "y_after"} <= set(results.columns) and len(results):
        a, b = delta_halves(results)
        rep = split_half_reliability(a, b, confidence, n_resamples, derive_seed(seed, "reliability", "delta"))
    else:
        rep = {"reliability": math.nan, "lo": math.nan, "hi": math.nan, "n": 0,
               "reason": "no per-rollout outcomes (y_before, y_after) in the micro-training results"}  # fmt: skip
    out["delta"] = _flag(rep, floor)
    if labeled is not None:
        sample = labeled[labeled["snapshot_id"].isin(set(results["snapshot_id"]))]
        rel = label_reliability(sample, confidence, n_resamples, seed, floor) if len(sample) else None
        for k in ("ELP_net", "L_local"):
            lab = rel["labels"][k] if rel else {"reliability": math.nan, "reason": "no labeled row of the gate sample"}
            out["labels"][k] = lab
            out[f"attenuation_{k}"] = attenuation(rho.get(k), lab["reliability"], out["delta"]["reliability"])
    return out
