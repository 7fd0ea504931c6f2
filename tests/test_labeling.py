"""Phase 1 labels: definitions, common random numbers, cross-fitted ELP, quadrant thresholds."""
import numpy as np
import pandas as pd
import pytest

from teachable.constants import FORMATS, QUADRANTS
from teachable.envs.base import Advice
from teachable.labeling import (
    STUDENT_CONDITIONS, condition_specs, crossfit_elp, crossfit_halves, elp_interval, elp_resamples, label_snapshots,
    label_intervals, label_stats, outcome_pairing, raw_rows, select_shard,
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
    y["demo"] = np.array([1.0, 1.0, 0.0, 0.0])  # the best format on the first half, useless on the second
    y["hint"] = np.array([0.0, 0.0, 1.0, 1.0])  # the reverse
    y["contrast"] = np.array([1.0, 0.0, 1.0, 0.0])
    # first half picks demo -> its gain on the second half is 0; the second half picks hint -> 0 on the first
    assert crossfit_elp(y) == pytest.approx(0.0)
    y["demo"] = np.ones(4)
    assert crossfit_elp(y) == pytest.approx(1.0)


def test_zero_true_gain_naive_max_is_biased_crossfit_is_not():
    """Every format and every placebo has the same success probability (zero true gain): the naive
    max over formats of the observed gains is > 0 on average; the cross-fitted estimate is ~0."""
    rng = np.random.default_rng(0)
    n_snap, n = 4000, 8
    y = {k: (rng.random((n_snap, n)) < 0.5).astype(float) for k in (*FORMATS, *PLACEBOS)}
    naive = np.max(np.stack([y[m].mean(-1) - y[f"placebo_{m}"].mean(-1) for m in FORMATS], -1), -1)
    cf = crossfit_elp(y)
    se = cf.std() / np.sqrt(n_snap)
    assert naive.mean() > 0.15
    assert abs(cf.mean()) < 3 * se + 0.005


def test_elp_resampling_never_puts_a_rollout_in_both_halves():
    for n in (2, 7, 16):
        a, b = crossfit_halves(n)
        idx = elp_resamples(n, 300, np.random.default_rng(n))
        assert idx.shape == (300, n)
        assert np.isin(idx[:, a], a).all() and np.isin(idx[:, b], b).all()  # each half drawn from itself only
        assert all(not set(r[a]) & set(r[b]) for r in idx)
        assert len(np.unique(idx[:, b])) == len(b)  # with replacement over the whole half


def test_elp_interval_resamples_within_halves():
    """The first half says demo, the second says hint; a resample within halves keeps that, so
    every resample routes demo on half 1 and gets hint's (zero) gain on half 2 and vice versa:
    ELP_net = 0 with no spread. Resampling all rollouts together (one rollout in both halves)
    would spread it."""
    y = {f"placebo_{m}": np.zeros(8) for m in FORMATS}
    y["demo"], y["hint"], y["contrast"] = np.repeat([1.0, 0.0], 4), np.repeat([0.0, 1.0], 4), np.zeros(8)
    assert elp_interval(y, 400, 0.95, seed=0) == (0.0, 0.0)
    rng = np.random.default_rng(1)
    y = {k: (rng.random(16) < 0.5).astype(float) for k in (*FORMATS, *PLACEBOS)}
    lo, hi = elp_interval(y, 1000, 0.9, seed=2)
    assert lo < hi and (lo, hi) == elp_interval(y, 1000, 0.9, seed=2)
    wide = elp_interval(y, 1000, 0.99, seed=2)
    assert wide[0] <= lo and wide[1] >= hi


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


@pytest.mark.parametrize("estimator", ["direct", "first_action"])
def test_labels_do_not_depend_on_shards_or_order(estimator):
    """Labeling snapshots in one shard, in two shards, or in another order gives identical rows:
    every rollout's draws are keyed by (snapshot, rollout index, step), never by its batch."""
    from teachable.teachers.oracle import OracleTeacher

    snaps = _snapshots(5)
    cfg = {"seed": 3, "env": {"id": ENV, "max_steps": 30, "history_len": 2}, "student": {"temperature": 1.0},
           "phase1": {"n_rollouts": 4, "n_rollouts_expert": 1, "experiments": ["A"], "estimator": estimator}}

    def label(parts):
        raw = [label_snapshots(p, ContextPolicy(), OracleTeacher(30), cfg, progress=False)[0] for p in parts]
        return pd.concat(raw).sort_values("snapshot_id").reset_index(drop=True)

    one = label([select_shard(snaps, cfg["phase1"], 0, 1, 3)])
    two = label([select_shard(snaps, cfg["phase1"], k, 2, 3) for k in (1, 0)])
    reversed_ = label([snaps.iloc[::-1].reset_index(drop=True)])
    outs = one["y_policy"] if estimator == "direct" else one["y_cells"].map(lambda v: np.concatenate(list(v)))
    assert len(one) == 5 and 0 < np.mean(np.concatenate(outs.tolist())) < 1  # outcomes vary
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
