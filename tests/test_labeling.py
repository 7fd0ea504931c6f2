"""Phase 1 labels: definitions, common random numbers, cross-fitted ELP, quadrant thresholds."""
import numpy as np
import pandas as pd
import pytest

from teachable.constants import FORMATS, QUADRANTS
from teachable.envs.base import Advice
from teachable.labeling import (
    STUDENT_CONDITIONS, Rollouts, condition_specs, crossfit_elp, crossfit_halves, elp_interval, label_snapshots,
    label_intervals, label_stats, outcome_pairing, raw_rows, resamples, select_shard,
)  # fmt: skip
from teachable.patches import PLACEBOS
from teachable.policies.base import Policy
from teachable.quadrants import add_quadrants, assign_quadrants, quadrant_thresholds, split_threshold

ENV = "BabyAI-GoToLocal-v0"


def test_high_means_strictly_above_threshold():
    U = np.array([1.0, 1.0, 0.5, 0.5, 0.5])
    L = np.array([0.2, 0.0, 0.0, 0.3, 0.1])
    q = assign_quadrants(U, L, u_thr=0.5, l_thr=0.1)
    assert list(q) == ["Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL", "Q4_lowU_highL", "Q3_lowU_lowL"]


def test_auto_thresholds_are_the_configured_quantiles():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"U": rng.random(101), "L_local": rng.normal(size=101)})
    thr = quadrant_thresholds(df, {"mode": "auto", "u_quantile": 0.25, "l_quantile": 0.75})
    assert thr["U_threshold"] == pytest.approx(np.quantile(df["U"], 0.25))
    assert thr["L_threshold"] == pytest.approx(np.quantile(df["L_local"], 0.75))
    assert set(thr["quantiles"]) == {"U", "L_local"}


def test_manual_thresholds_and_sizes_and_small_quadrant_warning(caplog):
    df = pd.DataFrame({"U": [0.1, 0.9, 0.9, 0.1], "L_local": [0.0, 0.5, 0.0, 0.5]})
    out, thr = add_quadrants(df, {"mode": "manual", "u_threshold": 0.5, "l_threshold": 0.25, "min_size": 2})
    assert thr["sizes"] == {q: 1 for q in QUADRANTS}
    assert thr["small_quadrants"] == list(QUADRANTS)
    assert "under phase1.quadrants.min_size" in caplog.text
    assert list(out["quadrant"]) == ["Q3_lowU_lowL", "Q1_highU_highL", "Q2_highU_lowL", "Q4_lowU_highL"]


def test_unknown_mode_names_the_key():
    with pytest.raises(ValueError, match="phase1.quadrants.mode"):
        quadrant_thresholds(pd.DataFrame({"U": [0.0], "L_local": [0.0]}), {"mode": "median"})


def _outs(sid: str, counts: dict[str, tuple[int, int]]) -> dict:
    """Outcome vectors (k successes first) per condition, as ``labeling.outcomes`` builds them."""
    out = {(sid, c): np.array([1.0] * k + [0.0] * (n - k)) for c, (k, n) in counts.items()}
    out[(sid, "expert_error")] = np.array([None] * counts["expert"][1], dtype=object)
    return out


def test_label_definitions():
    va = ["turn left", "turn right", "go forward"]
    scored = pd.DataFrame([{"snapshot_id": "s", "env_id": ENV, "valid_actions": va, "student_action": "turn left",
                            "U": 1.0, "_logprobs": np.log([0.5, 0.3, 0.2])}])
    counts = {"policy": (2, 8), "force": (6, 8), "expert": (1, 1), "placebo_demo": (3, 8), "placebo_hint": (2, 8),
              "placebo_contrast": (4, 8), "demo": (7, 8), "hint": (6, 8), "contrast": (5, 8)}
    adv = Advice("go forward", "The box is at your 12 o'clock.", "wrong_turn")
    raw = raw_rows(scored, [adv], _outs("s", counts))
    assert raw.iloc[0]["y_force"] == [1.0] * 6 + [0.0] * 2 and "p_force" not in raw.columns  # shards: outcomes only
    labeled = label_stats(raw)
    row = labeled.iloc[0]
    assert row["L_local"] == pytest.approx(6 / 8 - 2 / 8)
    assert row["L_upper"] == pytest.approx(1 - 2 / 8)
    assert row["p_base"] == row["p_policy"] and row["p_base_n"] == 8
    assert row["gain_raw_demo"] == pytest.approx(7 / 8 - 2 / 8)
    # gain_net[m] uses format m's own placebo
    assert row["gain_net_demo"] == pytest.approx(7 / 8 - 3 / 8)
    assert row["gain_net_hint"] == pytest.approx(6 / 8 - 2 / 8)
    assert row["gain_net_contrast"] == pytest.approx(5 / 8 - 4 / 8)
    assert row["ELP_net_naive"] == pytest.approx(0.5)
    assert row["route_net"] == "demo" and list(row["route_ties"]) == ["demo", "hint"]
    assert row["p_teacher_action"] == pytest.approx(0.2)
    assert row["p_expert_errors"] == 0 and row["p_expert_impossible"] == 0
    iv = label_intervals(labeled, 0.95, 200, seed=0).iloc[0]
    assert iv["ELP_net_lo"] <= row["ELP_net"] <= iv["ELP_net_hi"]
    for name in ("policy", "force", "expert", "placebo_demo", "placebo_hint", "placebo_contrast", "demo", "hint",
                 "contrast"):
        assert iv[f"p_{name}_lo"] <= row[f"p_{name}"] <= iv[f"p_{name}_hi"]
    wider = label_intervals(labeled, 0.99, 200, seed=0).iloc[0]
    assert wider["p_policy_lo"] < iv["p_policy_lo"] and wider["p_policy_hi"] > iv["p_policy_hi"]


def test_crossfit_route_on_one_half_gain_on_the_other():
    y = {f"placebo_{m}": np.zeros(4) for m in FORMATS}
    y["demo"] = np.array([1.0, 0.0, 1.0, 0.0])  # the best format on the even indices, useless on the odd
    y["hint"] = np.array([0.0, 1.0, 0.0, 1.0])  # the reverse
    y["contrast"] = np.array([1.0, 1.0, 0.0, 0.0])
    # the even half picks demo -> its gain on the odd half is 0; the odd half picks hint -> 0 on the even
    assert crossfit_elp(Rollouts.direct(y)) == pytest.approx(0.0)
    y["demo"] = np.ones(4)
    assert crossfit_elp(Rollouts.direct(y)) == pytest.approx(1.0)


def test_zero_true_gain_naive_max_is_biased_crossfit_is_not():
    """Every format and every placebo has the same success probability (zero true gain): the naive
    max over formats of the observed gains is > 0 on average; the cross-fitted estimate is ~0."""
    rng = np.random.default_rng(0)
    n_snap, n = 4000, 8
    y = {k: (rng.random((n_snap, n)) < 0.5).astype(float) for k in (*FORMATS, *PLACEBOS)}
    naive = np.max(np.stack([y[m].mean(-1) - y[f"placebo_{m}"].mean(-1) for m in FORMATS], -1), -1)
    cf = crossfit_elp(Rollouts.direct(y))
    se = cf.std() / np.sqrt(n_snap)
    assert naive.mean() > 0.15
    assert abs(cf.mean()) < 3 * se + 0.005


def test_elp_resampling_never_puts_a_rollout_in_both_halves():
    for n in (2, 7, 16):
        a, b = crossfit_halves(n)
        assert a.tolist() == list(range(0, n, 2)) and b.tolist() == list(range(1, n, 2))
        y = Rollouts.direct({"policy": np.zeros(n)})
        idx = resamples(y.strata(parity=True), n, 300, np.random.default_rng(n))
        assert idx.shape == (300, n)
        assert np.isin(idx[:, a], a).all() and np.isin(idx[:, b], b).all()  # each half drawn from itself only
        assert all(not set(r[a]) & set(r[b]) for r in idx)
        assert len(np.unique(idx[:, b])) == len(b)  # with replacement over the whole half


def test_elp_interval_resamples_within_halves():
    """The even half says demo, the odd says hint; a resample within halves keeps that, so
    every resample routes demo on the even half and gets hint's (zero) gain on the odd and vice
    versa: ELP_net = 0 with no spread. Resampling all rollouts together (one rollout in both
    halves) would spread it."""
    y = {f"placebo_{m}": np.zeros(8) for m in FORMATS}
    y["demo"], y["hint"], y["contrast"] = np.tile([1.0, 0.0], 4), np.tile([0.0, 1.0], 4), np.zeros(8)
    assert elp_interval(Rollouts.direct(y), 400, 0.95, seed=0) == (0.0, 0.0)
    rng = np.random.default_rng(1)
    y = Rollouts.direct({k: (rng.random(16) < 0.5).astype(float) for k in (*FORMATS, *PLACEBOS)})
    lo, hi = elp_interval(y, 1000, 0.9, seed=2)
    assert lo < hi and (lo, hi) == elp_interval(y, 1000, 0.9, seed=2)
    wide = elp_interval(y, 1000, 0.99, seed=2)
    assert wide[0] <= lo and wide[1] >= hi


def test_ragged_cells_take_each_cells_own_rate():
    """Cells of different counts (adaptive allocation: NaN past a cell's last rollout): every
    probability weights each cell's rate over its own rollouts, its n is the fewest of its cells,
    the bootstrap keeps every cell's count (strata by the cells an index has and by half), and the
    pairing correlates over the indices all cells share."""
    nan = np.nan
    cells = [[1.0, 0.0, 1.0, 1.0, 0.0, 1.0, nan, nan], [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]]
    row = {"snapshot_id": "s", "y_cells": cells, "cell_actions": ["a", "b"], "y_expert": [1.0],
           "expert_errors": [None], **{f"pi_{c}": [0.5, 0.5] for c in STUDENT_CONDITIONS},
           **{f"pi_rest_{c}": 0.0 for c in STUDENT_CONDITIONS}}  # fmt: skip
    row.update(pi_policy=[0.25, 0.75], pi_force=[1.0, 0.0], pi_demo=[1.0, 0.0])
    lab = label_stats(pd.DataFrame([row])).iloc[0]
    qa, qb = 4 / 6, 4 / 8
    assert lab["p_policy"] == pytest.approx(0.25 * qa + 0.75 * qb) and lab["p_force"] == pytest.approx(qa)
    assert lab["p_force_n"] == 6 and lab["p_policy_n"] == 6 and lab["p_placebo_demo_n"] == 6
    assert lab["gain_net_demo"] == pytest.approx(qa - 0.5 * (qa + qb))
    y = Rollouts.of(pd.Series(row), "first_action")
    assert [s.tolist() for s in y.strata(parity=True)] == [[0, 2, 4], [6], [1, 3, 5], [7]]
    idx = resamples(y.strata(parity=True), y.n, 50, np.random.default_rng(0))
    assert (np.isnan(y.y[0][idx]).sum(-1) == 2).all()  # cell a keeps its 6 rollouts in every resample
    assert np.isfinite(lab["ELP_net"])
    iv = label_intervals(pd.DataFrame([lab]), 0.95, 200, seed=0).iloc[0]
    assert iv["ELP_net_lo"] <= lab["ELP_net"] <= iv["ELP_net_hi"] and iv["p_force_hi"] < 1
    pair = outcome_pairing(pd.DataFrame([lab]), 0.95).set_index("pair")
    assert pair.loc["policy~force", "n"] == 1  # over the 6 indices both cells have


def test_every_condition_of_a_snapshot_shares_rollout_i_random_stream(family):
    a = family.actions  # BabyAI: turn left, turn right, go forward, ...
    row = pd.Series({"snapshot_id": "s1", "env_id": family.env_id, "seed": family.seed, "actions": [a[0]],
                     "valid_actions": list(a[:3]), "student_action": a[0], "_logprobs": np.log([0.5, 0.3, 0.2])})
    adv = Advice(a[2], "The box is at your 12 o'clock.", "wrong_turn")
    specs = condition_specs(row, adv, {"seed": 0, "phase1": {"n_rollouts": 4, "n_rollouts_expert": 1}})
    student = [s for s in specs if s.key[1] != "expert"]
    assert {s.key[1] for s in student} == set(STUDENT_CONDITIONS)
    for i in range(4):
        assert len({s.stream for s in student if s.key[2] == i}) == 1
    assert len({s.stream for s in student}) == 4
    force = [s for s in student if s.key[1] == "force"]
    assert all(s.forced == (a[2],) and s.patch is None for s in force)
    patched = {s.key[1]: s.patch for s in student if s.key[2] == 0}
    assert patched["policy"] is None and a[2] in patched["demo"]


def test_split_threshold_on_a_mass_point():
    L = np.array([0.0] * 6 + [0.1, 0.2, 0.3, -0.1])
    sp = split_threshold(L, 0.5)
    assert sp["tie"] and sp["tie_share"] == 0.6 and sp["value_at_quantile"] == 0.0
    assert sp["threshold"] == 0.0 and sp["high_share"] == pytest.approx(0.3)  # "> 0" is closer to 0.5 than ">= 0"
    # a mass point with nothing above it: the mass counts as high, split at the midpoint below
    L2 = np.array([0.0] * 7 + [-0.2, -0.4, -0.1])
    sp2 = split_threshold(L2, 0.5)
    assert sp2["threshold"] == pytest.approx(-0.05) and sp2["high_share"] == pytest.approx(0.7)
    assert ((L2 > sp2["threshold"]).mean()) == pytest.approx(0.7)
    # no tie: the plain quantile
    plain = split_threshold(np.arange(10.0), 0.5)
    assert not plain["tie"] and plain["threshold"] == pytest.approx(4.5) and plain["rule"] == "quantile"
    # all equal: no split exists, said so
    assert "no split exists" in split_threshold(np.zeros(5), 0.5)["rule"]


def test_quadrants_exist_when_most_L_local_is_zero():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"U": rng.random(100), "L_local": np.r_[np.zeros(80), np.linspace(0.1, 0.5, 20)]})
    out, thr = add_quadrants(df, {"mode": "auto", "u_quantile": 0.5, "l_quantile": 0.5, "min_size": 1})
    assert thr["L_split"]["tie"] and thr["L_split"]["threshold"] == 0.0
    assert thr["sizes"]["Q1_highU_highL"] + thr["sizes"]["Q4_lowU_highL"] == 20


class UniformPolicy(Policy):
    """A real (uniform) student: every valid action equally likely."""

    name = "uniform"

    def action_logprobs(self, contexts):
        return [np.full(len(c.valid_actions), -np.log(len(c.valid_actions))) for c in contexts]


def test_contrast_of_a_correct_student_gets_the_diagnosis_of_the_action_it_calls_worse():
    from teachable.envs import make_env
    from teachable.teachers.oracle import OracleTeacher

    env = make_env(ENV, max_steps=12)
    for seed in range(50):  # a state where the expert's action is "turn left" (the uniform argmax)
        obs = env.reset(seed)
        if env.expert_action() == "turn left":
            break
    snap = pd.DataFrame([{"snapshot_id": f"{ENV}/B-{seed}/t0", "experiment": "B", "task_id": f"{ENV}:{seed}",
                          "env_id": ENV, "seed": seed, "step_idx": 0, "actions": [], "instruction": obs.instruction,
                          "observation": obs.text, "history": [], "valid_actions": list(obs.valid_actions),
                          "student_action": None}])  # fmt: skip
    cfg = {"seed": 0, "env": {"id": ENV, "max_steps": 12, "history_len": 2}, "student": {"temperature": 1.0},
           "phase1": {"n_rollouts": 2, "n_rollouts_expert": 1, "confidence": 0.95, "n_bootstrap": 100}}  # fmt: skip
    labeled, failures = label_snapshots(snap, UniformPolicy(), OracleTeacher(12), cfg, progress=False)
    row = labeled.iloc[0]
    assert failures.empty and row["student_action"] == row["suggested_action"] == "turn left"
    assert row["contrast_action"] == "turn right"
    env.reset(seed)
    assert row["contrast_diagnosis"] == env.diagnose("turn right") != row["diagnosis"] == env.diagnose("turn left")


class ContextPolicy(Policy):
    """A real student whose distribution depends on the state, the history and the patch (a
    stable digest of them), so conditions and snapshots differ."""

    name = "context"

    def action_logprobs(self, contexts):
        import zlib

        out = []
        for c in contexts:
            h = zlib.crc32(f"{c.observation}|{c.history}|{c.patch}".encode())
            z = np.array([(h >> (3 * k)) % 7 for k in range(len(c.valid_actions))], dtype=float) / 2
            out.append(z - np.logaddexp.reduce(z))
        return out


def _snapshots(n: int) -> pd.DataFrame:
    """``n`` real snapshots of ENV: the state after two actions from seed s."""
    from teachable.envs import make_env

    env, rows = make_env(ENV, max_steps=12), []
    for seed in range(n):
        env.reset(seed)
        prefix = ["turn left", "go forward"][: 1 + seed % 2]
        obs = env.restore(seed, prefix)
        rows.append({"snapshot_id": f"{ENV}/A-{seed}/t{len(prefix)}", "experiment": "A", "task_id": f"{ENV}:{seed}",
                     "env_id": ENV, "seed": seed, "step_idx": len(prefix), "actions": prefix,
                     "instruction": obs.instruction, "observation": obs.text, "history": prefix,
                     "valid_actions": list(obs.valid_actions), "student_action": "go forward"})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("estimator", ["direct", "first_action", "adaptive"])
def test_labels_do_not_depend_on_shards_or_order(estimator):
    """Labeling snapshots in one shard, in two shards, or in another order gives identical rows:
    every rollout's draws are keyed by (snapshot, rollout index, step), never by its batch, and
    adaptive allocation's course of a snapshot depends on its own outcomes only."""
    from teachable.teachers.oracle import OracleTeacher

    snaps = _snapshots(5)
    cfg = {"seed": 3, "env": {"id": ENV, "max_steps": 30, "history_len": 2}, "student": {"temperature": 1.0},
           "phase1": {"n_rollouts": 4, "n_rollouts_expert": 1, "experiments": ["A"], "estimator": estimator}}
    if estimator == "adaptive":
        cfg["phase1"].update(estimator="first_action", allocation="adaptive", n0=4, n_max=12, batch=8, epsilon=0.0)

    def label(parts):
        raw = [label_snapshots(p, ContextPolicy(), OracleTeacher(30), cfg, progress=False)[0] for p in parts]
        return pd.concat(raw).sort_values("snapshot_id").reset_index(drop=True)

    one = label([select_shard(snaps, cfg["phase1"], 0, 1, 3)])
    two = label([select_shard(snaps, cfg["phase1"], k, 2, 3) for k in (1, 0)])
    reversed_ = label([snaps.iloc[::-1].reset_index(drop=True)])
    outs = one["y_policy"] if estimator == "direct" else one["y_cells"].map(lambda v: np.concatenate(list(v)))
    assert len(one) == 5 and 0 < np.nanmean(np.concatenate(outs.tolist())) < 1  # outcomes vary
    if estimator == "adaptive":  # some snapshots went past n0, so the rows are ragged
        assert (one["alloc_rollouts"] > 4 * one["cell_actions"].map(len)).any()
    pd.testing.assert_frame_equal(one, two)
    pd.testing.assert_frame_equal(one[two.columns], reversed_[two.columns])


def test_outcome_pairing_is_the_mean_within_snapshot_correlation():
    """policy~force on a hand-made table: snapshot a, outcomes identical (rho 1); b, opposite on one
    rollout of four (rho 1/sqrt(3)); c, force constant (left out, counted); d, the reverse of each
    other (rho -1). Mean of 1, 1/sqrt(3) and -1 over n = 3."""
    y = {"a": ([1, 0, 1, 0], [1, 0, 1, 0]), "b": ([1, 1, 0, 0], [1, 1, 1, 0]), "c": ([1, 0, 0, 0], [1, 1, 1, 1]),
         "d": ([1, 0, 0, 1], [0, 1, 1, 0])}
    rows = []
    for sid, (pol, force) in y.items():
        row = {"snapshot_id": sid, **{f"y_{c}": [0.0, 1.0, 0.0, 1.0] for c in STUDENT_CONDITIONS}}
        row.update(y_policy=[float(v) for v in pol], y_force=[float(v) for v in force])
        rows.append(row)
    out = outcome_pairing(pd.DataFrame(rows), 0.95).set_index("pair")
    pf = out.loc["policy~force"]
    assert pf["rho"] == pytest.approx((1 + 1 / np.sqrt(3) - 1) / 3)
    assert pf["n"] == 3 and pf["n_constant"] == 1 and pf["n_snapshots"] == 4
    assert pf["rho_lo"] < pf["rho"] < pf["rho_hi"]
    # demo and its placebo share the outcomes [0, 1, 0, 1] everywhere: perfectly paired
    assert out.loc["demo~placebo_demo", "rho"] == pytest.approx(1.0) and out.loc["demo~placebo_demo", "n"] == 4
    # base is the unpatched student: p_policy's outcomes against [0, 1, 0, 1]: -1, 0, -1/sqrt(3), 0
    assert out.loc["base~placebo_hint", "rho"] == pytest.approx((-1 - 1 / np.sqrt(3)) / 4)
    assert out.loc["base~placebo_hint", "n"] == 4 and "base~contrast" in out.index


# ------------------------------------------------------------------------------------ first action
def _label_both(snaps, student, n: int, floor: float = 0.0, max_steps: int = 30, seed: int = 5):
    """Raw rows of ``snaps`` labeled by each estimator (same seed: the same streams)."""
    from teachable.teachers.oracle import OracleTeacher

    out = {}
    for est in ("direct", "first_action"):
        cfg = {"seed": seed, "env": {"id": ENV, "max_steps": max_steps, "history_len": 2},
               "student": {"temperature": 1.0},
               "phase1": {"n_rollouts": n, "n_rollouts_expert": 1, "estimator": est, "first_action_floor": floor}}
        out[est] = label_snapshots(snaps, student, OracleTeacher(max_steps), cfg, progress=False)[0]
    return out, seed


def test_first_action_cells_replay_the_direct_rollouts_exactly():
    """With the shared streams, the direct rollout i of condition c whose first draw (inverse CDF
    of pi_c with step 0's uniform) picks a IS cell a's rollout i from step 1 on, so its outcome is
    the cell's: the identity p_c = sum_a pi_c(a) q(a) holds rollout by rollout, and force is the
    teacher's cell."""
    from teachable.policies.base import Draw
    from teachable.seeding import rollout_key

    raw, seed = _label_both(_snapshots(4), ContextPolicy(), n=6)
    d, f = (raw[k].set_index("snapshot_id") for k in ("direct", "first_action"))
    successes = []
    for sid, r in f.iterrows():
        assert list(r["cell_actions"]) == list(r["valid_actions"])  # floor 0: every action has a cell
        cells = np.array([list(v) for v in r["y_cells"]])
        successes.append(cells.mean())
        for c in STUDENT_CONDITIONS:  # force: pi all on the teacher's action, which force takes without a draw
            cdf = np.cumsum(r[f"pi_{c}"])
            for i in range(6):
                u = Draw(rollout_key(seed, "phase1", sid, i).step_rng(0)).uniform()
                a = int(np.searchsorted(cdf / cdf[-1], u, side="right"))
                assert d.loc[sid, f"y_{c}"][i] == cells[a, i], (sid, c, i)
    assert 0 < np.mean(successes) < 1  # the outcomes vary: the identity is not 0 == 0


def test_first_action_and_direct_agree_within_their_intervals(tiny_student):
    """On the real tiny student at n = 24: every condition's first-action and direct intervals
    overlap, the estimates differ by 0.1 at most on average, force (the teacher's cell) is the
    same number, and ELP_net and the gains are computed for both with the same columns."""
    from teachable.envs.registry import system_prompt
    from teachable.policies.hf import HFPolicy

    student = HFPolicy(tiny_student, device="cpu", system_prompt=system_prompt(ENV))
    raw, _ = _label_both(_snapshots(3), student, n=24, floor=0.02, max_steps=12)
    d, f = (label_stats(raw[k]).set_index("snapshot_id") for k in ("direct", "first_action"))
    di, fi = (label_intervals(x.reset_index(), 0.95, 200, seed=0).set_index("snapshot_id") for x in (d, f))
    assert set(d.columns) - set(f.columns) == {f"y_{c}" for c in STUDENT_CONDITIONS}
    diffs = []
    for sid in f.index:
        for name in ("policy", "force", "base", *PLACEBOS, *FORMATS):
            assert fi.loc[sid, f"p_{name}_lo"] <= f.loc[sid, f"p_{name}"] <= fi.loc[sid, f"p_{name}_hi"]
            assert fi.loc[sid, f"p_{name}_lo"] <= di.loc[sid, f"p_{name}_hi"], (sid, name)
            assert di.loc[sid, f"p_{name}_lo"] <= fi.loc[sid, f"p_{name}_hi"], (sid, name)
            diffs.append(f.loc[sid, f"p_{name}"] - d.loc[sid, f"p_{name}"])
        assert fi.loc[sid, "ELP_net_lo"] <= f.loc[sid, "ELP_net"] <= fi.loc[sid, "ELP_net_hi"]
        assert f.loc[sid, "p_force"] == d.loc[sid, "p_force"]  # the teacher's cell is force's rollouts
        assert f.loc[sid, "p_policy_n"] == 24 and f.loc[sid, "n_cells"] == len(f.loc[sid, "cell_actions"])
    assert np.mean(np.abs(diffs)) < 0.1 and 0 < f["p_policy"].mean() < 1, diffs


class SharpPolicy(Policy):
    """A real student with a peaked distribution set by the state, nudged by the patch: most
    conditions agree on the likely actions, so a floor leaves the unlikely ones without a cell."""

    name = "sharp"

    def action_logprobs(self, contexts):
        import zlib

        out = []
        for c in contexts:
            h, g = (zlib.crc32(t.encode()) for t in (f"{c.observation}|{c.history}", f"{c.patch}"))
            z = np.array([3.0 - 1.2 * ((h >> (3 * k)) % 5) + 0.3 * ((g >> k) % 3) for k in range(len(c.valid_actions))])
            out.append(z - np.logaddexp.reduce(z))
        return out


def test_first_action_floor_leaves_mass_that_bounds_p():
    """A high floor leaves actions without a cell: the teacher's action and every condition's most
    likely action still have one, each other cell has some pi >= floor, pi_rest is the mass of the
    rest, and p lies in [p_min, p_max] = [covered, covered + pi_rest] inside its interval."""
    floor = 0.3
    raw, _ = _label_both(_snapshots(4), SharpPolicy(), n=4, floor=floor)
    f = raw["first_action"]
    lab = label_stats(f)
    iv = label_intervals(lab, 0.95, 100, seed=0)
    rests = []
    for (_, r), (_, lr), (_, ir) in zip(f.iterrows(), lab.iterrows(), iv.iterrows()):
        cells = list(r["cell_actions"])
        assert r["suggested_action"] in cells
        pis = np.array([r[f"pi_{c}"] for c in STUDENT_CONDITIONS])
        for j, a in enumerate(cells):
            assert a == r["suggested_action"] or pis[:, j].max() >= floor or any(
                pis[k, j] == pis[k].max() for k in range(len(pis)))
        for c in STUDENT_CONDITIONS:
            rest = r[f"pi_rest_{c}"]
            assert sum(r[f"pi_{c}"]) + rest == pytest.approx(1.0)
            rests.append(rest)
        for name in ("policy", "force", *PLACEBOS, *FORMATS):
            rest = r[f"pi_rest_{name}"]
            assert lr[f"p_{name}_max"] - lr[f"p_{name}_min"] == pytest.approx(rest)
            assert lr[f"p_{name}_min"] <= lr[f"p_{name}"] <= lr[f"p_{name}_max"]
            assert ir[f"p_{name}_lo"] <= lr[f"p_{name}_min"] and lr[f"p_{name}_max"] <= ir[f"p_{name}_hi"]
        assert r["pi_rest_force"] == 0.0 and max(r["pi_force"]) == 1.0
    assert max(rests) > 0.05 and (f["cell_actions"].map(len) < f["valid_actions"].map(len)).all()  # mass uncovered


def test_first_action_tables_round_trip_and_record_the_estimator(tmp_path):
    """A first-action shard is a valid raw-labels table (its nested y_cells survive Parquet), the
    labels read back are the labels written, merge_labels names the estimator, and shards of two
    estimators do not merge."""
    from conftest import complete
    from teachable.io import read_table, write_table
    from teachable.labeling import merge_labels
    from teachable.schemas import LABELED, RAW_LABELS

    raw, _ = _label_both(_snapshots(3), ContextPolicy(), n=4, floor=0.1)
    f = complete(raw["first_action"], RAW_LABELS)
    write_table(f, RAW_LABELS, tmp_path / "raw.parquet")
    back = read_table(tmp_path / "raw.parquet", RAW_LABELS)
    q = {"mode": "manual", "u_threshold": 0.5, "l_threshold": 0.0, "min_size": 0}
    lab, thr = merge_labels(back, back.iloc[:0], q)
    assert thr["estimator"] == "first_action" and merge_labels(raw["direct"], back.iloc[:0], q)[1]["estimator"] == "direct"
    pd.testing.assert_frame_equal(lab[["p_policy", "ELP_net"]], label_stats(f)[["p_policy", "ELP_net"]])
    write_table(lab, LABELED, tmp_path / "lab.parquet")
    pairing = outcome_pairing(read_table(tmp_path / "lab.parquet", LABELED), 0.95).set_index("pair")
    assert pairing.loc["policy~force", "n_snapshots"] == 3 and pairing["n"].sum() > 0
    # the split halves and L_local's interval read the nested y_cells as Parquet gives them back
    from teachable.reliability import half_rows, l_local_interval

    read = read_table(tmp_path / "lab.parquet", LABELED)
    even = half_rows(read, 0)
    assert [np.shape(v) for v in even["y_cells"]] == [(len(c), 2) for c in read["cell_actions"]]
    iv = l_local_interval(read, 0.95, 200, seed=0)
    assert ((iv["L_local_lo"] <= read["L_local"] + 1e-12) & (read["L_local"] <= iv["L_local_hi"] + 1e-12)).all()
    with pytest.raises(ValueError, match="mix the estimators"):
        merge_labels(pd.concat([raw["direct"], f], ignore_index=True), back.iloc[:0], q)


def test_estimator_config_errors_name_the_key():
    from types import SimpleNamespace

    from teachable.config import section
    from teachable.labeling import resolve_estimator

    with pytest.raises(ValueError, match="phase1.estimator"):
        section("phase1", {"estimator": "sometimes"})
    with pytest.raises(ValueError, match="phase1.first_action_floor"):
        section("phase1", {"first_action_floor": 1.0})
    scorer, generator = SimpleNamespace(exact_u=True, name="hf"), SimpleNamespace(exact_u=False, name="openai")
    auto = section("phase1", {})
    assert resolve_estimator(auto, scorer) == "first_action" and resolve_estimator(auto, generator) == "direct"
    assert resolve_estimator(section("phase1", {"estimator": "direct"}), scorer) == "direct"
    with pytest.raises(ValueError, match="phase1.estimator: first_action .* 'openai' is generate-only"):
        resolve_estimator(section("phase1", {"estimator": "first_action"}), generator)


# ------------------------------------------------------------------------------------ adaptive allocation
class PatchBlindPolicy(ContextPolicy):
    """A real student whose distribution ignores the patch: every condition but force has the same
    first-step distribution, so every gain is exactly 0 whatever the cells' rates."""

    name = "patch-blind"

    def action_logprobs(self, contexts):
        from dataclasses import replace

        return super().action_logprobs([replace(c, patch=None) for c in contexts])


def _label_adaptive(snaps, student, n0: int, n_max: int, epsilon: float, **p1):
    from teachable.teachers.oracle import OracleTeacher

    cfg = {"seed": 5, "env": {"id": ENV, "max_steps": 30, "history_len": 2}, "student": {"temperature": 1.0},
           "phase1": {"n_rollouts": n0, "n_rollouts_expert": 1, "estimator": "first_action", "first_action_floor": 0.0,
                      "allocation": "adaptive", "n0": n0, "n_max": n_max, "batch": 8, "epsilon": epsilon, **p1}}
    return label_snapshots(snaps, student, OracleTeacher(30), cfg, progress=False)[0], cfg


def test_adaptive_rows_label_and_count_their_rollouts(tmp_path):
    """Adaptive rows: each cell's rollouts are indices 0..alloc_n - 1 of the shared streams (its
    first n0 are the fixed design's), NaN past them; alloc_rollouts counts them all; a snapshot
    still open at n_max has every cell there and names what straddles; the labels, intervals,
    pairing and split halves are computed and the tables round-trip through Parquet."""
    from conftest import complete
    from teachable.io import read_table, write_table
    from teachable.labeling import merge_labels
    from teachable.reliability import label_reliability, l_local_interval
    from teachable.schemas import LABELED, RAW_LABELS

    snaps = _snapshots(4)
    raw, cfg = _label_adaptive(snaps, ContextPolicy(), n0=4, n_max=12, epsilon=0.0)
    fixed = _label_both(snaps, ContextPolicy(), n=4)[0]["first_action"].set_index("snapshot_id")
    for _, r in raw.iterrows():
        y = np.array([list(v) for v in r["y_cells"]])
        n = (~np.isnan(y)).sum(1)
        assert n.tolist() == list(r["alloc_n"]) and r["alloc_rollouts"] == n.sum() and (n >= 4).all()
        assert all(np.isfinite(v[:k]).all() and np.isnan(v[k:]).all() for v, k in zip(y, n))  # indices 0..n-1
        assert np.array_equal(y[:, :4], np.array([list(v) for v in fixed.loc[r["snapshot_id"], "y_cells"]]))
        assert r["alloc_stop"] in ("decided", "n_max") and r["alloc_rounds"] >= 1
        if r["alloc_stop"] == "n_max":
            assert (n == 12).all() and len(r["alloc_open"]) > 0
    assert (raw["alloc_stop"] == "n_max").any()  # epsilon 0 keeps straddling snapshots open
    write_table(complete(raw, RAW_LABELS), RAW_LABELS, tmp_path / "raw.parquet")
    q = {"mode": "manual", "u_threshold": 0.5, "l_threshold": 0.0, "min_size": 0}
    lab, _ = merge_labels(read_table(tmp_path / "raw.parquet", RAW_LABELS), raw.iloc[:0], q)
    write_table(lab, LABELED, tmp_path / "lab.parquet")
    lab = read_table(tmp_path / "lab.parquet", LABELED)
    assert np.isfinite(lab[["p_policy", "L_local", "ELP_net", *(f"gain_net_{m}" for m in FORMATS)]]).all().all()
    force_n = [n[list(c).index(a)] for n, c, a in zip(lab["alloc_n"], lab["cell_actions"], lab["suggested_action"])]
    assert lab["p_force_n"].tolist() == force_n and (lab["p_policy_n"] == lab["alloc_n"].map(min)).all()
    iv = label_intervals(lab, 0.95, 200, seed=0)
    assert ((iv["ELP_net_lo"] <= lab["ELP_net"] + 1e-12) & (lab["ELP_net"] <= iv["ELP_net_hi"] + 1e-12)).all()
    ll = l_local_interval(lab, 0.95, 200, seed=0)
    assert ((ll["L_local_lo"] <= lab["L_local"] + 1e-12) & (lab["L_local"] <= ll["L_local_hi"] + 1e-12)).all()
    assert outcome_pairing(lab, 0.95).set_index("pair").loc["policy~force", "n_snapshots"] == 4
    rel = label_reliability(lab, 0.95, 100, seed=0, floor=0.5)
    assert rel["n_rollouts"] >= 4 and rel["n_too_few"] == 0


def test_adaptive_stops_at_n0_far_from_every_boundary():
    """A student blind to the patch has every gain exactly 0 (so do the route's gaps), and a manual
    L threshold beyond any L_local straddles nothing: every snapshot is decided at the first look,
    with n0 rollouts per cell."""
    raw, _ = _label_adaptive(_snapshots(3), PatchBlindPolicy(), n0=4, n_max=32, epsilon=0.05,
                             quadrants={"mode": "manual", "u_threshold": 0.5, "l_threshold": 1.5})  # fmt: skip
    assert (raw["alloc_stop"] == "decided").all() and (raw["alloc_rounds"] == 1).all()
    assert (raw["alloc_rollouts"] == 4 * raw["cell_actions"].map(len)).all()
    assert raw["alloc_open"].map(len).eq(0).all()


def test_adaptive_allocation_needs_the_first_action_estimator():
    from types import SimpleNamespace

    from teachable.config import section
    from teachable.labeling import resolve_allocation

    p1 = section("phase1", {"allocation": "adaptive", "estimator": "direct"})
    with pytest.raises(ValueError, match="phase1.allocation: adaptive .* estimator is direct"):
        resolve_allocation(p1, "direct", SimpleNamespace(exact_u=True, name="hf"))
    with pytest.raises(ValueError, match="phase1.allocation: adaptive .* 'openai' is generate-only"):
        resolve_allocation(section("phase1", {"allocation": "adaptive"}), "direct",
                           SimpleNamespace(exact_u=False, name="openai"))  # fmt: skip
    assert resolve_allocation(section("phase1", {"allocation": "adaptive"}), "first_action", None) == "adaptive"


def test_label_shard_config_carries_the_allocation_only_where_adaptive():
    """A fixed run's label-shard slice (the rule's params) is what it was, so its shards are not
    re-run; an adaptive run's carries every setting of the design, the L threshold included."""
    from teachable.config import section
    from teachable.steps import STEPS

    def slice_of(**p1):
        cfg = {"seed": 1, "env": {"id": ENV, "max_steps": 30, "history_len": 2}, "student": {}, "teacher": {},
               "phase1": section("phase1", p1)}
        return STEPS["label-shard"].config_of(cfg)["phase1"]

    assert "allocation" not in slice_of() and "n0" not in slice_of()
    adaptive = slice_of(allocation="adaptive", n0=4)
    assert adaptive["allocation"] == "adaptive" and adaptive["n0"] == 4 and "quadrants" in adaptive


def test_the_route_does_not_flip_on_float_noise():
    """Gains that differ only in their last bits (a forward pass in another process) choose the
    same route, the first in FORMATS order; a real difference still decides."""
    from teachable.labeling import ROUTE_TIE, route_of

    g = np.array([0.1, 0.1, 0.05])
    assert route_of(g) == 0 and route_of(g + np.array([0.0, 1e-9, 0.0])) == 0
    assert route_of(g + np.array([0.0, 10 * ROUTE_TIE, 0.0])) == 1
    assert list(route_of(np.array([[0.0, 0.2, 0.2 + 1e-9], [0.3, 0.0, 0.0]]))) == [1, 0]


def test_a_shard_whose_snapshots_are_all_left_out_writes_its_tables(tmp_path):
    """A generate-only student whose samples all fail to parse leaves every snapshot out
    (score_snapshots): the shard's raw labels and teacher failures are still declared tables."""
    from teachable.io import read_table, write_table
    from teachable.labeling import raw_rows, score_rows
    from teachable.schemas import RAW_LABELS, SNAPSHOTS, TEACHER_FAILURES

    snaps = pd.DataFrame(columns=[c for c, col in SNAPSHOTS.columns.items() if not col.optional])
    scored = score_rows(snaps, [], [])
    failures = scored[[c for c in scored.columns if not c.startswith("_")]].assign(failure_reason=[], failure_kind=[])
    write_table(failures, TEACHER_FAILURES, tmp_path / "f.parquet")
    write_table(raw_rows(scored, [], {}), RAW_LABELS, tmp_path / "r.parquet")
    assert read_table(tmp_path / "r.parquet", RAW_LABELS).empty and read_table(tmp_path / "f.parquet", TEACHER_FAILURES).empty
