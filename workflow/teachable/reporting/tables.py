"""The report's tables (CSV + Markdown under tables/), read from the phase outputs."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..constants import (
    BASE_MODEL_ID,
    FORMATS,
    QUADRANTS,
    SELECTION_COST_KEYS as COST_COLUMNS,
    SELECTION_METHODS,
    TABLES,
)
from ..io import atomic_path
from ..schemas import LABELED, PHASE3_TABLES
from .inputs import (
    gain_vs_base,
    in_quadrant,
    intervals_overlap,
    model_order,
    nan_of,
    num,
    read_input,
    read_predictor,
    read_selection,
)

log = logging.getLogger(__name__)

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
    "family_metrics": PHASE3_TABLES["family"].names,
    "predictor_metrics": [
        "target", "kind", "model", "inputs", "n", "r2", "r2_lo", "r2_hi", "spearman", "spearman_lo",
        "spearman_hi", "spearman_p", "accuracy", "accuracy_lo", "accuracy_hi", "majority_accuracy", "k",
        "precision_at_k", "ndcg_at_k", "note",
    ],
    "selection_summary": [
        "method", "k", "value", "value_lo", "value_hi", "value_n", "oracle_overlap", "success", "success_lo",
        "success_hi", "success_n", "gain", "gain_lo", "gain_hi", "retention_drop", "drop_lo", "drop_hi",
        "retention_n", "n_tasks", *COST_COLUMNS,
    ],
}  # fmt: skip

# ------------------------------------------------------------------------------------ tables
def quadrant_summary(labeled: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per quadrant (and ``all``): n, mean U, mean L_local, mean ELP_net with a t interval, route
    counts (route_net)."""
    from ..stats import mean_interval

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
    cells = in_quadrant(transfer)
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
            "intervals_overlap": intervals_overlap((b["lo"], b["hi"]), (r["lo"], r["hi"])) if r is not None else None,
        })  # fmt: skip
    out = pd.DataFrame(rows, columns=TABLE_COLUMNS["best_supervision"])
    return out.astype({"best_n": "Int64", "runner_up_n": "Int64"})


def main_results(overall: pd.DataFrame, retention: pd.DataFrame, stuckness: pd.DataFrame) -> pd.DataFrame:
    """Per model of the Phase 3 tables: success, gain vs base, retention drop, loop and invalid
    rate, each with Phase 3's interval over tasks."""
    gains = gain_vs_base(overall).set_index("model_id")
    ov, ret, stk = (t.set_index("model_id") for t in (overall, retention, stuckness))
    rows = []
    for m in model_order(overall["model_id"]):
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
        "r2": nan_of(m.get("r2")), "r2_lo": nan_of(m.get("r2_lo")), "r2_hi": nan_of(m.get("r2_hi")),
        "spearman": nan_of(m.get("spearman")), "spearman_lo": nan_of(m.get("spearman_lo")),
        "spearman_hi": nan_of(m.get("spearman_hi")), "spearman_p": nan_of(m.get("spearman_p")),
        "accuracy": nan_of(m.get("accuracy")), "accuracy_lo": nan_of(m.get("lo")) if acc else math.nan,
        "accuracy_hi": nan_of(m.get("hi")) if acc else math.nan, "majority_accuracy": nan_of(m.get("majority_accuracy")),
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
            row.update(k=rk.get("k"), precision_at_k=nan_of(m.get("precision_at_k")), ndcg_at_k=nan_of(m.get("ndcg_at_k")),
                       spearman=nan_of(m.get("spearman")), spearman_p=nan_of(m.get("spearman_p")))
            rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS["predictor_metrics"]).astype({"n": "Int64", "k": "Int64"})


def _method_order(methods: Iterable[str]) -> list[str]:
    ms = list(methods)
    return [m for m in SELECTION_METHODS if m in ms] + sorted(m for m in ms if m not in SELECTION_METHODS)


def selection_table(sel: dict) -> pd.DataFrame:
    """Per selection method (and the base's success): k, the selected set's fresh value
    (gain_net of the trained format, with its interval and n rollouts per condition), oracle
    overlap, success, gain and retention drop with their intervals, and the signal's cost
    (``COST_COLUMNS``), from phase5/selection_summary.json (no row when Phase 5 was skipped)."""
    if sel.get("skipped"):
        return pd.DataFrame(columns=TABLE_COLUMNS["selection_summary"])
    b = sel["base"]["success"]
    rows = [{"method": BASE_MODEL_ID, "k": None, "value": math.nan, "value_lo": math.nan, "value_hi": math.nan,
             "value_n": None, "oracle_overlap": math.nan,
             "success": nan_of(b.get("p")), "success_lo": nan_of(b.get("lo")), "success_hi": nan_of(b.get("hi")),
             "success_n": b.get("n"), "gain": math.nan, "gain_lo": math.nan, "gain_hi": math.nan,
             "retention_drop": math.nan, "drop_lo": math.nan, "drop_hi": math.nan, "retention_n": None,
             "n_tasks": b.get("n_tasks"), **dict.fromkeys(COST_COLUMNS)}]  # fmt: skip
    for name in _method_order(sel["methods"]):
        m = sel["methods"][name]
        s, g, r = m.get("success") or {}, m.get("reliability_gain") or {}, m.get("retention") or {}
        v, cost = m.get("value") or {}, m.get("cost") or {}
        rows.append({
            "method": name, "k": sel["k"], "value": nan_of(v.get("gain_net")), "value_lo": nan_of(v.get("lo")),
            "value_hi": nan_of(v.get("hi")), "value_n": v.get("n"), **{c: cost.get(c) for c in COST_COLUMNS},
            "oracle_overlap": nan_of(m.get("oracle_overlap")), "success": nan_of(s.get("p")),
            "success_lo": nan_of(s.get("lo")), "success_hi": nan_of(s.get("hi")), "success_n": s.get("n"),
            "gain": nan_of(g.get("delta")), "gain_lo": nan_of(g.get("lo")), "gain_hi": nan_of(g.get("hi")),
            "retention_drop": nan_of(r.get("drop")), "drop_lo": nan_of(r.get("lo")), "drop_hi": nan_of(r.get("hi")),
            "retention_n": r.get("n"), "n_tasks": s.get("n_tasks"),
        })  # fmt: skip
    out = pd.DataFrame(rows, columns=TABLE_COLUMNS["selection_summary"])
    return out.astype({"k": "Int64", "value_n": "Int64", "success_n": "Int64", "retention_n": "Int64",
                       "n_tasks": "Int64", **dict.fromkeys(COST_COLUMNS, "Int64")})


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
                 transfer_source: str = "transfer matrix", family: pd.DataFrame | None = None,
                 ) -> dict[str, pd.DataFrame]:  # fmt: skip
    """The report's tables; ``family``: Phase 3's family metrics (those the family declares, e.g.
    a progression, a score, the achievements' success rates), as they are (no rows for a family
    that declares none)."""
    if family is None:
        family = pd.DataFrame(columns=TABLE_COLUMNS["family_metrics"])
    return {
        "quadrant_summary": quadrant_summary(labeled, confidence),
        "best_supervision": best_supervision(transfer, transfer_source),
        "main_results": main_results(overall, retention, stuckness),
        "family_metrics": family[TABLE_COLUMNS["family_metrics"]],
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
                      confidence: float = 0.95, family=None) -> list[Path]:  # fmt: skip
    sel = read_selection(selection)
    tables = build_tables(
        read_input(labeled, LABELED, "labeled snapshots"),
        read_input(transfer, PHASE3_TABLES["transfer"], "transfer matrix"),
        read_input(overall, PHASE3_TABLES["overall"], "overall task results"),
        read_input(retention, PHASE3_TABLES["retention"], "retention results"),
        read_input(stuckness, PHASE3_TABLES["stuckness"], "stuckness results"),
        read_predictor(predictor), sel, confidence, transfer_source=f"transfer matrix {transfer}",
        family=(read_input(family, PHASE3_TABLES["family"], "family metrics", allow_empty=True)
                if family is not None else None),
    )  # fmt: skip
    notes = {"selection_summary": f"Phase 5 not run: {sel['skipped']}"} if sel.get("skipped") else {}
    if tables["family_metrics"].empty:
        notes["family_metrics"] = "No rows: the environment family declares no metrics (no achievements)."
    return write_tables(tables, out_dir, notes)


