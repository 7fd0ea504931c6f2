# Helpers shared by all phases: path builders, config slices passed to the CLI, checks.
import json
import os
import shlex
import sys

from teachable.constants import BASE_MODEL_ID, FIGURE_CATEGORIES, RUN_IDS, TABLES
from teachable.constants import SELECTION_METHODS as METHODS
from teachable.envs.registry import check_env_id, env_options
from teachable.policies import BACKEND_SECTIONS, check_trainable
from teachable.predictor import FIT_KEYS as PREDICTOR_FIT_KEYS
from teachable.schemas import (
    ALL_EVAL_ROLLOUTS,
    BENCH_EPISODES,
    EVAL_ROLLOUTS,
    LABEL_INTERVALS,
    LABELED,
    MICRO_RESULTS,
    MICRO_SHARD,
    PHASE3_TABLES,
    RAW_LABELS,
    ROLLOUT_STEPS,
    SNAPSHOTS,
    TEACHER_FAILURES,
)
from teachable.splits import check_disjoint, split_seeds

RESULTS = config["results_dir"]
# Rules find `teachable` next to the interpreter that runs Snakemake (the venv's bin/), so
# `.venv/bin/snakemake ...` works without an activated venv; a SLURM job runs the same
# interpreter path on the shared filesystem.
shell.prefix(f"export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; ")

check_disjoint(config["splits"])
try:
    check_env_id(config["env"]["id"])
except (ValueError, NotImplementedError, ImportError) as e:
    raise ValueError(f"config key env.id: {e}") from None
ENV_OPTIONS = env_options(
    config["env"]
)  # the family's constructor options set in the config


def R(*parts):
    """A path under results_dir."""
    return os.path.join(RESULTS, *parts)


def LOG(step, name=None):
    return os.path.join(RESULTS, "logs", step, f"{name or step}.log")


def BENCH(step, name=None):
    return os.path.join(RESULTS, "benchmarks", step, f"{name or step}.tsv")


def cfg_json(**sections):
    """A stable JSON of exactly the config a step uses (a job's params: changing anything
    else does not make the step stale)."""
    return json.dumps(sections, sort_keys=True)


def student_runtime():
    """Student settings that matter at inference time (not the embedded student's recipe, nor
    model_path: the model directory is the job's input; a backend's own section (openai,
    vllm) only when it is the backend)."""
    backend = config["student"]["backend"]
    return {
        k: v
        for k, v in config["student"].items()
        if k not in ("init", "eval_tasks", "model_path")
        and (k not in BACKEND_SECTIONS or k == backend)
    }


def env_cfg():
    """The environment settings the steps read (a family option only when it is set, so
    another family's jobs do not see it)."""
    return {
        k: config["env"][k] for k in ("id", "max_steps", "history_len")
    } | ENV_OPTIONS


def get_student_dir():
    """The student: a user-given local HF model directory, or the embedded one we build."""
    raw = config["student"].get("model_path")
    if raw:
        path = os.path.expanduser(os.path.expandvars(raw))
        if "$" in path:
            raise ValueError(
                f"config key student.model_path={raw!r}: environment variable not set "
                "(export it, or set student.model_path in a config file of your own)"
            )
        if not os.path.isdir(path) or not os.path.exists(
            os.path.join(path, "config.json")
        ):
            raise ValueError(
                f"config key student.model_path={path!r}: no HF model directory there "
                "(expected a folder with config.json saved by save_pretrained)"
            )
        return path
    return R("student", "model")


def get_student_model(wildcards=None):
    """The local HF student a job loads (the study's rules: they play it, train it, or evaluate
    what was trained from it). A backend that cannot train (student.backend: openai) is refused
    here, when the DAG is built for such a job: the study trains (phases 1B, 2 and 5), and its
    other phases read the local model directory; rule bench alone takes an API student.
    """
    check_trainable(config["student"])
    return get_student_dir()


def get_student_init_cfg():
    """The embedded student's recipe; its demonstrations come from the demo split."""
    init = dict(config["student"]["init"])
    n = init.pop("demo_tasks")
    demo = split_seeds(config["splits"], "demo")
    if n > len(demo):
        raise ValueError(
            f"student.init.demo_tasks={n} exceeds splits.demo.count={len(demo)}"
        )
    return dict(
        init,
        env_id=config["env"]["id"],
        env_options=ENV_OPTIONS,
        max_steps=config["env"]["max_steps"],
        history_len=config["env"]["history_len"],
        demo_seeds={"start": demo[0], "count": n},
        seed=config["seed"],
    )


def get_snapshot_files():
    return [
        R(SNAPSHOTS.path.format(kind="failure")),
        R(SNAPSHOTS.path.format(kind="expert")),
    ]


def get_label_shards(kind="labels"):
    n = config["phase1"]["n_shards"]
    return [R("phase1", "shards", f"{kind}_{i}.parquet") for i in range(n)]


def get_micro_shards():
    n = config["phase1b"]["n_shards"]
    return [R("phase1b", "shards", f"micro_{i}.parquet") for i in range(n)]


MICROTRAIN_KEYS = (
    "per_quadrant",
    "n_validation_rollouts",
    "lora",
)  # what the jobs read


def micro_cfg_json():
    """The config Phase 1B's micro-training jobs use (no statistic: those are the merge's)."""
    return cfg_json(
        seed=config["seed"],
        env=env_cfg(),
        student=student_runtime(),
        phase1b={k: config["phase1b"][k] for k in MICROTRAIN_KEYS},
    )


def micro_merge_cfg_json():
    """The statistics of Phase 1B's merge."""
    p1b = config["phase1b"]
    return cfg_json(
        seed=config["seed"],
        phase1={"confidence": config["phase1"]["confidence"]},
        phase1b={
            k: v for k, v in p1b.items() if k not in MICROTRAIN_KEYS + ("n_shards",)
        },
    )


PHASE1_PLOTS = ["hist_U", "hist_L", "scatter_U_L"]
EVAL_MODELS = [BASE_MODEL_ID, *RUN_IDS]


def get_plan():
    """phase2/plan.json, once the checkpoint rule plan_training has run (it decides which
    runs are trained; a quadrant too small for phase2.min_budget is skipped, with the reason)
    """
    with open(checkpoints.plan_training.get().output.plan) as f:
        return json.load(f)


def get_trained_runs(wildcards=None):
    return get_plan()["trained_runs"]


def get_selection_methods(wildcards=None):
    """The Phase 5 methods, or none when the plan skips Phase 5 (too few candidates)."""
    return list(METHODS) if get_plan()["selection"]["run"] else []


def get_eval_inputs(wildcards):
    """A model to evaluate: the student, plus the run's LoRA adapter unless it is the base."""
    inputs = {
        "model": get_student_model(),
        "labeled": R(LABELED.path),
        "heldout": R("phase2", "heldout.json"),
    }
    if wildcards.model != BASE_MODEL_ID:
        inputs["adapter"] = R("phase2", wildcards.model, "adapter")
    return inputs


def eval_cfg_json():
    """The config an evaluation job uses (Phase 3 models and Phase 5 selection models alike)."""
    return cfg_json(
        seed=config["seed"],
        env=env_cfg(),
        splits=config["splits"],
        student=student_runtime(),
        phase3={
            k: config["phase3"][k]
            for k in ("eval_tasks", "rollouts_per_task", "rollouts_per_snapshot")
        },
    )


def get_bench_inputs(wildcards):
    """A model to bench: the student, plus a Phase 2 run's LoRA adapter unless it is the base.
    An API student (student.backend: openai) has no model directory: it is benched as the base
    only (a trained run's adapter needs the local model)."""
    if config["student"]["backend"] == "openai":
        if wildcards.model_id != BASE_MODEL_ID:
            raise ValueError(
                f"config key student.backend='openai' benches the API model as "
                f"{BASE_MODEL_ID!r} only: bench/{wildcards.model_id} is a Phase 2 run's LoRA "
                "adapter, which needs student.backend: hf (the local model it was trained from)"
            )
        return {}
    inputs = {"model": get_student_dir()}
    if wildcards.model_id != BASE_MODEL_ID:
        inputs["adapter"] = R("phase2", wildcards.model_id, "adapter")
    return inputs


def bench_cfg_json():
    """The config `teachable bench-rollouts` reads (bench.py: CONFIG_SECTIONS, seed and splits;
    not phase3's statistics: those are rule bench's params)."""
    return cfg_json(
        seed=config["seed"],
        env=env_cfg(),
        splits=config["splits"],
        student=student_runtime(),
        bench=config["bench"],
    )


def get_gate_input():
    """With phase1b.gate: stop, training waits for the gate (which fails when the CPT check
    does); with warn, the gate's statistics do not hold training up or make it stale."""
    if config["phase1b"]["gate"] == "stop":
        return {"gate": R("phase1b", "gate.json")}
    return {}


def get_selection_inputs(wildcards):
    """A Phase 5 method's inputs; only PREDICTOR reads the Phase 4 predictor."""
    inputs = {
        "model": get_student_model(),
        "labeled": R(LABELED.path),
        "heldout": R("phase2", "heldout.json"),
        "plan": R("phase2", "plan.json"),
        **get_gate_input(),
    }
    if wildcards.method == "PREDICTOR":
        inputs["predictor"] = R("phase4", "predictor")
    return inputs


def get_static_outputs():
    """The study's outputs that do not depend on the training plan (a dry-run lists their jobs
    before phase 1 has run)."""
    return [
        R("student", "eval_summary.json"),
        R(ROLLOUT_STEPS.path),
        R("phase0", "mining_summary.json"),
        *get_snapshot_files(),
        R(LABELED.path),
        R("phase1", "labeled_snapshots.jsonl"),
        R("phase1", "quadrant_thresholds.json"),
        R(LABEL_INTERVALS.path),
        R("phase1", "hint_audit.json"),
        *[R("phase1", "threshold_plots", f"{p}.png") for p in PHASE1_PLOTS],
        R(MICRO_RESULTS.path),
        R("phase1b", "gate.json"),
        R("phase4", "training_result.json"),
    ]


def get_planned_outputs(wildcards):
    """The outputs of the runs the training plan trains (known once the checkpoint has run)."""
    runs = get_trained_runs()
    return [
        R("phase2", "training_summary.json"),
        *[R("phase2", run, "adapter") for run in runs],
        R(ALL_EVAL_ROLLOUTS.path),
        *[R(t.path) for t in PHASE3_TABLES.values()],
        *[R("phase3", "models", m, "benchmark.json") for m in [BASE_MODEL_ID, *runs]],
        *[R("phase3", "compare", f"{run}_vs_base.md") for run in runs],
        *[
            R("phase5", "selection", m, "benchmark.json")
            for m in get_selection_methods()
        ],
        R("phase5", "selection_summary.json"),
        *[R("figures", f"{name}.png") for name in FIGURE_CATEGORIES],
        *[R("tables", f"{t}.{ext}") for t in TABLES for ext in ("csv", "md")],
        R("summary.json"),
        R("summary.md"),
    ]
