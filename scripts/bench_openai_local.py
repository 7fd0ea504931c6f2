#!/usr/bin/env python
"""One model benched two ways: in-process (``student.backend: hf``) and through real HTTP as an
OpenAI-compatible endpoint (``student.backend: openai`` against the repo's local test server,
``tests/openai_server.py``, which serves the same model's own answers); then ``teachable compare
--bench`` of the two, and the OpenAI side's requests per second.

    PYTHONPATH=workflow .venv/bin/python scripts/bench_openai_local.py \\
        --model results/pilot/student/model --config config/config.yaml config/pilot.yaml

Both benches play the bench split of the config (``bench.tasks`` x ``bench.rollouts_per_task``,
or ``--tasks`` / ``--rollouts``) with the same random streams; the server samples each answer from
the model's action distribution at the request's temperature with a generator seeded by the
request's seed and messages, so the two agree in distribution, not step by step: their success
rates should agree within their intervals. The server scores one request at a time (a lock around
the model), so requests/s measures the client, the HTTP round trip and this server's model on
these cores, not a real endpoint. Writes ``--out-dir``/{hf,openai}/bench_results.json (with the
episodes) and prints both, the comparison and the usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a local HF model directory (e.g. results/pilot/student/model)")
    p.add_argument("--config", nargs="+", default=[str(ROOT / "config/config.yaml"), str(ROOT / "config/pilot.yaml")],
                   help="config files, later over earlier (the bench, env, splits and student sections)")
    p.add_argument("--tasks", type=int, default=None, help="bench.tasks (default: the config's)")
    p.add_argument("--rollouts", type=int, default=None, help="bench.rollouts_per_task (default: the config's)")
    p.add_argument("--concurrency", type=int, default=8, help="student.openai.concurrency")
    p.add_argument("--out-dir", default=None, help="where the two benches are written (default: a temp dir)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from openai_server import FakeOpenAIServer, StudentResponder

    from teachable.bench import run_bench
    from teachable.config import read_config_files
    from teachable.compare import compare_bench
    from teachable.envs.registry import system_prompt
    from teachable.policies.hf import HFPolicy

    cfg = read_config_files(args.config)
    if args.tasks:
        cfg.setdefault("bench", {})["tasks"] = args.tasks
    if args.rollouts:
        cfg.setdefault("bench", {})["rollouts_per_task"] = args.rollouts
    env_id = cfg["env"]["id"]
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="bench_openai_local_"))
    hf_cfg = dict(cfg, student={**cfg.get("student", {}), "backend": "hf"})
    hf = run_bench(hf_cfg, args.model, None, "hf", out_dir / "hf" / "bench_results.json")
    policy = HFPolicy(args.model, system_prompt=system_prompt(env_id))
    with FakeOpenAIServer(responder=StudentResponder(policy, system_prompt(env_id))) as server:
        api_cfg = dict(cfg, student={**cfg.get("student", {}), "backend": "openai", "openai": {
            "base_url": server.base_url, "model": "local-student", "api_key_env": "BENCH_OPENAI_LOCAL_NO_KEY",
            "concurrency": args.concurrency, "cache_dir": None}})  # fmt: skip
        api = run_bench(api_cfg, None, None, "openai", out_dir / "openai" / "bench_results.json")
    rep = compare_bench(out_dir / "hf" / "bench_results.json", out_dir / "openai" / "bench_results.json")
    for name, r in (("hf", hf), ("openai", api)):
        m = r["metrics"]["success_rate"]
        print(f"{name}: success {m['value']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}] (n = {m['n']}, {m['n_tasks']} tasks), "
              f"invalid rate {r['metrics']['invalid_rate']['value']:.3f}")  # fmt: skip
    u = api["usage"]
    print(f"openai usage: {u['requests']} requests, {u['prompt_tokens']} prompt / {u['completion_tokens']} "
          f"completion tokens, {u['seconds']:.1f} s, {u['requests_per_s']:.1f} requests/s")  # fmt: skip
    print("compare (openai vs hf):", json.dumps(rep.get("overall", rep), default=str)[:2000])
    print(f"written under {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
