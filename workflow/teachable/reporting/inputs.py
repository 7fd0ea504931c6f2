"""Reading the phase outputs the report uses, and the small number helpers every part shares."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..constants import (
    BASE_MODEL_ID,
    FIGURE_CATEGORIES,
    FORMATS,
    QUADRANTS,
    RUN_IDS,
    TABLES,
)
from ..documents import SELECTION_SUMMARY, TRAINING_RESULT
from ..io import read_doc, read_table
from ..schemas import TEACHER_FAILURES

log = logging.getLogger(__name__)

FIGURES = tuple(f"{name}.png" for name in FIGURE_CATEGORIES)
TABLE_FILES = tuple(f"{t}.{ext}" for t in TABLES for ext in ("csv", "md"))
QUADRANT_RUNS = tuple(f"{q}_{f}" for q in QUADRANTS for f in FORMATS)
DPI = 120

# ------------------------------------------------------------------------------------ reading
def read_input(path, table, what: str, allow_empty: bool = False) -> pd.DataFrame:
    """A declared phase output (``schemas``; errors name the file); without rows it is an error
    (nothing to report) unless ``allow_empty``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what}: expected phase output {p} does not exist")
    df = read_table(p, table)
    if df.empty and not allow_empty:
        raise ValueError(f"{what} {p} has no rows: nothing to report")
    return df


def read_report(path, doc) -> dict:
    """A declared JSON phase output (``documents``): ValueError naming the file when it is not
    a JSON object with the declared keys."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{doc.name}: expected phase output {p} does not exist")
    return read_doc(p, doc)


def read_selection(path) -> dict:
    """phase5/selection_summary.json; a Phase 5 that the plan skipped carries ``skipped`` (the
    reason) and no methods, and every selection figure, table and check reports that reason."""
    sel = read_report(path, SELECTION_SUMMARY)
    if sel.get("skipped"):
        return sel
    if "base" not in sel:
        raise ValueError(f"phase 5 selection summary {path} lacks keys ['base']")
    if not sel["methods"]:
        raise ValueError(f"phase 5 selection summary {path} has no methods: nothing to report")
    return sel


def read_predictor(path) -> dict:
    res = read_report(path, TRAINING_RESULT)
    if not res["targets"]:
        raise ValueError(f"phase 4 training result {path} has no targets: nothing to report")
    return res


def read_failures(path) -> pd.DataFrame:
    """phase1/teacher_failures.parquet (no rows when every snapshot got advice)."""
    return read_input(path, TEACHER_FAILURES, "teacher failures", allow_empty=True)


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


def nan_of(x: Any) -> float:
    v = num(x)
    return math.nan if v is None else v


def short(q: str) -> str:
    """``Q1_highU_highL`` -> ``Q1``; other ids unchanged."""
    return q.split("_")[0] if q in QUADRANTS else q


def run_parts(model_id: str) -> tuple[str | None, str | None, str]:
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


def model_order(ids: Iterable[str]) -> list[str]:
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


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool | None:
    if any(num(v) is None for v in (*a, *b)):
        return None
    return bool(max(a[0], b[0]) <= min(a[1], b[1]))


def in_quadrant(transfer: pd.DataFrame) -> pd.DataFrame:
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


def fmt(x: Any, digits: int = 3) -> str:
    v = num(x)
    return "n/a" if v is None else f"{v:.{digits}f}"


def fmt_ci(lo: Any, hi: Any, digits: int = 3) -> str:
    return f"[{fmt(lo, digits)}, {fmt(hi, digits)}]"


def cost_text(cost: dict) -> str:
    """A selection signal's cost in words (``selection_costs.signal_cost``)."""
    return (f"{cost.get('student_rollouts')} student rollouts ({fmt(cost.get('student_rollouts_per_candidate'), 1)} "
            f"per candidate), {cost.get('teacher_calls')} teacher calls, {cost.get('forward_passes')} forward passes")


def n_text(ns: Iterable) -> str:
    ns = sorted({int(n) for n in ns if num(n) is not None})
    if not ns:
        return "n/a"
    return str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"


