#!/usr/bin/env python
"""Benchmark phase 3 evaluation: eval rollouts per second of ``teachable.evaluation.eval_model``
(the production path: every rollout of a model in one lockstep ``run_rollouts`` call).

Plays ``--n-tasks`` eval-split tasks x ``--rollouts-per-task`` from reset, plus (optionally)
``--snapshots`` held-out-like snapshots (states after a few expert actions on train seeds) x
``--rollouts-per-snapshot``, once per ``--batch-sizes`` value, and prints a Markdown table:
rollouts, student steps (states scored), seconds, rollouts/s, steps/s, success rate.

Offline only: ``--model-dir`` (a local HF model directory, optionally ``--adapter-dir``), or a
quickly built model in a temporary directory: a random tiny Llama (``--train-steps 0``, the
default; fails most tasks so it runs close to the step limit: a worst case) or a tiny embedded
student trained for ``--train-steps`` steps.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", default=None, help="local HF model dir (default: build a tiny model)")
    p.add_argument("--adapter-dir", default=None, help="optional LoRA adapter dir")
    p.add_argument("--train-steps", type=int, default=0,
                   help="no --model-dir: 0 = random tiny Llama, N > 0 = tiny student trained N steps")
    p.add_argument("--env-id", default="BabyAI-GoToLocal-v0")
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--history-len", type=int, default=4)
    p.add_argument("--n-tasks", type=int, default=20, help="eval tasks (overall suite)")
    p.add_argument("--rollouts-per-task", type=int, default=4)
    p.add_argument("--snapshots", type=int, default=0, help="snapshot-suite starts (expert prefixes on train seeds)")
    p.add_argument("--rollouts-per-snapshot", type=int, default=8)
    p.add_argument("--batch-sizes", default="64,256", help="comma-separated student.batch_size values to time")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--eval-start", type=int, default=100000, help="first seed of the eval split")
    p.add_argument("--repeats", type=int, default=1, help="timed repeats per batch size (best is reported)")
    return p.parse_args(argv)


def build_model(args, out_dir: str) -> str:
    """A random tiny Llama (train_steps == 0) or a tiny trained embedded student."""
    if args.train_steps > 0:
        from teachable.student_init import train_student

        cfg = {
            "env_id": args.env_id, "max_steps": args.max_steps, "history_len": args.history_len,
            "env_options": {}, "demo_seeds": {"start": 300000, "count": 40}, "patch_fraction": 0.5, "noise_fraction": 0.1, "explore_prob": 0.1,
            "vocab_size": 512, "hidden_size": 96, "n_layers": 2, "n_heads": 4, "intermediate_size": 192,
            "max_position_embeddings": 512, "train_steps": args.train_steps, "lr": 3e-3, "batch_size": 32,
            "seed": 0,
        }  # fmt: skip
        train_student(cfg, out_dir, progress=False)
        return "tiny embedded student, %d train steps" % args.train_steps
    from teachable.student_init import build_random_student

    build_random_student(out_dir, args.env_id, seeds=range(30), max_steps=args.max_steps, vocab_size=512,
                         hidden_size=128, n_layers=3, intermediate_size=256)  # the default student's size
    return "random tiny Llama (default student size, untrained)"


def make_snapshots(args):
    import pandas as pd

    from teachable.envs import make_env

    env = make_env(args.env_id, max_steps=args.max_steps)
    rows, seed = [], 0
    quads = ("Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL", "Q4_lowU_highL")
    while len(rows) < args.snapshots:
        env.reset(seed)
        prefix = []
        for _ in range(1 + seed % 3):
            a = env.expert_action()
            if env.step(a).done:
                break
            prefix.append(a)
        else:
            rows.append({"snapshot_id": f"bench/{seed}", "env_id": args.env_id, "seed": seed, "actions": prefix,
                         "quadrant": quads[len(rows) % 4], "task_id": f"{args.env_id}:{seed}"})
        seed += 1
    return pd.DataFrame(rows, columns=["snapshot_id", "env_id", "seed", "actions", "quadrant", "task_id"])


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np
    import torch

    from teachable.evaluation import eval_model

    tmp = None
    model_dir, what = args.model_dir, "given model directory"
    if model_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_eval_")
        model_dir = os.path.join(tmp.name, "student")
        print("building a tiny model ...", file=sys.stderr)
        what = build_model(args, model_dir)
    held = make_snapshots(args)
    rows = []
    df = None
    for bs in [int(x) for x in args.batch_sizes.split(",") if x.strip()]:
        cfg = {
            "seed": 0,
            "env": {"id": args.env_id, "max_steps": args.max_steps, "history_len": args.history_len},
            "splits": {"train": {"start": 0, "count": max(args.eval_start, 1)},
                       "eval": {"start": args.eval_start, "count": args.n_tasks}},
            "student": {"backend": "hf", "device": args.device, "dtype": args.dtype, "batch_size": bs,
                        "temperature": args.temperature},
            "phase3": {"eval_tasks": args.n_tasks, "rollouts_per_task": args.rollouts_per_task,
                       "rollouts_per_snapshot": args.rollouts_per_snapshot, "confidence": 0.95},
        }
        best = float("inf")
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            df = eval_model("bench", model_dir, args.adapter_dir, held, cfg, progress=False)
            best = min(best, time.perf_counter() - t0)
        for suite in ("overall", "snapshot", "all"):
            g = df if suite == "all" else df[df["suite"] == suite]
            if len(g) == 0:
                continue
            rows.append((bs, suite, len(g), int(g["steps"].sum()), float(g["success"].mean())))
        rows.append((bs, "_time", best, None, None))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_params = None
    try:
        from safetensors import safe_open

        with safe_open(os.path.join(model_dir, "model.safetensors"), "pt") as f:
            n_params = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    except Exception:  # noqa: BLE001 - informational only
        pass
    print(f"model: {what} ({model_dir}{', adapter ' + args.adapter_dir if args.adapter_dir else ''}); "
          f"params: {n_params if n_params is None else f'{n_params:,}'}; torch threads: {torch.get_num_threads()}")
    print(f"env: {args.env_id}, max_steps {args.max_steps}, history_len {args.history_len}, T={args.temperature}; "
          f"overall suite {args.n_tasks} tasks x {args.rollouts_per_task}, snapshot suite {len(held)} x "
          f"{args.rollouts_per_snapshot}; one expert rollout per start state included in the time")
    print()
    print("| batch_size | suite | rollouts | student steps | success | seconds | rollouts/s | steps/s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    times = {r[0]: r[2] for r in rows if r[1] == "_time"}
    for bs, suite, n, steps, succ in rows:
        if suite == "_time":
            continue
        if suite == "all":
            t = times[bs]
            print(f"| {bs} | all | {n} | {steps} | {succ:.3f} | {t:.2f} | {n / t:.2f} | {steps / t:.1f} |")
        else:
            print(f"| {bs} | {suite} | {n} | {steps} | {succ:.3f} | | | |")
    print()
    print(f"peak RSS: {peak_mb:.0f} MiB")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
