"""What a family declares (one ``Family`` per family, in its package's ``family`` module; the
registry lists them): its ids and its ``TextEnv``, and everything generic code asks the family
instead of naming it:

- ``config_schema``: a JSON-schema fragment (the ``properties`` of the ``env`` config section) of
  the options its constructor takes; checked when the DAG is built (``registry.env_options``);
- ``action_space``: its ``ActionSpace`` (``envs.action_space``);
- ``episode_columns``: the columns of ``TextEnv.episode_values`` (column -> (kind, meaning)),
  carried by the rollout tables (``schemas.FAMILY_COLUMNS``);
- ``metrics``: its per-model metrics on the evaluation suite (``evaluation_tables.family_metrics_table``),
  and ``headline_metrics``, the ones a benchmark result lists at its top level;
- ``trace_filters``: episode filters of ``teachable traces`` (``TraceFilter``).

Everything a family declares that needs its own dependencies is a function, called on use, so
that the registry (and the table declarations) load without any family's extra installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .action_space import ActionSpace

PRIVILEGED_EXPERT = "privileged_expert"  # a capability: an expert with full state access (oracle, Experiment B)

# (metric name, {"value", "lo", "hi", "n"}) rows of one model's rollouts, given its rollouts and a
# ``stats.ClusterBootstrap`` (intervals over tasks)
Metrics = Callable[["pd.DataFrame", Any], Iterable[tuple[str, dict]]]


@dataclass(frozen=True)
class TraceFilter:
    """An episode filter a family adds to ``teachable traces`` (flag ``--<name with dashes>``; the
    traces baseline reads it from ``phase2.traces.<name>``, a key of the central config schema):
    keep the episodes where ``sql`` holds, a DuckDB
    condition on the rollout rows with one parameter ``?`` (the value, of type ``type``). It
    reads ``column``; where the rollouts carry it, the stats also report ``stat``, the mean over
    episodes of the expression ``stat_sql``."""

    name: str
    sql: str
    column: str
    type: type
    help: str
    stat: str | None = None
    stat_sql: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Family:
    name: str
    prefixes: tuple[str, ...]  # env ids of the family start with one of these
    ids: Callable[[], list[str]]  # every valid id
    loader: tuple[str, str] | None  # (module, class) of its TextEnv; None: planned
    capabilities: frozenset[str]
    what: str  # for messages
    config_schema: Callable[[], dict[str, Any]] = dict  # env option -> its JSON schema (read on use)
    extra: str | None = None  # the pip extra the family needs beyond the base install
    action_space: Callable[[], ActionSpace] | None = None  # None: planned
    episode_columns: dict[str, tuple[str, str]] = field(default_factory=dict)
    metrics: Metrics | None = None
    headline_metrics: tuple[str, ...] = ()
    trace_filters: tuple[TraceFilter, ...] = ()
    extra_module: str | None = None  # the module whose import checks the extra (None: the extra's name)

    @property
    def planned(self) -> bool:
        return self.loader is None
