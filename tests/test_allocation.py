"""Adaptive allocation: the confidence sequence covers, decided snapshots stop, undecided ones run
to n_max, the design is deterministic and independent of grouping, every rollout is counted."""

import numpy as np
import pandas as pd
import pytest

from teachable import allocation
from teachable.allocation import CONDITIONS, Cells, Design, Outcomes, allocate, apportion, design_of, evaluate
from teachable.config import section
from teachable.constants import FORMATS
from teachable.policies.base import Policy
from teachable.seeding import rng_for
from teachable.stats import bernoulli_confseq, clopper_pearson


# ------------------------------------------------------------------------------------ intervals
@pytest.mark.parametrize("q", [0.03, 0.3, 0.5, 0.85])
def test_confidence_sequence_covers_at_every_n_at_its_level(q):
    """300 Bernoulli sequences of 128: the share whose sequence misses q at ANY n stays under
    alpha (plus slack), and the interval is informative (not [0, 1]) at n = 64."""
    alpha, rng = 0.1, np.random.default_rng(int(q * 100))
    x = rng.random((300, 128)) < q
    lo, hi = bernoulli_confseq(np.cumsum(x, 1), np.arange(1, 129), alpha)
    assert ((lo > q) | (hi < q)).any(1).mean() <= alpha + 0.03
    assert (hi - lo)[:, 63].mean() < 0.42


def test_confidence_sequence_is_wider_than_one_fixed_look_and_holds_the_rate():
    s, n = np.arange(0, 33), 32
    lo, hi = bernoulli_confseq(s, n, 0.05)
    cp_lo, cp_hi = clopper_pearson(s, n, 0.05)
    assert np.all(lo <= s / n) and np.all(s / n <= hi)
    assert np.all(lo <= cp_lo + 1e-9) and np.all(hi >= cp_hi - 1e-9)
    assert bernoulli_confseq(0, 0, 0.05) == (0.0, 1.0)


def test_clopper_pearson_is_scipys_exact_interval():
    from scipy.stats import binomtest

    ci = binomtest(7, 20).proportion_ci(0.9, method="exact")
    assert np.allclose(clopper_pearson(7, 20, 0.1), (ci.low, ci.high))


# ------------------------------------------------------------------------------------ a snapshot's labels
def cells(sid="s", pi_policy=(0.5, 0.5), shifts=(0.0, 0.0, 0.0), rest=0.0) -> Cells:
    """Two cells, cell 0 the teacher's action; each format moves ``shift`` of its placebo's mass
    (= the policy's) to cell 0."""
    pol = np.asarray(pi_policy, float) * (1 - rest)
    row = {"snapshot_id": sid, "cell_actions": ["a", "b"], "suggested_action": "a"}
    for c in CONDITIONS:
        row[f"pi_{c}"], row[f"pi_rest_{c}"] = pol, rest
    for m, s in zip(FORMATS, shifts):
        row[f"pi_{m}"] = (1 - s) * pol + s * (1 - rest) * np.eye(2)[0]
    return Cells.from_row(row)


def fixed_outcomes(q: dict, n: int) -> Outcomes:
    """Cell k's first n outcomes with a success rate of exactly q[k] (successes first)."""
    out = Outcomes.empty(len(q))
    for k, v in q.items():
        out.add(k, range(n), [float(i < round(v * n)) for i in range(n)], "test")
    return out


def test_labels_are_the_first_action_identity_with_intervals_that_hold_them():
    c = cells(pi_policy=(0.25, 0.75), shifts=(0.8, 0.2, 0.0), rest=0.1)
    y = Outcomes.empty(2)
    y.add(0, range(8), [1, 1, 1, 0, 1, 1, 0, 1], "t")  # even 3/4, odd 3/4
    y.add(1, range(8), [0, 1, 0, 0, 1, 0, 0, 0], "t")  # even 1/4, odd 1/4... index 1 and 4
    look = evaluate(c, y, Design(n0=8, n_max=8, batch=1, epsilon=0.0))
    q = np.array([6 / 8, 2 / 8])
    p_pol = (0.9 * np.array([0.25, 0.75])) @ q / 0.9  # the floor's mass at the condition's mean
    assert look.est["p_policy"] == pytest.approx(p_pol)
    assert look.est["L_local"] == pytest.approx(q[0] - p_pol)
    assert look.est["gain_net_demo"] == pytest.approx(0.8 * (q[0] - p_pol))
    assert look.est["gain_net_contrast"] == pytest.approx(0.0) and look.route == "demo"
    for k in ("p_policy", "L_local", "gain_net_demo", "gain_net_hint", "ELP_net", "route_gap_hint"):
        assert look.lo[k] <= look.est[k] <= look.hi[k], k
    # the floor's mass is unknown: the interval of p_policy spans at least it
    assert look.hi["p_policy"] - look.lo["p_policy"] >= 0.1


def test_elp_net_is_cross_fitted_on_even_and_odd_rollout_indices():
    c = cells(pi_policy=(0.5, 0.5), shifts=(0.6, 0.3, 0.0))
    y = Outcomes.empty(2)
    y.add(0, range(4), [1, 0, 1, 0], "t")  # even indices all succeed, odd all fail
    y.add(1, range(4), [0, 0, 0, 1], "t")
    look = evaluate(c, y, Design(n0=4, n_max=4, batch=1, epsilon=0.0))
    q_even, q_odd = np.array([1.0, 0.0]), np.array([0.0, 0.5])
    gain = lambda s, q: s * (q[0] - 0.5 * q.sum())  # noqa: E731
    g_even = [gain(s, q_even) for s in (0.6, 0.3, 0.0)]
    g_odd = [gain(s, q_odd) for s in (0.6, 0.3, 0.0)]
    expect = 0.5 * (g_odd[int(np.argmax(g_even))] + g_even[int(np.argmax(g_odd))])
    assert look.est["ELP_net"] == pytest.approx(expect)


# ------------------------------------------------------------------------------------ the design
class Replay:
    """A draw from fixed per-cell outcome functions, counting every rollout it hands out."""

    def __init__(self, outcome):
        self.outcome, self.next, self.spent = outcome, {}, 0

    def __call__(self, request):
        out = {}
        for (sid, k), m in request.items():
            start = self.next.get((sid, k), 0)
            idx = np.arange(start, start + m)
            out[(sid, k)] = (idx, np.array([self.outcome(sid, k, i) for i in idx], float))
            self.next[(sid, k)] = start + m
            self.spent += m
        return out


def keyed(seed: int, q: dict):
    """Outcome of rollout i of cell k of snapshot sid: Bernoulli(q[sid][k]) from its own key."""
    return lambda sid, k, i: float(rng_for(seed, sid, k, i).random() < q[sid][k])


def test_a_snapshot_far_from_every_boundary_stops_at_n0():
    c = cells(pi_policy=(0.0, 1.0))  # every condition alike but force: gains and route gaps are exactly 0
    draw = Replay(lambda sid, k, i: float(k == 0))  # q(a*) = 1, the other cell 0: L = 1
    design = Design(n0=8, n_max=64, batch=16, epsilon=0.05, l_threshold=-0.5, elp_cutoff=0.5)
    (a,) = allocate([c], draw, design)
    assert a.stop == "decided" and a.still_open == [] and a.rounds == 1
    assert list(a.outcomes.n) == [8, 8] and a.rollouts == draw.spent == 16


def test_a_snapshot_on_a_boundary_runs_to_n_max():
    c = cells(pi_policy=(0.5, 0.5))
    draw = Replay(lambda sid, k, i: float(i % 2))  # both cells at q = 1/2: L = 0, on its threshold
    design = Design(n0=8, n_max=40, batch=12, epsilon=0.02, l_threshold=0.0)
    (a,) = allocate([c], draw, design)
    assert a.stop == "n_max" and any(r.startswith("L_local") for r in a.still_open)
    assert list(a.outcomes.n) == [40, 40] and a.rollouts == draw.spent == 80
    assert a.rounds == 1 + 64 // 12 + 1  # 8 + 8, 5 rounds of 12, then the last 4


def test_rollouts_are_counted_and_capped():
    q = {f"s{j}": {0: 0.5, 1: 0.02, 2: 0.5} for j in range(4)}
    many = [Cells.from_row(row3(f"s{j}")) for j in range(4)]
    draw = Replay(keyed(1, q))
    allocs = allocate(many, draw, Design(n0=4, n_max=30, batch=10, epsilon=0.0, l_threshold=0.0))
    assert sum(a.rollouts for a in allocs) == draw.spent > 4 * 3 * 4
    for a in allocs:
        n = a.outcomes.n
        assert n.max() <= 30 and n.min() >= 4 and a.rollouts == n.sum() == np.isfinite(a.outcomes.matrix()).sum()


def test_the_next_batch_goes_where_weight_x_sd_is():
    """Cell 2 carries the most mass and q = 1/2, cell 0 less mass at q = 1/2, cell 1 little mass
    at q = 0: 12 rollouts split 2 > 0 > 1, none past n_max."""
    c = Cells.from_row(row3("s"))
    y = fixed_outcomes({0: 0.5, 1: 0.0, 2: 0.5}, 8)
    more = allocation.next_batch(c, y, Design(n0=8, n_max=64, batch=12, epsilon=0.0))
    assert more.sum() == 12 and more[2] > more[0] > more[1]
    assert list(allocation.next_batch(c, y, Design(n0=8, n_max=9, batch=12, epsilon=0.0))) == [1, 1, 1]


def row3(sid: str) -> dict:
    """A label row in the shared convention: three cells, cell 0 the teacher's action, each
    format a share of its placebo's (= the policy's) mass moved to it."""
    pol = np.array([0.2, 0.1, 0.7])
    row = {"snapshot_id": sid, "cell_actions": ["a", "b", "c"], "suggested_action": "a"}
    for cond in CONDITIONS:
        row[f"pi_{cond}"], row[f"pi_rest_{cond}"] = pol, 0.0
    for m, s in zip(FORMATS, (0.5, 0.2, 0.1)):
        row[f"pi_{m}"] = (1 - s) * pol + s * np.eye(3)[0]
    return row


def test_the_design_is_deterministic_and_does_not_depend_on_grouping():
    """Same seed, same allocations; each snapshot alone (one per shard) or all together, the same."""
    rng = np.random.default_rng(5)
    snaps = [Cells.from_row(row3(f"s{j}")) for j in range(6)]
    q = {c.snapshot_id: dict(enumerate(rng.random(3))) for c in snaps}
    design = Design(n0=4, n_max=32, batch=8, epsilon=0.05, l_threshold=0.1, elp_cutoff=0.05)

    def run(groups):
        out = {}
        for g in groups:
            for a in allocate(g, Replay(keyed(7, q)), design):
                out[a.cells.snapshot_id] = (a.outcomes.idx, a.outcomes.y, a.look.est, a.stop, a.rounds)
        return out

    together = run([snaps])
    assert together == run([snaps]) == run([[c] for c in snaps]) == run([snaps[::-1]])
    other_seed = {}
    for a in allocate(snaps, Replay(keyed(8, q)), design):
        other_seed[a.cells.snapshot_id] = (a.outcomes.idx, a.outcomes.y, a.look.est, a.stop, a.rounds)
    assert other_seed != together


def test_apportion_is_proportional_capped_and_exact():
    assert list(apportion(10, np.array([1.0, 1.0, 2.0]), np.array([10, 10, 10]))) == [3, 2, 5]
    assert list(apportion(10, np.array([1.0, 1.0, 2.0]), np.array([10, 10, 1]))) == [5, 4, 1]
    assert list(apportion(10, np.array([0.0, 0.0]), np.array([3, 3]))) == [3, 3]  # no room for more


def test_a_draw_that_answers_wrongly_is_an_error_naming_the_cell():
    def bad(request):
        return {key: (np.arange(m), np.zeros(m - 1)) for key, m in request.items()}

    with pytest.raises(ValueError, match="cell 0"):
        allocate([cells()], bad, Design(n0=4, n_max=8, batch=4, epsilon=0.0))


def test_config_design_and_its_checks():
    p1 = section("phase1", {"allocation": "adaptive", "quadrants": {"mode": "manual", "u_threshold": 1.0,
                                                                      "l_threshold": 0.2}})  # fmt: skip
    d = design_of({"phase1": p1})
    assert (d.n0, d.n_max, d.batch, d.epsilon, d.l_threshold, d.elp_cutoff) == (8, 64, 32, 0.05, 0.2, None)
    assert design_of({"phase1": section("phase1", {})}).l_threshold is None  # auto mode: no L boundary
    with pytest.raises(ValueError, match="n0=9, n_max=8"):
        Design(n0=9, n_max=8, batch=1, epsilon=0.0)
    with pytest.raises(ValueError, match="phase1.epsilon"):
        section("phase1", {"epsilon": -1})


def test_a_row_without_its_teachers_cell_or_a_pi_column_is_named():
    row = row3("s")
    with pytest.raises(ValueError, match="teacher's action 'z' has no cell"):
        Cells.from_row({**row, "suggested_action": "z"})
    with pytest.raises(KeyError, match="pi_hint"):
        Cells.from_row({k: v for k, v in row.items() if k != "pi_hint"})


# ------------------------------------------------------------------------------------ the live draw
class UniformPolicy(Policy):
    name = "uniform"

    def action_logprobs(self, contexts):
        return [np.full(len(c.valid_actions), -np.log(len(c.valid_actions))) for c in contexts]


def test_live_draws_force_the_cells_action_with_the_snapshots_keyed_streams(monkeypatch):
    """Real BabyAI rollouts: each cell's rollouts start with its action, rollout i of every cell
    has the key of rollout i of the snapshot, and each request continues the cell's indices."""
    from teachable.envs import make_env
    from teachable.seeding import rollout_key

    env_id = "BabyAI-GoToLocal-v0"
    obs = make_env(env_id, max_steps=8).reset(3)
    row = {**row3("snap"), "env_id": env_id, "seed": 3, "actions": [],
           "cell_actions": ["turn left", "turn right", "go forward"], "suggested_action": "turn left"}  # fmt: skip
    assert set(row["cell_actions"]) <= set(obs.valid_actions)
    cfg = {"seed": 11, "env": {"id": env_id, "max_steps": 8, "history_len": 2}, "student": {"temperature": 1.0},
           "phase1": section("phase1", {"n0": 2, "n_max": 4, "batch": 3})}  # fmt: skip
    seen = []
    real = allocation.study_rollouts
    monkeypatch.setattr(allocation, "study_rollouts", lambda specs, *a, **k: seen.extend(specs) or real(specs, *a, **k))
    draw = allocation.forced_first_action_draws(pd.DataFrame([row]), UniformPolicy(), cfg)
    first = draw({("snap", 0): 2, ("snap", 2): 1})
    second = draw({("snap", 0): 2})
    assert list(first[("snap", 0)][0]) == [0, 1] and list(second[("snap", 0)][0]) == [2, 3]
    assert list(first[("snap", 2)][0]) == [0]
    for s in seen:
        _, k, i = s.key
        assert s.forced == (row["cell_actions"][k],) and s.stream == rollout_key(11, "phase1", "snap", i)
    out = allocation.allocate_rows(pd.DataFrame([row]), UniformPolicy(), cfg)
    n = out.iloc[0]["alloc_n"]
    assert out.iloc[0]["alloc_rollouts"] == sum(n) and all(2 <= v <= 4 for v in n)
    assert np.asarray(out.iloc[0]["y_cells"]).shape == (3, max(n))
