"""Phase 1: adaptive allocation of first-action rollouts (SPEC "Adaptive allocation").

Under the first-action estimator every label of a snapshot is linear in the success rates q(a)
of its cells (one per first action a, rollouts forced to a at the snapshot step, the student
after it): p_c = sum_a pi_c(a) q(a) + the mass pi_rest_c below the floor (whose q is unknown, in
[0, 1]); force = q(a*), a* the teacher's action; L_local = p_force - p_policy;
gain_net_m = p_m - p_placebo_m. ``allocate`` runs the adaptive design on such snapshots:

- every cell starts at ``n0`` rollouts;
- after each batch, every label is recomputed with an anytime-valid interval (``evaluate``):
  each cell's q has a confidence sequence (``stats.bernoulli_confseq``, a betting CS) at level
  alpha / (cells), so all of them hold at once at every look, and a label's interval is the
  range of its linear form over that box plus the floor's bound. The intervals of every label of
  a snapshot, including labels chosen by the data (the route, ELP_net's routes), hold together
  at 1 - alpha whenever the design looks or stops;
- the point estimates: q(a) the cell's success rate; the mass below the floor counted at the
  condition's mean over its cells (p_c = sum_a pi_c(a) q(a) / sum_a pi_c(a)); the route is the
  argmax of gain_net (first in FORMATS order on ties); ELP_net is cross-fitted on even / odd
  rollout indices (the route chosen on one half, its gain measured on the other, both ways,
  averaged), its interval that of the mean true gain of the two routes it used;
- a snapshot stays open while an interval straddles a decision boundary by more than epsilon
  (``open_reasons``: lo < b - epsilon and hi > b + epsilon): the L threshold, the sign of each
  gain, the selection cutoff on ELP_net, the route's argmax (the interval of the best format's
  gain minus another's straddles 0: tighter than overlapping the two gains' intervals, as the
  difference is one linear form);
- each round gives ``batch`` rollouts to every open snapshot, split among its cells below
  ``n_max`` in proportion to weight x sd (``next_batch``); a snapshot whose cells are all at
  ``n_max`` stops open.

The design draws no random number: given the outcomes (keyed streams,
``forced_first_action_draws``) it is deterministic, and a snapshot's course depends on its own
outcomes only, so its labels do not depend on which snapshots share a shard or a round. With
``n0 == n_max`` it is the fixed design; its single look at an n fixed in advance uses
Clopper-Pearson intervals (``stats.clopper_pearson``) in the same box. Every rollout drawn is
counted (``Allocated.rollouts``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from .constants import FORMATS
from .rollouts import RolloutSpec, study_rollouts
from .schemas import STUDENT_CONDITIONS
from .seeding import rollout_key
from .stats import bernoulli_confseq, clopper_pearson

log = logging.getLogger(__name__)

CONDITIONS = STUDENT_CONDITIONS  # rows of ``Cells.pi``: policy, force, the placebos, the formats
SD_PRIOR = (1.0, 1.0)  # the Beta prior of a cell's q in its allocation sd (never 0 at 0 / n or n / n)

# a draw: {(snapshot_id, cell index): rollouts wanted} -> {(snapshot_id, cell index): (rollout
# indices, 0/1 outcomes)}, the next indices of each cell
Draw = Callable[[dict[tuple[str, int], int]], dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]]


def _coefs(**weights: float) -> np.ndarray:
    v = np.zeros(len(CONDITIONS))
    for cond, w in weights.items():
        v[CONDITIONS.index(cond)] = w
    return v


def _gain(m: str) -> np.ndarray:
    return _coefs(**{m: 1.0, f"placebo_{m}": -1.0})


# every label with a fixed linear form over the conditions (route gaps and ELP_net depend on the data)
LINEAR = {
    **{f"p_{c}": _coefs(**{c: 1.0}) for c in CONDITIONS},
    "L_local": _coefs(force=1.0, policy=-1.0),
    **{f"gain_net_{m}": _gain(m) for m in FORMATS},
}


@dataclass(frozen=True)
class Design:
    """The allocation's settings: rollouts per cell at the start (``n0``) and at most
    (``n_max``), rollouts per open snapshot per round (``batch``), the margin ``epsilon``, the
    intervals' ``confidence`` and the decision boundaries (None: that boundary is not used)."""

    n0: int
    n_max: int
    batch: int
    epsilon: float
    confidence: float = 0.95
    l_threshold: float | None = None
    elp_cutoff: float | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.n0 <= self.n_max:
            raise ValueError(f"allocation needs 2 <= n0 <= n_max (ELP_net's halves), got n0={self.n0}, "
                             f"n_max={self.n_max}")  # fmt: skip
        if self.batch < 1 or self.epsilon < 0 or not 0 < self.confidence < 1:
            raise ValueError(f"allocation: batch >= 1, epsilon >= 0 and confidence in (0, 1), got batch={self.batch},"
                             f" epsilon={self.epsilon}, confidence={self.confidence}")  # fmt: skip

    @property
    def fixed(self) -> bool:
        """One look at an n fixed in advance."""
        return self.n0 == self.n_max


@dataclass(frozen=True)
class Cells:
    """One snapshot's first-action cells: their actions, each condition's exact first-step
    probability of them (``pi``: CONDITIONS x cells; force puts all its mass on the teacher's
    action) and the mass below the floor (``rest``, per condition)."""

    snapshot_id: str
    actions: tuple[str, ...]
    pi: np.ndarray
    rest: np.ndarray

    @classmethod
    def from_row(cls, row) -> Cells:
        """From a label row in the shared convention: ``cell_actions``, ``pi_<c>`` and
        ``pi_rest_<c>`` for every student condition but force, ``suggested_action`` (force's cell)."""
        sid, actions = str(row["snapshot_id"]), tuple(row["cell_actions"])
        if row["suggested_action"] not in actions:
            raise ValueError(f"snapshot {sid}: the teacher's action {row['suggested_action']!r} has no cell "
                             f"(cell_actions {list(actions)}); force needs it")  # fmt: skip
        pi, rest = [], []
        for c in CONDITIONS:
            if c == "force":
                pi.append(np.eye(len(actions))[actions.index(row["suggested_action"])])
                rest.append(0.0)
                continue
            missing = [k for k in (f"pi_{c}", f"pi_rest_{c}") if k not in row]
            if missing:
                raise KeyError(f"snapshot {sid}: no column {missing[0]!r} (the first-action convention)")
            v = np.asarray(row[f"pi_{c}"], dtype=float)
            if v.shape != (len(actions),):
                raise ValueError(f"snapshot {sid}: pi_{c} has {v.size} entries for {len(actions)} cells")
            pi.append(v)
            rest.append(float(row[f"pi_rest_{c}"]))
        return cls(sid, actions, np.array(pi), np.array(rest))

    @property
    def weight(self) -> np.ndarray:
        """Each cell's probability mass summed over the conditions."""
        return self.pi.sum(0)


@dataclass
class Outcomes:
    """The rollouts drawn so far in each cell of one snapshot: rollout indices and 0/1 outcomes."""

    idx: list[list[int]]
    y: list[list[float]]

    @classmethod
    def empty(cls, n_cells: int) -> Outcomes:
        return cls([[] for _ in range(n_cells)], [[] for _ in range(n_cells)])

    @property
    def n(self) -> np.ndarray:
        return np.array([len(v) for v in self.y])

    def add(self, cell: int, idx, y, who: str) -> None:
        idx, y = [int(i) for i in idx], [float(v) for v in y]
        if len(idx) != len(y) or len(set(idx)) != len(idx) or set(idx) & set(self.idx[cell]):
            raise ValueError(f"{who}: the draw returned {len(idx)} indices for {len(y)} outcomes, or an index "
                             f"twice (new {idx}, held {self.idx[cell]})")  # fmt: skip
        if any(v not in (0.0, 1.0) for v in y):
            raise ValueError(f"{who}: outcomes must be 0/1, got {y}")
        self.idx[cell] += idx
        self.y[cell] += y

    def means(self, parity: int | None = None) -> np.ndarray:
        """Each cell's success rate, over all its rollouts or those with index % 2 == parity."""
        out = []
        for idx, y in zip(self.idx, self.y):
            keep = [v for i, v in zip(idx, y) if parity is None or i % 2 == parity]
            if not keep:
                raise ValueError(f"a cell has no rollout with index parity {parity} (n0 >= 2 gives both halves)")
            out.append(np.mean(keep))
        return np.array(out)

    def matrix(self) -> np.ndarray:
        """Outcomes as cells x rollout index (the shared ``y_cells``), NaN where a cell has none."""
        width = 1 + max((max(i) for i in self.idx if i), default=-1)
        out = np.full((len(self.y), width), np.nan)
        for k, (idx, y) in enumerate(zip(self.idx, self.y)):
            out[k, idx] = y
        return out


# ------------------------------------------------------------------------------------ labels and intervals
@dataclass(frozen=True)
class Look:
    """The labels of a snapshot at one look: point estimate, interval (``lo``, ``hi``), the route
    and, for each other format, the interval of the route's gain minus that format's
    (``route_gap_<m>``), all in ``est`` / ``lo`` / ``hi``."""

    est: dict[str, float]
    lo: dict[str, float]
    hi: dict[str, float]
    route: str


def _point(coef: np.ndarray, cells: Cells, q: np.ndarray) -> float:
    """The linear form ``coef`` (over conditions) at cell rates q, the floor's mass at each
    condition's mean over its cells."""
    p = cells.pi @ q
    mean = p / np.maximum(cells.pi.sum(1), 1e-12)
    return float(coef @ (p + cells.rest * mean))


def _range(coef: np.ndarray, cells: Cells, lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
    """The range of the linear form ``coef`` over q in [lo, hi] per cell and any q of the floor's
    actions in [0, 1]: each condition's floor mass adds its coefficient x [0, 1]."""
    w = coef @ cells.pi
    r = coef * cells.rest
    low = np.where(w > 0, w * lo, w * hi).sum() + r[r < 0].sum()
    high = np.where(w > 0, w * hi, w * lo).sum() + r[r > 0].sum()
    return float(low), float(high)


def cell_intervals(out: Outcomes, design: Design) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's interval for q at level 1 - (1 - confidence) / cells, so that all hold at once:
    the confidence sequence, or Clopper-Pearson for the fixed design's single look."""
    alpha = (1 - design.confidence) / len(out.y)
    if design.fixed:
        return clopper_pearson([sum(v) for v in out.y], out.n, alpha)
    bounds = np.array([_confseq(len(v), alpha)[:, int(sum(v))] for v in out.y])
    return bounds[:, 0], bounds[:, 1]


@lru_cache(maxsize=4096)
def _confseq(n: int, alpha: float) -> np.ndarray:
    """``bernoulli_confseq`` after n rollouts, for every number of successes 0..n (2 x (n + 1))."""
    return np.array(bernoulli_confseq(np.arange(n + 1), n, alpha))


def evaluate(cells: Cells, out: Outcomes, design: Design) -> Look:
    """Every label of the snapshot with its interval (module docstring)."""
    q, (qlo, qhi) = out.means(), cell_intervals(out, design)
    forms = dict(LINEAR)
    gains = np.array([_point(_gain(m), cells, q) for m in FORMATS])
    route = FORMATS[int(np.argmax(gains))]
    for m in FORMATS:
        if m != route:
            forms[f"route_gap_{m}"] = _gain(route) - _gain(m)
    est = {k: _point(c, cells, q) for k, c in forms.items()}
    halves = [np.array([_point(_gain(m), cells, out.means(parity)) for m in FORMATS]) for parity in (0, 1)]
    r_even, r_odd = (int(np.argmax(g)) for g in halves)
    est["ELP_net"] = 0.5 * (halves[1][r_even] + halves[0][r_odd])
    forms["ELP_net"] = 0.5 * (_gain(FORMATS[r_even]) + _gain(FORMATS[r_odd]))
    bounds = {k: _range(c, cells, qlo, qhi) for k, c in forms.items()}
    return Look(est, {k: b[0] for k, b in bounds.items()}, {k: b[1] for k, b in bounds.items()}, route)


def boundaries(look: Look, design: Design) -> dict[str, float]:
    """Each label that meets a decision boundary, with that boundary's value."""
    out = {f"gain_net_{m}": 0.0 for m in FORMATS}
    out.update({k: 0.0 for k in look.est if k.startswith("route_gap_")})
    if design.l_threshold is not None:
        out["L_local"] = float(design.l_threshold)
    if design.elp_cutoff is not None:
        out["ELP_net"] = float(design.elp_cutoff)
    return out


def open_reasons(look: Look, design: Design) -> list[str]:
    """The labels whose interval straddles their boundary by more than epsilon."""
    eps = design.epsilon
    return [f"{k} [{look.lo[k]:.3f}, {look.hi[k]:.3f}] straddles {b:g}"
            for k, b in boundaries(look, design).items() if look.lo[k] < b - eps and look.hi[k] > b + eps]  # fmt: skip


# ------------------------------------------------------------------------------------ the design
def apportion(total: int, score: np.ndarray, room: np.ndarray) -> np.ndarray:
    """``total`` rollouts (at most ``room.sum()``) split in proportion to ``score`` with at most
    ``room`` per cell: largest remainders (ties: cell order), what a full cell cannot take going
    to the others in proportion again; equal shares where every score with room is 0."""
    out = np.zeros(len(score), dtype=int)
    left = min(int(total), int(room.sum()))
    while left > 0:
        free = room - out
        share = np.where(free > 0, np.maximum(score, 0.0), 0.0)
        if share.sum() <= 0:
            share = (free > 0).astype(float)
        quota = left * share / share.sum()
        take = np.minimum(np.floor(quota).astype(int), free)
        for k in np.lexsort((np.arange(len(score)), -(quota - np.floor(quota)))):
            if take.sum() >= left:
                break
            if take[k] < free[k] and share[k] > 0:
                take[k] += 1
        out += take
        left -= int(take.sum())
    return out


def next_batch(cells: Cells, out: Outcomes, design: Design) -> np.ndarray:
    """Rollouts per cell for the snapshot's next round: ``batch`` in proportion to the cell's
    weight (its mass over the conditions) x sd, sd = sqrt(q (1 - q)) at q's posterior mean under
    the Beta ``SD_PRIOR``; none beyond ``n_max``."""
    a, b = SD_PRIOR
    n = out.n
    q = (np.array([sum(v) for v in out.y]) + a) / (n + a + b)
    return apportion(design.batch, cells.weight * np.sqrt(q * (1 - q)), design.n_max - n)


@dataclass
class Allocated:
    """One snapshot's allocation: its outcomes, the labels at its last look, how it stopped
    (``decided``, or ``n_max`` with the reasons still open), rounds and rollouts spent."""

    cells: Cells
    outcomes: Outcomes
    look: Look | None = None
    stop: str = ""
    still_open: list[str] = field(default_factory=list)
    rounds: int = 0

    @property
    def rollouts(self) -> int:
        return int(self.outcomes.n.sum())


def _request(sizes: dict[str, np.ndarray]) -> dict[tuple[str, int], int]:
    return {(sid, k): int(m) for sid, v in sizes.items() for k, m in enumerate(v) if m > 0}


def allocate(snapshots: list[Cells], draw: Draw, design: Design) -> list[Allocated]:
    """Run the design (module docstring) on ``snapshots`` in rounds, asking ``draw`` for every
    open snapshot's next rollouts at once; the allocations in the order of ``snapshots``."""
    allocs = {c.snapshot_id: Allocated(c, Outcomes.empty(len(c.actions))) for c in snapshots}
    if len(allocs) != len(snapshots):
        raise ValueError("allocate: snapshot ids must be unique")
    sizes = {sid: np.full(len(a.cells.actions), design.n0) for sid, a in allocs.items()}
    while sizes:
        request = _request(sizes)
        got = draw(request)
        if set(got) != set(request):
            raise ValueError(f"the draw answered {sorted(set(got) ^ set(request))[:5]} unlike the request")
        for (sid, k), (idx, y) in got.items():
            if len(y) != request[(sid, k)]:
                raise ValueError(f"snapshot {sid} cell {k}: asked {request[(sid, k)]} rollouts, got {len(y)}")
            allocs[sid].outcomes.add(k, idx, y, f"snapshot {sid} cell {k}")
        nxt = {}
        for sid in sizes:
            a = allocs[sid]
            a.rounds += 1
            a.look = evaluate(a.cells, a.outcomes, design)
            a.still_open = open_reasons(a.look, design)
            more = next_batch(a.cells, a.outcomes, design) if a.still_open else None
            if more is None:
                a.stop = "decided"
            elif not more.any():
                a.stop = "n_max"
            else:
                nxt[sid] = more
        sizes = nxt
    return [allocs[c.snapshot_id] for c in snapshots]


# ------------------------------------------------------------------------------------ the live path
def design_of(cfg: dict) -> Design:
    """The config's allocation design (``phase1``: n0, n_max, batch, epsilon, confidence,
    elp_cutoff; the L threshold from ``phase1.quadrants`` in manual mode, none in auto mode, where
    it exists only once every snapshot is labeled)."""
    p1 = cfg["phase1"]
    q = p1.get("quadrants", {})
    l_thr = q.get("l_threshold") if q.get("mode") == "manual" else None
    return Design(n0=int(p1["n0"]), n_max=int(p1["n_max"]), batch=int(p1["batch"]), epsilon=float(p1["epsilon"]),
                  confidence=float(p1["confidence"]), l_threshold=l_thr, elp_cutoff=p1.get("elp_cutoff"))  # fmt: skip


def forced_first_action_draws(rows: pd.DataFrame, student, cfg: dict, progress: bool = False) -> Draw:
    """The live draw over label rows (``snapshot_id``, ``env_id``, ``seed``, ``actions``,
    ``cell_actions``): rollout i of cell a plays the cell's action at the snapshot step, then the
    student, with the key rollout_key(seed, "phase1", snapshot, i), shared by every cell of the
    snapshot; each request is answered with each cell's next indices, all in one
    ``study_rollouts`` call."""
    by_id = {str(r["snapshot_id"]): r for _, r in rows.iterrows()}
    next_index: dict[tuple[str, int], int] = defaultdict(int)

    def draw(request: dict[tuple[str, int], int]) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
        specs = []
        for (sid, k), m in request.items():
            r, start = by_id[sid], next_index[(sid, k)]
            for i in range(start, start + m):
                specs.append(RolloutSpec(env_id=r["env_id"], seed=int(r["seed"]), prefix=tuple(r["actions"]),
                                         forced=(r["cell_actions"][k],), key=(sid, k, i),
                                         stream=rollout_key(cfg["seed"], "phase1", sid, i)))  # fmt: skip
            next_index[(sid, k)] = start + m
        got: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
        for res in study_rollouts(specs, student, cfg, desc="phase1 adaptive rollouts", progress=progress):
            sid, k, i = res.spec.key
            got[(sid, k)][i] = float(res.success)
        return {key: (np.array(sorted(v)), np.array([v[i] for i in sorted(v)])) for key, v in got.items()}

    return draw


def allocate_rows(rows: pd.DataFrame, student, cfg: dict, progress: bool = False) -> pd.DataFrame:
    """The adaptive design on label rows (``Cells.from_row``, ``forced_first_action_draws``) with
    the config's settings (``design_of``): per row, ``y_cells`` (cells x rollout index, NaN past a
    cell's last rollout), ``alloc_n`` (rollouts per cell) and the design's record
    (``alloc_rollouts``, ``alloc_rounds``, ``alloc_stop``, ``alloc_open``: the intervals still
    straddling where it stopped at n_max)."""
    design = design_of(cfg)
    allocs = allocate([Cells.from_row(r) for _, r in rows.iterrows()],
                      forced_first_action_draws(rows, student, cfg, progress), design)  # fmt: skip
    spent = sum(a.rollouts for a in allocs)
    log.info("adaptive allocation: %d snapshots, %d rollouts (fixed n_max would spend %d), %d stopped at n_max",
             len(allocs), spent, design.n_max * sum(len(a.cells.actions) for a in allocs),
             sum(a.stop == "n_max" for a in allocs))  # fmt: skip
    return pd.DataFrame({
        "snapshot_id": [a.cells.snapshot_id for a in allocs],
        "y_cells": [[list(v) for v in a.outcomes.matrix()] for a in allocs],
        "alloc_n": [[int(v) for v in a.outcomes.n] for a in allocs],
        "alloc_rollouts": [a.rollouts for a in allocs],
        "alloc_rounds": [a.rounds for a in allocs],
        "alloc_stop": [a.stop for a in allocs],
        "alloc_open": [a.still_open for a in allocs],
    }, index=rows.index)  # fmt: skip
