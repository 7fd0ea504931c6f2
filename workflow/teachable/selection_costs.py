"""Phase 5: what each selection method's signal cost, counted from the phase outputs that
produced it (``signal_cost``; the counts are per candidate snapshot, summed over the pool the
method ranks).

- student_rollouts: student rollouts read by the signal. Phase 1's are the label rows' own:
  direct, every condition's ``y_<condition>``; first_action, every cell's rollouts (NaN past an
  adaptive cell's last one not counted).
- expert_rollouts: the expert's (``y_expert``): no student, no teacher.
- teacher_calls: the advice, plus the second call for the contrast's diagnosis where the
  contrast is not about the student's own action (``labeling.label_snapshots``). A backend's
  retries inside one call are not recorded, nor are the calls of snapshots whose advice failed
  (they are no candidates).
- forward_passes: the student's distributions outside rollouts: U's (one scored distribution; a
  generate-only student's estimate, its ``U_k`` sampled answers) and, with first_action, the
  first-step distribution of each patched condition.
- tokens: the teacher's tokens are not in Phase 1's outputs: null, with the reason.

Per method: RANDOM nothing; ENTROPY U's forward passes; LEARNABILITY p_policy's rollouts (the
units with policy weight: first_action, every cell with pi_policy > 0) and, with first_action,
pi_policy's pass; LEARNABILITY_EQ its own policy rollouts (as many per candidate as ORACLE's
student rollouts there); ORACLE Phase 1's whole labeling of each candidate; PREDICTOR U's passes
for each candidate plus the labeling of every snapshot its fold models were fit on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .constants import SELECTION_COST_KEYS as COST_KEYS
from .labeling import FIRST_ACTION, Rollouts, estimator_of
from .schemas import STUDENT_CONDITIONS

TOKENS_REASON = "Phase 1's outputs do not record the teacher's tokens"
BASIS = {
    "RANDOM": "a seeded order: no signal",
    "ENTROPY": "the student's distribution at each candidate (U)",
    "LEARNABILITY": "p_policy's Phase 1 rollouts at each candidate",
    "LEARNABILITY_EQ": "its own policy rollouts, as many per candidate as ORACLE's student rollouts there",
    "ORACLE": "Phase 1's labeling of each candidate (rollouts, teacher advice, first-step distributions)",
    "PREDICTOR": "U at each candidate, plus Phase 1's labeling of every snapshot the predictor was fit on",
}


def u_passes(r) -> int:
    """The student's forward passes behind a row's U: its ``U_k`` sampled answers where U was
    estimated (a generate-only student), else one scored distribution."""
    k = r.get("U_k")
    return int(k) if k is not None and not pd.isna(k) and k > 0 else 1


def label_cost(r, estimator: str) -> dict[str, int]:
    """What Phase 1 spent on labeling the row ``r`` (module docstring)."""
    y = Rollouts.of(r, estimator)
    patched = len(STUDENT_CONDITIONS) - 1 if estimator == FIRST_ACTION else 0  # every condition but force
    return {"student_rollouts": int(y.counts().sum()), "expert_rollouts": len(r["y_expert"]),
            "teacher_calls": 1 + int(r["contrast_action"] != r["student_action"]),
            "forward_passes": u_passes(r) + patched}  # fmt: skip


def policy_cost(r, estimator: str) -> dict[str, int]:
    """What p_policy of the row ``r`` read: the rollouts of its units with policy weight and, with
    first_action, the pass of pi_policy."""
    y = Rollouts.of(r, estimator, ("policy",))
    return {"student_rollouts": int(y.counts()[y.w["policy"] > 0].sum()), "expert_rollouts": 0, "teacher_calls": 0,
            "forward_passes": int(estimator == FIRST_ACTION)}  # fmt: skip


def oracle_rollouts(cands: pd.DataFrame) -> np.ndarray:
    """Per candidate, ORACLE's student rollouts there (Phase 1's): LEARNABILITY_EQ's count."""
    est = estimator_of(cands)
    return np.array([label_cost(r, est)["student_rollouts"] for _, r in cands.iterrows()], dtype=int)


def _sum(rows) -> dict[str, int]:
    return {k: int(sum(r[k] for r in rows)) for k in COST_KEYS}


def signal_cost(method: str, cands: pd.DataFrame, *, eq_rollouts=None, fit_labels: pd.DataFrame | None = None) -> dict:
    """What ``method``'s signal over the candidate pool ``cands`` cost (module docstring): the
    totals of ``COST_KEYS``, student rollouts per candidate, the snapshots whose labels it read
    (``n_labels``), tokens (null, ``tokens_reason``) and the ``basis`` in words. LEARNABILITY_EQ
    needs its rollouts per candidate (``eq_rollouts``), PREDICTOR the labels it was fit on
    (``fit_labels``)."""
    if method not in BASIS:
        raise ValueError(f"no signal cost for selection method {method!r}; expected one of {sorted(BASIS)}")
    est, zero = estimator_of(cands), dict.fromkeys(COST_KEYS, 0)
    rows, n_labels = [zero] * len(cands), 0
    if method == "ENTROPY":
        rows = [{**zero, "forward_passes": u_passes(r)} for _, r in cands.iterrows()]
    elif method == "LEARNABILITY":
        rows = [policy_cost(r, est) for _, r in cands.iterrows()]
    elif method == "LEARNABILITY_EQ":
        if eq_rollouts is None or len(eq_rollouts) != len(cands):
            raise ValueError("LEARNABILITY_EQ's cost needs its policy rollouts per candidate (eq_rollouts)")
        rows = [{**zero, "student_rollouts": int(n)} for n in eq_rollouts]
    elif method == "ORACLE":
        rows, n_labels = [label_cost(r, est) for _, r in cands.iterrows()], len(cands)
    elif method == "PREDICTOR":
        if fit_labels is None:
            raise ValueError("PREDICTOR's cost needs the labeled snapshots its predictor was fit on (fit_labels)")
        fit_est = estimator_of(fit_labels)
        rows = [{**zero, "forward_passes": u_passes(r)} for _, r in cands.iterrows()]
        rows += [label_cost(r, fit_est) for _, r in fit_labels.iterrows()]
        n_labels = len(fit_labels)
    total = _sum(rows)
    return {**total, "tokens": None, "tokens_reason": TOKENS_REASON, "n_candidates": int(len(cands)),
            "student_rollouts_per_candidate": total["student_rollouts"] / len(cands) if len(cands) else float("nan"),
            "n_labels": int(n_labels), "basis": BASIS[method]}  # fmt: skip
