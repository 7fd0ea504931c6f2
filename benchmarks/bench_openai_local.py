#!/usr/bin/env python
"""One model benched two ways: in-process (``student.backend: hf``) and through real HTTP as an
OpenAI-compatible endpoint (``student.backend: openai`` against the repo's local test server,
``tests/openai_server.py``, which serves the same model's own answers); then ``teachable compare
--bench`` of the two, and the OpenAI side's requests per second.

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_openai_local.py \\
        --model results/pilot/student/model --config config/config.yaml config/pilot.yaml

Both benches play the bench split of the config (``bench.tasks`` x ``bench.rollouts_per_task``,
or ``--tasks`` / ``--rollouts``) with the same random streams; the server samples each answer from
the model's action distribution at the request's temperature with a generator seeded by the
request's seed and messages, so the two agree in distribution, not step by step: their success
rates should agree within their intervals. The server scores one request at a time (a lock around
the model), so requests/s measures the client, the HTTP round trip and this server's model on
these cores, not a real endpoint. Writes ``--out-dir``/{hf,openai}/bench_results.json (with the
episodes) and prints both, the comparison and the usage.

``--u-states N``: also U at the first N states of the model's own episodes (T = 1, seeds from
the bench split), estimated by the OpenAI student from the server's token logprobs
(``student.openai.u_source: auto``; the server returns the model's own logprobs) against the HF
backend's U (the entropy of its action scores): how many states resolved from logprobs, their
resolved mass, and the largest and mean |U difference|.
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--u-states", type=int, default=0, help="also compare U from logprobs with HF's at N states")
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
    print("compare (openai vs hf, paired by task):")
    for m in rep["metrics"]:
        d = m["difference"]
        p = "no test" if m["p_value"] is None else f"p {m['p_value']:.3g}, Holm p {m['p_holm']:.3g}"
        print(f"  {m['metric']}: {_num(d['value'])} [{_num(d['lo'])}, {_num(d['hi'])}], {p}: {m['verdict']}"
              + (f" ({d['reason']})" if d.get("reason") else ""))
    print(f"written under {out_dir}")
    if args.u_states:
        u_agreement(policy, cfg, args.u_states)
    return 0


def _num(x) -> str:
    return "n/a" if x is None else f"{x:+.4f}"


def u_agreement(policy, cfg: dict, n: int) -> None:
    """U through HTTP from the server's token logprobs vs the HF backend's U (module docstring)."""
    import numpy as np
    from openai_server import FakeOpenAIServer, StudentResponder

    from teachable.envs.registry import env_options, parse_action, system_prompt
    from teachable.policies.base import Context, entropy_of
    from teachable.policies.generated_u import estimate_u
    from teachable.policies.openai_student import OpenAIStudent
    from teachable.rollouts import STUDENT, RolloutSpec, run_rollouts
    from teachable.seeding import rollout_key
    from teachable.splits import first_seeds

    env_id = cfg["env"]["id"]
    ctxs: list = []
    seeds = iter(first_seeds(cfg["splits"], "bench", max(n, 1), "bench.tasks"))
    while len(ctxs) < n:
        s = next(seeds)
        spec = RolloutSpec(env_id, int(s), actor=STUDENT, stream=rollout_key(0, "u_agreement", int(s), 0))
        (r,) = run_rollouts([spec], policy, temperature=1.0,
                            history_len=int(cfg["env"].get("history_len", 4)), max_steps=int(cfg["env"]["max_steps"]),
                            progress=False, record_steps=True, env_options=env_options(cfg["env"]))  # fmt: skip
        ctxs += [Context(x.instruction, x.observation, x.history, x.valid_actions) for x in r.records]
    ctxs = ctxs[:n]
    with FakeOpenAIServer(responder=StudentResponder(policy, system_prompt(env_id), logprobs=True)) as server, \
            tempfile.TemporaryDirectory() as tmp:  # fmt: skip
        student = OpenAIStudent({"base_url": server.base_url, "model": "local-student", "cache_dir": tmp,
                                 "api_key_env": "BENCH_OPENAI_LOCAL_NO_KEY"}, system_prompt=system_prompt(env_id))  # fmt: skip
        ests = estimate_u(student, ctxs, [lambda t: parse_action(env_id, t)] * len(ctxs))
    hf_u = [entropy_of(lp) for lp in policy.action_logprobs(ctxs)]
    lp_rows = [(e, h) for e, h in zip(ests, hf_u) if e.estimator == "logprobs"]
    print(f"U at {len(ctxs)} states: {len(lp_rows)} from logprobs, {len(ctxs) - len(lp_rows)} from samples")
    if lp_rows:
        mass, split = [e.mass for e, _ in lp_rows], [e.split for e, _ in lp_rows]
        diff = [abs(e.U - h) for e, h in lp_rows]
        print(f"  resolved mass {min(mass):.3f}-{max(mass):.3f}, split {min(split):.3f}-{max(split):.3f}; "
              f"|U_logprobs - U_hf| max {max(diff):.4f}, mean {float(np.mean(diff)):.4f} nats")  # fmt: skip
    sm_rows = [(e, h) for e, h in zip(ests, hf_u) if e.estimator != "logprobs" and not np.isnan(e.U)]
    if sm_rows:
        diff = [abs(e.U - h) for e, h in sm_rows]
        print(f"  from samples: |U_samples - U_hf| max {max(diff):.4f}, mean {float(np.mean(diff)):.4f} nats")


if __name__ == "__main__":
    sys.exit(main())
