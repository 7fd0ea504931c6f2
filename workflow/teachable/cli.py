"""`teachable` command line: one subcommand per phase step; Snakemake rules call these.

Rules pass the config sections a step depends on as one JSON argument (``--config-json``), so a
change to one phase's settings makes only that phase's jobs stale."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import sys
import time

from .constants import SELECTION_METHODS
from .gpu_slots import gpu_slot_for

log = logging.getLogger("teachable")

# subcommands that run the student (torch, maybe CUDA): each holds a GPU slot while it runs, with
# CUDA_VISIBLE_DEVICES set to its own GPU (a no-op without GPUs; README "Running on a cluster")
GPU_COMMANDS = {"student-init", "rollouts", "eval-student", "label-shard", "microtrain",
                "train-run", "eval-model", "select-train", "bench", "bench-rollouts"}
BENCH_CONFIG_COMMANDS = {"bench", "bench-rollouts"}  # --config-json or --config YAML files (_bench_cfg)


def _gpu_slot(args):
    if args.cmd not in GPU_COMMANDS:
        return contextlib.nullcontext()
    cfg = args.bench_cfg if args.cmd in BENCH_CONFIG_COMMANDS else _cfg(args.config_json) if getattr(args, "config_json", None) else {}
    return gpu_slot_for((cfg.get("student") or {}).get("device", "auto"))


def _cfg(s: str) -> dict:
    try:
        return json.loads(s)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--config-json is not valid JSON: {e}") from e


def _bench_cfg(a) -> dict:
    """The bench's config: ``--config-json`` (a rule's), or YAML config files (``--config``),
    later files over earlier ones (e.g. config/config.yaml config/pilot.yaml)."""
    if a.config_json:
        return _cfg(a.config_json)
    from .config import read_config_files

    return read_config_files(a.config)


def cmd_student_init(a) -> None:
    from .student_init import train_student

    train_student(_cfg(a.config_json), a.out)


def _student(cfg: dict, model: str, adapter: str | None = None):
    from .policies import make_student

    student = make_student(cfg["student"], model, adapter, env_id=cfg["env"]["id"])
    import atexit

    atexit.register(student.close)  # frees the backend; an API student logs this job's requests, tokens and cost
    return student


def cmd_rollouts(a) -> None:
    from .io import write_table
    from .mining import experiment_rollouts
    from .schemas import ROLLOUT_STEPS

    cfg = _cfg(a.config_json)
    df = experiment_rollouts(cfg, _student(cfg, a.model), progress=not a.no_progress)
    for exp, g in df.groupby("experiment"):
        eps = g.drop_duplicates("episode_id")
        log.info("experiment %s: %d episodes, %d successes, %d steps", exp, len(eps),
                 int(eps["episode_success"].sum()), len(g))
    write_table(df, ROLLOUT_STEPS, a.out)


def cmd_eval_student(a) -> None:
    from .io import write_json
    from .mining import evaluate_student

    cfg = _cfg(a.config_json)
    res = evaluate_student(cfg, _student(cfg, a.model), a.split, a.n_tasks, progress=not a.no_progress)
    log.info("student success on %s: %.3f (n=%d, 95%% CI %.3f-%.3f)", a.split, res["success_rate"],
             res["n"], *res["ci95"])
    write_json(res, a.out)


def cmd_mine(a) -> None:
    from .io import read_table, write_json, write_table
    from .mining import mine
    from .schemas import ROLLOUT_STEPS, SNAPSHOTS

    fa, fb, summary = mine(read_table(a.rollouts, ROLLOUT_STEPS), _cfg(a.config_json), a.rollouts)
    log.info("mined %d failure snapshots (A) and %d expert snapshots (B); %s", len(fa), len(fb), summary)
    write_json(summary, a.out_summary)
    write_table(fa, SNAPSHOTS, a.out_failure)
    write_table(fb, SNAPSHOTS, a.out_expert)


def cmd_label_shard(a) -> None:
    import pandas as pd

    from .envs.registry import env_options
    from .io import read_table, write_table
    from .labeling import label_snapshots, select_shard
    from .schemas import RAW_LABELS, SNAPSHOTS, TEACHER_FAILURES
    from .teachers import make_teacher

    cfg = _cfg(a.config_json)
    snaps = pd.concat([read_table(p, SNAPSHOTS) for p in a.snapshots], ignore_index=True)
    shard = select_shard(snaps, cfg["phase1"], a.shard, a.n_shards, cfg["seed"])
    log.info("shard %d/%d: %d of %d snapshots", a.shard, a.n_shards, len(shard), len(snaps))
    teacher = make_teacher(cfg["teacher"], cfg["env"].get("max_steps"), env_options(cfg["env"]))
    raw, failures = label_snapshots(shard, _student(cfg, a.model), teacher, cfg, progress=not a.no_progress)
    log.info("labeled %d snapshots, %d teacher failures; teacher usage %s", len(raw),
             len(failures), getattr(teacher, "usage", {}))
    write_table(failures, TEACHER_FAILURES, a.out_failures)
    write_table(raw, RAW_LABELS, a.out)


def cmd_merge_labels(a) -> None:
    import pandas as pd

    from .io import read_table, write_json, write_jsonl, write_table
    from .labeling import merge_labels
    from .reporting.figures import threshold_plots
    from .schemas import LABELED, RAW_LABELS, TEACHER_FAILURES

    raw = pd.concat([read_table(p, RAW_LABELS) for p in a.shards], ignore_index=True)
    fails = pd.concat([read_table(p, TEACHER_FAILURES) for p in a.failures], ignore_index=True)
    df, thr = merge_labels(raw, fails, _cfg(a.config_json)["phase1"]["quadrants"])
    log.info("quadrant sizes %s (thresholds U>%.4f, L>%.4f)", thr["sizes"], thr["U_threshold"], thr["L_threshold"])
    threshold_plots(df, thr, a.plots_dir)
    write_table(fails, TEACHER_FAILURES, a.out_failures)
    write_json(thr, a.thresholds)
    write_jsonl(df, a.out_jsonl)
    write_table(df, LABELED, a.out)


def cmd_label_report(a) -> None:
    from .hint_audit import hint_audit
    from .io import read_table, write_json, write_table
    from .labeling import label_intervals
    from .schemas import LABEL_INTERVALS, LABELED

    cfg = _cfg(a.config_json)
    p1, seed = cfg["phase1"], int(cfg["seed"])
    df = read_table(a.labeled, LABELED)
    audit = hint_audit(df, seed=seed, confidence=float(p1["confidence"]))
    log.info("hint audit: %d diagnoses naming an action; action accuracy from the hint %s, demo %s, majority %s",
             audit["diagnoses_naming_action"], *(audit[k] and round(audit[k]["p"], 3) for k in
             ("hint_action_accuracy", "demo_action_accuracy", "majority_accuracy")))  # fmt: skip
    write_table(label_intervals(df, float(p1["confidence"]), int(p1["n_bootstrap"]), seed), LABEL_INTERVALS,
                a.out_intervals)
    write_json(audit, a.out_hint_audit)


def cmd_figures(a) -> None:
    from .reporting import figures_from_files

    paths = figures_from_files(labeled=a.labeled, thresholds=a.thresholds, micro=a.micro, correlation=a.correlation,
                               transfer=a.transfer, overall=a.overall, retention=a.retention, selection=a.selection,
                               out_dir=a.out_dir, confidence=a.confidence,
                               retention_threshold=a.retention_threshold)  # fmt: skip
    log.info("wrote %d figures to %s", len(paths), a.out_dir)


def cmd_tables(a) -> None:
    from .reporting import tables_from_files

    paths = tables_from_files(labeled=a.labeled, transfer=a.transfer, overall=a.overall, retention=a.retention,
                              stuckness=a.stuckness, predictor=a.predictor, selection=a.selection,
                              out_dir=a.out_dir, confidence=a.confidence, family=a.family)  # fmt: skip
    log.info("wrote %d table files to %s", len(paths), a.out_dir)


def cmd_summary(a) -> None:
    from .reporting import summary_from_files

    summary_from_files(correlation=a.correlation, transfer=a.transfer, retention=a.retention, overall=a.overall,
                       thresholds=a.thresholds, predictor=a.predictor, selection=a.selection, labeled=a.labeled,
                       hint_audit=a.hint_audit, training=a.training, mining=a.mining, base_rollouts=a.base_rollouts,
                       teacher_failures=a.teacher_failures,
                       retention_threshold=a.retention_threshold, alpha=a.alpha, confidence=a.confidence,
                       n_bootstrap=a.n_bootstrap, seed=a.seed, out_json=a.out_json, out_md=a.out_md)  # fmt: skip


def cmd_traces(a) -> None:
    from .envs.registry import trace_filters
    from .traces import export_sft_jsonl, query_traces

    steps, stats = query_traces(a.rollouts, min_reward=a.min_reward, max_turns=a.max_turns,
                                success_only=a.success_only, experiment=a.experiment, source=a.source,
                                **{f.name: getattr(a, f.name) for f in trace_filters()})
    if not a.stats_only:
        if not a.out:
            raise SystemExit("--out is required unless --stats-only")
        stats["exported_examples"] = export_sft_jsonl(steps, a.out)
    print(json.dumps(stats, indent=2))


def cmd_microtrain(a) -> None:
    from .io import read_table, write_table
    from .microtrain import run_micro_training, shard_sample
    from .schemas import LABELED, MICRO_SHARD

    cfg = _cfg(a.config_json)
    mine = shard_sample(read_table(a.labeled, LABELED), cfg["phase1b"]["per_quadrant"], cfg["seed"], a.shard,
                        a.n_shards)  # fmt: skip
    write_table(run_micro_training(mine, a.model, cfg, progress=not a.no_progress), MICRO_SHARD, a.out)


def cmd_micro_merge(a) -> None:
    from .io import read_table, write_json, write_table
    from .microtrain import merge_results
    from .schemas import MICRO_RESULTS, MICRO_SHARD

    results, report = merge_results([read_table(p, MICRO_SHARD) for p in a.shards], _cfg(a.config_json))
    log.info("CPT vs micro-training: rho=%s CI=%s p=%s pass=%s", report.get("rho"), report.get("rho_ci"),
             report.get("p_value"), report.get("pass"))
    write_table(results, MICRO_RESULTS, a.out)
    write_json(report, a.out_correlation)


def cmd_cpt_gate(a) -> None:
    from .io import read_json, write_json
    from .microtrain import gate_verdict

    write_json(gate_verdict(read_json(a.correlation), a.gate, a.correlation), a.out)


def cmd_plan_training(a) -> None:
    from .io import read_table, write_json
    from .matrix import plan_training
    from .schemas import LABELED

    heldout, plan = plan_training(read_table(a.labeled, LABELED), _cfg(a.config_json), rollouts=a.rollouts)
    log.info("held out %d snapshots of %d tasks; budget K=%s, %s optimizer steps; trained runs %s; skipped %s",
             len(heldout["snapshot_ids"]), len(heldout["task_ids"]), plan["budget"], plan["optimizer_steps"],
             plan["trained_runs"], plan["skipped_runs"])  # fmt: skip
    write_json(heldout, a.out_heldout)
    write_json(plan, a.out_plan)


def cmd_train_run(a) -> None:
    from .matrix import train_matrix_run

    cfg = _cfg(a.config_json)
    res = train_matrix_run(a.run_id, a.labeled, a.heldout, a.plan, a.model, cfg, a.out_dir, rollouts_path=a.rollouts)
    log.info("run %s: %s examples, %.1fs, final loss %s", a.run_id, res.get("examples"),
             res.get("seconds", float("nan")), res.get("final_loss"))


def cmd_training_summary(a) -> None:
    from pathlib import Path

    from .io import read_json, write_json
    from .matrix import training_summary

    write_json(training_summary([str(Path(p).parent) for p in a.train_logs], read_json(a.plan)), a.out)


def cmd_select_train(a) -> None:
    from .selection import train_selected

    cfg = _cfg(a.config_json)
    res = train_selected(a.method, a.labeled, a.heldout, a.plan, a.model, cfg, a.out_dir, predictor_dir=a.predictor,
                         progress=not a.no_progress)  # fmt: skip
    log.info("selection %s: %s examples, %.1fs, final loss %s", a.method, res.get("examples"),
             res.get("seconds", float("nan")), res.get("final_loss"))


def cmd_selection_summary(a) -> None:
    import pandas as pd

    from .io import read_json, read_table, write_json
    from .schemas import EVAL_ROLLOUTS
    from .selection import summarize_selection

    if len(a.selected) != len(a.rollouts):
        raise ValueError("give one --selected file per --rollouts file (same order)")
    rows = pd.concat([read_table(p, EVAL_ROLLOUTS) for p in (a.base_rollouts, *a.rollouts)], ignore_index=True)
    selected = {sel["method"]: sel for sel in map(read_json, a.selected)}
    write_json(summarize_selection(rows, selected, read_json(a.plan)["selection"], a.confidence, a.n_bootstrap,
                                   a.seed), a.out)  # fmt: skip


def cmd_eval_model(a) -> None:
    from .evaluation import eval_model
    from .io import read_json, read_table, write_table
    from .schemas import EVAL_ROLLOUTS, LABELED
    from .splits import heldout_snapshots

    cfg = _cfg(a.config_json)
    heldout = heldout_snapshots(read_table(a.labeled, LABELED), read_json(a.heldout))
    rows = eval_model(a.model_id, a.model, a.adapter or None, heldout, cfg, progress=not a.no_progress)
    write_table(rows, EVAL_ROLLOUTS, a.out)


def cmd_benchmark(a) -> None:
    from .evaluation_tables import benchmark_json
    from .io import read_table, write_json
    from .schemas import EVAL_ROLLOUTS

    bench = benchmark_json(read_table(a.rollouts, EVAL_ROLLOUTS), a.model_id, confidence=a.confidence, n_bootstrap=a.n_bootstrap,
                           seed=a.seed)  # fmt: skip
    log.info("model %s: pass rate %.3f (n=%d)", a.model_id, bench["pass_rate"], bench["n"])
    write_json(bench, a.out)


def cmd_bench(a) -> None:
    from .bench import run_bench

    _log_bench(run_bench(a.bench_cfg, a.model or None, a.adapter or None, a.model_id, a.out, progress=not a.no_progress))


def cmd_bench_rollouts(a) -> None:
    from .bench import play_bench

    eps, run = play_bench(a.bench_cfg, a.model or None, a.adapter or None, a.model_id, a.out_dir,
                          progress=not a.no_progress)  # fmt: skip
    log.info("bench %s: %d episodes, success %.3f; usage %s", a.model_id, len(eps), eps["success"].mean(),
             {k: run["usage"][k] for k in ("backend", "requests", "prompt_tokens", "completion_tokens", "cost_usd")})


def cmd_bench_results(a) -> None:
    from .bench import summarize_bench

    _log_bench(summarize_bench(a.run, a.out, a.confidence, a.n_bootstrap, a.seed))


def _log_bench(res: dict) -> None:
    m, u = res["metrics"]["success_rate"], res["usage"]
    log.info("bench %s: success %.3f (n=%d, %d tasks, interval %s-%s), invalid rate %.3f; usage %s", res["model"],
             m["value"], m["n"], m["n_tasks"], m["lo"], m["hi"], res["metrics"]["invalid_rate"]["value"],
             {k: u[k] for k in ("backend", "requests", "prompt_tokens", "completion_tokens", "cost_usd")})  # fmt: skip


def cmd_eval_summary(a) -> None:
    import pandas as pd

    from .evaluation_tables import summarize, write_summaries
    from .io import read_table, write_table
    from .schemas import ALL_EVAL_ROLLOUTS, EVAL_ROLLOUTS

    rows = pd.concat([read_table(p, EVAL_ROLLOUTS) for p in a.rollouts], ignore_index=True)
    write_summaries(summarize(rows, a.confidence, n_bootstrap=a.n_bootstrap, seed=a.seed), a.out_tables)
    write_table(rows, ALL_EVAL_ROLLOUTS, a.out)


def cmd_predictor(a) -> None:
    from .io import read_table
    from .predictor import fit_predictor
    from .schemas import LABELED

    oof = fit_predictor(read_table(a.labeled, LABELED), _cfg(a.config_json), a.out_dir, a.out_oof)
    log.info("phase 4: out-of-fold predictions of %d snapshots in %d folds", len(oof), oof["fold"].nunique())


def cmd_predictor_metrics(a) -> None:
    from pathlib import Path

    from .io import read_json, read_parquet, write_json
    from .predictor_metrics import predictor_metrics, summary_lines

    one_class = read_json(Path(a.predictor) / "crossfit.json")["folds_with_one_class"]
    res = predictor_metrics(read_parquet(a.oof), one_class, _cfg(a.config_json))
    for line in summary_lines(res):
        log.info("%s", line)
    write_json(res, a.out)


def cmd_compare(a) -> None:
    from pathlib import Path

    from .compare import compare
    from .io import read_table
    from .schemas import EVAL_ROLLOUTS

    if a.bench:
        from .compare import compare_bench

        if a.rollouts or a.baseline or a.model or a.out_dir:
            raise ValueError("--bench BASELINE MODEL compares two bench results: leave out --rollouts, --baseline, "
                             "--model and --out-dir")  # fmt: skip
        rep = compare_bench(*a.bench, confidence=a.confidence, alpha=a.alpha, n_bootstrap=a.n_bootstrap, seed=a.seed)
        _write_report(rep, a.out_json, a.out_md)
        return
    if not (a.rollouts and a.baseline and a.model):
        raise ValueError("give --rollouts, --baseline and --model (phase 3 rollouts), or --bench BASELINE MODEL")
    rows = read_table(a.rollouts, EVAL_ROLLOUTS)
    for m in (a.baseline, *a.model):
        if m not in set(rows["model_id"]):
            raise ValueError(f"model {m!r} is not in {a.rollouts} (models: {sorted(set(rows['model_id']))})")
    if len(a.model) > 1 and (a.out_json or a.out_md):
        raise ValueError("with several --model, write the reports with --out-dir")
    for m in a.model:
        rep = compare(rows, a.baseline, m, confidence=a.confidence, alpha=a.alpha, n_bootstrap=a.n_bootstrap,
                      seed=a.seed)  # fmt: skip
        out_json, out_md = a.out_json, a.out_md
        if a.out_dir:
            out_json = out_json or Path(a.out_dir) / f"{m}_vs_{a.baseline}.json"
            out_md = out_md or Path(a.out_dir) / f"{m}_vs_{a.baseline}.md"
        _write_report(rep, out_json, out_md)


def _write_report(rep: dict, out_json, out_md) -> None:
    """A compare report to JSON and/or Markdown; Markdown to stdout when neither is given."""
    from .compare import to_markdown
    from .io import atomic_path, write_json

    if out_json:
        write_json(rep, out_json)
    if out_md:
        with atomic_path(out_md) as tmp:
            tmp.write_text(to_markdown(rep))
    if not out_json and not out_md:
        print(to_markdown(rep))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="teachable", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add(name, fn, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    def cfg_arg(sp):
        sp.add_argument("--config-json", required=True, help="the config sections this step uses, as JSON")

    def prog_arg(sp):
        sp.add_argument("--no-progress", action="store_true", help="hide progress bars")

    def boot_args(sp):
        sp.add_argument("--n-bootstrap", type=int, default=2000,
                        help="resamples of the cluster bootstrap over tasks/snapshots (config phase3.n_bootstrap)")
        sp.add_argument("--seed", type=int, default=0, help="seed of the resampling (config seed)")

    sp = add("student-init", cmd_student_init, "Build and train the embedded default student offline.")
    cfg_arg(sp)
    sp.add_argument("--out", required=True, help="model directory to write (save_pretrained)")

    sp = add("rollouts", cmd_rollouts, "Experiment A (student) and B (expert) rollouts on train tasks.")
    cfg_arg(sp), prog_arg(sp)
    sp.add_argument("--model", required=True, help="student model directory")
    sp.add_argument("--out", required=True, help="rollouts.parquet (one row per step)")

    sp = add("eval-student", cmd_eval_student, "Success rate of the student from reset on one split's tasks.")
    cfg_arg(sp), prog_arg(sp)
    sp.add_argument("--model", required=True)
    sp.add_argument("--split", choices=["train", "eval", "bench"], default="eval")
    sp.add_argument("--n-tasks", type=int, required=True)
    sp.add_argument("--out", required=True, help="JSON summary")

    sp = add("mine", cmd_mine, "Mine failure (A) and expert (B) snapshots from rollouts.")
    cfg_arg(sp)
    sp.add_argument("--rollouts", required=True)
    sp.add_argument("--out-failure", required=True)
    sp.add_argument("--out-expert", required=True)
    sp.add_argument("--out-summary", required=True, help="mining_summary.json (counts, expert errors by kind)")

    sp = add("label-shard", cmd_label_shard, "Label one shard of snapshots: U, leverage, CPT.")
    cfg_arg(sp), prog_arg(sp)
    sp.add_argument("--model", required=True)
    sp.add_argument("--snapshots", nargs="+", required=True, help="snapshot parquet files")
    sp.add_argument("--shard", type=int, required=True)
    sp.add_argument("--n-shards", type=int, required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--out-failures", required=True, help="teacher failures of this shard")

    sp = add("merge-labels", cmd_merge_labels, "Merge label shards, assign quadrants, plot thresholds.")
    cfg_arg(sp)
    sp.add_argument("--shards", nargs="+", required=True)
    sp.add_argument("--failures", nargs="+", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--out-jsonl", required=True)
    sp.add_argument("--out-failures", required=True)
    sp.add_argument("--thresholds", required=True)
    sp.add_argument("--plots-dir", required=True)

    sp = add("label-report", cmd_label_report, "Phase 1: the labels' intervals and the hint audit (statistics only).")
    cfg_arg(sp)
    sp.add_argument("--labeled", required=True, help="phase1/labeled_snapshots.parquet")
    sp.add_argument("--out-intervals", required=True, help="label_intervals.parquet (p_*_lo/hi, ELP_net_lo/hi)")
    sp.add_argument("--out-hint-audit", required=True,
                    help="hint_audit.json (does the hint's wording give the action away?)")

    sp = add("microtrain", cmd_microtrain, "Phase 1B: micro-train one LoRA per sampled snapshot (one shard).")
    cfg_arg(sp), prog_arg(sp)
    sp.add_argument("--model", required=True)
    sp.add_argument("--labeled", required=True, help="phase1/labeled_snapshots.parquet")
    sp.add_argument("--shard", type=int, default=0, help="this shard's index (sampled snapshots i::n)")
    sp.add_argument("--n-shards", type=int, default=1)
    sp.add_argument("--out", required=True, help="this shard's results parquet")

    sp = add("micro-merge", cmd_micro_merge, "Phase 1B: merge micro-training shards; Spearman of CPT vs utility.")
    cfg_arg(sp)
    sp.add_argument("--shards", nargs="+", required=True, help="the shards' results parquets")
    sp.add_argument("--out", required=True, help="micro_training_results.parquet")
    sp.add_argument("--out-correlation", required=True, help="cpt_correlation.json")

    sp = add("cpt-gate", cmd_cpt_gate, "Phase 1B gate: stop (exit 1) or warn when the CPT check fails.")
    sp.add_argument("--correlation", required=True)
    sp.add_argument("--gate", choices=["stop", "warn"], required=True)
    sp.add_argument("--out", required=True)

    sp = add("plan-training", cmd_plan_training,
             "Phase 2: the held-out split (by task), the budget and which runs are trained.")
    cfg_arg(sp)
    sp.add_argument("--labeled", required=True, help="phase1/labeled_snapshots.parquet")
    sp.add_argument("--rollouts", required=True, help="phase0/rollouts.parquet (B3_traces' source)")
    sp.add_argument("--out-heldout", required=True, help="phase2/heldout.json")
    sp.add_argument("--out-plan", required=True, help="phase2/plan.json")

    sp = add("train-run", cmd_train_run, "Phase 2: train one run of the LoRA matrix.")
    cfg_arg(sp)
    sp.add_argument("--model", required=True)
    sp.add_argument("--labeled", required=True)
    sp.add_argument("--heldout", required=True, help="phase2/heldout.json")
    sp.add_argument("--plan", required=True, help="phase2/plan.json")
    sp.add_argument("--run-id", required=True)
    sp.add_argument("--rollouts", required=True, help="phase0/rollouts.parquet (B3_traces' source)")
    sp.add_argument("--out-dir", required=True, help="phase2/<run_id>/")

    sp = add("training-summary", cmd_training_summary, "Phase 2: summary of all runs' train logs.")
    sp.add_argument("--plan", required=True, help="phase2/plan.json (the runs not trained, and why)")
    sp.add_argument("--train-logs", nargs="*", default=[], help="the trained runs' train_log.json")
    sp.add_argument("--out", required=True)

    sp = add("eval-model", cmd_eval_model, "Phase 3: evaluate one model (base or a run's adapter).")
    cfg_arg(sp), prog_arg(sp)
    sp.add_argument("--model", required=True, help="student model directory")
    sp.add_argument("--adapter", default="", help="LoRA adapter directory ('' = the base model)")
    sp.add_argument("--model-id", required=True)
    sp.add_argument("--labeled", required=True)
    sp.add_argument("--heldout", required=True, help="phase2/heldout.json (the held-out snapshots)")
    sp.add_argument("--out", required=True, help="per-rollout parquet")

    sp = add("benchmark", cmd_benchmark, "Phase 3/5: a model's benchmark JSON (pass rate with n and interval) from its rollouts.")
    sp.add_argument("--rollouts", required=True, help="the model's eval rollouts.parquet")
    sp.add_argument("--model-id", required=True)
    sp.add_argument("--confidence", type=float, default=0.95)
    boot_args(sp)
    sp.add_argument("--out", required=True, help="benchmark.json")

    def bench_student_args(sp):
        prog_arg(sp)
        src = sp.add_mutually_exclusive_group(required=True)
        src.add_argument("--config-json", help="the config sections the bench reads (seed, env, splits, student, "
                         "bench, phase3), as JSON")
        src.add_argument("--config", nargs="+", metavar="YAML", help="config files, later over earlier (e.g. "
                         "config/config.yaml config/pilot.yaml); defaults from the schema")
        sp.add_argument("--model", default="", help="student model directory (student.backend: hf or vllm)")
        sp.add_argument("--adapter", default="", help="LoRA adapter directory ('' = the model alone)")
        sp.add_argument("--model-id", required=True, help="the result's name, e.g. base or B3_traces")

    sp = add("bench", cmd_bench, "Bench a student (HF model with an optional adapter, or student.backend: openai) "
             "on the bench split: bench_results.json, with the episodes' Parquet and bench_run.json beside it "
             "(bench-rollouts then bench-results in one command).")
    bench_student_args(sp)
    sp.add_argument("--out", required=True, help="bench/<model_id>/bench_results.json")

    sp = add("bench-rollouts", cmd_bench_rollouts, "Bench, first half (rule bench_rollouts): play the bench "
             "rollouts of a student; write the episodes' Parquet and bench_run.json (usage, what was benched).")
    bench_student_args(sp)
    sp.add_argument("--out-dir", required=True, help="bench/<model_id>/ (writes bench_episodes.parquet, bench_run.json)")

    sp = add("bench-results", cmd_bench_results, "Bench, second half (rule bench): bench_results.json (metrics with "
             "intervals over tasks, per level and archetype) from a bench run; plays nothing.")
    sp.add_argument("--run", required=True, help="bench/<model_id>/bench_run.json (its episodes beside it)")
    sp.add_argument("--confidence", type=float, default=0.95, help="interval level (config phase3.confidence)")
    boot_args(sp)
    sp.add_argument("--out", required=True, help="bench/<model_id>/bench_results.json (beside the run)")

    sp = add("select-train", cmd_select_train, "Phase 5: one selection method picks K snapshots; train on them.")
    cfg_arg(sp), prog_arg(sp)
    sp.add_argument("--method", required=True, help=", ".join(SELECTION_METHODS))
    sp.add_argument("--model", required=True, help="student model directory")
    sp.add_argument("--labeled", required=True, help="phase1/labeled_snapshots.parquet")
    sp.add_argument("--heldout", required=True, help="phase2/heldout.json (never selected)")
    sp.add_argument("--plan", required=True, help="phase2/plan.json (whether Phase 5 runs)")
    sp.add_argument("--predictor", help="phase4/predictor directory (required for PREDICTOR)")
    sp.add_argument("--out-dir", required=True, help="writes selected.json, adapter/, train_log.json")

    sp = add("selection-summary", cmd_selection_summary, "Phase 5: gain and retention per selection method.")
    sp.add_argument("--base-rollouts", required=True, help="the base model's phase 3 rollouts.parquet")
    sp.add_argument("--plan", required=True, help="phase2/plan.json (whether Phase 5 ran, and why not)")
    sp.add_argument("--rollouts", nargs="*", default=[], help="each method's eval rollouts.parquet")
    sp.add_argument("--selected", nargs="*", default=[], help="each method's selected.json, same order")
    sp.add_argument("--confidence", type=float, default=0.95)
    boot_args(sp)
    sp.add_argument("--out", required=True, help="phase5/selection_summary.json")

    sp = add("eval-summary", cmd_eval_summary, "Phase 3: merge models' rollouts; write the result CSVs.")
    sp.add_argument("--rollouts", nargs="+", required=True)
    sp.add_argument("--confidence", type=float, default=0.95)
    boot_args(sp)
    sp.add_argument("--out", required=True)
    sp.add_argument("--out-tables", nargs="+", required=True)

    sp = add("compare", cmd_compare, "Compare a model with a baseline: improvements and regressions (two models' "
             "phase 3 rollouts, or two bench results).")
    sp.add_argument("--rollouts", help="phase3/rollouts.parquet")
    sp.add_argument("--baseline", help="model id, e.g. base")
    sp.add_argument("--model", nargs="+", help="model id(s), e.g. Q1_highU_highL_demo")
    sp.add_argument("--bench", nargs=2, metavar=("BASELINE_JSON", "MODEL_JSON"),
                    help="instead: two bench_results.json of `teachable bench` (baseline, then model)")
    sp.add_argument("--alpha", type=float, default=0.05)
    sp.add_argument("--confidence", type=float, default=0.95)
    boot_args(sp)
    sp.add_argument("--out-json", help="the report as JSON (one --model)")
    sp.add_argument("--out-md", help="the report as Markdown (one --model)")
    sp.add_argument("--out-dir", help="write MODEL_vs_BASELINE.{json,md} here for each --model")

    # the phase outputs the report reads, by argument name
    report_inputs = {
        "labeled": "phase1/labeled_snapshots.parquet", "thresholds": "phase1/quadrant_thresholds.json",
        "micro": "phase1b/micro_training_results.parquet", "correlation": "phase1b/cpt_correlation.json",
        "transfer": "phase3/transfer_matrix.csv", "overall": "phase3/overall_task_results.csv",
        "retention": "phase3/retention_results.csv", "stuckness": "phase3/stuckness_results.csv",
        "predictor": "phase4/training_result.json", "selection": "phase5/selection_summary.json",
        "hint_audit": "phase1/hint_audit.json", "training": "phase2/training_summary.json",
        "mining": "phase0/mining_summary.json", "base_rollouts": "phase3/models/base/rollouts.parquet",
        "teacher_failures": "phase1/teacher_failures.parquet", "family": "phase3/family_metrics.csv",
    }  # fmt: skip

    def report_args(sp, *names):
        for n in names:
            sp.add_argument(f"--{n.replace('_', '-')}", required=True, help=report_inputs[n])

    sp = add("figures", cmd_figures, "Report: the study's figures (PNG), every number read from the phase outputs.")
    report_args(sp, "labeled", "thresholds", "micro", "correlation", "transfer", "overall", "retention", "selection")
    sp.add_argument("--confidence", type=float, default=0.95, help="level of the computed gain-vs-base intervals")
    sp.add_argument("--retention-threshold", type=float, default=None,
                    help="draw this retention-drop threshold on the frontier (optional)")
    sp.add_argument("--out-dir", required=True, help="writes reporting.FIGURES there")

    sp = add("tables", cmd_tables, "Report: the study's tables as CSV and Markdown, read from the phase outputs.")
    report_args(sp, "labeled", "transfer", "overall", "retention", "stuckness", "predictor", "selection", "family")
    sp.add_argument("--confidence", type=float, default=0.95,
                    help="level of the computed intervals (gain vs base, mean ELP_net)")
    sp.add_argument("--out-dir", required=True, help="writes reporting.TABLE_FILES there")

    sp = add("summary", cmd_summary, "Report: the study's checks, each computed from the phase outputs (JSON + Markdown).")
    report_args(sp, "correlation", "transfer", "retention", "overall", "thresholds", "predictor", "selection",
                "labeled", "hint_audit", "training", "mining", "base_rollouts", "teacher_failures")
    sp.add_argument("--confidence", type=float, default=0.95, help="level of the intervals of the protocol numbers")
    boot_args(sp)
    sp.add_argument("--retention-threshold", type=float, required=True,
                    help="the largest retention drop of the Phase 2 runs must be under this (e.g. 0.05)")
    sp.add_argument("--alpha", type=float, default=0.05, help="level of the transfer diagonal test")
    sp.add_argument("--out-json", required=True, help="summary.json")
    sp.add_argument("--out-md", required=True, help="summary.md")

    sp = add("predictor", cmd_predictor, "Phase 4: fit the teachability predictor from cheap observables, CV grouped "
             "by task (models and out-of-fold predictions).")
    cfg_arg(sp)
    sp.add_argument("--labeled", required=True, help="phase1/labeled_snapshots.parquet")
    sp.add_argument("--out-dir", required=True, help="phase4/predictor/ (models, feature_config.json, folds.json)")
    sp.add_argument("--out-oof", required=True, help="phase4/oof_predictions.parquet")

    sp = add("predictor-metrics", cmd_predictor_metrics, "Phase 4: metrics of the out-of-fold predictions beside "
             "the entropy baseline, with intervals.")
    cfg_arg(sp)
    sp.add_argument("--oof", required=True, help="phase4/oof_predictions.parquet")
    sp.add_argument("--predictor", required=True, help="phase4/predictor/ (its crossfit.json)")
    sp.add_argument("--out", required=True, help="phase4/training_result.json")

    sp = add("traces", cmd_traces, "Filter rollouts with DuckDB; export SFT JSONL (chat messages).")
    sp.add_argument("rollouts", help="rollouts.parquet")
    sp.add_argument("--min-reward", type=float, help="keep episodes with return >= this")
    sp.add_argument("--max-turns", type=int, help="keep episodes with at most this many steps")
    from .envs.registry import trace_filters

    for f in trace_filters():  # the families' own filters
        sp.add_argument(f.flag, type=f.type, help=f"{f.help} (rollouts with column {f.column})")
    sp.add_argument("--success-only", action="store_true", help="keep successful episodes only")
    sp.add_argument("--experiment", choices=["A", "B"], help="keep one experiment")
    sp.add_argument("--source", choices=["student", "expert"], help="keep episodes acted by this source")
    sp.add_argument("--stats-only", action="store_true", help="print stats, write nothing")
    sp.add_argument("--out", help="SFT JSONL to write")
    return p


# tools that read a finished run, each a module with its own parser: ``main(argv)``
RUN_TOOLS = {"phase-times": "phase_times", "diff-runs": "diff_runs"}


def main(argv: list[str] | None = None) -> int | None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in RUN_TOOLS:
        return importlib.import_module(f"{__package__}.{RUN_TOOLS[argv[0]]}").main(argv[1:])
    parser = build_parser()
    parser.epilog = f"tools on a finished run (each with its own --help): {', '.join(RUN_TOOLS)}"
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    t0 = time.time()
    try:
        if args.cmd in BENCH_CONFIG_COMMANDS:
            args.bench_cfg = _bench_cfg(args)  # read once: the GPU slot and the command both use it
        with _gpu_slot(args):
            args.fn(args)
    except (FileNotFoundError, ValueError, NotImplementedError) as e:
        log.error("%s", e)
        raise SystemExit(2) from e
    log.info("%s done in %.1fs", args.cmd, time.time() - t0)


if __name__ == "__main__":
    sys.exit(main())
