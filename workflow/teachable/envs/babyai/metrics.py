"""BabyAI's metrics of a model's rollouts on the evaluation suite (``Family.metrics``), for the
rollouts that record a mission kind (``BabyAI-MixedLocal-v0``, ``levels.KINDS``): each kind's
success rate ``success_<kind>`` (BALROG's per-task score), over that kind's episodes, with a
percentile cluster-bootstrap interval over tasks; a kind without episodes has no row. The overall
success is the bench's pass rate."""

from __future__ import annotations

import pandas as pd

from .missions import BALROG_KINDS as KINDS


def episode_metrics(g: pd.DataFrame, bs):
    """(metric, interval dict) of the rollouts ``g`` of one model (module docstring); ``bs``: a
    ``stats.ClusterBootstrap``."""
    success = g["success"].astype(float).to_numpy()
    tasks = g["task_id"].to_numpy()
    kinds = g["mission_kind"].to_numpy()
    for k in KINDS:
        m = kinds == k
        if m.any():
            yield f"success_{k}", bs.rate(success[m], tasks[m], binary=True)
