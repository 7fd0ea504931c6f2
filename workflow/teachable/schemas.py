"""Every table that crosses phases, declared once: its file (relative to ``results_dir``), its
columns, each column's kind and meaning, and who writes it. Writers validate against the
declaration (``io.write_table``), readers rely on it (``io.read_table``); the Snakefile's output
paths and the report's inputs take their names from here. "Where is column X defined and who
writes it?": here, in the table that declares it.

Kinds: ``str``, ``int``, ``float``, ``bool``, ``list[str]``, ``list[int]``, ``list[float]``, ``list[list[float]]``,
``str?`` (a string or null). An ``optional`` column may be absent (the outcome columns of one
Phase 1 estimator: a shard carries its estimator's). A family declares the columns it adds (``Family.episode_columns``, gathered in
``FAMILY_COLUMNS``): its tables may carry them; a generate-only student's U comes with ``SAMPLED_U``; no other
undeclared column is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .constants import FORMATS, PLACEBOS
from .envs.registry import episode_columns

KINDS = ("str", "str?", "int", "float", "bool", "list[str]", "list[int]", "list[float]", "list[list[float]]")
STUDENT_CONDITIONS = ("policy", "force", *PLACEBOS, *FORMATS)  # rolled out per snapshot
OUTCOME_CONDITIONS = (*STUDENT_CONDITIONS, "expert")  # y_<condition> of the label shards
PROB_NAMES = ("policy", "force", "expert", "base", *PLACEBOS, *FORMATS)  # p_<name> of the labels


@dataclass(frozen=True)
class Column:
    kind: str
    meaning: str
    optional: bool = False  # may be absent (a table still checks its kind where present)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}; expected one of {KINDS}")


@dataclass(frozen=True)
class Table:
    name: str
    path: str  # relative to results_dir; "{...}" marks a per-job part
    writer: str  # the module (and rule) that writes it
    columns: dict[str, Column] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def extend(self, name: str, path: str, writer: str, columns: dict[str, Column]) -> Table:
        """A table with this one's columns first, then ``columns``."""
        return Table(name, path, writer, {**self.columns, **columns})


def parse_spec(spec: str, meanings: dict[str, str], make, noun: str = "column") -> dict:
    """``make(kind, meaning)`` for each ``name:kind`` of ``spec``; every name needs a meaning."""
    out = {}
    for item in spec.split():
        name, kind = item.split(":")
        if name not in meanings:
            raise ValueError(f"{noun} {name!r} has no meaning")
        out[name] = make(kind, meanings[name])
    return out


def cols(spec: str, **meanings: str) -> dict[str, Column]:
    """Columns from ``"name:kind name:kind ..."``, each meaning given as a keyword."""
    return parse_spec(spec, meanings, Column)


# ------------------------------------------------------------------------------------ phase 0
ROLLOUT_STEPS = Table("rollout steps", "phase0/rollouts.parquet", "mining.experiment_rollouts (rule rollouts)", cols(
    "experiment:str episode_id:str task_id:str env_id:str seed:int step_idx:int instruction:str observation:str "
    "valid_actions:list[str] history:list[str] action:str source:str action_prob:float U:float reward:float "
    "done:bool episode_success:bool episode_return:float episode_length:int expert_error:str?",
    experiment="A (student episodes) or B (expert episodes)", episode_id="A-<seed>-<episode> / B-<seed>-0",
    task_id="env_id:seed", env_id="the environment id", seed="the task's seed",
    step_idx="index of the step in the episode", instruction="the mission", observation="the observation text",
    valid_actions="actions valid at the step", history="the recent actions before the step, oldest first",
    action="the action taken", source="student | expert | forced",
    action_prob="the student's probability of the action (NaN for the expert)",
    U="the student's entropy over valid actions (nats; NaN for the expert)", reward="the step's reward",
    done="the episode's last step", episode_success="the episode succeeded (the family's one definition)",
    episode_return="the episode's total reward", episode_length="steps of the episode",
    expert_error="ExpertError kind that ended an expert episode (impossible | planner), else null",
))  # fmt: skip

SNAPSHOTS = Table("snapshots", "phase0/{kind}_snapshots.parquet", "mining.mine_* (rule mine_snapshots)", cols(
    "snapshot_id:str experiment:str task_id:str env_id:str seed:int step_idx:int actions:list[str] instruction:str "
    "observation:str history:list[str] valid_actions:list[str] student_action:str? expert_action:str "
    "episode_id:str episode_length:int steps_left:int",
    snapshot_id="env_id/episode_id/t<step>", experiment="A (a student mistake) or B (expert-sampled)",
    task_id="env_id:seed", env_id="the environment id", seed="the task's seed", step_idx="the snapshot's step",
    actions="the action prefix that reaches the state (restore = reset(seed) + replay)",
    instruction="the mission", observation="the observation text", history="recent actions, oldest first",
    valid_actions="actions valid at the state",
    student_action="the student's action there (A); null for B until phase 1 fills the student's argmax",
    expert_action="the expert's action at the state", episode_id="the episode it comes from",
    episode_length="steps of that episode", steps_left="slack: the episode's step limit - step_idx",
))  # fmt: skip

# ------------------------------------------------------------------------------------ phase 1
SCORES = cols(
    "U:float U_norm:float top1_prob:float margin:float exp_H:float p_student_action:float",
    U="entropy (nats) of the student's distribution over valid actions", U_norm="U / log|A|",
    top1_prob="the most likely action's probability", margin="top-1 minus top-2 probability", exp_H="exp(U)",
    p_student_action="the student's probability of student_action",
)  # fmt: skip
ADVICE = cols(
    "suggested_action:str diagnosis:str error_type:str contrast_action:str contrast_diagnosis:str "
    "p_teacher_action:float",
    suggested_action="the teacher's action (one of valid_actions)",
    diagnosis="the teacher's hint: names or paraphrases no action", error_type="the teacher's category",
    contrast_action="the action the contrast calls worse (the student's, or its likeliest other)",
    contrast_diagnosis="the teacher's diagnosis of contrast_action", p_teacher_action="the student's p(suggested)",
)  # fmt: skip
# direct (phase1.estimator): y_<condition>; first_action: cell_actions, y_cells, pi_<c>, pi_rest_<c>
OUTCOMES = {f"y_{c}": Column("list[float]", f"0/1 success of every rollout of condition {c}, in rollout order"
                             + ("" if c == "expert" else " (direct estimator)"), optional=c != "expert")
            for c in OUTCOME_CONDITIONS}  # fmt: skip
OUTCOMES["cell_actions"] = Column("list[str]", "first_action: the first actions with a cell of rollouts (pi >= "
                                  "phase1.first_action_floor in some condition, the teacher's, each condition's "
                                  "most likely)", optional=True)  # fmt: skip
OUTCOMES["y_cells"] = Column("list[list[float]]", "first_action: per cell (cell_actions order), the 0/1 success of "
                             "every rollout whose first action is the cell's, then the unpatched student, in rollout "
                             "order (rollout i of every cell shares a stream; adaptive allocation: NaN past the cell's "
                             "alloc_n)", optional=True)  # fmt: skip
for _c in STUDENT_CONDITIONS:
    OUTCOMES[f"pi_{_c}"] = Column("list[float]", f"first_action: the student's first-step sampling probability of "
                                  f"each cell action under condition {_c}", optional=True)  # fmt: skip
    OUTCOMES[f"pi_rest_{_c}"] = Column("float", f"first_action: condition {_c}'s first-step mass on actions without "
                                       "a cell", optional=True)  # fmt: skip
OUTCOMES["expert_errors"] = Column("list[str]", "per expert rollout: its ExpertError kind, or null")
# phase1.allocation adaptive (first_action; teachable.allocation): y_cells NaN past a cell's last rollout, and the record
OUTCOMES.update({k: Column(kind, f"adaptive allocation: {meaning}", optional=True) for k, kind, meaning in (
    ("alloc_n", "list[int]", "rollouts per cell (cell_actions order; y_cells is NaN past them)"),
    ("alloc_rollouts", "int", "student rollouts drawn for the snapshot (the sum of alloc_n)"),
    ("alloc_rounds", "int", "looks (rounds of rollouts) before it stopped"),
    ("alloc_stop", "str", "decided (no interval straddles its boundary by more than phase1.epsilon) or n_max"),
    ("alloc_open", "list[str]", "the intervals still straddling their boundary where it stopped at n_max"),
)})  # fmt: skip

RAW_LABELS = SNAPSHOTS.extend("raw labels", "phase1/shards/labels_{shard}.parquet",
                              "labeling.label_snapshots (rule label_shard)", {**SCORES, **ADVICE, **OUTCOMES})
TEACHER_FAILURES = SNAPSHOTS.extend("teacher failures", "phase1/teacher_failures.parquet",
                                    "labeling.label_snapshots (rules label_shard, merge_labels)", {**SCORES, **cols(
    "failure_reason:str failure_kind:str", failure_reason="why the teacher gave no valid advice (after retries)",
    failure_kind="teachers.base.FAILURE_KINDS")})  # fmt: skip

_PROBS: dict[str, Column] = {}
for _p in PROB_NAMES:
    _PROBS[f"p_{_p}"] = Column("float", f"success probability of condition {_p} (base: = policy)")
    _PROBS[f"p_{_p}_n"] = Column("int", f"rollouts of p_{_p} (first_action: per cell; adaptive: the "
                                                  "fewest of its cells)")
for _p in PROB_NAMES:
    if _p != "expert":
        _PROBS[f"p_{_p}_min"] = Column("float", f"first_action: p_{_p}'s lower bound (the actions without a cell all "
                                       "failing: the covered sum)", optional=True)  # fmt: skip
        _PROBS[f"p_{_p}_max"] = Column("float", f"first_action: p_{_p}'s upper bound (they all succeed: covered + "
                                       "pi_rest)", optional=True)  # fmt: skip
_GAINS: dict[str, Column] = {}
for _m in FORMATS:
    _GAINS[f"gain_raw_{_m}"] = Column("float", f"p_{_m} - p_base")
    _GAINS[f"gain_raw_placebo_{_m}"] = Column("float", f"p_placebo_{_m} - p_base")
    _GAINS[f"gain_net_{_m}"] = Column("float", f"p_{_m} - p_placebo_{_m}")
LABELED = RAW_LABELS.extend("labeled snapshots", "phase1/labeled_snapshots.parquet",
                            "labeling.label_stats, quadrants.add_quadrants (rule merge_labels)", {
    **_PROBS, **cols(
        "p_expert_errors:int p_expert_impossible:int L_local:float L_upper:float",
        p_expert_errors="expert rollouts stopped by an ExpertError", p_expert_impossible="of them: mission impossible",
        L_local="p_force - p_policy", L_upper="p_expert - p_policy"),
    "n_cells": Column("int", "first_action: cells of rollouts (n_cells x p_policy_n student rollouts)", optional=True),
    **_GAINS, **cols(
        "ELP_net_naive:float route_net:str route_ties:list[str] ELP_net:float quadrant:str",
        ELP_net_naive="max over formats of gain_net (biased up by noise)",
        route_net="the format of the naive max (ties: demo, hint, contrast)", route_ties="every tied format",
        ELP_net="cross-fitted ELP: route on the even (odd) rollout indices, gain on the odd (even), both ways",
        quadrant="Q1..Q4 on (U, L_local), high = strictly above the threshold"),
})  # fmt: skip
_INTERVALS = {f"p_{p}_{b}": Column("float", f"Wilson {b} bound of p_{p} (first_action: the pi-weighted Wilson bound of "
                                     "the cells, + pi_rest for hi)") for p in PROB_NAMES for b in ("lo", "hi")}
LABEL_INTERVALS = Table("label intervals", "phase1/label_intervals.parquet",
                        "labeling.label_intervals, reliability.label_report (rule label_report)", {
    "snapshot_id": Column("str", "the labeled snapshot"), **_INTERVALS,
    "ELP_net_lo": Column("float", "percentile bootstrap lower bound of ELP_net (rollouts resampled)"),
    "ELP_net_hi": Column("float", "upper bound"),
    "L_local_lo": Column("float", "paired percentile bootstrap lower bound of L_local (rollout indices resampled)"),
    "L_local_hi": Column("float", "upper bound"),
    "quadrant_band": Column("str", "decided | uncertain: the L_local interval straddles the L threshold "
                                   "(the quadrant column is unchanged)"),
})  # fmt: skip
OUTCOME_PAIRING = Table("outcome pairing", "phase1/outcome_pairing.csv", "labeling.outcome_pairing (rule label_report)", cols(
    "pair:str a:str b:str rho:float rho_lo:float rho_hi:float n:int n_constant:int n_snapshots:int",
    pair="a~b (base: the unpatched student, p_policy's rollouts)", a="a condition", b="the condition paired with it",
    rho="mean over snapshots of the Pearson correlation, across rollout indices, of a's and b's 0/1 outcomes",
    rho_lo="Student-t bound over snapshots", rho_hi="bound", n="snapshots with a correlation",
    n_constant="snapshots left out: a or b constant over its rollouts", n_snapshots="labeled snapshots",
))  # fmt: skip

# ------------------------------------------------------------------------------------ phase 1B
MICRO_SHARD = Table("micro-training shard", "phase1b/shards/micro_{shard}.parquet",
                    "microtrain.run_micro_training (rule microtrain)", cols(
    "snapshot_id:str quadrant:str ELP_net:float route:str before_k:int before_n:int after_k:int after_n:int "
    "delta:float train_seconds:float p_target_before:float p_target_after:float drift_kl:float final_loss:float "
    "first_loss:float task_id:str ELP_net_naive:float p_policy:float L_local:float U:float",
    snapshot_id="the micro-trained snapshot", quadrant="its quadrant", ELP_net="its cross-fitted ELP",
    route="the format it was trained in (route_net)", before_k="successes before training", before_n="rollouts",
    after_k="successes after training", after_n="rollouts", delta="after - before success rate (utility)",
    train_seconds="LoRA training time", p_target_before="p(teacher action) before",
    p_target_after="p(teacher action) after", drift_kl="mean KL(base || tuned) at the other sampled snapshots",
    final_loss="last training loss", first_loss="first training loss", task_id="env_id:seed",
    ELP_net_naive="the naive max", p_policy="its p_policy", L_local="its L_local", U="its U",
) | cols(
    "y_before:list[float] y_after:list[float]", y_before="0/1 success of every rollout before, in rollout order",
    y_after="after, in rollout order (rollout i of both on one stream)",
))  # fmt: skip
MICRO_RESULTS = MICRO_SHARD.extend("micro-training results", "phase1b/micro_training_results.parquet",
                                   "microtrain.success_intervals (rule micro_merge)", cols(
    "before:float before_lo:float before_hi:float after:float after_lo:float after_hi:float",
    before="success rate before", before_lo="Wilson lower bound", before_hi="Wilson upper bound",
    after="success rate after", after_lo="Wilson lower bound", after_hi="Wilson upper bound",
))  # fmt: skip

# ------------------------------------------------------------------------------------ phase 3
EVAL_ROLLOUTS = Table("eval rollouts", "phase3/models/{model}/rollouts.parquet", "evaluation.eval_model (rule eval_model)", cols(
    "model_id:str suite:str env_id:str seed:int task_id:str snapshot_id:str? quadrant:str? rollout_idx:int "
    "success:bool return:float steps:int actions:list[str] n_invalid:int repeat_rate:float loop:bool "
    "wasted_steps:float invalid_rate:float expert_steps:float expert_error:str? rng_seed:int",
    model_id="base, a Phase 2 run or select_<method>", suite="overall (eval tasks from reset) | snapshot (held out)",
    env_id="the environment id", seed="the task's seed", task_id="env_id:seed",
    snapshot_id="the held-out snapshot (snapshot suite)", quadrant="its quadrant (snapshot suite)",
    rollout_idx="i: the same random stream for every model", success="the family's one definition",
    **{"return": "total reward"}, steps="steps taken (prefix excluded)", actions="the rollout's actions",
    n_invalid="invalid outputs (no-op steps)", repeat_rate="share of consecutive equal actions",
    loop="an n-gram (n = 2..4) repeated 3 times back to back", wasted_steps="steps beyond the expert's",
    invalid_rate="n_invalid / steps", expert_steps="the expert's steps from the same start (NaN: it failed)",
    expert_error="ExpertError kind of that expert rollout, else null",
    rng_seed="digest of the rollout's key (seeding.RolloutKey.seed): the same draws for every model",
))  # fmt: skip


# ------------------------------------------------------------------------------------ bench
# the bench's episodes: the overall suite's rows (evaluation.rollout_rows) on the bench split;
# no snapshot suite, so no suite / snapshot_id / quadrant; the task's instruction and archetype
BENCH_EPISODES = Table("bench episodes", "bench/{model_id}/bench_episodes.parquet",
                       "bench.bench_episodes (rule bench_rollouts)",
                       {**{k: c for k, c in EVAL_ROLLOUTS.columns.items() if k not in ("suite", "snapshot_id", "quadrant")},
                        "model_id": Column("str", "the benched model (base, a trained run, an API model)"),
                        "instruction": Column("str", "the task's instruction (e.g. a mission)"),
                        "archetype": Column("str?", "the task's kind (TextEnv.archetype, e.g. a mission's kind); "
                                            "null where the family has none")})  # fmt: skip


ALL_EVAL_ROLLOUTS = EVAL_ROLLOUTS.extend("all eval rollouts", "phase3/rollouts.parquet",
                                         "the models' eval rollouts merged (rule eval_summary)", {})


def _csv(name: str, path: str, spec: str, **meanings: str) -> Table:
    return Table(name, path, "evaluation_tables.summarize (rule eval_summary)", cols(spec, **meanings))


_N = {"n": "rollouts", "n_tasks": "tasks (clusters of the bootstrap)", "n_rollouts": "rollouts"}
PHASE3_TABLES = {
    "overall": _csv("overall results", "phase3/overall_task_results.csv",
        "model_id:str n:int success_rate:float success_lo:float success_hi:float mean_return:float return_lo:float "
        "return_hi:float mean_steps:float steps_lo:float steps_hi:float n_tasks:int n_rollouts:int gain_vs_base:float "
        "gain_lo:float gain_hi:float gain_paired:bool", model_id="the model", **_N,
        success_rate="success on eval tasks from reset", success_lo="cluster bootstrap bound",
        success_hi="cluster bootstrap bound", mean_return="mean return", return_lo="bound", return_hi="bound",
        mean_steps="mean steps", steps_lo="bound", steps_hi="bound", gain_vs_base="success - base's",
        gain_lo="paired cluster bootstrap bound", gain_hi="bound", gain_paired="paired with the base by task"),
    "per_quadrant": _csv("per-quadrant results", "phase3/per_quadrant_results.csv",
        "model_id:str quadrant:str n:int success_rate:float lo:float hi:float n_snapshots:int n_tasks:int "
        "n_rollouts:int",
        model_id="the model", quadrant="the held-out snapshots' quadrant", **_N,
        success_rate="success from those snapshots", lo="bootstrap over their tasks", hi="bound",
        n_snapshots="snapshots"),
    "transfer": _csv("transfer matrix", "phase3/transfer_matrix.csv",
        "trained_on:str evaluated_on:str model_id:str delta_success:float lo:float hi:float n:int "
        "base_success:float model_success:float n_snapshots:int n_tasks:int n_rollouts:int",
        trained_on="the run's quadrant (or the run id)", evaluated_on="the held-out snapshots' quadrant",
        model_id="the run", delta_success="model - base success", lo="paired bootstrap over their tasks",
        hi="bound", **_N, base_success="the base's", model_success="the model's", n_snapshots="snapshots"),
    "retention": _csv("retention results", "phase3/retention_results.csv",
        "model_id:str n_base_solved_tasks:int base_success:float model_success:float drop:float drop_lo:float "
        "drop_hi:float drop_sim_lo:float drop_sim_hi:float n:int base_lo:float base_hi:float model_lo:float "
        "model_hi:float n_tasks:int n_rollouts:int rollouts_per_task:int selection_rollouts:int n_family:int "
        "sim_confidence:float reason:str?",
        model_id="the model", n_base_solved_tasks="tasks the base solves on its first half of rollouts",
        base_success="on the other half", model_success="on the same half", drop="base - model",
        drop_lo="paired bootstrap bound", drop_hi="bound",
        drop_sim_lo="simultaneous bound (Bonferroni over n_family)", drop_sim_hi="simultaneous bound", **_N, base_lo="bound", base_hi="bound", model_lo="bound",
        model_hi="bound", rollouts_per_task="phase3.rollouts_per_task",
        selection_rollouts="rollouts per task that chose the base-solved tasks",
        n_family="models (other than the base) the simultaneous intervals cover",
        sim_confidence="each simultaneous interval's confidence", reason="why undefined, if so"),
    "stuckness": _csv("stuckness results", "phase3/stuckness_results.csv",
        "model_id:str n:int repeat_rate:float repeat_rate_lo:float repeat_rate_hi:float n_repeat:int "
        "loop_rate:float loop_rate_lo:float loop_rate_hi:float wasted_steps:float wasted_steps_lo:float "
        "wasted_steps_hi:float n_wasted:int invalid_rate:float invalid_rate_lo:float invalid_rate_hi:float "
        "n_tasks:int n_rollouts:int", model_id="the model", **_N, repeat_rate="mean repeat rate",
        repeat_rate_lo="bound", repeat_rate_hi="bound", n_repeat="rollouts with a repeat rate (>= 2 actions)",
        loop_rate="share of rollouts with a loop", loop_rate_lo="bound", loop_rate_hi="bound",
        wasted_steps="mean wasted steps", wasted_steps_lo="bound", wasted_steps_hi="bound",
        n_wasted="rollouts with a defined wasted_steps", invalid_rate="mean invalid rate", invalid_rate_lo="bound",
        invalid_rate_hi="bound"),
    "family": _csv("family metrics", "phase3/family_metrics.csv",
        "model_id:str metric:str value:float lo:float hi:float n:int n_tasks:int",
        model_id="the model", metric="the family's metrics (Family.metrics), e.g. a progression, a score, "
        "success:<achievement> (rate); no rows for a family that declares none", value="on the overall suite",
        lo="cluster bootstrap bound over tasks", hi="bound", n="rollouts", n_tasks="tasks (clusters)"),
}  # fmt: skip

TABLES = {t.name: t for t in (ROLLOUT_STEPS, SNAPSHOTS, RAW_LABELS, TEACHER_FAILURES, LABELED, LABEL_INTERVALS,
                              OUTCOME_PAIRING,
                              MICRO_SHARD, MICRO_RESULTS, EVAL_ROLLOUTS, ALL_EVAL_ROLLOUTS, BENCH_EPISODES,
                              *PHASE3_TABLES.values())}  # fmt: skip

# Columns a family adds to a table (family -> table name -> {column: Column}): the values of
# ``TextEnv.episode_values`` at the end of each rollout, as the family declares them
# (``registry.episode_columns``), in the tables below (phase 0 prefixes them ``episode_``); the
# only undeclared columns a validated table may carry.
EPISODE_TABLES = {ROLLOUT_STEPS.name: "episode_", EVAL_ROLLOUTS.name: "", ALL_EVAL_ROLLOUTS.name: "",
                  BENCH_EPISODES.name: ""}  # fmt: skip
FAMILY_COLUMNS: dict[str, dict[str, dict[str, Column]]] = {
    family: {table: {prefix + k: Column(*c) for k, c in columns.items()} for table, prefix in EPISODE_TABLES.items()}
    for family, columns in episode_columns().items()
}  # fmt: skip


# The columns beside U where a generate-only student estimated it (``policies.generated_u``);
# a scoring student's tables do not carry them.
SAMPLED_U = cols(
    "U_estimator:str? U_k:int U_logprob_mass:float U_logprob_split:float",
    U_estimator="how a generate-only student's U was estimated: samples (the entropy of k parsed samples) or "
    "logprobs (from the server's top token logprobs of its answers); null where not scored",
    U_k="answers at the state behind U: parsed samples (samples) or answers whose token logprobs were merged (logprobs)",
    U_logprob_mass="the probability the token logprobs assigned to valid actions before normalising (logprobs; "
    "at least student.openai.min_logprob_mass); null for samples",
    U_logprob_split="the probability of answer prefixes shared by several valid actions that no answer went on "
    "with, split evenly among those actions before normalising (logprobs: an assumption, not observed); null for samples",
)  # fmt: skip
SAMPLED_U_TABLES = (ROLLOUT_STEPS.name, RAW_LABELS.name, TEACHER_FAILURES.name, LABELED.name)


def family_columns(table: Table) -> dict[str, Column]:
    """The optional columns ``table`` may carry: its families' (``FAMILY_COLUMNS``) and, for the
    tables with U, ``SAMPLED_U``."""
    out = {c: k for fam in FAMILY_COLUMNS.values() for c, k in fam.get(table.name, {}).items()}
    return {**out, **SAMPLED_U} if table.name in SAMPLED_U_TABLES else out


def _kind_of(value: Any) -> str | None:
    """The kind a (non-null) value fits, coarsely; None for a value of no declared kind."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "list"
    return None


def _null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _fits(kind: str, seen: str | None) -> bool:
    if seen is None:
        return False
    if kind.startswith("list"):
        return seen == "list"
    if kind == "float":
        return seen in ("float", "int")
    return seen == kind.rstrip("?")


def check_frame(df, table: Table, where: str) -> None:
    """ValueError naming ``where`` (a file) when ``df`` lacks a declared (not optional) column, carries an
    undeclared one, or a column's first non-null value is not of its declared kind."""
    declared = {**table.columns, **family_columns(table)}
    missing = [c for c, col in table.columns.items() if c not in df.columns and not col.optional]
    extra = [c for c in df.columns if c not in declared]
    if missing or extra:
        raise ValueError(f"{where} ({table.name}): missing columns {missing}, undeclared columns {extra} "
                         f"(schemas.{table.name!r}; a file from another version? re-run the rule that writes it)")  # fmt: skip
    for c in df.columns:
        s = df[c][~df[c].map(_null)]
        if len(s) and not _fits(declared[c].kind, _kind_of(s.iloc[0])):
            raise ValueError(f"{where} ({table.name}): column {c!r} holds {type(s.iloc[0]).__name__}, declared "
                             f"{declared[c].kind}")  # fmt: skip
