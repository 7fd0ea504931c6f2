"""Every step of the study, declared once: its ``teachable`` subcommand, the config slice it
reads, and the files it reads and writes (each a declared table of ``schemas``, a declared JSON
document of ``documents``, or a plain ``Artifact``: a directory, a plot, Markdown), with the flag
that names each file on the command line.

Built from it: the CLI parser (``Step.add_arguments``: the subcommand's flags and their help),
the rules' inputs, outputs, config params and shell commands (``workflow/rules/common.smk``:
``step_input``, ``step_output``, ``step_params``, ``step_shell``) and the report's inputs (the
``figures``, ``tables`` and ``summary`` steps' inputs). A rule passes a step exactly its slice as
``--config-json``, so changing any other setting does not make the step's jobs stale: a statistic
(``phase3.confidence``, ``n_bootstrap``, ...) is in the slices of the summary steps alone.
"""

from __future__ import annotations

import argparse
import string
from dataclasses import dataclass, field
from typing import Any, Callable

from . import documents as D
from . import schemas as S

# ------------------------------------------------------------------------------------ files


@dataclass(frozen=True)
class Artifact:
    """A file or directory without a declared content (a model, an adapter, a plot, Markdown)."""

    name: str
    path: str  # relative to results_dir; "{...}" marks a per-job part
    is_dir: bool = False


@dataclass(frozen=True)
class Port:
    """One file argument of a step: its flag and what it holds. ``many``: a list of files
    (``nargs``; ``"*"`` may be empty); ``optional``: the flag may be left out; ``in_dir``: an
    output written under the step's ``out_dir`` flag rather than named by a flag of its own."""

    flag: str | None
    what: Any  # schemas.Table | documents.Document | Artifact
    help: str = ""
    fill: dict = field(default_factory=dict)  # path parts this port fixes, e.g. kind=failure
    path_override: str | None = None
    many: str | None = None  # None, "+" or "*"
    optional: bool = False

    @property
    def path(self) -> str:
        """The path pattern (relative to results_dir), ``fill`` filled in, other parts kept."""
        pattern = self.path_override or self.what.path
        keep = {n: "{" + n + "}" for _, n, _, _ in string.Formatter().parse(pattern) if n}
        return pattern.format_map({**keep, **self.fill})

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def port(flag, what, help="", **kw) -> Port:
    return Port(flag, what, help, **kw)


STUDENT_MODEL = Artifact("student model", "student/model", is_dir=True)
ADAPTER = Artifact("LoRA adapter", "phase2/{run}/adapter", is_dir=True)
LABELED_JSONL = Artifact("labeled snapshots (JSON lines)", "phase1/labeled_snapshots.jsonl")
THRESHOLD_PLOT = Artifact("threshold plot", "phase1/threshold_plots/{plot}.png")
PREDICTOR_DIR = Artifact("predictor", "phase4/predictor", is_dir=True)
OOF = Artifact("out-of-fold predictions", "phase4/oof_predictions.parquet")
COMPARISON_MD = Artifact("comparison (Markdown)", "phase3/compare/{run}_vs_base.md")
FIGURE = Artifact("figure", "figures/{name}.png")
TABLE_CSV = Artifact("report table", "tables/{table}.csv")
TABLE_MD = Artifact("report table (Markdown)", "tables/{table}.md")
SUMMARY_MD = Artifact("study summary (Markdown)", "summary.md")
SHARD_FAILURES = "phase1/shards/teacher_failures_{shard}.parquet"
SELECTION = "phase5/selection/{method}/"

# ------------------------------------------------------------------------------------ config slices


@dataclass(frozen=True)
class Part:
    """A piece of a step's config slice: ``what`` (for --help) and ``of`` (config -> sections)."""

    what: str
    of: Callable[[dict], dict]


def keys(sec: str, *names: str) -> Part:
    return Part(f"{sec}.{{{','.join(names)}}}", lambda c: {sec: {k: c[sec][k] for k in names}})


def whole(sec: str) -> Part:
    return Part(sec, lambda c: {sec: c[sec]})


def without(sec: str, names: Callable[[], tuple[str, ...]], what: str) -> Part:
    """``sec`` less the keys ``names()`` (a callable: the key lists live in heavy modules)."""
    return Part(f"{sec} but {what}", lambda c: {sec: {k: v for k, v in c[sec].items() if k not in names()}})


def _env(c: dict) -> dict:
    """The environment settings the steps read (a family option only when it is set, so another
    family's jobs do not see it)."""
    from .envs.registry import env_options

    return {"env": {k: c["env"][k] for k in ("id", "max_steps", "history_len")} | env_options(c["env"])}


def _student(c: dict) -> dict:
    """Student settings that matter at inference time (not the embedded student's recipe, nor
    model_path: the model directory is the job's input; a backend's own section (openai, vllm)
    only when it is the backend; ``generate`` only on a free-form family)."""
    from .envs.registry import free_form
    from .policies import BACKEND_SECTIONS

    s = c["student"]
    skip = ("init", "eval_tasks", "model_path", *(() if free_form(c["env"]["id"]) else ("generate",)))
    return {"student": {k: v for k, v in s.items() if k not in skip
                        and (k not in BACKEND_SECTIONS or k == s["backend"])}}  # fmt: skip


def _student_recipe(c: dict) -> dict:
    """The embedded student's recipe; its demonstrations come from the demo split."""
    from .envs.registry import env_options
    from .splits import split_seeds

    init = dict(c["student"]["init"])
    n = init.pop("demo_tasks")
    demo = split_seeds(c["splits"], "demo")
    if n > len(demo):
        raise ValueError(f"student.init.demo_tasks={n} exceeds splits.demo.count={len(demo)}")
    return dict(init, env_id=c["env"]["id"], env_options=env_options(c["env"]), max_steps=c["env"]["max_steps"],
                history_len=c["env"]["history_len"], demo_seeds={"start": demo[0], "count": n}, seed=c["seed"])  # fmt: skip


def _fit_keys() -> tuple[str, ...]:
    from .predictor import FIT_KEYS

    return FIT_KEYS


MICROTRAIN_KEYS = ("sample", "per_quadrant", "n_snapshots", "n_validation_rollouts", "lora")  # the microtrain jobs'
MERGE_SKIPS = ("per_quadrant", "n_snapshots", "n_validation_rollouts", "lora", "n_shards")  # micro-merge reads the rest
SEED = Part("seed", lambda c: {"seed": c["seed"]})
ENV = Part("env.{id,max_steps,history_len} + the family's options", _env)
ADAPTIVE_KEYS = ("allocation", "n0", "n_max", "batch", "epsilon", "confidence", "elp_cutoff", "quadrants")


def _allocation(c: dict) -> dict:
    """Adaptive allocation's settings (``allocation.design_of``), only where ``phase1.allocation`` is
    adaptive: a fixed run's slice, hence its label shards, stays as it was."""
    p1 = c["phase1"]
    return {"phase1": {k: p1[k] for k in ADAPTIVE_KEYS if k in p1}} if p1.get("allocation") == "adaptive" else {}


ALLOCATION = Part("phase1.{allocation,n0,n_max,batch,epsilon,confidence,elp_cutoff,quadrants} where adaptive",
                  _allocation)
STUDENT = Part("student (inference settings)", _student)
RECIPE = Part("student.init with env, demo split and seed", _student_recipe)
SPLITS = whole("splits")
STATS = (SEED, keys("phase3", "confidence", "n_bootstrap"))  # the phase 3 / 5 intervals
EVAL = (SEED, ENV, SPLITS, STUDENT, keys("phase3", "eval_tasks", "rollouts_per_task", "rollouts_per_snapshot"))

# ------------------------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Step:
    cmd: str  # the `teachable` subcommand
    help: str
    inputs: dict[str, Port] = field(default_factory=dict)  # rule key -> port
    outputs: dict[str, Port] = field(default_factory=dict)
    config: tuple[Part, ...] = ()  # the slice passed as --config-json; () = none
    args: tuple[tuple[tuple[str, ...], dict], ...] = ()  # other arguments: (flags, add_argument kwargs)
    out_dir: str | None = None  # the flag of the directory the in_dir outputs are written to
    config_files: bool = False  # may read YAML config files (--config) instead of --config-json
    config_required: bool = True  # False: a statistics step, run by hand with the schema's defaults
    progress: bool = False  # has --no-progress
    gpu: bool = False  # runs the student: holds a GPU slot (gpu_slots)

    def config_of(self, cfg: dict) -> dict:
        """The step's config slice of the full (validated) config."""
        out: dict = {}
        for part in self.config:
            for sec, v in part.of(cfg).items():
                out[sec] = {**out[sec], **v} if isinstance(out.get(sec), dict) else v
        return out

    def add_arguments(self, sp: argparse.ArgumentParser) -> None:
        """The subcommand's flags: its config, its files (help: the declared path), its args."""
        if self.config:
            what = "the config this step reads, as JSON: " + ", ".join(p.what for p in self.config)
            what += "" if self.config_required else " (left out: the schema's defaults)"
            src = sp.add_mutually_exclusive_group(required=self.config_required) if self.config_files else sp
            src.add_argument("--config-json", required=self.config_required and not self.config_files, help=what)
            if self.config_files:
                src.add_argument("--config", nargs="+", metavar="YAML", help="instead: config files, later over "
                                 "earlier (e.g. config/config.yaml config/pilot.yaml); defaults from the schema")
        if self.progress:
            sp.add_argument("--no-progress", action="store_true", help="hide progress bars")
        for ports in (self.inputs, self.outputs):
            for p in ports.values():
                if p.flag:
                    sp.add_argument(p.flag, nargs=p.many, required=not p.optional and p.many != "*",
                                    default=[] if p.many == "*" else None,
                                    help=f"{p.path} ({p.what.name}){': ' + p.help if p.help else ''}")
        if self.out_dir:
            files = ", ".join(p.path.rsplit("/", 1)[-1] for p in self.outputs.values() if not p.flag)
            sp.add_argument(self.out_dir, required=True, help=f"the directory to write {files} to")
        for flags, kw in self.args:
            sp.add_argument(*flags, **kw)


MODEL = port("--model", STUDENT_MODEL, "the student's HF model directory")
LABELED_IN = port("--labeled", S.LABELED)
HELDOUT_IN = port("--heldout", D.HELDOUT, "never trained on")
PLAN_IN = port("--plan", D.PLAN)
ROLLOUTS_IN = port("--rollouts", S.ROLLOUT_STEPS, "B3_traces' source, the anchor's pairs and the drift states")
MODEL_ID = (("--model-id",), dict(required=True, help="the result's name, e.g. base or B3_traces"))
SHARDS = (("--shard",), dict(type=int, default=0, help="this shard's index (its items i::n)")), \
         (("--n-shards",), dict(type=int, default=1, help="the number of shards"))  # fmt: skip
BENCH_IN = {"model": port("--model", STUDENT_MODEL, "student.backend hf or vllm", optional=True),
            "adapter": port("--adapter", ADAPTER, "a LoRA adapter ('' = the model alone)", optional=True)}
BENCH_CONFIG = (SEED, ENV, SPLITS, STUDENT, whole("bench"))
EXPERT_PLAYER = (("--expert",), dict(action="store_true", help="the env family's privileged expert plays instead of a "
                                     "student (the oracle's bench numbers; no --model)"))  # fmt: skip
REPORT = {
    "labeled": LABELED_IN, "thresholds": port("--thresholds", D.THRESHOLDS),
    "micro": port("--micro", S.MICRO_RESULTS), "correlation": port("--correlation", D.CPT_CORRELATION),
    "transfer": port("--transfer", S.PHASE3_TABLES["transfer"]), "overall": port("--overall", S.PHASE3_TABLES["overall"]),
    "retention": port("--retention", S.PHASE3_TABLES["retention"]),
    "stuckness": port("--stuckness", S.PHASE3_TABLES["stuckness"]),
    "family": port("--family", S.PHASE3_TABLES["family"]), "predictor": port("--predictor", D.TRAINING_RESULT),
    "selection": port("--selection", D.SELECTION_SUMMARY), "hint_audit": port("--hint-audit", D.HINT_AUDIT),
    "reliability": port("--reliability", D.LABEL_RELIABILITY),
    "training": port("--training", D.TRAINING_SUMMARY), "mining": port("--mining", D.MINING_SUMMARY),
    "eval_rollouts": port("--eval-rollouts", S.ALL_EVAL_ROLLOUTS, "the transfer check's bootstrap over tasks"),
    "teacher_failures": port("--teacher-failures", S.TEACHER_FAILURES),
}  # fmt: skip


def _report(*names: str) -> dict[str, Port]:
    return {n: REPORT[n] for n in names}


STEPS = {s.cmd: s for s in (
    # ---------------------------------------------------------------- student, phase 0
    Step("student-init", "Build and train the embedded default student offline.", config=(RECIPE,),
          outputs={"model": port("--out", STUDENT_MODEL, "written with save_pretrained")}),
    Step("eval-student", "Success rate of the student from reset on one split's tasks.",
          config=(SEED, ENV, keys("splits", "eval"), STUDENT), inputs={"model": MODEL},
          outputs={"summary": port("--out", D.EVAL_SUMMARY)}, progress=True, gpu=True,
          args=((("--split",), dict(choices=["train", "eval", "bench"], default="eval")),
                (("--n-tasks",), dict(type=int, required=True, help="the split's first N tasks")))),
    Step("rollouts", "Experiment A (student) and B (expert) rollouts on train tasks.",
          config=(SEED, ENV, keys("splits", "train"), STUDENT, keys("phase0", "a_tasks", "a_episodes_per_task",
                                                                   "b_tasks")),
          inputs={"model": MODEL}, outputs={"rollouts": port("--out", S.ROLLOUT_STEPS)}, progress=True, gpu=True),
    Step("mine", "Mine failure (A) and expert (B) snapshots from rollouts.",
          config=(SEED, ENV, keys("phase0", "mining", "b_rate", "b_per_episode")),
          inputs={"rollouts": port("--rollouts", S.ROLLOUT_STEPS)},
          outputs={"failure": port("--out-failure", S.SNAPSHOTS, fill={"kind": "failure"}),
                   "expert": port("--out-expert", S.SNAPSHOTS, fill={"kind": "expert"}),
                   "summary": port("--out-summary", D.MINING_SUMMARY, "counts, expert errors by kind")}),
    # ---------------------------------------------------------------- phase 1
    Step("label-shard", "Label one shard of snapshots: U, leverage, CPT.",
          config=(SEED, ENV, STUDENT, whole("teacher"),
                  keys("phase1", "experiments", "max_snapshots", "n_rollouts", "n_rollouts_expert", "estimator",
                       "first_action_floor"), ALLOCATION),
          inputs={"model": MODEL, "snapshots": port("--snapshots", S.SNAPSHOTS, "failure and expert", many="+")},
          outputs={"labels": port("--out", S.RAW_LABELS),
                   "failures": port("--out-failures", S.TEACHER_FAILURES, path_override=SHARD_FAILURES)},
          args=SHARDS, progress=True, gpu=True),
    Step("merge-labels", "Merge label shards, assign quadrants, plot thresholds.",
          config=(keys("phase1", "quadrants"),),
          inputs={"shards": port("--shards", S.RAW_LABELS, many="+"),
                  "failures": port("--failures", S.TEACHER_FAILURES, path_override=SHARD_FAILURES, many="+")},
          outputs={"parquet": port("--out", S.LABELED), "jsonl": port("--out-jsonl", LABELED_JSONL),
                   "thresholds": port("--thresholds", D.THRESHOLDS),
                   "failures": port("--out-failures", S.TEACHER_FAILURES),
                   "plots": port(None, THRESHOLD_PLOT, many="+")}, out_dir="--plots-dir"),
    Step("label-report", "Phase 1: the labels' intervals, reliability, pairing and the hint audit (statistics only).",
          config=(SEED, ENV, keys("phase1", "confidence", "n_bootstrap", "reliability_floor")),
          inputs={"labeled": LABELED_IN,
                  "thresholds": port("--thresholds", D.THRESHOLDS, "the L threshold of the bands")},
          outputs={"intervals": port("--out-intervals", S.LABEL_INTERVALS),
                   "reliability": port("--out-reliability", D.LABEL_RELIABILITY, "split-half, bands, the gate's bound"),
                   "pairing": port("--out-pairing", S.OUTCOME_PAIRING, "are the conditions of a snapshot paired?"),
                   "hint_audit": port("--out-hint-audit", D.HINT_AUDIT, "does the hint give the action away?")}),
    # ---------------------------------------------------------------- phase 1B
    Step("microtrain", "Phase 1B: micro-train one LoRA per sampled snapshot (one shard).",
          config=(SEED, ENV, STUDENT, keys("phase1b", *MICROTRAIN_KEYS)), inputs={"model": MODEL, "labeled": LABELED_IN},
          outputs={"results": port("--out", S.MICRO_SHARD)}, args=SHARDS, progress=True, gpu=True),
    Step("micro-merge", "Phase 1B: merge micro-training shards; Spearman of CPT vs utility.",
          config=(SEED, keys("phase1", "confidence", "reliability_floor"),
                  without("phase1b", lambda: MERGE_SKIPS, "the micro-training keys")),
          inputs={"shards": port("--shards", S.MICRO_SHARD, many="+"),
                  "labeled": port("--labeled", S.LABELED, "the gate sample's labels, for their reliability")},
          outputs={"results": port("--out", S.MICRO_RESULTS), "correlation": port("--out-correlation", D.CPT_CORRELATION)}),
    Step("cpt-gate", "Phase 1B gate (gate.gate_rule): stop (exit 1) or warn unless the CPT check passes.",
          config=(keys("phase1b", "gate"),), inputs={"correlation": port("--correlation", D.CPT_CORRELATION)},
          outputs={"gate": port("--out", D.GATE)}),
    # ---------------------------------------------------------------- phase 2
    Step("plan-training", "Phase 2: the held-out split (by task), the budget and which runs are trained.",
          config=(SEED, keys("phase2", "heldout_frac", "min_heldout_tasks", "budget", "min_budget", "lora", "anchor",
                             "traces"),
                  keys("phase5", "budget")),
          inputs={"labeled": LABELED_IN, "rollouts": ROLLOUTS_IN},
          outputs={"heldout": port("--out-heldout", D.HELDOUT), "plan": port("--out-plan", D.PLAN)}),
    Step("train-run", "Phase 2: train one run of the LoRA matrix.",
          config=(SEED, ENV, STUDENT, keys("phase2", "lora", "anchor", "traces")),
          inputs={"model": MODEL, "labeled": LABELED_IN, "rollouts": ROLLOUTS_IN, "heldout": HELDOUT_IN,
                  "plan": PLAN_IN},
          outputs={"adapter": port(None, ADAPTER), "log_json": port(None, D.TRAIN_LOG),
                   "train_set": port(None, D.TRAIN_SET)}, out_dir="--out-dir",
          args=((("--run-id",), dict(required=True, help="the run, e.g. Q1_highU_highL_demo")),), gpu=True),
    Step("training-summary", "Phase 2: summary of all runs' train logs.",
          inputs={"plan": port("--plan", D.PLAN, "the runs not trained, and why"),
                  "logs": port("--train-logs", D.TRAIN_LOG, "the trained runs'", many="*")},
          outputs={"summary": port("--out", D.TRAINING_SUMMARY)}),
    # ---------------------------------------------------------------- phase 3
    Step("eval-model", "Phase 3: evaluate one model (base or a run's adapter).", config=EVAL,
          inputs={"model": MODEL, "adapter": port("--adapter", ADAPTER, "'' = the base model", optional=True),
                  "labeled": LABELED_IN, "heldout": HELDOUT_IN},
          outputs={"rollouts": port("--out", S.EVAL_ROLLOUTS)}, args=(MODEL_ID,), progress=True, gpu=True),
    Step("benchmark", "Phase 3/5: a model's benchmark JSON (pass rate with n and interval) from its rollouts.",
          config_required=False, config=STATS, inputs={"rollouts": port("--rollouts", S.EVAL_ROLLOUTS)},
          outputs={"benchmark": port("--out", D.BENCHMARK)}, args=(MODEL_ID,)),
    Step("eval-summary", "Phase 3: merge models' rollouts; write the result CSVs.", config=STATS,
         config_required=False,
          inputs={"rollouts": port("--rollouts", S.EVAL_ROLLOUTS, many="+")},
          outputs={"rollouts": port("--out", S.ALL_EVAL_ROLLOUTS),
                   "tables": port("--out-tables", Artifact("phase 3 tables", "phase3/{table}.csv"),
                                  "schemas.PHASE3_TABLES, in their order", many="+")}),
    Step("compare", "Compare a model with a baseline: improvements and regressions (two models' phase 3 "
          "rollouts, or two bench results).", config=(SEED, keys("phase3", "alpha", "confidence", "n_bootstrap")),
          config_files=True, config_required=False,
          inputs={"rollouts": port("--rollouts", S.ALL_EVAL_ROLLOUTS, optional=True)},
          outputs={"json": port("--out-json", D.COMPARISON, "one --model", optional=True),
                   "md": port("--out-md", COMPARISON_MD, "one --model", optional=True)},
          args=((("--baseline",), dict(help="model id, e.g. base")),
                (("--model",), dict(nargs="+", help="model id(s), e.g. Q1_highU_highL_demo")),
                (("--bench",), dict(nargs=2, metavar=("BASELINE_JSON", "MODEL_JSON"), help="instead: two "
                                    "bench_results.json of `teachable bench` (baseline, then model)")),
                (("--out-dir",), dict(help="write MODEL_vs_BASELINE.{json,md} here for each --model")))),
    # ---------------------------------------------------------------- bench
    Step("bench", "Bench a student (HF model with an optional adapter, or student.backend: openai) on the bench "
          "split: bench_results.json, with the episodes' Parquet and bench_run.json beside it (bench-rollouts then "
          "bench-results in one command).", config=(*BENCH_CONFIG, keys("phase3", "confidence", "n_bootstrap")),
          config_files=True, inputs=BENCH_IN, outputs={"results": port("--out", D.BENCH_RESULTS)},
          args=(MODEL_ID, EXPERT_PLAYER), progress=True, gpu=True),
    Step("bench-rollouts", "Bench, first half (rule bench_rollouts): play the bench rollouts of a student; write "
          "the episodes' Parquet and bench_run.json (usage, what was benched).", config=BENCH_CONFIG,
          config_files=True, inputs=BENCH_IN, outputs={"episodes": port(None, S.BENCH_EPISODES),
                                                       "run": port(None, D.BENCH_RUN)},
          out_dir="--out-dir", args=(MODEL_ID, EXPERT_PLAYER), progress=True, gpu=True),
    Step("bench-results", "Bench, second half (rule bench): bench_results.json (metrics with intervals over tasks, "
          "per level and archetype) from a bench run; plays nothing.", config=STATS, config_files=True,
          config_required=False, inputs={"run": port("--run", D.BENCH_RUN, "its episodes beside it")},
          outputs={"results": port("--out", D.BENCH_RESULTS, "beside the run")}),
    # ---------------------------------------------------------------- phases 4, 5
    Step("predictor", "Phase 4: fit the teachability predictor from cheap observables, CV grouped by task (models "
          "and out-of-fold predictions).", config=(SEED, Part("phase4's fit keys (predictor.FIT_KEYS)", lambda c: {
              "phase4": {k: c["phase4"][k] for k in _fit_keys()}})),
          inputs={"labeled": LABELED_IN},
          outputs={"predictor": port("--out-dir", PREDICTOR_DIR, "models, feature_config.json, folds.json"),
                   "oof": port("--out-oof", OOF)}),
    Step("predictor-metrics", "Phase 4: metrics of the out-of-fold predictions beside the entropy baseline, with "
          "intervals.", config=(SEED, without("phase4", _fit_keys, "its fit keys")),
          inputs={"oof": port("--oof", OOF), "predictor": port("--predictor", PREDICTOR_DIR, "its crossfit.json")},
          outputs={"result": port("--out", D.TRAINING_RESULT)}),
    Step("select-train", "Phase 5: one selection method picks K snapshots; train on them.",
          config=(SEED, ENV, STUDENT, keys("phase2", "lora", "anchor"), whole("phase5")),
          inputs={"model": MODEL, "labeled": LABELED_IN, "rollouts": ROLLOUTS_IN, "heldout": HELDOUT_IN,
                  "plan": port("--plan", D.PLAN, "whether Phase 5 runs"),
                  "predictor": port("--predictor", PREDICTOR_DIR, "required for PREDICTOR", optional=True)},
          outputs={"adapter": port(None, ADAPTER, path_override=SELECTION + "adapter"),
                   "selected": port(None, D.SELECTED), "log_json": port(None, D.TRAIN_LOG,
                                                                       path_override=SELECTION + "train_log.json")},
          out_dir="--out-dir", args=((("--method",), dict(required=True, help="RANDOM, ENTROPY, LEARNABILITY, "
                                                           "LEARNABILITY_EQ, PREDICTOR or ORACLE")),), progress=True, gpu=True),
    Step("selection-summary", "Phase 5: gain and retention per selection method.", config=STATS,
         config_required=False,
          inputs={"base": port("--base-rollouts", S.EVAL_ROLLOUTS, "the base model's", fill={"model": "base"}),
                  "plan": port("--plan", D.PLAN, "whether Phase 5 ran, and why not"),
                  "rollouts": port("--rollouts", S.EVAL_ROLLOUTS, "each method's",
                                   path_override=SELECTION + "rollouts.parquet", many="*"),
                  "selected": port("--selected", D.SELECTED, "each method's, in --rollouts' order", many="*")},
          outputs={"summary": port("--out", D.SELECTION_SUMMARY)}),
    # ---------------------------------------------------------------- report
    Step("figures", "Report: the study's figures (PNG), every number read from the phase outputs.",
          config_required=False, config=(keys("phase3", "confidence"), keys("report", "retention_threshold")),
          inputs=_report("labeled", "thresholds", "micro", "correlation", "transfer", "overall", "retention",
                         "selection"), outputs={"figures": port(None, FIGURE, many="+")}, out_dir="--out-dir"),
    Step("tables", "Report: the study's tables as CSV and Markdown, read from the phase outputs.",
          config_required=False, config=(keys("phase3", "confidence"),),
          inputs=_report("labeled", "transfer", "overall", "retention", "stuckness", "family", "predictor",
                         "selection"),
          outputs={"csv": port(None, TABLE_CSV, many="+"), "md": port(None, TABLE_MD, many="+")}, out_dir="--out-dir"),
    Step("summary", "Report: the study's checks, each computed from the phase outputs (JSON + Markdown).",
          config=(SEED, keys("phase3", "alpha", "confidence", "n_bootstrap"), keys("report", "retention_threshold")),
          config_required=False,
          inputs=_report("labeled", "hint_audit", "reliability", "training", "mining", "eval_rollouts",
                         "teacher_failures", "correlation", "transfer", "retention", "overall", "thresholds",
                         "predictor", "selection"),
          outputs={"json": port("--out-json", D.SUMMARY), "md": port("--out-md", SUMMARY_MD)}),
)}  # fmt: skip
