#!/usr/bin/env python
"""Benchmark lockstep student rollouts per family at the same batch: env steps per second of
``rollouts.run_rollouts`` (the engine of every phase that rolls out) on BabyAI and on Crafter,
and their ratio (issue target: Crafter >= 0.5x BabyAI).

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_rollouts.py --batch 64 --rollouts 128

Each family plays ``--rollouts`` rollouts from reset on seeds ``--seed-start``.., at most
``--batch`` alive at once (``max_active`` and ``student.batch_size`` both ``--batch``), sampling
at T = 1 up to ``--max-steps`` steps. The student of each family is ``--babyai-model`` /
``--crafter-model`` (e.g. a pilot's ``results/<study>/student/model``), or, by default, a random
tiny Llama of the embedded student's size with a tokenizer trained on that family's texts, so the
two families are compared with the same model size. Reported per family: rollouts, steps,
seconds (best of ``--repeats``), steps/s, success; then the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

FAMILIES = {"babyai": "BabyAI-GoToLocal-v0", "crafter": "CrafterReward-v1"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64, help="rollouts alive at once = the student's batch size")
    p.add_argument("--rollouts", type=int, default=128, help="rollouts per family")
    p.add_argument("--max-steps", type=int, default=40, help="step limit of every episode (both families)")
    p.add_argument("--history-len", type=int, default=4)
    p.add_argument("--babyai-env", default=FAMILIES["babyai"])
    p.add_argument("--crafter-env", default=FAMILIES["crafter"])
    p.add_argument("--crafter-goal", default="place_table")
    p.add_argument("--babyai-model", default=None, help="student model dir (default: a random tiny Llama)")
    p.add_argument("--crafter-model", default=None, help="student model dir (default: a random tiny Llama)")
    p.add_argument("--seed-start", type=int, default=100000)
    p.add_argument("--repeats", type=int, default=2, help="timed repeats per family (the best is reported)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    return p.parse_args(argv)


def student_dir(given: str | None, env_id: str, tmp: str) -> tuple[str, str]:
    if given:
        return given, "given"
    from teachable.student_init import build_random_student

    out = os.path.join(tmp, env_id)
    build_random_student(out, env_id, seeds=range(20), max_steps=40, vocab_size=512, hidden_size=128, n_layers=3,
                         intermediate_size=256)  # the embedded student's default size, untrained
    return out, "random tiny Llama"


def time_family(env_id: str, options: dict, model_dir: str, args, student_cfg: dict | None = None) -> dict:
    """Best-of-``args.repeats`` lockstep rollouts of the student ``student_cfg`` (default: the hf
    backend with ``args.device``/``args.dtype``) on ``model_dir``: steps, seconds, steps/s."""
    from teachable.policies import make_student
    from teachable.rollouts import STUDENT, RolloutSpec, run_rollouts
    from teachable.seeding import rollout_key

    if student_cfg is None:
        student_cfg = {"backend": "hf", "device": args.device, "dtype": args.dtype, "batch_size": args.batch}
    policy = make_student(student_cfg, model_dir, None, env_id=env_id)
    specs = [RolloutSpec(env_id, args.seed_start + i, actor=STUDENT, stream=rollout_key(0, "bench_rollouts", i, 0))
             for i in range(args.rollouts)]
    best, results = float("inf"), []
    for _ in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        results = run_rollouts(specs, policy, temperature=1.0, history_len=args.history_len, max_steps=args.max_steps,
                               progress=False, max_active=args.batch, env_options=options)  # fmt: skip
        best = min(best, time.perf_counter() - t0)
    policy.close()
    steps = sum(r.steps for r in results)
    return {"env_id": env_id, "rollouts": len(results), "steps": steps, "seconds": best, "steps_per_s": steps / best,
            "success": sum(r.success for r in results) / len(results)}  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    with tempfile.TemporaryDirectory(prefix="bench_rollouts_") as tmp:
        rows = {}
        for fam, env_id, given, opts in (("babyai", args.babyai_env, args.babyai_model, {}),
                                         ("crafter", args.crafter_env, args.crafter_model,
                                          {"goal": args.crafter_goal})):  # fmt: skip
            model_dir, what = student_dir(given, env_id, tmp)
            rows[fam] = {**time_family(env_id, opts, model_dir, args), "model": what}
    print(f"batch {args.batch}, {args.rollouts} rollouts per family, max_steps {args.max_steps}, history_len "
          f"{args.history_len}, T=1, torch threads {torch.get_num_threads()}")  # fmt: skip
    print()
    print("| family | env | student | rollouts | steps | seconds | steps/s | success |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for fam, r in rows.items():
        print(f"| {fam} | {r['env_id']} | {r['model']} | {r['rollouts']} | {r['steps']} | {r['seconds']:.2f} | "
              f"{r['steps_per_s']:.1f} | {r['success']:.3f} |")  # fmt: skip
    ratio = rows["crafter"]["steps_per_s"] / rows["babyai"]["steps_per_s"]
    print()
    print(f"Crafter / BabyAI steps/s at batch {args.batch}: {ratio:.2f} (target >= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
