#!/usr/bin/env python
"""The embedded student on the HTML family: built from the oracle's ``mvp`` demonstrations, then
benched through `teachable bench`'s machinery.

``student_init.train_student`` (the recipe of the config's ``student.init``, here on
``HTMLExtract-v0`` with ``env.mode: mvp`` and the demo split's first --demo-tasks seeds) builds
the student; it generates its actions (``student.generate``, hf backend) and plays --tasks
bench tasks x --rollouts (``bench.bench_episodes``: ``rollouts.study_rollouts`` with the bench's
keyed streams). Prints success with its Wilson interval and the bench's cluster-bootstrap one
(over tasks), the invalid-output rate, mean reward, the family's values (tool calls, JSON
repairs, ...) and success per archetype, beside the oracle's success on the same tasks; writes
the bench JSON with --out. --model benches an existing model directory instead of training.

    PYTHONPATH=workflow nice -n 10 .venv/bin/python benchmarks/bench_html_student.py --tasks 100 --rollouts 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

ENV_ID = "HTMLExtract-v0"
# the student section this benchmark runs (config/pilot-html.yaml's student section)
STUDENT = {
    "backend": "hf",
    "temperature": 1.0,
    "batch_size": 64,
    "generate": {"max_new_tokens": 96, "k_samples": 8},
    "init": {"demo_tasks": 1000, "patch_fraction": 0.3, "noise_fraction": 0.05, "explore_prob": 0.1,
             "vocab_size": 1024, "hidden_size": 128, "n_layers": 3, "n_heads": 4, "intermediate_size": 256,
             "max_position_embeddings": 512, "train_steps": 300, "lr": 0.003, "batch_size": 32},
}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=100, help="bench tasks (default 100)")
    ap.add_argument("--rollouts", type=int, default=2, help="rollouts per task (default 2)")
    ap.add_argument("--init", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override student.init keys (e.g. train_steps=200 lr=0.003)")
    ap.add_argument("--model", default=None, help="bench this model directory (default: train one)")
    ap.add_argument("--save", default=None, help="keep the trained student here")
    ap.add_argument("--config", default="config/config.yaml", help="the study config whose splits and seed are used")
    ap.add_argument("--out", default=None, help="write the bench JSON here")
    args = ap.parse_args(argv)

    import yaml

    from teachable import bench
    from teachable.config import read_config_files, section
    from teachable.policies import make_student
    from teachable.rollouts import EXPERT, study_rollouts
    from teachable.stats import proportion
    from teachable.steps import _student_recipe
    from teachable.student_init import train_student

    cfg = read_config_files([args.config])
    cfg["env"] = {**cfg["env"], "id": ENV_ID, "mode": "mvp", "max_steps": None, "history_len": 0}
    init = {**STUDENT["init"], **{k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.init)}}
    cfg["student"] = section("student", {**STUDENT, "init": init})
    cfg["bench"] = {**cfg.get("bench", {}), "tasks": args.tasks, "levels": [ENV_ID], "rollouts_per_task": args.rollouts}
    cfg = bench.bench_config(cfg)
    card = None
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or args.save or str(Path(tmp) / "student")
        if not args.model:
            card = train_student(_student_recipe(cfg), model, progress=False)
            print(f"student: {card['params']} parameters, {card['demos']} demos, {card['train_steps']} steps, "
                  f"loss {card['final_loss']:.3f}, {card['seconds']:.0f} s ({card['threads']} threads), "
                  f"{card['mean_prompt_tokens']:.0f} prompt tokens, context {card['max_position_embeddings']}")  # fmt: skip
        student = make_student(cfg["student"], model, env_id=ENV_ID)
        t0 = time.perf_counter()
        rows = bench.bench_episodes("embedded", student, cfg, progress=False)
        seconds = time.perf_counter() - t0
        usage = student.usage_summary()
    p3 = cfg["phase3"]
    res = bench.bench_results(rows, "embedded", usage, p3["confidence"], p3["n_bootstrap"], int(cfg["seed"]))
    specs, meta = bench.bench_specs(cfg)
    experts = study_rollouts([s for s in specs if s.actor == EXPERT], None, cfg, progress=False)
    n_oracle = sum(r.success for r in experts)

    def cell(r: dict, digits: int = 3) -> str:
        return f"{r['value']:.{digits}f} [{r['lo']:.{digits}f}, {r['hi']:.{digits}f}] (n = {r['n']})"

    def wilson(k: int, n: int) -> str:
        w = proportion(int(k), int(n), p3["confidence"])
        return f"{w['p']:.3f} [{w['lo']:.3f}, {w['hi']:.3f}] (n = {w['n']})"

    m = res["metrics"]
    print(f"embedded student on {ENV_ID} mode mvp, {args.tasks} bench tasks x {args.rollouts} rollouts, "
          f"{seconds:.0f} s; usage {usage}")  # fmt: skip
    print(f"success {wilson(rows['success'].sum(), len(rows))} (bootstrap over tasks: {cell(m['success_rate'])})")
    print(f"invalid-output rate {cell(m['invalid_rate'])}; mean reward {cell(m['mean_reward'])}; "
          f"steps {cell(m['mean_steps'], 2)}")  # fmt: skip
    print(f"oracle on the same tasks: success {wilson(n_oracle, len(experts))}")
    for col in ("tool_calls", "json_repairs", "sandbox_timeouts"):
        print(f"  {col}: mean {rows[col].mean():.3f}, total {int(rows[col].sum())}")
    print("\n| archetype | success (Wilson) |\n| --- | --- |")
    for a, g in rows.groupby("archetype"):
        print(f"| {a} | {wilson(g['success'].sum(), len(g))} |")
    if args.out:
        res["student_card"] = card
        res["oracle_success"] = {"k": n_oracle, "n": len(experts)}
        Path(args.out).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
