"""Trace queries over rollouts.parquet with DuckDB, and export of kept episodes as SFT JSONL
(chat-messages format, one JSON object per step: {"messages": [...], "meta": {...}})."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from .io import atomic_path
from .policies.base import Context
from .envs.registry import system_prompt
from .policies.prompt import build_messages


def episode_filter_sql(min_reward: float | None, max_turns: int | None, success_only: bool,
                       experiment: str | None, source: str | None) -> tuple[str, list]:
    conds, args = [], []
    if min_reward is not None:
        conds.append("episode_return >= ?")
        args.append(min_reward)
    if max_turns is not None:
        conds.append("episode_length <= ?")
        args.append(max_turns)
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
                 experiment=None, source=None) -> tuple[pd.DataFrame, dict]:
    """Steps of the episodes passing the filter, and stats over all vs kept episodes."""
    if not Path(rollouts).exists():
        raise FileNotFoundError(f"rollouts file {rollouts} does not exist")
    con = duckdb.connect()
    path_sql = "'" + str(rollouts).replace("'", "''") + "'"  # a view cannot take parameters
    con.execute(f"CREATE VIEW r AS SELECT * FROM read_parquet({path_sql})")
    where, args = episode_filter_sql(min_reward, max_turns, success_only, experiment, source)
    con.execute(f"CREATE TEMP TABLE kept AS SELECT DISTINCT episode_id FROM r WHERE {where}", args)
    stats_sql = """
        SELECT count(*) AS episodes, count(*) FILTER (WHERE episode_success) AS successes,
               avg(episode_return) AS mean_return, avg(episode_length) AS mean_length,
               sum(episode_length) AS steps
        FROM (SELECT DISTINCT episode_id, episode_success, episode_return, episode_length FROM r {w})
    """
    total = con.execute(stats_sql.format(w="")).fetchdf().iloc[0].to_dict()
    kept = con.execute(stats_sql.format(w="WHERE episode_id IN (SELECT episode_id FROM kept)")).fetchdf().iloc[0].to_dict()
    steps = con.execute(
        "SELECT * FROM r WHERE episode_id IN (SELECT episode_id FROM kept) ORDER BY episode_id, step_idx"
    ).fetchdf()
    clean = lambda d: {k: (None if pd.isna(v) else (int(v) if k in ("episodes", "successes", "steps") else float(v))) for k, v in d.items()}
    return steps, {"all": clean(total), "kept": clean(kept)}


def export_sft_jsonl(steps: pd.DataFrame, out: str | Path) -> int:
    """One chat example per step: the student's context as prompt, the action taken as answer.
    Steps whose action is not a valid action (an invalid model output) are never targets."""
    n = 0
    with atomic_path(out) as tmp, open(tmp, "w") as f:
        for _, s in steps.iterrows():
            valid = tuple(s["valid_actions"])
            if s["action"] not in valid:
                continue
            ctx = Context(s["instruction"], s["observation"], tuple(s["history"]), valid)
            rec = {
                "messages": build_messages(ctx, s["action"], system=system_prompt(s["env_id"])),
                "meta": {"episode_id": s["episode_id"], "task_id": s["task_id"], "step_idx": int(s["step_idx"])},
            }
            f.write(json.dumps(rec) + "\n")
            n += 1
    return n
