"""The HTML family's metrics of a model's rollouts (``Family.metrics``), each with a percentile
cluster-bootstrap interval over tasks:

- ``reward``: the mean graded reward; ``perfect``: the share of episodes with reward 1;
- ``tool_calls``, ``json_repairs``, ``sandbox_timeouts``: means per episode;
- where the rollouts carry the task's archetype (the bench's ``archetype`` column, or its
  ``instruction``: ``tasks.archetype_of``), per archetype in ``tasks.ARCHETYPES``' order:
  ``archetype_success:<archetype>``, ``archetype_perfect:<archetype>``,
  ``archetype_reward:<archetype>`` (not ``success:``, the prefix of an achievement's rate).
"""

from __future__ import annotations

import pandas as pd

from .tasks import ARCHETYPES, archetype_of

MEANS = ("reward", "perfect", "tool_calls", "json_repairs", "sandbox_timeouts")


def archetypes_of(g: pd.DataFrame) -> pd.Series | None:
    """Each rollout's archetype, or None where the rollouts carry neither column."""
    if "archetype" in g.columns:
        return g["archetype"]
    if "instruction" in g.columns:
        return g["instruction"].map(archetype_of)
    return None


def episode_metrics(g: pd.DataFrame, bs):
    """(metric, interval dict) of the rollouts ``g`` of one model (module docstring); ``bs``: a
    ``stats.ClusterBootstrap``."""
    tasks = g["task_id"].to_numpy()
    for name in MEANS:
        yield name, bs.rate(g[name].astype(float).to_numpy(), tasks)
    arch = archetypes_of(g)
    if arch is None:
        return
    for a in ARCHETYPES:
        sub = g[(arch == a).to_numpy()]
        if sub.empty:
            continue
        t = sub["task_id"].to_numpy()
        yield f"archetype_success:{a}", bs.rate(sub["success"].astype(float).to_numpy(), t)
        yield f"archetype_perfect:{a}", bs.rate(sub["perfect"].astype(float).to_numpy(), t)
        yield f"archetype_reward:{a}", bs.rate(sub["reward"].astype(float).to_numpy(), t)
