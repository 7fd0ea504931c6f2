import math

import numpy as np
import pytest

from teachable.stats import (
    bonferroni_confidence,
    cluster_bootstrap_diff,
    cluster_bootstrap_rate,
    cluster_bootstrap_statistic,
    cluster_sums,
    entropy_features,
    holm,
    interval_verdict,
    paired_cluster_bootstrap_diff,
    paired_permutation_test,
    proportion,
    spearman_rho,
    wilson_interval,
)


def test_wilson_matches_closed_form():
    k, n, z = 7, 20, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(centre - half, abs=1e-9)
    assert hi == pytest.approx(centre + half, abs=1e-9)


def test_wilson_extremes_stay_in_unit_interval_and_are_not_degenerate():
    lo, hi = wilson_interval(0, 8)
    assert lo == 0.0 and 0.2 < hi < 0.5
    lo, hi = wilson_interval(8, 8)
    assert hi == pytest.approx(1.0) and 0.5 < lo < 0.8


def test_interval_narrows_with_n():
    w10 = np.subtract(*wilson_interval(5, 10)[::-1])
    w100 = np.subtract(*wilson_interval(50, 100)[::-1])
    assert w100 < w10


def test_proportion_carries_n_and_rejects_bad_counts():
    pr = proportion(3, 4)
    assert pr["p"] == 0.75 and pr["n"] == 4 and pr["lo"] < 0.75 < pr["hi"]
    assert math.isnan(proportion(0, 0)["p"])
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_entropy_of_uniform_is_log_k():
    f = entropy_features(np.log(np.full(6, 1 / 6)))
    assert f["U"] == pytest.approx(math.log(6))
    assert f["U_norm"] == pytest.approx(1.0)
    assert f["exp_H"] == pytest.approx(6.0)
    assert f["margin"] == pytest.approx(0.0)


def test_entropy_of_peaked_distribution():
    p = np.array([0.7, 0.2, 0.1])
    f = entropy_features(np.log(p))
    assert f["U"] == pytest.approx(-(p * np.log(p)).sum())
    assert f["top1_prob"] == pytest.approx(0.7)
    assert f["margin"] == pytest.approx(0.5)


def test_entropy_normalises_unnormalised_logprobs():
    a = entropy_features(np.log([0.5, 0.25, 0.25]))
    b = entropy_features(np.log([2.0, 1.0, 1.0]))
    assert a["U"] == pytest.approx(b["U"])


# ------------------------------------------------------------------------------------ clustered intervals
def _task_rollouts(n_tasks=25, per_task=4, seed=0):
    """Rollouts that share their task: each task has its own success probability."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.7, 0.7, n_tasks)
    tasks = np.repeat(np.arange(n_tasks), per_task)
    return (rng.random(len(tasks)) < p[tasks]).astype(float), tasks


def test_cluster_sums_keep_finite_values_and_drop_empty_clusters():
    cs = cluster_sums([1.0, 0.0, np.nan, 3.0, np.nan], ["a", "a", "b", "c", "c"])
    assert list(cs.index) == ["a", "c"]
    assert cs.loc["a"].tolist() == [1.0, 2.0] and cs.loc["c"].tolist() == [3.0, 1.0]


def test_ten_copies_per_task_give_the_interval_of_one_copy():
    # Copies of a task's rollouts add no information: the cluster bootstrap resamples tasks, so
    # the interval does not shrink; a Wilson interval over the rollouts would.
    y, tasks = _task_rollouts()
    one = cluster_sums(y, tasks)
    ten = cluster_sums(np.tile(y, 10), np.tile(tasks, 10))
    a = cluster_bootstrap_rate(one["sum"], one["count"], 0.95, 2000, seed=3)
    b = cluster_bootstrap_rate(ten["sum"], ten["count"], 0.95, 2000, seed=3)
    assert b["n"] == 10 * a["n"] and b["n_clusters"] == a["n_clusters"] == 25
    assert (b["value"], b["lo"], b["hi"]) == pytest.approx((a["value"], a["lo"], a["hi"]))
    assert a["lo"] < a["value"] < a["hi"]
    w_lo, w_hi = wilson_interval(int(np.tile(y, 10).sum()), b["n"])
    assert w_hi - w_lo < 0.5 * (b["hi"] - b["lo"])  # what ignoring the clusters would claim


def test_identical_models_have_an_exact_zero_paired_difference():
    y, tasks = _task_rollouts()
    cs = cluster_sums(y, tasks)
    d = paired_cluster_bootstrap_diff(cs["sum"], cs["count"], cs["sum"], cs["count"], 0.95, 500, seed=0)
    assert (d["value"], d["lo"], d["hi"]) == (0.0, 0.0, 0.0) and d["reason"] is None
    # unpaired, the same data would get a wide interval around 0
    u = cluster_bootstrap_diff(cs["sum"], cs["count"], cs["sum"], cs["count"], 0.95, 500, seed=0)
    assert u["value"] == 0 and u["lo"] < -0.1 and u["hi"] > 0.1


def test_pairing_removes_the_shared_task_effect():
    y, tasks = _task_rollouts(n_tasks=40)
    flip = np.random.default_rng(1).random(len(y)) < 0.1  # the model differs on 10% of rollouts
    a, b = cluster_sums(np.where(flip, 1 - y, y), tasks), cluster_sums(y, tasks)
    paired = paired_cluster_bootstrap_diff(a["sum"], a["count"], b["sum"], b["count"], 0.95, 1000, 0)
    unpaired = cluster_bootstrap_diff(a["sum"], a["count"], b["sum"], b["count"], 0.95, 1000, 0)
    assert paired["value"] == pytest.approx(unpaired["value"])
    assert paired["hi"] - paired["lo"] < 0.5 * (unpaired["hi"] - unpaired["lo"])


def test_cluster_bootstrap_is_deterministic_per_seed():
    y, tasks = _task_rollouts()
    cs = cluster_sums(y, tasks)
    r = [cluster_bootstrap_rate(cs["sum"], cs["count"], 0.9, 300, seed=s) for s in (5, 5, 6)]
    assert r[0] == r[1] and (r[0]["lo"], r[0]["hi"]) != (r[2]["lo"], r[2]["hi"])


def test_one_cluster_has_no_interval_and_says_why():
    r = cluster_bootstrap_rate([3.0], [4.0])
    assert r["value"] == 0.75 and math.isnan(r["lo"]) and math.isnan(r["hi"]) and "at least 2" in r["reason"]
    with pytest.raises(ValueError, match="count > 0"):
        cluster_bootstrap_rate([1.0, 1.0], [2.0, 0.0])


def test_cluster_bootstrap_statistic_leaves_undefined_resamples_out():
    # Truth constant within each of 3 tasks: a resample of one task only has an undefined R² and
    # Spearman. The numbers are those of the predictor's former hand-rolled bootstrap
    # (predictor.cluster_resamples + _percentile) on the same data, which this one replaced.
    from sklearn.metrics import r2_score

    groups = np.array(["x", "y", "z", "x", "y", "z", "x", "y"], dtype=object)
    y = np.array([{"x": 0.0, "y": 1.0, "z": 2.0}[g] for g in groups])
    p = np.arange(8.0)[::-1] * 0.3 + y

    def r2(rows):
        return r2_score(y[rows], p[rows], force_finite=False)

    def rho(rows):
        return spearman_rho(y[rows], p[rows])

    with np.errstate(divide="ignore"):
        assert cluster_bootstrap_statistic(r2, groups, 0.9, 300, 5) == [(-6.965, pytest.approx(-0.6275), 265)]
        both = cluster_bootstrap_statistic(lambda rows: (r2(rows), rho(rows)), groups, 0.9, 300, 5)
    assert cluster_bootstrap_statistic(rho, groups, 0.9, 300, 5) == [(0.2773500981126145, 0.881917103688197, 265)]
    assert both == [(-6.965, pytest.approx(-0.6275), 265), (0.2773500981126145, 0.881917103688197, 265)]


def test_cluster_bootstrap_statistic_matches_the_former_predictor_bootstrap():
    rng = np.random.default_rng(3)
    y = rng.normal(size=40)
    p = y + rng.normal(scale=1.5, size=40)
    groups = np.array([f"t{int(g)}" for g in rng.integers(0, 9, size=40)], dtype=object)
    y = np.round(y, 0)
    ci = cluster_bootstrap_statistic(lambda rows: spearman_rho(y[rows], p[rows]), groups, 0.9, 300, 7)
    assert ci == [(0.21345890367049433, 0.6701025364303972, 300)]
    with pytest.raises(ValueError, match="at least 2"):
        cluster_bootstrap_statistic(np.mean, ["a", "a"], 0.9, 100, 0)


def test_paired_permutation_test_matches_scipy_and_explains_a_null_p():
    from scipy import stats as st

    x, y = np.array([0.5, 0.75, 0.25, 1.0, 0.5]), np.array([0.25, 0.25, 0.25, 0.5, 0.0])
    t = paired_permutation_test(x, y)
    ref = st.permutation_test(
        (x, y),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=9999,
    )
    assert t["p_value"] == pytest.approx(ref.pvalue) and t["exact"] and t["n_units"] == 5
    assert t["p_value"] == pytest.approx(2 / 2**4)  # 4 non-zero differences, all positive
    same = paired_permutation_test(x, x)
    assert same["p_value"] is None and "zero" in same["reason"]
    assert paired_permutation_test([1.0], [0.0])["reason"].startswith("1 paired unit")


def test_holm_adjustment():
    assert holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06], nan_ok=True)
    assert holm([0.5, 0.01]) == pytest.approx([0.5, 0.02])


def test_a_verdict_is_undetermined_when_the_interval_straddles_and_not_held_only_when_it_excludes_the_claim():
    assert interval_verdict(0.01, 0.2) is True  # claim "> 0": the whole interval supports it
    assert interval_verdict(-0.05, 0.2) is None  # a positive point estimate is not enough
    assert interval_verdict(-0.3, -0.01) is False and interval_verdict(-0.3, 0.0) is False  # excludes "> 0"
    assert interval_verdict(0.3, 0.6, 0.3, ">=") is True and interval_verdict(0.1, 0.29, 0.3, ">=") is False
    assert interval_verdict(0.1, 0.31, 0.3, ">=") is None
    # "< threshold" (a drop below it): not held only when the lower bound reaches the threshold
    assert interval_verdict(0.0, 0.04, 0.05, "<") is True and interval_verdict(0.05, 0.1, 0.05, "<") is False
    assert interval_verdict(0.01, 0.09, 0.05, "<") is None and interval_verdict(0.0, 0.05, 0.05, "<=") is True
    assert interval_verdict(None, 0.2) is None and interval_verdict(float("nan"), 0.2) is None
    with pytest.raises(ValueError, match="claim"):
        interval_verdict(0.0, 1.0, claim="!=")
    with pytest.raises(ValueError, match="lower bound above"):
        interval_verdict(0.3, 0.1)


def test_bonferroni_widens_intervals():
    assert bonferroni_confidence(0.95, 1) == 0.95 and bonferroni_confidence(0.95, 10) == pytest.approx(0.995)
    with pytest.raises(ValueError, match="m=0"):
        bonferroni_confidence(0.95, 0)
    rng = np.random.default_rng(3)
    sums, counts = rng.integers(0, 9, 12).astype(float), np.full(12, 8.0)
    one = cluster_bootstrap_rate(sums, counts, 0.95, 2000, 0)
    sim = cluster_bootstrap_rate(sums, counts, bonferroni_confidence(0.95, 14), 2000, 0)
    assert sim["lo"] < one["lo"] and sim["hi"] > one["hi"]


def test_rate_of_single_trials_is_exact_at_zero_and_n():
    """One 0/1 value per cluster: Clopper-Pearson, so 0 / 10 is not the bootstrap's [0, 0]."""
    from teachable.stats import ClusterBootstrap

    bs = ClusterBootstrap(0.95, 500, 0)
    assert bs.rate(np.zeros(10), np.arange(10))["hi"] == 0  # a measure that happens to be 0/1: not a trial
    r = bs.rate(np.zeros(10), np.arange(10), binary=True)
    assert r["value"] == 0 and r["lo"] == 0 and r["hi"] == pytest.approx(0.3085, abs=1e-3)
    r = bs.rate(np.ones(10), np.arange(10), binary=True)
    assert r["lo"] == pytest.approx(0.6915, abs=1e-3) and r["hi"] == 1
    # several rollouts per task stay a cluster bootstrap (the exact interval would ignore clustering)
    r = bs.rate(np.zeros(10), np.repeat(np.arange(5), 2), binary=True)
    assert r["lo"] == r["hi"] == 0
    with pytest.raises(ValueError, match="other than 0/1"):
        bs.rate(np.full(10, 2.0), np.arange(10), binary=True)
