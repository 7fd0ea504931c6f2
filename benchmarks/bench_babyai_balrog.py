#!/usr/bin/env python
"""BabyAI under BALROG's protocol (``env.protocol: balrog``) on ``BabyAI-MixedLocal-v0``, BALROG's
mixed local level, and what a bench there takes:

1. the mission-kind mix over ``--seeds`` consecutive seeds from ``--start``: each kind's count and
   share with its Wilson interval (BALROG plays as many episodes of each kind: a share of 0.2);
2. the family's expert over ``--expert-seeds`` seeds: success per kind and overall (Wilson), mean
   steps;
3. ``teachable bench``'s path (``bench.bench_episodes`` then ``bench.bench_results``) on the bench
   split's first ``--tasks`` seeds, one rollout each, at the level's own step limit: a uniform
   random agent (every valid action equally likely, the student's sampling) and, with ``--model``
   (a local HF model directory, e.g. the pilot's embedded student), that model; success overall
   and per kind with the bench's intervals (percentile bootstrap over tasks), and wall seconds.

Prints Markdown tables. Config: ``--config`` files (default config/config.yaml) with ``env.id``,
``env.protocol`` and ``env.max_steps`` (null: the level's own) set here.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from teachable.envs.babyai.levels import KINDS, MIXED_LOCAL_ID  # noqa: E402
from teachable.envs.registry import make_env  # noqa: E402
from teachable.policies.base import Policy  # noqa: E402
from teachable.stats import proportion  # noqa: E402


class RandomAgent(Policy):
    """Equal scores for every valid action: sampled at the student's temperature, a uniform draw."""

    name = "random"

    def action_logprobs(self, contexts):
        return [np.full(len(c.valid_actions), -np.log(len(c.valid_actions))) for c in contexts]


def fmt(p: dict) -> str:
    return f"{p['p']:.3f} [{p['lo']:.3f}, {p['hi']:.3f}]"


def kind_mix(start: int, n: int, protocol: str) -> None:
    env = make_env(MIXED_LOCAL_ID, protocol=protocol)
    counts = collections.Counter()
    for s in range(start, start + n):
        env.reset(s)
        counts[env.episode_values()["mission_kind"]] += 1
    print(f"\n### Mission kinds over seeds {start}..{start + n - 1} (n = {n})\n\n| kind | episodes | share |\n|---|---|---|")
    for k in KINDS:
        print(f"| {k} | {counts[k]} | {fmt(proportion(counts[k], n))} |")


def expert(start: int, n: int, protocol: str) -> None:
    env = make_env(MIXED_LOCAL_ID, protocol=protocol)
    won, played, steps = collections.Counter(), collections.Counter(), []
    for s in range(start, start + n):
        env.reset(s)
        kind, total = env.episode_values()["mission_kind"], 0.0
        while not env.done:
            total += env.step(env.expert_action()).reward
        played[kind] += 1
        won[kind] += env.is_success(total, {})
        steps.append(env.steps_taken)
    print(f"\n### The expert (seeds {start}..{start + n - 1}; mean steps {np.mean(steps):.2f})\n\n"
          "| kind | episodes | success |\n|---|---|---|")  # fmt: skip
    for k in KINDS:
        print(f"| {k} | {played[k]} | {fmt(proportion(won[k], played[k]))} |")
    print(f"| all | {n} | {fmt(proportion(sum(won.values()), n))} |")


def bench(cfg: dict, name: str, student) -> None:
    from teachable.bench import bench_episodes, bench_results

    t0 = time.perf_counter()
    eps = bench_episodes(name, student, cfg, progress=False)
    played = time.perf_counter() - t0
    p3 = cfg["phase3"]
    res = bench_results(eps, name, None, float(p3["confidence"]), int(p3["n_bootstrap"]), int(cfg["seed"]))
    ci = next(k for k in res if k.startswith("ci"))
    print(f"\n### bench: {name} ({len(eps)} episodes, {int(eps['steps'].sum())} student steps, "
          f"{played:.1f} s to play, {time.perf_counter() - t0 - played:.1f} s of statistics)\n\n"
          "| kind | episodes | success |\n|---|---|---|")  # fmt: skip
    for k in KINDS:
        m = res.get(f"success_{k}")
        if m:
            print(f"| {k} | {m['n']} | {m['value']:.3f} [{m[ci][0]:.3f}, {m[ci][1]:.3f}] |")
    print(f"| all | {res['n']} | {res['pass_rate']:.3f} [{res[ci][0]:.3f}, {res[ci][1]:.3f}] |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", default="balrog", choices=("study", "balrog"))
    p.add_argument("--start", type=int, default=0, help="first seed of the mix and the expert")
    p.add_argument("--seeds", type=int, default=200, help="seeds of the mission-kind mix")
    p.add_argument("--expert-seeds", type=int, default=50)
    p.add_argument("--tasks", type=int, default=0, help="bench tasks (0: no bench)")
    p.add_argument("--model", default=None, help="also bench this local HF model directory")
    p.add_argument("--config", nargs="+", default=[str(ROOT / "config" / "config.yaml")])
    a = p.parse_args(argv)
    kind_mix(a.start, a.seeds, a.protocol)
    expert(a.start, a.expert_seeds, a.protocol)
    if a.tasks:
        from teachable.bench import bench_config
        from teachable.config import read_config_files

        cfg = read_config_files(a.config)
        cfg["env"] = {**cfg["env"], "id": MIXED_LOCAL_ID, "protocol": a.protocol, "max_steps": None}
        cfg["bench"] = {**cfg.get("bench", {}), "tasks": a.tasks, "rollouts_per_task": 1, "levels": []}
        cfg = bench_config(cfg)
        bench(cfg, "random", RandomAgent())
        if a.model:
            from teachable.policies import make_student

            student = make_student(cfg["student"], a.model, None, merge_adapter=True, env_id=MIXED_LOCAL_ID)
            try:
                bench(cfg, Path(a.model).name, student)
            finally:
                student.close()


if __name__ == "__main__":
    main()
