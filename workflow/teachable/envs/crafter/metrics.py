"""Crafter's metrics of a model's rollouts on the evaluation suite (``Family.metrics``), each
with a percentile cluster-bootstrap interval over tasks:

- ``progression``: the mean share of the 22 achievements unlocked in an episode;
- ``crafter_score``: Crafter's score (Hafner 2021), exp(mean_i ln(1 + s_i)) - 1 over the 22
  success rates s_i in percent (the geometric mean of 1 + s_i, minus 1), in percent; each resample
  pools its tasks' episodes and recomputes the 22 rates;
- ``success:<achievement>``: the share of episodes that unlocked it, in crafter's order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .rules import ACHIEVEMENTS


def crafter_score(rates_percent, axis=-1):
    """Crafter's score of the achievements' success rates in percent (module docstring), in percent."""
    return np.exp(np.mean(np.log1p(np.asarray(rates_percent, dtype=float)), axis=axis)) - 1


def episode_metrics(g: pd.DataFrame, bs):
    """(metric, interval dict) of the rollouts ``g`` of one model (module docstring); ``bs``: a
    ``stats.ClusterBootstrap``."""
    from ...stats import cluster_bootstrap_rates_statistic

    unlocked = [set(a) for a in g["achievements"]]
    hits = pd.DataFrame({a: [float(a in u) for u in unlocked] for a in ACHIEVEMENTS}, index=g.index)
    tasks = g["task_id"].to_numpy()
    yield "progression", bs.rate(g["progression"].astype(float).to_numpy(), tasks)
    yield "crafter_score", cluster_bootstrap_rates_statistic(hits.to_numpy(), tasks, crafter_score, bs.confidence,
                                                             int(bs.n_resamples), bs.seed)  # fmt: skip
    for a in ACHIEVEMENTS:
        yield f"success:{a}", bs.rate(hits[a].to_numpy(), tasks, binary=True)
