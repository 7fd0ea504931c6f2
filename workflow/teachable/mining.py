"""Phase 0: rollouts (Experiment A: student; Experiment B: expert) and snapshot mining.

rollouts.parquet holds one row per step of every episode of both experiments, so any later phase
can be audited. Snapshots are stored so they restore exactly: env id, seed and action prefix.

Mining (``mine_failure_snapshots``, Experiment A): the snapshots of a FAILED student episode are
its mistakes: decision points where the student's action differs from the expert's at that state
while the state is still recoverable (the expert, taking over there, succeeds within the episode's
step limit), earliest first, at most ``phase0.mining.per_episode`` per episode. Each records the
expert's action there and ``steps_left`` (the slack: step limit - step index). Successful episodes
give none. Experiment B (``mine_expert_snapshots``) samples states along expert trajectories at
rate ``phase0.b_rate`` (at most ``b_per_episode`` per episode). Expert errors met on the way
(``ExpertError``: "impossible" missions apart from "planner" failures) are counted in the mining
summary; an episode that meets one is not mined past it.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd

from .envs.registry import make_env_from
from .envs.base import ExpertError
from .policies import StudentPolicy
from .policies.generated_u import u_columns
from .rollouts import (
    EXPERT,
    STUDENT,
    RolloutResult,
    RolloutSpec,
    expert_finishes,
    study_rollouts,
)
from .schemas import SNAPSHOTS
from .seeding import rng_for, rollout_key
from .splits import split_seeds, task_id

log = logging.getLogger(__name__)

SNAPSHOT_COLUMNS = SNAPSHOTS.names  # declared in teachable.schemas


def episode_rows(experiment: str, episode_id: str, r: RolloutResult, sampled_u: bool = False) -> list[dict]:
    """The rows of one episode; with ``sampled_u`` (a student whose U is estimated, not exact:
    ``StudentPolicy.exact_u``) the columns beside U that say how (``schemas.SAMPLED_U``)."""
    rows = []
    n = len(r.records)
    family = {f"episode_{k}": v for k, v in r.values.items()}  # the family's columns, per episode
    for k, rec in enumerate(r.records):
        rows.append(
            {
                "experiment": experiment,
                "episode_id": episode_id,
                "task_id": task_id(r.spec.env_id, r.spec.seed),
                "env_id": r.spec.env_id,
                "seed": r.spec.seed,
                "step_idx": rec.step_idx,
                "instruction": rec.instruction,
                "observation": rec.observation,
                "valid_actions": list(rec.valid_actions),
                "history": list(rec.history),
                "action": rec.action,
                "source": rec.source,
                "action_prob": rec.action_prob,
                "U": rec.U,
                "reward": rec.reward,
                "done": k == n - 1,
                "episode_success": r.success,
                "episode_return": r.total_reward,
                "episode_length": r.steps,
                "expert_error": r.expert_error,
                **family,
                **(u_columns(rec.u_est) if sampled_u else {}),
            }
        )
    return rows


def experiment_rollouts(cfg: dict, student: StudentPolicy, progress: bool = True) -> pd.DataFrame:
    """Experiment A (student episodes) and B (expert episodes) on train tasks."""
    env_id, p0 = cfg["env"]["id"], cfg["phase0"]
    train = split_seeds(cfg["splits"], "train")
    if p0["a_tasks"] > len(train) or p0["b_tasks"] > len(train):
        raise ValueError(
            f"phase0.a_tasks={p0['a_tasks']} / phase0.b_tasks={p0['b_tasks']} exceed "
            f"splits.train.count={len(train)}"
        )
    specs: list[RolloutSpec] = []
    for s in train[: p0["a_tasks"]]:
        for e in range(p0["a_episodes_per_task"]):
            specs.append(RolloutSpec(env_id, s, actor=STUDENT, key=("A", f"A-{s}-{e}"),
                                     stream=rollout_key(cfg["seed"], "phase0A", s, e)))
    for s in train[: p0["b_tasks"]]:
        specs.append(RolloutSpec(env_id, s, actor=EXPERT, key=("B", f"B-{s}-0")))
    results = study_rollouts(specs, student, cfg, record_steps=True, desc="phase0 rollouts", progress=progress)
    rows: list[dict] = []
    expert_errors = Counter(r.expert_error for r in results if r.spec.actor == EXPERT and r.expert_error)
    if expert_errors:
        log.warning("Experiment B: the expert could not act in %s episodes (by kind)", dict(expert_errors))
    for r in results:
        exp, ep = r.spec.key
        if not r.records:  # the expert could not act at the start state: no step to record
            log.warning("episode %s has no step (expert error %s)", ep, r.expert_error)
            continue
        rows.extend(episode_rows(exp, ep, r, sampled_u=not student.exact_u))
    return pd.DataFrame(rows)


def _episodes(rollouts: pd.DataFrame, experiment: str):
    df = rollouts[rollouts["experiment"] == experiment].sort_values(["episode_id", "step_idx"])
    return df.groupby("episode_id", sort=True)


def _snapshot_row(experiment: str, ep_df: pd.DataFrame, k: int, student_action, expert_action,
                  max_steps: int) -> dict:  # fmt: skip
    row = ep_df.iloc[k]
    actions = ep_df["action"].tolist()
    t = int(row["step_idx"])
    return {
        "snapshot_id": f"{row['env_id']}/{row['episode_id']}/t{t}",
        "experiment": experiment,
        "task_id": row["task_id"],
        "env_id": row["env_id"],
        "seed": int(row["seed"]),
        "step_idx": t,
        "actions": actions[:k],
        "instruction": row["instruction"],
        "observation": row["observation"],
        "history": list(row["history"]),
        "valid_actions": list(row["valid_actions"]),
        "student_action": student_action,
        "expert_action": expert_action,
        "episode_id": row["episode_id"],
        "episode_length": len(actions),
        "steps_left": int(max_steps - t),
    }


def episode_mistakes(env, probe, seed: int, actions: list[str], limit: int, stats: Counter) -> list[tuple[int, str]]:
    """The first ``limit`` recoverable mistakes of one episode, as (step, expert action): steps
    where the student's action differs from the expert's and the expert, taking over there,
    succeeds. ``env`` walks the episode; ``probe`` plays the expert's takeovers."""
    env.reset(seed)
    found: list[tuple[int, str]] = []
    for t, action in enumerate(actions):
        try:
            expert = env.expert_action()
        except ExpertError as e:  # nothing is recoverable past a state the expert cannot act in
            stats[f"expert_error_{e.kind}"] += 1
            break
        if action != expert:
            stats["mistakes"] += 1
            ok, _, err = expert_finishes(probe, seed, actions[:t])
            if err:
                stats[f"expert_error_{err}"] += 1
            if ok:
                found.append((t, expert))
                if len(found) == limit:
                    break
            else:
                stats["unrecoverable_mistakes"] += 1
        env.step(action)
    return found


def mine_failure_snapshots(rollouts: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame, dict]:
    """Experiment A snapshots (see the module docstring) and the mining summary."""
    limit = int(cfg["phase0"]["mining"]["per_episode"])
    env = make_env_from(cfg["env"])
    probe = make_env_from(cfg["env"])
    rows, per_episode = [], Counter()
    stats = Counter({k: 0 for k in ("episodes", "successful_episodes", "failed_episodes", "mistakes",
                                    "unrecoverable_mistakes")})  # fmt: skip
    for _, ep in _episodes(rollouts, "A"):
        stats["episodes"] += 1
        if bool(ep["episode_success"].iloc[0]):
            stats["successful_episodes"] += 1
            continue  # successful episodes give no failure snapshots
        stats["failed_episodes"] += 1
        actions = ep["action"].tolist()
        seed = int(ep["seed"].iloc[0])
        found = episode_mistakes(env, probe, seed, actions, limit, stats)
        per_episode[len(found)] += 1
        env.reset(seed)
        for k, expert in found:
            rows.append(_snapshot_row("A", ep, k, actions[k], expert, env.max_steps))
    snaps = pd.DataFrame(rows, columns=SNAPSHOT_COLUMNS)
    summary = {
        "per_episode_limit": limit, **{k: int(v) for k, v in sorted(stats.items())},
        "snapshots": int(len(snaps)),
        "failed_episodes_by_snapshots": {str(k): int(v) for k, v in sorted(per_episode.items())},
        "mean_steps_left": float(snaps["steps_left"].mean()) if len(snaps) else None,
        "mean_step_idx": float(snaps["step_idx"].mean()) if len(snaps) else None,
    }  # fmt: skip
    return snaps, summary


def mine_expert_snapshots(rollouts: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Experiment B: snapshots sampled along expert trajectories at rate ``phase0.b_rate``
    (at most ``b_per_episode`` each). The student did not act there: ``student_action`` is
    filled in phase 1 with the student's most likely action at that state."""
    p0 = cfg["phase0"]
    env = make_env_from(cfg["env"])
    rows = []
    for ep_id, ep in _episodes(rollouts, "B"):
        rng = rng_for(cfg["seed"], "mineB", ep_id)
        hits = np.flatnonzero(rng.random(len(ep)) < p0["b_rate"])
        if len(hits) > p0["b_per_episode"]:
            hits = np.sort(rng.choice(hits, size=p0["b_per_episode"], replace=False))
        env.reset(int(ep["seed"].iloc[0]))
        for k in hits:
            rows.append(_snapshot_row("B", ep, int(k), None, ep["action"].iloc[int(k)], env.max_steps))
    return pd.DataFrame(rows, columns=SNAPSHOT_COLUMNS)


def mining_summary(rollouts: pd.DataFrame, failure_summary: dict, expert_snaps: pd.DataFrame) -> dict:
    """Counts of both experiments (episodes, snapshots, expert errors by kind) for the report."""
    eps = rollouts.drop_duplicates("episode_id")
    b = eps[eps["experiment"] == "B"]
    b_errors = Counter(e for e in b.get("expert_error", pd.Series(dtype=object)) if isinstance(e, str))
    return {
        "A": failure_summary,
        "B": {"episodes": int(len(b)), "successful_episodes": int(b["episode_success"].sum()),
              "snapshots": int(len(expert_snaps)),
              **{f"expert_error_{k}": int(v) for k, v in sorted(b_errors.items())}},
    }  # fmt: skip


def mine(rollouts: pd.DataFrame, cfg: dict, source: str = "the rollouts") -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Both experiments' snapshots and the mining summary; an error saying what to change when
    neither gives one."""
    (fa, summary_a), fb = mine_failure_snapshots(rollouts, cfg), mine_expert_snapshots(rollouts, cfg)
    summary = mining_summary(rollouts, summary_a, fb)
    if len(fa) + len(fb) == 0:
        raise ValueError(
            f"phase 0 mined no snapshot from {source}: {summary['A'].get('failed_episodes', 0)} failed "
            f"student episodes had no recoverable mistake and Experiment B gave none; raise phase0.a_tasks "
            f"or phase0.b_tasks / phase0.b_rate, or choose a level where the student fails (env.id)")
    return fa, fb, summary


def evaluate_student(cfg: dict, student: StudentPolicy, split: str, n_tasks: int, progress: bool = True) -> dict:
    """Success rate of the student from reset on ``n_tasks`` tasks of a split, with its n and
    Wilson interval (the sanity check of the embedded student: it must fail a fair share)."""
    from .stats import proportion

    seeds = split_seeds(cfg["splits"], split)[:n_tasks]
    specs = [RolloutSpec(cfg["env"]["id"], s, key=s, stream=rollout_key(cfg["seed"], "eval_student", s, 0))
             for s in seeds]
    res = study_rollouts(specs, student, cfg, desc=f"student on {split}", progress=progress)
    k = sum(r.success for r in res)
    pr = proportion(k, len(res), 0.95)
    return {
        "env_id": cfg["env"]["id"], "split": split, "temperature": cfg["student"]["temperature"],
        "success_rate": pr["p"], "n": pr["n"], "ci95": [pr["lo"], pr["hi"]],
        "mean_return": float(np.mean([r.total_reward for r in res])),
        "mean_steps": float(np.mean([r.steps for r in res])),
    }
