#!/usr/bin/env python
"""The HTML family's oracle through the env and `teachable bench`'s machinery.

The expert (``HTMLExtractEnv.expert_action``: the reference programs, then the oracle's answer)
plays the bench split in place of a student, as ``teachable bench --expert`` plays it: the
bench's tasks (the first --tasks seeds of ``splits.bench`` on each level), rollouts and tables
(``bench.bench_episodes`` without a student) and its ``bench_results`` (success rate, mean reward and steps with n and cluster-bootstrap intervals
over tasks, ``by_level``, ``by_archetype``, the family's metrics: reward, perfect, tool calls,
JSON repairs, sandbox timeouts), success also with its Wilson interval (the bootstrap's is
degenerate at 1). Prints a Markdown summary and writes the JSON with --out. G
programs run in process: a sandbox start is counted (it should be 0).

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_html_env.py --tasks 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=200, help="bench tasks per level (default 200)")
    ap.add_argument("--levels", nargs="*", default=["HTMLExtract-v0"], help="env ids (default HTMLExtract-v0)")
    ap.add_argument("--mode", default=None, help="env.mode (default: the family's, all)")
    ap.add_argument("--config", default="config/config.yaml", help="the study config whose splits and seed are used")
    ap.add_argument("--out", default=None, help="write bench_results.json here")
    args = ap.parse_args(argv)

    from teachable import bench
    from teachable.config import read_config_files
    from teachable.envs.html import cache
    from teachable.evaluation_tables import family_metrics_table
    from teachable.stats import proportion

    started = []
    real = cache.run_sandboxed
    cache.run_sandboxed = lambda *a, **k: (started.append(1), real(*a, **k))[1]

    cfg = read_config_files([args.config])
    cfg["env"] = {"id": args.levels[0], **({"mode": args.mode} if args.mode else {})}
    cfg["bench"] = {**cfg.get("bench", {}), "tasks": args.tasks, "levels": args.levels, "rollouts_per_task": 1}
    cfg = bench.bench_config(cfg)
    t0 = time.perf_counter()
    rows = bench.bench_episodes("oracle", None, cfg, progress=False)  # no student: the expert plays
    seconds = time.perf_counter() - t0
    p3 = cfg["phase3"]
    res = bench.bench_results(rows, "oracle", None, p3["confidence"], p3["n_bootstrap"], int(cfg["seed"]))

    def cell(r: dict, digits: int = 3) -> str:
        return f"{r['value']:.{digits}f} [{r['lo']:.{digits}f}, {r['hi']:.{digits}f}] (n = {r['n']})"

    def wilson(g) -> str:
        w = proportion(int(g["success"].sum()), len(g), p3["confidence"])
        return f"{w['p']:.3f} [{w['lo']:.3f}, {w['hi']:.3f}] (n = {w['n']})"

    m = res["metrics"]
    print(f"oracle on {args.levels} x {args.tasks} bench tasks (mode {cfg['env'].get('mode') or 'all'}), "
          f"{seconds:.1f} s, {len(started)} sandbox starts")  # fmt: skip
    print(f"success {cell(m['success_rate'])} (Wilson: {wilson(rows)}); mean reward {cell(m['mean_reward'])}; steps {cell(m['mean_steps'], 2)}")
    for lv, r in res["by_level"].items():
        print(f"  {lv}: success {wilson(rows[rows['env_id'] == lv])}, mean reward {cell(r['mean_reward'])}")
    fam = family_metrics_table(bench.as_overall(rows), p3["confidence"], p3["n_bootstrap"], int(cfg["seed"]))
    for _, r in fam[~fam["metric"].str.contains(":")].iterrows():
        print(f"  {r['metric']}: {cell(r)}")
    res["family_metrics"] = fam.to_dict("records")
    print("\n| archetype | success (Wilson) | mean reward (bootstrap over tasks) |\n| --- | --- | --- |")
    for a, r in res.get("by_archetype", {}).items():
        print(f"| {a} | {wilson(rows[rows['archetype'] == a])} | {cell(r['mean_reward'])} |")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
