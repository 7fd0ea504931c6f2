"""`teachable` command line: one subcommand per phase step; Snakemake rules call these.

Each step's flags are built from its declaration (``teachable.steps``: its files and the config
it reads); a handler here, ``cmd_<step>``, reads them. Rules pass the config sections a step
depends on as one JSON argument (``--config-json``), so a change to one phase's settings makes
only that phase's jobs stale. A tool that parses its own arguments (a module of this package
with ``main(argv)``) is one row of ``TOOLS``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import sys
import time

from . import documents as D
from .gpu_slots import gpu_slot_for
from .steps import STEPS

log = logging.getLogger("teachable")

# tools that parse their own arguments: subcommand -> (module of teachable with main(argv), help)
TOOLS: dict[str, tuple[str, str]] = {
    "phase-times": ("phase_times", "per-rule wall times of a finished run (its benchmark files) and the run's wall time"),
    "diff-runs": ("diff_runs", "compare two finished runs' outputs (exit 1 where they differ)"),
    "sandbox-run": ("envs.html.sandbox", "run a Python file on a page in the sandbox; print the result as JSON"),
    "warm": ("warm", "run a command (snakemake) with a warm interpreter for its steps: no import per job"),
}


def _config(a) -> dict:
    """The step's config: ``--config-json`` (a rule's slice), or YAML config files (``--config``,
    later over earlier), or none (a statistics step run by hand: the schema's defaults)."""
    if getattr(a, "config", None):
        from .config import read_config_files

        return read_config_files(a.config)
    if not getattr(a, "config_json", None):
        return {}
    try:
        return json.loads(a.config_json)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--config-json is not valid JSON: {e}") from e


def _section(a, name: str) -> dict:
    """A config section of the step's config with the schema's defaults filled in and checked."""
    from .config import section

    return section(name, a.cfg.get(name))


def _seed(a) -> int:
    from .config import subschema

    return int(a.cfg.get("seed", subschema("seed")["default"]))


def _stats(a) -> dict:
    """The phase 3 / 5 statistics settings: confidence, n_bootstrap (phase3) and the seed."""
    p3 = _section(a, "phase3")
    return {"confidence": float(p3["confidence"]), "n_bootstrap": int(p3["n_bootstrap"]), "seed": _seed(a)}


def _inputs(a) -> dict:
    """The step's input files by their declared names (the report's inputs: ``steps.REPORT``)."""
    return {k: getattr(a, p.dest) for k, p in STEPS[a.cmd].inputs.items()}


def cmd_student_init(a) -> None:
    from .student_init import train_student

    train_student(a.cfg, a.out)


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

    cfg = a.cfg
    df = experiment_rollouts(cfg, _student(cfg, a.model), progress=not a.no_progress)
    for exp, g in df.groupby("experiment"):
        eps = g.drop_duplicates("episode_id")
        log.info("experiment %s: %d episodes, %d successes, %d steps", exp, len(eps),
                 int(eps["episode_success"].sum()), len(g))
    write_table(df, ROLLOUT_STEPS, a.out)


def cmd_eval_student(a) -> None:
    from .io import write_doc
    from .mining import evaluate_student

    cfg = a.cfg
    res = evaluate_student(cfg, _student(cfg, a.model), a.split, a.n_tasks, progress=not a.no_progress)
    log.info("student success on %s: %.3f (n=%d, 95%% CI %.3f-%.3f)", a.split, res["success_rate"],
             res["n"], *res["ci95"])
    write_doc(res, D.EVAL_SUMMARY, a.out)


def cmd_mine(a) -> None:
    from .io import read_table, write_doc, write_table
    from .mining import mine
    from .schemas import ROLLOUT_STEPS, SNAPSHOTS

    fa, fb, summary = mine(read_table(a.rollouts, ROLLOUT_STEPS), a.cfg, a.rollouts)
    log.info("mined %d failure snapshots (A) and %d expert snapshots (B); %s", len(fa), len(fb), summary)
    write_doc(summary, D.MINING_SUMMARY, a.out_summary)
    write_table(fa, SNAPSHOTS, a.out_failure)
    write_table(fb, SNAPSHOTS, a.out_expert)


def cmd_label_shard(a) -> None:
    import pandas as pd

    from .envs.registry import env_options
    from .io import read_table, write_table
    from .labeling import label_snapshots, select_shard
    from .schemas import RAW_LABELS, SNAPSHOTS, TEACHER_FAILURES
    from .teachers import make_teacher

    cfg = a.cfg
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

    from .io import read_table, write_doc, write_jsonl, write_table
    from .labeling import merge_labels
    from .reporting.figures import threshold_plots
    from .schemas import LABELED, RAW_LABELS, TEACHER_FAILURES

    raw = pd.concat([read_table(p, RAW_LABELS) for p in a.shards], ignore_index=True)
    fails = pd.concat([read_table(p, TEACHER_FAILURES) for p in a.failures], ignore_index=True)
    df, thr = merge_labels(raw, fails, a.cfg["phase1"]["quadrants"])
    log.info("quadrant sizes %s (thresholds U>%.4f, L>%.4f)", thr["sizes"], thr["U_threshold"], thr["L_threshold"])
    threshold_plots(df, thr, a.plots_dir)
    write_table(fails, TEACHER_FAILURES, a.out_failures)
    write_doc(thr, D.THRESHOLDS, a.thresholds)
    write_jsonl(df, a.out_jsonl)
    write_table(df, LABELED, a.out)


def cmd_label_report(a) -> None:
    from .envs.registry import StateSpaces
    from .hint_audit import ACCURACIES, hint_audit
    from .io import read_doc, read_table, write_doc, write_table
    from .labeling import label_intervals, outcome_pairing
    from .reliability import label_report
    from .schemas import LABEL_INTERVALS, LABELED, OUTCOME_PAIRING

    cfg = a.cfg
    p1, seed = cfg["phase1"], int(cfg["seed"])
    df = read_table(a.labeled, LABELED)
    audit = hint_audit(df, seed=seed, confidence=float(p1["confidence"]), n_bootstrap=int(p1["n_bootstrap"]),
                       spaces=StateSpaces.of_config(cfg["env"]))  # fmt: skip
    log.info("hint audit: %d diagnoses naming an action; action accuracy from the state %s, state + hint %s, "
             "hint %s, demo %s, majority %s", audit["diagnoses_naming_action"],
             *(audit[k] and round(audit[k]["p"], 3) for k in ACCURACIES))  # fmt: skip
    leak = audit["leakage_index"] or {}
    log.info("leakage index %s [%s, %s]: band %s (point: %s; spans %s)%s",
             *(None if leak.get(k) is None else round(leak[k], 3) for k in ("lambda", "lo", "hi")),
             leak.get("band") or "undetermined", leak.get("band_point"), leak.get("bands_spanned"),
             f" ({leak['reason']})" if leak.get("reason") else "")  # fmt: skip
    bands, rel = label_report(df, read_doc(a.thresholds, D.THRESHOLDS), float(p1["confidence"]),
                              int(p1["n_bootstrap"]), seed, float(p1["reliability_floor"]))  # fmt: skip
    log.info("split-half reliability (floor %s; flagged %s): %s; quadrant bands %s", rel["floor"], rel["flagged"],
             {k: round(v["reliability"], 3) for k, v in rel["labels"].items()}, rel["bands"]["per_quadrant"])
    intervals = label_intervals(df, float(p1["confidence"]), int(p1["n_bootstrap"]), seed)
    write_table(intervals.merge(bands, on="snapshot_id", how="left", validate="one_to_one"), LABEL_INTERVALS,
                a.out_intervals)
    write_doc(rel, D.LABEL_RELIABILITY, a.out_reliability)
    pairing = outcome_pairing(df, float(p1["confidence"]))
    log.info("within-snapshot correlation of outcomes (mean over snapshots, n; constant left out):\n%s",
             pairing[["pair", "rho", "rho_lo", "rho_hi", "n", "n_constant"]].to_string(index=False))
    write_table(pairing, OUTCOME_PAIRING, a.out_pairing)
    write_doc(audit, D.HINT_AUDIT, a.out_hint_audit)


def cmd_figures(a) -> None:
    from .reporting import figures_from_files

    paths = figures_from_files(**_inputs(a), out_dir=a.out_dir, confidence=_section(a, "phase3")["confidence"],
                               retention_threshold=(a.cfg.get("report") or {}).get("retention_threshold"))
    log.info("wrote %d figures to %s", len(paths), a.out_dir)


def cmd_tables(a) -> None:
    from .reporting import tables_from_files

    paths = tables_from_files(**_inputs(a), out_dir=a.out_dir, confidence=_section(a, "phase3")["confidence"])
    log.info("wrote %d table files to %s", len(paths), a.out_dir)


def cmd_summary(a) -> None:
    from .reporting import summary_from_files

    summary_from_files(**_inputs(a), retention_threshold=_section(a, "report")["retention_threshold"],
                       alpha=_section(a, "phase3")["alpha"], **_stats(a), out_json=a.out_json, out_md=a.out_md)


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

    cfg = a.cfg
    mine = shard_sample(read_table(a.labeled, LABELED), cfg["phase1b"], cfg["seed"], a.shard, a.n_shards)
    write_table(run_micro_training(mine, a.model, cfg, progress=not a.no_progress), MICRO_SHARD, a.out)


def cmd_micro_merge(a) -> None:
    from .io import read_table, write_doc, write_table
    from .microtrain import merge_results
    from .schemas import LABELED, MICRO_RESULTS, MICRO_SHARD

    results, report = merge_results([read_table(p, MICRO_SHARD) for p in a.shards], a.cfg,
                                    labeled=read_table(a.labeled, LABELED))  # fmt: skip
    log.info("CPT vs micro-training: rho=%s CI=%s p=%s: %s", report.get("rho"), report.get("rho_ci"),
             report.get("p_value"), report.get("reason"))
    write_table(results, MICRO_RESULTS, a.out)
    write_doc(report, D.CPT_CORRELATION, a.out_correlation)


def cmd_cpt_gate(a) -> None:
    from .io import read_doc, write_doc
    from .microtrain import gate_verdict

    verdict = gate_verdict(read_doc(a.correlation, D.CPT_CORRELATION), a.cfg["phase1b"]["gate"], a.correlation)
    write_doc(verdict, D.GATE, a.out)


def cmd_plan_training(a) -> None:
    from .io import read_table, write_doc
    from .matrix import plan_training
    from .schemas import LABELED

    heldout, plan = plan_training(read_table(a.labeled, LABELED), a.cfg, rollouts=a.rollouts)
    log.info("held out %d snapshots of %d tasks; budget K=%s, %s optimizer steps; trained runs %s; skipped %s",
             len(heldout["snapshot_ids"]), len(heldout["task_ids"]), plan["budget"], plan["optimizer_steps"],
             plan["trained_runs"], plan["skipped_runs"])  # fmt: skip
    write_doc(heldout, D.HELDOUT, a.out_heldout)
    write_doc(plan, D.PLAN, a.out_plan)


def cmd_train_run(a) -> None:
    from .matrix import train_matrix_run

    cfg = a.cfg
    res = train_matrix_run(a.run_id, a.labeled, a.heldout, a.plan, a.model, cfg, a.out_dir, rollouts_path=a.rollouts)
    log.info("run %s: %s examples, %.1fs, final loss %s", a.run_id, res.get("examples"),
             res.get("seconds", float("nan")), res.get("final_loss"))


def cmd_training_summary(a) -> None:
    from pathlib import Path

    from .io import read_doc, write_doc
    from .matrix import training_summary

    summary = training_summary([str(Path(p).parent) for p in a.train_logs], read_doc(a.plan, D.PLAN))
    write_doc(summary, D.TRAINING_SUMMARY, a.out)


def cmd_select_train(a) -> None:
    from .selection import train_selected

    cfg = a.cfg
    res = train_selected(a.method, a.labeled, a.heldout, a.plan, a.model, cfg, a.out_dir, predictor_dir=a.predictor,
                         progress=not a.no_progress, rollouts_path=a.rollouts)  # fmt: skip
    log.info("selection %s: %s examples, %.1fs, final loss %s", a.method, res.get("examples"),
             res.get("seconds", float("nan")), res.get("final_loss"))


def cmd_selection_summary(a) -> None:
    import pandas as pd

    from .io import read_doc, read_table, write_doc
    from .schemas import EVAL_ROLLOUTS
    from .selection import summarize_selection

    if len(a.selected) != len(a.rollouts):
        raise ValueError("give one --selected file per --rollouts file (same order)")
    rows = pd.concat([read_table(p, EVAL_ROLLOUTS) for p in (a.base_rollouts, *a.rollouts)], ignore_index=True)
    selected = {sel["method"]: sel for sel in (read_doc(p, D.SELECTED) for p in a.selected)}
    st = _stats(a)
    summary = summarize_selection(rows, selected, read_doc(a.plan, D.PLAN)["selection"], st["confidence"],
                                  st["n_bootstrap"], st["seed"])  # fmt: skip
    write_doc(summary, D.SELECTION_SUMMARY, a.out)


def cmd_eval_model(a) -> None:
    from .evaluation import eval_model
    from .io import read_doc, read_table, write_table
    from .schemas import EVAL_ROLLOUTS, LABELED
    from .splits import heldout_snapshots

    cfg = a.cfg
    heldout = heldout_snapshots(read_table(a.labeled, LABELED), read_doc(a.heldout, D.HELDOUT))
    rows = eval_model(a.model_id, a.model, a.adapter or None, heldout, cfg, progress=not a.no_progress)
    write_table(rows, EVAL_ROLLOUTS, a.out)


def cmd_benchmark(a) -> None:
    from .evaluation_tables import benchmark_json
    from .io import read_table, write_doc
    from .schemas import EVAL_ROLLOUTS

    bench = benchmark_json(read_table(a.rollouts, EVAL_ROLLOUTS), a.model_id, **_stats(a))
    log.info("model %s: pass rate %.3f (n=%d)", a.model_id, bench["pass_rate"], bench["n"])
    write_doc(bench, D.BENCHMARK, a.out)


def cmd_bench(a) -> None:
    from .bench import run_bench

    _log_bench(run_bench(a.cfg, a.model or None, a.adapter or None, a.model_id, a.out, progress=not a.no_progress,
                         expert=a.expert))  # fmt: skip


def cmd_bench_rollouts(a) -> None:
    from .bench import play_bench

    eps, run = play_bench(a.cfg, a.model or None, a.adapter or None, a.model_id, a.out_dir,
                          progress=not a.no_progress, expert=a.expert)  # fmt: skip
    log.info("bench %s: %d episodes, success %.3f; usage %s", a.model_id, len(eps), eps["success"].mean(),
             {k: run["usage"][k] for k in ("backend", "requests", "prompt_tokens", "completion_tokens", "cost_usd")})


def cmd_bench_results(a) -> None:
    from .bench import summarize_bench

    st = _stats(a)
    _log_bench(summarize_bench(a.run, a.out, st["confidence"], st["n_bootstrap"], st["seed"]))


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
    st = _stats(a)
    write_summaries(summarize(rows, st["confidence"], n_bootstrap=st["n_bootstrap"], seed=st["seed"]), a.out_tables)
    write_table(rows, ALL_EVAL_ROLLOUTS, a.out)


def cmd_predictor(a) -> None:
    from .io import read_table
    from .predictor import fit_predictor
    from .schemas import LABELED

    oof = fit_predictor(read_table(a.labeled, LABELED), a.cfg, a.out_dir, a.out_oof)
    log.info("phase 4: out-of-fold predictions of %d snapshots in %d folds", len(oof), oof["fold"].nunique())


def cmd_predictor_metrics(a) -> None:
    from pathlib import Path

    from .io import read_json, read_parquet, write_doc
    from .predictor_metrics import predictor_metrics, summary_lines

    one_class = read_json(Path(a.predictor) / "crossfit.json")["folds_with_one_class"]
    res = predictor_metrics(read_parquet(a.oof), one_class, a.cfg)
    for line in summary_lines(res):
        log.info("%s", line)
    write_doc(res, D.TRAINING_RESULT, a.out)


def cmd_compare(a) -> None:
    from .compare import compare_command

    compare_command(rollouts=a.rollouts, baseline=a.baseline, models=a.model, bench=a.bench, out_json=a.out_json,
                    out_md=a.out_md, out_dir=a.out_dir, alpha=float(_section(a, "phase3")["alpha"]), **_stats(a))


def _traces_arguments(sp: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per step of ``steps.STEPS`` (its flags built from the declaration), plus
    ``traces`` and the ``TOOLS``."""
    p = argparse.ArgumentParser(prog="teachable", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for step in STEPS.values():
        sp = sub.add_parser(step.cmd, help=step.help, description=step.help)
        sp.set_defaults(fn=globals()["cmd_" + step.cmd.replace("-", "_")])
        step.add_arguments(sp)
    sp = sub.add_parser("traces", help=(h := "Filter rollouts with DuckDB; export SFT JSONL (chat messages)."),
                        description=h)
    sp.set_defaults(fn=cmd_traces)
    _traces_arguments(sp)
    for name, (_, help_) in TOOLS.items():
        sub.add_parser(name, help=help_, add_help=False)  # listed here; main() hands it its arguments
    return p


def main(argv: list[str] | None = None) -> None:
    """``teachable argv``: a step runs in the warm server where ``teachable warm`` started one,
    else here."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in STEPS:
        from .warm import forward

        code = forward(argv)
        if code is not None:
            raise SystemExit(code)
    run(argv)


def run(argv: list[str]) -> None:
    """Run ``teachable argv`` in this process."""
    if argv and argv[0] in TOOLS:
        raise SystemExit(importlib.import_module(f".{TOOLS[argv[0]][0]}", __package__).main(argv[1:]))
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    t0 = time.time()
    step = STEPS.get(args.cmd)
    try:
        args.cfg = _config(args)  # read once: the GPU slot and the command both use it
        # a step that runs the student holds a GPU slot, with CUDA_VISIBLE_DEVICES set to its own GPU
        # (a no-op without GPUs; docs/cluster.md)
        slot = gpu_slot_for((args.cfg.get("student") or {}).get("device", "auto")) if step and step.gpu else None
        with slot or contextlib.nullcontext():
            args.fn(args)
    except (FileNotFoundError, ValueError, NotImplementedError) as e:
        log.error("%s", e)
        raise SystemExit(2) from e
    log.info("%s done in %.1fs", args.cmd, time.time() - t0)


if __name__ == "__main__":
    sys.exit(main())
