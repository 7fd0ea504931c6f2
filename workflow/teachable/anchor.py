"""The anchor, the drift and the target marginal: what keeps every trained adapter near the base
student, how far each one moved, and what it was taught.

Anchor (config ``phase2.anchor``; the same rule for every run of Phases 2 and 5)
--------------------------------------------------------------------------------
- Pool (``anchor_pool``): phase 0's student steps (experiment A, episodes acted by the student)
  whose action is valid, outside the held-out tasks, at no labeled snapshot's state (its
  episode_id and step_idx): the student's own on-policy (state, action) pairs from other states
  than the ones any run supervises.
- Why it anchors: each pair's action was sampled from the base student, so the SFT loss on it is
  a one-sample estimate of the cross-entropy from the base's action distribution to the model's
  at that state; its expected gradient is zero at the base and, away from it, the gradient of
  KL(base || model) there: a replay anchor through the same loss, trainer and adapter (trl/peft)
  as the targets.
- Count (``anchor_count``): A = round(share / (1 - share) x n) pairs for n supervised examples,
  so the anchor is ``share`` of the training examples (and of each batch in expectation: the
  trainer shuffles both together); share 0 trains on the targets alone.
- Draw (``anchor_examples``): the first A pool steps in ``derive_seed(seed, "anchor", step id)``
  order: every run with the same n trains on the same pairs, and a larger run's draw extends a
  smaller one's.
- Steps: a budgeted run trains ceil(epochs x (K + A) / batch_size) optimizer steps (``run_steps``),
  the same for every budgeted run; the plan states them.

Drift (``drift_contexts``, ``drift_kl``)
----------------------------------------
Mean KL(base || tuned) of the action distributions at a fixed set of unrelated states: phase 0's
student steps of the held-out tasks (no run trains on them or on their tasks), the first
``phase2.anchor.drift_states`` in ``derive_seed(seed, "drift", step id)`` order: the same states
for every run. Its interval is a cluster bootstrap over their tasks.

Target marginal (``target_marginal``)
-------------------------------------
Counts of each action among a training set's targets (the anchor's separately): a set whose
targets are mostly turns teaches turning wherever it generalises.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .policies.base import Context
from .splits import seeded_order

ANCHOR_KEYS = ("share", "drift_states")


def step_ids(steps: pd.DataFrame) -> pd.Series:
    """``episode_id/t<step_idx>``: a phase 0 step's id (a snapshot's id ends the same way)."""
    return steps["episode_id"].astype(str) + "/t" + steps["step_idx"].astype(int).astype(str)


def student_steps(rollouts: str | Path) -> pd.DataFrame:
    """Phase 0's steps of experiment A's student episodes whose action is valid, with ``step_id``."""
    from .traces import query_traces, trace_examples

    steps, _ = query_traces(rollouts, experiment="A", source="student")
    keep = [s.name for _, _, s in trace_examples(steps)]
    steps = steps.loc[keep].reset_index(drop=True)
    return steps.assign(step_id=step_ids(steps))


def anchor_pool(steps: pd.DataFrame, heldout_task_ids: Sequence[str], labeled: pd.DataFrame) -> pd.DataFrame:
    """``student_steps`` outside the held-out tasks and at no labeled snapshot's state."""
    snap = set(step_ids(labeled[labeled["episode_id"].notna()])) if len(labeled) else set()
    keep = ~steps["task_id"].astype(str).isin(set(map(str, heldout_task_ids))) & ~steps["step_id"].isin(snap)
    return steps[keep].reset_index(drop=True)


def anchor_count(n_examples: int, share: float) -> int:
    """A = round(share / (1 - share) x n): the anchor pairs that make ``share`` of n + A."""
    if not 0 <= float(share) < 1:
        raise ValueError(f"phase2.anchor.share={share!r} must be in [0, 1)")
    return int(round(float(share) / (1.0 - float(share)) * int(n_examples)))


def run_steps(epochs: float, n_examples: int, batch_size: int, share: float) -> int:
    """Optimizer steps of a run on ``n_examples`` supervised examples plus its anchor."""
    from .training import optimizer_steps

    return optimizer_steps(epochs, n_examples + anchor_count(n_examples, share), batch_size)


def _context(s) -> Context:
    return Context(s["instruction"], s["observation"], tuple(s["history"]), tuple(s["valid_actions"]))


def anchor_examples(pool: pd.DataFrame, n_examples: int, share: float, seed: int) -> tuple[list, list[str]]:
    """(the anchor's (context, action) pairs, their step ids) for a run of ``n_examples``."""
    a = anchor_count(n_examples, share)
    if a > len(pool):
        raise ValueError(f"phase2.anchor.share={share} asks for {a} anchor pairs, the pool holds {len(pool)} "
                         "student steps (phase 0 experiment A outside the held-out tasks): lower the share")  # fmt: skip
    if a == 0:
        return [], []
    take = pool.loc[seeded_order(pool["step_id"], int(seed), "anchor")[:a]]
    return [(_context(s), s["action"]) for _, s in take.iterrows()], take["step_id"].tolist()


def drift_contexts(steps: pd.DataFrame, heldout_task_ids: Sequence[str], n: int, seed: int) -> pd.DataFrame:
    """The drift states: ``student_steps`` of the held-out tasks, the first ``n`` in seeded order
    (columns ``step_id``, ``task_id``, ``context``)."""
    held = steps[steps["task_id"].astype(str).isin(set(map(str, heldout_task_ids)))]
    take = held.loc[seeded_order(held["step_id"], int(seed), "drift")[: int(n)]]
    return pd.DataFrame({"step_id": take["step_id"].tolist(), "task_id": take["task_id"].astype(str).tolist(),
                         "context": [_context(s) for _, s in take.iterrows()]})  # fmt: skip


def kl_rows(base: Sequence[np.ndarray], tuned: Sequence[np.ndarray]) -> np.ndarray:
    """KL(base || tuned) per state from log-probabilities over the same valid actions."""
    if len(base) != len(tuned):
        raise ValueError(f"{len(base)} base and {len(tuned)} tuned distributions")
    return np.array([float(np.sum(np.exp(b) * (np.asarray(b) - np.asarray(t)))) for b, t in zip(base, tuned)])


def drift_kl(base: Sequence[np.ndarray], tuned: Sequence[np.ndarray], tasks: Sequence[str],
             confidence: float = 0.95, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Mean KL(base || tuned) over the drift states with a cluster-bootstrap interval over their
    tasks: {"kl", "lo", "hi", "n_states", "n_tasks", "max"}."""
    from .stats import ClusterBootstrap

    kl = kl_rows(base, tuned)
    if len(kl) == 0:
        return {"kl": None, "lo": None, "hi": None, "n_states": 0, "n_tasks": 0, "max": None}
    r = ClusterBootstrap(confidence, n_bootstrap, seed).rate(kl, np.asarray(tasks))
    ok = lambda v: None if v is None or not np.isfinite(v) else round(float(v), 6)  # noqa: E731
    return {"kl": ok(r["value"]), "lo": ok(r["lo"]), "hi": ok(r["hi"]), "n_states": int(len(kl)),
            "n_tasks": int(len(set(tasks))), "max": ok(kl.max())}  # fmt: skip


def target_marginal(targets: Sequence[str]) -> dict[str, int]:
    """Counts of each target action, most frequent first (ties by name)."""
    return dict(sorted(Counter(map(str, targets)).items(), key=lambda kv: (-kv[1], kv[0])))


def marginal_text(counts: dict[str, int]) -> str:
    """``go forward 5 (42%), turn left 4 (33%), ...``"""
    n = sum(counts.values())
    return ", ".join(f"{a} {c} ({c / n:.0%})" for a, c in counts.items()) if n else "none"
