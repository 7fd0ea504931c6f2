"""`teachable phase-times`: per-rule and per-phase times of a run, read from the rules'
`benchmark:` files.

    teachable phase-times results/pilot

prints one row per rule (phase, jobs, summed and max job seconds, max RSS), then per phase the
summed job seconds and the span from its first job's start to its last job's end (phases
overlap: the DAG runs a later phase's jobs as soon as their inputs exist), and the run's wall
clock = first benchmarked job start to last benchmarked job end. A job's end is its benchmark
file's modification time (Snakemake writes it as the job finishes), its start is end - s.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

PHASES = {
    "student_init": "student", "student_eval": "student",
    "rollouts": "0", "mine_snapshots": "0",
    "label_shard": "1", "merge_labels": "1", "label_report": "1",
    "microtrain": "1B", "micro_merge": "1B", "cpt_gate": "1B",
    "plan_training": "2", "train_run": "2", "training_summary": "2",
    "eval_model": "3", "eval_summary": "3", "compare_run": "3", "benchmark_model": "3",
    "predictor": "4", "predictor_metrics": "4",
    "select_train": "5", "eval_selection": "5", "selection_summary": "5", "benchmark_selection": "5",
    "figures": "report", "tables": "report", "summary": "report",
    "bench_rollouts": "bench", "bench": "bench",
}  # fmt: skip


def collect(results_dir: Path) -> pd.DataFrame:
    rows = []
    for f in sorted((results_dir / "benchmarks").glob("*/*.tsv")):
        b = pd.read_csv(f, sep="\t")
        s = float(b["s"].iloc[-1])
        end = f.stat().st_mtime
        rows.append({"rule": f.parent.name, "phase": PHASES.get(f.parent.name, "?"), "job": f.stem, "s": s,
                     "start": end - s, "end": end,
                     "max_rss_mb": float(pd.to_numeric(b["max_rss"], errors="coerce").iloc[-1])})
    if not rows:
        raise SystemExit(f"no benchmark files under {results_dir}/benchmarks")
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="teachable phase-times", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir", type=Path, help="a run's results_dir, e.g. results/pilot")
    a = ap.parse_args(argv)
    df = collect(a.results_dir)
    t = df.groupby("rule").agg(phase=("phase", "first"), jobs=("s", "size"), total_s=("s", "sum"),
                               max_s=("s", "max"), max_rss_mb=("max_rss_mb", "max"))
    print(t.sort_values("total_s", ascending=False).round(1).to_string())
    order = [p for p in dict.fromkeys(PHASES.values()) if p in set(df["phase"])] + (["?"] if "?" in set(df["phase"]) else [])
    ph = df.groupby("phase").agg(jobs=("s", "size"), job_s=("s", "sum"), first_start=("start", "min"),
                                 last_end=("end", "max")).loc[order]
    t0 = df["start"].min()
    ph["starts_at_s"] = ph["first_start"] - t0
    ph["ends_at_s"] = ph["last_end"] - t0
    ph["span_s"] = ph["last_end"] - ph["first_start"]
    print()
    print(ph[["jobs", "job_s", "starts_at_s", "ends_at_s", "span_s"]].round(1).to_string())
    wall = df["end"].max() - t0
    print(f"\nsum of job times: {df['s'].sum():.1f} s over {len(df)} jobs; "
          f"wall clock (first job start to last job end): {wall:.1f} s = {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
