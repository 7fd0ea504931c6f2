#!/usr/bin/env python
"""The first-action estimator against direct rollouts (issue 18, item 2), on fresh snapshots.

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_first_action.py --snapshots 40 --n 64 \\
        --out-dir results/bench_first_action

Snapshots: one per fresh task (train-split seeds from ``--seed-start``, past the pilot's), a state
the student reaches in its own episode from reset (a seeded uniform step of it), with the
expert's action there. The student: ``--model`` (e.g. a finished pilot's
``results/pilot/student/model``), else the pilot's embedded student trained here from
``--config`` (config/config.yaml + config/pilot.yaml: the pilot's recipe) into ``--out-dir``.
Each snapshot is labeled twice by ``labeling.label_snapshots`` with the same seed, so rollout i of
both shares its stream: ``phase1.estimator: direct`` (n rollouts per condition, 8 conditions) and
``first_action`` (n rollouts per first-action cell, ``--floor``).

Reported:
- the identity: per condition, the mean over snapshots of p(first_action) - p(direct) with a
  paired percentile bootstrap interval over snapshots; it holds where the interval lies within
  +-``--tolerance`` and covers 0;
- variance at equal rollout budget: per snapshot the sampling variance of gain_net[m] (and
  L_local) from its per-rollout values (``labeling.outcome_vectors``: var over rollout indices / n)
  times the snapshot's student rollouts (direct: 8 n; first_action: cells x n); the ratio
  direct / first_action of their sums over snapshots, with a percentile bootstrap interval over
  snapshots (> 1: first_action is cheaper for the same precision);
- rollouts and seconds of each labeling.

Written to ``--out-dir``: ``reference_first_action.parquet``, the first-action raw label rows
(``schemas.RAW_LABELS``, the shared convention: ``cell_actions``, ``y_cells`` cells x rollouts,
``pi_<c>``, ``pi_rest_<c>``, ``y_expert``), the reference the adaptive-allocation benchmark
replays; ``direct.parquet``, the direct rows; ``report.json``, the numbers printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshots", type=int, default=40, help="fresh snapshots (one per task)")
    p.add_argument("--n", type=int, default=64, help="rollouts per condition (direct) and per cell (first_action)")
    p.add_argument("--floor", type=float, default=None, help="phase1.first_action_floor (default: the schema's)")
    p.add_argument("--tolerance", type=float, default=0.02, help="the identity's bound on |first_action - direct|")
    p.add_argument("--seed-start", type=int, default=4000, help="first train-split seed (the pilot uses the first 80)")
    p.add_argument("--model", default=None, help="student model dir (default: train the pilot's student)")
    p.add_argument("--config", nargs="+", default=[str(ROOT / "config/config.yaml"), str(ROOT / "config/pilot.yaml")])
    p.add_argument("--out-dir", default=str(ROOT / "results/bench_first_action"))
    p.add_argument("--n-bootstrap", type=int, default=2000, help="bootstrap resamples over snapshots")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0, help="the run seed of the label streams")
    return p.parse_args(argv)


def load_config(paths) -> dict:
    from teachable.config import section
    from teachable.config import read_config_files

    cfg = read_config_files(paths)
    for key in ("env", "splits", "student", "phase1"):
        cfg[key] = section(key, cfg.get(key))
    return cfg


def student_model(args, cfg: dict) -> str:
    """``--model``, or the pilot's embedded student trained (once) under ``--out-dir``."""
    if args.model:
        return args.model
    from teachable.steps import _student_recipe
    from teachable.student_init import train_student

    out = Path(args.out_dir) / "student"
    if not (out / "student_card.json").exists():
        t0 = time.time()
        train_student(_student_recipe(cfg), out, progress=False)
        print(f"trained the pilot's student in {time.time() - t0:.0f} s: {out}")
    return str(out)


def mine(cfg: dict, student, n: int, seed_start: int) -> pd.DataFrame:
    """``n`` snapshots, one per task from ``seed_start`` on: a seeded uniform step of the
    student's own episode from reset (not its last), with the expert's action there."""
    from teachable.envs import make_env
    from teachable.envs.base import ExpertError
    from teachable.envs.registry import env_options
    from teachable.rollouts import RolloutSpec, study_rollouts
    from teachable.seeding import rng_for, rollout_key

    env_id, hist = cfg["env"]["id"], int(cfg["env"]["history_len"])
    env = make_env(env_id, max_steps=cfg["env"]["max_steps"], **env_options(cfg["env"]))
    rows, seed = [], seed_start
    while len(rows) < n:
        seeds = list(range(seed, seed + 2 * (n - len(rows))))
        seed = seeds[-1] + 1
        specs = [RolloutSpec(env_id, s, stream=rollout_key(cfg["seed"], "bench_first_action", s, 0)) for s in seeds]
        for s, res in zip(seeds, study_rollouts(specs, student, cfg, progress=False)):
            if len(rows) == n or res.steps < 2:
                continue
            t = int(rng_for("bench_first_action", s).integers(res.steps - 1))
            prefix = list(res.actions[:t])
            obs = env.restore(s, prefix)
            try:
                expert = env.expert_action()
            except ExpertError:
                continue
            rows.append({"snapshot_id": f"{env_id}/F-{s}/t{t}", "experiment": "A", "task_id": f"{env_id}:{s}",
                         "env_id": env_id, "seed": s, "step_idx": t, "actions": prefix,
                         "instruction": obs.instruction, "observation": obs.text, "history": prefix[-hist:] if hist else [],
                         "valid_actions": list(obs.valid_actions), "student_action": res.actions[t],
                         "expert_action": expert, "episode_id": f"F-{s}", "episode_length": res.steps,
                         "steps_left": int(cfg["env"]["max_steps"]) - t})  # fmt: skip
    return pd.DataFrame(rows)


def label(snaps, student, cfg, estimator: str, n: int, floor: float, seed: int):
    from teachable.labeling import label_snapshots
    from teachable.teachers.oracle import OracleTeacher

    c = dict(cfg, seed=seed, phase1=dict(cfg["phase1"], n_rollouts=n, n_rollouts_expert=1, estimator=estimator,
                                         first_action_floor=floor))  # fmt: skip
    t0 = time.time()
    raw, failures = label_snapshots(snaps, student, OracleTeacher(cfg["env"]["max_steps"]), c, progress=False)
    return raw, failures, time.time() - t0


def boot(values: np.ndarray, stat, n_resamples: int, confidence: float, seed: int) -> tuple[float, float, float]:
    """``stat`` of per-snapshot rows ``values`` with a percentile bootstrap interval over snapshots."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))
    dist = np.array([stat(values[i]) for i in idx])
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(dist, [tail, 1 - tail])
    return float(stat(values)), float(lo), float(hi)


def main(argv=None) -> int:
    args = parse_args(argv)
    from teachable.constants import FORMATS, PLACEBOS
    from teachable.io import write_table
    from teachable.labeling import DIRECT, FIRST_ACTION, label_stats, outcome_vectors
    from teachable.policies import make_student
    from teachable.schemas import RAW_LABELS, STUDENT_CONDITIONS

    cfg = load_config(args.config)
    floor = float(cfg["phase1"]["first_action_floor"] if args.floor is None else args.floor)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    student = make_student(cfg["student"], student_model(args, cfg), env_id=cfg["env"]["id"])
    snaps = mine(cfg, student, args.snapshots, args.seed_start)
    raw, secs = {}, {}
    for est in (DIRECT, FIRST_ACTION):
        raw[est], failures, secs[est] = label(snaps, student, cfg, est, args.n, floor, args.seed)
        if len(failures):
            print(f"{est}: {len(failures)} teacher failures left out")
    ids = sorted(set(raw[DIRECT]["snapshot_id"]) & set(raw[FIRST_ACTION]["snapshot_id"]))
    lab = {e: label_stats(r.set_index("snapshot_id").loc[ids].reset_index()) for e, r in raw.items()}
    n_cells = lab[FIRST_ACTION]["n_cells"].to_numpy(float)
    budget = {DIRECT: np.full(len(ids), len(STUDENT_CONDITIONS) * args.n, float), FIRST_ACTION: n_cells * args.n}
    report = {"snapshots": len(ids), "n": args.n, "floor": floor, "model": student.name,
              "rollouts": {e: float(budget[e].sum()) for e in budget}, "seconds": secs,
              "mean_cells": float(n_cells.mean()), "pi_rest_policy_max": float(raw[FIRST_ACTION]["pi_rest_policy"].max()),
              "identity": {}, "variance_ratio": {}}  # fmt: skip
    print(f"{len(ids)} snapshots, n = {args.n}, floor {floor}: direct {report['rollouts'][DIRECT]:.0f} student "
          f"rollouts in {secs[DIRECT]:.0f} s, first_action {report['rollouts'][FIRST_ACTION]:.0f} in "
          f"{secs[FIRST_ACTION]:.0f} s ({n_cells.mean():.2f} cells per snapshot on average); p_policy "
          f"{lab[DIRECT]['p_policy'].mean():.3f} (direct)")
    print(f"\nidentity: p(first_action) - p(direct), mean over snapshots [{args.confidence:.0%} paired bootstrap]")
    ok_all = True
    for name in ("policy", "force", *PLACEBOS, *FORMATS):
        d = lab[FIRST_ACTION][f"p_{name}"].to_numpy() - lab[DIRECT][f"p_{name}"].to_numpy()
        m, lo, hi = boot(d, np.mean, args.n_bootstrap, args.confidence, 1)
        ok = -args.tolerance <= lo <= 0 <= hi <= args.tolerance
        ok_all &= ok
        report["identity"][name] = {"diff": m, "lo": lo, "hi": hi, "holds": ok}
        print(f"  {name:17s} {m:+.4f} [{lo:+.4f}, {hi:+.4f}]  {'ok' if ok else 'FAILS'}")
    print(f"  the identity {'holds' if ok_all else 'does NOT hold'} for every condition (within +-{args.tolerance}, "
          "covering 0)")

    def per_rollout(est: str, stat: str) -> np.ndarray:
        """Per snapshot: the per-rollout values of ``stat`` (gain_net_<m> or L_local)."""
        rows = raw[est].set_index("snapshot_id").loc[ids].reset_index()
        vals = []
        for _, r in rows.iterrows():
            y = outcome_vectors(r, est, STUDENT_CONDITIONS)
            vals.append(y["force"] - y["policy"] if stat == "L_local" else y[stat[9:]] - y[f"placebo_{stat[9:]}"])
        return np.array(vals)

    print("\nvariance at equal rollout budget: direct / first_action (sum over snapshots of var x rollouts) "
          f"[{args.confidence:.0%} bootstrap over snapshots]")
    for stat in (*(f"gain_net_{m}" for m in FORMATS), "L_local"):
        v = {e: per_rollout(e, stat).var(axis=1, ddof=1) / args.n for e in budget}
        cols = np.stack([v[DIRECT] * budget[DIRECT], v[FIRST_ACTION] * budget[FIRST_ACTION],
                         v[DIRECT], v[FIRST_ACTION]], 1)  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):  # no spread at all (a degenerate student): NaN
            r, lo, hi = boot(cols, lambda x: x[:, 0].sum() / x[:, 1].sum(), args.n_bootstrap, args.confidence, 2)
            raw_ratio = float(cols[:, 2].sum() / cols[:, 3].sum())
        report["variance_ratio"][stat] = {"ratio": r, "lo": lo, "hi": hi, "ratio_same_n": raw_ratio}
        print(f"  {stat:17s} {r:.2f} [{lo:.2f}, {hi:.2f}]  (at the same n per condition/cell: {raw_ratio:.2f})")
    write_table(raw[FIRST_ACTION], RAW_LABELS, out / "reference_first_action.parquet")
    write_table(raw[DIRECT], RAW_LABELS, out / "direct.parquet")
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out / 'reference_first_action.parquet'} (the reference outcomes), {out / 'direct.parquet'}, "
          f"{out / 'report.json'}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
