# Helpers shared by all phases: path builders, config slices passed to the CLI, checks.
import json
import os
import shlex
import sys

from teachable.constants import BASE_MODEL_ID, FIGURE_CATEGORIES, RUN_IDS, TABLES
from teachable.constants import SELECTION_METHODS as METHODS
from teachable.envs.registry import check_env_id
from teachable.io import read_doc
from teachable.policies import check_trainable
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
from teachable.documents import (
    BENCHMARK,
    EVAL_SUMMARY,
    GATE,
    HELDOUT,
    HINT_AUDIT,
    MINING_SUMMARY,
    PLAN,
    SELECTION_SUMMARY,
    SELECTED,
    SUMMARY,
    THRESHOLDS,
    TRAIN_LOG,
    TRAINING_RESULT,
    TRAINING_SUMMARY,
)
from teachable.splits import check_disjoint
from teachable.steps import (
    ADAPTER,
    COMPARISON_MD,
    FIGURE,
    LABELED_JSONL,
    PREDICTOR_DIR,
    SELECTION,
    STEPS,
    SUMMARY_MD,
    TABLE_CSV,
    TABLE_MD,
    THRESHOLD_PLOT,
)

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


def R(*parts):
    """A path under results_dir."""
    return os.path.join(RESULTS, *parts)


def LOG(step, name=None):
    return os.path.join(RESULTS, "logs", step, f"{name or step}.log")


def BENCH(step, name=None):
    return os.path.join(RESULTS, "benchmarks", step, f"{name or step}.tsv")


def step_input(cmd, **given):
    """Step ``cmd``'s inputs (``teachable.steps``) for its rule, each declared file at its path under
    results_dir, or as ``given`` (a path, a list, a function of wildcards) where the rule resolves
    it; an optional input (a flag the step may go without) only when given."""
    ports = STEPS[cmd].inputs
    _check_ports(cmd, "input", given, ports)
    return {
        k: given[k] if k in given else R(p.path)
        for k, p in ports.items()
        if k in given or not p.optional
    }


def step_output(cmd, **given):
    """Step ``cmd``'s outputs for its rule, each declared file at its path under results_dir (a
    declared directory flagged ``directory()``), or as ``given`` (a list, a ``report()``).
    """
    ports = STEPS[cmd].outputs
    _check_ports(cmd, "output", given, ports)
    return {
        k: given[k] if k in given else _out(R(p.path), p.what) for k, p in ports.items()
    }


def _out(path, what):
    return directory(path) if getattr(what, "is_dir", False) else path


def _check_ports(cmd, kind, given, ports):
    unknown = sorted(set(given) - set(ports))
    if unknown:
        raise ValueError(f"step {cmd!r} declares no {kind} {unknown} (teachable.steps)")
    lists = [k for k, p in ports.items() if p.many and k not in given]
    if lists:
        raise ValueError(f"step {cmd!r}: the rule must give its {kind} lists {lists}")


def step_params(cmd, **extra):
    """The params of step ``cmd``'s rule: ``cfg``, the step's config slice as a stable JSON (so
    changing any other setting does not make the step stale); ``out_dir``, the directory of the
    outputs written under the step's directory flag; ``opt_<input>``, the flag of an optional
    input, or nothing where the rule has no such input; then ``extra``."""
    step = STEPS[cmd]
    params = {}
    if step.config:
        params["cfg"] = lambda wc: json.dumps(step.config_of(config), sort_keys=True)
    if step.out_dir:
        first = next(k for k, p in step.outputs.items() if not p.flag)
        params["out_dir"] = lambda wc, output: os.path.dirname(
            output[first] if isinstance(output[first], str) else output[first][0]
        )
    for k, p in step.inputs.items():
        if p.optional:
            params[f"opt_{k}"] = lambda wc, input, k=k, flag=p.flag: (
                f"{flag} {input[k]}" if k in input.keys() else ""
            )
    return params | extra


def step_shell(cmd, *args, env=""):
    """The shell command of step ``cmd``'s rule: ``env`` (variables), ``teachable cmd`` with its
    config, each declared file's flag and rule file, ``args`` (the step's other arguments), and
    its log. Read with ``step_params``."""
    step = STEPS[cmd]
    words = [f"{env} teachable {cmd}".strip()]
    if step.config:
        words.append("--config-json {params.cfg:q}")
    for kind, ports in (("input", step.inputs), ("output", step.outputs)):
        for k, p in ports.items():
            if p.optional and kind == "input":
                words.append(f"{{params.opt_{k}}}")
            elif p.flag:
                words.append(f"{p.flag} {{{kind}.{k}}}")
    if step.out_dir:
        words.append(f"{step.out_dir} {{params.out_dir}}")
    return " ".join([*words, *args, "2> {log}"])


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


def get_snapshot_files():
    return [
        R(SNAPSHOTS.path.format(kind="failure")),
        R(SNAPSHOTS.path.format(kind="expert")),
    ]


def get_label_shards(port):
    """The label shards' files of merge-labels' input ``port`` (shards or failures)."""
    path = STEPS["merge-labels"].inputs[port].path
    return expand(R(path), shard=range(config["phase1"]["n_shards"]))


def get_micro_shards():
    return expand(R(MICRO_SHARD.path), shard=range(config["phase1b"]["n_shards"]))


PHASE1_PLOTS = ["hist_U", "hist_L", "scatter_U_L"]


def get_threshold_plots():
    return expand(R(THRESHOLD_PLOT.path), plot=PHASE1_PLOTS)


EVAL_MODELS = [BASE_MODEL_ID, *RUN_IDS]


def get_plan():
    """phase2/plan.json, once the checkpoint rule plan_training has run (it decides which
    runs are trained; a quadrant too small for phase2.min_budget is skipped, with the reason)
    """
    return read_doc(checkpoints.plan_training.get().output.plan, PLAN)


def get_trained_runs(wildcards=None):
    return get_plan()["trained_runs"]


def get_selection_methods(wildcards=None):
    """The Phase 5 methods, or none when the plan skips Phase 5 (too few candidates)."""
    return list(METHODS) if get_plan()["selection"]["run"] else []


def get_eval_inputs(wildcards):
    """A model to evaluate: the student, plus the run's LoRA adapter unless it is the base."""
    adapter = {}
    if wildcards.model != BASE_MODEL_ID:
        adapter["adapter"] = R("phase2", wildcards.model, "adapter")
    return step_input("eval-model", model=get_student_model(), **adapter)


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


def get_gate_input():
    """With phase1b.gate: stop, training waits for the gate (which fails when the CPT check
    does); with warn, the gate's statistics do not hold training up or make it stale."""
    if config["phase1b"]["gate"] == "stop":
        return {"gate": R(GATE.path)}
    return {}


def get_selection_inputs(wildcards):
    """A Phase 5 method's inputs; only PREDICTOR reads the Phase 4 predictor."""
    predictor = {}
    if wildcards.method == "PREDICTOR":
        predictor["predictor"] = R(PREDICTOR_DIR.path)
    return get_gate_input() | step_input(
        "select-train", model=get_student_model(), **predictor
    )


def get_static_outputs():
    """The study's outputs that do not depend on the training plan (a dry-run lists their jobs
    before phase 1 has run)."""
    return [
        R(EVAL_SUMMARY.path),
        R(ROLLOUT_STEPS.path),
        R(MINING_SUMMARY.path),
        *get_snapshot_files(),
        R(LABELED.path),
        R(LABELED_JSONL.path),
        R(THRESHOLDS.path),
        R(LABEL_INTERVALS.path),
        R(HINT_AUDIT.path),
        *get_threshold_plots(),
        R(MICRO_RESULTS.path),
        R(GATE.path),
        R(TRAINING_RESULT.path),
    ]


def get_planned_outputs(wildcards):
    """The outputs of the runs the training plan trains (known once the checkpoint has run)."""
    runs = get_trained_runs()
    return [
        R(TRAINING_SUMMARY.path),
        *expand(R(ADAPTER.path), run=runs),
        R(ALL_EVAL_ROLLOUTS.path),
        *[R(t.path) for t in PHASE3_TABLES.values()],
        *expand(R(BENCHMARK.path), model=[BASE_MODEL_ID, *runs]),
        *expand(R(COMPARISON_MD.path), run=runs),
        *expand(R(SELECTION, "benchmark.json"), method=get_selection_methods()),
        R(SELECTION_SUMMARY.path),
        *expand(R(FIGURE.path), name=FIGURE_CATEGORIES),
        *expand(R(TABLE_CSV.path), table=TABLES),
        *expand(R(TABLE_MD.path), table=TABLES),
        R(SUMMARY.path),
        R(SUMMARY_MD.path),
    ]
