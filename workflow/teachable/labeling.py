"""Phase 1: per-snapshot labels, every number from real rollouts.

- U: entropy (nats) of the student's distribution over valid actions (+ normalised entropy,
  top-1 probability, top1-top2 margin, exp(H)).
- Leverage: p_policy (student from the snapshot), p_force (teacher's action forced for one step,
  then the student), p_expert (expert throughout); L_local = p_force - p_policy,
  L_upper = p_expert - p_policy. Expert rollouts that end because the expert could not act are
  counted (``p_expert_errors``; ``p_expert_impossible`` of them because the mission became
  impossible) and are failures.
- CPT: student rollouts with a patch in context at the snapshot step only (``teachable.rollouts``).
  ``base`` (no patch) is the same process as p_policy, so its rollouts are shared:
  p_base == p_policy by construction. Each format m has its own placebo (``teachable.patches``);
  gain_raw[m] = p_m - p_base, gain_net[m] = p_m - p_placebo_m.
- Common random numbers: rollout i of every student condition of a snapshot (policy, force,
  the placebos and the formats) has one key, ``rollout_key(seed, "phase1", snapshot, i)``, and
  its step t draws from (snapshot, i, t) (``seeding.RolloutKey``), so the conditions stay paired
  whatever a step consumes (a forced step draws nothing). ``outcome_pairing`` measures it.
- Estimators (``phase1.estimator``, resolved by ``resolve_estimator``): ``direct`` rolls out every
  student condition (``y_<condition>``). ``first_action`` uses that a patch or a forced action acts
  at the snapshot step only: p_c = sum_a pi_c(a) q(a), pi_c the student's exact first-step
  sampling distribution under condition c (``pi_<c>``, one forward pass with c's patch) and q(a)
  the success of rollouts whose first action is forced to a, then the unpatched student: one cell
  per first action with some pi_c(a) >= ``phase1.first_action_floor`` (plus the teacher's action
  and every condition's most likely one), ``y_cells`` (cells x rollouts, aligned with
  ``cell_actions``), shared by every condition; force = q(teacher's action). The mass without a
  cell (``pi_rest_<c>``) bounds p_c in [p_<c>_min, p_<c>_max] = [covered, covered + rest]; the
  point estimate p_<c> assumes the uncovered actions succeed as the covered ones do on average
  (covered / (1 - rest)). Every label is computed from ``Rollouts``: units x rollout index and
  each condition's weights on the units (direct: one unit per condition; first_action: one per
  cell, weights pi_c / sum pi_c), a condition's estimate the weighted mean of its units' success
  rates, rollout i of every unit sharing a stream. A probability's interval: Wilson (direct); the
  pi_c-weighted Wilson bounds of the cells, the rest added to the upper one (first_action).
- Allocation (``phase1.allocation``, ``resolve_allocation``): fixed, n_rollouts per condition or
  cell; adaptive (first_action only), the cells' counts set by ``teachable.allocation`` (every
  cell from n0 up to n_max, its rollouts indices 0..n-1): ``y_cells`` is NaN past a cell's last
  rollout and every statistic takes each cell's rate over the rollouts it has (the per-index
  values of a condition exist only where all its cells have that index: ``outcome_vectors``,
  the pairing); the allocation's record is in ``alloc_*``.
- ELP_net is cross-fitted (``crossfit_elp``): the route is chosen on the even rollout indices,
  its gain_net measured on the odd ones, halves swapped and the two estimates averaged, so the
  max over formats is not biased upward by noise (even / odd, not first / second half: a cell that
  adaptive allocation stopped early has both halves). ``ELP_net_lo`` / ``ELP_net_hi``: percentile
  bootstrap over rollout indices, stratified by half and by the cells that have the index
  (``Rollouts.strata``: no rollout chooses the route and measures it too, every cell keeps its
  count; rollout i of every unit resampled together, as they share a stream). The naive max over
  formats of the full-sample gains is kept as ``ELP_net_naive``; ``route_net`` is the
  full-sample argmax (gains within ``ROUTE_TIE`` tied, ties broken in the fixed order demo, hint, contrast; all tied formats in
  ``route_ties``) and is the format Phase 1B trains.
- Quadrants on (U, L_local) are assigned when the shards merge (``merge_labels``, with
  ``teachable.quadrants``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from .constants import FORMATS, PLACEBOS
from .patches import make_patch
from .envs.action_space import ActionSpace
from .envs.registry import StateSpaces, env_class, free_form, parse_action
from .config import section
from .policies import Context, StudentPolicy
from .policies.base import Parser, StateReader, sampling_probs
from .policies.generated_u import u_columns
from .allocation import allocate_rows
from .quadrants import add_quadrants
from .rollouts import EXPERT, RolloutResult, RolloutSpec, first_contexts, study_rollouts
from .schemas import OUTCOME_CONDITIONS, PROB_NAMES, RAW_LABELS, STUDENT_CONDITIONS
from .seeding import derive_seed, rollout_key
from .stats import entropy_features, mean_interval, proportion, wilson_interval
from .teachers.base import AdviceRequest, Teacher

log = logging.getLogger(__name__)

DIRECT, FIRST_ACTION = "direct", "first_action"  # the resolved values of phase1.estimator
ADAPTIVE = "adaptive"  # phase1.allocation's adaptive design (``teachable.allocation``)
CELL = "cell"  # the condition of a first-action cell's rollouts in their keys: (snapshot, (CELL, j), i)


def snapshot_context(row, patch: str | None = None) -> Context:
    return Context(
        instruction=row["instruction"],
        observation=row["observation"],
        history=tuple(row["history"]),
        valid_actions=tuple(row["valid_actions"]),
        patch=patch,
    )


def snapshot_parsers(rows, spaces: StateSpaces | None = None) -> list[Parser]:
    """The family's lenient parser at each snapshot row: it reads the student's answers. At a
    free-form family's state (``registry.free_form``) a ``StateReader``: the parse (with its
    repairs, ``TextEnv.read_action``) and the key of an action's effect there (the space bound at
    the row's state, ``candidates_of``'s ``spaces``), as the rollouts read it."""
    out: list[Parser] = []
    for row in rows:
        env_id = row["env_id"]
        if free_form(env_id):
            key = (spaces or StateSpaces()).of_row(row).key
            out.append(StateReader(lambda text, cls=env_class(env_id): cls.read_action(text, "lenient"), key))
        else:
            out.append(partial(parse_action, env_id))
    return out


def score_snapshots(snaps: pd.DataFrame, student: StudentPolicy, spaces: StateSpaces | None = None) -> pd.DataFrame:
    """Uncertainty features of the student's distribution at each snapshot
    (``StudentPolicy.distribution``, answers read by the family's parser, ``snapshot_parsers``
    with ``spaces``); fills a missing student_action (Experiment B) with the student's most likely
    action at that state. Where the distribution is estimated (``exact_u`` false: a generate-only
    student's ``u_source``) each row says how (``generated_u.u_columns``), and a snapshot whose
    estimate has no distribution (none of k samples a valid action) is left out (counted in the
    log). A free-form state's distribution is over the keys its samples had
    (``ActionDistribution.actions``: one action per key; ``score_rows``' supports)."""
    ctxs = [snapshot_context(r) for _, r in snaps.iterrows()]
    dists = student.distribution(ctxs, snapshot_parsers((r for _, r in snaps.iterrows()), spaces))
    if student.exact_u:
        return score_rows(snaps, ctxs, [d.logprobs for d in dists], [d.actions for d in dists], spaces)
    keep = np.array([not np.isnan(d.logprobs).any() for d in dists], dtype=bool)
    log.info("U of %d snapshots: %d answers invalid of %d", len(snaps), sum(d.n_invalid for d in dists),
             sum(d.k for d in dists))  # fmt: skip
    if not keep.all():
        log.warning("%d of %d snapshots left out: none of their %d samples parsed to a valid action",
                    int((~keep).sum()), len(snaps), max(d.k for d, k in zip(dists, keep) if not k))  # fmt: skip
    kept = [d for d, k in zip(dists, keep) if k]
    out = score_rows(snaps.loc[keep], [c for c, k in zip(ctxs, keep) if k], [d.logprobs for d in kept],
                     [d.actions for d in kept], spaces)  # fmt: skip
    cols = pd.DataFrame([u_columns(d) for d in kept], index=out.index, columns=list(u_columns(None)))
    for col, values in cols.items():
        out[col] = values
    return out


SCORE_COLUMNS = (*entropy_features(np.zeros(1)), "student_action", "p_student_action", "_logprobs")  # score_rows'


def score_rows(snaps: pd.DataFrame, ctxs: list[Context], lps: list[np.ndarray], supports=None,
               spaces: StateSpaces | None = None) -> pd.DataFrame:  # fmt: skip
    """``snaps`` with the uncertainty features of the student's distribution ``lps`` (one per
    row), over the row's valid actions, or where ``supports`` gives a row's (a free-form state's:
    one action per key sampled) over those, kept as ``_support``; there the student's action has
    its key's probability (``action_prob`` at the row's state, ``spaces``)."""
    rows = []
    for (_, r), ctx, lp, sup in zip(snaps.iterrows(), ctxs, lps, supports or [None] * len(lps), strict=True):
        feats = entropy_features(lp)
        if sup is None:
            sa = r["student_action"] if isinstance(r["student_action"], str) else ctx.valid_actions[int(np.argmax(lp))]
            # an unparseable answer (INVALID_ACTION, a generate-only student) has no probability
            # in the distribution over valid actions
            p = float(np.exp(lp[ctx.valid_actions.index(sa)])) if sa in ctx.valid_actions else np.nan
        else:
            sa = r["student_action"] if isinstance(r["student_action"], str) else sup[int(np.argmax(lp))]
            space = (spaces or StateSpaces()).of_row(r)
            p = action_prob(sa, sup, lp, space) if space.is_valid(sa) else np.nan
            feats["_support"] = tuple(sup)
        feats["student_action"] = sa
        feats["p_student_action"] = p
        feats["_logprobs"] = lp
        rows.append(feats)
    out = snaps.copy()
    # no row (every snapshot left out): the columns still, so the tables of an empty shard hold
    extra = pd.DataFrame(rows, index=snaps.index, columns=None if rows else SCORE_COLUMNS)
    for c in extra.columns:
        out[c] = extra[c]
    return out


def candidates_of(row, spaces: StateSpaces | None = None) -> tuple[ActionSpace, tuple[str, ...]]:
    """The action space at a snapshot's state and the state's candidate actions (its menu,
    ``valid_actions``, as the space offers it; the student's distribution is over them). The
    space is bound at the row's state where the family's depends on it (``spaces``: the run's
    ``registry.StateSpaces``; None: one without the run's env config, enough for a family whose
    space does not)."""
    space = (spaces or StateSpaces()).of_row(row)
    return space, space.candidate_actions(row["valid_actions"])


def action_prob(action: str, support, logprobs, space: ActionSpace) -> float:
    """The student's probability of ``action``'s effect: that of the action of ``support`` (the
    actions ``logprobs`` is over, one per key: the candidates of a finite family, the keys sampled
    at a free-form state) with its key (``space.same``); 0 where none has it."""
    idx = [j for j, a in enumerate(support) if a == action or space.same(a, action)]
    return float(np.exp(np.logaddexp.reduce(np.asarray(logprobs)[idx]))) if idx else 0.0


def support_of(row):
    """The actions a scored row's ``_logprobs`` is over where they are not its candidates (a
    free-form state's ``_support``, ``score_rows``), else None."""
    sup = row.get("_support") if hasattr(row, "get") else None
    return tuple(sup) if isinstance(sup, (tuple, list, np.ndarray)) else None


def contrast_action(student_action: str, teacher_action: str, candidates, logprobs, space: ActionSpace,
                    support=None) -> str:  # fmt: skip
    """The action a contrast patch calls worse than the teacher's: the student's own action where
    it may stand at the state (``space.allows``: a candidate; any valid action of a free-form
    family) with another effect than the teacher's (``space.same``); else (the teacher's effect,
    or an unparseable answer of a generate-only student) the student's most likely action of
    another effect (``logprobs`` over ``support``, one action per key; default the candidates:
    the most sampled other key), ties in their order, then the first candidate of another effect."""
    if isinstance(student_action, str) and space.allows(student_action, candidates) \
            and not space.same(student_action, teacher_action):
        return student_action
    support = candidates if support is None else support
    ranked = [support[i] for i in np.argsort(-np.asarray(logprobs), kind="stable")]
    return next(a for a in (*ranked, *candidates) if not space.same(a, teacher_action))


def condition_patches(row, advice, contrast_diagnosis: str | None = None,
                      spaces: StateSpaces | None = None) -> dict[str, str | None]:  # fmt: skip
    """The patch of every student condition of one snapshot (None: no patch). The contrast (and
    its placebo) uses ``contrast_diagnosis``, the teacher's diagnosis of the action the contrast
    calls worse, when that is not the student's own action. ``spaces``: ``candidates_of``'s."""
    space, cands = candidates_of(row, spaces)
    worse = contrast_action(row["student_action"], advice.suggested_action, cands, row["_logprobs"], space,
                            support_of(row))  # fmt: skip
    return _patches(cands, advice.suggested_action, worse, advice.diagnosis, contrast_diagnosis or advice.diagnosis)


def labeled_patches(row, spaces: StateSpaces | None = None) -> dict[str, str | None]:
    """The patch of every student condition of a labeled row, rebuilt from the advice it stores
    (``suggested_action``, ``contrast_action``, ``diagnosis``, ``contrast_diagnosis``): the
    patches ``condition_patches`` built for its Phase 1 rollouts (``spaces``: ``candidates_of``'s)."""
    return _patches(candidates_of(row, spaces)[1], row["suggested_action"], row["contrast_action"], row["diagnosis"],
                    row["contrast_diagnosis"])  # fmt: skip


def _patches(cands, teacher_action: str, worse: str, diagnosis: str, contrast_diagnosis: str) -> dict[str, str | None]:
    patches: dict[str, str | None] = {"policy": None, "force": None}
    for m in (*PLACEBOS, *FORMATS):
        patches[m] = make_patch(m, teacher_action=teacher_action, student_action=worse, candidates=cands,
                                diagnosis=contrast_diagnosis if m.endswith("contrast") else diagnosis)  # fmt: skip
    return patches


def condition_specs(row, advice, cfg: dict, contrast_diagnosis: str | None = None,
                    cells: list[str] | None = None, spaces: StateSpaces | None = None) -> list[RolloutSpec]:  # fmt: skip
    """All rollouts of one snapshot: for i < n_rollouts, every student condition (direct) or,
    given ``cells`` (first_action), every first-action cell (its action forced, then the
    unpatched student; key (snapshot, (CELL, j), i)), with the key
    rollout_key(seed, "phase1", snapshot_id, i) (common random numbers); then the expert's.
    ``spaces``: the states' action spaces (default: the config's ``env``'s, where it has one)."""
    p1, seed = cfg["phase1"], cfg["seed"]
    sid, prefix = row["snapshot_id"], tuple(row["actions"])
    common = dict(env_id=row["env_id"], seed=int(row["seed"]), prefix=prefix)
    spaces = spaces or (StateSpaces.of_config(cfg["env"]) if "env" in cfg else None)
    patches = condition_patches(row, advice, contrast_diagnosis, spaces) if cells is None else {}
    specs = []
    for i in range(p1["n_rollouts"]):
        stream = rollout_key(seed, "phase1", sid, i)
        if cells is not None:
            specs.extend(RolloutSpec(**common, forced=(a,), key=(sid, (CELL, j), i), stream=stream)
                         for j, a in enumerate(cells))  # fmt: skip
            continue
        for cond in STUDENT_CONDITIONS:
            forced = (advice.suggested_action,) if cond == "force" else ()
            specs.append(RolloutSpec(**common, patch=patches[cond], forced=forced, key=(sid, cond, i), stream=stream))
    return specs + expert_specs(row, cfg)


def expert_specs(row, cfg: dict) -> list[RolloutSpec]:
    """The expert's rollouts of one snapshot (``phase1.n_rollouts_expert``, key (snapshot, "expert", j))."""
    return [RolloutSpec(env_id=row["env_id"], seed=int(row["seed"]), prefix=tuple(row["actions"]), actor=EXPERT,
                        key=(row["snapshot_id"], "expert", j)) for j in range(cfg["phase1"]["n_rollouts_expert"])]  # fmt: skip


def outcomes(results: list[RolloutResult]) -> dict[tuple[str, str], np.ndarray]:
    """Success of every rollout as a 0/1 vector per (snapshot, condition), ordered by rollout
    index; ``(snapshot, "expert_error")`` holds the expert's error kinds (None when it acted)."""
    by: dict[tuple[str, str], dict[int, object]] = {}
    for r in results:
        sid, cond, i = r.spec.key
        by.setdefault((sid, cond), {})[i] = float(r.success)
        if cond == "expert":
            by.setdefault((sid, "expert_error"), {})[i] = r.expert_error
    return {k: np.array([v[i] for i in sorted(v)], dtype=object if k[1] == "expert_error" else float)
            for k, v in by.items()}  # fmt: skip


# ------------------------------------------------------------------------------------ first action
def resolve_estimator(p1: dict, student: StudentPolicy) -> str:
    """``phase1.estimator`` for ``student``: auto is first_action where the student scores its
    actions exactly (``exact_u``), direct for a generate-only backend; first_action with a
    generate-only backend is an error (its first-step distribution is only estimated)."""
    est = p1["estimator"]
    if est == "auto":
        return FIRST_ACTION if student.exact_u else DIRECT
    if est == FIRST_ACTION and not student.exact_u:
        raise ValueError(f"phase1.estimator: first_action needs the student's exact first-step distribution, but "
                         f"the student {student.name!r} is generate-only (its distribution is estimated from its "
                         "answers); set phase1.estimator to direct or auto")  # fmt: skip
    return est


def first_action_cells(probs: dict[str, np.ndarray], actions: tuple[str, ...], teacher_action: str,
                       floor: float) -> np.ndarray:  # fmt: skip
    """Indices (into ``actions``, in its order) of the first actions that get a cell: where some
    condition's probability (``probs[c]``, over ``actions``) is at least ``floor``, the teacher's
    action, and each condition's most likely action (so no condition's mass is all uncovered)."""
    stack = np.stack(list(probs.values()))
    keep = stack.max(0) >= floor
    keep[actions.index(teacher_action)] = True
    keep[stack.argmax(1)] = True
    return np.flatnonzero(keep)


def first_action_design(scored: pd.DataFrame, advice: list, contrast_diagnoses: list, student: StudentPolicy,
                        cfg: dict, floor: float, spaces: StateSpaces | None = None) -> list[dict]:  # fmt: skip
    """Per snapshot, the first-action estimator's design: ``cell_actions`` (``first_action_cells``),
    and per student condition c its exact first-step sampling distribution on them, ``pi_<c>``
    (``sampling_probs`` at ``student.temperature`` of the student's ``distribution`` of the
    first context the rollout engine builds with c's patch: ``rollouts.first_contexts``; force:
    all mass on the teacher's action) and the mass on the actions without a cell, ``pi_rest_<c>``.
    One batched ``distribution`` call for all snapshots and conditions."""
    patched = [c for c in STUDENT_CONDITIONS if c != "force"]
    specs, parsers = [], []
    spaces = spaces or StateSpaces.of_config(cfg["env"])
    for (_, r), adv, cdiag in zip(scored.iterrows(), advice, contrast_diagnoses, strict=True):
        patches = condition_patches(r, adv, cdiag, spaces)
        specs += [RolloutSpec(r["env_id"], int(r["seed"]), tuple(r["actions"]), patch=patches[c]) for c in patched]
        parsers += snapshot_parsers([r] * len(patched), spaces)
    ctxs = first_contexts(specs, cfg)
    dists = student.distribution(ctxs, parsers)
    temperature, out = float(cfg["student"]["temperature"]), []
    for k, ((_, r), adv) in enumerate(zip(scored.iterrows(), advice)):
        actions = ctxs[k * len(patched)].valid_actions
        if adv.suggested_action not in actions:
            raise ValueError(f"snapshot {r['snapshot_id']!r}: the teacher's action {adv.suggested_action!r} is not "
                             f"one of the restored state's valid actions {list(actions)}")  # fmt: skip
        block = dists[k * len(patched):(k + 1) * len(patched)]
        probs = {c: sampling_probs(d.logprobs, temperature) for c, d in zip(patched, block)}
        probs["force"] = (np.asarray(actions) == adv.suggested_action).astype(float)
        cells = first_action_cells(probs, actions, adv.suggested_action, floor)
        rest = np.ones(len(actions), dtype=bool)
        rest[cells] = False
        row = {"cell_actions": [actions[j] for j in cells]}
        for c in STUDENT_CONDITIONS:
            row[f"pi_{c}"] = [float(v) for v in probs[c][cells]]
            row[f"pi_rest_{c}"] = float(probs[c][rest].sum())
        out.append(row)
    return out


def resolve_allocation(p1: dict, estimator: str, student: StudentPolicy) -> str:
    """``phase1.allocation``: adaptive needs the first_action estimator (its cells are what it
    allocates), an error otherwise naming why the estimator is direct."""
    if p1["allocation"] == ADAPTIVE and estimator != FIRST_ACTION:
        why = ("generate-only (no exact first-step distribution)" if not student.exact_u
               else f"run with phase1.estimator {p1['estimator']}")  # fmt: skip
        raise ValueError(f"phase1.allocation: adaptive allocates first-action cells and needs the first_action "
                         f"estimator, but the estimator is {estimator} (the student {student.name!r} is {why}); set "
                         "phase1.allocation to fixed, or phase1.estimator to first_action with a scoring student")  # fmt: skip
    return p1["allocation"]


def adaptive_design(scored: pd.DataFrame, advice: list, design: list[dict], student: StudentPolicy, cfg: dict,
                    progress: bool) -> list[dict]:  # fmt: skip
    """The first-action ``design`` of each scored snapshot with the rollouts of adaptive allocation
    (``allocation.allocate_rows``: forced-first-action rollouts on the shared streams, each cell's
    indices from 0, one ``study_rollouts`` call per round): ``y_cells`` (NaN past a cell's last
    rollout) and the allocation's record (``alloc_*``)."""
    rows = pd.DataFrame([{"snapshot_id": r["snapshot_id"], "env_id": r["env_id"], "seed": r["seed"],
                          "actions": r["actions"], "suggested_action": a.suggested_action, **d}
                         for (_, r), a, d in zip(scored.iterrows(), advice, design, strict=True)])  # fmt: skip
    if rows.empty:
        return []
    got = allocate_rows(rows, student, cfg, progress).drop(columns="snapshot_id")
    return [{**d, **rec} for d, rec in zip(design, got.to_dict("records"))]


def cell_outcomes(y_cells) -> np.ndarray:
    """``y_cells`` (a list of per-cell lists, as written or as read back from Parquet) as a
    (cells, rollouts) float array (NaN where a cell has no rollout of that index)."""
    return np.array([np.asarray(v, float) for v in y_cells], dtype=float).reshape(len(y_cells), -1)


def estimator_of(df: pd.DataFrame) -> str:
    """The estimator whose outcome columns ``df`` carries: first_action (``y_cells``) or direct
    (``y_<condition>``); a table with both mixes shards of two estimators, an error."""
    if "y_cells" not in df.columns:
        return DIRECT
    if any(f"y_{c}" in df.columns for c in STUDENT_CONDITIONS):
        raise ValueError("the label rows mix the estimators direct (y_<condition>) and first_action (y_cells): "
                         "label every shard with one phase1.estimator")  # fmt: skip
    return FIRST_ACTION


@dataclass(frozen=True)
class Rollouts:
    """A row's student rollouts, the one view every label is computed from: ``y``, units x rollout
    index (NaN: the unit has no rollout of that index), and each condition's weights on the units,
    ``w[c]``. Direct: one unit per condition (its ``y_<c>``), weight 1. First_action: one unit per
    cell (``y_cells``; under adaptive allocation the cells differ in rollouts, NaN past a cell's
    last one), weights pi_c / sum pi_c (the uncovered mass assumed to succeed as the covered does).
    Rollout i of every unit shares a stream. A condition's estimate on some rollout indices
    (``means``) weights each unit's success rate over the indices it has, so it is right whatever
    the cells' counts; with equal counts it is the mean of the per-index values (``vectors``)."""

    y: np.ndarray
    w: dict[str, np.ndarray]

    @classmethod
    def of(cls, r, estimator: str, conditions=STUDENT_CONDITIONS) -> Rollouts:
        """Row ``r``'s rollouts of the student ``conditions`` under ``estimator``."""
        if estimator == DIRECT:
            return cls.direct({c: r[f"y_{c}"] for c in conditions})
        pis = {c: np.asarray(r[f"pi_{c}"], float) for c in conditions}
        return cls(cell_outcomes(r["y_cells"]), {c: p / p.sum() for c, p in pis.items()})

    @classmethod
    def direct(cls, y: dict) -> Rollouts:
        """One unit per condition of ``y`` (0/1 outcomes per rollout on the last axis; leading axes
        are carried through ``means``)."""
        eye = np.eye(len(y))
        return cls(np.stack([np.asarray(v, float) for v in y.values()]), {c: eye[k] for k, c in enumerate(y)})

    @property
    def n(self) -> int:
        """Rollout indices (the last axis)."""
        return self.y.shape[-1]

    def counts(self) -> np.ndarray:
        """Rollouts of each unit."""
        return (~np.isnan(self.y)).sum(-1)

    def fewest(self, c: str) -> int:
        """The fewest rollouts of a unit of condition ``c`` (weight > 0): its n per cell."""
        return int(self.counts()[self.w[c] > 0].min())

    def means(self, idx=slice(None)) -> dict[str, np.ndarray]:
        """Each condition's success rate on the rollout indices ``idx`` (an index array may carry
        leading resample axes): sum_a w_c(a) x unit a's mean over those of ``idx`` it has; NaN where
        a unit with weight has none of them."""
        y = self.y[..., idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.nansum(y, -1) / (~np.isnan(y)).sum(-1)
        return {c: np.tensordot(w[w > 0], m[w > 0], 1) for c, w in self.w.items()}

    def vectors(self) -> dict[str, np.ndarray]:
        """Each condition's value per rollout index, sum_a w_c(a) y[a, i]; NaN where a unit with
        weight has no rollout i."""
        return {c: np.tensordot(w[w > 0], self.y[w > 0], 1) for c, w in self.w.items()}

    def constant(self) -> bool:
        """Every unit has one outcome over all its rollouts (a bootstrap has no spread)."""
        return bool(np.all(np.nanmax(self.y, -1) == np.nanmin(self.y, -1)))

    def strata(self, parity: bool) -> list[np.ndarray]:
        """The rollout indices grouped by the units that have them and, with ``parity``, by the
        cross-fitting half (``crossfit_halves``): resampling within each (``resamples``) keeps
        every unit's count and each index's half. One group of all indices where every unit has
        them all and ``parity`` is off."""
        groups: dict[tuple, list[int]] = {}
        for i in range(self.n):
            groups.setdefault((i % 2 if parity else 0, *np.isnan(self.y[:, i])), []).append(i)
        return [np.asarray(v) for _, v in sorted(groups.items())]


def outcome_vectors(r, estimator: str, conditions=OUTCOME_CONDITIONS) -> dict[str, np.ndarray]:
    """Per condition of ``conditions``, one value per rollout index i (``Rollouts.vectors``):
    direct, the 0/1 outcomes ``y_<c>``; first_action, for a student condition
    z_c[i] = sum_a pi_c(a) y_cells[a, i] / sum_a pi_c(a), NaN where a cell of c has no rollout i
    (adaptive allocation); the expert's ``y_expert``."""
    out = Rollouts.of(r, estimator, [c for c in conditions if c != "expert"]).vectors()
    if "expert" in conditions:
        out["expert"] = np.asarray(r["y_expert"], float)
    return out


def _first_step(r, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Row ``r``'s successes and rollouts per cell, and condition ``name``'s (base: policy) pi on
    the cells and mass without a cell."""
    c = "policy" if name == "base" else name
    cells = cell_outcomes(r["y_cells"])
    return np.nansum(cells, 1), (~np.isnan(cells)).sum(1), np.asarray(r[f"pi_{c}"], float), float(r[f"pi_rest_{c}"])


def first_action_bounds(r, name: str) -> tuple[float, float]:
    """The bounds of p_<name> (a student condition; base: policy) of first-action row ``r``
    whatever the actions without a cell do: the covered sum sum_a pi(a) q(a) (all of them
    failing) and the covered sum + pi_rest (all succeeding)."""
    k, n, pi, rest = _first_step(r, name)
    covered = float(pi @ (k / n))
    return covered, covered + rest


def first_action_interval(r, name: str, confidence: float) -> tuple[float, float]:
    """The interval of p_<name> of first-action row ``r``: the pi-weighted Wilson bounds of the
    cells' success rates (each at its own n), pi_rest added to the upper one; it holds the
    estimate and both bounds (``first_action_bounds``). For force (all mass on one cell) it is
    that cell's Wilson interval."""
    k, n, pi, rest = _first_step(r, name)
    wilson = np.array([wilson_interval(int(a), int(b), confidence) for a, b in zip(k, n)]).reshape(-1, 2)
    return float(pi @ wilson[:, 0]), float(pi @ wilson[:, 1]) + rest


# ------------------------------------------------------------------------------------ ELP
def crossfit_halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The rollout indices of the two cross-fitting halves of n rollouts: even and odd (a cell
    that adaptive allocation stopped early still has both)."""
    if n < 2:
        raise ValueError(f"cross-fitting ELP_net needs at least 2 rollouts per condition, got {n}")
    return np.arange(0, n, 2), np.arange(1, n, 2)


def _gains(means: dict[str, np.ndarray]) -> np.ndarray:
    """gain_net of each format (last axis, in FORMATS order) from the conditions' ``means``."""
    return np.stack([means[m] - means[f"placebo_{m}"] for m in FORMATS], -1)


# gains closer than this are tied (broken by FORMATS order): a first-action gain is a sum of
# pi-weighted rates whose last bits differ between two processes (a batched forward pass), and
# an exact argmax would flip the route, hence ELP_net, on that noise
ROUTE_TIE = 1e-6


def route_of(gains: np.ndarray) -> np.ndarray:
    """Index (in FORMATS order) of the first format whose gain is within ``ROUTE_TIE`` of the
    largest, along the last axis."""
    return np.argmax(gains >= gains.max(axis=-1, keepdims=True) - ROUTE_TIE, axis=-1)


def crossfit_elp(y: Rollouts, idx: np.ndarray | None = None) -> np.ndarray:
    """Cross-fitted ELP_net of the rollouts ``y`` (at the rollout indices ``idx``: resamples x
    positions, each position keeping its half; default all): route = argmax of gain_net on one
    half (``crossfit_halves``; ties: FORMATS order), gain of that route on the other half; both
    ways, averaged."""
    idx = np.arange(y.n) if idx is None else idx
    g1, g2 = (_gains(y.means(idx[..., h])) for h in crossfit_halves(idx.shape[-1]))
    r1, r2 = route_of(g1)[..., None], route_of(g2)[..., None]
    return 0.5 * (np.take_along_axis(g2, r1, -1)[..., 0] + np.take_along_axis(g1, r2, -1)[..., 0])


ELP_BATCH = 500  # resamples of ``elp_interval`` held in memory at once


def resamples(strata: list[np.ndarray], n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n) rollout indices of a bootstrap stratified by ``strata`` (``Rollouts.strata``):
    the positions of each stratum are drawn with replacement from that stratum only."""
    out = np.empty((int(n_resamples), n), dtype=np.intp)
    for s in strata:
        out[:, s] = rng.choice(s, size=(int(n_resamples), len(s)), replace=True)
    return out


def rollout_interval(y: Rollouts, statistic, *, parity: bool, n_resamples: int, confidence: float, seed: int,
                     batch: int | None = None) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap interval of ``statistic(y, idx)`` (idx: resamples x positions, None
    for the sample itself) over rollout indices, resampled within ``Rollouts.strata(parity)``
    (every unit keeps its count; with ``parity`` each index its cross-fitting half), rollout i of
    every unit drawn together (they share a stream), ``batch`` resamples at a time (None: all at
    once). Where every rollout of every unit is alike there is no spread: the point, twice."""
    if y.constant():
        v = float(statistic(y, None))
        return v, v
    rng, strata, dist, n = np.random.default_rng(seed), y.strata(parity=parity), [], int(n_resamples)
    step = n if batch is None else int(batch)
    for start in range(0, n, step):
        dist.append(statistic(y, resamples(strata, y.n, min(step, n - start), rng)))
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(np.concatenate(dist), [tail, 1 - tail])
    return float(lo), float(hi)


def elp_interval(y: Rollouts, n_resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of ``crossfit_elp`` (``rollout_interval``), resampled within
    each cross-fitting half and among the indices the same cells have: no rollout both chooses
    the route and measures it, every cell keeps its count."""
    return rollout_interval(y, crossfit_elp, parity=True, n_resamples=n_resamples, confidence=confidence,
                            seed=seed, batch=ELP_BATCH)  # fmt: skip


def raw_rows(scored: pd.DataFrame, advice: list, outs: dict, contrast_diagnoses: list | None = None,
             design: list[dict] | None = None, spaces: StateSpaces | None = None) -> pd.DataFrame:  # fmt: skip
    """A label shard's rows: per scored snapshot, its columns, the teacher's advice and the
    outcome of every rollout, ``y_<condition>`` (0/1 per rollout, in rollout order; given the
    first-action ``design`` instead: its columns and ``y_cells``, one such list per cell, from
    ``outs`` unless the design carries them, as adaptive allocation's does), the expert's
    ``y_expert`` and ``expert_errors`` (ExpertError kind or None per expert rollout);
    ``p_teacher_action`` is the student's probability of the teacher's key (``action_prob``). No
    statistic: ``label_stats`` computes them when the shards are merged. ``spaces``:
    ``candidates_of``'s."""
    rows = []
    contrast_diagnoses = contrast_diagnoses or [None] * len(advice)
    design = design or [None] * len(advice)
    for (_, r), adv, cdiag, cells in zip(scored.iterrows(), advice, contrast_diagnoses, design, strict=True):
        sid = r["snapshot_id"]
        row = {k: r[k] for k in scored.columns if not k.startswith("_")}
        lp = r["_logprobs"]
        space, cands = candidates_of(r, spaces)
        support = support_of(r)
        row.update(
            suggested_action=adv.suggested_action,
            diagnosis=adv.diagnosis,
            error_type=adv.error_type,
            contrast_action=contrast_action(r["student_action"], adv.suggested_action, cands, lp, space, support),
            contrast_diagnosis=cdiag or adv.diagnosis,
            p_teacher_action=action_prob(adv.suggested_action, cands if support is None else support, lp, space),
        )
        if cells is None:
            for c in OUTCOME_CONDITIONS:
                row[f"y_{c}"] = [float(v) for v in outs[(sid, c)]]
        else:
            row.update(cells)
            if "y_cells" not in cells:
                row["y_cells"] = [[float(v) for v in outs[(sid, (CELL, j))]] for j in range(len(cells["cell_actions"]))]
            row["y_expert"] = [float(v) for v in outs[(sid, "expert")]]
        row["expert_errors"] = list(outs[(sid, "expert_error")])
        rows.append(row)
    if not rows:  # an empty shard: the declared columns, no row
        return pd.DataFrame(columns=[c for c, col in RAW_LABELS.columns.items() if not col.optional])
    return pd.DataFrame(rows)


def label_stats(raw: pd.DataFrame) -> pd.DataFrame:
    """The labels of raw shard rows (``raw_rows``) of either estimator (``estimator_of``): every
    probability with its n (rollouts; first_action: per cell, the fewest of the condition's cells
    under adaptive allocation), leverage, gains, the cross-fitted ELP_net, the naive max and the
    route (module docstring), from ``Rollouts``; with first_action also each student probability's
    bounds ``p_<name>_min``/``_max`` (``first_action_bounds``) and ``n_cells``. Their intervals
    depend on a confidence level, so they are ``label_intervals``'s."""
    est, rows = estimator_of(raw), []
    for _, r in raw.iterrows():
        row = r.to_dict()
        y = Rollouts.of(r, est)
        p = y.means()
        for name in PROB_NAMES:
            if name == "expert":
                v = np.asarray(r["y_expert"], float)
                row["p_expert"], row["p_expert_n"] = float(v.mean()), int(len(v))
                continue
            c = "policy" if name == "base" else name
            row[f"p_{name}"], row[f"p_{name}_n"] = float(p[c]), y.fewest(c)
            if est == FIRST_ACTION:
                row[f"p_{name}_min"], row[f"p_{name}_max"] = first_action_bounds(r, name)
        if est == FIRST_ACTION:
            row["n_cells"] = len(r["cell_actions"])
        errors = [e for e in r["expert_errors"] if isinstance(e, str)]
        row["p_expert_errors"] = len(errors)
        row["p_expert_impossible"] = sum(e == "impossible" for e in errors)
        row["L_local"] = row["p_force"] - row["p_policy"]
        row["L_upper"] = row["p_expert"] - row["p_policy"]
        for m in FORMATS:
            row[f"gain_raw_{m}"] = row[f"p_{m}"] - row["p_base"]
            row[f"gain_raw_placebo_{m}"] = row[f"p_placebo_{m}"] - row["p_base"]
        gains = {m: row[f"p_{m}"] - row[f"p_placebo_{m}"] for m in FORMATS}
        for m, g in gains.items():
            row[f"gain_net_{m}"] = g
        best = max(gains.values())
        ties = [m for m in FORMATS if gains[m] >= best - ROUTE_TIE]
        row["ELP_net_naive"] = best
        row["route_net"] = ties[0]
        row["route_ties"] = ties
        row["ELP_net"] = float(crossfit_elp(y))
        rows.append(row)
    return pd.DataFrame(rows)


def label_intervals(labeled: pd.DataFrame, confidence: float, n_bootstrap: int, seed: int) -> pd.DataFrame:
    """Per labeled snapshot: the interval of every probability (``p_<name>_lo/_hi``: Wilson;
    first_action, a student condition's: ``first_action_interval``) and the bootstrap interval of
    the cross-fitted ELP_net (``ELP_net_lo/_hi``, ``elp_interval``), at ``confidence``."""
    est, rows = estimator_of(labeled), []
    for _, r in labeled.iterrows():
        row = {"snapshot_id": r["snapshot_id"]}
        for name in PROB_NAMES:
            if est == FIRST_ACTION and name != "expert":
                row[f"p_{name}_lo"], row[f"p_{name}_hi"] = first_action_interval(r, name, confidence)
                continue
            v = np.asarray(r[f"y_{'policy' if name == 'base' else name}"], float)
            pr = proportion(int(v.sum()), len(v), confidence)
            row[f"p_{name}_lo"], row[f"p_{name}_hi"] = pr["lo"], pr["hi"]
        row["ELP_net_lo"], row["ELP_net_hi"] = elp_interval(
            Rollouts.of(r, est), n_bootstrap, confidence, derive_seed(seed, "elp", r["snapshot_id"]))
        rows.append(row)
    return pd.DataFrame(rows)


def advice_request(r, student_action: str | None) -> AdviceRequest:
    """What the teacher sees of a scored snapshot, about ``student_action``."""
    return AdviceRequest(
        env_id=r["env_id"], seed=int(r["seed"]), actions=tuple(r["actions"]), instruction=r["instruction"],
        observation=r["observation"], valid_actions=tuple(r["valid_actions"]), history=tuple(r["history"]),
        student_action=student_action,
    )  # fmt: skip


def _valid(advice, req: AdviceRequest, spaces: StateSpaces) -> bool:
    """The advice is usable: ok, and its action may stand at the state (``ActionSpace.allows``
    at the request's state: one of its candidates, over which the student's distribution, hence
    p_teacher_action, is; any valid action of a free-form family, whose candidates are a menu)."""
    if not advice.ok:
        return False
    space = spaces.at(req.env_id, req.seed, req.actions, req.instruction, req.observation)
    return bool(space.allows(advice.suggested_action, space.candidate_actions(req.valid_actions)))


def label_snapshots(snaps: pd.DataFrame, student: StudentPolicy, teacher: Teacher, cfg: dict,
                    progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw labels (``raw_rows``: advice and rollout outcomes) for every snapshot whose teacher
    advice is valid; teacher failures are returned separately (recorded, never replaced by
    another action). ``label_stats`` turns the raw rows into labels.

    Where the student's action IS the teacher's (Experiment B) or is no valid action (an
    unparseable answer), the contrast calls the student's most likely other action worse, so the
    teacher is asked a second time, about that action, and its diagnosis (``contrast_diagnosis``)
    is the contrast's "because"; a failure of that second answer is a teacher failure of the
    snapshot.

    The estimator (``resolve_estimator``) is logged; with first_action the rollouts are the
    first-action cells (``first_action_design``) instead of the student conditions, and with
    ``phase1.allocation: adaptive`` (``resolve_allocation``) their counts are adaptive
    allocation's (``adaptive_design``)."""
    p1 = section("phase1", cfg["phase1"])
    estimator = resolve_estimator(p1, student)
    log.info("phase1 estimator: %s (phase1.estimator %s, student %s %s)", estimator, p1["estimator"], student.name,
             "scores actions exactly" if student.exact_u else "is generate-only")  # fmt: skip
    adaptive = resolve_allocation(p1, estimator, student) == ADAPTIVE
    spaces = StateSpaces.of_config(cfg["env"])  # the action space at each snapshot's state
    scored = score_snapshots(snaps, student, spaces)
    reqs = [advice_request(r, r["student_action"]) for _, r in scored.iterrows()]
    advice = teacher.advise_many(reqs)
    reasons = [None if _valid(a, q, spaces) else (a.failure_reason or "suggested action not valid")
               for a, q in zip(advice, reqs)]  # fmt: skip
    kinds = [None if why is None else a.meta.get("failure_kind", "invalid_action") for a, why in zip(advice, reasons)]
    second = {}
    for k, ((_, r), a) in enumerate(zip(scored.iterrows(), advice)):
        if reasons[k] is None:
            space, cands = candidates_of(r, spaces)
            worse = contrast_action(r["student_action"], a.suggested_action, cands, r["_logprobs"], space,
                                    support_of(r))  # fmt: skip
            if worse != r["student_action"]:  # the contrast is not about the student's own action
                second[k] = advice_request(r, worse)
    contrast_advice = dict(zip(second, teacher.advise_many(list(second.values()))))
    for k, a in contrast_advice.items():
        if not (a.ok and a.diagnosis):
            reasons[k] = f"contrast diagnosis (about {second[k].student_action!r}): {a.failure_reason or 'empty'}"
            kinds[k] = "contrast_diagnosis"
    ok = np.array([why is None for why in reasons], dtype=bool)
    failures = scored.loc[~ok, [c for c in scored.columns if not c.startswith("_")]].copy()
    failures["failure_reason"] = [why for why in reasons if why is not None]
    failures["failure_kind"] = [k for k in kinds if k is not None]
    good = scored.loc[ok]
    good_adv = [a for a, k in zip(advice, ok) if k]
    cdiags = [contrast_advice[k].diagnosis if k in contrast_advice else None for k in np.flatnonzero(ok)]
    design = (first_action_design(good, good_adv, cdiags, student, cfg, float(p1["first_action_floor"]), spaces)
              if estimator == FIRST_ACTION else [None] * len(good_adv))  # fmt: skip
    if adaptive:
        design = adaptive_design(good, good_adv, design, student, {**cfg, "phase1": p1}, progress)
        specs = [s for _, r in good.iterrows() for s in expert_specs(r, cfg)]
    else:
        specs = [s for (_, r), a, c, d in zip(good.iterrows(), good_adv, cdiags, design)
                 for s in condition_specs(r, a, cfg, c, d and d["cell_actions"], spaces)]  # fmt: skip
    results = study_rollouts(specs, student, cfg, desc="phase1 label rollouts", progress=progress)
    return raw_rows(good, good_adv, outcomes(results), cdiags, design if estimator == FIRST_ACTION else None,
                    spaces), failures


def select_shard(snaps: pd.DataFrame, p1: dict, shard: int, n_shards: int, seed: int) -> pd.DataFrame:
    """Deterministic shard of the snapshots to label: sorted by id, capped per experiment at
    ``phase1.max_snapshots`` (a seeded sample), then every ``n_shards``-th row."""
    from .splits import shard_rows

    snaps = snaps[snaps["experiment"].isin(p1["experiments"])]
    parts = []
    for exp, g in snaps.sort_values("snapshot_id").groupby("experiment", sort=True):
        cap = p1["max_snapshots"].get(exp) if isinstance(p1.get("max_snapshots"), dict) else None
        if cap is not None and len(g) > cap:
            g = g.sample(n=cap, random_state=derive_seed(seed, "cap", exp)).sort_values("snapshot_id")
        parts.append(g)
    allsn = pd.concat(parts, ignore_index=True) if parts else snaps.iloc[:0]
    return shard_rows(allsn, shard, n_shards).reset_index(drop=True)


def merge_labels(raw: pd.DataFrame, failures: pd.DataFrame, qcfg: dict) -> tuple[pd.DataFrame, dict]:
    """The labels of the merged shards (``label_stats``) with their quadrants, and the
    thresholds record (which counts the teacher failures and names the shards' estimator)."""
    if raw.empty:
        raise ValueError("no labeled snapshot in any shard: nothing to assign to quadrants (check phase 0's counts "
                         "and the teacher failures)")  # fmt: skip
    df = label_stats(raw.sort_values("snapshot_id").reset_index(drop=True))
    df, thr = add_quadrants(df, qcfg)
    thr["teacher_failures"] = int(len(failures))
    thr["estimator"] = estimator_of(raw)
    log.info("labels estimated by %s", thr["estimator"])
    return df, thr


# ------------------------------------------------------------------------------------ pairing
# the condition pairs whose rollouts share keys and are compared: leverage, each format against
# its placebo (gain_net), the unpatched student (base) against each placebo and each format
OUTCOME_PAIRS = (("policy", "force"), *((m, f"placebo_{m}") for m in FORMATS), *(("base", p) for p in PLACEBOS),
                 *(("base", m) for m in FORMATS))  # fmt: skip


def outcome_pairing(labeled: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """How paired the conditions of a snapshot are, per pair of ``OUTCOME_PAIRS``: the mean over
    snapshots of the Pearson correlation across rollout indices i of the two conditions' 0/1
    outcomes (rollout i of both shares its draws, so the more the pairing holds, the higher),
    with its Student-t interval over snapshots (``stats.mean_interval``) and n. A snapshot where
    either condition is constant over its rollouts has no correlation: left out, counted in
    ``n_constant``. ``base`` is the unpatched student (p_policy's rollouts). First_action: the
    conditions' per-rollout values (``outcome_vectors``) in place of 0/1 outcomes, over the
    indices every cell of both has (under adaptive allocation, the shortest cell's)."""
    est, rows = estimator_of(labeled), []
    vectors = [outcome_vectors(r, est, STUDENT_CONDITIONS) for _, r in labeled.iterrows()]
    for a, b in OUTCOME_PAIRS:
        rhos = []
        for sid, y in zip(labeled["snapshot_id"], vectors):
            va, vb = (y["policy" if c == "base" else c] for c in (a, b))
            if len(va) != len(vb):
                raise ValueError(f"snapshot {sid!r}: {len(va)} rollouts of {a} but {len(vb)} of {b}, cannot pair them")
            both = ~(np.isnan(va) | np.isnan(vb))
            va, vb = va[both], vb[both]
            if len(va) > 1 and np.ptp(va) > 0 and np.ptp(vb) > 0:
                rhos.append(float(np.corrcoef(va, vb)[0, 1]))
        m = mean_interval(rhos, confidence)
        rows.append(dict(pair=f"{a}~{b}", a=a, b=b, rho=m["mean"], rho_lo=m["lo"], rho_hi=m["hi"], n=m["n"],
                         n_constant=len(labeled) - len(rhos), n_snapshots=len(labeled)))  # fmt: skip
    return pd.DataFrame(rows)
