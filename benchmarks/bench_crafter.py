#!/usr/bin/env python
"""Benchmark the Crafter family: the privileged expert over whole episodes, the env's speed, and
the time to restore a 1,000-step prefix.

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_crafter.py --episodes 50 --out crafter_bench.json

- Expert: ``--episodes`` episodes of ``--steps`` steps (crafter's 10,000) on eval-like seeds
  ``--seed-start``.. with ``goal=collect_wood`` and ``end_on_success=False``: the episode goes on
  after the goal and the expert works through every achievement (its curriculum). Reported:
  progression (achievements unlocked / 22) with a t interval and a bootstrap interval over
  episodes, crafter's score exp(mean_i ln(1 + s_i)) - 1 over the 22 success rates s_i in percent
  (Hafner 2021), each achievement's success rate and median first step, steps survived, deaths.
- ``--goal-table``: the expert with each achievement as the goal (the episode ends at the goal,
  as in the pipeline), ``--goal-episodes`` seeds of ``--goal-steps`` steps: success and steps.
- Speed: ``TextEnv.step`` with random actions (text observation included, no pixels), the
  expert's action, ``restore`` of a 1,000-step prefix cold (empty snapshot cache: world
  generation and 1,000 steps) and warm (the prefix cached; the prefix minus 50 steps).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from teachable.envs.base import ExpertError  # noqa: E402
from teachable.envs.crafter.actions import ACTIONS  # noqa: E402
from teachable.envs.crafter.env import CrafterTextEnv  # noqa: E402
from teachable.envs.crafter.rules import ACHIEVEMENTS  # noqa: E402
from teachable.envs.crafter.world import Snapshots  # noqa: E402
from teachable.envs.crafter.metrics import crafter_score  # noqa: E402

ENV_ID = "CrafterReward-v1"


def expert_episode(seed: int, steps: int, goal: str = "collect_wood", end_on_success: bool = False) -> dict:
    env = CrafterTextEnv(ENV_ID, steps, goal=goal, end_on_success=end_on_success, snapshots=Snapshots(4))
    env.reset(seed)
    first: dict[str, int] = {}
    error = None
    t = time.perf_counter()
    res = None
    while not env.done:
        try:
            res = env.step(env.expert_action())
        except ExpertError as e:
            error = e.kind
            break
        for a in res.info["unlocked"]:
            first.setdefault(a, res.info["steps_taken"])
    seconds = time.perf_counter() - t
    return {
        "seed": seed, "first_step": first, "steps": env.steps_taken, "seconds": seconds,
        "dead": bool(res is not None and res.info["dead"]), "expert_error": error,
        "success": bool(res is not None and res.info["success"]),
    }  # fmt: skip


def interval(values: list[float], seed: int = 0) -> dict:
    x = np.asarray(values, dtype=float)
    n, mean = len(x), float(x.mean())
    half = float(sps.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    boot = np.random.default_rng(seed).choice(x, size=(10000, n)).mean(axis=1)
    return {
        "mean": mean, "n": n, "t95": [mean - half, mean + half],
        "bootstrap95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
    }  # fmt: skip


def expert_summary(episodes: list[dict]) -> dict:
    n = len(episodes)
    progression = [len(e["first_step"]) / len(ACHIEVEMENTS) for e in episodes]
    rates = {a: 100.0 * sum(a in e["first_step"] for e in episodes) / n for a in ACHIEVEMENTS}
    first = {
        a: statistics.median(e["first_step"][a] for e in episodes if a in e["first_step"])
        for a in ACHIEVEMENTS if rates[a] > 0
    }  # fmt: skip
    steps = sum(e["steps"] for e in episodes)
    return {
        "progression": interval(progression), "crafter_score": float(crafter_score(list(rates.values()))),
        "success_percent": rates, "median_first_step": first,
        "steps_survived_median": statistics.median(e["steps"] for e in episodes),
        "deaths": sum(e["dead"] for e in episodes), "expert_errors": [e["expert_error"] for e in episodes if e["expert_error"]],
        "expert_plus_env_steps_per_s": steps / sum(e["seconds"] for e in episodes),
    }  # fmt: skip


def env_speed(seconds: float, seed: int) -> float:
    env = CrafterTextEnv(ENV_ID, goal="collect_diamond", end_on_success=False, snapshots=Snapshots(4))
    rng = random.Random(seed)
    env.reset(seed)
    n, spent = 0, 0.0
    while spent < seconds:
        t = time.perf_counter()
        for _ in range(200):
            if env.step(rng.choice(ACTIONS)).done:
                break
            n += 1
        spent += time.perf_counter() - t
        if env.done:
            env.reset(seed + n)  # world generation is not counted as steps
    return n / spent


def surviving_prefix(seed: int, length: int) -> tuple[int, list[str]]:
    env = CrafterTextEnv(ENV_ID, goal="collect_wood", end_on_success=False, snapshots=Snapshots(4))
    for s in range(seed, seed + 50):
        env.reset(s)
        prefix = []
        while len(prefix) < length and not env.done:
            prefix.append(env.expert_action())
            env.step(prefix[-1])
        if len(prefix) == length and not env.done:
            return s, prefix
    raise RuntimeError(f"no seed from {seed} kept the expert alive for {length} steps")


def restore_times(seed: int, length: int, repeats: int) -> dict:
    out: dict[str, list[float]] = {"cold": [], "warm_same_prefix": [], "warm_prefix_minus_50": []}
    for r in range(repeats):
        s, prefix = surviving_prefix(seed + 97 * r, length)
        snaps = Snapshots()
        env = CrafterTextEnv(ENV_ID, goal="collect_wood", end_on_success=False, snapshots=snaps)
        for key, target in (("cold", prefix), ("warm_same_prefix", prefix), ("warm_prefix_minus_50", prefix[:-50])):
            env.reset(s + 1)  # another state, so nothing is reused but the snapshot cache
            t = time.perf_counter()
            env.restore(s, target)
            out[key].append(time.perf_counter() - t)
    return {k: {"median_s": statistics.median(v), "max_s": max(v), "n": len(v)} for k, v in out.items()}


def goal_table(n: int, steps: int, seed: int) -> dict:
    table = {}
    for goal in ACHIEVEMENTS:
        runs = [expert_episode(seed + i, steps, goal=goal, end_on_success=True) for i in range(n)]
        ok = [r["steps"] for r in runs if r["success"]]
        table[goal] = {
            "success": f"{len(ok)}/{n}", "median_steps": statistics.median(ok) if ok else None,
            "deaths": sum(r["dead"] for r in runs), "expert_errors": [r["expert_error"] for r in runs if r["expert_error"]],
        }  # fmt: skip
    return table


def markdown(report: dict) -> str:
    ex = report["expert"]
    p = ex["progression"]
    lines = [
        f"expert progression {p['mean']:.3f} (n={p['n']} episodes of {report['args']['steps']} steps; "
        f"t95 [{p['t95'][0]:.3f}, {p['t95'][1]:.3f}], bootstrap95 [{p['bootstrap95'][0]:.3f}, {p['bootstrap95'][1]:.3f}])",
        f"crafter score {ex['crafter_score']:.1f}%; deaths {ex['deaths']}/{p['n']}, median steps survived "
        f"{ex['steps_survived_median']}; expert+env {ex['expert_plus_env_steps_per_s']:.0f} steps/s",
        "", "| achievement | success % | median first step |", "|---|---|---|",
    ]  # fmt: skip
    for a in ACHIEVEMENTS:
        lines.append(f"| {a} | {ex['success_percent'][a]:.0f} | {ex['median_first_step'].get(a, '-')} |")
    lines += ["", f"env steps/s (TextEnv.step, random actions, text, no pixels): {report['env_steps_per_s']:.0f}"]
    for k, v in report["restore_1000"].items():
        lines.append(f"restore 1,000-step prefix, {k}: median {1000 * v['median_s']:.1f} ms (max {1000 * v['max_s']:.1f}, n={v['n']})")
    if "goal_table" in report:
        lines += ["", "| goal | success | median steps | deaths |", "|---|---|---|---|"]
        for g, row in report["goal_table"].items():
            lines.append(f"| {g} | {row['success']} | {row['median_steps']} | {row['deaths']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--seed-start", type=int, default=100000)
    ap.add_argument("--speed-seconds", type=float, default=10.0)
    ap.add_argument("--restore-repeats", type=int, default=5)
    ap.add_argument("--goal-table", action="store_true")
    ap.add_argument("--goal-episodes", type=int, default=10)
    ap.add_argument("--goal-steps", type=int, default=1500)
    ap.add_argument("--out", type=Path, default=None, help="write the full report as JSON here")
    a = ap.parse_args()
    t0 = time.time()
    episodes = [expert_episode(a.seed_start + i, a.steps) for i in range(a.episodes)]
    report = {
        "args": vars(a) | {"out": str(a.out)}, "expert": expert_summary(episodes), "episodes": episodes,
        "env_steps_per_s": env_speed(a.speed_seconds, a.seed_start),
        "restore_1000": restore_times(a.seed_start, 1000, a.restore_repeats),
    }  # fmt: skip
    if a.goal_table:
        report["goal_table"] = goal_table(a.goal_episodes, a.goal_steps, a.seed_start)
    report["wall_seconds"] = time.time() - t0
    print(markdown(report))
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
