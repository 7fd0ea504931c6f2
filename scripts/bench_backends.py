#!/usr/bin/env python
"""Rollout throughput of the student backends on the same model and batch: lockstep student
rollouts (``rollouts.run_rollouts``, the engine of every phase that rolls out) scored by the
``hf`` backend (transformers) and by the ``vllm`` backend in each of its scoring modes
(``student.vllm.scoring``: ``trie``, ``prompt_logprobs``). GPU machine with ``.[vllm]`` installed.

    PYTHONPATH=workflow .venv/bin/python scripts/bench_backends.py --model results/pilot/student/model \\
        --batch 64 --rollouts 256

Every backend plays the same ``--rollouts`` rollouts (seeds ``--seed-start``.., T = 1, at most
``--batch`` alive at once, ``student.batch_size`` = ``--batch``) on ``--env``; the time is the best
of ``--repeats`` (the engine is started before the first, so start-up is not counted). Reported per
backend: steps, seconds, steps/s, success, and steps/s relative to hf. Successes differ between
backends only through their arithmetic (the scores agree to ``tests/test_student_vllm.py``'s
tolerance; sampling uses the same streams). Without ``--model``: a random tiny Llama of the
embedded student's size (``bench_rollouts.student_dir``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from bench_rollouts import student_dir, time_family

SCORINGS = ("trie", "prompt_logprobs")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="student model dir (default: a random tiny Llama)")
    p.add_argument("--env", default="BabyAI-GoToLocal-v0")
    p.add_argument("--backends", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"])
    p.add_argument("--vllm-scoring", nargs="+", default=list(SCORINGS), choices=SCORINGS)
    p.add_argument("--batch", type=int, default=64, help="rollouts alive at once = the student's batch size")
    p.add_argument("--rollouts", type=int, default=256)
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--history-len", type=int, default=4)
    p.add_argument("--seed-start", type=int, default=100000)
    p.add_argument("--repeats", type=int, default=2, help="timed repeats per backend (the best is reported)")
    p.add_argument("--dtype", default="auto", help="student.dtype of both backends")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.5, help="student.vllm.gpu_memory_utilization")
    return p.parse_args(argv)


def configs(args) -> list[tuple[str, dict]]:
    out = []
    if "hf" in args.backends:
        out.append(("hf", {"backend": "hf", "device": "cuda", "dtype": args.dtype, "batch_size": args.batch}))
    if "vllm" in args.backends:
        for s in args.vllm_scoring:
            out.append((f"vllm ({s})", {"backend": "vllm", "dtype": args.dtype, "batch_size": args.batch,
                                        "vllm": {"scoring": s, "gpu_memory_utilization": args.gpu_memory_utilization,
                                                 "enable_lora": False}}))  # fmt: skip
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("bench_backends: no CUDA GPU is visible; the vllm backend needs one", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as tmp:
        model_dir, what = student_dir(args.model, args.env, tmp)
        rows = []
        for name, cfg in configs(args):
            rows.append((name, time_family(args.env, {}, model_dir, args, student_cfg=cfg)))
            torch.cuda.empty_cache()
    print(f"{args.env}, student {what}, batch {args.batch}, {args.rollouts} rollouts, max_steps {args.max_steps}, "
          f"T=1, dtype {args.dtype}, {torch.cuda.get_device_name()}")  # fmt: skip
    print()
    print("| backend | rollouts | steps | seconds | steps/s | success | vs hf |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    hf = next((r["steps_per_s"] for n, r in rows if n == "hf"), None)
    for name, r in rows:
        rel = f"{r['steps_per_s'] / hf:.2f}x" if hf else "-"
        print(f"| {name} | {r['rollouts']} | {r['steps']} | {r['seconds']:.2f} | {r['steps_per_s']:.1f} | "
              f"{r['success']:.3f} | {rel} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
