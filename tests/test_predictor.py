"""Phase 4 predictor: metrics computed from the written out-of-fold predictions, task-grouped
folds, cheap inputs only, the cross-fitted loader's errors, degenerate classes and targets."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import r2_score

from teachable.predictor import CROSSFIT_TARGET, load_crossfit_predictor, train_predictor
from teachable.predictor_metrics import (_r2, beats, beats_by_interval, bootstrap_ci, precision_at_k,
                                         ranking_difference, ranking_metrics)  # fmt: skip
from teachable.stats import entropy_features, spearman_rho

FORBIDDEN = ["p_force", "p_policy", "gain_net_demo", "episode_length", "L_upper", "first_irrecoverable_step",
             "suggested_action", "diagnosis"]  # fmt: skip
UNCERTAINTY = ["U", "U_norm", "top1_prob", "margin", "exp_H", "p_student_action"]
ACTIONS = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle"]


def _labeled(n_tasks: int = 20, steps: int = 3, seed: int = 0) -> pd.DataFrame:
    """ELP_net is planted in the word "lava" of the observation and in step_idx; U is noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_tasks):
        for s in range(steps):
            lava, key = rng.random() < 0.4, rng.random() < 0.5
            step = int(rng.integers(0, 30))
            obs = ["a wall 1 step forward", f"a {rng.choice(['red', 'blue'])} box 2 steps left"]
            obs += ["a lava tile 1 step right"] if lava else []
            obs += ["a yellow key 3 steps forward"] if key else []
            unc = entropy_features(rng.normal(size=6))
            elp = 0.6 * lava + 0.01 * step + rng.normal(0, 0.02)
            rows.append({
                "snapshot_id": f"t{t:02d}/s{s}", "task_id": f"task{t:02d}", "experiment": "AB"[s == 2],
                "step_idx": step, "instruction": "go to the red box", "observation": "\n".join(obs),
                "history": list(rng.choice(ACTIONS, size=int(rng.integers(0, 5)))), "valid_actions": ACTIONS,
                "student_action": "go forward", **unc, "p_student_action": unc["top1_prob"],
                "L_local": 0.5 * key + rng.normal(0, 0.05), "ELP_net": elp,
                "route_net": "hint" if key else ("contrast" if lava else "demo"),
                # not cheap: hindsight / rollouts / teacher (some of them leak the target on purpose)
                "p_force": elp + 0.1, "p_policy": 0.1, "gain_net_demo": elp, "episode_length": 40,
                "L_upper": 1.0, "first_irrecoverable_step": float(step + 1),
                "suggested_action": "turn left", "diagnosis": "lava ahead" if lava else "fine",
            })  # fmt: skip
    df = pd.DataFrame(rows)
    hi_u, hi_l = df["U"] > df["U"].median(), df["L_local"] > df["L_local"].median()
    df["quadrant"] = np.select([hi_u & hi_l, hi_u & ~hi_l, ~hi_u & ~hi_l],
                               ["Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL"], "Q4_lowU_highL")  # fmt: skip
    return df


CFG = {"seed": 7, "phase4": {"n_features": 256, "n_folds": 5, "top_k": 10, "n_bootstrap": 200}}


def _train(df, tmp_path, cfg=CFG, name="p4"):
    d = tmp_path / name
    res = train_predictor(df, cfg, d / "predictor", d / "training_result.json", d / "oof.parquet")
    return res, d


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    df = _labeled()
    res, d = _train(df, tmp_path_factory.mktemp("p4"))
    return df, res, d


def test_metrics_are_computed_from_the_written_oof_predictions(trained):
    df, res, d = trained
    oof = pd.read_parquet(d / "oof.parquet")
    assert list(oof["snapshot_id"]) == list(df["snapshot_id"])
    on_disk = json.loads((d / "training_result.json").read_text())
    for t in ("U", "L_local", "ELP_net"):
        m = on_disk["targets"][t]["metrics"]
        assert m["r2"] == pytest.approx(r2_score(oof[t], oof[f"pred_{t}"]), abs=1e-12)
        assert m["spearman"] == pytest.approx(spearmanr(oof[t], oof[f"pred_{t}"]).statistic, abs=1e-12)
        assert m["r2_lo"] <= m["r2"] <= m["r2_hi"] and m["n"] == len(df)
    b = on_disk["targets"]["ELP_net"]["baseline"]
    assert b["inputs"] == ["U"]
    assert b["metrics"]["r2"] == pytest.approx(r2_score(oof["ELP_net"], oof["baseline_ELP_net"]), abs=1e-12)
    for t in ("quadrant", "quadrant_without_U", "route_net"):
        col = on_disk["targets"][t]["column"]
        m = on_disk["targets"][t]["metrics"]
        assert m["accuracy"] == pytest.approx((oof[col] == oof[f"pred_{t}"]).mean())
        assert m["lo"] <= m["accuracy"] <= m["hi"]
        assert m["majority_accuracy"] == pytest.approx(df[col].value_counts().iloc[0] / len(df))
    ent = on_disk["ranking"]["entropy"]
    assert ent["spearman"] == pytest.approx(spearmanr(df["ELP_net"], df["U"]).statistic)


def test_precision_at_k_by_hand():
    true = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    ids = np.array(list("abcde"))
    # predicted order b, c, d, e, a: top 2 = {b, c}; true top 2 = {a, b} -> 1 of 2
    score = np.array([1.0, 5.0, 4.0, 3.0, 2.0])
    assert precision_at_k(true, score, ids, 2) == (0.5, 2)
    assert precision_at_k(true, score, ids, 4) == (0.75, 4)  # {b,c,d,e} vs {a,b,c,d}
    # ties in the score go by id: a and c tie at 9 -> a first
    assert precision_at_k(true, np.array([9.0, 0.0, 9.0, 0.0, 0.0]), ids, 1) == (1.0, 1)
    # a tie at the K-th true value: every tied snapshot counts as in the true top K
    assert precision_at_k(np.array([1.0, 0.0, 0.0, 0.0]), np.array([0.0, 3.0, 2.0, 1.0]), ids[:4], 2) == (1.0, 4)
    m = ranking_metrics(true, score, ids, 2)
    assert m["precision_at_k"] == 0.5 and m["null_reasons"] == {}


def test_bootstrap_resamples_whole_tasks():
    # Ten copies of each snapshot in one task carry no more information than one snapshot: the
    # cluster bootstrap gives exactly the interval of the deduplicated data (R² and Spearman do
    # not change when every point is repeated equally), where a per-row bootstrap would shrink it.
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=30), rng.normal(size=30)
    y = y + p
    for stat in (_r2, spearman_rho):
        one = bootstrap_ci(y, p, stat, 300, 0.9, 7, groups=np.arange(30))
        ten = bootstrap_ci(np.repeat(y, 10), np.repeat(p, 10), stat, 300, 0.9, 7, groups=np.repeat(np.arange(30), 10))
        assert one == pytest.approx(ten)
        assert one[0] < one[1] and one[2] == 300


def test_beats_needs_both_ranking_metrics_strictly_higher():
    def r(p, n):
        return {"precision_at_k": p, "ndcg_at_k": n}
    assert beats(r(0.5, 0.6), r(0.4, 0.5)) is True
    assert beats(r(0.5, 0.6), r(0.5, 0.5)) is False  # tie on precision
    assert beats(r(0.5, 0.4), r(0.4, 0.5)) is False  # loses NDCG
    assert beats(r(0.5, float("nan")), r(0.4, 0.5)) is None
    assert beats(r(None, 0.6), r(0.4, 0.5)) is None


def test_predictor_beats_entropy_on_the_planted_signal(trained):
    _, res, _ = trained
    rk = res["ranking"]
    assert rk["k"] == 10 and rk["predictor_beats_entropy"] is True
    assert rk["predictor"]["precision_at_k"] > rk["entropy"]["precision_at_k"]
    assert rk["predictor"]["spearman"] > 0.5
    assert res["targets"]["ELP_net"]["metrics"]["r2"] > res["targets"]["ELP_net"]["baseline"]["metrics"]["r2"]


def test_ranking_difference_has_cluster_bootstrap_intervals_in_the_result(trained):
    df, res, d = trained
    rk = json.loads((d / "training_result.json").read_text())["ranking"]
    diff = rk["difference"]
    for m in ("precision_at_k", "ndcg_at_k"):
        assert diff[m]["value"] == pytest.approx(rk["predictor"][m] - rk["entropy"][m])
        assert diff[m]["lo"] <= diff[m]["value"] <= diff[m]["hi"] and diff[m]["n_defined"] == 200
    assert diff["n_resamples"] == 200 and diff["unit"].startswith("task")
    assert rk["beats_by_interval"] is True and diff["precision_at_k"]["lo"] > 0  # the planted signal is clear
    # deterministic: the same inputs and seed give the same intervals
    oof = pd.read_parquet(d / "oof.parquet")
    args = (df["ELP_net"], oof["pred_ELP_net"], df["U"], df["snapshot_id"], df["task_id"], rk["k"], 200, 0.95)
    assert ranking_difference(*args, seed=3) == ranking_difference(*args, seed=3)


def test_ranking_difference_of_a_score_with_itself_is_zero():
    rng = np.random.default_rng(0)
    true, score = rng.normal(size=30), rng.normal(size=30)
    ids, groups = np.array([f"s{i:02d}" for i in range(30)]), np.repeat(np.arange(10), 3)
    d = ranking_difference(true, score, score, ids, groups, 5, 100, 0.9, 0)
    for m in ("precision_at_k", "ndcg_at_k"):
        assert (d[m]["value"], d[m]["lo"], d[m]["hi"]) == (0, 0, 0)
    assert beats_by_interval(d) is False  # an interval [0, 0] excludes a gain: the claim "ranks better" is not held


def test_beats_by_interval_has_three_outcomes():
    def d(p, n):
        return {"precision_at_k": {"lo": p[0], "hi": p[1]}, "ndcg_at_k": {"lo": n[0], "hi": n[1]}}
    assert beats_by_interval(d((0.05, 0.3), (0.01, 0.2))) is True
    assert beats_by_interval(d((0.05, 0.3), (-0.3, -0.01))) is False  # NDCG clearly worse
    assert beats_by_interval(d((-0.1, 0.3), (0.01, 0.2))) is None  # precision straddles 0
    assert beats_by_interval(d((None, 0.3), (0.01, 0.2))) is None
    assert beats_by_interval(d((-0.1, 0.3), (-0.2, 0.0))) is False  # NDCG's interval excludes a gain


def test_no_task_is_in_both_train_and_test(trained):
    df, res, d = trained
    folds = json.loads((d / "predictor" / "folds.json").read_text())
    tasks = set(df["task_id"])
    assert set(folds["fold_of_task"]) == tasks and res["n_folds"] == folds["n_folds"] == 5
    oof = pd.read_parquet(d / "oof.parquet")
    assert (oof["fold"] == oof["task_id"].map(folds["fold_of_task"])).all()
    for k in range(folds["n_folds"]):
        test = {t for t, f in folds["fold_of_task"].items() if f == k}
        train = set(folds["train_tasks"][str(k)])
        assert test and not (test & train) and test | train == tasks
        bundle = joblib.load(d / "predictor" / f"{CROSSFIT_TARGET}_fold{k}.joblib")
        assert bundle["fold"] == k and set(bundle["train_tasks"]) == train


def test_crossfit_loader_reproduces_the_oof_predictions(trained):
    df, _, d = trained
    oof = pd.read_parquet(d / "oof.parquet")
    pred = load_crossfit_predictor(d / "predictor").predict_elp(df.sample(frac=1.0, random_state=1))
    expected = oof.set_index("snapshot_id")["pred_ELP_net"]
    shuffled = df.sample(frac=1.0, random_state=1)["snapshot_id"]
    np.testing.assert_allclose(pred, expected.loc[shuffled].to_numpy(), rtol=1e-10)


def test_forbidden_columns_are_never_inputs(trained, tmp_path):
    df, _, d = trained
    rng = np.random.default_rng(3)
    permuted = df.copy()
    for c in FORBIDDEN:
        permuted[c] = rng.permutation(permuted[c].to_numpy())
    res2, d2 = _train(permuted, tmp_path)
    oof, oof2 = pd.read_parquet(d / "oof.parquet"), pd.read_parquet(d2 / "oof.parquet")
    pred_cols = [c for c in oof.columns if c.startswith(("pred_", "baseline_"))]
    pd.testing.assert_frame_equal(oof[pred_cols], oof2[pred_cols])
    # the final models ignore the forbidden columns and the targets at prediction time too
    scrambled = permuted.copy()
    for c in ("L_local", "ELP_net", "quadrant", "route_net"):
        scrambled[c] = rng.permutation(scrambled[c].to_numpy())
    for t in ("U", "L_local", "ELP_net", "quadrant", "route_net"):
        model = joblib.load(d / "predictor" / f"{t}.joblib")["model"]
        np.testing.assert_array_equal(model.predict(df), model.predict(scrambled))
    config = json.loads((d / "predictor" / "feature_config.json").read_text())
    assert not set(FORBIDDEN) & set(config["raw_columns"])


def test_target_U_is_not_predicted_from_the_uncertainty_features(trained):
    df, res, d = trained
    t = res["targets"]["U"]
    assert "uncertainty" not in t["inputs"] and "uncertainty" in t["excluded_inputs"]
    assert t["baseline"] is None and t["baseline_reason"]
    model = joblib.load(d / "predictor" / "U.joblib")["model"]
    assert "uncertainty" not in model.named_steps["columns"].named_transformers_
    scrambled = df.copy()
    for c in UNCERTAINTY:
        scrambled[c] = np.random.default_rng(0).permutation(scrambled[c].to_numpy())
    np.testing.assert_array_equal(model.predict(df), model.predict(scrambled))
    q, q_wo = res["targets"]["quadrant"], res["targets"]["quadrant_without_U"]
    assert q["uses_defining_inputs"] == ["U"] and q["note"] and "uncertainty" in q["inputs"]
    assert "uncertainty" not in q_wo["inputs"] and q_wo["uses_defining_inputs"] == []


def test_loader_errors_name_the_problem(trained, tmp_path):
    import shutil

    df, _, d = trained
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_crossfit_predictor(tmp_path / "missing")
    pdir = tmp_path / "predictor"
    shutil.copytree(d / "predictor", pdir)
    with pytest.raises(ValueError, match="not in .*folds.json"):
        load_crossfit_predictor(pdir).predict_elp(df.assign(task_id="a-new-task"))
    (pdir / "ELP_net_fold1.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="ELP_net_fold1.joblib"):
        load_crossfit_predictor(pdir)
    (pdir / "ELP_net_fold1.joblib").unlink()
    with pytest.raises(FileNotFoundError, match="ELP_net_fold1.joblib"):
        load_crossfit_predictor(pdir)
    (pdir / "folds.json").unlink()
    with pytest.raises(FileNotFoundError, match="folds.json"):
        load_crossfit_predictor(pdir)


def test_missing_class_and_one_class_training_folds_do_not_crash(tmp_path):
    df = _labeled(n_tasks=6, steps=2, seed=1)
    df["route_net"] = np.where(df["task_id"] == "task00", "hint", "demo")  # fold of task00 trains on demo only
    df["quadrant"] = np.select([df["task_id"] == "task01", df["task_id"] == "task02"],
                               ["Q1_highU_highL", "Q2_highU_lowL"], "Q3_lowU_lowL")  # fmt: skip
    cfg = {"seed": 0, "phase4": {"n_folds": 6, "top_k": 3, "n_bootstrap": 100}}  # one task per fold
    res, d = _train(df, tmp_path, cfg)
    folds = json.loads((d / "predictor" / "folds.json").read_text())["fold_of_task"]
    assert res["targets"]["route_net"]["folds_with_one_class"] == [folds["task00"]]
    oof = pd.read_parquet(d / "oof.parquet")
    assert (oof.loc[oof["task_id"] == "task00", "pred_route_net"] == "demo").all()
    # Q1 exists only in task01: never predicted there (its fold did not see the class)
    assert not (oof.loc[oof["task_id"] == "task01", "pred_quadrant"] == "Q1_highU_highL").any()
    assert res["targets"]["quadrant"]["metrics"]["n"] == len(df)


def test_constant_target_gives_null_metrics_with_reasons(tmp_path):
    df = _labeled(n_tasks=4, steps=2).assign(ELP_net=0.0)
    res, d = _train(df, tmp_path, {"seed": 0, "phase4": {"n_folds": 2, "n_bootstrap": 100}})
    on_disk = json.loads((d / "training_result.json").read_text())
    m = on_disk["targets"]["ELP_net"]["metrics"]
    assert m["r2"] is None and m["spearman"] is None and "constant" in m["null_reasons"]["r2"]
    rk = on_disk["ranking"]
    assert rk["predictor"]["precision_at_k"] is None and rk["predictor_beats_entropy"] is None
    assert rk["predictor"]["null_reasons"]["ndcg_at_k"]


def test_input_errors(tmp_path):
    df = _labeled(n_tasks=3, steps=2)
    with pytest.raises(ValueError, match="at least 2 distinct task_id"):
        _train(df.assign(task_id="one"), tmp_path)
    with pytest.raises(ValueError, match="route_net"):
        _train(df.drop(columns="route_net"), tmp_path)
    with pytest.raises(ValueError, match="phase4.n_folds"):
        _train(df, tmp_path, {"seed": 0, "phase4": {"n_folds": 1}})
    with pytest.raises(ValueError, match="config key phase4: .*nfolds. was unexpected"):
        _train(df, tmp_path, {"seed": 0, "phase4": {"nfolds": 3}})
    with pytest.raises(ValueError, match="NaN"):
        _train(df.assign(U_norm=np.nan), tmp_path)
    assert not (tmp_path / "p4" / "predictor").exists()


def test_cli_fit_then_metrics_write_the_three_outputs(tmp_path):
    from teachable.cli import main

    from conftest import complete
    from teachable.schemas import LABELED

    labeled = tmp_path / "labeled.parquet"
    lab = _labeled(n_tasks=4, steps=2)
    complete(lab[[c for c in lab.columns if c in LABELED.columns]], LABELED).to_parquet(labeled)
    out = tmp_path / "phase4"
    main(["predictor", "--config-json", json.dumps({"seed": 1, "phase4": {"n_folds": 3}}),
          "--labeled", str(labeled), "--out-dir", str(out / "predictor"),
          "--out-oof", str(out / "oof_predictions.parquet")])  # fmt: skip
    assert (out / "predictor" / "feature_config.json").exists() and (out / "oof_predictions.parquet").exists()
    assert not (out / "training_result.json").exists()  # fitting computes no statistic
    main(["predictor-metrics", "--config-json", json.dumps({"seed": 1, "phase4": {"n_bootstrap": 100}}),
          "--oof", str(out / "oof_predictions.parquet"), "--predictor", str(out / "predictor"),
          "--out", str(out / "training_result.json")])  # fmt: skip
    res = json.loads((out / "training_result.json").read_text())
    assert res["n_tasks"] == 4 and res["bootstrap"]["n_resamples"] == 100
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp directory left
