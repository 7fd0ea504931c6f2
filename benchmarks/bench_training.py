#!/usr/bin/env python
"""Seconds per LoRA run on this machine: a micro run (phase 1B: 1 example x steps) and a matrix
run (phase 2: budget examples x steps), for a given student model directory.

Examples come from ``--labeled`` (a labeled_snapshots.parquet: teacher action as target) or, by
default, from oracle demonstrations on the environment, keeping states where the student's most
likely action is not the expert's (where supervision has something to correct).

``--compare-demo`` also measures, per micro run, the student's probability of the target action
in the patch-free context before and after training on the demo example with and without the
demo patch in its prompt (the choice documented in ``teachable.training``).

  python benchmarks/bench_training.py --model results/pilot/student/model --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True, help="local HF model directory (e.g. results/pilot/student/model)")
    ap.add_argument("--labeled", help="labeled_snapshots.parquet to draw examples from (default: oracle demos)")
    ap.add_argument("--env-id", default="BabyAI-GoToLocal-v0", help="env for oracle demos (default %(default)s)")
    ap.add_argument("--demo-seeds", type=int, default=40, help="oracle-demo tasks (default %(default)s)")
    ap.add_argument("--micro-steps", type=int, default=8)
    ap.add_argument("--micro-lr", type=float, default=1e-3)
    ap.add_argument("--micro-r", type=int, default=8)
    ap.add_argument("--matrix-steps", type=int, default=25)
    ap.add_argument("--matrix-lr", type=float, default=1e-3)
    ap.add_argument("--matrix-r", type=int, default=16)
    ap.add_argument("--budget", type=int, default=16, help="examples per matrix run (default %(default)s)")
    ap.add_argument("--batch-size", type=int, default=8, help="matrix batch size (micro uses 1)")
    ap.add_argument("--repeats", type=int, default=3, help="micro runs to time (different examples)")
    ap.add_argument("--matrix-repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or all cores)")
    ap.add_argument("--compare-demo", action="store_true", help="also compare demo with/without patch (see above)")
    ap.add_argument("--json", help="also write the results as JSON here")
    return ap.parse_args(argv)


def oracle_examples(env_id: str, n_seeds: int, policy, history_len: int = 4, max_steps: int = 40):
    import numpy as np

    from teachable.student_init import collect_demonstrations

    rng = np.random.default_rng(12345)
    demos = collect_demonstrations(env_id, range(900_000, 900_000 + n_seeds), max_steps, history_len, 0.0, 0.0,
                                   rng, explore_prob=0.2)  # fmt: skip
    ctxs = [d.context for d in demos]
    lps = policy.action_logprobs(ctxs)
    wrong = [(c, d.target) for c, d, lp in zip(ctxs, demos, lps) if c.valid_actions[int(np.argmax(lp))] != d.target]
    return wrong or [(d.context, d.target) for d in demos]


def labeled_examples(path: str):
    import pandas as pd

    from teachable.training import supervision_example

    df = pd.read_parquet(path)
    return [supervision_example(r, "demo") for _, r in df.iterrows()]


def p_target(policy, ctx, target) -> float:
    import math

    lp = policy.action_logprobs([ctx])[0]
    return math.exp(lp[list(ctx.valid_actions).index(target)])


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.threads:
        os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import dataclasses

    import torch

    from teachable.patches import make_patch
    from teachable.training import LoraTrainer

    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.time()
    trainer = LoraTrainer(a.model, device="cpu", dtype="float32")
    load_s = time.time() - t0
    pol = trainer.policy
    params = sum(p.numel() for p in pol.base_model.parameters())
    examples = labeled_examples(a.labeled) if a.labeled else oracle_examples(a.env_id, a.demo_seeds, pol)
    if not examples:
        print("no examples", file=sys.stderr)
        return 1
    micro_cfg = dict(r=a.micro_r, alpha=2 * a.micro_r, dropout=0.0, target_modules="all-linear", lr=a.micro_lr,
                     steps=a.micro_steps, batch_size=1, seed=0, save_steps=a.micro_steps)  # fmt: skip
    matrix_cfg = dict(r=a.matrix_r, alpha=2 * a.matrix_r, dropout=0.05, target_modules="all-linear", lr=a.matrix_lr,
                      steps=a.matrix_steps, batch_size=a.batch_size, seed=0, save_steps=a.matrix_steps)  # fmt: skip
    rows, compare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        trainer.run([examples[0]], micro_cfg, f"{tmp}/warm", progress=False)  # imports, first-call costs
        micro_s, micro_train_s = [], []
        for i in range(a.repeats):
            ctx, target = examples[i % len(examples)]
            p0 = p_target(pol, ctx, target) if a.compare_demo else None
            t = time.time()
            log = trainer.run([(ctx, target)], micro_cfg, f"{tmp}/m{i}", progress=False)
            micro_s.append(time.time() - t)
            micro_train_s.append(log["train_seconds"])
            if a.compare_demo:
                pol.load_adapter(f"{tmp}/m{i}/adapter")
                p_plain = p_target(pol, ctx, target)
                pol.load_adapter(None)
                patched = dataclasses.replace(ctx, patch=make_patch("demo", teacher_action=target, student_action="",
                                                                    diagnosis=""))  # fmt: skip
                p_patched_prompt = p_target(pol, patched, target)
                trainer.run([(patched, target)], micro_cfg, f"{tmp}/p{i}", progress=False)
                pol.load_adapter(f"{tmp}/p{i}/adapter")
                p_with_patch = p_target(pol, ctx, target)
                pol.load_adapter(None)
                compare.append({"p_before": p0, "p_after_demo_no_patch": p_plain, "p_after_demo_with_patch": p_with_patch,
                                "p_before_under_demo_patch": p_patched_prompt})  # fmt: skip
        rows.append(("micro (1 ex)", 1, a.micro_steps, 1, micro_s, micro_train_s))
        budget = min(a.budget, len(examples))
        mat_s, mat_train_s = [], []
        for i in range(a.matrix_repeats):
            t = time.time()
            log = trainer.run(examples[:budget], matrix_cfg, f"{tmp}/x{i}", progress=False)
            mat_s.append(time.time() - t)
            mat_train_s.append(log["train_seconds"])
        rows.append((f"matrix ({budget} ex)", budget, a.matrix_steps, a.batch_size, mat_s, mat_train_s))

    print(f"model {a.model}: {params:,} params, loaded in {load_s:.1f} s; torch threads {torch.get_num_threads()}; "
          f"{len(examples)} candidate examples")  # fmt: skip
    print(
        f"{'run':<18}{'examples':>9}{'steps':>7}{'batch':>7}{'s/run (median)':>16}{'train s':>9}{'s/step':>8}{'n':>4}"
    )
    out = []
    for name, n_ex, steps, bs, tot, tr in rows:
        med, trm = statistics.median(tot), statistics.median(tr)
        print(f"{name:<18}{n_ex:>9}{steps:>7}{bs:>7}{med:>16.2f}{trm:>9.2f}{trm / steps:>8.3f}{len(tot):>4}")
        out.append(
            {"run": name, "examples": n_ex, "steps": steps, "batch_size": bs, "seconds": tot, "train_seconds": tr}
        )
    if compare:
        import numpy as np

        print("\ndemo format, p(target | patch-free context), micro runs:")
        for k in ("p_before", "p_before_under_demo_patch", "p_after_demo_no_patch", "p_after_demo_with_patch"):
            v = np.array([c[k] for c in compare])
            print(f"  {k:<28} mean {v.mean():.3f}  median {np.median(v):.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "params": params, "load_seconds": load_s, "threads": torch.get_num_threads(),
                       "rows": out, "compare_demo": compare}, f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
