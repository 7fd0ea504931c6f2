#!/usr/bin/env python
"""Run the pilot study on other BabyAI levels (only ``env.id`` and ``seed`` change, as a user
would) and print one Markdown row per level: whether it reached the report, the student's
success, the snapshots mined and labeled, the quadrant sizes, the runs not trained and the wall
time. The README's "Levels tried" table is this script's output.

    .venv/bin/python benchmarks/levels.py BabyAI-PickupLoc-v0 BabyAI-OpenDoor-v0 --out results/levels

Each level runs in ``<out>/<env id>/`` with ``profiles/local`` and ``config/pilot.yaml``; a level
that already finished is not run again (Snakemake sees nothing to do), so the script resumes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_level(env_id: str, out: Path, seed: int) -> dict:
    results = out / env_id
    results.mkdir(parents=True, exist_ok=True)
    level_cfg = results / "level.yaml"  # what a user would change: the level and the seed
    level_cfg.write_text(f"results_dir: {results}\nseed: {seed}\nenv:\n  id: {env_id}\n")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT),
           "--profile", str(ROOT / "profiles/local"), "--configfile", str(ROOT / "config/pilot.yaml"),
           str(level_cfg), "--quiet", "rules"]  # fmt: skip
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    row = {"env_id": env_id, "ok": p.returncode == 0, "seconds": round(time.time() - t0)}
    if p.returncode != 0:
        row["error"] = (p.stderr or p.stdout)[-1500:]
        return row
    student = json.loads((results / "student/eval_summary.json").read_text())
    mining = json.loads((results / "phase0/mining_summary.json").read_text())
    thr = json.loads((results / "phase1/quadrant_thresholds.json").read_text())
    plan = json.loads((results / "phase2/plan.json").read_text())
    row.update(
        student=f"{student['success_rate']:.2f} [{student['ci95'][0]:.2f}, {student['ci95'][1]:.2f}] (n={student['n']})",
        mined=f"A {mining['A']['snapshots']} / B {mining['B']['snapshots']}", labeled=thr["n"],
        sizes=" / ".join(str(thr["sizes"][q]) for q in sorted(thr["sizes"])),
        L_rule=thr.get("L_split", {}).get("rule", thr.get("mode")),
        skipped=", ".join(sorted(plan["skipped_runs"])) or "none",
        phase5="run" if plan["selection"]["run"] else f"skipped ({plan['selection']['reason']})",
    )  # fmt: skip
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("env_ids", nargs="+", help="BabyAI level ids, e.g. BabyAI-PickupLoc-v0")
    ap.add_argument("--out", default="results/levels", help="parent of one results_dir per level")
    ap.add_argument("--seed", type=int, default=1, help="the config seed (the pilot's is 0)")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    print("| level | reached the report | student success [95% CI] | snapshots mined | labeled | "
          "Q1 / Q2 / Q3 / Q4 | runs not trained | Phase 5 | wall s |")  # fmt: skip
    print("| --- | --- | --- | --- | ---: | --- | --- | --- | ---: |")
    for env_id in a.env_ids:
        r = run_level(env_id, out, a.seed)
        if not r["ok"]:
            print(f"| {env_id} | no | | | | | | | {r['seconds']} |", flush=True)
            print(r["error"], file=sys.stderr)
            continue
        print(f"| {env_id} | yes | {r['student']} | {r['mined']} | {r['labeled']} | {r['sizes']} | {r['skipped']} "
              f"| {r['phase5']} | {r['seconds']} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
