"""Every JSON document that crosses phases, declared once, as ``schemas`` declares the tables:
its file (relative to ``results_dir``), its writer, and the keys its readers rely on, each with a
kind and a meaning. ``io.write_doc`` checks a document against its declaration before it writes
it (atomically), ``io.read_doc`` when it reads it; every error names the file. A document may
carry more keys than it declares (a writer's details that no step reads).

Kinds: ``dict``, ``list``, ``str``, ``int``, ``float`` (an int fits), ``bool``; a trailing ``?``
allows null (JSON has no NaN: ``io.write_json`` writes it as null).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .schemas import parse_spec

KINDS = {"dict": (dict,), "list": (list, tuple), "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


@dataclass(frozen=True)
class Key:
    kind: str
    meaning: str

    def __post_init__(self) -> None:
        if self.kind.rstrip("?") not in KINDS:
            raise ValueError(f"unknown key kind {self.kind!r}; expected one of {list(KINDS)} (optionally with '?')")

    def fits(self, value: Any) -> bool:
        if value is None:
            return self.kind.endswith("?")
        types = KINDS[self.kind.rstrip("?")]
        return isinstance(value, types) and (bool in types or not isinstance(value, bool))


@dataclass(frozen=True)
class Document:
    name: str
    path: str  # relative to results_dir; "{...}" marks a per-job part
    writer: str  # the function (and rule) that writes it
    keys: dict[str, Key] = field(default_factory=dict)


def keys(spec: str, **meanings: str) -> dict[str, Key]:
    """Keys from ``"name:kind name:kind ..."``, each meaning given as a keyword."""
    return parse_spec(spec, meanings, Key, "key")


def check_doc(obj: Any, doc: Document, where: str) -> None:
    """ValueError naming ``where`` (a file) when ``obj`` is not a JSON object, lacks a declared
    key, or holds a value not of its declared kind."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where} ({doc.name}): expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in doc.keys if k not in obj]
    if missing:
        raise ValueError(f"{where} ({doc.name}): missing keys {missing} (documents.{doc.name!r}; a file from "
                         "another version? re-run the rule that writes it)")  # fmt: skip
    for k, key in doc.keys.items():
        if not key.fits(obj[k]):
            raise ValueError(f"{where} ({doc.name}): key {k!r} holds {type(obj[k]).__name__}, declared {key.kind}")


# ------------------------------------------------------------------------------------ student, phase 0
EVAL_SUMMARY = Document("student eval summary", "student/eval_summary.json", "mining.evaluate_student (rule student_eval)", keys(
    "env_id:str split:str success_rate:float? n:int ci95:list", env_id="the environment id", split="the seed split",
    success_rate="the student's success rate from reset", n="episodes", ci95="Wilson 95% interval of success_rate",
))  # fmt: skip
MINING_SUMMARY = Document("mining summary", "phase0/mining_summary.json", "mining.mine (rule mine_snapshots)", keys(
    "A:dict B:dict", A="experiment A: failed episodes, mistakes found, snapshots", B="experiment B: expert snapshots, "
    "expert errors by kind",
))  # fmt: skip

# ------------------------------------------------------------------------------------ phase 1
THRESHOLDS = Document("quadrant thresholds", "phase1/quadrant_thresholds.json",
                      "labeling.add_quadrants (rule merge_labels)", keys(
    "U_threshold:float L_threshold:float sizes:dict", U_threshold="high U: strictly above this",
    L_threshold="high L_local: strictly above this", sizes="snapshots per quadrant",
))  # fmt: skip
HINT_AUDIT = Document("hint audit", "phase1/hint_audit.json", "hint_audit.hint_audit (rule label_report)", keys(
    "n:int diagnoses_naming_action:int state_action_accuracy:dict? state_hint_action_accuracy:dict? "
    "hint_action_accuracy:dict? demo_action_accuracy:dict? majority_accuracy:dict? leakage_index:dict?",
    n="labeled snapshots audited", diagnoses_naming_action="diagnoses that name or paraphrase an action",
    state_action_accuracy="accuracy of the suggested action predicted from the student's state text (p, interval)",
    state_hint_action_accuracy="from the state text and the diagnosis",
    hint_action_accuracy="from the diagnosis alone", demo_action_accuracy="from the demo patch (the ceiling)",
    majority_accuracy="the majority action (the floor)", leakage_index="lambda = (acc(state+hint) - acc(state)) / "
    "(acc(demo) - acc(state)) with its task-bootstrap interval and band (hint_audit.BANDS)",
))  # fmt: skip

LABEL_RELIABILITY = Document("label reliability", "phase1/label_reliability.json",
                             "reliability.label_report (rule label_report)", keys(
    "n_snapshots:int n_rollouts:int floor:float labels:dict U:dict flagged:list unmeasured:list gate_bound:dict "
    "quadrants_reliable:bool bands:dict", n_snapshots="labeled snapshots", n_rollouts="rollouts per condition",
    floor="phase1.reliability_floor", labels="per label: split-half reliability (Spearman-Brown) with its interval",
    U="exact (not applicable) or not measured, with the reason", flagged="labels below the floor",
    unmeasured="labels whose reliability could not be measured (reason in labels)",
    gate_bound="the largest observable rho(ELP_net, delta) with a perfectly reliable delta",
    quadrants_reliable="L_local's reliability reaches the floor", bands="decided / uncertain snapshots per quadrant",
))  # fmt: skip

# ------------------------------------------------------------------------------------ phase 1B
CPT_CORRELATION = Document("CPT correlation", "phase1b/cpt_correlation.json", "microtrain.merge_results (rule micro_merge)", keys(
    "n:int rho:float? rho_ci:list rho_threshold:float verdict:str pass:bool reliability:dict",
    n="micro-trained snapshots", rho="Spearman rho(ELP_net, micro-training delta)", rho_ci="its bootstrap interval",
    rho_threshold="phase1b.rho_threshold", verdict="gate.gate_rule: pass | fail | undetermined",
    **{"pass": "verdict == pass (the one rule: gate.py, docs/protocol.md)"},
    reliability="split-half reliability of delta (and the gate sample's labels) and the attenuation of rho",
))  # fmt: skip
GATE = Document("CPT gate", "phase1b/gate.json", "microtrain.gate_verdict (rule cpt_gate)", keys(
    "pass:bool verdict:str gate:str correlation:str", **{"pass": "the CPT check passed"},
    verdict="gate.gate_rule: pass | fail | undetermined", gate="phase1b.gate: stop | warn",
    correlation="the correlation report it judged",
))  # fmt: skip

# ------------------------------------------------------------------------------------ phase 2
HELDOUT = Document("held-out split", "phase2/heldout.json", "splits.heldout_record (rule plan_training)", keys(
    "by:str seed:int heldout_frac:float snapshot_ids:list task_ids:list",
    by="the unit held out (task)", seed="the split's seed", heldout_frac="phase2.heldout_frac",
    snapshot_ids="the held-out snapshots", task_ids="their tasks (all of a task's snapshots on one side)",
))  # fmt: skip
PLAN = Document("training plan", "phase2/plan.json", "matrix.plan_training (rule plan_training)", keys(
    "budget:int optimizer_steps:int runs:dict trained_runs:list skipped_runs:dict selection:dict",
    budget="K: the examples of every budgeted run", optimizer_steps="their optimizer steps",
    runs="per run: trained or not, and why", trained_runs="the runs trained, in RUN_IDS order",
    skipped_runs="run -> why it is not trained", selection="Phase 5: run (bool), reason, k, candidates, steps",
))  # fmt: skip
TRAIN_LOG = Document("train log", "phase2/{run}/train_log.json", "training.train_lora (rules train_run, select_train)", keys(
    "examples:int epochs:float optimizer_steps:int", examples="training examples", epochs="epochs",
    optimizer_steps="optimizer steps taken",
))  # fmt: skip
TRAIN_SET = Document("train set", "phase2/{run}/train_set.json", "matrix.train_matrix_run (rule train_run)", keys(
    "run_id:str budget:int examples:int task_ids:list", run_id="the run", budget="the plan's K",
    examples="examples trained on", task_ids="their tasks",
))  # fmt: skip
TRAINING_SUMMARY = Document("training summary", "phase2/training_summary.json",
                            "matrix.training_summary (rule training_summary)", keys(
    "runs:dict skipped_runs:dict", runs="per trained run: its train log and train set", skipped_runs="run -> why not",
))  # fmt: skip

# ------------------------------------------------------------------------------------ phase 3
BENCHMARK = Document("benchmark", "phase3/models/{model}/benchmark.json", "evaluation.benchmark_json (rule benchmark_model)",
                     keys("model:str pass_rate:float? n:int", model="the model id", pass_rate="overall-suite success",
                          n="rollouts"))  # fmt: skip
COMPARISON = Document("comparison", "phase3/compare/{run}_vs_base.json", "compare.compare (rule compare_run)", keys(
    "baseline:str model:str metrics:list improvements:list regressions:list", baseline="the baseline",
    model="the model", metrics="per metric: both values, the difference, its test and verdict",
    improvements="metrics the model improves", regressions="metrics it makes worse",
))  # fmt: skip

# ------------------------------------------------------------------------------------ phases 4, 5
TRAINING_RESULT = Document("predictor result", "phase4/training_result.json",
                           "predictor.predictor_metrics (rule predictor_metrics)", keys(
    "targets:dict ranking:dict", targets="per target: R2 or accuracy beside the entropy baseline",
    ranking="Precision@K and NDCG@K of predictor and entropy, with intervals",
))  # fmt: skip
SELECTED = Document("selected set", "phase5/selection/{method}/selected.json", "selection.train_selected (rule select_train)",
                    keys("method:str cost:dict value_rollouts:dict", method="the selection method",
                         cost="what its signal cost (selection_costs.signal_cost)",
                         value_rollouts="the fresh rollouts that measure the set's value"))  # fmt: skip
SELECTION_SUMMARY = Document("selection summary", "phase5/selection_summary.json",
                             "selection.summarize_selection (rule selection_summary)", keys(
    "k:int? methods:dict", k="the budget K", methods="per method: gain and retention with intervals, signal cost",
))  # fmt: skip

# ------------------------------------------------------------------------------------ bench, report
BENCH_RUN = Document("bench run", "bench/{model_id}/bench_run.json", "bench.play_bench (rule bench_rollouts)", keys(
    "suite:str model:str episodes:str usage:dict? about:dict", suite="bench_run", model="the benched model id",
    episodes="the episodes' Parquet, beside it", usage="the backend's requests, tokens and cost",
    about="what was benched (levels, tasks, rollouts)",
))  # fmt: skip
BENCH_RESULTS = Document("bench results", "bench/{model_id}/bench_results.json", "bench.summarize_bench (rule bench)", keys(
    "suite:str model:str episodes:str metrics:dict pass_rate:float? n:int",
    suite="bench", model="the benched model id", episodes="the episodes' Parquet, beside it",
    metrics="metric -> value with its interval over tasks", pass_rate="overall success", n="episodes",
))  # fmt: skip
SUMMARY = Document("study summary", "summary.json", "reporting.summary_from_files (rule summary)", keys(
    "checks:list", checks="the study's checks: id, claim, held (true | false | null), values, detail",
))  # fmt: skip

DOCUMENTS = {d.name: d for d in (EVAL_SUMMARY, MINING_SUMMARY, THRESHOLDS, HINT_AUDIT, LABEL_RELIABILITY, CPT_CORRELATION,
                                 GATE, HELDOUT, PLAN, TRAIN_LOG, TRAIN_SET, TRAINING_SUMMARY, BENCHMARK, COMPARISON, TRAINING_RESULT,
                                 SELECTED, SELECTION_SUMMARY, BENCH_RUN, BENCH_RESULTS, SUMMARY)}  # fmt: skip
