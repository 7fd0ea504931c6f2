"""Compare two models' phase 3 rollouts (``teachable compare --baseline A --model B``).

For every metric: the baseline's and the model's value (each with its n and interval), the
difference model - baseline with an interval, an effect size, a test with its p-value, and a
verdict at ``alpha``: improvement, regression or no significant change.

Metrics (per-rollout values from ``evaluation.eval_model``):

================  ============  ==========  ===============================  =================
metric            suite         unit        value per rollout                better
================  ============  ==========  ===============================  =================
overall_success   overall       task        success (0/1)                    higher
snapshot_success  snapshot      snapshot    success (0/1)                    higher
success_<Q>       snapshot, Q   snapshot    success (0/1)                    higher
retention_success overall*      task        success (0/1)                    higher
mean_return       overall       task        return                           higher
mean_steps        overall       task        steps                            lower
repeat_rate       overall       task        repeat rate                      lower
loop_rate         overall       task        loop (0/1)                       lower
wasted_steps      overall       task        wasted steps                     lower
invalid_rate      overall       task        invalid-action rate              lower
================  ============  ==========  ===============================  =================

(*) retention: only the eval tasks the *baseline* solves, chosen on the first half of the
baseline's rollouts of each task (``rollout_idx < R // 2``, success rate >= 0.5) and measured on
the other half (``rollout_idx >= R // 2``) for both models
(``evaluation_tables.retention_split``), so the baseline's value is not optimistic. With R < 2
rollouts per task the metric is null with its reason.

Statistics:

- Each side: the per-rollout mean (a success rate for 0/1 values) with a percentile bootstrap
  interval over units (tasks or snapshots: rollouts of one unit are not independent),
  ``n_bootstrap`` resamples seeded by ``seed`` (``stats.ClusterBootstrap``).
- Paired design (the default: both models played the same units, with common random numbers):
  difference = model - baseline per-rollout mean over the units both have, with a *paired*
  cluster-bootstrap interval (the units are resampled once for both models); test = paired
  permutation test of the per-unit means (sign flips of the unit differences, statistic = mean
  difference, two-sided; ``stats.paired_permutation_test``: exact when 2^n_units <=
  ``n_resamples``, else ``n_resamples`` random sign flips with a fixed seed).
- Unpaired (the two models' unit sets differ): difference with an unpaired cluster-bootstrap
  interval (each side's units resampled on their own); tests over rollouts, which treat the
  rollouts of a unit as independent (anti-conservative when they are correlated): proportions ->
  Fisher's exact test (``scipy.stats.fisher_exact``), means -> Welch's t-test
  (``scipy.stats.ttest_ind(equal_var=False)``).
- Effect sizes: Cohen's h = 2 asin(sqrt(p_model)) - 2 asin(sqrt(p_baseline)) for proportions;
  Cohen's d = (mean_model - mean_baseline) / s_pooled over per-rollout values,
  s_pooled = sqrt(((n1-1) s1^2 + (n2-1) s2^2) / (n1 + n2 - 2)), for means.
- No placeholder statistics: when a test or an effect size cannot be computed (fewer than 2
  units, every paired difference zero, no variance) its value is null and ``reason`` says why.
- Verdicts: ``p_holm`` is the Holm-adjusted p-value over the metrics of one report
  (family-wise error rate at ``alpha``); a metric is an improvement or a regression iff
  ``p_holm < alpha`` and the difference is not zero (its sign and ``higher_is_better`` say
  which), else "no significant change" (also when p is null). The unadjusted p is reported.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as st

from .evaluation_tables import BASE_ID, measured_half, retention_split
from .stats import DEFAULT_N_BOOTSTRAP, ClusterBootstrap, holm, paired_permutation_test

IMPROVEMENT, REGRESSION, NO_CHANGE = "improvement", "regression", "no significant change"
N_RESAMPLES = 9999
PERM_SEED = 0

# name -> (suite, value column, kind, higher_is_better, description)
BASE_METRICS: dict[str, tuple[str, str, str, bool, str]] = {
    "overall_success": ("overall", "success", "proportion", True, "success rate on eval tasks from reset"),
    "mean_return": ("overall", "return", "mean", True, "mean return on eval tasks"),
    "mean_steps": ("overall", "steps", "mean", False, "mean steps on eval tasks"),
    "repeat_rate": ("overall", "repeat_rate", "mean", False, "repeated-action rate"),
    "loop_rate": ("overall", "loop", "proportion", False, "rollouts with an action loop"),
    "wasted_steps": ("overall", "wasted_steps", "mean", False, "steps wasted vs the expert"),
    "invalid_rate": ("overall", "invalid_rate", "mean", False, "invalid-action rate"),
}


def _num(x: Any) -> Any:
    """JSON-friendly: NaN/inf -> None, numpy scalars -> Python."""
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    return x


def _values(g: pd.DataFrame, col: str) -> np.ndarray:
    v = g[col].astype(float).to_numpy()
    return v[np.isfinite(v)]


def _side(bs: ClusterBootstrap, g: pd.DataFrame, col: str, unit: str) -> dict:
    r = bs.rate(g[col].astype(float).to_numpy(), g[unit].to_numpy())
    return {"value": _num(r["value"]), "n": r["n"], "n_units": r["n_clusters"], "lo": _num(r["lo"]),
            "hi": _num(r["hi"]), "interval": f"percentile bootstrap over {unit.removesuffix('_id')}s",
            "reason": r["reason"]}  # fmt: skip


def _effect(gb: pd.DataFrame, gm: pd.DataFrame, col: str, kind: str) -> dict:
    b, m = _values(gb, col), _values(gm, col)
    if len(b) == 0 or len(m) == 0:
        return {"name": "cohen_h" if kind == "proportion" else "cohen_d", "value": None,
                "reason": "no rollouts on one side"}
    if kind == "proportion":
        h = 2 * math.asin(math.sqrt(m.mean())) - 2 * math.asin(math.sqrt(b.mean()))
        return {"name": "cohen_h", "value": h, "reason": None}
    n1, n2 = len(b), len(m)
    if n1 + n2 < 3:
        return {"name": "cohen_d", "value": None, "reason": "fewer than 3 rollouts in all"}
    if np.ptp(b) == 0 and np.ptp(m) == 0:  # exact test: var() of equal floats may be ~1e-33
        return {"name": "cohen_d", "value": None, "reason": "zero pooled standard deviation"}
    s1 = b.var(ddof=1) if n1 > 1 else 0.0
    s2 = m.var(ddof=1) if n2 > 1 else 0.0
    sp = math.sqrt(((n1 - 1) * s1 + (n2 - 1) * s2) / (n1 + n2 - 2))
    if sp == 0:
        return {"name": "cohen_d", "value": None, "reason": "zero pooled standard deviation"}
    return {"name": "cohen_d", "value": (m.mean() - b.mean()) / sp, "reason": None}


def _difference(bs: ClusterBootstrap, gb: pd.DataFrame, gm: pd.DataFrame, col: str, unit: str,
                paired: bool) -> dict:  # fmt: skip
    d = bs.diff(gm[col].astype(float).to_numpy(), gm[unit].to_numpy(), gb[col].astype(float).to_numpy(),
                gb[unit].to_numpy(), paired=paired)  # fmt: skip
    how = "paired: units resampled once for both models" if paired else "unpaired: each side's units resampled"
    return {"value": _num(d["value"]), "lo": _num(d["lo"]), "hi": _num(d["hi"]),
            "n_units": d["n_clusters"] if paired else None, "reason": d["reason"],
            "method": f"model - baseline per-rollout mean, percentile cluster bootstrap over {unit.removesuffix('_id')}s "
                      f"({how})"}  # fmt: skip


def _paired_test(gb: pd.DataFrame, gm: pd.DataFrame, col: str, unit: str) -> dict:
    """Paired permutation test of the per-unit means (aligned on the unit)."""
    ub = gb.groupby(unit)[col].apply(lambda s: s.astype(float).mean())
    um = gm.groupby(unit)[col].apply(lambda s: s.astype(float).mean())
    both = pd.concat([ub.rename("b"), um.rename("m")], axis=1).dropna()
    t = paired_permutation_test(both["m"].to_numpy(), both["b"].to_numpy(), N_RESAMPLES, PERM_SEED)
    test = {"name": "paired permutation test (sign flips of per-unit differences, scipy.stats.permutation_test)",
            "paired": True, "n_units": t["n_units"], "statistic": _num(t["statistic"]), "p_value": t["p_value"],
            "reason": t["reason"]}  # fmt: skip
    if t["exact"] is not None:
        test["exact"] = t["exact"]
    if t["p_value"] is None:
        test["statistic"] = None
    return test


def _unpaired_test(gb: pd.DataFrame, gm: pd.DataFrame, col: str, kind: str) -> dict:
    b, m = _values(gb, col), _values(gm, col)
    if kind == "proportion":
        test = {"name": "Fisher's exact test (scipy.stats.fisher_exact), unpaired", "paired": False,
                "statistic": None, "p_value": None, "reason": None}
        if len(m) == 0 or len(b) == 0:
            test["reason"] = "no rollouts on one side"
        else:
            km, kb = int(m.sum()), int(b.sum())
            res = st.fisher_exact([[km, len(m) - km], [kb, len(b) - kb]])
            test["statistic"], test["p_value"] = _num(res.statistic), _num(res.pvalue)
        return test
    test = {"name": "Welch's t-test (scipy.stats.ttest_ind, equal_var=False), unpaired", "paired": False,
            "statistic": None, "p_value": None, "reason": None}
    if len(m) < 2 or len(b) < 2:
        test["reason"] = "fewer than 2 rollouts on one side"
    elif np.ptp(m) == 0 and np.ptp(b) == 0:
        test["reason"] = "no variance on either side"
    else:
        with warnings.catch_warnings():  # one constant side is fine for Welch; scipy warns anyway
            warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
            res = st.ttest_ind(m, b, equal_var=False)
        test["statistic"], test["p_value"] = _num(res.statistic), _num(res.pvalue)
    return test


def _metric(name: str, desc: str, gb: pd.DataFrame, gm: pd.DataFrame, col: str, kind: str, unit: str,
            higher: bool, bs: ClusterBootstrap) -> dict:  # fmt: skip
    """One metric's entry; its verdict is set by ``compare`` once the family's Holm p is known."""
    paired = set(gb[unit]) == set(gm[unit]) and len(gb) > 0
    test = _paired_test(gb, gm, col, unit) if paired else _unpaired_test(gb, gm, col, kind)
    return {
        "metric": name,
        "description": desc,
        "kind": kind,
        "unit": unit,
        "higher_is_better": higher,
        "baseline": _side(bs, gb, col, unit),
        "model": _side(bs, gm, col, unit),
        "difference": _difference(bs, gb, gm, col, unit, paired),
        "effect_size": {k: _num(v) for k, v in _effect(gb, gm, col, kind).items()},
        "test": test,
        "p_value": test["p_value"],
    }


def _verdict(m: dict, alpha: float) -> str:
    p, d = m["p_holm"], m["difference"]["value"]
    if p is None or p >= alpha or d is None or d == 0:
        return NO_CHANGE
    return IMPROVEMENT if (d > 0) == m["higher_is_better"] else REGRESSION


def _undefined_metric(name: str, desc: str, kind: str, unit: str, higher: bool, reason: str) -> dict:
    side = {"value": None, "n": 0, "n_units": 0, "lo": None, "hi": None, "interval": None, "reason": reason}
    return {"metric": name, "description": desc, "kind": kind, "unit": unit, "higher_is_better": higher,
            "baseline": side, "model": dict(side),
            "difference": {"value": None, "lo": None, "hi": None, "n_units": None, "reason": reason, "method": None},
            "effect_size": {"name": "cohen_h", "value": None, "reason": reason},
            "test": {"name": None, "paired": True, "n_units": 0, "statistic": None, "p_value": None, "reason": reason},
            "p_value": None}  # fmt: skip


def _retention(rollouts: pd.DataFrame, baseline: str, ov_b: pd.DataFrame, ov_m: pd.DataFrame,
               bs: ClusterBootstrap) -> dict:  # fmt: skip
    split = retention_split(rollouts, baseline)
    desc = (f"success on the {len(split.tasks)} eval tasks the baseline solves on rollouts 0-{split.half - 1} "
            f"(rate >= 0.5), measured on rollouts {split.half}-{split.rollouts_per_task - 1}")  # fmt: skip
    lacking = sorted(set(split.tasks) - set(ov_m.loc[ov_m["rollout_idx"] >= split.half, "task_id"]))
    reason = split.reason or (f"the model has no rollouts {split.half}+ on base-solved task(s) {lacking[:5]}"
                              if lacking else None)  # fmt: skip
    if reason is not None:
        r = _undefined_metric("retention_success", desc, "proportion", "task_id", True, reason)
    else:
        rb, rm = measured_half(ov_b, split, f"baseline {baseline}"), measured_half(ov_m, split, "the model")
        r = _metric("retention_success", desc, rb, rm, "success", "proportion", "task_id", True, bs)
    r.update(n_baseline_solved_tasks=len(split.tasks) if split.rollouts_per_task >= 2 else None,
             rollouts_per_task=split.rollouts_per_task, selection_rollouts=split.half)
    return r


def compare(rollouts: pd.DataFrame, baseline: str, model: str, confidence: float = 0.95, alpha: float = 0.05,
            n_bootstrap: int = DEFAULT_N_BOOTSTRAP, seed: int = 0) -> dict:  # fmt: skip
    """The comparison report of ``model`` against ``baseline`` (see the module docstring);
    intervals from ``n_bootstrap`` cluster-bootstrap resamples seeded by ``seed``."""
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    ids = set(rollouts["model_id"])
    for who, m in (("baseline", baseline), ("model", model)):
        if m not in ids:
            raise ValueError(f"{who} {m!r} has no rollouts; models present: {sorted(ids)}")
    b_all = rollouts[rollouts["model_id"] == baseline]
    m_all = rollouts[rollouts["model_id"] == model]
    metrics = []
    ov_b, ov_m = b_all[b_all["suite"] == "overall"], m_all[m_all["suite"] == "overall"]
    if len(ov_b) and len(ov_m):
        for name, (_, col, kind, higher, desc) in BASE_METRICS.items():
            metrics.append(_metric(name, desc, ov_b, ov_m, col, kind, "task_id", higher, bs))
        metrics.append(_retention(rollouts, baseline, ov_b, ov_m, bs))
    sn_b, sn_m = b_all[b_all["suite"] == "snapshot"], m_all[m_all["suite"] == "snapshot"]
    if len(sn_b) and len(sn_m):
        metrics.append(_metric("snapshot_success", "success from all held-out snapshots (every quadrant)",
                               sn_b, sn_m, "success", "proportion", "snapshot_id", True, bs))
    for q in sorted(set(sn_b["quadrant"].dropna()) | set(sn_m["quadrant"].dropna())):
        gb, gm = sn_b[sn_b["quadrant"] == q], sn_m[sn_m["quadrant"] == q]
        if len(gb) == 0 or len(gm) == 0:
            continue
        metrics.append(_metric(f"success_{q}", f"success from held-out {q} snapshots", gb, gm, "success",
                               "proportion", "snapshot_id", True, bs))
    for mt, ph in zip(metrics, holm([mt["p_value"] for mt in metrics])):
        mt["p_holm"] = ph
        mt["significant_holm"] = ph is not None and ph < alpha
        mt["verdict"] = _verdict(mt, alpha)
    return {
        "baseline": baseline,
        "model": model,
        "confidence": confidence,
        "alpha": alpha,
        "n_bootstrap": int(n_bootstrap),
        "seed": seed,
        "metrics": metrics,
        "improvements": [m["metric"] for m in metrics if m["verdict"] == IMPROVEMENT],
        "regressions": [m["metric"] for m in metrics if m["verdict"] == REGRESSION],
        "no_significant_change": [m["metric"] for m in metrics if m["verdict"] == NO_CHANGE],
        "notes": [
            "difference = model - baseline; verdicts at the Holm-adjusted p (p_holm < alpha, family = this "
            "report's metrics with a p-value); the unadjusted p is shown beside it",
            "intervals: percentile bootstrap over tasks (overall suite) or snapshots (per-quadrant), paired "
            "where both models played the same units",
            "paired tests pair rollouts by task (overall suite) or snapshot (per-quadrant), which both "
            "models played with the same random streams",
            "retention_success: tasks the baseline solves on the first half of its rollouts, measured on the "
            "other half for both models",
        ],
    }


def compare_bench(baseline_path, model_path, confidence: float = 0.95, alpha: float = 0.05,
                  n_bootstrap: int = DEFAULT_N_BOOTSTRAP, seed: int = 0) -> dict:  # fmt: skip
    """``compare`` of two ``teachable bench`` results (baseline vs model): their episodes are
    tasks from reset, compared as the overall suite's metrics (paired by task when both benched
    the same tasks, e.g. one config's bench split; unpaired otherwise). Same model ids get the
    suffixes ``(baseline)`` and ``(model)``."""
    from .bench import as_overall, read_bench

    (rb, eb), (rm, em) = read_bench(baseline_path), read_bench(model_path)
    b, m = rb["model"], rm["model"]
    if b == m:
        b, m = f"{b} (baseline)", f"{m} (model)"
        eb, em = eb.assign(model_id=b), em.assign(model_id=m)
    rows = pd.concat([as_overall(eb), as_overall(em)], ignore_index=True)
    rep = compare(rows, b, m, confidence=confidence, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
    shared = set(eb["task_id"]) & set(em["task_id"])
    rep["bench"] = {"baseline_file": str(baseline_path), "model_file": str(model_path),
                    "shared_tasks": len(shared), "paired": set(eb["task_id"]) == set(em["task_id"]),
                    "levels": {"baseline": sorted(rb["by_level"]), "model": sorted(rm["by_level"])}}  # fmt: skip
    rep["notes"] = [n for n in rep["notes"] if "per-quadrant" not in n] + [
        "bench results: every metric on the bench tasks (from reset); intervals: percentile bootstrap over "
        f"tasks, paired (and tests paired by task) where both benches played the same tasks ({len(shared)} "
        "shared), else unpaired"]  # fmt: skip
    return rep


def compare_all(rollouts: pd.DataFrame, baseline: str = BASE_ID, confidence: float = 0.95, alpha: float = 0.05,
                n_bootstrap: int = DEFAULT_N_BOOTSTRAP, seed: int = 0) -> dict[str, dict]:  # fmt: skip
    """``compare(baseline, m)`` for every other model in ``rollouts``."""
    return {m: compare(rollouts, baseline, m, confidence, alpha, n_bootstrap, seed)
            for m in sorted(set(rollouts["model_id"]) - {baseline})}


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _p(x: Any) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"


def to_markdown(report: dict) -> str:
    """A Markdown rendering of one ``compare`` report (or of a ``compare_all`` dict)."""
    if "metrics" not in report:
        return "\n\n".join(to_markdown(r) for _, r in sorted(report.items()))
    conf = round(report["confidence"] * 100)
    lines = [
        f"## {report['model']} vs {report['baseline']}",
        "",
        f"Improvements: {', '.join(report['improvements']) or 'none'}. "
        f"Regressions: {', '.join(report['regressions']) or 'none'} "
        f"(verdicts at Holm-adjusted p < alpha = {report['alpha']} over this report's metrics).",
        "",
        f"| metric | better | {report['baseline']} [{conf}% CI] (rollouts; units) "
        f"| {report['model']} [{conf}% CI] (rollouts; units) "
        f"| difference [{conf}% CI] | effect size | test | p | p (Holm) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in report["metrics"]:
        b, mo, d, e, t = m["baseline"], m["model"], m["difference"], m["effect_size"], m["test"]
        eff = f"{e['name']} = {_fmt(e['value'])}" if e["value"] is not None else f"{e['name']} n/a ({e['reason']})"
        test = "paired permutation" if t["paired"] else t["name"].split(" (")[0]
        if t.get("n_units") is not None:
            test += f", {t['n_units']} units"
        pval = _p(t["p_value"]) if t["p_value"] is not None else f"n/a ({t['reason']})"
        lines.append(
            f"| {m['metric']} | {'higher' if m['higher_is_better'] else 'lower'} "
            f"| {_fmt(b['value'])} [{_fmt(b['lo'])}, {_fmt(b['hi'])}] ({b['n']}; {b['n_units']}) "
            f"| {_fmt(mo['value'])} [{_fmt(mo['lo'])}, {_fmt(mo['hi'])}] ({mo['n']}; {mo['n_units']}) "
            f"| {_fmt(d['value'])} [{_fmt(d['lo'])}, {_fmt(d['hi'])}] | {eff} | {test} | {pval} "
            f"| {_p(m['p_holm'])} | {m['verdict']} |"
        )
    lines += ["", *[f"- {n}" for n in report["notes"]], ""]
    return "\n".join(lines)


def compare_command(*, rollouts, baseline, models, bench, out_json, out_md, out_dir, alpha: float, confidence: float,
                    n_bootstrap: int, seed: int) -> None:  # fmt: skip
    """`teachable compare`: two bench results (``bench``: baseline, model), or ``models`` against
    ``baseline`` in phase 3 ``rollouts``; each report to ``out_json`` / ``out_md``, or
    MODEL_vs_BASELINE.{json,md} under ``out_dir``, or Markdown to stdout."""
    from .io import read_table
    from .schemas import EVAL_ROLLOUTS

    stats = dict(confidence=confidence, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
    if bench:
        if rollouts or baseline or models or out_dir:
            raise ValueError("--bench BASELINE MODEL compares two bench results: leave out --rollouts, --baseline, "
                             "--model and --out-dir")  # fmt: skip
        _write_report(compare_bench(*bench, **stats), out_json, out_md)
        return
    if not (rollouts and baseline and models):
        raise ValueError("give --rollouts, --baseline and --model (phase 3 rollouts), or --bench BASELINE MODEL")
    rows = read_table(rollouts, EVAL_ROLLOUTS)
    for m in (baseline, *models):
        if m not in set(rows["model_id"]):
            raise ValueError(f"model {m!r} is not in {rollouts} (models: {sorted(set(rows['model_id']))})")
    if len(models) > 1 and (out_json or out_md):
        raise ValueError("with several --model, write the reports with --out-dir")
    for m in models:
        mj, mm = out_json, out_md
        if out_dir:
            mj = mj or Path(out_dir) / f"{m}_vs_{baseline}.json"
            mm = mm or Path(out_dir) / f"{m}_vs_{baseline}.md"
        _write_report(compare(rows, baseline, m, **stats), mj, mm)


def _write_report(rep: dict, out_json, out_md) -> None:
    """A compare report to JSON and/or Markdown; Markdown to stdout when neither is given."""
    from .documents import COMPARISON
    from .io import atomic_path, write_doc

    if out_json:
        write_doc(rep, COMPARISON, out_json)
    if out_md:
        with atomic_path(out_md) as tmp:
            tmp.write_text(to_markdown(rep))
    if not out_json and not out_md:
        print(to_markdown(rep))
