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
  (covered / (1 - rest)). Every label is then computed as for ``direct`` from the per-rollout
  values z_c[i] = sum_a pi_c(a) y[a, i] / (1 - rest) (``outcome_vectors``), rollout i of every
  cell sharing a stream. A probability's interval: Wilson (direct); the pi_c-weighted Wilson
  bounds of the cells, the rest added to the upper one (first_action).
- ELP_net is cross-fitted (``crossfit_elp``): the route is chosen on one half of the rollouts
  (indices < n // 2), its gain_net measured on the other half, halves swapped and the two
  estimates averaged, so the max over formats is not biased upward by noise. ``ELP_net_lo`` /
  ``ELP_net_hi``: percentile bootstrap over rollouts, stratified by half (each half resampled
  from its own rollouts, so no rollout chooses the route and measures it too; rollout i of every
  condition resampled together, as they share a stream). The naive max over formats of the full-sample gains is kept
  as ``ELP_net_naive``; ``route_net`` is the full-sample argmax (ties broken in the fixed order
  demo, hint, contrast; all tied formats in ``route_ties``) and is the format Phase 1B trains.
- Quadrants on (U, L_local) are assigned when the shards merge (``merge_labels``, with
  ``teachable.quadrants``).
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
import pandas as pd

from .constants import FORMATS, PLACEBOS
from .patches import make_patch
from .envs.action_space import ActionSpace
from .envs.registry import action_space, parse_action
from .config import section
from .policies import Context, StudentPolicy
from .policies.base import Parser, sampling_probs
from .policies.generated_u import u_columns
from .quadrants import add_quadrants
from .rollouts import EXPERT, RolloutResult, RolloutSpec, first_contexts, study_rollouts
from .schemas import OUTCOME_CONDITIONS, PROB_NAMES, STUDENT_CONDITIONS
from .seeding import derive_seed, rollout_key
from .stats import entropy_features, mean_interval, proportion, wilson_interval
from .teachers.base import AdviceRequest, Teacher

log = logging.getLogger(__name__)

DIRECT, FIRST_ACTION = "direct", "first_action"  # the resolved values of phase1.estimator
CELL = "cell"  # the condition of a first-action cell's rollouts in their keys: (snapshot, (CELL, j), i)


def snapshot_context(row, patch: str | None = None) -> Context:
    return Context(
        instruction=row["instruction"],
        observation=row["observation"],
        history=tuple(row["history"]),
        valid_actions=tuple(row["valid_actions"]),
        patch=patch,
    )


def snapshot_parsers(env_ids) -> list[Parser]:
    """The family's lenient parser at each snapshot of ``env_ids``: it reads the student's answers."""
    return [partial(parse_action, env_id) for env_id in env_ids]


def score_snapshots(snaps: pd.DataFrame, student: StudentPolicy) -> pd.DataFrame:
    """Uncertainty features of the student's distribution at each snapshot
    (``StudentPolicy.distribution``, answers read by the family's parser); fills a missing
    student_action (Experiment B) with the student's most likely action at that state. Where the
    distribution is estimated (``exact_u`` false: a generate-only student's ``u_source``) each
    row says how (``generated_u.u_columns``), and a snapshot whose estimate has no distribution
    (none of k samples a valid action) is left out (counted in the log)."""
    ctxs = [snapshot_context(r) for _, r in snaps.iterrows()]
    dists = student.distribution(ctxs, snapshot_parsers(snaps["env_id"]))
    if student.exact_u:
        return score_rows(snaps, ctxs, [d.logprobs for d in dists])
    keep = np.array([not np.isnan(d.logprobs).any() for d in dists], dtype=bool)
    log.info("U of %d snapshots: %d answers invalid of %d", len(snaps), sum(d.n_invalid for d in dists),
             sum(d.k for d in dists))  # fmt: skip
    if not keep.all():
        log.warning("%d of %d snapshots left out: none of their %d samples parsed to a valid action",
                    int((~keep).sum()), len(snaps), max(d.k for d, k in zip(dists, keep) if not k))  # fmt: skip
    kept = [d for d, k in zip(dists, keep) if k]
    out = score_rows(snaps.loc[keep], [c for c, k in zip(ctxs, keep) if k], [d.logprobs for d in kept])
    cols = pd.DataFrame([u_columns(d) for d in kept], index=out.index, columns=list(u_columns(None)))
    for col, values in cols.items():
        out[col] = values
    return out


def score_rows(snaps: pd.DataFrame, ctxs: list[Context], lps: list[np.ndarray]) -> pd.DataFrame:
    """``snaps`` with the uncertainty features of the student's distribution ``lps`` (one per row)."""
    rows = []
    for (_, r), ctx, lp in zip(snaps.iterrows(), ctxs, lps):
        feats = entropy_features(lp)
        sa = r["student_action"] if isinstance(r["student_action"], str) else ctx.valid_actions[int(np.argmax(lp))]
        feats["student_action"] = sa
        # an unparseable answer (INVALID_ACTION, a generate-only student) has no probability
        # in the distribution over valid actions
        feats["p_student_action"] = float(np.exp(lp[ctx.valid_actions.index(sa)])) if sa in ctx.valid_actions else np.nan
        feats["_logprobs"] = lp
        rows.append(feats)
    out = snaps.copy()
    extra = pd.DataFrame(rows, index=snaps.index)
    for c in extra.columns:
        out[c] = extra[c]
    return out


def candidates_of(row) -> tuple[ActionSpace, tuple[str, ...]]:
    """The action space of a snapshot's family and the snapshot's candidate actions (the state's
    menu, ``valid_actions``, as the space offers it; the student's distribution is over them)."""
    space = action_space(row["env_id"])
    return space, space.candidate_actions(row["valid_actions"])


def contrast_action(student_action: str, teacher_action: str, candidates, logprobs, space: ActionSpace) -> str:
    """The action a contrast patch calls worse than the teacher's: the student's own action, or,
    where the student's action has the teacher's effect (``space.same``) or is no candidate (an
    unparseable answer of a generate-only student), the student's most likely candidate of another
    effect."""
    if student_action in candidates and not space.same(student_action, teacher_action):
        return student_action
    order = np.argsort(-np.asarray(logprobs), kind="stable")
    return next(candidates[i] for i in order if not space.same(candidates[i], teacher_action))


def condition_patches(row, advice, contrast_diagnosis: str | None = None) -> dict[str, str | None]:
    """The patch of every student condition of one snapshot (None: no patch). The contrast (and
    its placebo) uses ``contrast_diagnosis``, the teacher's diagnosis of the action the contrast
    calls worse, when that is not the student's own action."""
    space, cands = candidates_of(row)
    worse = contrast_action(row["student_action"], advice.suggested_action, cands, row["_logprobs"], space)
    patches: dict[str, str | None] = {"policy": None, "force": None}
    for m in (*PLACEBOS, *FORMATS):
        diagnosis = contrast_diagnosis if m.endswith("contrast") and contrast_diagnosis else advice.diagnosis
        patches[m] = make_patch(m, teacher_action=advice.suggested_action, student_action=worse,
                                diagnosis=diagnosis, candidates=cands)  # fmt: skip
    return patches


def condition_specs(row, advice, cfg: dict, contrast_diagnosis: str | None = None,
                    cells: list[str] | None = None) -> list[RolloutSpec]:  # fmt: skip
    """All rollouts of one snapshot: for i < n_rollouts, every student condition (direct) or,
    given ``cells`` (first_action), every first-action cell (its action forced, then the
    unpatched student; key (snapshot, (CELL, j), i)), with the key
    rollout_key(seed, "phase1", snapshot_id, i) (common random numbers); then the expert's."""
    p1, seed = cfg["phase1"], cfg["seed"]
    sid, prefix = row["snapshot_id"], tuple(row["actions"])
    common = dict(env_id=row["env_id"], seed=int(row["seed"]), prefix=prefix)
    patches = condition_patches(row, advice, contrast_diagnosis) if cells is None else {}
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
    for j in range(p1["n_rollouts_expert"]):
        specs.append(RolloutSpec(**common, actor=EXPERT, key=(sid, "expert", j)))
    return specs


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
                        cfg: dict, floor: float) -> list[dict]:  # fmt: skip
    """Per snapshot, the first-action estimator's design: ``cell_actions`` (``first_action_cells``),
    and per student condition c its exact first-step sampling distribution on them, ``pi_<c>``
    (``sampling_probs`` at ``student.temperature`` of the student's ``distribution`` of the
    first context the rollout engine builds with c's patch: ``rollouts.first_contexts``; force:
    all mass on the teacher's action) and the mass on the actions without a cell, ``pi_rest_<c>``.
    One batched ``distribution`` call for all snapshots and conditions."""
    patched = [c for c in STUDENT_CONDITIONS if c != "force"]
    specs, parsers = [], []
    for (_, r), adv, cdiag in zip(scored.iterrows(), advice, contrast_diagnoses, strict=True):
        patches = condition_patches(r, adv, cdiag)
        specs += [RolloutSpec(r["env_id"], int(r["seed"]), tuple(r["actions"]), patch=patches[c]) for c in patched]
        parsers += snapshot_parsers([r["env_id"]] * len(patched))
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


def cell_outcomes(y_cells) -> np.ndarray:
    """``y_cells`` (a list of per-cell lists, as written or as read back from Parquet) as a
    (cells, rollouts) float array."""
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


def outcome_vectors(r, estimator: str, conditions=OUTCOME_CONDITIONS) -> dict[str, np.ndarray]:
    """Per condition of ``conditions``, one value per rollout index i (every label is a function
    of them): direct, the 0/1 outcomes ``y_<c>``; first_action, for a student condition
    z_c[i] = sum_a pi_c(a) y_cells[a, i] / sum_a pi_c(a) (the covered actions' outcomes of
    rollout i, weighted by c's first-step distribution and renormalised over them: the
    uncovered mass is assumed to succeed as the covered does), the expert's ``y_expert``."""
    if estimator == DIRECT:
        return {c: np.asarray(r[f"y_{c}"], float) for c in conditions}
    cells = cell_outcomes(r["y_cells"])
    out = {}
    for c in conditions:
        if c == "expert":
            out[c] = np.asarray(r["y_expert"], float)
        else:
            pi = np.asarray(r[f"pi_{c}"], float)
            out[c] = pi @ cells / pi.sum()
    return out


def _first_step(r, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Row ``r``'s cell outcomes, and condition ``name``'s (base: policy) pi on the cells and
    mass without a cell."""
    c = "policy" if name == "base" else name
    return cell_outcomes(r["y_cells"]), np.asarray(r[f"pi_{c}"], float), float(r[f"pi_rest_{c}"])


def first_action_bounds(r, name: str) -> tuple[float, float]:
    """The bounds of p_<name> (a student condition; base: policy) of first-action row ``r``
    whatever the actions without a cell do: the covered sum sum_a pi(a) q(a) (all of them
    failing) and the covered sum + pi_rest (all succeeding)."""
    cells, pi, rest = _first_step(r, name)
    covered = float(pi @ cells.mean(1))
    return covered, covered + rest


def first_action_interval(r, name: str, confidence: float) -> tuple[float, float]:
    """The interval of p_<name> of first-action row ``r``: the pi-weighted Wilson bounds of the
    cells' success rates, pi_rest added to the upper one; it holds the estimate and both bounds
    (``first_action_bounds``). For force (all mass on one cell) it is that cell's Wilson interval."""
    cells, pi, rest = _first_step(r, name)
    n = cells.shape[1]
    wilson = np.array([wilson_interval(int(k), n, confidence) for k in cells.sum(1)]).reshape(-1, 2)
    return float(pi @ wilson[:, 0]), float(pi @ wilson[:, 1]) + rest


# ------------------------------------------------------------------------------------ ELP
def crossfit_halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The rollout indices of the two cross-fitting halves of n rollouts: < n // 2 and the rest."""
    h = n // 2
    if h < 1:
        raise ValueError(f"cross-fitting ELP_net needs at least 2 rollouts per condition, got {n}")
    return np.arange(h), np.arange(h, n)


def _gains(y: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """gain_net of each format (last axis, in FORMATS order) on the rollouts ``idx`` of ``y``."""
    return np.stack([y[m][..., idx].mean(-1) - y[f"placebo_{m}"][..., idx].mean(-1) for m in FORMATS], -1)


def crossfit_elp(y: dict[str, np.ndarray]) -> np.ndarray:
    """Cross-fitted ELP_net from 0/1 outcome arrays ``y[condition]`` (rollouts on the last axis,
    rollout i of every condition sharing a random stream): route = argmax of gain_net on one half
    (``crossfit_halves``; ties: FORMATS order), gain of that route on the other half; both ways,
    averaged."""
    a, b = crossfit_halves(y[FORMATS[0]].shape[-1])
    g1, g2 = _gains(y, a), _gains(y, b)
    r1 = np.argmax(g1, axis=-1)[..., None]  # first maximum: the fixed order on ties
    r2 = np.argmax(g2, axis=-1)[..., None]
    return 0.5 * (np.take_along_axis(g2, r1, -1)[..., 0] + np.take_along_axis(g1, r2, -1)[..., 0])


ELP_BATCH = 500  # resamples of ``elp_interval`` held in memory at once


def elp_resamples(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n) rollout indices of a bootstrap stratified by cross-fitting half: the
    positions of each half (``crossfit_halves``) are drawn with replacement from that half only,
    so a resampled rollout never lands in both halves (its route and its gain stay apart)."""
    out = np.empty((int(n_resamples), n), dtype=np.intp)
    for half in crossfit_halves(n):
        out[:, half] = rng.choice(half, size=(int(n_resamples), len(half)), replace=True)
    return out


def elp_interval(y: dict[str, np.ndarray], n_resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of ``crossfit_elp`` over rollouts, resampled within each
    cross-fitting half (``elp_resamples``) and paired across conditions (rollout i of every
    condition drawn together, as they share a stream)."""
    names = (*FORMATS, *PLACEBOS)
    data = {k: np.asarray(y[k], float) for k in names}
    if all(np.ptp(a) == 0 for a in data.values()):  # every rollout of every condition alike: no spread
        v = float(crossfit_elp(data))
        return v, v
    rng, n, dist = np.random.default_rng(seed), len(data[FORMATS[0]]), []
    for start in range(0, int(n_resamples), ELP_BATCH):
        idx = elp_resamples(n, min(ELP_BATCH, int(n_resamples) - start), rng)
        dist.append(crossfit_elp({k: v[idx] for k, v in data.items()}))
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(np.concatenate(dist), [tail, 1 - tail])
    return float(lo), float(hi)


def raw_rows(scored: pd.DataFrame, advice: list, outs: dict, contrast_diagnoses: list | None = None,
             design: list[dict] | None = None) -> pd.DataFrame:  # fmt: skip
    """A label shard's rows: per scored snapshot, its columns, the teacher's advice and the
    outcome of every rollout, ``y_<condition>`` (0/1 per rollout, in rollout order; given the
    first-action ``design`` instead: its columns and ``y_cells``, one such list per cell), the
    expert's ``y_expert`` and ``expert_errors`` (ExpertError kind or None per expert rollout). No
    statistic: ``label_stats`` computes them when the shards are merged."""
    rows = []
    contrast_diagnoses = contrast_diagnoses or [None] * len(advice)
    design = design or [None] * len(advice)
    for (_, r), adv, cdiag, cells in zip(scored.iterrows(), advice, contrast_diagnoses, design, strict=True):
        sid = r["snapshot_id"]
        row = {k: r[k] for k in scored.columns if not k.startswith("_")}
        lp = r["_logprobs"]
        space, cands = candidates_of(r)
        row.update(
            suggested_action=adv.suggested_action,
            diagnosis=adv.diagnosis,
            error_type=adv.error_type,
            contrast_action=contrast_action(r["student_action"], adv.suggested_action, cands, lp, space),
            contrast_diagnosis=cdiag or adv.diagnosis,
            p_teacher_action=float(np.exp(lp[cands.index(adv.suggested_action)])),
        )
        if cells is None:
            for c in OUTCOME_CONDITIONS:
                row[f"y_{c}"] = [float(v) for v in outs[(sid, c)]]
        else:
            row.update(cells)
            row["y_cells"] = [[float(v) for v in outs[(sid, (CELL, j))]] for j in range(len(cells["cell_actions"]))]
            row["y_expert"] = [float(v) for v in outs[(sid, "expert")]]
        row["expert_errors"] = list(outs[(sid, "expert_error")])
        rows.append(row)
    return pd.DataFrame(rows)


def label_stats(raw: pd.DataFrame) -> pd.DataFrame:
    """The labels of raw shard rows (``raw_rows``) of either estimator (``estimator_of``): every
    probability with its n (rollouts; first_action: per cell), leverage, gains, the cross-fitted
    ELP_net, the naive max and the route (module docstring), from ``outcome_vectors``; with
    first_action also each student probability's bounds ``p_<name>_min``/``_max``
    (``first_action_bounds``) and ``n_cells``. Their intervals depend on a confidence level,
    so they are ``label_intervals``'s."""
    est, rows = estimator_of(raw), []
    for _, r in raw.iterrows():
        row = r.to_dict()
        y = outcome_vectors(r, est)
        for name in PROB_NAMES:
            v = y["policy" if name == "base" else name]
            row[f"p_{name}"], row[f"p_{name}_n"] = float(v.mean()), int(len(v))
            if est == FIRST_ACTION and name != "expert":
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
        ties = [m for m in FORMATS if np.isclose(gains[m], best)]
        row["ELP_net_naive"] = best
        row["route_net"] = ties[0]
        row["route_ties"] = ties
        row["ELP_net"] = float(crossfit_elp(y))
        rows.append(row)
    return pd.DataFrame(rows)


def label_intervals(labeled: pd.DataFrame, confidence: float, n_bootstrap: int, seed: int) -> pd.DataFrame:
    """Per labeled snapshot: the interval of every probability (``p_<name>_lo/_hi``: Wilson;
    first_action, a student condition's: ``first_action_interval``) and the bootstrap interval of
    the cross-fitted ELP_net (``ELP_net_lo/_hi``), at ``confidence``."""
    est, rows = estimator_of(labeled), []
    for _, r in labeled.iterrows():
        y = outcome_vectors(r, est)
        row = {"snapshot_id": r["snapshot_id"]}
        for name in PROB_NAMES:
            if est == FIRST_ACTION and name != "expert":
                row[f"p_{name}_lo"], row[f"p_{name}_hi"] = first_action_interval(r, name, confidence)
                continue
            v = y["policy" if name == "base" else name]
            pr = proportion(int(v.sum()), len(v), confidence)
            row[f"p_{name}_lo"], row[f"p_{name}_hi"] = pr["lo"], pr["hi"]
        row["ELP_net_lo"], row["ELP_net_hi"] = elp_interval(
            y, n_bootstrap, confidence, derive_seed(seed, "elp", r["snapshot_id"]))
        rows.append(row)
    return pd.DataFrame(rows)


def advice_request(r, student_action: str | None) -> AdviceRequest:
    """What the teacher sees of a scored snapshot, about ``student_action``."""
    return AdviceRequest(
        env_id=r["env_id"], seed=int(r["seed"]), actions=tuple(r["actions"]), instruction=r["instruction"],
        observation=r["observation"], valid_actions=tuple(r["valid_actions"]), history=tuple(r["history"]),
        student_action=student_action,
    )  # fmt: skip


def _valid(advice, req: AdviceRequest) -> bool:
    """The advice is usable: ok, and its action one of the state's candidates (the student's
    distribution, hence p_teacher_action, is over them)."""
    return bool(advice.ok and advice.suggested_action in action_space(req.env_id).candidate_actions(req.valid_actions))


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
    first-action cells (``first_action_design``) instead of the student conditions."""
    p1 = section("phase1", cfg["phase1"])
    estimator = resolve_estimator(p1, student)
    log.info("phase1 estimator: %s (phase1.estimator %s, student %s %s)", estimator, p1["estimator"], student.name,
             "scores actions exactly" if student.exact_u else "is generate-only")  # fmt: skip
    scored = score_snapshots(snaps, student)
    reqs = [advice_request(r, r["student_action"]) for _, r in scored.iterrows()]
    advice = teacher.advise_many(reqs)
    reasons = [None if _valid(a, q) else (a.failure_reason or "suggested action not valid")
               for a, q in zip(advice, reqs)]  # fmt: skip
    kinds = [None if why is None else a.meta.get("failure_kind", "invalid_action") for a, why in zip(advice, reasons)]
    second = {}
    for k, ((_, r), a) in enumerate(zip(scored.iterrows(), advice)):
        if reasons[k] is None:
            space, cands = candidates_of(r)
            worse = contrast_action(r["student_action"], a.suggested_action, cands, r["_logprobs"], space)
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
    design = (first_action_design(good, good_adv, cdiags, student, cfg, float(p1["first_action_floor"]))
              if estimator == FIRST_ACTION else [None] * len(good_adv))  # fmt: skip
    specs = [s for (_, r), a, c, d in zip(good.iterrows(), good_adv, cdiags, design)
             for s in condition_specs(r, a, cfg, c, d and d["cell_actions"])]  # fmt: skip
    results = study_rollouts(specs, student, cfg, desc="phase1 label rollouts", progress=progress)
    return raw_rows(good, good_adv, outcomes(results), cdiags, design if estimator == FIRST_ACTION else None), failures


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
    conditions' per-rollout values (``outcome_vectors``) in place of 0/1 outcomes."""
    est, rows = estimator_of(labeled), []
    vectors = [outcome_vectors(r, est, STUDENT_CONDITIONS) for _, r in labeled.iterrows()]
    for a, b in OUTCOME_PAIRS:
        rhos = []
        for sid, y in zip(labeled["snapshot_id"], vectors):
            va, vb = (y["policy" if c == "base" else c] for c in (a, b))
            if len(va) != len(vb):
                raise ValueError(f"snapshot {sid!r}: {len(va)} rollouts of {a} but {len(vb)} of {b}, cannot pair them")
            if len(va) > 1 and np.ptp(va) > 0 and np.ptp(vb) > 0:
                rhos.append(float(np.corrcoef(va, vb)[0, 1]))
        m = mean_interval(rhos, confidence)
        rows.append(dict(pair=f"{a}~{b}", a=a, b=b, rho=m["mean"], rho_lo=m["lo"], rho_hi=m["hi"], n=m["n"],
                         n_constant=len(labeled) - len(rhos), n_snapshots=len(labeled)))  # fmt: skip
    return pd.DataFrame(rows)
