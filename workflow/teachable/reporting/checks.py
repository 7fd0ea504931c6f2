"""The study's checks: each held / not held / undetermined, by an interval or a (Holm-adjusted) p."""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import pandas as pd

from ..constants import (
    BASE_MODEL_ID,
    RUN_IDS,
)
from ..gate import gate_reason, gate_rule
from ..predictor_metrics import beats, beats_by_interval
from ..stats import interval_verdict
from .inputs import (
    QUADRANT_RUNS,
    cost_text,
    fmt,
    fmt_ci,
    model_order,
    n_text,
    num,
)

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------ checks
def _check(id_: str, claim: str, held: bool | None, values: dict, detail: str) -> dict:
    return {"id": id_, "claim": claim, "held": held, "values": values, "detail": detail}


def check_cpt(corr: dict) -> dict:
    """(a) rho(ELP_net, micro-training delta) by the gate's one rule (``gate.gate_rule``, the
    rule micro-merge and the cpt-gate step apply): held iff it passes (the interval's lower bound
    > 0 and rho >= rho_threshold), not held iff it fails (the upper bound < rho_threshold), else
    undetermined."""
    ci = corr.get("rho_ci") or [None, None]
    v = {
        "rho": num(corr.get("rho")), "rho_lo": num(ci[0]), "rho_hi": num(ci[1]),
        "p_value": num(corr.get("p_value")), "n": corr.get("n"), "rho_threshold": num(corr.get("rho_threshold")),
        "alpha": num(corr.get("alpha")), "confidence": num(corr.get("confidence")),
        "ci_method": corr.get("ci_method"), "p_method": corr.get("p_method"), "gate_pass": corr.get("pass"),
    }  # fmt: skip
    v["significant"] = (v["p_value"] <= v["alpha"]) if None not in (v["p_value"], v["alpha"]) else None
    v["ci_excludes_zero"] = (v["rho_lo"] > 0 or v["rho_hi"] < 0) if None not in (v["rho_lo"], v["rho_hi"]) else None
    claim = ("CPT predicts training utility: Spearman rho(ELP_net, micro-training delta) >= threshold with its "
             "interval above 0 (the gate's rule)")  # fmt: skip
    if v["rho"] is None or v["rho_threshold"] is None:
        why = corr.get("reason") or "rho or rho_threshold missing/NaN"
        return _check("cpt_rho", claim, None, v, f"undetermined: {why} (n = {v['n']})")
    conf = f"{round(100 * v['confidence'])}% " if v["confidence"] is not None else ""
    detail = (f"rho = {fmt(v['rho'])} {fmt_ci(v['rho_lo'], v['rho_hi'])} ({conf}{v['ci_method'] or 'CI'}), "
              f"p = {fmt(v['p_value'], 4)} ({v['p_method'] or 'p-value'}), n = {v['n']} snapshots; "
              f"threshold {fmt(v['rho_threshold'], 2)}; "
              + ("significant" if v["significant"] else "not significant" if v["significant"] is False
                 else "significance undetermined") + f" at alpha = {fmt(v['alpha'], 2)}")  # fmt: skip
    if v["rho_lo"] is None or v["rho_hi"] is None:
        return _check("cpt_rho", claim, None, v, "undetermined: no interval of rho; " + detail)
    verdict = gate_rule(v["rho"], v["rho_lo"], v["rho_hi"], v["rho_threshold"])
    v["verdict"] = verdict
    held = {"pass": True, "fail": False, "undetermined": None}[verdict]
    return _check("cpt_rho", claim, held, v, gate_reason(verdict, v["rho"], v["rho_lo"], v["rho_hi"],
                                                         v["rho_threshold"]) + "; " + detail)  # fmt: skip


def check_transfer_diagonal(transfer: pd.DataFrame, locality: dict | None,
                            expected_models: Sequence[str] | None = QUADRANT_RUNS) -> dict:  # fmt: skip
    """(b) mean delta_success of in-quadrant cells (trained_on == evaluated_on) minus that of
    cross-quadrant cells, over the quadrant runs (``expected_models``; None = every model whose
    trained_on is one of the evaluated_on labels), by its interval over a bootstrap of the
    held-out tasks (``locality``: ``evaluation_tables.transfer_locality`` of Phase 3's rollouts):
    held iff the lower bound > 0, not held iff the upper bound <= 0, else undetermined."""
    claim = ("transfer is local: mean delta_success when trained_on == evaluated_on exceeds the mean "
             "when they differ (quadrant runs)")  # fmt: skip
    evals = set(transfer["evaluated_on"])
    if expected_models is None:
        runs = transfer[transfer["trained_on"].isin(evals)]
        missing: list[str] = []
    else:
        runs = transfer[transfer["model_id"].isin(expected_models)]
        missing = [m for m in expected_models if m not in set(runs["model_id"])]
    diag_mask = runs["trained_on"] == runs["evaluated_on"]
    d = runs.loc[diag_mask, "delta_success"].astype(float).to_numpy()
    o = runs.loc[~diag_mask, "delta_success"].astype(float).to_numpy()
    nan_cells = runs.loc[runs["delta_success"].map(num).isna(), ["model_id", "evaluated_on"]]
    loc = locality or {}
    v: dict[str, Any] = {
        "mean_diagonal": None, "mean_off_diagonal": None, "difference": None, "lo": num(loc.get("lo")),
        "hi": num(loc.get("hi")), "n_tasks": loc.get("n_tasks"), "n_defined": loc.get("n_defined"),
        "n_resamples": loc.get("n_resamples"), "n_diagonal_cells": int(len(d)), "n_off_diagonal_cells": int(len(o)),
        "n_models": int(runs["model_id"].nunique()), "missing_models": missing,
        "nan_cells": [f"{m} on {e}" for m, e in nan_cells.itertuples(index=False)],
        "interval": "percentile bootstrap over the held-out tasks (every cell recomputed on each resample)",
        "cell_n": ({"min": int(runs["n"].min()), "max": int(runs["n"].max())}
                   if len(runs) and runs["n"].notna().all() else None),
    }  # fmt: skip
    if len(v["nan_cells"]):
        return _check("transfer_diagonal", claim, None, v, f"undetermined: NaN delta_success in {v['nan_cells']}")
    if len(d) == 0 or len(o) == 0:
        return _check("transfer_diagonal", claim, None, v,
                      f"undetermined: {len(d)} diagonal and {len(o)} off-diagonal cells")
    v["mean_diagonal"], v["mean_off_diagonal"] = float(d.mean()), float(o.mean())
    v["difference"] = v["mean_diagonal"] - v["mean_off_diagonal"]
    if locality is not None and num(loc.get("value")) is not None and not math.isclose(
            loc["value"], v["difference"], abs_tol=1e-9):  # fmt: skip
        raise ValueError(f"the transfer matrix's in- minus cross-quadrant difference {v['difference']} disagrees with "
                         f"the one recomputed from Phase 3's rollouts ({loc['value']}): one of them is stale")
    detail = (f"mean diagonal {fmt(v['mean_diagonal'])} ({len(d)} cells) vs off-diagonal "
              f"{fmt(v['mean_off_diagonal'])} ({len(o)} cells): difference {fmt(v['difference'])} "
              f"{fmt_ci(v['lo'], v['hi'])} (bootstrap over {v['n_tasks']} held-out tasks, {v['n_defined']} of "
              f"{v['n_resamples']} resamples with every cell); rollouts per cell {n_text(runs['n'])}")  # fmt: skip
    if missing:
        return _check("transfer_diagonal", claim, None, v, f"undetermined: runs missing {missing}; " + detail)
    held = interval_verdict(v["lo"], v["hi"], 0.0, ">")
    why = {True: "the interval's lower bound is > 0", False: "not held: the interval's upper bound is <= 0",
           None: f"undetermined: {loc.get('reason') or 'the interval includes 0'}"}[held]  # fmt: skip
    return _check("transfer_diagonal", claim, held, v, f"{why}; {detail}")


def _expected_runs(table: pd.DataFrame, expected_models: Sequence[str] | None) -> tuple[pd.DataFrame, list[str]]:
    if expected_models is None:
        return table[table["model_id"] != BASE_MODEL_ID], []
    runs = table[table["model_id"].isin(expected_models)]
    return runs, [m for m in expected_models if m not in set(runs["model_id"])]


CONTROL_RUNS = ("B1_uniform", "B2_all")
# the checks that read trained models (Phases 2 and 5): not interpretable when the positive control fails
GATED_CHECKS = ("transfer_diagonal", "retention_drop", "selection_predictor", "selection_oracle_vs_learnability")


def check_positive_control(gains: dict, retention: pd.DataFrame, threshold: float,
                           runs: Sequence[str] = CONTROL_RUNS) -> dict:  # fmt: skip
    """The positive control: some plain behaviour-cloning baseline (``runs``) improves the base
    on the snapshot suite (``gains[run]``: ``evaluation_tables.snapshot_gain``, its interval's
    lower bound > 0) with retention held, i.e. not shown lost: its own retention drop's interval
    (``drop_lo/_hi``) does not lie at or above ``threshold`` (``stats.interval_verdict``, claim
    drop < threshold: held or undetermined, not "not held"). Held iff some run does both; else
    not held (the control failed: training at these settings is not shown to help, so the
    checks of trained models cannot be read). Never undetermined: a missing run fails it."""
    claim = ("positive control: B1_uniform or B2_all improves the base on the snapshot suite (gain interval > 0) "
             f"with retention held (drop interval not at or above {threshold})")  # fmt: skip
    per, passing = {}, []
    for r in runs:
        g = gains.get(r) or {}
        row = retention[retention["model_id"] == r]
        d = {k: num(row.iloc[0][c]) if len(row) else None for k, c in (("drop", "drop"), ("lo", "drop_lo"),
                                                                           ("hi", "drop_hi"))}  # fmt: skip
        ret = interval_verdict(d["lo"], d["hi"], threshold, "<") if None not in d.values() else None
        gain_ok = num(g.get("lo")) is not None and num(g.get("lo")) > 0
        per[r] = {"gain": num(g.get("value")), "lo": num(g.get("lo")), "hi": num(g.get("hi")), "n": g.get("n"),
                  "n_tasks": g.get("n_tasks"), "reason": g.get("reason"), "drop": d, "retention_held": ret,
                  "gain_above_0": gain_ok}  # fmt: skip
        if gain_ok and ret is not False:
            passing.append(r)
    v = {"runs": per, "passing": passing, "threshold": threshold}
    parts = []
    for r, e in per.items():
        if e["gain"] is None:
            parts.append(f"{r}: not measured ({e['reason'] or 'not trained or not evaluated'})")
            continue
        ret = {True: "held", False: "not held", None: "undetermined"}[e["retention_held"]]
        parts.append(f"{r}: snapshot-suite gain {fmt(e['gain'])} {fmt_ci(e['lo'], e['hi'])} (n = {e['n']} rollouts "
                     f"on {e['n_tasks']} tasks); retention drop {fmt(e['drop']['drop'])} "
                     f"{fmt_ci(e['drop']['lo'], e['drop']['hi'])} ({ret})")  # fmt: skip
    detail = "; ".join(parts) + "; 95% paired bootstrap over tasks"
    if passing:
        return _check("positive_control", claim, True, v, f"held by {', '.join(passing)}: " + detail)
    why = ("no B1/B2 gain interval lies above 0" if not any(e["gain_above_0"] for e in per.values())
           else "retention not held where the gain interval lies above 0")  # fmt: skip
    v["reason"] = why
    return _check("positive_control", claim, False, v, f"failed: {why}: " + detail)


def gate_checks(checks: list[dict], control: dict) -> list[dict]:
    """``checks`` with the trained-model checks (``GATED_CHECKS``) marked not interpretable,
    their verdict not read (``held`` None, ``not_interpretable`` the reason, the computed verdict
    kept in ``values["verdict_if_read"]``), when the positive control failed; else unchanged."""
    if control["held"]:
        return checks
    why = f"the positive control failed ({control['values']['reason']})"
    out = []
    for c in checks:
        if c["id"] in GATED_CHECKS:
            c = {**c, "held": None, "not_interpretable": why,
                 "values": {**c["values"], "verdict_if_read": c["held"]},
                 "detail": f"not interpretable: {why}; computed, not read: {c['detail']}"}  # fmt: skip
        out.append(c)
    return out


def check_retention(retention: pd.DataFrame, threshold: float,
                    expected_models: Sequence[str] | None = RUN_IDS) -> dict:  # fmt: skip
    """(c) no Phase 2 run drops retention by ``threshold`` or more, by the runs' simultaneous
    intervals (``drop_sim_lo/_hi``, Bonferroni over the runs): not held iff some run's lower
    bound >= the threshold; held iff every run's upper bound < it; else undetermined."""
    claim = (f"training does not cause forgetting: no Phase 2 run's retention drop reaches {threshold} "
             f"(by simultaneous intervals)")  # fmt: skip
    runs, missing = _expected_runs(retention, expected_models)
    drops = {m: {"drop": num(d), "lo": num(lo), "hi": num(hi), "sim_lo": num(slo), "sim_hi": num(shi)}
             for m, d, lo, hi, slo, shi in zip(runs["model_id"], runs["drop"], runs["drop_lo"], runs["drop_hi"],
                                               runs["drop_sim_lo"], runs["drop_sim_hi"])}  # fmt: skip
    verdicts = {m: interval_verdict(d["sim_lo"], d["sim_hi"], threshold, "<") for m, d in drops.items()}
    over = [m for m, ok in verdicts.items() if ok is False]
    nan_runs = [m for m, d in drops.items() if None in d.values()]
    v: dict[str, Any] = {"threshold": threshold, "max_drop": None, "run": None, "lo": None, "hi": None, "n": None,
                         "n_base_solved_tasks": None, "n_runs": int(len(runs)), "missing_runs": missing,
                         "drops": drops, "max_upper_bound": None, "max_upper_run": None,
                         "n_family": int(runs["n_family"].max()) if len(runs) else None,
                         "sim_confidence": num(runs["sim_confidence"].min()) if len(runs) else None,
                         "runs_lower_bound_over_threshold": over}  # fmt: skip
    if runs.empty:
        return _check("retention_drop", claim, None, v, "undetermined: no Phase 2 run in the retention results")
    ok = runs[~runs["model_id"].isin(nan_runs)]
    detail = ""
    if len(ok):
        order = {m: i for i, m in enumerate(model_order(ok["model_id"]))}
        top = ok.assign(_o=ok["model_id"].map(order), _neg=-ok["drop"].astype(float))
        top = top.sort_values(["_neg", "_o"], kind="mergesort").iloc[0]
        upper = ok.loc[ok["drop_sim_hi"].astype(float).idxmax()]
        v.update(max_drop=float(top["drop"]), run=str(top["model_id"]), lo=num(top["drop_sim_lo"]),
                 hi=num(top["drop_sim_hi"]), n=int(top["n"]), n_base_solved_tasks=int(top["n_base_solved_tasks"]),
                 max_upper_bound=float(upper["drop_sim_hi"]), max_upper_run=str(upper["model_id"]))  # fmt: skip
        conf = f"{fmt(100 * v['sim_confidence'], 2)}% each" if v["sim_confidence"] is not None else "n/a"
        detail = (f"largest drop {fmt(v['max_drop'])} {fmt_ci(v['lo'], v['hi'])} for {v['run']} "
                  f"(n = {v['n']} rollouts on {v['n_base_solved_tasks']} base-solved tasks, measured on the half of "
                  f"the rollouts that did not select them); highest upper bound {fmt(v['max_upper_bound'])} "
                  f"({v['max_upper_run']}); threshold {threshold}; simultaneous intervals over {v['n_family']} runs "
                  f"(Bonferroni, {conf}), paired bootstrap over tasks")  # fmt: skip
    if over:
        return _check("retention_drop", claim, False, v, f"not held: the simultaneous lower bound of {over} is >= "
                      f"{threshold}; " + detail)  # fmt: skip
    if nan_runs or missing:
        why = "; ".join(x for x in (f"runs missing {missing}" if missing else "",
                                    f"NaN retention drop for {nan_runs}" + _reasons(runs, nan_runs) if nan_runs else "")
                        if x)  # fmt: skip
        return _check("retention_drop", claim, None, v, f"undetermined: {why}" + (f"; {detail}" if detail else ""))
    if all(verdicts.values()):
        return _check("retention_drop", claim, True, v, f"every run's simultaneous upper bound is < {threshold}; "
                      + detail)  # fmt: skip
    return _check("retention_drop", claim, None, v, f"undetermined: an interval straddles {threshold}; " + detail)


def _reasons(table: pd.DataFrame, runs: list[str]) -> str:
    if "reason" not in table.columns:
        return ""
    why = sorted({str(r) for r in table.loc[table["model_id"].isin(runs), "reason"] if isinstance(r, str) and r})
    return f" ({'; '.join(why)})" if why else ""


def check_predictor(result: dict) -> dict:
    """(d) ranking by predicted ELP beats ranking by U, by the intervals of both differences
    (``predictor_metrics.beats_by_interval``)."""
    claim = "the teachability predictor ranks snapshots by ELP_net better than entropy (precision@K and NDCG@K)"
    rk = result.get("ranking") or {}
    p, e, diff = rk.get("predictor") or {}, rk.get("entropy") or {}, rk.get("difference") or {}
    v = {
        "k": rk.get("k"), "target": rk.get("target"), "relevance": rk.get("relevance"),
        "predictor_precision_at_k": num(p.get("precision_at_k")), "entropy_precision_at_k": num(e.get("precision_at_k")),
        "predictor_ndcg_at_k": num(p.get("ndcg_at_k")), "entropy_ndcg_at_k": num(e.get("ndcg_at_k")),
        "predictor_spearman": num(p.get("spearman")), "entropy_spearman": num(e.get("spearman")),
        "n_snapshots": result.get("n_snapshots"), "n_tasks": result.get("n_tasks"), "n_folds": result.get("n_folds"),
        "file_flag": rk.get("predictor_beats_entropy"), "file_verdict": rk.get("beats_by_interval"),
        **{f"{m}_difference": {b: num((diff.get(m) or {}).get(b)) for b in ("value", "lo", "hi")}
           for m in ("precision_at_k", "ndcg_at_k")},
        "n_resamples": diff.get("n_resamples"),
    }  # fmt: skip
    needed = ("predictor_precision_at_k", "entropy_precision_at_k", "predictor_ndcg_at_k", "entropy_ndcg_at_k")
    absent = [k for k in needed if v[k] is None]
    if absent:
        return _check("predictor_beats_entropy", claim, None, v, f"undetermined: missing/NaN {absent}")
    point = beats({"precision_at_k": v["predictor_precision_at_k"], "ndcg_at_k": v["predictor_ndcg_at_k"]},
                  {"precision_at_k": v["entropy_precision_at_k"], "ndcg_at_k": v["entropy_ndcg_at_k"]})
    dp, dn = v["precision_at_k_difference"], v["ndcg_at_k_difference"]
    detail = (f"K = {v['k']}: precision@K {fmt(v['predictor_precision_at_k'])} vs entropy "
              f"{fmt(v['entropy_precision_at_k'])} (difference {fmt(dp['value'])} {fmt_ci(dp['lo'], dp['hi'])}), "
              f"NDCG@K {fmt(v['predictor_ndcg_at_k'])} vs {fmt(v['entropy_ndcg_at_k'])} (difference "
              f"{fmt(dn['value'])} {fmt_ci(dn['lo'], dn['hi'])}); intervals: cluster bootstrap over tasks "
              f"({v['n_resamples']} resamples); n = {v['n_snapshots']} snapshots, {v['n_tasks']} tasks, "
              f"{v['n_folds']} task-grouped folds")  # fmt: skip
    if v["file_flag"] is not None and bool(v["file_flag"]) != point:
        raise ValueError(f"phase 4's predictor_beats_entropy = {v['file_flag']} disagrees with its own "
                         f"ranking numbers ({detail}): training_result.json is stale or edited")
    if not diff:
        return _check("predictor_beats_entropy", claim, None, v,
                      "undetermined: training_result.json has no interval of the ranking differences (re-run "
                      "phase 4); " + detail)  # fmt: skip
    held = beats_by_interval(diff)
    if "beats_by_interval" in rk and rk["beats_by_interval"] != held:
        raise ValueError(f"phase 4's beats_by_interval = {rk['beats_by_interval']} disagrees with its own "
                         f"intervals ({detail}): training_result.json is stale or edited")
    why = {True: "both lower bounds > 0", False: "an upper bound < 0",
           None: "undetermined: an interval includes 0 or is missing"}[held]  # fmt: skip
    return _check("predictor_beats_entropy", claim, held, v, f"{why}; {detail}")


def _comparison_values(c: dict) -> dict:
    d, t = c.get("difference") or {}, c.get("test") or {}
    return {"model": c.get("model"), "baseline": c.get("baseline"), "difference": num(d.get("value")),
            "lo": num(d.get("lo")), "hi": num(d.get("hi")), "n_tasks": d.get("n_tasks"),
            "p_value": num(c.get("p_value")), "p_holm": num(c.get("p_holm")), "reason": t.get("reason")}  # fmt: skip


def _comparison_text(c: dict) -> str:
    text = (f"{c['model']} - {c['baseline']} = {fmt(c['difference'])} {fmt_ci(c['lo'], c['hi'])} "
            f"({c['n_tasks']} tasks), p = {fmt(c['p_value'], 4)}")  # fmt: skip
    if "p_holm" in c and c["p_holm"] is not None:
        text += f", Holm p = {fmt(c['p_holm'], 4)}"
    return text + (f" ({c['reason']})" if c["p_value"] is None and c["reason"] else "")


def _p_verdict(c: dict, p_key: str, alpha: float) -> tuple[bool | None, str]:
    """held iff p < alpha and the difference > 0; not held iff the difference's interval excludes
    a gain (upper bound <= 0); else undetermined."""
    p, d = c[p_key], c["difference"]
    name = {"p_holm": "Holm-adjusted p", "p_value": "p"}[p_key]
    if d is None:
        return None, "undetermined: no difference"
    if p is not None and p < alpha and d > 0:
        return True, f"held: {name} < {alpha} and the difference > 0"
    if interval_verdict(c["lo"], c["hi"], 0.0, ">") is False:
        return False, f"not held: the difference's interval {fmt_ci(c['lo'], c['hi'])} excludes a gain (upper bound <= 0)"
    if p is None:
        return None, f"undetermined: no p ({c['reason']}) and the interval {fmt_ci(c['lo'], c['hi'])} is not <= 0"
    return None, (f"undetermined: {name} = {fmt(p, 4)} (alpha {alpha}), difference {fmt(d)} with its interval "
                  f"{fmt_ci(c['lo'], c['hi'])} including 0")  # fmt: skip


def check_selection_predictor(sel: dict, alpha: float = 0.05) -> dict:
    """(e) PREDICTOR vs the best baseline (selection_summary's ``comparisons``): held by the
    Holm-adjusted paired p, not held by the difference's interval (``_p_verdict``)."""
    claim = ("selection by the predictor trains a more reliable model than the best of RANDOM, ENTROPY and "
             "LEARNABILITY (paired difference in success, Holm-adjusted p)")  # fmt: skip
    comp = sel.get("comparisons") or {}
    rows = [_comparison_values(c) for c in comp.get("predictor_vs_baselines") or []]
    v: dict[str, Any] = {"k": sel.get("k"), "alpha": alpha, "best_baseline": comp.get("best_baseline"),
                         "comparisons": rows,
                         "gains": {m: num((e.get("reliability_gain") or {}).get("delta"))
                                   for m, e in sel["methods"].items()}}  # fmt: skip
    best = next((c for c in rows if c["baseline"] == v["best_baseline"]), None)
    if best is None:
        why = (f"Phase 5 not run: {sel['skipped']}" if sel.get("skipped") else comp.get("predictor_reason")
               or "selection_summary.json has no PREDICTOR comparisons (re-run phase 5)")  # fmt: skip
        return _check("selection_predictor", claim, None, v, f"undetermined: {why}")
    held, why = _p_verdict(best, "p_holm", alpha)
    detail = (f"{why}; best baseline {v['best_baseline']} (highest point gain); "
              + "; ".join(_comparison_text(c) for c in rows) + f"; K = {v['k']}")
    return _check("selection_predictor", claim, held, v, detail)


def check_oracle_vs_learnability(sel: dict, alpha: float = 0.05) -> dict:
    """(f) At equal cost, ORACLE (CPT's labels) vs LEARNABILITY_EQ (p_policy(1 - p_policy) from as
    many student rollouts per candidate as ORACLE's): held by its paired p, not held by the
    difference's interval (``_p_verdict``); the cost of each beside it."""
    claim = ("CPT's full labelling is worth its cost: at equal student rollouts per candidate, ORACLE (top "
             "out-of-fold gain_net of the trained format) trains a more reliable model than LEARNABILITY_EQ (top "
             "p_policy(1 - p_policy) from as many rollouts)")  # fmt: skip
    comp = sel.get("comparisons") or {}
    c = comp.get("oracle_vs_learnability_eq")
    costs = {m: (sel["methods"].get(m) or {}).get("cost") for m in ("ORACLE", "LEARNABILITY_EQ")}
    v: dict[str, Any] = {"k": sel.get("k"), "alpha": alpha, "comparison": _comparison_values(c) if c else None,
                         "cost": costs}  # fmt: skip
    if not c:
        why = (f"Phase 5 not run: {sel['skipped']}" if sel.get("skipped") else comp.get("oracle_reason_eq")
               or "selection_summary.json has no ORACLE vs LEARNABILITY_EQ comparison")  # fmt: skip
        return _check("selection_oracle_vs_learnability", claim, None, v, f"undetermined: {why}")
    held, why = _p_verdict(v["comparison"], "p_value", alpha)
    spent = "; ".join(f"{m} spent {cost_text(x)}" for m, x in costs.items() if x)
    return _check("selection_oracle_vs_learnability", claim, held, v,
                  f"{why}; {_comparison_text(v['comparison'])}; {spent}; K = {v['k']}")


def check_beyond_headroom(corr: dict) -> dict:
    """CPT adds information beyond headroom: the partial Spearman rho(ELP_net, delta | p_policy)
    of Phase 1B has an interval above 0 (held), at or below 0 (not held), or straddling 0."""
    claim = "CPT adds information beyond headroom: partial rho(ELP_net, micro-training delta | p_policy) > 0"
    pr = corr.get("partial_rho") or {}
    ci = pr.get("rho_ci") or [None, None]
    v = {"partial_rho": num(pr.get("rho")), "lo": num(ci[0]), "hi": num(ci[1]), "p_value": num(pr.get("p_value")),
         "n": pr.get("n"), "headroom_rho": num((corr.get("baselines") or {}).get("headroom", {}).get("rho"))}  # fmt: skip
    if None in (v["partial_rho"], v["lo"], v["hi"]):
        return _check("cpt_beyond_headroom", claim, None, v,
                      f"undetermined: {pr.get('reason') or 'no partial rho in cpt_correlation.json'} (n = {v['n']})")
    held = interval_verdict(v["lo"], v["hi"], 0.0, ">")
    detail = (f"partial rho = {fmt(v['partial_rho'])} {fmt_ci(v['lo'], v['hi'])}, one-sided p = {fmt(v['p_value'], 4)}, "
              f"n = {v['n']} snapshots (rho of headroom 1 - p_policy alone: {fmt(v['headroom_rho'])})")  # fmt: skip
    if held is None:
        detail = "undetermined: the interval includes 0; " + detail
    return _check("cpt_beyond_headroom", claim, held, v, detail)


