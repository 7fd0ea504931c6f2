#!/usr/bin/env python
"""The pre-registered acceptance benchmark of adaptive allocation (issue 18, item 3): replayed
offline on stored first-action outcomes, does the adaptive design (``teachable.allocation``) make
the decisions of a fixed design, with intervals as narrow near the boundaries, for at most half
its rollouts?

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_allocation.py --reference labels_n64.parquet
    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_allocation.py --synthetic 40

The reference: snapshots labeled at n = 64 rollouts per first-action cell, one row each in the
shared convention (``snapshot_id``, ``cell_actions``, ``y_cells`` cells x 64, ``pi_<c>`` and
``pi_rest_<c>`` for every student condition but force, ``suggested_action``), from
``--reference`` (the first-action benchmark's Parquet), or ``--synthetic N`` snapshots drawn from
this model (seeded by ``--seed``): 2 + Binomial(4, 1/2) cells, cell 0 the teacher's action;
q(a) ~ Beta(0.4, 0.4), outcomes Bernoulli(q(a)); floor mass ~ U(0, 0.03) shared by every
condition; pi_policy = (1 - floor) Dirichlet(1, ..., 1); each placebo = (1 - floor)
Dirichlet(200 pi_policy / (1 - floor)); each format = (1 - s) its placebo + s (1 - floor) at
the teacher's action, s ~ Beta(2, 2) (demo), Beta(1, 4) (hint), Beta(1, 3) (contrast). The
output says which reference it used.

Reference values: every label (``allocation.evaluate``) on all 64 rollouts per cell (ELP_net's
halves: even / odd stored index), read as a fixed design (Clopper-Pearson box). Boundaries: the
L threshold is the ``--l-quantile`` quantile of the reference L_local (the quadrants' automatic
rule), the selection cutoff the midpoint between the ``--top-k``-th and next reference ELP_net,
gains at 0, the route at the argmax.

Designs, each replayed on the same stored outcomes over ``--permutations`` random orders of the
64 rollouts (one order per snapshot and permutation, shared by its cells, which share streams):
fixed at n = 8 and n = 32 per cell (the first n of the order: a random subset; Clopper-Pearson
box) and adaptive (``--n0``, ``--n-max``, ``--batch``, ``--epsilon``; rollout index = position in
the order; confidence sequences). Every rollout drawn is counted. Per design, over permutations:
- decision agreement: the share of (snapshot, decision) pairs whose reference lies more than
  epsilon from the boundary (route: the reference's best gain more than epsilon above the
  second) where the design decides as the reference: L above the threshold, each gain's sign,
  ELP_net above the cutoff, the route;
- the widest near-boundary interval: the widest interval among labels whose reference lies
  within epsilon of their boundary (route: the widest gap interval of the route), per
  permutation; the mean over permutations;
- coverage: the share of intervals (every p_c, L_local, each gain_net, ELP_net) that hold the
  reference value.

Pre-registered criteria (adaptive vs fixed n = 32), each printed PASS or FAIL with its numbers:
agreement >= fixed-32's - 0.01; widest near-boundary interval <= fixed-32's; coverage >= 0.93;
the rollout ratio adaptive / fixed-32 (snapshots' rollouts averaged over permutations) with the
upper bound of a one-sided 95 % percentile bootstrap over snapshots <= 0.5.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from teachable.allocation import CONDITIONS, Cells, Design, LINEAR, allocate, evaluate  # noqa: E402
from teachable.constants import FORMATS  # noqa: E402
from teachable.seeding import rng_for  # noqa: E402
from teachable.stats import cluster_bootstrap_rate  # noqa: E402

N_REF = 64
FIXED = (8, 32)
AGREEMENT_TOL = 0.01
MIN_COVERAGE = 0.93
MAX_RATIO = 0.5
COVERED = (*(f"p_{c}" for c in CONDITIONS), "L_local", *(f"gain_net_{m}" for m in FORMATS), "ELP_net")
SYNTHETIC_MIX = {"demo": (2.0, 2.0), "hint": (1.0, 4.0), "contrast": (1.0, 3.0)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--reference", type=Path, help="Parquet of snapshots labeled at n = 64 per cell")
    src.add_argument("--synthetic", type=int, metavar="N", help="draw N reference snapshots from the stated model")
    p.add_argument("--permutations", type=int, default=200, help="random orders of the stored rollouts")
    p.add_argument("--n0", type=int, default=8)
    p.add_argument("--n-max", type=int, default=N_REF)
    p.add_argument("--batch", type=int, default=32, help="rollouts per open snapshot per round")
    p.add_argument("--epsilon", type=float, default=0.05)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--l-quantile", type=float, default=0.5, help="the L threshold's quantile of the reference L_local")
    p.add_argument("--top-k", type=int, default=10, help="the selection cutoff: between the K-th and next ELP_net")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-bootstrap", type=int, default=2000)
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------ the reference
def synthetic_reference(n: int, seed: int) -> pd.DataFrame:
    """``n`` snapshots from the model of the module docstring, in the shared convention."""
    rng = rng_for(seed, "bench_allocation", "synthetic")
    rows = []
    for s in range(n):
        k = 2 + rng.binomial(4, 0.5)
        floor = rng.uniform(0, 0.03)
        q = rng.beta(0.4, 0.4, size=k)
        policy = (1 - floor) * rng.dirichlet(np.ones(k))
        star = np.eye(k)[0] * (1 - floor)
        row = {"snapshot_id": f"syn{s:03d}", "cell_actions": [f"a{i}" for i in range(k)], "suggested_action": "a0",
               "y_cells": [list((rng.random(N_REF) < qa).astype(float)) for qa in q],
               "pi_policy": list(policy), "pi_rest_policy": floor}  # fmt: skip
        for m, (a, b) in SYNTHETIC_MIX.items():
            placebo = (1 - floor) * rng.dirichlet(200 * policy / (1 - floor) + 1e-9)
            mix = rng.beta(a, b)
            row[f"pi_placebo_{m}"], row[f"pi_rest_placebo_{m}"] = list(placebo), floor
            row[f"pi_{m}"], row[f"pi_rest_{m}"] = list((1 - mix) * placebo + mix * star), floor
        rows.append(row)
    return pd.DataFrame(rows)


def outcomes_of(ref: pd.DataFrame, where: str) -> list[np.ndarray]:
    """Each row's ``y_cells`` as a cells x 64 array of 0/1, checked."""
    out = []
    for _, r in ref.iterrows():
        y = np.array([np.asarray(v, dtype=float) for v in r["y_cells"]])
        if y.ndim != 2 or y.shape[1] < N_REF or not np.isin(y[:, :N_REF], (0.0, 1.0)).all():
            raise ValueError(f"{where}: snapshot {r['snapshot_id']}: y_cells must be cells x >= {N_REF} 0/1 outcomes, "
                             f"got shape {y.shape}")  # fmt: skip
        out.append(y[:, :N_REF])
    return out


def replay(stored: dict[str, np.ndarray], orders: dict[str, np.ndarray]):
    """A draw that answers from stored outcomes: position i of a cell is stored rollout orders[sid][i]."""
    taken: dict[tuple[str, int], int] = {}

    def draw(request):
        out = {}
        for (sid, k), m in request.items():
            start = taken.get((sid, k), 0)
            pos = np.arange(start, start + m)
            if pos[-1] >= len(orders[sid]):
                raise ValueError(f"snapshot {sid} cell {k}: the design asked past the {len(orders[sid])} stored rollouts")
            out[(sid, k)] = (pos, stored[sid][k, orders[sid][pos]])
            taken[(sid, k)] = start + m
        return out

    return draw


# ------------------------------------------------------------------------------------ scoring a design
def decisions(look, bounds: dict) -> dict[str, object]:
    """The design's decisions at a look: L and ELP_net above their boundary, each gain > 0, the route."""
    out = {f"gain_net_{m}": look.est[f"gain_net_{m}"] > 0 for m in FORMATS}
    out["route"] = look.route
    for k in ("L_local", "ELP_net"):
        out[k] = look.est[k] > bounds[k]
    return out


def route_gap(look) -> float:
    """The reference's margin of its route: best gain_net minus the second best."""
    g = np.sort([look.est[f"gain_net_{m}"] for m in FORMATS])
    return float(g[-1] - g[-2])


def score(allocs, refs, bounds: dict, eps: float) -> dict:
    """Agreement pairs, the widest near-boundary interval, coverage and rollouts of one replay."""
    agree, near, covered = [], [], []
    for a, ref in zip(allocs, refs):
        mine, theirs = decisions(a.look, bounds), decisions(ref, bounds)
        for k, b in bounds.items():
            label = k if k != "route" else None
            far = route_gap(ref) > eps if label is None else abs(ref.est[k] - b) > eps
            if far:
                agree.append(mine[k] == theirs[k])
            elif label is None:
                near.extend(a.look.hi[g] - a.look.lo[g] for g in a.look.est if g.startswith("route_gap_"))
            else:
                near.append(a.look.hi[k] - a.look.lo[k])
        covered.extend(a.look.lo[k] - 1e-12 <= ref.est[k] <= a.look.hi[k] + 1e-12 for k in COVERED)
    return {"agree": np.array(agree, float), "widest": max(near, default=np.nan), "covered": np.array(covered, float),
            "rollouts": np.array([a.rollouts for a in allocs]), "decided": np.mean([a.stop == "decided" for a in allocs])}  # fmt: skip


def summarize(runs: list[dict]) -> dict:
    agree = np.array([r["agree"].mean() for r in runs])
    widest = np.array([r["widest"] for r in runs])
    return {"agree": agree.mean(), "agree_lo": np.quantile(agree, 0.025), "agree_hi": np.quantile(agree, 0.975),
            "pairs": len(runs[0]["agree"]), "widest": np.nanmean(widest), "widest_max": np.nanmax(widest),
            "coverage": np.mean([r["covered"].mean() for r in runs]), "decided": np.mean([r["decided"] for r in runs]),
            "per_snapshot": np.mean([r["rollouts"] for r in runs], axis=0)}  # fmt: skip


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    if args.reference is not None:
        ref_rows = pd.read_parquet(args.reference)
        source = f"reference: {args.reference} ({len(ref_rows)} snapshots labeled at n = {N_REF} per cell)"
    else:
        ref_rows = synthetic_reference(args.synthetic, args.seed)
        source = (f"reference: SYNTHETIC, {args.synthetic} snapshots drawn from the model of --help (seed {args.seed}),"
                  f" n = {N_REF} per cell -- not real labels")  # fmt: skip
    cells = [Cells.from_row(r) for _, r in ref_rows.iterrows()]
    stored = dict(zip((c.snapshot_id for c in cells), outcomes_of(ref_rows, str(args.reference or "synthetic"))))
    full = Design(n0=N_REF, n_max=N_REF, batch=1, epsilon=args.epsilon, confidence=args.confidence)
    ident = {sid: np.arange(N_REF) for sid in stored}
    refs = [a.look for a in allocate(cells, replay(stored, ident), full)]
    elp = np.sort([r.est["ELP_net"] for r in refs])[::-1]
    if not 0 < args.top_k < len(elp):
        raise SystemExit(f"--top-k {args.top_k} must lie in (0, {len(elp)}) snapshots")
    bounds = {"L_local": float(np.quantile([r.est["L_local"] for r in refs], args.l_quantile)),
              "ELP_net": float((elp[args.top_k - 1] + elp[args.top_k]) / 2),
              **{f"gain_net_{m}": 0.0 for m in FORMATS}, "route": None}  # fmt: skip
    designs = {f"fixed-{n}": Design(n0=n, n_max=n, batch=1, epsilon=args.epsilon, confidence=args.confidence)
               for n in FIXED}  # fmt: skip
    designs["adaptive"] = Design(n0=args.n0, n_max=args.n_max, batch=args.batch, epsilon=args.epsilon,
                                 confidence=args.confidence, l_threshold=bounds["L_local"],
                                 elp_cutoff=bounds["ELP_net"])  # fmt: skip
    runs = {name: [] for name in designs}
    for p in range(args.permutations):
        orders = {sid: rng_for(args.seed, "bench_allocation", "order", p, sid).permutation(N_REF) for sid in stored}
        for name, design in designs.items():
            runs[name].append(score(allocate(cells, replay(stored, orders), design), refs, bounds, args.epsilon))
    res = {name: summarize(r) for name, r in runs.items()}
    n_cells = np.array([len(c.actions) for c in cells])
    ratio = cluster_bootstrap_rate(res["adaptive"]["per_snapshot"], 32 * n_cells, confidence=0.90,
                                   n_resamples=args.n_bootstrap, seed=args.seed)  # fmt: skip

    print(source)
    print(f"{len(cells)} snapshots, {n_cells.sum()} cells ({n_cells.min()}-{n_cells.max()} per snapshot); "
          f"{args.permutations} permutations; confidence {args.confidence}, epsilon {args.epsilon}")
    print(f"boundaries: L threshold {bounds['L_local']:.3f} (quantile {args.l_quantile} of the reference L_local), "
          f"selection cutoff {bounds['ELP_net']:.3f} (top {args.top_k} ELP_net), gains at 0, the route")
    print(f"adaptive: n0 {args.n0}, n_max {args.n_max}, batch {args.batch} per open snapshot per round\n")
    print("| design | rollouts per cell | decision agreement [2.5 %, 97.5 % over permutations] | pairs | "
          "widest near-boundary interval (mean; max) | coverage |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in res.items():
        print(f"| {name} | {r['per_snapshot'].sum() / n_cells.sum():.1f} | {r['agree']:.3f} [{r['agree_lo']:.3f}, "
              f"{r['agree_hi']:.3f}] | {r['pairs']} | {r['widest']:.3f}; {r['widest_max']:.3f} | {r['coverage']:.3f} |")
    a, f = res["adaptive"], res["fixed-32"]
    print(f"\nadaptive: {a['decided']:.0%} of the snapshots decided before n_max\n")
    print("pre-registered criteria (adaptive vs fixed-32):")
    print(f"- decision agreement: {a['agree']:.3f} vs {f['agree']:.3f} (required >= {f['agree'] - AGREEMENT_TOL:.3f}): "
          f"{verdict(a['agree'] >= f['agree'] - AGREEMENT_TOL)}")
    print(f"- widest near-boundary interval: {a['widest']:.3f} vs {f['widest']:.3f} (required <=): "
          f"{verdict(a['widest'] <= f['widest'])}")
    print(f"- coverage of the reference values: {a['coverage']:.3f} (required >= {MIN_COVERAGE}): "
          f"{verdict(a['coverage'] >= MIN_COVERAGE)}")
    print(f"- rollouts adaptive / fixed-32: {ratio['value']:.3f}, upper 95 % bound {ratio['hi']:.3f} (bootstrap over "
          f"{ratio['n_clusters']} snapshots; required <= {MAX_RATIO}): {verdict(ratio['hi'] <= MAX_RATIO)}")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
