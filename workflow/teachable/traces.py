"""Trace queries over rollouts.parquet with DuckDB, and export of kept episodes as SFT JSONL
(chat-messages format, one JSON object per step: {"messages": [...], "meta": {...}})."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from .io import atomic_path
from .policies.base import Context
from .envs.registry import action_space, system_prompt, trace_filters
from .policies.prompt import build_messages


GENERIC_FILTERS = ("min_reward", "max_turns", "success_only", "experiment", "source")
FILTER_KEYS = (*GENERIC_FILTERS, *(f.name for f in trace_filters()))  # with the families' (``TraceFilter``)


def episode_filter_sql(min_reward: float | None, max_turns: int | None, success_only: bool,
                       experiment: str | None, source: str | None,
                       family_filters: dict | None = None) -> tuple[str, list]:  # fmt: skip
    """The WHERE condition (and its parameters) keeping the episodes that pass the filter;
    ``family_filters``: a family filter's name -> its value (None: not set)."""
    conds, args = [], []
    if min_reward is not None:
        conds.append("episode_return >= ?")
        args.append(min_reward)
    if max_turns is not None:
        conds.append("episode_length <= ?")
        args.append(max_turns)
    for f in trace_filters():
        value = (family_filters or {}).get(f.name)
        if value is not None:
            conds.append(f.sql)
            args.append(f.type(value))
    if success_only:
        conds.append("episode_success")
    if experiment is not None:
        conds.append("experiment = ?")
        args.append(experiment)
    if source is not None:
        conds.append("episode_id IN (SELECT episode_id FROM r GROUP BY episode_id HAVING bool_and(source = ?))")
        args.append(source)
    return (" AND ".join(conds) or "TRUE"), args


def query_traces(rollouts: str | Path, *, min_reward=None, max_turns=None, success_only=False,
                 experiment=None, source=None, exclude_tasks=(), **family_filters) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Steps of the episodes passing the filter, and stats over all vs kept episodes (means
    summed in episode order, so they do not depend on the file's row order or DuckDB's threads).
    ``family_filters``: the families' filters (``registry.trace_filters``) by name, each needing
    its column in the rollouts; episodes of ``exclude_tasks`` (task ids) are never kept."""
    filters = {f.name: f for f in trace_filters()}
    unknown = sorted(set(family_filters) - set(filters))
    if unknown:
        raise ValueError(f"unknown trace filter {unknown[0]!r}; the filters are {[*GENERIC_FILTERS, *filters]}")
    if not Path(rollouts).exists():
        raise FileNotFoundError(f"rollouts file {rollouts} does not exist")
    con = duckdb.connect()
    path_sql = "'" + str(rollouts).replace("'", "''") + "'"  # a view cannot take parameters
    con.execute(f"CREATE VIEW r AS SELECT * FROM read_parquet({path_sql})")
    columns = set(con.execute("SELECT * FROM r LIMIT 0").fetchdf().columns)
    for name, value in family_filters.items():
        if value is not None and filters[name].column not in columns:
            raise ValueError(f"{filters[name].flag} needs the {filters[name].column} column (a family that declares "
                             f"it); {rollouts} has none")  # fmt: skip
    where, args = episode_filter_sql(min_reward, max_turns, success_only, experiment, source, family_filters)
    if exclude_tasks:
        where += " AND task_id NOT IN (SELECT unnest(?))"
        args.append(sorted(map(str, exclude_tasks)))
    con.execute(f"CREATE TEMP TABLE kept AS SELECT DISTINCT episode_id FROM r WHERE {where}", args)
    stats = [f for f in filters.values() if f.stat and f.column in columns]  # the families' episode stats
    stats_sql = """
        SELECT count(*) AS episodes, count(*) FILTER (WHERE episode_success) AS successes,
               avg(episode_return ORDER BY episode_id) AS mean_return,
               avg(episode_length ORDER BY episode_id) AS mean_length, sum(episode_length) AS steps{a}
        FROM (SELECT DISTINCT episode_id, episode_success, episode_return, episode_length{e} FROM r {w})
    """.replace("{a}", "".join(f", avg({f.stat_sql} ORDER BY episode_id) AS {f.stat}" for f in stats)).replace(
        "{e}", "".join(f", {f.column}" for f in stats))
    total = con.execute(stats_sql.format(w="")).fetchdf().iloc[0].to_dict()
    kept = con.execute(stats_sql.format(w="WHERE episode_id IN (SELECT episode_id FROM kept)")).fetchdf().iloc[0].to_dict()
    steps = con.execute(
        "SELECT * FROM r WHERE episode_id IN (SELECT episode_id FROM kept) ORDER BY episode_id, step_idx"
    ).fetchdf()
    clean = lambda d: {k: (None if pd.isna(v) else (int(v) if k in ("episodes", "successes", "steps") else float(v))) for k, v in d.items()}
    return steps, {"all": clean(total), "kept": clean(kept)}


def trace_examples(steps: pd.DataFrame) -> list[tuple[Context, str, pd.Series]]:
    """(the student's context, the action taken, the step) per step: the SFT examples of a trace
    set. Steps whose action is not valid (``ActionSpace.is_valid``: an invalid model output) are
    never targets."""
    out = []
    for _, s in steps.iterrows():
        valid = tuple(s["valid_actions"])
        if action_space(s["env_id"]).is_valid(s["action"]):
            out.append((Context(s["instruction"], s["observation"], tuple(s["history"]), valid), s["action"], s))
    return out


def export_sft_jsonl(steps: pd.DataFrame, out: str | Path) -> int:
    """One chat example per step (``trace_examples``): the context as prompt, the action as answer."""
    examples = trace_examples(steps)
    with atomic_path(out) as tmp, open(tmp, "w") as f:
        for ctx, action, s in examples:
            rec = {
                "messages": build_messages(ctx, action, system=system_prompt(s["env_id"])),
                "meta": {"episode_id": s["episode_id"], "task_id": s["task_id"], "step_idx": int(s["step_idx"])},
            }
            f.write(json.dumps(rec) + "\n")
    return len(examples)
