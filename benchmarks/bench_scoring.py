#!/usr/bin/env python
"""Benchmark the student's action scoring on real BabyAI states.

Compares, on the same N contexts (distinct states, memo cleared before every timed run):
  - batched, shared prompt KV cache (HFPolicy.action_logprobs: the production path), with the
    candidates packed into one row per prompt (default) and with the cache expanded per candidate,
  - batched full prompt+candidate sequences without KV sharing,
  - one state at a time, full sequences (the naive baseline; timed on a subset, --naive-limit),
and checks they agree. Prints states/s, mean prompt length in tokens and peak RSS.

Offline only: uses --model-dir (a local HF model directory) or trains a tiny embedded student
into a temporary directory.
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
    p.add_argument("--model-dir", default=None, help="local HF model dir (default: train a tiny student into a temp dir)")
    p.add_argument("--adapter-dir", default=None, help="optional LoRA adapter dir")
    p.add_argument("--env-id", default="BabyAI-GoToLocal-v0")
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--history-len", type=int, default=4)
    p.add_argument("--n-contexts", type=int, default=256, help="number of states to score")
    p.add_argument("--batch-size", type=int, default=64, help="prompts per forward pass (KV-shared path)")
    p.add_argument("--full-batch-size", type=int, default=64, help="sequences per pass (no-KV-sharing path)")
    p.add_argument("--naive-limit", type=int, default=64, help="states timed for the one-at-a-time baseline")
    p.add_argument("--patch-prob", type=float, default=0.3, help="fraction of contexts carrying a demo patch")
    p.add_argument("--explore-prob", type=float, default=0.2, help="random-action prob. while collecting states")
    p.add_argument("--seed-start", type=int, default=200000, help="first env seed (the bench split)")
    p.add_argument("--train-steps", type=int, default=60,
                   help="steps for the quickly trained student (no --model-dir; the pilot's architecture)")
    p.add_argument("--repeats", type=int, default=2, help="timed repeats per method (best is reported)")
    p.add_argument("--skip-full", action="store_true", help="skip the batched no-KV-sharing method")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (sets OMP_NUM_THREADS; default: all cores unless it is set)")
    return p.parse_args(argv)


def collect_contexts(args):
    import numpy as np

    from teachable.envs import make_env
    from teachable.patches import make_patch
    from teachable.policies.base import Context

    rng = np.random.default_rng(0)
    env = make_env(args.env_id, max_steps=args.max_steps)
    seen, ctxs, seed = set(), [], args.seed_start
    while len(ctxs) < args.n_contexts:
        obs = env.reset(seed)
        hist: list[str] = []
        for _ in range(args.max_steps):
            try:
                expert = env.expert_action()
            except RuntimeError:  # no expert action (e.g. the mission became impossible)
                break
            patch = None
            if rng.random() < args.patch_prob:
                patch = make_patch("demo", teacher_action=expert, student_action="", diagnosis="")
            ctx = Context(obs.instruction, obs.text, tuple(hist[-args.history_len :]), obs.valid_actions, patch)
            if ctx not in seen:
                seen.add(ctx)
                ctxs.append(ctx)
            act = expert
            if rng.random() < args.explore_prob:
                act = obs.valid_actions[int(rng.integers(len(obs.valid_actions)))]
            res = env.step(act)
            hist.append(act)
            obs = res.observation
            if res.done or len(ctxs) >= args.n_contexts:
                break
        seed += 1
    return ctxs[: args.n_contexts], seed - args.seed_start


def tiny_student(args, out_dir: str) -> None:
    from teachable.student_init import train_student

    cfg = {
        "env_id": args.env_id, "max_steps": args.max_steps, "history_len": args.history_len,
        "env_options": {}, "demo_seeds": {"start": 300000, "count": 200}, "patch_fraction": 0.5, "noise_fraction": 0.15, "explore_prob": 0.1,
        "vocab_size": 1024, "hidden_size": 128, "n_layers": 3, "n_heads": 4, "intermediate_size": 256,
        "max_position_embeddings": 512, "train_steps": args.train_steps, "lr": 1e-3, "batch_size": 32, "seed": 0,
    }  # fmt: skip
    train_student(cfg, out_dir, progress=False)


def timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from teachable.policies.hf import HFPolicy

    tmp = None
    model_dir = args.model_dir
    if model_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_student_")
        model_dir = os.path.join(tmp.name, "student")
        print(f"training a tiny student ({args.train_steps} steps) into {model_dir} ...", file=sys.stderr)
        tiny_student(args, model_dir)

    pol = HFPolicy(model_dir, adapter_dir=args.adapter_dir, batch_size=args.batch_size)
    load0 = os.getloadavg()[0]  # other processes on the machine skew CPU timings: printed
    ctxs, n_seeds = collect_contexts(args)
    p_lens = [len(x) for x in pol.prompt_ids(ctxs)]
    n_act = [len(c.valid_actions) for c in ctxs]
    params = sum(p.numel() for p in pol.model.parameters())

    def kv_shared():
        pol.clear_memo()
        return pol.action_logprobs(ctxs)

    rows = []
    t_kv, ref = timed(kv_shared, args.repeats)
    rows.append((f"batched, shared prompt KV ({pol.kv_mode})", len(ctxs), t_kv))
    diffs = {}
    if pol.kv_mode == "packed":
        pol.kv_mode = "expand"
        t_ex, ex = timed(kv_shared, args.repeats)
        pol.kv_mode = "packed"
        rows.append(("batched, shared prompt KV (expand)", len(ctxs), t_ex))
        diffs["expand"] = max(float(np.abs(a - b).max()) for a, b in zip(ref, ex))
    if not args.skip_full:
        t_full, full = timed(lambda: pol.action_logprobs_full(ctxs, batch_size=args.full_batch_size), args.repeats)
        rows.append((f"batched full sequences ({args.full_batch_size}/pass)", len(ctxs), t_full))
        diffs["full"] = max(float(np.abs(a - b).max()) for a, b in zip(ref, full))
    sub = ctxs[: max(1, min(args.naive_limit, len(ctxs)))]

    def one_at_a_time():
        return [pol.action_logprobs_full([c], batch_size=len(c.valid_actions))[0] for c in sub]

    t_naive, naive = timed(one_at_a_time, 1)
    rows.append(("one state at a time, full sequences", len(sub), t_naive))
    diffs["naive"] = max(float(np.abs(a - b).max()) for a, b in zip(ref, naive))
    pol.action_logprobs(ctxs)  # memo hits
    t_memo, _ = timed(lambda: pol.action_logprobs(ctxs), args.repeats)
    rows.append(("memo hits (same states again)", len(ctxs), t_memo))

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model: {model_dir}  params: {params:,}  device: {pol.device}  dtype: {pol.dtype}  "
          f"torch threads: {torch.get_num_threads()}; load average before: {load0:.2f}")  # fmt: skip
    print(f"contexts: {len(ctxs)} distinct states from {n_seeds} {args.env_id} seeds "
          f"(>= {args.seed_start}), {args.patch_prob:.0%} with a demo patch")  # fmt: skip
    print(f"prompt tokens: mean {np.mean(p_lens):.1f}, min {min(p_lens)}, max {max(p_lens)}; "
          f"valid actions per state: mean {np.mean(n_act):.2f}; batch_size {args.batch_size} prompts/pass")  # fmt: skip
    print()
    print(f"| {'method':<40} | {'states':>6} | {'seconds':>8} | {'states/s':>9} | {'speed-up':>8} |")
    print(f"|{'-' * 42}|{'-' * 8}|{'-' * 10}|{'-' * 11}|{'-' * 10}|")
    base_rate = rows[-2][1] / rows[-2][2]
    for name, n, t in rows:
        rate = n / t
        print(f"| {name:<40} | {n:>6} | {t:>8.3f} | {rate:>9.1f} | {rate / base_rate:>7.1f}x |")
    print()
    print("max |logprob difference| vs KV-shared: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    print(f"peak RSS: {peak_mb:.0f} MiB; memo: {pol.memo_stats}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
