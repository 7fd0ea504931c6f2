#!/usr/bin/env python
"""The positive control under chosen training settings, on a finished run's phase outputs: train
B1_uniform and B2_all (``matrix.train_matrix_run``, the rule train_run's code) with the given LoRA
and anchor settings, evaluate them (``evaluation.eval_model``, the rule eval_model's code) and print
one Markdown row per run: its gain over the base on the snapshot suite and on the eval tasks,
retention drop, drift (KL to the base at the fixed unrelated states) and target marginal, each
with n and a 95 % cluster-bootstrap interval over tasks. The base's phase 3 rollouts of the run
are reused (common random numbers: the same draws for every model).

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_control.py --results results/pilot \\
        --config config/pilot.yaml --out scratch/control/pilot-default
    ... --lr 3e-4 --epochs 8 --share 0.5      # other settings (phase2.lora, phase2.anchor)

Reuses: ``<results>/phase1/labeled_snapshots.parquet``, ``phase0/rollouts.parquet``,
``phase2/heldout.json`` (the run's own split), ``student/model``,
``phase3/models/base/rollouts.parquet``. Writes the plan, adapters, train logs and rollouts under
``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_config(paths, overrides: dict) -> dict:
    from teachable.config import read_config_files, schema, section

    cfg = read_config_files([ROOT / "config/config.yaml", *paths])
    for sec, vals in overrides.items():
        cfg.setdefault("phase2", {}).setdefault(sec, {}).update(vals)
    for key, node in schema()["properties"].items():
        if isinstance(cfg.get(key, {}), dict) and ("properties" in node or "$ref" in node):
            cfg[key] = section(key, cfg.get(key))
    return cfg


def gains(df, base, run: str, bs) -> dict:
    from teachable.evaluation_tables import diff_of, retention_table

    out = {}
    for suite in ("snapshot", "overall"):
        m, b = df[df["suite"] == suite], base[base["suite"] == suite]
        d = diff_of(bs, m, b, "success", "task_id")
        out[suite] = {"gain": d["value"], "lo": d["lo"], "hi": d["hi"], "n": len(m), "n_tasks": d["n_clusters"]}
    import pandas as pd

    ret = retention_table(pd.concat([base, df]), bs.confidence, bs.n_resamples, bs.seed)
    r = ret[ret["model_id"] == run].iloc[0]
    out["retention"] = {"drop": r["drop"], "lo": r["drop_lo"], "hi": r["drop_hi"], "n": int(r["n"])}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True, help="a finished run's results_dir")
    p.add_argument("--config", nargs="+", default=[], help="the run's config files after config/config.yaml")
    p.add_argument("--out", required=True)
    p.add_argument("--runs", nargs="+", default=["B1_uniform", "B2_all"])
    for k, t in (("lr", float), ("epochs", float), ("r", int), ("alpha", float), ("batch_size", int),
                 ("save_steps", int)):
        p.add_argument(f"--{k.replace('_', '-')}", type=t, help=f"phase2.lora.{k}")
    p.add_argument("--share", type=float, help="phase2.anchor.share")
    a = p.parse_args(argv)

    import pandas as pd

    from teachable.documents import HELDOUT
    from teachable.evaluation import eval_model
    from teachable.io import read_doc, read_parquet, write_json
    from teachable.matrix import plan_training, train_matrix_run
    from teachable.splits import heldout_snapshots
    from teachable.stats import ClusterBootstrap

    lora = {k: getattr(a, k) for k in ("lr", "epochs", "r", "alpha", "batch_size", "save_steps")
            if getattr(a, k) is not None}
    anchor = {"share": a.share} if a.share is not None else {}
    cfg = load_config(a.config, {"lora": lora, "anchor": anchor})
    res, out = Path(a.results), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    labeled_p, rollouts_p = res / "phase1/labeled_snapshots.parquet", res / "phase0/rollouts.parquet"
    heldout_p, model = res / "phase2/heldout.json", str(res / "student/model")
    labeled, heldout = read_parquet(labeled_p), read_doc(heldout_p, HELDOUT)
    held2, plan = plan_training(labeled, cfg, rollouts_p)
    if held2["snapshot_ids"] != heldout["snapshot_ids"]:
        raise SystemExit(f"the config's held-out split differs from {heldout_p}: pass the run's config files")
    write_json(plan, out / "plan.json")
    base = read_parquet(res / "phase3/models/base/rollouts.parquet")
    bs = ClusterBootstrap(0.95, 2000, int(cfg["seed"]))
    rows = []
    for run in a.runs:
        t0 = time.time()
        tl = train_matrix_run(run, labeled_p, heldout_p, out / "plan.json", model, cfg, out / run, progress=False,
                              rollouts_path=rollouts_p)  # fmt: skip
        t1 = time.time()
        df = eval_model(run, model, str(out / run / "adapter"), heldout_snapshots(labeled, heldout), cfg, progress=False)
        df.to_parquet(out / run / "rollouts.parquet")
        g = gains(df, base, run, bs)
        row = {"run": run, "lora": cfg["phase2"]["lora"], "anchor": cfg["phase2"]["anchor"],
               "examples": tl["examples"], "anchor_examples": tl["anchor_examples"],
               "steps": tl["optimizer_steps"], "train_s": round(t1 - t0, 1), "eval_s": round(time.time() - t1, 1),
               "drift": tl["drift"], "target_marginal": tl["target_marginal"], **g}  # fmt: skip
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)
    write_json({"rows": rows, "argv": sys.argv[1:]}, out / "control.json")
    f = lambda d, k="gain": f"{d[k]:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] (n={d['n']})"  # noqa: E731
    print("| run | lr | epochs | r | share | steps | snapshot gain | overall gain | retention drop | drift KL |")
    print("|---|---:|---:|---:|---:|---:|---|---|---|---|")
    for r in rows:
        dr = r["drift"] or {}
        print(f"| {r['run']} | {r['lora']['lr']:g} | {r['lora']['epochs']:g} | {r['lora']['r']} | "
              f"{r['anchor']['share']:g} | {r['steps']} | {f(r['snapshot'])} | {f(r['overall'])} | "
              f"{f(r['retention'], 'drop')} | {dr.get('kl')} [{dr.get('lo')}, {dr.get('hi')}] (n={dr.get('n_states')}) |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
