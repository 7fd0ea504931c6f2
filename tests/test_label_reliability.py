"""Split-half reliability of the labels and of Δ, the attenuation of the gate's ρ, quadrant bands."""
import numpy as np
import pandas as pd
import pytest

from teachable.constants import QUADRANTS
from teachable.quadrants import quadrant_bands
from teachable.reliability import (
    LABELS, delta_halves, gate_reliability, half_rows, l_local_interval, label_reliability, label_report, n_rollouts,
    restrict_rollouts, split_halves,
)  # fmt: skip
from teachable.schemas import OUTCOME_CONDITIONS
from teachable.stats import attenuation, spearman_brown, split_half_reliability


def _labeled(outcomes: dict[str, np.ndarray], **extra) -> pd.DataFrame:
    """Labeled rows (``labeling.label_stats``) from 0/1 outcome arrays (snapshots x rollouts) per
    student condition; one successful expert rollout each."""
    from teachable.labeling import label_stats

    n_snap = len(next(iter(outcomes.values())))
    rows = []
    for s in range(n_snap):
        row = {"snapshot_id": f"s{s:03d}", "expert_errors": [None], "y_expert": [1.0],
               **{f"y_{c}": [float(v) for v in outcomes[c][s]] for c in OUTCOME_CONDITIONS if c != "expert"}}
        rows.append(row | {k: v[s] for k, v in extra.items()})
    return label_stats(pd.DataFrame(rows))


def _conditions(rng, n_snap: int, n: int, p) -> dict[str, np.ndarray]:
    """Bernoulli outcomes per condition, success probability p(condition) per snapshot."""
    return {c: (rng.random((n_snap, n)) < p(c)[:, None]).astype(float) for c in OUTCOME_CONDITIONS if c != "expert"}


# ------------------------------------------------------------------------------------ restricting rows
def test_restrict_rollouts_slices_the_last_axis_of_every_y_column():
    df = pd.DataFrame({"snapshot_id": ["a"], "y_policy": [[1.0, 0.0, 1.0, 1.0]],
                       "y_cells": [[[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]]], "cell_actions": [["x", "y"]],
                       "y_expert": [[1.0]], "U": [0.5]})  # fmt: skip
    odd = restrict_rollouts(df, split_halves(4)[1])
    assert odd["y_policy"][0] == [0.0, 1.0] and odd["y_cells"][0] == [[0.0, 1.0], [1.0, 0.0]]
    assert odd["y_expert"][0] == [1.0] and odd["cell_actions"][0] == ["x", "y"] and odd["U"][0] == 0.5
    assert df["y_policy"][0] == [1.0, 0.0, 1.0, 1.0]  # the input is not changed
    two = pd.concat([df, df.assign(snapshot_id="b", y_policy=[[1.0, 0.0, 1.0]], y_cells=[[[1.0, 0.0, 0.0]] * 2])],
                    ignore_index=True)  # fmt: skip
    assert n_rollouts(two).tolist() == [4, 3]  # rows may differ (adaptive allocation)
    odd = half_rows(two, 1)
    assert odd["y_policy"].tolist() == [[0.0, 1.0], [0.0]] and odd["y_cells"][1] == [[0.0], [0.0]]
    with pytest.raises(ValueError, match="'a'.*differ in rollouts"):
        n_rollouts(df.assign(y_policy=[[1.0, 0.0, 1.0]]))


# ------------------------------------------------------------------------------------ split-half
def test_spearman_brown_and_split_half_of_a_known_reliability():
    assert spearman_brown(0.5) == pytest.approx(2 / 3) and spearman_brown(1.0) == 1.0 and spearman_brown(0.0) == 0.0
    rng = np.random.default_rng(0)
    t = rng.normal(size=4000)  # halves = true score + noise of equal variance: r = 0.5, SB = 2/3
    a, b = t + rng.normal(size=4000), t + rng.normal(size=4000)
    rep = split_half_reliability(a, b, 0.95, 300, seed=1)
    assert rep["r_half"] == pytest.approx(0.5, abs=0.05) and rep["reliability"] == pytest.approx(2 / 3, abs=0.04)
    assert rep["lo"] < 2 / 3 < rep["hi"] and rep["n"] == 4000
    assert rep == split_half_reliability(a, b, 0.95, 300, seed=1)  # seeded
    few = split_half_reliability([1.0, 2.0], [1.0, 2.0])
    assert np.isnan(few["reliability"]) and "at least 3" in few["reason"]


def test_perfectly_reliable_labels_have_reliability_one():
    rng = np.random.default_rng(1)
    # rollouts 2k and 2k+1 are equal: the even and odd halves are the same data, whatever the snapshot
    base = _conditions(rng, 30, 6, lambda c: rng.random(30))
    y = {c: np.repeat(v, 2, axis=1) for c, v in base.items()}
    rel = label_reliability(_labeled(y), 0.95, 200, seed=0, floor=0.5)
    assert rel["n_rollouts"] == 12 and rel["flagged"] == [] and rel["unmeasured"] == []
    for k in LABELS:
        assert rel["labels"][k]["reliability"] == pytest.approx(1.0), k
        assert rel["labels"][k]["below_floor"] is False


def test_pure_noise_labels_have_reliability_near_zero_and_are_flagged():
    rng = np.random.default_rng(2)
    y = _conditions(rng, 300, 16, lambda c: np.full(300, 0.5))  # no snapshot differs from another
    rel = label_reliability(_labeled(y), 0.95, 300, seed=0, floor=0.5)
    for k in LABELS:
        r = rel["labels"][k]
        assert abs(r["reliability"]) < 0.3 and r["lo"] < 0 < r["hi"], (k, r)
    assert set(rel["flagged"]) == set(LABELS)


def test_a_real_difference_between_snapshots_is_reliable_at_enough_rollouts():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, 200)
    y = _conditions(rng, 200, 32, lambda c: p if c == "policy" else np.full(200, 0.5))
    r = label_reliability(_labeled(y), 0.95, 300, seed=0, floor=0.5)["labels"]["p_policy"]
    # var(p) ~ 0.068, binomial noise p(1-p)/32 ~ 0.0062: reliability ~ 0.068 / (0.068 + 0.0062) = 0.92
    assert r["reliability"] == pytest.approx(0.92, abs=0.05) and r["below_floor"] is False


def test_too_few_rollouts_and_u_are_reported_with_their_reason():
    rng = np.random.default_rng(4)
    y = _conditions(rng, 10, 3, lambda c: np.full(10, 0.5))
    rel = label_reliability(_labeled(y), 0.95, 100, seed=0, floor=0.5)
    assert rel["unmeasured"] == list(LABELS) and "at least 4" in rel["labels"]["L_local"]["reason"]
    assert rel["n_too_few"] == 10
    assert rel["U"]["exact"] is True and "by construction" in rel["U"]["reason"]
    gen = label_reliability(_labeled(y, U_estimator=["samples"] * 10), 0.95, 100, seed=0, floor=0.5)
    assert gen["U"]["exact"] is False and "not stored" in gen["U"]["reason"]


# ------------------------------------------------------------------------------------ bands
def test_l_local_interval_is_paired_and_bands_straddling_snapshots():
    rng = np.random.default_rng(5)
    y = _conditions(rng, 4, 8, lambda c: np.full(4, 0.5))
    y["policy"][0], y["force"][0] = 0.0, 1.0  # L_local = 1 on every rollout: zero width
    y["force"][1] = y["policy"][1]  # identical rollouts: L_local = 0 with zero width (paired)
    lab = _labeled(y).assign(quadrant=list(QUADRANTS))
    iv = l_local_interval(lab, 0.95, 500, seed=0)
    assert iv.loc[0, ["L_local_lo", "L_local_hi"]].tolist() == [1.0, 1.0]
    assert iv.loc[1, ["L_local_lo", "L_local_hi"]].tolist() == [0.0, 0.0]
    assert (iv["L_local_lo"] <= lab["L_local"]).all() and (lab["L_local"] <= iv["L_local_hi"]).all()
    assert iv.equals(l_local_interval(lab.iloc[::-1].reset_index(drop=True), 0.95, 500, seed=0).iloc[::-1]
                     .reset_index(drop=True))  # per snapshot, whatever the order
    assert list(quadrant_bands([0.1, -0.2, -0.2, np.nan], [0.3, 0.0, 0.2, 0.1], 0.0)) == [
        "decided", "decided", "uncertain", "uncertain"]
    bands, rel = label_report(lab, {"L_threshold": 0.0}, 0.95, 200, seed=0, floor=0.5)
    assert list(bands.columns) == ["snapshot_id", "L_local_lo", "L_local_hi", "quadrant_band"]
    assert bands["quadrant_band"][0] == "decided" and bands["quadrant_band"][1] == "decided"
    per_q = rel["bands"]["per_quadrant"]
    assert sum(c["decided"] + c["uncertain"] for c in per_q.values()) == 4
    assert rel["bands"]["n_uncertain"] == int((bands["quadrant_band"] == "uncertain").sum())
    with pytest.raises(ValueError, match="is not the mean"):
        l_local_interval(lab.assign(L_local=lab["L_local"] + 0.5), 0.95, 100, seed=0)


# ------------------------------------------------------------------------------------ delta, attenuation
def test_delta_halves_and_gate_reliability():
    res = pd.DataFrame({"snapshot_id": ["a"], "y_before": [[0.0, 1.0, 0.0, 1.0]], "y_after": [[1.0, 1.0, 1.0, 0.0]]})
    a, b = delta_halves(res)
    assert a[0] == 1.0 and b[0] == -0.5  # even: (1,1) vs (0,0); odd: (1,0) vs (1,1)
    rng = np.random.default_rng(6)
    true = rng.uniform(-0.4, 0.4, 120)
    before = rng.random((120, 32)) < 0.5
    after = rng.random((120, 32)) < (0.5 + true)[:, None]
    res = pd.DataFrame({"snapshot_id": [f"s{i}" for i in range(120)], "y_before": list(before.astype(float)),
                        "y_after": list(after.astype(float))})  # fmt: skip
    rep = gate_reliability(res, None, {}, 0.95, 300, seed=0, floor=0.5)
    assert rep["delta"]["reliability"] > 0.5 and rep["delta"]["below_floor"] is False
    noise = res.assign(y_after=list((rng.random((120, 32)) < 0.5).astype(float)))
    assert abs(gate_reliability(noise, None, {}, 0.95, 300, seed=0, floor=0.5)["delta"]["reliability"]) < 0.35


def test_attenuation_bounds_the_observable_rho():
    a = attenuation(0.2, 0.25, 0.64)
    assert a["max_observable"] == pytest.approx(0.4) and a["implied_true"] == pytest.approx(0.5)
    noise = attenuation(0.2, -0.1, 0.5)
    assert np.isnan(noise["max_observable"]) and "not positive" in noise["reason"]
    assert "not measured" in attenuation(0.2, None, 0.5)["reason"]
