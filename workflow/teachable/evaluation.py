"""Phase 3: the evaluation suite (base model + every trained run), one row per eval rollout.

Suites (all rollouts of one model go through ONE ``run_rollouts`` call, lockstep-batched):

- ``overall``: the first ``phase3.eval_tasks`` seeds of the *eval* split, each played
  ``phase3.rollouts_per_task`` times by the student from reset.
- ``snapshot``: every held-out snapshot (Phase 2 never trains on them), played
  ``phase3.rollouts_per_snapshot`` times by the student from the restored state
  (reset(seed) + replay of the snapshot's action prefix). Gives per-quadrant success.
- one expert rollout per distinct start state (the oracle and the env are deterministic), used
  only as the reference length of ``wasted_steps``.

Common random numbers: rollout ``i`` of a unit (task or snapshot) draws with
``rollout_key(seed, "phase3/<suite>", unit_id, i)`` (step t: (unit, i, t)) whatever the model, so
every model sees the same random draws; the same model evaluated twice gives identical rows.
``rng_seed`` is the key's digest.

Per-rollout definitions (``actions`` are the rollout's own actions; the prefix of a snapshot is
not part of them):

- ``repeat_rate``: among the rollout's consecutive action pairs (a[t-1], a[t]), t = 1..T-1, the
  fraction with a[t] == a[t-1]; NaN for a rollout of fewer than 2 actions.
- ``loop``: True iff for some n in 2..4 the action sequence contains an n-gram repeated at least
  3 times back to back (a tandem repeat: a[i:i+n] == a[i+n:i+2n] == a[i+2n:i+3n]). Examples:
  L R L R L R (n=2), L L F L L F L L F (n=3). A single action repeated 6+ times also counts
  (as the 2-gram (a, a) three times); 3-5 repeats of a single action do not (that is what
  ``repeat_rate`` measures). Occurrences that are not back to back never count: a long but
  purposeful path naturally reuses short action patterns.
- ``wasted_steps``: for a success, max(0, steps - expert_steps), where expert_steps is the length
  of the oracle expert's successful rollout from the same start state (a planner's
  near-shortest plan, not a proven optimum); for a failure, every step taken (none of them
  achieved the goal). NaN for a success from a start where the expert itself fails.
- ``expert_error``: the kind of ``ExpertError`` that stopped that reference expert rollout
  ("impossible" / "planner"), None when the expert could act throughout; counted in the summary.
- ``n_invalid`` / ``invalid_rate``: actions equal to ``INVALID_ACTION`` (an unparseable model
  output that consumed a no-op step), over the steps taken. A scoring student picks among the
  valid actions, so this is 0 by construction for the ``hf`` backend; generating backends
  (vLLM / OpenAI-compatible) will produce them.

The tables over these rows (overall, per quadrant, transfer, retention, stuckness, the family's
metrics): ``teachable.evaluation_tables``.
"""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .envs.base import INVALID_ACTION
from .rollouts import EXPERT, STUDENT, RolloutResult, RolloutSpec, study_rollouts
from .schemas import EVAL_ROLLOUTS
from .seeding import rollout_key
from .splits import check_disjoint, first_seeds, split_seeds, task_id

log = logging.getLogger(__name__)

SUITES = ("overall", "snapshot")
LOOP_NGRAMS = (2, 3, 4)
LOOP_REPEATS = 3

ROLLOUT_COLUMNS = EVAL_ROLLOUTS.names  # declared (with their meanings) in teachable.schemas


# ------------------------------------------------------------------------------------ seeds
def eval_seeds(cfg: dict) -> list[int]:
    """The eval-split seeds of the overall suite: the first ``phase3.eval_tasks`` of the split."""
    return first_seeds(cfg["splits"], "eval", cfg["phase3"]["eval_tasks"], "phase3.eval_tasks")


def train_seed_sets(cfg: dict) -> dict[str, set[int]]:
    """Every seed list training may have used, by the config key it comes from: the train split
    (student init demos, phase 0 A/B and so phase 1/2 snapshots all draw from its head) and an
    explicit ``student.init.train_seeds`` list when a config carries one."""
    out = {"splits.train": set(split_seeds(cfg["splits"], "train"))}
    init = (cfg.get("student") or {}).get("init") or {}
    if init.get("train_seeds") is not None:
        out["student.init.train_seeds"] = {int(s) for s in init["train_seeds"]}
    return out


def check_eval_disjoint(cfg: dict) -> None:
    """Raise ValueError (naming both splits) if an eval seed is also a train seed.

    Two checks: the configured ranges (``splits.check_disjoint``: train / eval / bench pairwise
    disjoint) and the actual seed lists: the eval seeds the overall suite plays vs every train
    seed list (``train_seed_sets``)."""
    check_disjoint(cfg["splits"])
    ev = split_seeds(cfg["splits"], "eval")
    if "phase3" in cfg and "eval_tasks" in cfg["phase3"]:
        ev = eval_seeds(cfg)
    ev_set = set(ev)
    for name, train in train_seed_sets(cfg).items():
        both = sorted(ev_set & train)
        if both:
            raise ValueError(
                f"eval seeds (splits.eval, {len(ev)} used by phase3) and train seeds ({name}) share "
                f"{len(both)} seed(s), e.g. {both[:5]}: evaluation tasks must never be training tasks"
            )


# ------------------------------------------------------------------------------------ per-rollout metrics
def repeat_rate(actions: Sequence[str]) -> float:
    """Fraction of consecutive action pairs that repeat the previous action; NaN under 2 actions."""
    if len(actions) < 2:
        return float("nan")
    return sum(a == b for a, b in zip(actions[:-1], actions[1:])) / (len(actions) - 1)


def has_loop(actions: Sequence[str], ngrams: Iterable[int] = LOOP_NGRAMS, repeats: int = LOOP_REPEATS) -> bool:
    """True iff some n-gram (n in ``ngrams``) occurs ``repeats`` times back to back."""
    a = list(actions)
    for n in ngrams:
        span = n * repeats
        for i in range(len(a) - span + 1):
            g = a[i : i + n]
            if all(a[i + k * n : i + (k + 1) * n] == g for k in range(1, repeats)):
                return True
    return False


def wasted_steps(success: bool, steps: int, expert_steps: float) -> float:
    """Steps beyond the expert's from the same start (success), or every step (failure)."""
    if not success:
        return float(steps)
    if expert_steps is None or not np.isfinite(expert_steps):
        return float("nan")
    return float(max(0, steps - int(expert_steps)))


def rollout_metrics(actions: Sequence[str], success: bool, expert_steps: float) -> dict:
    n_inv = sum(a == INVALID_ACTION for a in actions)
    steps = len(actions)
    return {
        "n_invalid": int(n_inv),
        "repeat_rate": repeat_rate(actions),
        "loop": has_loop(actions),
        "wasted_steps": wasted_steps(success, steps, expert_steps),
        "invalid_rate": n_inv / steps if steps else float("nan"),
    }


# ------------------------------------------------------------------------------------ eval rollouts
HELDOUT_REQUIRED = ("snapshot_id", "env_id", "seed", "actions", "quadrant")


def eval_specs(heldout: pd.DataFrame, cfg: dict) -> tuple[list[RolloutSpec], list[dict]]:
    """Student specs of both suites (with their row metadata) followed by one expert spec per
    distinct start state. Model-independent: the same list for every model."""
    p3, seed0, env_id = cfg["phase3"], cfg["seed"], cfg["env"]["id"]
    if heldout is None or len(heldout) == 0:  # no held-out snapshots: the overall suite only
        heldout = pd.DataFrame(columns=list(HELDOUT_REQUIRED))
    missing = [c for c in HELDOUT_REQUIRED if c not in heldout.columns]
    if missing:
        raise ValueError(f"held-out snapshots lack columns {missing} (expected labeled snapshots with a quadrant)")
    if heldout["snapshot_id"].duplicated().any():
        dup = heldout.loc[heldout["snapshot_id"].duplicated(), "snapshot_id"].iloc[0]
        raise ValueError(f"held-out snapshots repeat snapshot_id {dup!r}")
    specs: list[RolloutSpec] = []
    meta: list[dict] = []
    for s in eval_seeds(cfg):
        tid = task_id(env_id, s)
        for i in range(int(p3["rollouts_per_task"])):
            rk = rollout_key(seed0, "phase3/overall", tid, i)
            specs.append(RolloutSpec(env_id, int(s), actor=STUDENT, key=("overall", tid, i), stream=rk))
            meta.append(dict(suite="overall", env_id=env_id, seed=int(s), task_id=tid, snapshot_id=None,
                             quadrant=None, rollout_idx=i, rng_seed=rk.seed, start=(env_id, int(s), ())))
    for _, r in heldout.sort_values("snapshot_id").iterrows():
        sid, e, s, prefix = str(r["snapshot_id"]), str(r["env_id"]), int(r["seed"]), tuple(r["actions"])
        tid = str(r["task_id"]) if "task_id" in heldout.columns else task_id(e, s)
        for i in range(int(p3["rollouts_per_snapshot"])):
            rk = rollout_key(seed0, "phase3/snapshot", sid, i)
            specs.append(RolloutSpec(e, s, prefix=prefix, actor=STUDENT, key=("snapshot", sid, i), stream=rk))
            meta.append(dict(suite="snapshot", env_id=e, seed=s, task_id=tid, snapshot_id=sid,
                             quadrant=str(r["quadrant"]), rollout_idx=i, rng_seed=rk.seed, start=(e, s, prefix)))
    starts = list(dict.fromkeys(m["start"] for m in meta))
    for e, s, prefix in starts:
        specs.append(RolloutSpec(e, s, prefix=prefix, actor=EXPERT, key=("expert", (e, s, prefix))))
    return specs, meta


def rollout_rows(model_id: str, results: list[RolloutResult], meta: list[dict]) -> pd.DataFrame:
    """One row per student rollout; the trailing expert results give ``expert_steps``."""
    n = len(meta)
    expert = {r.spec.key[1]: r for r in results[n:]}
    rows = []
    for r, m in zip(results[:n], meta):
        e = expert[m["start"]]
        ex = float(e.steps) if e.success else float("nan")
        row = {k: v for k, v in m.items() if k != "start"}
        row.update(
            model_id=model_id, success=bool(r.success), steps=int(r.steps), actions=list(r.actions),
            expert_steps=ex, expert_error=e.expert_error, **rollout_metrics(r.actions, r.success, ex),
        )
        row["return"] = float(r.total_reward)
        row.update(r.values)  # the family's columns (schemas.FAMILY_COLUMNS)
        rows.append(row)
    family = list(dict.fromkeys(k for r in results[:n] for k in r.values))
    df = pd.DataFrame(rows, columns=[*ROLLOUT_COLUMNS, *family])
    return df.astype({"seed": "int64", "rollout_idx": "int64", "steps": "int64", "n_invalid": "int64",
                      "success": bool, "loop": bool})


def eval_model(model_id: str, model_dir: str, adapter_dir: str | None, heldout: pd.DataFrame, cfg: dict,
               progress: bool = True) -> pd.DataFrame:
    """Every phase 3 rollout of one model (base: ``adapter_dir=None``), one row each
    (``ROLLOUT_COLUMNS``; definitions in the module docstring). Raises if an eval seed is a
    train seed."""
    from .policies import make_student

    check_eval_disjoint(cfg)
    specs, meta = eval_specs(heldout, cfg)
    policy = make_student(cfg["student"], model_dir, adapter_dir, merge_adapter=True, env_id=cfg["env"]["id"])
    try:
        results = study_rollouts(specs, policy, cfg, desc=f"phase3 eval {model_id}", progress=progress)
    finally:
        policy.close()
    df = rollout_rows(model_id, results, meta)
    ov = df[df["suite"] == "overall"]
    log.info("%s: overall success %.3f over %d rollouts; snapshot success %s over %d rollouts", model_id,
             ov["success"].mean() if len(ov) else float("nan"), len(ov),
             f"{df.loc[df['suite'] == 'snapshot', 'success'].mean():.3f}" if (df["suite"] == "snapshot").any() else "n/a",
             int((df["suite"] == "snapshot").sum()))
    return df
