"""Report figures, tables and summary: every number comes from the phase outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from teachable import reporting as rp
from teachable.cli import main
from teachable.constants import FORMATS, QUADRANTS, RUN_IDS
from conftest import complete
from teachable.evaluation_tables import SUMMARY_COLUMNS
from teachable.schemas import ALL_EVAL_ROLLOUTS, LABELED, MICRO_RESULTS, TEACHER_FAILURES
from teachable.stats import proportion

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_DROP_RUN, MAX_DROP = "Q2_highU_lowL_hint", 5 / 60


def _rate(k: int, n: int) -> dict:
    return proportion(k, n, 0.95)


def _transfer() -> pd.DataFrame:
    """14 runs x 4 quadrants; in-quadrant cells get +0.2, so the diagonal clearly wins; B1_uniform
    gets +0.2 everywhere (the positive control holds)."""
    rows = []
    for i, m in enumerate(RUN_IDS):
        q = next((q for q in QUADRANTS if m.startswith(q)), m)
        for j, e in enumerate(QUADRANTS):
            n, kb = 40, 10
            km = kb + (8 if q == e or m == "B1_uniform" else 0) + (i + j) % 3 - 1
            d = (km - kb) / n
            lo, hi = d - 0.2, d + 0.2  # (any interval around the difference)
            rows.append(dict(trained_on=q, evaluated_on=e, model_id=m, delta_success=d, lo=lo, hi=hi, n=n,
                             base_success=kb / n, model_success=km / n))  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS["transfer"])


def _overall() -> pd.DataFrame:
    """Success per model; gain vs base with a (made-up, Phase 3-shaped) paired interval of +-0.05."""
    rows = []
    kb = 50
    for i, m in enumerate(("base", *RUN_IDS)):
        k, n = 50 + (i % 5) * 3, 100
        pr = _rate(k, n)
        g = (k - kb) / n
        rows.append(dict(model_id=m, n=n, success_rate=pr["p"], success_lo=pr["lo"], success_hi=pr["hi"],
                         mean_return=0.3, return_lo=0.25, return_hi=0.35, mean_steps=27.0, steps_lo=25.0,
                         steps_hi=29.0, n_tasks=50, n_rollouts=n, gain_vs_base=g,
                         gain_lo=g - 0.05 if m != "base" else 0.0, gain_hi=g + 0.05 if m != "base" else 0.0,
                         gain_paired=True))  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS["overall"])


RET_HALF_WIDTH = 0.025  # drop intervals: MAX_DROP_RUN [0.058, 0.108]; every other run's upper bound <= 0.075
RET_SIM_HALF_WIDTH = 0.03  # simultaneous (Bonferroni) intervals: MAX_DROP_RUN [0.053, 0.113]; others' <= 0.08


def _retention() -> pd.DataFrame:
    rows = []
    nb, kb = 60, 54
    for i, m in enumerate(("base", *RUN_IDS)):
        km = kb - (i % 4) if m != MAX_DROP_RUN else kb - 5
        d = (kb - km) / nb
        b, mo = _rate(kb, nb), _rate(km, nb)
        lo, hi = (d - RET_HALF_WIDTH, d + RET_HALF_WIDTH) if m != "base" else (0.0, 0.0)
        slo, shi = (d - RET_SIM_HALF_WIDTH, d + RET_SIM_HALF_WIDTH) if m != "base" else (0.0, 0.0)
        rows.append(dict(model_id=m, n_base_solved_tasks=20, base_success=b["p"], model_success=mo["p"], drop=d,
                         drop_lo=lo, drop_hi=hi, drop_sim_lo=slo, drop_sim_hi=shi, n=nb, base_lo=b["lo"],
                         base_hi=b["hi"], model_lo=mo["lo"], model_hi=mo["hi"], n_tasks=20, n_rollouts=nb,
                         rollouts_per_task=6, selection_rollouts=3, n_family=len(RUN_IDS),
                         sim_confidence=1 - 0.05 / len(RUN_IDS), reason=None))  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS["retention"])


def _eval_rollouts(transfer: pd.DataFrame) -> pd.DataFrame:
    """Phase 3 rollouts the transfer matrix ``transfer`` summarises: per quadrant 4 held-out
    snapshots (snapshot k from task k, so each task has one per quadrant) x 10 rollouts,
    base_success x 40 (model_success x 40 for a run) of them successes, spread evenly over the
    snapshots; and the base's overall
    suite (one start with an expert error)."""
    rows = [dict(model_id="base", suite="overall", task_id=t, snapshot_id=None, quadrant=None, rollout_idx=i,
                 success=True, expert_error=e)
            for i, (t, e) in enumerate((("t0", None), ("t0", None), ("t1", "impossible"), ("t2", None)))]  # fmt: skip
    cells = [("base", q, r["base_success"]) for q, r in transfer.groupby("evaluated_on").first().iterrows()]
    cells += [(r["model_id"], r["evaluated_on"], r["model_success"]) for _, r in transfer.iterrows()]
    for m, q, rate in cells:
        k = round(rate * 40)
        rows += [dict(model_id=m, suite="snapshot", task_id=f"task{i // 10}", snapshot_id=f"{q}/s{i // 10}",
                      quadrant=q, rollout_idx=i % 10, success=(i % 10) * 4 + i // 10 < k, expert_error=None)
                 for i in range(40)]  # fmt: skip
    return complete(pd.DataFrame(rows), ALL_EVAL_ROLLOUTS)


def _stuckness() -> pd.DataFrame:
    rows = []
    for i, m in enumerate(("base", *RUN_IDS)):
        lp = _rate(5 + i % 3, 100)
        rows.append(dict(model_id=m, n=100, repeat_rate=0.2, repeat_rate_lo=0.18, repeat_rate_hi=0.22, n_repeat=100,
                         loop_rate=lp["p"], loop_rate_lo=lp["lo"], loop_rate_hi=lp["hi"], wasted_steps=10.0,
                         wasted_steps_lo=9.0, wasted_steps_hi=11.0, n_wasted=100, invalid_rate=0.0,
                         invalid_rate_lo=0.0, invalid_rate_hi=0.0))  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS["stuckness"])


def _predictor() -> dict:
    reg = {"r2": 0.21, "r2_lo": 0.05, "r2_hi": 0.35, "spearman": 0.4, "spearman_lo": 0.2, "spearman_hi": 0.55,
           "spearman_p": 0.001, "n": 40}  # fmt: skip
    base = {"name": "entropy_only", "inputs": ["U"], "metrics": {**reg, "r2": 0.02, "spearman": 0.1}}
    targets = {
        t: {"kind": "regression", "inputs": ["text", "structure"], "excluded_inputs": {}, "uses_defining_inputs": [],
            "note": None, "metrics": reg, "baseline": base if t != "U" else None,
            "baseline_reason": "U is the baseline's own input" if t == "U" else None}
        for t in ("U", "L_local", "ELP_net")
    }  # fmt: skip
    cls = {"accuracy": 0.5, "lo": 0.35, "hi": 0.65, "n": 40, "majority_accuracy": 0.3}
    for t in ("quadrant", "quadrant_without_U", "route_net"):
        targets[t] = {"kind": "classification", "inputs": ["text"], "excluded_inputs": {"uncertainty": "defines it"},
                      "uses_defining_inputs": [], "note": None, "metrics": cls,
                      "baseline": {"name": "entropy_only", "inputs": ["U"], "metrics": {**cls, "accuracy": 0.4}},
                      "baseline_reason": None}  # fmt: skip
    return {
        "n_snapshots": 40, "n_tasks": 20, "n_folds": 5, "cv": "GroupKFold", "confidence": 0.95, "targets": targets,
        "ranking": {"target": "ELP_net", "k": 8, "relevance": "ELP_net clipped at 0",
                    "predictor": {"precision_at_k": 0.5, "ndcg_at_k": 0.61, "spearman": 0.4, "spearman_p": 0.01},
                    "entropy": {"precision_at_k": 0.25, "ndcg_at_k": 0.42, "spearman": 0.1, "spearman_p": 0.5},
                    "predictor_beats_entropy": True,
                    "difference": {"precision_at_k": {"value": 0.25, "lo": 0.05, "hi": 0.45, "n_defined": 1000},
                                   "ndcg_at_k": {"value": 0.19, "lo": 0.02, "hi": 0.33, "n_defined": 1000},
                                   "n_resamples": 1000, "unit": "task"},
                    "beats_by_interval": True},
    }  # fmt: skip


def _comparison(model: str, baseline: str, diff: tuple, p: float | None, p_holm: float | None = None) -> dict:
    c = {"model": model, "baseline": baseline,
         "difference": {"value": diff[0], "lo": diff[1], "hi": diff[2], "paired": True, "n_tasks": 50,
                        "n_model": 100, "n_baseline": 100},
         "test": {"name": "paired permutation", "p_value": p, "reason": None if p is not None else "no variance"},
         "p_value": p}  # fmt: skip
    return {**c, "p_holm": p_holm} if model == "PREDICTOR" else c


def _selection() -> dict:
    def method(i: int, gain: tuple, drop: float) -> dict:
        s = {**_rate(50 + 5 * i, 100), "n_tasks": 50}
        return {"selected_ids": [f"s{j:03d}" for j in range(i, i + 8)], "oracle_overlap": 0.125 * i, "success": s,
                "value": {"gain_net": 0.05 * i, "lo": 0.05 * i - 0.1, "hi": 0.05 * i + 0.1, "n": 128,
                          "n_snapshots": 8, "n_tasks": 8, "format": "demo"},
                "cost": {"student_rollouts": 300 * i, "expert_rollouts": 0, "teacher_calls": 10 * i,
                         "forward_passes": 30, "student_rollouts_per_candidate": 10.0 * i, "tokens": None},
                "oracle_oof": {"gain_net": 0.3, "lo": 0.1, "hi": 0.5, "n_snapshots": 8, "format": "demo",
                               "ranked_on": "even rollout indices", "measured_on": "odd rollout indices"}
                if i == 4 else None,
                "reliability_gain": {"delta": gain[0], "lo": gain[1], "hi": gain[2], "n_model": 100, "n_tasks": 50},
                "retention": {"drop": drop, "lo": drop - 0.05, "hi": drop + 0.05, "n": 60, "n_base_solved_tasks": 20}}  # fmt: skip

    return {
        "k": 8, "n_candidates": 30, "format": "demo", "confidence": 0.95,
        "base": {"success": {**_rate(50, 100), "n_tasks": 50}},
        "methods": {"RANDOM": method(0, (0.0, -0.1, 0.1), 0.02), "ENTROPY": method(1, (0.05, -0.05, 0.15), 0.03),
                    "LEARNABILITY": method(2, (0.08, -0.02, 0.18), 0.02),
                    "LEARNABILITY_EQ": method(5, (0.1, 0.0, 0.2), 0.02),
                    "PREDICTOR": method(3, (0.15, 0.05, 0.25), 0.01), "ORACLE": method(4, (0.2, 0.1, 0.3), 0.0)},
        "comparisons": {
            "best_baseline": "LEARNABILITY",
            "predictor_vs_baselines": [_comparison("PREDICTOR", "RANDOM", (0.15, 0.08, 0.22), 0.001, 0.003),
                                       _comparison("PREDICTOR", "ENTROPY", (0.10, 0.03, 0.17), 0.004, 0.008),
                                       _comparison("PREDICTOR", "LEARNABILITY", (0.07, 0.01, 0.13), 0.02, 0.02)],
            "oracle_vs_learnability_eq": _comparison("ORACLE", "LEARNABILITY_EQ", (0.1, 0.02, 0.18), 0.004),
            "oracle_vs_learnability": _comparison("ORACLE", "LEARNABILITY", (0.12, 0.04, 0.2), 0.003),
        },
    }  # fmt: skip


@pytest.fixture
def study(tmp_path):
    """A small, consistent set of phase outputs; returns {name: path}."""
    rng = np.random.default_rng(0)
    n = 40
    labeled = pd.DataFrame({
        "snapshot_id": [f"s{i:03d}" for i in range(n)], "task_id": [f"t{i // 2}" for i in range(n)],
        "quadrant": [QUADRANTS[i % 4] for i in range(n)], "U": rng.uniform(0.5, 1.4, n),
        "L_local": rng.choice(np.arange(-4, 9) / 8, n), "ELP_net": rng.choice(np.arange(-4, 9) / 8, n),
        "route_net": [FORMATS[i % 3] for i in range(n)], "route_ties": [["demo"]] * n,
        **{f"gain_net_{m}": rng.choice(np.arange(-4, 9) / 8, n) for m in FORMATS},
        "ELP_net_naive": rng.choice(np.arange(0, 9) / 8, n), "p_policy": rng.choice(np.arange(0, 9) / 8, n),
        "p_expert_errors": [1 if i == 3 else 0 for i in range(n)], "p_expert_impossible": [1 if i == 3 else 0 for i in range(n)],
    })  # fmt: skip
    micro = labeled.iloc[:16][["snapshot_id", "quadrant", "ELP_net"]].assign(
        route="demo", before=0.25, after=lambda d: 0.25 + d["ELP_net"] / 2, delta=lambda d: d["ELP_net"] / 2)
    corr = {"n": 16, "rho": 0.51, "rho_ci": [0.32, 0.7], "ci_method": "percentile bootstrap (paired)",
            "confidence": 0.95, "p_value": 0.0104, "p_method": "permutation (pairings), one-sided: rho > 0",
            "rho_threshold": 0.3, "alpha": 0.05, "pass": True, "reason": None,
            "baselines": {"L_local": {"n": 16, "rho": 0.1, "rho_ci": [-0.3, 0.5], "p_value": 0.4},
                          "headroom": {"n": 16, "rho": 0.3, "rho_ci": [-0.1, 0.6], "p_value": 0.1},
                          "U": {"n": 16, "rho": -0.1, "rho_ci": [-0.5, 0.3], "p_value": 0.6}},
            "partial_rho": {"n": 16, "rho": 0.45, "rho_ci": [0.12, 0.7], "p_value": 0.02, "given": "p_policy"},
            "per_route": {"demo": {"n": 16, "rho": 0.51, "rho_ci": [0.32, 0.7], "p_value": 0.0104}},
            "verdict": "pass", "rule": "pass iff ...", "sample": "uniform", "weighting": "none needed",
            "partial_rho_L_local": {"n": 16, "rho": 0.4, "rho_ci": [0.05, 0.7], "given": "L_local"},
            "rho_minus_L_local": {"n": 16, "rho": 0.41, "rho_ci": [-0.1, 0.9], "p_value": None},
            "reliability": {"delta": {"reliability": 0.54, "lo": 0.3, "hi": 0.7, "n": 16, "below_floor": False},
                            "labels": {"ELP_net": {"reliability": 0.19, "lo": -0.2, "hi": 0.5, "below_floor": True}},
                            "attenuation_ELP_net": {"max_observable": 0.32, "implied_true": 1.59, "reason": None}}}
    reliability = {"n_snapshots": n, "n_rollouts": 8, "floor": 0.5, "confidence": 0.95, "flagged": ["L_local"],
                   "unmeasured": [], "quadrants_reliable": False,
                   "labels": {"p_policy": {"reliability": 0.56, "lo": 0.4, "hi": 0.7, "n": n, "below_floor": False},
                              "L_local": {"reliability": 0.1, "lo": -0.2, "hi": 0.4, "n": n, "below_floor": True}},
                   "U": {"reliability": None, "exact": True, "reason": "not applicable: U is exact"},
                   "gate_bound": {"max_observable": 0.52, "implied_true": None, "reason": None},
                   "bands": {"interval": "paired bootstrap", "L_threshold": 0.0, "n_uncertain": 30,
                             "per_quadrant": {q: {"decided": 2, "uncertain": 8} for q in QUADRANTS}}}  # fmt: skip
    hint = {"n": n, "n_tasks": 20, "diagnoses_naming_action": 0,
            "hint_action_accuracy": {"p": 0.6, "n": n, "lo": 0.45, "hi": 0.73},
            "demo_action_accuracy": {"p": 1.0, "n": n, "lo": 0.91, "hi": 1.0},
            "majority_accuracy": {"p": 0.4, "n": n, "lo": 0.26, "hi": 0.55},
            "state_action_accuracy": {"p": 0.5, "n": n, "lo": 0.35, "hi": 0.65},
            "state_hint_action_accuracy": {"p": 0.9, "n": n, "lo": 0.78, "hi": 0.96},
            "leakage_index": {"lambda": 0.8, "lo": 0.77, "hi": 0.93, "band": "demo-like", "band_point": "demo-like",
                              "bands_spanned": ["demo-like"], "reason": None,
                              "bands": {"hint": "lambda < 0.25", "informative hint": "lambda >= 0.25 and lambda < 0.75",
                                        "demo-like": "lambda >= 0.75"}}, "reason": None}  # fmt: skip
    training = {"runs": {r: {} for r in RUN_IDS}, "skipped_runs": {}, "budget": 8, "epochs": 4.0, "optimizer_steps": 4,
                "b2_all_compute_ratio": 3.5, "equal_budgets": True, "heldout_leaks": []}  # fmt: skip
    mining = {"A": {"failed_episodes": 30, "expert_error_planner": 1}, "B": {"episodes": 10}}
    thr = {"mode": "auto", "n": n, "U_threshold": 0.95, "L_threshold": 0.0,
           "sizes": {q: int((labeled["quadrant"] == q).sum()) for q in QUADRANTS}}  # fmt: skip
    paths = {k: tmp_path / "in" / v for k, v in {
        "labeled": "labeled_snapshots.parquet", "thresholds": "quadrant_thresholds.json",
        "micro": "micro_training_results.parquet", "correlation": "cpt_correlation.json",
        "transfer": "transfer_matrix.csv", "overall": "overall_task_results.csv",
        "retention": "retention_results.csv", "stuckness": "stuckness_results.csv",
        "predictor": "training_result.json", "selection": "selection_summary.json", "hint_audit": "hint_audit.json",
        "training": "training_summary.json", "mining": "mining_summary.json", "reliability": "label_reliability.json",
        "eval_rollouts": "rollouts.parquet", "teacher_failures": "teacher_failures.parquet",
        "family": "family_metrics.csv"}.items()}  # fmt: skip
    paths["labeled"].parent.mkdir()
    complete(labeled, LABELED).to_parquet(paths["labeled"])
    complete(micro, MICRO_RESULTS).to_parquet(paths["micro"])
    for k, obj in (("thresholds", thr), ("correlation", corr), ("predictor", _predictor()), ("selection", _selection()),
                   ("hint_audit", hint), ("training", training), ("mining", mining), ("reliability", reliability)):
        paths[k].write_text(json.dumps(obj))
    _eval_rollouts(_transfer()).to_parquet(paths["eval_rollouts"])
    complete(pd.DataFrame({"snapshot_id": ["s900", "s901", "s902"], "failure_reason": ["transport: HTTP 429", "x", "y"],
                           "failure_kind": ["rate_limited", "malformed_json", "rate_limited"]}),
             TEACHER_FAILURES).to_parquet(paths["teacher_failures"])  # fmt: skip
    for k, df in (("transfer", _transfer()), ("overall", _overall()), ("retention", _retention()),
                  ("stuckness", _stuckness()), ("family", _family())):  # fmt: skip
        df.to_csv(paths[k], index=False)
    paths["out"] = tmp_path / "out"
    return paths


def _report_cfg(threshold: float) -> str:
    return json.dumps({"report": {"retention_threshold": threshold}})


def _args(study, *names) -> list[str]:
    return [a for k in names for a in (f"--{k.replace('_', '-')}", str(study[k]))]


FIG_INPUTS = ("labeled", "thresholds", "micro", "correlation", "transfer", "overall", "retention", "selection")
TABLE_INPUTS = ("labeled", "transfer", "overall", "retention", "stuckness", "predictor", "selection", "family")


def _family() -> pd.DataFrame:
    """Phase 3 family metrics as a Crafter study writes them (two models, three metrics)."""
    rows = [dict(model_id=m, metric=k, value=v + d, lo=v + d - 0.05, hi=v + d + 0.05, n=200, n_tasks=50)
            for m, d in (("base", 0.0), ("B3_traces", 0.1)) for k, v in
            (("progression", 0.2), ("crafter_score", 3.5), ("success:place_table", 0.6))]  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS["family"])
SUMMARY_INPUTS = ("correlation", "transfer", "retention", "overall", "thresholds", "predictor", "selection", "labeled",
                  "hint_audit", "reliability", "training", "mining", "eval_rollouts", "teacher_failures")


def _summary(study, threshold=0.05) -> dict:
    out = study["out"]
    main(["summary", *_args(study, *SUMMARY_INPUTS), "--config-json", _report_cfg(threshold),
          "--out-json", str(out / "summary.json"), "--out-md", str(out / "summary.md")])  # fmt: skip
    return json.loads((out / "summary.json").read_text())


# ------------------------------------------------------------------------------------ figures
def test_figures_writes_every_figure_as_a_nonempty_png(study):
    main(["figures", *_args(study, *FIG_INPUTS), "--config-json", _report_cfg(0.05), "--out-dir", str(study["out"])])
    for name in rp.FIGURES:
        p = study["out"] / name
        data = p.read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        assert len(data) > 10_000, f"{name} is suspiciously small ({len(data)} bytes)"
    assert sorted(p.name for p in study["out"].iterdir()) == sorted(rp.FIGURES)  # no temp files left


def test_threshold_plots_write_phase1s_three_pngs(tmp_path):
    from teachable.reporting.figures import threshold_plots

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"U": rng.random(40), "L_local": rng.normal(scale=0.2, size=40),
                       "quadrant": rng.choice(QUADRANTS, size=40)})  # fmt: skip
    threshold_plots(df, {"U_threshold": 0.4, "L_threshold": 0.05}, tmp_path / "plots")
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["hist_L.png", "hist_U.png", "scatter_U_L.png"]  # and no temp files
    assert all((tmp_path / "plots" / n).read_bytes()[:8] == PNG_SIGNATURE for n in names)


@pytest.mark.parametrize("name", ["transfer", "overall", "micro", "labeled"])
def test_an_input_without_rows_is_a_value_error_naming_the_file(study, name):
    p = study[name]
    if p.suffix == ".csv":
        pd.read_csv(p).iloc[:0].to_csv(p, index=False)
    else:
        pd.read_parquet(p).iloc[:0].to_parquet(p)
    kw = {k: study[k] for k in FIG_INPUTS}
    with pytest.raises(ValueError, match="no rows") as e:
        rp.figures_from_files(**kw, out_dir=study["out"])
    assert str(p) in str(e.value)
    assert not study["out"].exists() or not any(study["out"].iterdir())


def test_selection_without_methods_is_a_value_error_naming_the_file(study):
    sel = json.loads(study["selection"].read_text())
    sel["methods"] = {}
    study["selection"].write_text(json.dumps(sel))
    with pytest.raises(ValueError, match=str(study["selection"])):
        rp.figures_from_files(**{k: study[k] for k in FIG_INPUTS}, out_dir=study["out"])


def test_pareto_frontier_keeps_only_undominated_runs():
    drop = [0.0, 0.02, 0.01, 0.05, np.nan]
    gain = [0.0, 0.10, 0.05, 0.08, 0.5]
    assert rp.pareto_mask(drop, gain).tolist() == [True, True, True, False, False]


# ------------------------------------------------------------------------------------ tables
def test_tables_have_the_stated_columns_and_numbers_from_the_inputs(study):
    main(["tables", *_args(study, *TABLE_INPUTS), "--out-dir", str(study["out"])])
    assert sorted(p.name for p in study["out"].iterdir()) == sorted(rp.TABLE_FILES)
    t = {n: pd.read_csv(study["out"] / f"{n}.csv") for n in rp.TABLES}
    for n in rp.TABLES:
        assert list(t[n].columns) == rp.TABLE_COLUMNS[n], n
        md = (study["out"] / f"{n}.md").read_text().splitlines()
        assert md[2] == "| " + " | ".join(rp.TABLE_COLUMNS[n]) + " |"
        assert len(md) == 4 + len(t[n])

    labeled = pd.read_parquet(study["labeled"])
    qs = t["quadrant_summary"].set_index("quadrant")
    assert qs.loc["all", "n"] == len(labeled)
    q1 = labeled[labeled["quadrant"] == QUADRANTS[0]]
    assert qs.loc[QUADRANTS[0], "mean_ELP_net"] == pytest.approx(q1["ELP_net"].mean())
    assert qs.loc[QUADRANTS[0], "ELP_net_lo"] < qs.loc[QUADRANTS[0], "mean_ELP_net"] < qs.loc[QUADRANTS[0], "ELP_net_hi"]
    assert qs.loc[QUADRANTS[0], [f"n_route_{f}" for f in FORMATS]].sum() == len(q1)

    tr = pd.read_csv(study["transfer"])
    for _, r in t["best_supervision"].iterrows():
        own = tr[(tr["trained_on"] == r["quadrant"]) & (tr["evaluated_on"] == r["quadrant"])]
        best = own.loc[own["delta_success"].idxmax()]
        assert r["best_delta"] == pytest.approx(best["delta_success"])
        assert r["best_delta"] >= r["runner_up_delta"]

    assert t["family_metrics"].equals(pd.read_csv(study["family"]))  # Phase 3's as they are

    mr = t["main_results"].set_index("model_id")
    ov = pd.read_csv(study["overall"]).set_index("model_id")
    assert list(mr.index) == ["base", *RUN_IDS]
    assert mr.loc["base", "gain_vs_base"] == 0
    m = RUN_IDS[3]
    assert mr.loc[m, "gain_vs_base"] == pytest.approx(ov.loc[m, "success_rate"] - ov.loc["base", "success_rate"])
    assert mr.loc[MAX_DROP_RUN, "retention_drop"] == pytest.approx(MAX_DROP)

    pm = t["predictor_metrics"]
    assert set(pm["model"]) == {"predictor", "entropy_only"}
    rank = pm[pm["kind"] == "ranking"].set_index("model")
    assert rank.loc["predictor", "ndcg_at_k"] == 0.61 and rank.loc["entropy_only", "precision_at_k"] == 0.25
    assert pm.loc[(pm["target"] == "U") & (pm["model"] == "entropy_only"), "note"].str.contains("no baseline").all()

    ss = t["selection_summary"].set_index("method")
    assert list(ss.index) == ["base", "RANDOM", "ENTROPY", "LEARNABILITY", "LEARNABILITY_EQ", "PREDICTOR", "ORACLE"]
    assert ss.loc["PREDICTOR", "gain"] == 0.15 and ss.loc["ORACLE", "oracle_overlap"] == 0.5
    assert (ss.loc["ORACLE", "value"], ss.loc["ORACLE", "value_lo"], ss.loc["ORACLE", "value_n"]) == (
        pytest.approx(0.2), pytest.approx(0.1), 128)
    assert ss.loc["ORACLE", "student_rollouts"] == 1200 and ss.loc["ORACLE", "teacher_calls"] == 40
    assert pd.isna(ss.loc["base", "student_rollouts"]) and ss.loc["RANDOM", "student_rollouts"] == 0
    assert (ss["n_tasks"] == 50).all()
    assert mr.loc[m, "gain_lo"] == pytest.approx(ov.loc[m, "gain_lo"]) and (mr["n_tasks"] == 50).all()


def test_a_family_without_achievements_gives_an_empty_family_table_with_its_note(study):
    """BabyAI's Phase 3 writes family_metrics.csv with its header and no rows: the tables carry
    an empty family table that says why, every other table as usual."""
    pd.read_csv(study["family"]).iloc[:0].to_csv(study["family"], index=False)
    main(["tables", *_args(study, *TABLE_INPUTS), "--out-dir", str(study["out"])])
    fam = pd.read_csv(study["out"] / "family_metrics.csv")
    assert fam.empty and list(fam.columns) == rp.TABLE_COLUMNS["family_metrics"]
    assert "no achievements" in (study["out"] / "family_metrics.md").read_text()
    assert not pd.read_csv(study["out"] / "main_results.csv").empty


def test_markdown_formatter_renders_missing_values_as_a_dash():
    md = rp.to_markdown(pd.DataFrame({"a": [1.23456, math.nan], "b": ["x|y", None]}))
    assert md.splitlines() == ["| a | b |", "|---:|---|", "| 1.235 | x\\|y |", "| — | — |"]


# ------------------------------------------------------------------------------------ summary
def test_summary_numbers_equal_the_input_files(study):
    s = _summary(study)
    checks = {c["id"]: c for c in s["checks"]}
    assert list(checks) == ["cpt_rho", "cpt_beyond_headroom", "transfer_diagonal", "retention_drop",
                            "predictor_beats_entropy", "selection_predictor", "selection_oracle_vs_learnability"]  # fmt: skip
    assert checks["cpt_beyond_headroom"]["held"] is True  # partial rho interval [0.12, 0.7] above 0

    corr = json.loads(study["correlation"].read_text())
    a = checks["cpt_rho"]
    assert a["values"]["rho"] == corr["rho"] and [a["values"]["rho_lo"], a["values"]["rho_hi"]] == corr["rho_ci"]
    assert a["values"]["p_value"] == corr["p_value"] and a["values"]["n"] == corr["n"]
    assert a["held"] is True  # the CI's lower bound 0.32 >= 0.3

    ret = pd.read_csv(study["retention"])
    c = checks["retention_drop"]["values"]
    top = ret.loc[ret["drop"].idxmax()]
    assert c["run"] == MAX_DROP_RUN == top["model_id"]
    assert (c["max_drop"], c["lo"], c["hi"], c["n"]) == (top["drop"], top["drop_sim_lo"], top["drop_sim_hi"], top["n"])
    assert checks["retention_drop"]["held"] is False  # its simultaneous lower bound 0.053 >= 0.05
    assert c["n_family"] == len(RUN_IDS) and "Bonferroni" in checks["retention_drop"]["detail"]

    tr = pd.read_csv(study["transfer"])
    q = tr[tr["trained_on"].isin(QUADRANTS)]
    b = checks["transfer_diagonal"]["values"]
    diag = q["trained_on"] == q["evaluated_on"]
    assert b["mean_diagonal"] == pytest.approx(q.loc[diag, "delta_success"].mean())
    assert b["mean_off_diagonal"] == pytest.approx(q.loc[~diag, "delta_success"].mean())
    assert (b["n_diagonal_cells"], b["n_off_diagonal_cells"]) == (12, 36)
    assert b["n_tasks"] == 4 and b["lo"] > 0 and b["lo"] <= b["difference"] <= b["hi"]  # bootstrap over 4 tasks
    assert checks["transfer_diagonal"]["held"] is True

    d = checks["predictor_beats_entropy"]
    assert d["values"]["predictor_ndcg_at_k"] == 0.61 and d["values"]["entropy_precision_at_k"] == 0.25
    assert d["values"]["ndcg_at_k_difference"] == {"value": 0.19, "lo": 0.02, "hi": 0.33}
    assert d["held"] is True

    e = checks["selection_predictor"]
    sel = json.loads(study["selection"].read_text())
    assert e["values"]["best_baseline"] == "LEARNABILITY"
    for got, want in zip(e["values"]["comparisons"], sel["comparisons"]["predictor_vs_baselines"]):
        assert (got["baseline"], got["difference"], got["lo"], got["p_holm"]) == (
            want["baseline"], want["difference"]["value"], want["difference"]["lo"], want["p_holm"])
    assert e["held"] is True and "LEARNABILITY" in e["detail"]  # Holm p 0.02 < 0.05 vs the best baseline
    f = checks["selection_oracle_vs_learnability"]
    assert f["held"] is True and f["values"]["comparison"]["p_value"] == 0.004  # at equal cost: vs LEARNABILITY_EQ
    assert f["values"]["cost"]["LEARNABILITY_EQ"]["student_rollouts"] == 1500 and "1500 student rollouts" in f["detail"]

    ov = pd.read_csv(study["overall"]).set_index("model_id")
    k = s["key_numbers"]
    assert k["student_success"]["p"] == ov.loc["base", "success_rate"] and k["student_success"]["n"] == 100
    assert k["selection_k"] == 8 and sum(k["quadrant_sizes"].values()) == 40

    md = (study["out"] / "summary.md").read_text()
    marks = [line[2] for line in md.splitlines() if line.startswith("- ") and "**(" in line]
    assert marks == ["✔", "✔", "✔", "✘", "✔", "✔", "✔"]
    cost_line = next(line for line in md.splitlines() if line.startswith("  - ORACLE:"))
    assert "gain 0.200 [0.100, 0.300]" in cost_line and "1200 student rollouts (40.0 per candidate), 40 teacher" in cost_line
    assert "fresh gain_net(demo) 0.200 [0.100, 0.300], n = 128 rollouts" in cost_line
    assert "out of fold (odd rollout indices) 0.300 [0.100, 0.500], n = 8 snapshots" in cost_line
    assert f"{corr['rho']:.3f}" in md and MAX_DROP_RUN in md

    assert _summary(study, threshold=0.1)["checks"][3]["held"] is None  # 0.1 inside [0.053, 0.113]
    assert _summary(study, threshold=0.055)["checks"][3]["held"] is None  # per run 0.058 >= 0.055; not all at once
    assert _summary(study, threshold=0.15)["checks"][3]["held"] is True  # every upper bound < 0.15


def test_summary_names_the_hint_band_and_reads_the_hint_gains_in_its_light(study):
    line = _hint_line(study)
    assert 'lambda = 0.800 [0.770, 0.930], band "demo-like"' in line
    assert "hint's gains are those of a demo-like patch" in line and "hint's gain_net" in line
    audit = json.loads(study["hint_audit"].read_text())
    audit["leakage_index"].update(lo=0.6, band=None, bands_spanned=["informative hint", "demo-like"])
    study["hint_audit"].write_text(json.dumps(audit))
    line = _hint_line(study)
    assert 'band "undetermined"' in line and "spans informative hint / demo-like" in line
    assert 'reads "demo-like"' in line and "is undetermined" in line


def _hint_line(study) -> str:
    _summary(study)
    md = (study["out"] / "summary.md").read_text()
    return next(x for x in md.splitlines() if x.startswith("- Hint leakage index"))


def test_summary_protocol_numbers_come_from_their_files(study):
    s = _summary(study)
    p = s["protocol"]
    lab = pd.read_parquet(study["labeled"])
    assert p["hint_audit"]["diagnoses_naming_action"] == 0 and p["hint_audit"]["hint_action_accuracy"]["p"] == 0.6
    for m in FORMATS:
        g = p["gains"][f"gain_net_{m}"]
        assert g["value"] == pytest.approx(lab[f"gain_net_{m}"].mean()) and g["lo"] <= g["value"] <= g["hi"]
        assert g["n_clusters"] == lab["task_id"].nunique()
    assert p["gate"]["partial_rho"]["rho"] == 0.45 and p["gate"]["baselines"]["headroom"]["rho"] == 0.3
    assert p["training"]["b2_all_compute_ratio"] == 3.5 and p["training"]["skipped_runs"] == {}
    ee = p["expert_errors"]
    assert ee["phase0_A"] == {"expert_error_planner": 1} and ee["phase1"] == {"expert_rollouts_failed": 1,
                                                                             "of_which_impossible": 1}
    assert ee["phase3_starts"] == {"impossible": 1}
    assert p["teacher_failures"] == {"rate_limited": 2, "malformed_json": 1}
    md = (study["out"] / "summary.md").read_text()
    assert "## Protocol checks" in md and "Hint audit" in md and "partial rho given p_policy 0.450" in md


def test_skipped_runs_and_a_skipped_phase5_are_reported_not_crashed(study):
    training = json.loads(study["training"].read_text())
    skipped = [f"Q4_lowU_highL_{f}" for f in FORMATS]
    training["runs"] = {r: {} for r in RUN_IDS if r not in skipped}
    training["skipped_runs"] = {r: "quadrant Q4_lowU_highL has 1 train snapshot(s), under phase2.min_budget=4"
                                for r in skipped}  # fmt: skip
    study["training"].write_text(json.dumps(training))
    for name in ("transfer", "retention"):
        df = pd.read_csv(study[name])
        df[~df["model_id"].isin(skipped)].to_csv(study[name], index=False)
    reason = "12 candidate snapshot(s) (labeled, not held out) for phase5.budget=16"
    study["selection"].write_text(json.dumps({"skipped": reason, "k": 16, "n_candidates": 12, "methods": {}}))
    s = _summary(study, threshold=0.15)
    checks = {c["id"]: c for c in s["checks"]}
    assert checks["transfer_diagonal"]["values"]["missing_models"] == []  # the skipped runs are not "missing"
    assert checks["retention_drop"]["held"] is True
    assert checks["selection_predictor"]["held"] is None and reason in checks["selection_predictor"]["detail"]
    md = (study["out"] / "summary.md").read_text()
    assert "Q4_lowU_highL_demo (quadrant Q4_lowU_highL has 1 train snapshot(s)" in md and reason in md
    main(["tables", *_args(study, *TABLE_INPUTS), "--out-dir", str(study["out"])])
    assert pd.read_csv(study["out"] / "selection_summary.csv").empty
    assert reason in (study["out"] / "selection_summary.md").read_text()
    main(["figures", *_args(study, *FIG_INPUTS), "--config-json", _report_cfg(0.05), "--out-dir", str(study["out"])])
    assert (study["out"] / "selection_frontier.png").read_bytes()[:8] == PNG_SIGNATURE


def test_a_nan_input_makes_its_check_null_never_guessed(study):
    corr = json.loads(study["correlation"].read_text())
    corr.update(rho=None, rho_ci=[None, None], reason="n = 2 < 3 snapshots: Spearman rho undefined",
                partial_rho={"n": 2, "rho": None, "rho_ci": [None, None], "reason": "n = 2 < 3 snapshots"})
    study["correlation"].write_text(json.dumps(corr))
    ret = pd.read_csv(study["retention"])
    # (the run whose interval alone would show "not held": with it unknown, nothing is decided)
    ret.loc[ret["model_id"] == MAX_DROP_RUN, ["drop", "drop_lo", "drop_hi", "drop_sim_lo", "drop_sim_hi"]] = np.nan
    ret["reason"] = ret["reason"].astype(object)
    ret.loc[ret["model_id"] == MAX_DROP_RUN, "reason"] = "phase3.rollouts_per_task = 1"
    ret.to_csv(study["retention"], index=False)
    pred = json.loads(study["predictor"].read_text())
    pred["ranking"]["entropy"]["ndcg_at_k"] = None
    study["predictor"].write_text(json.dumps(pred))
    sel = json.loads(study["selection"].read_text())
    sel["comparisons"]["predictor_vs_baselines"][2].update(p_value=None, p_holm=None)  # vs LEARNABILITY
    sel["comparisons"]["oracle_vs_learnability_eq"] = None
    sel["comparisons"]["oracle_reason_eq"] = "needs ORACLE and LEARNABILITY_EQ"
    study["selection"].write_text(json.dumps(sel))
    tr = pd.read_csv(study["transfer"])
    tr.loc[0, "delta_success"] = np.nan
    tr.to_csv(study["transfer"], index=False)

    checks = {c["id"]: c for c in _summary(study)["checks"]}
    assert all(c["held"] is None for c in checks.values()), {k: c["held"] for k, c in checks.items()}
    assert "undefined" in checks["cpt_rho"]["detail"]
    assert MAX_DROP_RUN in checks["retention_drop"]["detail"] and "rollouts_per_task" in checks["retention_drop"]["detail"]
    assert "entropy_ndcg_at_k" in checks["predictor_beats_entropy"]["detail"]
    assert "no p" in checks["selection_predictor"]["detail"]
    assert "LEARNABILITY_EQ" in checks["selection_oracle_vs_learnability"]["detail"]
    assert "NaN" in checks["transfer_diagonal"]["detail"]
    assert "— **(a)" in (study["out"] / "summary.md").read_text()


def test_a_missing_phase2_run_makes_the_retention_check_null(study):
    ret = pd.read_csv(study["retention"])
    ret[ret["model_id"] != "B2_all"].to_csv(study["retention"], index=False)
    c = _summary(study, threshold=0.15)["checks"][3]  # held with B2_all there
    assert c["held"] is None and c["values"]["missing_runs"] == ["B2_all"]
    # one run whose lower bound is over the threshold decides "not held" whatever is missing
    assert _summary(study, threshold=0.05)["checks"][3]["held"] is False


def test_transfer_check_has_three_outcomes_by_its_interval_over_tasks():
    toy = pd.DataFrame({
        "trained_on": ["A", "A", "B", "B"], "evaluated_on": ["A", "B", "A", "B"],
        "model_id": ["A_demo", "A_demo", "B_demo", "B_demo"], "delta_success": [0.3, 0.0, -0.1, 0.2],
        "lo": [0.1, -0.2, -0.3, 0.0], "hi": [0.5, 0.2, 0.1, 0.4], "n": [20] * 4,
    })  # fmt: skip

    def check(lo, hi, value=0.30):
        loc = {"value": value, "lo": lo, "hi": hi, "n_tasks": 6, "n_defined": 900, "n_resamples": 1000}
        return rp.check_transfer_diagonal(toy, loc, expected_models=None)

    c = check(0.05, 0.5)
    v = c["values"]
    assert v["mean_diagonal"] == pytest.approx(0.25)  # (0.3 + 0.2) / 2
    assert v["mean_off_diagonal"] == pytest.approx(-0.05)  # (0.0 - 0.1) / 2
    assert v["difference"] == pytest.approx(0.30)
    assert (v["n_diagonal_cells"], v["n_off_diagonal_cells"]) == (2, 2)
    assert c["held"] is True and "[0.050, 0.500]" in c["detail"]
    c = check(-0.1, 0.5)  # a positive difference whose interval straddles 0: undetermined, never "not held"
    assert c["held"] is None and "includes 0" in c["detail"] and "[-0.100, 0.500]" in c["detail"]
    assert check(-0.4, 0.0)["held"] is False  # the interval excludes a positive difference
    assert rp.check_transfer_diagonal(toy, None, expected_models=None)["held"] is None  # no interval: undetermined
    with pytest.raises(ValueError, match="stale"):
        check(0.05, 0.5, value=0.1)


def test_cpt_check_is_the_gates_rule_with_three_outcomes(study):
    corr = json.loads(study["correlation"].read_text())
    c = rp.check_cpt({**corr, "rho": 0.41, "rho_ci": [0.05, 0.7]})  # lower bound > 0 and rho >= 0.3: the gate passes
    assert c["held"] is True and c["values"]["verdict"] == "pass"
    assert rp.check_cpt({**corr, "rho": 0.2, "rho_ci": [0.05, 0.29]})["held"] is False  # upper bound < 0.3
    c = rp.check_cpt({**corr, "rho": 0.41, "rho_ci": [-0.05, 0.7]})  # strong, but the interval reaches 0
    assert c["held"] is None and "cannot decide" in c["detail"] and "[-0.050, 0.700]" in c["detail"]
    assert rp.check_cpt({**corr, "rho_ci": [None, None]})["held"] is None


def test_summary_reports_reliability_bands_and_an_unreliable_quadrant_label(study):
    s = _summary(study)
    assert s["reliability"]["flagged"] == ["L_local"] and s["reliability"]["gate"]["verdict"] == "pass"
    md = (study["out"] / "summary.md").read_text()
    sec = md[md.index("## Reliability of the labels"):]
    assert "L_local 0.100 [-0.200, 0.400] ⚠ below the floor" in sec and "p_policy 0.560" in sec
    assert "⚠ The quadrants rest on an unreliable label" in sec
    assert "2 decided / 8 uncertain" in sec and "delta 0.540 [0.300, 0.700]" in sec
    assert "largest observable rho(ELP_net, delta) is sqrt(rel(ELP_net) x rel(delta)) = 0.320" in sec
    assert "implies a true rho of about 1.590" in sec


def test_retention_check_has_three_outcomes_by_the_simultaneous_intervals():
    def table(*bounds, widen=0.0):  # per-run bounds; the simultaneous ones ``widen`` each side
        return pd.DataFrame([dict(model_id=f"m{i}", drop=(lo + hi) / 2, drop_lo=lo, drop_hi=hi, drop_sim_lo=lo - widen,
                                  drop_sim_hi=hi + widen, n=40, n_base_solved_tasks=10, n_family=len(bounds),
                                  sim_confidence=1 - 0.05 / len(bounds)) for i, (lo, hi) in enumerate(bounds)])  # fmt: skip
    assert rp.check_retention(table((-0.02, 0.03), (0.0, 0.04)), 0.05, None)["held"] is True
    assert rp.check_retention(table((-0.02, 0.03), (0.06, 0.12)), 0.05, None)["held"] is False
    c = rp.check_retention(table((-0.02, 0.03), (0.01, 0.09)), 0.05, None)  # point 0.05 >= 0.05, but unsure
    assert c["held"] is None and "straddles" in c["detail"] and c["values"]["max_upper_run"] == "m1"
    # per run each interval decides; all runs at once (Bonferroni, wider) they do not
    assert rp.check_retention(table((-0.02, 0.03), (0.0, 0.04), widen=0.02), 0.05, None)["held"] is None
    assert rp.check_retention(table((-0.02, 0.03), (0.06, 0.12), widen=0.02), 0.05, None)["held"] is None


def _with_best(sel: dict, diff: tuple, p_holm: float | None) -> dict:
    c = sel["comparisons"]["predictor_vs_baselines"][2]  # vs LEARNABILITY, the best baseline
    c["difference"].update(value=diff[0], lo=diff[1], hi=diff[2])
    c.update(p_holm=p_holm, p_value=p_holm)
    if p_holm is None:
        c["test"]["reason"] = "1 paired unit(s): a paired test needs at least 2"
    return sel


def test_selection_check_rests_on_the_holm_p_against_the_best_baseline(study):
    sel = json.loads(study["selection"].read_text())
    assert rp.check_selection_predictor(sel)["held"] is True
    # point gains still say PREDICTOR > every baseline, but the Holm p vs the best is 0.09 and the
    # interval straddles 0: undetermined, not "not held"
    c = rp.check_selection_predictor(_with_best(json.loads(study["selection"].read_text()), (0.07, -0.01, 0.15), 0.09))
    assert c["held"] is None and "0.0900" in c["detail"] and "[-0.010, 0.150]" in c["detail"]
    c = rp.check_selection_predictor(_with_best(json.loads(study["selection"].read_text()), (-0.07, -0.13, -0.01), 0.01))
    assert c["held"] is False  # the interval excludes a gain
    c = rp.check_selection_predictor(_with_best(json.loads(study["selection"].read_text()), (0.07, None, None), None))
    assert c["held"] is None and "at least 2" in c["detail"]
    old = json.loads(study["selection"].read_text())
    del old["comparisons"]
    assert rp.check_selection_predictor(old)["held"] is None


def test_oracle_vs_learnability_check(study):
    sel = json.loads(study["selection"].read_text())
    o = sel["comparisons"]["oracle_vs_learnability_eq"]  # judged at equal cost
    assert rp.check_oracle_vs_learnability(sel)["held"] is True
    sel["comparisons"]["oracle_vs_learnability"]["difference"].update(value=-0.1, lo=-0.2, hi=-0.05)
    assert rp.check_oracle_vs_learnability(sel)["held"] is True  # the unequal-cost comparison is not read
    o.update(p_value=0.2)
    assert rp.check_oracle_vs_learnability(sel)["held"] is None  # p 0.2, interval [0.04, 0.2]: undetermined
    o["difference"].update(value=-0.02, lo=-0.08, hi=0.0)
    assert rp.check_oracle_vs_learnability(sel)["held"] is False  # the interval excludes a gain
    o["difference"].update(value=0.12, lo=0.04, hi=0.2)
    o["difference"].update(value=0.0, lo=0.0, hi=0.0)
    o.update(p_value=None)
    assert rp.check_oracle_vs_learnability(sel)["held"] is False  # no difference at all


def test_predictor_check_rests_on_the_intervals_not_the_point_flag(study):
    pred = json.loads(study["predictor"].read_text())
    pred["ranking"]["difference"]["ndcg_at_k"].update(lo=-0.05)  # both point values still higher
    pred["ranking"]["beats_by_interval"] = None
    c = rp.check_predictor(pred)
    assert c["held"] is None and c["values"]["file_flag"] is True
    pred["ranking"]["difference"]["ndcg_at_k"].update(hi=-0.01)
    pred["ranking"]["beats_by_interval"] = False
    assert rp.check_predictor(pred)["held"] is False
    del pred["ranking"]["difference"], pred["ranking"]["beats_by_interval"]
    assert "re-run phase 4" in rp.check_predictor(pred)["detail"]


def test_predictor_must_beat_entropy_on_both_ranking_metrics(study):
    pred = json.loads(study["predictor"].read_text())
    pred["ranking"]["entropy"]["ndcg_at_k"] = 0.7  # entropy wins NDCG, loses precision
    pred["ranking"]["predictor_beats_entropy"] = False  # what phase 4 writes for these numbers
    pred["ranking"]["difference"]["ndcg_at_k"] = {"value": -0.09, "lo": -0.2, "hi": -0.01}
    pred["ranking"]["beats_by_interval"] = False
    c = rp.check_predictor(pred)
    assert c["held"] is False


def test_a_stale_phase4_flag_is_an_error_not_a_second_opinion(study):
    pred = json.loads(study["predictor"].read_text())
    pred["ranking"]["entropy"]["ndcg_at_k"] = 0.7  # the numbers say no; the file's flag still says True
    with pytest.raises(ValueError, match="stale or edited"):
        rp.check_predictor(pred)


@pytest.mark.parametrize("cmd", ["figures", "tables", "summary"])
def test_each_report_subcommand_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "--out" in capsys.readouterr().out


def test_summary_warns_about_a_degenerate_student():
    from teachable.reporting.summary import degenerate_student, summary_markdown

    def md(p, lo, hi):
        return summary_markdown({"checks": [], "key_numbers": {
            "student_success": {"p": p, "lo": lo, "hi": hi, "n": 100, "n_tasks": 50}}})

    assert "⚠" in md(0.0, 0.0, 0.04) and "lies outside [0.05, 0.95]" in md(0.0, 0.0, 0.04)  # PutNextLocal's
    assert "⚠" in md(1.0, 0.96, 1.0) and "⚠" not in md(0.41, 0.32, 0.51) and "⚠" not in md(0.03, 0.0, 0.08)
    assert not degenerate_student({"p": None, "lo": None, "hi": None})
