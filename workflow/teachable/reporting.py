"""Figures, tables and the computed study summary (``teachable figures | tables | summary``).

Every number in them is read from a phase output (or computed from such numbers, as said below);
nothing is typed in. An input without rows, or without the columns / keys a figure or table
needs, is a ValueError naming the file, never an empty plot.

Inputs (one schema each, written by the phase's own module):
- phase1/labeled_snapshots.parquet (``labeling``), phase1/quadrant_thresholds.json
- phase1b/micro_training_results.parquet, phase1b/cpt_correlation.json (``microtrain``)
- phase3/{overall_task_results,transfer_matrix,retention_results,stuckness_results}.csv
  (``evaluation.SUMMARY_COLUMNS``)
- phase4/training_result.json (``predictor``), phase5/selection_summary.json (``selection``)

Derived numbers (the only ones not copied from a file):
- quadrant_summary: mean U / L_local / ELP_net per quadrant; ELP_net with a Student-t interval
  (``evaluation.mean_interval``) over snapshots.
- Pareto frontier: the runs no other run beats on both axes (retention drop lower-or-equal AND
  gain higher-or-equal, one of them strictly).
Gains vs base (main_results, the frontier) are read from overall_task_results.csv
(``gain_vs_base``, ``gain_lo``, ``gain_hi``: Phase 3's paired bootstrap over tasks).

Checks of ``summary.json`` (each ``{"id", "claim", "held", "values", "detail"}``). A verdict
rests on an interval or on a (Holm-adjusted where there is a family) p-value, never on two point
estimates. ``held`` is True (held), False (not held) or null (undetermined: an input is missing
or NaN, or the interval straddles the threshold; ``detail`` says which):
- ``cpt_rho``: Spearman rho(ELP_net, micro-training delta) against rho_threshold, from
  cpt_correlation.json and its CI: held iff the CI's lower bound >= the threshold; not held
  iff its upper bound < the threshold; else undetermined (the interval straddles it).
- ``transfer_diagonal``: over the 12 quadrant runs' transfer cells, mean delta_success where
  trained_on == evaluated_on minus the mean where they differ; held iff the difference is > 0
  and a one-sided permutation test of the cell labels (statistic = difference of means,
  ``scipy.stats.permutation_test``, exact when the arrangements fit in the resamples) gives
  p <= alpha; not held otherwise. The verdict rests on that p; no interval of the difference is
  computed (the cells share models and snapshots, so a bootstrap over cells would not be a
  bootstrap over the independent units, and the CSV has no rollouts); for the same reason the
  p-value is a descriptive guide, not an exact error rate.
- ``retention_drop``: "no Phase 2 run drops retention by the threshold or more", from each
  run's paired cluster-bootstrap interval of the drop: not held iff some run's lower bound >=
  the threshold; held iff every run's upper bound < the threshold (the largest drop's too);
  else undetermined. A missing run or NaN drop (e.g. fewer than 2 rollouts per task) makes it
  undetermined unless another run already shows it is not held. The intervals are per run, not
  adjusted for the 14 runs.
- ``predictor_beats_entropy``: Phase 4's cluster-bootstrap intervals of predictor - entropy in
  Precision@K and NDCG@K: held iff both lower bounds > 0, not held iff either upper bound < 0,
  else undetermined (``predictor.beats_by_interval``).
- ``selection_predictor``: PREDICTOR vs the best baseline (highest point gain of RANDOM,
  ENTROPY, LEARNABILITY) from selection_summary.json's ``comparisons``: held iff the
  Holm-adjusted p (over PREDICTOR vs each baseline) < alpha and the difference in success > 0;
  not held otherwise; undetermined when the p is null for a reason other than a zero difference.
- ``selection_oracle_vs_learnability``: ORACLE (CPT's full labels) vs LEARNABILITY (one rollout
  condition): held iff p < alpha and the difference > 0; not held otherwise; undetermined when
  p is null for a reason other than a zero difference.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .constants import (
    BASE_MODEL_ID,
    BASELINE_RUNS,
    FIGURE_CATEGORIES,
    FORMATS,
    QUADRANTS,
    RUN_IDS,
    SELECTION_METHODS,
    TABLES,
)
from .io import atomic_path, read_json, write_json
from .predictor import beats, beats_by_interval

log = logging.getLogger(__name__)

FIGURES = tuple(f"{name}.png" for name in FIGURE_CATEGORIES)
TABLE_FILES = tuple(f"{t}.{ext}" for t in TABLES for ext in ("csv", "md"))
QUADRANT_RUNS = tuple(f"{q}_{f}" for q in QUADRANTS for f in FORMATS)
DPI = 120
PERMUTATION_RESAMPLES = 9999
PERMUTATION_SEED = 0

TABLE_COLUMNS = {
    "quadrant_summary": [
        "quadrant", "n", "mean_U", "mean_L_local", "mean_ELP_net", "ELP_net_lo", "ELP_net_hi",
        *[f"n_route_{f}" for f in FORMATS],
    ],
    "best_supervision": [
        "quadrant", "best_format", "best_delta", "best_lo", "best_hi", "best_n", "runner_up_format",
        "runner_up_delta", "runner_up_lo", "runner_up_hi", "runner_up_n", "tied", "intervals_overlap",
    ],
    "main_results": [
        "model_id", "n", "success", "success_lo", "success_hi", "gain_vs_base", "gain_lo", "gain_hi",
        "retention_drop", "drop_lo", "drop_hi", "n_retention", "loop_rate", "loop_lo", "loop_hi",
        "invalid_rate", "invalid_lo", "invalid_hi", "n_tasks",
    ],
    "predictor_metrics": [
        "target", "kind", "model", "inputs", "n", "r2", "r2_lo", "r2_hi", "spearman", "spearman_lo",
        "spearman_hi", "spearman_p", "accuracy", "accuracy_lo", "accuracy_hi", "majority_accuracy", "k",
        "precision_at_k", "ndcg_at_k", "note",
    ],
    "selection_summary": [
        "method", "k", "mean_true_elp", "oracle_overlap", "success", "success_lo", "success_hi", "success_n",
        "gain", "gain_lo", "gain_hi", "retention_drop", "drop_lo", "drop_hi", "retention_n", "n_tasks",
    ],
}  # fmt: skip

# the columns each input needs (a subset of what its phase writes)
LABELED_COLUMNS = ("snapshot_id", "U", "L_local", "ELP_net", "route_net", "quadrant")
MICRO_COLUMNS = ("snapshot_id", "quadrant", "ELP_net", "delta")
TRANSFER_COLUMNS = ("trained_on", "evaluated_on", "model_id", "delta_success", "lo", "hi", "n")
OVERALL_COLUMNS = ("model_id", "n", "success_rate", "success_lo", "success_hi", "n_tasks", "gain_vs_base", "gain_lo",
                   "gain_hi")  # fmt: skip
RETENTION_COLUMNS = ("model_id", "n_base_solved_tasks", "drop", "drop_lo", "drop_hi", "n")
STUCKNESS_COLUMNS = ("model_id", "loop_rate", "loop_rate_lo", "loop_rate_hi", "invalid_rate", "invalid_rate_lo",
                     "invalid_rate_hi")  # fmt: skip


# ------------------------------------------------------------------------------------ reading
def read_table(path, columns: Sequence[str], what: str) -> pd.DataFrame:
    """A CSV or Parquet phase output with at least ``columns``; ValueError (naming the file) when it
    has no rows or lacks a column."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what}: expected phase output {p} does not exist")
    if p.suffix == ".parquet":
        df = pd.read_parquet(p)
    else:
        try:
            df = pd.read_csv(p)
        except pd.errors.EmptyDataError as e:
            raise ValueError(f"{what} {p} is empty (no header, no rows)") from e
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} {p} lacks columns {missing} (has {list(df.columns)})")
    if df.empty:
        raise ValueError(f"{what} {p} has no rows: nothing to report")
    return df


def read_report(path, keys: Sequence[str], what: str) -> dict:
    """A JSON phase output with at least ``keys``; ValueError naming the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what}: expected phase output {p} does not exist")
    obj = read_json(p)
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{what} {p} is empty or not a JSON object")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"{what} {p} lacks keys {missing}")
    return obj


def read_selection(path) -> dict:
    """phase5/selection_summary.json; a Phase 5 that the plan skipped carries ``skipped`` (the
    reason) and no methods, and every selection figure, table and check reports that reason."""
    sel = read_report(path, ("k", "methods"), "phase 5 selection summary")
    if sel.get("skipped"):
        return sel
    if "base" not in sel:
        raise ValueError(f"phase 5 selection summary {path} lacks keys ['base']")
    if not sel["methods"]:
        raise ValueError(f"phase 5 selection summary {path} has no methods: nothing to report")
    return sel


def read_predictor(path) -> dict:
    res = read_report(path, ("targets",), "phase 4 training result")
    if not res["targets"]:
        raise ValueError(f"phase 4 training result {path} has no targets: nothing to report")
    return res


# ------------------------------------------------------------------------------------ numbers
def num(x: Any) -> float | None:
    """A finite float, or None for None / NaN / inf / anything not a number."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _nan(x: Any) -> float:
    v = num(x)
    return math.nan if v is None else v


def _short(q: str) -> str:
    """``Q1_highU_highL`` -> ``Q1``; other ids unchanged."""
    return q.split("_")[0] if q in QUADRANTS else q


def _run_parts(model_id: str) -> tuple[str | None, str | None, str]:
    """(quadrant, format, kind) of a Phase 2 run id; kind: quadrant, uniform (B1), all (B2), other."""
    if model_id == "B1_uniform":
        return None, "demo", "uniform"
    if model_id == "B2_all":
        return None, "demo", "all"
    for q in QUADRANTS:
        for f in FORMATS:
            if model_id == f"{q}_{f}":
                return q, f, "quadrant"
    return None, None, "other"


def _model_order(ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(ids))
    known = [BASE_MODEL_ID, *RUN_IDS]
    return [m for m in known if m in ids] + sorted(m for m in ids if m not in known)


def gain_vs_base(overall: pd.DataFrame) -> pd.DataFrame:
    """Per model: overall success minus the base's with Phase 3's paired interval over tasks
    (columns gain_vs_base, gain_lo, gain_hi of overall_task_results.csv); n = the model's
    rollouts, n_base = the base's."""
    base = overall[overall["model_id"] == BASE_MODEL_ID]
    if base.empty:
        raise ValueError(f"overall results lack the base model (model_id {BASE_MODEL_ID!r}): no gain vs base")
    return pd.DataFrame({"model_id": overall["model_id"], "gain": overall["gain_vs_base"].astype(float),
                         "gain_lo": overall["gain_lo"].astype(float), "gain_hi": overall["gain_hi"].astype(float),
                         "n": overall["n"], "n_base": int(base.iloc[0]["n"])})  # fmt: skip


def pareto_mask(drop: Sequence[float], gain: Sequence[float]) -> np.ndarray:
    """True for points no other point dominates (drop <= and gain >=, one strictly); NaN: False."""
    x, y = np.asarray(drop, float), np.asarray(gain, float)
    ok = np.isfinite(x) & np.isfinite(y)
    out = np.zeros(len(x), bool)
    for i in np.flatnonzero(ok):
        dom = ok & (x <= x[i]) & (y >= y[i]) & ((x < x[i]) | (y > y[i]))
        out[i] = not dom.any()
    return out


def _intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool | None:
    if any(num(v) is None for v in (*a, *b)):
        return None
    return bool(max(a[0], b[0]) <= min(a[1], b[1]))


def _in_quadrant(transfer: pd.DataFrame) -> pd.DataFrame:
    """The transfer cells of the quadrant x format runs evaluated on their own quadrant, with
    ``quadrant`` and ``format`` columns."""
    rows = []
    for q in QUADRANTS:
        for f in FORMATS:
            cell = transfer[(transfer["model_id"] == f"{q}_{f}") & (transfer["evaluated_on"] == q)]
            if len(cell) > 1:
                raise ValueError(f"transfer matrix has {len(cell)} rows for {q}_{f} on {q}")
            if len(cell):
                rows.append({"quadrant": q, "format": f, **cell.iloc[0].to_dict()})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ tables
def quadrant_summary(labeled: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per quadrant (and ``all``): n, mean U, mean L_local, mean ELP_net with a t interval, route
    counts (route_net)."""
    from .evaluation import mean_interval

    rows = []
    for q in (*QUADRANTS, "all"):
        g = labeled if q == "all" else labeled[labeled["quadrant"] == q]
        e = mean_interval(g["ELP_net"], confidence)
        routes = g["route_net"].value_counts()
        rows.append({
            "quadrant": q, "n": len(g),
            "mean_U": float(g["U"].mean()) if len(g) else math.nan,
            "mean_L_local": float(g["L_local"].mean()) if len(g) else math.nan,
            "mean_ELP_net": e["mean"], "ELP_net_lo": e["lo"], "ELP_net_hi": e["hi"],
            **{f"n_route_{f}": int(routes.get(f, 0)) for f in FORMATS},
        })  # fmt: skip
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["quadrant_summary"])


def best_supervision(transfer: pd.DataFrame, source: str = "transfer matrix") -> pd.DataFrame:
    """Per quadrant: the format whose run has the highest in-quadrant delta_success (ties: the
    fixed order demo, hint, contrast, and ``tied`` says so), and the runner-up."""
    cells = _in_quadrant(transfer)
    if cells.empty:
        raise ValueError(f"{source} has no quadrant x format run evaluated on its own quadrant")
    rows = []
    for q in QUADRANTS:
        g = cells[cells["quadrant"] == q]
        g = g[g["delta_success"].map(num).notna()]
        if g.empty:
            continue
        g = g.assign(_o=g["format"].map(FORMATS.index), _neg=-g["delta_success"].astype(float))
        g = g.sort_values(["_neg", "_o"], kind="mergesort")
        b = g.iloc[0]
        r = g.iloc[1] if len(g) > 1 else None
        rows.append({
            "quadrant": q, "best_format": b["format"], "best_delta": b["delta_success"], "best_lo": b["lo"],
            "best_hi": b["hi"], "best_n": int(b["n"]),
            "runner_up_format": r["format"] if r is not None else None,
            "runner_up_delta": r["delta_success"] if r is not None else math.nan,
            "runner_up_lo": r["lo"] if r is not None else math.nan,
            "runner_up_hi": r["hi"] if r is not None else math.nan,
            "runner_up_n": int(r["n"]) if r is not None else None,
            "tied": bool(np.isclose(b["delta_success"], r["delta_success"])) if r is not None else False,
            "intervals_overlap": _intervals_overlap((b["lo"], b["hi"]), (r["lo"], r["hi"])) if r is not None else None,
        })  # fmt: skip
    out = pd.DataFrame(rows, columns=TABLE_COLUMNS["best_supervision"])
    return out.astype({"best_n": "Int64", "runner_up_n": "Int64"})


def main_results(overall: pd.DataFrame, retention: pd.DataFrame, stuckness: pd.DataFrame) -> pd.DataFrame:
    """Per model of the Phase 3 tables: success, gain vs base, retention drop, loop and invalid
    rate, each with Phase 3's interval over tasks."""
    gains = gain_vs_base(overall).set_index("model_id")
    ov, ret, stk = (t.set_index("model_id") for t in (overall, retention, stuckness))
    rows = []
    for m in _model_order(overall["model_id"]):
        o = ov.loc[m]
        r = ret.loc[m] if m in ret.index else None
        s = stk.loc[m] if m in stk.index else None
        rows.append({
            "model_id": m, "n": int(o["n"]), "success": o["success_rate"], "success_lo": o["success_lo"],
            "success_hi": o["success_hi"], "gain_vs_base": gains.loc[m, "gain"], "gain_lo": gains.loc[m, "gain_lo"],
            "gain_hi": gains.loc[m, "gain_hi"],
            "retention_drop": r["drop"] if r is not None else math.nan,
            "drop_lo": r["drop_lo"] if r is not None else math.nan,
            "drop_hi": r["drop_hi"] if r is not None else math.nan,
            "n_retention": int(r["n"]) if r is not None else None,
            "loop_rate": s["loop_rate"] if s is not None else math.nan,
            "loop_lo": s["loop_rate_lo"] if s is not None else math.nan,
            "loop_hi": s["loop_rate_hi"] if s is not None else math.nan,
            "invalid_rate": s["invalid_rate"] if s is not None else math.nan,
            "invalid_lo": s["invalid_rate_lo"] if s is not None else math.nan,
            "invalid_hi": s["invalid_rate_hi"] if s is not None else math.nan,
            "n_tasks": int(o["n_tasks"]),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["main_results"]).astype({"n": "Int64", "n_retention": "Int64"})


def _metric_row(target: str, kind: str, model: str, inputs, metrics: dict | None, note: str | None) -> dict:
    m = metrics or {}
    acc = kind == "classification"
    return {
        "target": target, "kind": kind, "model": model,
        "inputs": ", ".join(map(str, inputs)) if isinstance(inputs, (list, tuple)) else inputs,
        "n": m.get("n"),
        "r2": _nan(m.get("r2")), "r2_lo": _nan(m.get("r2_lo")), "r2_hi": _nan(m.get("r2_hi")),
        "spearman": _nan(m.get("spearman")), "spearman_lo": _nan(m.get("spearman_lo")),
        "spearman_hi": _nan(m.get("spearman_hi")), "spearman_p": _nan(m.get("spearman_p")),
        "accuracy": _nan(m.get("accuracy")), "accuracy_lo": _nan(m.get("lo")) if acc else math.nan,
        "accuracy_hi": _nan(m.get("hi")) if acc else math.nan, "majority_accuracy": _nan(m.get("majority_accuracy")),
        "k": None, "precision_at_k": math.nan, "ndcg_at_k": math.nan, "note": note,
    }  # fmt: skip


def predictor_metrics(result: dict) -> pd.DataFrame:
    """One row per (target, model) of phase4/training_result.json (model = ``predictor`` or the
    entropy-only baseline, or a row saying why there is no baseline), then the ranking rows."""
    rows = []
    for target, t in result["targets"].items():
        kind = t.get("kind", "")
        notes = [t.get("note")] if t.get("note") else []
        if t.get("uses_defining_inputs"):
            notes.append(f"uses its defining inputs {t['uses_defining_inputs']}")
        if t.get("excluded_inputs"):
            notes.append("excluded: " + "; ".join(f"{k} ({v})" for k, v in t["excluded_inputs"].items()))
        rows.append(_metric_row(target, kind, "predictor", t.get("inputs", []), t.get("metrics"), "; ".join(notes) or None))
        b = t.get("baseline")
        if b:
            rows.append(_metric_row(target, kind, b.get("name", "baseline"), b.get("inputs", []), b.get("metrics"), None))
        else:
            rows.append(_metric_row(target, kind, "entropy_only", [], None,
                                    f"no baseline: {t.get('baseline_reason') or 'not given'}"))
    rk = result.get("ranking")
    if rk:
        for model in ("predictor", "entropy"):
            m = rk.get(model) or {}
            row = _metric_row(f"{rk.get('target', 'ELP_net')} ranking", "ranking",
                              "predictor" if model == "predictor" else "entropy_only", "", None,
                              f"relevance: {rk['relevance']}" if rk.get("relevance") else None)
            row.update(k=rk.get("k"), precision_at_k=_nan(m.get("precision_at_k")), ndcg_at_k=_nan(m.get("ndcg_at_k")),
                       spearman=_nan(m.get("spearman")), spearman_p=_nan(m.get("spearman_p")))
            rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["predictor_metrics"]).astype({"n": "Int64", "k": "Int64"})


def _method_order(methods: Iterable[str]) -> list[str]:
    ms = list(methods)
    return [m for m in SELECTION_METHODS if m in ms] + sorted(m for m in ms if m not in SELECTION_METHODS)


def selection_table(sel: dict) -> pd.DataFrame:
    """Per selection method (and the base's success): k, mean true ELP, oracle overlap, success,
    gain and retention drop with their intervals, from phase5/selection_summary.json (no row
    when Phase 5 was skipped)."""
    if sel.get("skipped"):
        return pd.DataFrame(columns=TABLE_COLUMNS["selection_summary"])
    b = sel["base"]["success"]
    rows = [{"method": BASE_MODEL_ID, "k": None, "mean_true_elp": math.nan, "oracle_overlap": math.nan,
             "success": _nan(b.get("p")), "success_lo": _nan(b.get("lo")), "success_hi": _nan(b.get("hi")),
             "success_n": b.get("n"), "gain": math.nan, "gain_lo": math.nan, "gain_hi": math.nan,
             "retention_drop": math.nan, "drop_lo": math.nan, "drop_hi": math.nan, "retention_n": None,
             "n_tasks": b.get("n_tasks")}]  # fmt: skip
    for name in _method_order(sel["methods"]):
        m = sel["methods"][name]
        s, g, r = m.get("success") or {}, m.get("reliability_gain") or {}, m.get("retention") or {}
        rows.append({
            "method": name, "k": sel["k"], "mean_true_elp": _nan(m.get("mean_true_elp")),
            "oracle_overlap": _nan(m.get("oracle_overlap")), "success": _nan(s.get("p")),
            "success_lo": _nan(s.get("lo")), "success_hi": _nan(s.get("hi")), "success_n": s.get("n"),
            "gain": _nan(g.get("delta")), "gain_lo": _nan(g.get("lo")), "gain_hi": _nan(g.get("hi")),
            "retention_drop": _nan(r.get("drop")), "drop_lo": _nan(r.get("lo")), "drop_hi": _nan(r.get("hi")),
            "retention_n": r.get("n"), "n_tasks": s.get("n_tasks"),
        })  # fmt: skip
    out = pd.DataFrame(rows, columns=TABLE_COLUMNS["selection_summary"])
    return out.astype({"k": "Int64", "success_n": "Int64", "retention_n": "Int64", "n_tasks": "Int64"})


def _cell(v: Any, digits: int = 3) -> str:
    if v is None or v is pd.NA:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "—"
        return f"{v:.{digits}g}" if v != 0 and abs(v) < 10 ** -digits else f"{v:.{digits}f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned, NaN / missing as an em dash)."""
    cols = list(df.columns)
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines) + "\n"


def build_tables(labeled: pd.DataFrame, transfer: pd.DataFrame, overall: pd.DataFrame, retention: pd.DataFrame,
                 stuckness: pd.DataFrame, predictor: dict, selection: dict, confidence: float = 0.95,
                 transfer_source: str = "transfer matrix") -> dict[str, pd.DataFrame]:  # fmt: skip
    return {
        "quadrant_summary": quadrant_summary(labeled, confidence),
        "best_supervision": best_supervision(transfer, transfer_source),
        "main_results": main_results(overall, retention, stuckness),
        "predictor_metrics": predictor_metrics(predictor),
        "selection_summary": selection_table(selection),
    }


def write_tables(tables: dict[str, pd.DataFrame], out_dir, notes: dict[str, str] | None = None) -> list[Path]:
    """Each table as ``<name>.csv`` and ``<name>.md`` under ``out_dir`` (atomic writes); ``notes``
    adds a line above a table's Markdown (e.g. why it has no rows)."""
    out = []
    for name in TABLES:
        df = tables[name]
        p = Path(out_dir) / f"{name}.csv"
        with atomic_path(p) as tmp:
            df.to_csv(tmp, index=False)
        out.append(p)
        p = Path(out_dir) / f"{name}.md"
        note = notes.get(name) if notes else None
        with atomic_path(p) as tmp:
            tmp.write_text(f"## {name}\n\n" + (f"{note}\n\n" if note else "") + to_markdown(df))
        out.append(p)
    return out


def tables_from_files(*, labeled, transfer, overall, retention, stuckness, predictor, selection, out_dir,
                      confidence: float = 0.95) -> list[Path]:  # fmt: skip
    sel = read_selection(selection)
    tables = build_tables(
        pd.DataFrame(read_table(labeled, LABELED_COLUMNS, "labeled snapshots")[list(LABELED_COLUMNS)]),
        read_table(transfer, TRANSFER_COLUMNS, "transfer matrix"),
        read_table(overall, OVERALL_COLUMNS, "overall task results"),
        read_table(retention, RETENTION_COLUMNS, "retention results"),
        read_table(stuckness, STUCKNESS_COLUMNS, "stuckness results"),
        read_predictor(predictor), sel, confidence, transfer_source=f"transfer matrix {transfer}",
    )  # fmt: skip
    notes = {"selection_summary": f"Phase 5 not run: {sel['skipped']}"} if sel.get("skipped") else None
    return write_tables(tables, out_dir, notes)


# ------------------------------------------------------------------------------------ checks
def _check(id_: str, claim: str, held: bool | None, values: dict, detail: str) -> dict:
    return {"id": id_, "claim": claim, "held": held, "values": values, "detail": detail}


def _f(x: Any, digits: int = 3) -> str:
    v = num(x)
    return "n/a" if v is None else f"{v:.{digits}f}"


def _ci(lo: Any, hi: Any, digits: int = 3) -> str:
    return f"[{_f(lo, digits)}, {_f(hi, digits)}]"


def check_cpt(corr: dict) -> dict:
    """(a) rho(ELP_net, micro-training delta) against rho_threshold by its CI: held iff the lower
    bound >= the threshold, not held iff the upper bound < it, else undetermined."""
    ci = corr.get("rho_ci") or [None, None]
    v = {
        "rho": num(corr.get("rho")), "rho_lo": num(ci[0]), "rho_hi": num(ci[1]),
        "p_value": num(corr.get("p_value")), "n": corr.get("n"), "rho_threshold": num(corr.get("rho_threshold")),
        "alpha": num(corr.get("alpha")), "confidence": num(corr.get("confidence")),
        "ci_method": corr.get("ci_method"), "p_method": corr.get("p_method"), "gate_pass": corr.get("pass"),
    }  # fmt: skip
    v["significant"] = (v["p_value"] <= v["alpha"]) if None not in (v["p_value"], v["alpha"]) else None
    v["ci_excludes_zero"] = (v["rho_lo"] > 0 or v["rho_hi"] < 0) if None not in (v["rho_lo"], v["rho_hi"]) else None
    claim = "CPT predicts training utility: Spearman rho(ELP_net, micro-training delta) >= threshold"
    if v["rho"] is None or v["rho_threshold"] is None:
        why = corr.get("reason") or "rho or rho_threshold missing/NaN"
        return _check("cpt_rho", claim, None, v, f"undetermined: {why} (n = {v['n']})")
    conf = f"{round(100 * v['confidence'])}% " if v["confidence"] is not None else ""
    detail = (f"rho = {_f(v['rho'])} {_ci(v['rho_lo'], v['rho_hi'])} ({conf}{v['ci_method'] or 'CI'}), "
              f"p = {_f(v['p_value'], 4)} ({v['p_method'] or 'p-value'}), n = {v['n']} snapshots; "
              f"threshold {_f(v['rho_threshold'], 2)}; "
              + ("significant" if v["significant"] else "not significant" if v["significant"] is False
                 else "significance undetermined") + f" at alpha = {_f(v['alpha'], 2)}")  # fmt: skip
    if v["rho_lo"] is None or v["rho_hi"] is None:
        return _check("cpt_rho", claim, None, v, "undetermined: no interval of rho; " + detail)
    if v["rho_lo"] >= v["rho_threshold"]:
        return _check("cpt_rho", claim, True, v, detail + " (the interval's lower bound reaches the threshold)")
    if v["rho_hi"] < v["rho_threshold"]:
        return _check("cpt_rho", claim, False, v, detail + " (the interval's upper bound is below the threshold)")
    return _check("cpt_rho", claim, None, v, "undetermined: the interval straddles the threshold; " + detail)


def check_transfer_diagonal(transfer: pd.DataFrame, alpha: float = 0.05,
                            expected_models: Sequence[str] | None = QUADRANT_RUNS) -> dict:  # fmt: skip
    """(b) mean delta_success of in-quadrant cells (trained_on == evaluated_on) vs cross-quadrant
    cells, over the quadrant runs (``expected_models``; None = every model whose trained_on is one
    of the evaluated_on labels). One-sided permutation test of the cell labels."""
    from scipy import stats as st

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
    v: dict[str, Any] = {
        "mean_diagonal": None, "mean_off_diagonal": None, "difference": None, "p_value": None,
        "n_diagonal_cells": int(len(d)), "n_off_diagonal_cells": int(len(o)),
        "n_models": int(runs["model_id"].nunique()), "missing_models": missing,
        "nan_cells": [f"{m} on {e}" for m, e in nan_cells.itertuples(index=False)], "alpha": alpha,
        "test": "permutation test of cell labels, one-sided (diagonal > off-diagonal), statistic = "
                "difference of means (scipy.stats.permutation_test, independent)",
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
    res = st.permutation_test((d, o), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                              permutation_type="independent", alternative="greater", vectorized=True,
                              n_resamples=PERMUTATION_RESAMPLES, random_state=np.random.default_rng(PERMUTATION_SEED))  # fmt: skip
    v["p_value"] = float(res.pvalue)
    n_arr = math.comb(len(d) + len(o), len(d))
    v["exact"] = bool(n_arr <= PERMUTATION_RESAMPLES)
    detail = (f"mean diagonal {_f(v['mean_diagonal'])} ({len(d)} cells) vs off-diagonal "
              f"{_f(v['mean_off_diagonal'])} ({len(o)} cells): difference {_f(v['difference'])}, "
              f"one-sided permutation p = {_f(v['p_value'], 4)} ({'exact' if v['exact'] else f'{PERMUTATION_RESAMPLES} resamples'}); "
              f"rollouts per cell {_n_text(runs['n'])}")  # fmt: skip
    if missing:
        return _check("transfer_diagonal", claim, None, v, f"undetermined: runs missing {missing}; " + detail)
    held = v["difference"] > 0 and v["p_value"] <= alpha
    return _check("transfer_diagonal", claim, bool(held), v,
                  detail + f" (held iff difference > 0 and p <= {alpha}; the verdict rests on this p: no interval "
                           "of the difference, the cells share models and snapshots)")  # fmt: skip


def _expected_runs(table: pd.DataFrame, expected_models: Sequence[str] | None) -> tuple[pd.DataFrame, list[str]]:
    if expected_models is None:
        return table[table["model_id"] != BASE_MODEL_ID], []
    runs = table[table["model_id"].isin(expected_models)]
    return runs, [m for m in expected_models if m not in set(runs["model_id"])]


def check_retention(retention: pd.DataFrame, threshold: float,
                    expected_models: Sequence[str] | None = RUN_IDS) -> dict:  # fmt: skip
    """(c) no Phase 2 run drops retention by ``threshold`` or more, by each run's interval."""
    claim = (f"training does not cause forgetting: no Phase 2 run's retention drop reaches {threshold} "
             f"(by its interval)")  # fmt: skip
    runs, missing = _expected_runs(retention, expected_models)
    drops = {m: {"drop": num(d), "lo": num(lo), "hi": num(hi)}
             for m, d, lo, hi in zip(runs["model_id"], runs["drop"], runs["drop_lo"], runs["drop_hi"])}  # fmt: skip
    over = [m for m, d in drops.items() if d["lo"] is not None and d["lo"] >= threshold]
    nan_runs = [m for m, d in drops.items() if None in d.values()]
    v: dict[str, Any] = {"threshold": threshold, "max_drop": None, "run": None, "lo": None, "hi": None, "n": None,
                         "n_base_solved_tasks": None, "n_runs": int(len(runs)), "missing_runs": missing,
                         "drops": drops, "max_upper_bound": None, "max_upper_run": None,
                         "runs_lower_bound_over_threshold": over}  # fmt: skip
    if runs.empty:
        return _check("retention_drop", claim, None, v, "undetermined: no Phase 2 run in the retention results")
    ok = runs[~runs["model_id"].isin(nan_runs)]
    detail = ""
    if len(ok):
        order = {m: i for i, m in enumerate(_model_order(ok["model_id"]))}
        top = ok.assign(_o=ok["model_id"].map(order), _neg=-ok["drop"].astype(float))
        top = top.sort_values(["_neg", "_o"], kind="mergesort").iloc[0]
        upper = ok.loc[ok["drop_hi"].astype(float).idxmax()]
        v.update(max_drop=float(top["drop"]), run=str(top["model_id"]), lo=num(top["drop_lo"]),
                 hi=num(top["drop_hi"]), n=int(top["n"]), n_base_solved_tasks=int(top["n_base_solved_tasks"]),
                 max_upper_bound=float(upper["drop_hi"]), max_upper_run=str(upper["model_id"]))  # fmt: skip
        detail = (f"largest drop {_f(v['max_drop'])} {_ci(v['lo'], v['hi'])} for {v['run']} "
                  f"(n = {v['n']} rollouts on {v['n_base_solved_tasks']} base-solved tasks, measured on the half of "
                  f"the rollouts that did not select them); highest upper bound {_f(v['max_upper_bound'])} "
                  f"({v['max_upper_run']}); threshold {threshold}; intervals are per run, paired bootstrap over "
                  f"tasks")  # fmt: skip
    if over:
        return _check("retention_drop", claim, False, v, f"not held: the lower bound of {over} is >= {threshold}; "
                      + detail)  # fmt: skip
    if nan_runs or missing:
        why = "; ".join(x for x in (f"runs missing {missing}" if missing else "",
                                    f"NaN retention drop for {nan_runs}" + _reasons(runs, nan_runs) if nan_runs else "")
                        if x)  # fmt: skip
        return _check("retention_drop", claim, None, v, f"undetermined: {why}" + (f"; {detail}" if detail else ""))
    if v["max_upper_bound"] < threshold:
        return _check("retention_drop", claim, True, v, f"every run's upper bound is < {threshold}; " + detail)
    return _check("retention_drop", claim, None, v, f"undetermined: an interval straddles {threshold}; " + detail)


def _reasons(table: pd.DataFrame, runs: list[str]) -> str:
    if "reason" not in table.columns:
        return ""
    why = sorted({str(r) for r in table.loc[table["model_id"].isin(runs), "reason"] if isinstance(r, str) and r})
    return f" ({'; '.join(why)})" if why else ""


def check_predictor(result: dict) -> dict:
    """(d) ranking by predicted ELP beats ranking by U, by the intervals of both differences
    (``predictor.beats_by_interval``)."""
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
    detail = (f"K = {v['k']}: precision@K {_f(v['predictor_precision_at_k'])} vs entropy "
              f"{_f(v['entropy_precision_at_k'])} (difference {_f(dp['value'])} {_ci(dp['lo'], dp['hi'])}), "
              f"NDCG@K {_f(v['predictor_ndcg_at_k'])} vs {_f(v['entropy_ndcg_at_k'])} (difference "
              f"{_f(dn['value'])} {_ci(dn['lo'], dn['hi'])}); intervals: cluster bootstrap over tasks "
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
    text = (f"{c['model']} - {c['baseline']} = {_f(c['difference'])} {_ci(c['lo'], c['hi'])} "
            f"({c['n_tasks']} tasks), p = {_f(c['p_value'], 4)}")  # fmt: skip
    if "p_holm" in c and c["p_holm"] is not None:
        text += f", Holm p = {_f(c['p_holm'], 4)}"
    return text + (f" ({c['reason']})" if c["p_value"] is None and c["reason"] else "")


def _p_verdict(c: dict, p_key: str, alpha: float) -> tuple[bool | None, str]:
    """held iff p < alpha and difference > 0; null p: not held for a zero difference, else
    undetermined."""
    p, d = c[p_key], c["difference"]
    name = {"p_holm": "Holm-adjusted p", "p_value": "p"}[p_key]
    if d is None:
        return None, "undetermined: no difference"
    if p is None:
        return (False, "not held: no difference") if d == 0 else (None, f"undetermined: no p ({c['reason']})")
    if p < alpha and d > 0:
        return True, f"held: {name} < {alpha} and the difference > 0"
    return False, f"not held: {name} = {_f(p, 4)} (alpha {alpha}), difference {_f(d)}"


def check_selection_predictor(sel: dict, alpha: float = 0.05) -> dict:
    """(e) PREDICTOR vs the best baseline by the Holm-adjusted paired p (selection_summary's
    ``comparisons``)."""
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
    """(f) ORACLE (CPT's full labels) vs LEARNABILITY (one rollout condition), by its paired p."""
    claim = ("CPT's full labelling is worth its cost: ORACLE (top ELP_net) trains a more reliable model than "
             "LEARNABILITY (top p_policy(1 - p_policy))")  # fmt: skip
    comp = sel.get("comparisons") or {}
    c = comp.get("oracle_vs_learnability")
    v: dict[str, Any] = {"k": sel.get("k"), "alpha": alpha, "comparison": _comparison_values(c) if c else None}
    if not c:
        why = (f"Phase 5 not run: {sel['skipped']}" if sel.get("skipped") else comp.get("oracle_reason")
               or "selection_summary.json has no ORACLE vs LEARNABILITY comparison")  # fmt: skip
        return _check("selection_oracle_vs_learnability", claim, None, v, f"undetermined: {why}")
    held, why = _p_verdict(v["comparison"], "p_value", alpha)
    return _check("selection_oracle_vs_learnability", claim, held, v,
                  f"{why}; {_comparison_text(v['comparison'])}; K = {v['k']}")


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
    held = True if v["lo"] > 0 else False if v["hi"] <= 0 else None
    detail = (f"partial rho = {_f(v['partial_rho'])} {_ci(v['lo'], v['hi'])}, one-sided p = {_f(v['p_value'], 4)}, "
              f"n = {v['n']} snapshots (rho of headroom 1 - p_policy alone: {_f(v['headroom_rho'])})")  # fmt: skip
    if held is None:
        detail = "undetermined: the interval includes 0; " + detail
    return _check("cpt_beyond_headroom", claim, held, v, detail)


def gain_numbers(labeled: pd.DataFrame, confidence: float, n_bootstrap: int, seed: int) -> dict:
    """Mean gain_net per format and mean ELP_net (cross-fitted and naive) over labeled snapshots,
    each with a cluster bootstrap interval over tasks."""
    from .stats import ClusterBootstrap

    cb = ClusterBootstrap(confidence, n_bootstrap, seed)
    cols = [*(f"gain_net_{m}" for m in FORMATS), "ELP_net", "ELP_net_naive", "p_policy", "L_local"]
    return {c: cb.rate(labeled[c], labeled["task_id"]) for c in cols if c in labeled.columns}


def protocol_numbers(*, labeled: pd.DataFrame, hint_audit: dict, corr: dict, training: dict, mining: dict,
                     base_rollouts: pd.DataFrame, selection: dict, teacher_failures: pd.DataFrame,
                     confidence: float = 0.95, n_bootstrap: int = 2000, seed: int = 0) -> dict:  # fmt: skip
    """The numbers that say whether the study's comparisons are sound: the hint audit, gains per
    format, the gate's baselines, the training plan (skipped runs, compute) and expert errors."""
    eval_errors = base_rollouts.drop_duplicates(["suite", "task_id", "snapshot_id"])["expert_error"]
    return {
        "hint_audit": {k: hint_audit.get(k) for k in ("n", "n_tasks", "diagnoses_naming_action",
                                                      "hint_action_accuracy", "demo_action_accuracy",
                                                      "majority_accuracy", "method", "reason")},
        "gains": gain_numbers(labeled, confidence, n_bootstrap, seed),
        "gate": {"rho": num(corr.get("rho")), "rho_ci": corr.get("rho_ci"), "p_value": num(corr.get("p_value")),
                 "n": corr.get("n"), "baselines": corr.get("baselines"), "partial_rho": corr.get("partial_rho"),
                 "per_route": corr.get("per_route")},
        "training": {k: training.get(k) for k in ("budget", "epochs", "optimizer_steps", "b2_all_compute_ratio",
                                                  "skipped_runs", "equal_budgets", "heldout_leaks")},
        "selection_skipped": selection.get("skipped"),
        "teacher_failures": {str(k): int(v) for k, v in teacher_failures["failure_kind"].value_counts().items()}
        if len(teacher_failures) else {},
        "expert_errors": {
            "phase0_A": {k: v for k, v in mining.get("A", {}).items() if k.startswith("expert_error")},
            "phase0_B": {k: v for k, v in mining.get("B", {}).items() if k.startswith("expert_error")},
            "phase1": {"expert_rollouts_failed": int(labeled["p_expert_errors"].sum()),
                       "of_which_impossible": int(labeled["p_expert_impossible"].sum())},
            "phase3_starts": {str(k): int(v) for k, v in eval_errors.dropna().value_counts().items()},
        },
    }  # fmt: skip


def _acc(a: dict | None) -> str:
    return "n/a" if not a else f"{_f(a.get('p'))} {_ci(a.get('lo'), a.get('hi'))} (n = {a.get('n')})"


def protocol_markdown(p: dict) -> list[str]:
    h, g, t = p["hint_audit"], p["gate"], p["training"]
    lines = ["", "## Protocol checks", ""]
    lines.append(f"- Hint audit ({h.get('n')} diagnoses, {h.get('n_tasks')} tasks): {h.get('diagnoses_naming_action')} "
                 f"name or paraphrase an action; action predicted from the hint {_acc(h.get('hint_action_accuracy'))}, "
                 f"from the demo patch {_acc(h.get('demo_action_accuracy'))}, majority class "
                 f"{_acc(h.get('majority_accuracy'))}" + (f" ({h['reason']})" if h.get("reason") else ""))  # fmt: skip
    gains = p["gains"]
    lines.append("- Mean gain_net per format (vs its own placebo; cluster bootstrap over tasks): " + ", ".join(
        f"{m} {_f(gains[f'gain_net_{m}']['value'])} {_ci(gains[f'gain_net_{m}']['lo'], gains[f'gain_net_{m}']['hi'])}"
        for m in FORMATS if f"gain_net_{m}" in gains))  # fmt: skip
    if "ELP_net" in gains and "ELP_net_naive" in gains:
        e, nv = gains["ELP_net"], gains["ELP_net_naive"]
        lines.append(f"- ELP_net cross-fitted {_f(e['value'])} {_ci(e['lo'], e['hi'])} vs the naive max "
                     f"{_f(nv['value'])} {_ci(nv['lo'], nv['hi'])} (n = {e['n']} snapshots, {e['n_clusters']} tasks)")
    base = g.get("baselines") or {}
    ci = g.get("rho_ci") or [None, None]
    lines.append(f"- Gate (Phase 1B, n = {g.get('n')}): rho(ELP_net, delta) {_f(g.get('rho'))} {_ci(*ci)}; trivial "
                 "predictors: " + ", ".join(f"{k} {_f(v.get('rho'))} {_ci(*(v.get('rho_ci') or [None, None]))}"
                                           for k, v in base.items())
                 + f"; partial rho given p_policy {_f((g.get('partial_rho') or {}).get('rho'))} "
                 + _ci(*((g.get("partial_rho") or {}).get("rho_ci") or [None, None])))  # fmt: skip
    routes = g.get("per_route") or {}
    if routes:
        lines.append("- rho per route: " + ", ".join(f"{r} {_f(v.get('rho'))} (n = {v.get('n')})" for r, v in routes.items()))
    lines.append(f"- Training (Phase 2): K = {t.get('budget')} examples, {t.get('epochs')} epochs, "
                 f"{t.get('optimizer_steps')} optimizer steps per budgeted run; B2_all trains "
                 f"{_f(t.get('b2_all_compute_ratio'), 1)}x their compute; equal budgets: {t.get('equal_budgets')}")
    skipped = t.get("skipped_runs") or {}
    lines.append("- Runs not trained: " + ("none" if not skipped else "; ".join(f"{r} ({why})" for r, why in skipped.items())))
    if p.get("selection_skipped"):
        lines.append(f"- Phase 5 not run: {p['selection_skipped']}")
    tf = p.get("teacher_failures") or {}
    lines.append(f"- Teacher failures (phase 1, after retries; recorded, never replaced): "
                 + (", ".join(f"{k} {v}" for k, v in sorted(tf.items())) if tf else "none"))
    ee = p["expert_errors"]
    lines.append(f"- Expert errors: phase 0 A {ee['phase0_A'] or 'none'}, B {ee['phase0_B'] or 'none'}; phase 1 "
                 f"{ee['phase1']['expert_rollouts_failed']} expert rollouts stopped ({ee['phase1']['of_which_impossible']} "
                 f"mission impossible); phase 3 starts {ee['phase3_starts'] or 'none'}")  # fmt: skip
    return lines


def key_numbers(overall: pd.DataFrame, thresholds: dict, corr: dict, predictor: dict, sel: dict) -> dict:
    base = overall[overall["model_id"] == BASE_MODEL_ID]
    b = base.iloc[0] if len(base) else None
    out = {
        "student_success": None if b is None else {
            "p": num(b["success_rate"]), "lo": num(b["success_lo"]), "hi": num(b["success_hi"]), "n": int(b["n"]),
            "n_tasks": int(b["n_tasks"]) if "n_tasks" in base.columns and num(b["n_tasks"]) is not None else None},
        "n_labeled": thresholds.get("n"),
        "quadrant_sizes": thresholds.get("sizes"),
        "U_threshold": num(thresholds.get("U_threshold")), "L_threshold": num(thresholds.get("L_threshold")),
        "n_microtrained": corr.get("n"),
        "predictor": {k: predictor.get(k) for k in ("n_snapshots", "n_tasks", "n_folds")},
        "selection_k": sel.get("k"), "selection_candidates": sel.get("n_candidates"), "selection_format": sel.get("format"),
    }  # fmt: skip
    return out


def build_summary(*, correlation: dict, transfer: pd.DataFrame, retention: pd.DataFrame, overall: pd.DataFrame,
                  thresholds: dict, predictor: dict, selection: dict, retention_threshold: float,
                  alpha: float = 0.05, inputs: dict | None = None, protocol: dict | None = None,
                  trained_runs: Sequence[str] | None = None) -> dict:  # fmt: skip
    trained = RUN_IDS if trained_runs is None else tuple(trained_runs)
    checks = [
        check_cpt(correlation),
        check_beyond_headroom(correlation),
        check_transfer_diagonal(transfer, alpha, tuple(r for r in QUADRANT_RUNS if r in trained)),
        check_retention(retention, retention_threshold, trained),
        check_predictor(predictor),
        check_selection_predictor(selection, alpha),
        check_oracle_vs_learnability(selection, alpha),
    ]
    return {"checks": checks, "key_numbers": key_numbers(overall, thresholds, correlation, predictor, selection),
            "protocol": protocol, "settings": {"retention_threshold": retention_threshold, "alpha": alpha},
            "inputs": inputs or {}}  # fmt: skip


MARK = {True: "✔", False: "✘", None: "—"}


def summary_markdown(summary: dict) -> str:
    lines = ["# Study summary", "",
             "Each check is computed from the phase outputs (✔ held, ✘ did not hold, — undetermined).", ""]  # fmt: skip
    for i, c in enumerate(summary["checks"]):
        lines.append(f"- {MARK[c['held']]} **({'abcdefgh'[i]}) {c['claim']}**: {c['detail']}")
    k = summary["key_numbers"]
    s = k.get("student_success") or {}
    lines += ["", "## Key numbers", ""]
    if s:
        lines.append(f"- Student (base) success on eval tasks: {_f(s.get('p'))} {_ci(s.get('lo'), s.get('hi'))}, "
                     f"n = {s.get('n')} rollouts" + (f" on {s['n_tasks']} tasks" if s.get("n_tasks") else ""))  # fmt: skip
    sizes = k.get("quadrant_sizes") or {}
    lines.append(f"- Labeled snapshots: {k.get('n_labeled')}; quadrant sizes "
                 + ", ".join(f"{_short(q)} {n}" for q, n in sizes.items())
                 + f" (high = U > {_f(k.get('U_threshold'))}, L_local > {_f(k.get('L_threshold'))})")  # fmt: skip
    lines.append(f"- Micro-trained snapshots (Phase 1B): {k.get('n_microtrained')}")
    p = k.get("predictor") or {}
    lines.append(f"- Predictor (Phase 4): {p.get('n_snapshots')} snapshots, {p.get('n_tasks')} tasks, "
                 f"{p.get('n_folds')} task-grouped folds")  # fmt: skip
    lines.append(f"- Selection (Phase 5): K = {k.get('selection_k')} of {k.get('selection_candidates')} candidates, "
                 f"format {k.get('selection_format')}")  # fmt: skip
    if summary.get("protocol"):
        lines += protocol_markdown(summary["protocol"])
    st = summary.get("settings", {})
    lines += ["", f"Settings: retention threshold {st.get('retention_threshold')}, alpha {st.get('alpha')} (transfer "
              "diagonal, selection comparisons). Verdicts rest on intervals or (Holm-adjusted) p-values, never on two "
              "point estimates (reporting module docstring).", ""]
    return "\n".join(lines)


def _read_failures(path) -> pd.DataFrame:
    """phase1/teacher_failures.parquet (no rows when every snapshot got advice)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"teacher failures: expected phase output {p} does not exist")
    df = pd.read_parquet(p)
    if len(df) and "failure_kind" not in df.columns:
        raise ValueError(f"teacher failures {p} lacks column 'failure_kind' (re-run phase 1)")
    return df


def summary_from_files(*, correlation, transfer, retention, overall, thresholds, predictor, selection,
                       labeled, hint_audit, training, mining, base_rollouts, teacher_failures,
                       retention_threshold: float, out_json,
                       out_md, alpha: float = 0.05, confidence: float = 0.95, n_bootstrap: int = 2000,
                       seed: int = 0) -> dict:  # fmt: skip
    inputs = {"correlation": correlation, "transfer": transfer, "retention": retention, "overall": overall,
              "thresholds": thresholds, "predictor": predictor, "selection": selection, "labeled": labeled,
              "hint_audit": hint_audit, "training": training, "mining": mining, "base_rollouts": base_rollouts,
              "teacher_failures": teacher_failures}  # fmt: skip
    corr = read_report(correlation, ("rho", "rho_threshold"), "CPT correlation report")
    sel = read_selection(selection)
    train = read_report(training, ("runs", "skipped_runs"), "training summary")
    protocol = protocol_numbers(
        labeled=read_table(labeled, LABELED_COLUMNS, "labeled snapshots"),
        hint_audit=read_report(hint_audit, ("n", "diagnoses_naming_action"), "hint audit"), corr=corr, training=train,
        mining=read_report(mining, ("A", "B"), "mining summary"),
        base_rollouts=read_table(base_rollouts, ("suite", "task_id", "snapshot_id", "expert_error"), "base rollouts"),
        selection=sel, teacher_failures=_read_failures(teacher_failures), confidence=confidence,
        n_bootstrap=n_bootstrap, seed=seed,
    )  # fmt: skip
    summary = build_summary(
        correlation=corr,
        transfer=read_table(transfer, TRANSFER_COLUMNS, "transfer matrix"),
        retention=read_table(retention, RETENTION_COLUMNS, "retention results"),
        overall=read_table(overall, OVERALL_COLUMNS, "overall task results"),
        thresholds=read_report(thresholds, ("U_threshold", "L_threshold"), "quadrant thresholds"),
        predictor=read_predictor(predictor), selection=sel, retention_threshold=retention_threshold, alpha=alpha,
        inputs={k: str(v) for k, v in inputs.items()}, protocol=protocol, trained_runs=sorted(train["runs"]),
    )  # fmt: skip
    write_json(summary, out_json)
    with atomic_path(out_md) as tmp:
        tmp.write_text(summary_markdown(summary))
    for c in summary["checks"]:
        log.info("%s %s: %s", MARK[c["held"]], c["id"], c["detail"])
    return summary


# ------------------------------------------------------------------------------------ figures
QUADRANT_COLORS = dict(zip(QUADRANTS, ("#55a868", "#dd8452", "#8c8c8c", "#4c72b0")))
FORMAT_MARKERS = {"demo": "o", "hint": "s", "contrast": "^"}
METHOD_COLORS = {"RANDOM": "#8c8c8c", "ENTROPY": "#dd8452", "LEARNABILITY": "#8172b3", "PREDICTOR": "#4c72b0",
                 "ORACLE": "#55a868"}  # fmt: skip


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_not_run(title: str, reason: str):
    """The figure of a part of the study that did not run: its title and the reason, as text."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    ax.text(0.5, 0.5, f"Not run: {reason}", ha="center", va="center", wrap=True, fontsize=10)
    return fig


def _save(fig, path) -> Path:
    plt = _plt()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def _n_text(ns: Iterable) -> str:
    ns = sorted({int(n) for n in ns if num(n) is not None})
    if not ns:
        return "n/a"
    return str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"


def _diverging_norm(values: Sequence[float]):
    from matplotlib.colors import TwoSlopeNorm

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    m = float(np.max(np.abs(v))) if len(v) else 1.0
    m = m if m > 0 else 1.0
    return TwoSlopeNorm(vmin=-m, vcenter=0.0, vmax=m)


def plot_landscape(labeled: pd.DataFrame, thresholds: dict, source: str = "labeled snapshots"):
    plt = _plt()
    df = labeled[np.isfinite(labeled["U"].astype(float)) & np.isfinite(labeled["L_local"].astype(float))]
    if df.empty:
        raise ValueError(f"{source}: no snapshot with finite U and L_local to plot")
    for k in ("U_threshold", "L_threshold"):
        if num(thresholds.get(k)) is None:
            raise ValueError(f"quadrant thresholds lack a finite {k}")
    ut, lt = float(thresholds["U_threshold"]), float(thresholds["L_threshold"])
    fig, ax = plt.subplots(figsize=(7, 5.2))
    sc = ax.scatter(df["U"], df["L_local"], c=df["ELP_net"], cmap="RdBu_r", norm=_diverging_norm(df["ELP_net"]),
                    s=30, alpha=0.8, edgecolors="k", linewidths=0.3)  # fmt: skip
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label("ELP_net = max_m p_m - p_placebo (success prob.)")
    ax.axvline(ut, color="k", ls="--", lw=0.9)
    ax.axhline(lt, color="k", ls="--", lw=0.9)
    ax.margins(0.08)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    sizes = df["quadrant"].value_counts() if "quadrant" in df.columns else pd.Series(dtype=int)
    spots = {QUADRANTS[0]: (x1, y1, "right", "top"), QUADRANTS[1]: (x1, y0, "right", "bottom"),
             QUADRANTS[2]: (x0, y0, "left", "bottom"), QUADRANTS[3]: (x0, y1, "left", "top")}  # fmt: skip
    for q, (x, y, ha, va) in spots.items():
        ax.text(x, y, f" {q} \n n={int(sizes.get(q, 0))} ", ha=ha, va=va, fontsize=8, color=QUADRANT_COLORS[q],
                fontweight="bold")  # fmt: skip
    ax.set_xlabel("U: student entropy over valid actions (nats)")
    ax.set_ylabel("L_local = p_force - p_policy (success prob.)")
    ax.set_title(f"Teachability landscape (n={len(df)} snapshots)\n"
                 f"dashed: thresholds U > {ut:.3f} nats, L_local > {lt:.3f}", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def _annotated_heatmap(ax, mat: pd.DataFrame, labels: pd.DataFrame, norm, title: str):
    import seaborn as sns

    sns.heatmap(mat.astype(float), ax=ax, cmap="RdBu_r", norm=norm, annot=labels.to_numpy(), fmt="",
                cbar=False, linewidths=0.5, linecolor="white", annot_kws={"fontsize": 8})  # fmt: skip
    ax.set_title(title, fontsize=10)


def _cell_label(r) -> str:
    return f"{float(r['delta_success']):+.3f}\n[{_f(r['lo'], 2)}, {_f(r['hi'], 2)}]\nn={int(r['n'])}"


def plot_in_quadrant_heatmap(transfer: pd.DataFrame, source: str = "transfer matrix"):
    plt = _plt()
    cells = _in_quadrant(transfer)
    if cells.empty:
        raise ValueError(f"{source} has no quadrant x format run evaluated on its own quadrant")
    mat = pd.DataFrame(np.nan, index=list(QUADRANTS), columns=list(FORMATS))
    lab = pd.DataFrame("missing", index=mat.index, columns=mat.columns)
    for _, r in cells.iterrows():
        mat.loc[r["quadrant"], r["format"]] = r["delta_success"]
        lab.loc[r["quadrant"], r["format"]] = _cell_label(r)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    norm = _diverging_norm(mat.to_numpy().ravel())
    _annotated_heatmap(ax, mat, lab, norm,
                       f"In-quadrant Δ success vs base (run {{Q}}_{{format}} on held-out {{Q}} snapshots)\n"
                       f"cells: Δ [interval], n = rollouts ({_n_text(cells['n'])}); {len(cells)} of 12 runs")  # fmt: skip
    ax.set_xlabel("supervision format")
    ax.set_ylabel("trained and evaluated on quadrant")
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap="RdBu_r"), ax=ax, label="Δ success (model - base, prob.)")
    fig.tight_layout()
    return fig


def plot_transfer_matrix(transfer: pd.DataFrame, source: str = "transfer matrix"):
    """One panel per format (quadrant runs: trained-on x evaluated-on) and one panel for the
    baselines (B1_uniform, B2_all), one shared colour scale."""
    plt = _plt()
    from matplotlib.cm import ScalarMappable

    evals = [q for q in QUADRANTS if q in set(transfer["evaluated_on"])]
    evals += sorted(set(transfer["evaluated_on"]) - set(evals))
    if not evals:
        raise ValueError(f"{source} has no evaluated_on quadrant")
    panels = []
    for f in FORMATS:
        rows = transfer[transfer["model_id"].isin([f"{q}_{f}" for q in QUADRANTS])]
        panels.append((f"format: {f}", rows, "trained_on", [q for q in QUADRANTS]))
    base_rows = transfer[transfer["model_id"].isin(BASELINE_RUNS)]
    panels.append(("baselines (demo format)", base_rows, "model_id", list(BASELINE_RUNS)))
    panels = [p for p in panels if not p[1].empty]
    if not panels:
        raise ValueError(f"{source} has no row of a Phase 2 run")
    norm = _diverging_norm(pd.concat([p[1] for p in panels])["delta_success"])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1, 4.6), squeeze=False)
    for ax, (title, rows, key, index) in zip(axes[0], panels):
        mat = pd.DataFrame(np.nan, index=index, columns=evals)
        lab = pd.DataFrame("", index=index, columns=evals)
        for _, r in rows.iterrows():
            mat.loc[r[key], r["evaluated_on"]] = r["delta_success"]
            lab.loc[r[key], r["evaluated_on"]] = f"{float(r['delta_success']):+.2f}\nn={int(r['n'])}"
        mat.index = [_short(i) for i in index]
        mat.columns = [_short(c) for c in evals]
        _annotated_heatmap(ax, mat, lab, norm, f"{title} ({rows['model_id'].nunique()} runs)")
        ax.set_xlabel("evaluated on (held-out snapshots)")
        ax.set_ylabel("trained on" if key == "trained_on" else "run")
    fig.colorbar(ScalarMappable(norm=norm, cmap="RdBu_r"), ax=list(axes[0]), label="Δ success (model - base, prob.)",
                 shrink=0.8)  # fmt: skip
    fig.suptitle(f"Transfer matrix: Δ success vs base per (trained-on, evaluated-on) quadrant; "
                 f"n = rollouts per cell ({_n_text(transfer['n'])})", fontsize=10)  # fmt: skip
    return fig


def frontier_points(overall: pd.DataFrame, retention: pd.DataFrame, models: Sequence[str] = RUN_IDS) -> pd.DataFrame:
    """One row per Phase 2 run with gain vs base and retention drop (Phase 3's paired intervals
    over tasks), and ``pareto``."""
    g = gain_vs_base(overall)
    df = g.merge(retention[["model_id", "drop", "drop_lo", "drop_hi", "n"]].rename(columns={"n": "n_retention"}),
                 on="model_id", how="inner")  # fmt: skip
    df = df[df["model_id"].isin(models)].reset_index(drop=True)
    df["pareto"] = pareto_mask(df["drop"], df["gain"])
    return df


def _err(v, lo, hi) -> list[list[float]]:
    v, lo, hi = (np.asarray(x, float) for x in (v, lo, hi))
    return [np.where(np.isfinite(lo), v - lo, 0.0).tolist(), np.where(np.isfinite(hi), hi - v, 0.0).tolist()]


def plot_reliability_retention(overall: pd.DataFrame, retention: pd.DataFrame, confidence: float = 0.95,
                               retention_threshold: float | None = None, source: str = "phase 3 results"):  # fmt: skip
    plt = _plt()
    pts = frontier_points(overall, retention)
    runs = set(pts["model_id"])
    pts = pts[np.isfinite(pts["gain"].astype(float)) & np.isfinite(pts["drop"].astype(float))]
    if pts.empty:  # a reported reason (no run trained, retention undefined) is shown; else an error
        reasons = retention.loc[retention["model_id"].isin(runs), "reason"].dropna().unique() \
            if "reason" in retention.columns else []  # fmt: skip
        if not runs or len(reasons):
            why = "; ".join(map(str, reasons)) or "no Phase 2 run was trained (phase2/plan.json)"
            return plot_not_run("Reliability vs retention (Phase 2 runs)", why)
        raise ValueError(f"{source}: no Phase 2 run with both a finite gain vs base and a retention drop")
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for _, r in pts.iterrows():
        q, f, kind = _run_parts(r["model_id"])
        color = QUADRANT_COLORS.get(q, "k" if kind == "all" else "#8172b3")
        marker = FORMAT_MARKERS[f] if kind == "quadrant" else ("*" if kind == "all" else "D")
        ax.errorbar(r["drop"], r["gain"], xerr=np.array(_err([r["drop"]], [r["drop_lo"]], [r["drop_hi"]])),
                    yerr=np.array(_err([r["gain"]], [r["gain_lo"]], [r["gain_hi"]])), fmt=marker, color=color,
                    ms=8 if kind != "all" else 12, elinewidth=0.8, capsize=2, alpha=0.85)  # fmt: skip
        if r["pareto"]:  # colour + marker identify every run; only the frontier's are named
            ax.annotate(r["model_id"], (r["drop"], r["gain"]), xytext=(5, 5), textcoords="offset points", fontsize=7)
    front = pts[pts["pareto"]].sort_values("drop")
    ax.plot(front["drop"], front["gain"], "-", color="#c44e52", lw=1.5, label=f"Pareto frontier ({len(front)} runs)")
    ax.axhline(0, color="grey", lw=0.7)
    ax.axvline(0, color="grey", lw=0.7)
    if retention_threshold is not None:
        ax.axvline(retention_threshold, color="#c44e52", ls=":", lw=1, label=f"retention threshold {retention_threshold}")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=QUADRANT_COLORS[q], marker="o", ls="", label=_short(q) + " " + q[3:]) for q in QUADRANTS]
    handles += [Line2D([], [], color="grey", marker=m, ls="", label=f) for f, m in FORMAT_MARKERS.items()]
    handles += [Line2D([], [], color="#8172b3", marker="D", ls="", label="B1_uniform"),
                Line2D([], [], color="k", marker="*", ls="", ms=10, label="B2_all")]  # fmt: skip
    h2, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + h2, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xlabel("retention drop on base-solved tasks (base - model success, prob.; lower is better)")
    ax.set_ylabel("overall success gain vs base (prob.)")
    ax.set_title(f"Reliability vs retention, {len(pts)} Phase 2 runs\n"
                 f"gain: n = {_n_text(pts['n'])} rollouts per model (base {_n_text(pts['n_base'])}); "
                 f"retention: n = {_n_text(pts['n_retention'])}; bars: {round(confidence * 100)}% intervals "
                 f"(paired bootstrap over tasks)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def plot_selection_frontier(sel: dict, source: str = "selection summary"):
    if sel.get("skipped"):
        return plot_not_run(f"Selection at K={sel.get('k')}", sel["skipped"])
    plt = _plt()
    tab = selection_table(sel)
    tab = tab[tab["method"] != BASE_MODEL_ID]
    ok = np.isfinite(tab["gain"].astype(float)) & np.isfinite(tab["retention_drop"].astype(float))
    skipped = tab.loc[~ok, "method"].tolist()
    tab = tab[ok]
    if tab.empty:  # retention undefined for every method (its reason is in the summary): say so
        reasons = {(m.get("retention") or {}).get("reason") for m in sel["methods"].values()} - {None}
        if reasons:
            return plot_not_run(f"Selection at K={sel.get('k')}: gain vs retention", "; ".join(sorted(reasons)))
        raise ValueError(f"{source}: no selection method with both a reliability gain and a retention drop")
    fig, ax = plt.subplots(figsize=(7, 5))
    for _, r in tab.iterrows():
        color = METHOD_COLORS.get(r["method"], "#937860")
        ax.errorbar(r["retention_drop"], r["gain"],
                    xerr=np.array(_err([r["retention_drop"]], [r["drop_lo"]], [r["drop_hi"]])),
                    yerr=np.array(_err([r["gain"]], [r["gain_lo"]], [r["gain_hi"]])), fmt="o", color=color,
                    ms=9, capsize=3, elinewidth=1,
                    label=f"{r['method']}: mean true ELP {_f(r['mean_true_elp'])}, "
                          f"oracle overlap {_f(r['oracle_overlap'], 2)}")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.7)
    ax.axvline(0, color="grey", lw=0.7)
    ax.set_xlabel("retention drop on base-solved tasks (prob.; lower is better)")
    ax.set_ylabel("reliability gain: success - base success (prob.)")
    b = sel["base"]["success"]
    title = (f"Selection at K={sel['k']}: gain vs retention per method\n"
             f"n = {_n_text(tab['success_n'])} rollouts on {_n_text(tab['n_tasks'])} tasks per model; retention "
             f"n = {_n_text(tab['retention_n'])}; base success {_f(b.get('p'))} (n={b.get('n')}); "
             f"bars: bootstrap over tasks")  # fmt: skip
    if skipped:
        title += f"; not plotted (missing numbers): {', '.join(skipped)}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax.margins(0.25)
    fig.tight_layout()
    return fig


def plot_cpt_vs_micro(micro: pd.DataFrame, corr: dict, source: str = "micro-training results"):
    plt = _plt()
    df = micro[np.isfinite(micro["ELP_net"].astype(float)) & np.isfinite(micro["delta"].astype(float))]
    if df.empty:
        raise ValueError(f"{source}: no snapshot with finite ELP_net and delta to plot")
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for q in [*QUADRANTS, *sorted(set(df["quadrant"]) - set(QUADRANTS))]:
        sub = df[df["quadrant"] == q]
        if len(sub):  # both axes are discrete (multiples of 1/n rollouts): marker area = snapshots at a point
            pts = sub.groupby(["ELP_net", "delta"]).size().reset_index(name="count")
            ax.scatter(pts["ELP_net"], pts["delta"], s=30 * pts["count"], alpha=0.55,
                       color=QUADRANT_COLORS.get(q, "#937860"), edgecolors="k", linewidths=0.3,
                       label=f"{q} (n={len(sub)})")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.7)
    ax.axvline(0, color="grey", lw=0.7)
    ci = corr.get("rho_ci") or [None, None]
    conf = num(corr.get("confidence"))
    rho_txt = (f"Spearman ρ = {_f(corr.get('rho'))} "
               f"[{round(conf * 100) if conf else '?'}% CI {_f(ci[0])}, {_f(ci[1])}], "
               f"p = {_f(corr.get('p_value'), 4)} (one-sided permutation), n = {corr.get('n')}")  # fmt: skip
    if num(corr.get("rho")) is None and corr.get("reason"):
        rho_txt += f"\n({corr['reason']})"
    ax.set_title(f"CPT vs micro-training (n={len(df)} snapshots; marker area = snapshots at a point)\n{rho_txt}",
                 fontsize=9)
    ax.set_xlabel("ELP_net (CPT: best patch - placebo, success prob.)")
    ax.set_ylabel("micro-training Δ = success after - before (prob.)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", ms=6, alpha=0.7, mec="k", mew=0.3, color=c.get_facecolor()[0],
                      label=c.get_label()) for c in ax.collections]  # fmt: skip
    ax.legend(handles=handles, fontsize=7)
    fig.tight_layout()
    return fig


def figures_from_files(*, labeled, thresholds, micro, correlation, transfer, overall, retention, selection, out_dir,
                       confidence: float = 0.95, retention_threshold: float | None = None) -> list[Path]:  # fmt: skip
    """Reads every input (errors name the file) and writes ``FIGURES`` under ``out_dir``."""
    lab = read_table(labeled, LABELED_COLUMNS, "labeled snapshots")
    thr = read_report(thresholds, ("U_threshold", "L_threshold"), "quadrant thresholds")
    mic = read_table(micro, MICRO_COLUMNS, "micro-training results")
    corr = read_report(correlation, ("rho", "n"), "CPT correlation report")
    tr = read_table(transfer, TRANSFER_COLUMNS, "transfer matrix")
    ov = read_table(overall, OVERALL_COLUMNS, "overall task results")
    ret = read_table(retention, RETENTION_COLUMNS, "retention results")
    sel = read_selection(selection)
    out = Path(out_dir)
    figs = {
        "landscape.png": lambda: plot_landscape(lab, thr, f"labeled snapshots {labeled}"),
        "in_quadrant_heatmap.png": lambda: plot_in_quadrant_heatmap(tr, f"transfer matrix {transfer}"),
        "transfer_matrix.png": lambda: plot_transfer_matrix(tr, f"transfer matrix {transfer}"),
        "reliability_retention_frontier.png": lambda: plot_reliability_retention(
            ov, ret, confidence, retention_threshold, f"phase 3 results {overall}, {retention}"),
        "selection_frontier.png": lambda: plot_selection_frontier(sel, f"selection summary {selection}"),
        "cpt_vs_microtraining.png": lambda: plot_cpt_vs_micro(mic, corr, f"micro-training results {micro}"),
    }  # fmt: skip
    assert set(figs) == set(FIGURES)
    return [_save(make(), out / name) for name, make in figs.items()]
