"""`teachable diff-runs`: are two runs of the study the same? Two results directories compared
file by file.

Tables (Parquet, CSV) are compared by content (columns, then values; floats exactly unless
``--rtol``), JSON by content with timing keys dropped (wall times, durations, dates), model
weights (``*.safetensors``) byte for byte. Logs, benchmarks, figures and reports are skipped:
they carry times. Where B is a newer version that writes more (columns added, rows of a run that
A does not have), the shared part is compared and the additions are listed.

    teachable diff-runs results/pilot /path/to/other/results/pilot

Prints one line per file (``same``, ``superset: …``, ``differs: …``, ``only in A``/``only in
B``) and the counts; exit code 1 when a shared file differs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

SKIP_SUFFIXES = {".log", ".tsv", ".png", ".html", ".md", ".txt", ".lock", ".joblib"}  # pickles: their bytes vary
SKIP_PARTS = {"logs", "benchmarks", ".snakemake"}
TIME_WORDS = ("time", "seconds", "elapsed", "wall", "date", "duration", "host", "started", "finished")
UNORDERED_KEYS = {"target_modules"}  # peft writes a set: its order follows string hashing


def is_time_key(key: str) -> bool:
    k = key.lower()
    return any(w in k for w in TIME_WORDS) or k.endswith("_s")


def strip_times(obj):
    if isinstance(obj, dict):
        return {k: sorted(v) if k in UNORDERED_KEYS and isinstance(v, list) else strip_times(v)
                for k, v in obj.items() if not is_time_key(str(k))}  # fmt: skip
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


def first_json_diff(a, b, rtol: float, path: str = "$", added: list | None = None) -> str | None:
    """The path of the first difference between two JSON values, or None; keys that only B has
    are appended to ``added`` (when given) instead."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in b or (k not in a and added is None):
                return f"{path}.{k} only in {'A' if k in a else 'B'}"
            if k not in a:
                added.append(f"{path}.{k}")
                continue
            d = first_json_diff(a[k], b[k], rtol, f"{path}.{k}", added)
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_json_diff(x, y, rtol, f"{path}[{i}]", added)
            if d:
                return d
        return None
    if isinstance(a, float) and isinstance(b, float):
        if (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rtol, abs_tol=0.0):
            return None
    elif a == b:
        return None
    return f"{path}: {a!r} vs {b!r}"


def compare_tables(a: pd.DataFrame, b: pd.DataFrame, rtol: float) -> str:
    missing = [c for c in a.columns if c not in b.columns]
    if missing:
        return f"differs: columns only in A {missing}"
    notes = []
    added = [c for c in b.columns if c not in a.columns]
    if added:
        notes.append(f"B adds columns {added}")
    timed = [c for c in a.columns if is_time_key(str(c))]
    if timed:
        notes.append(f"timing columns {timed} not compared")
    a, b = a.drop(columns=timed), b[[c for c in a.columns if c not in timed]]
    if len(b) > len(a) and len(a.columns):  # rows of ids that only B has (a run added since A)
        key = a.columns[0]
        new_ids = sorted(set(b[key].astype(str)) - set(a[key].astype(str)))
        if new_ids:
            b = b[~b[key].astype(str).isin(new_ids)]
            notes.append(f"B adds rows with {key} in {new_ids[:5]}{' …' if len(new_ids) > 5 else ''}")
    if len(a) != len(b):
        return f"differs: {len(a)} vs {len(b)} rows"
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    for c in a.columns:
        x, y = a[c], b[c]
        both_na = (x.isna() & y.isna()).to_numpy()
        if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
            bad = ~(both_na | (x == y).to_numpy() | ((x - y).abs() <= rtol * y.abs()).to_numpy())
        else:
            bad = ~both_na & (x.astype(str) != y.astype(str)).to_numpy()
        if bad.any():
            i = int(bad.nonzero()[0][0])
            return f"differs: column {c!r} in {int(bad.sum())} rows (first: row {i}, {x.iloc[i]!r} vs {y.iloc[i]!r})"
    added_notes = [n for n in notes if n.startswith("B adds")]
    return "superset: " + "; ".join(notes) if added_notes else "same" + (f" ({notes[0]})" if notes else "")


def read_json_file(p: Path):
    if p.suffix == ".jsonl":
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return json.loads(p.read_text())


def compare_file(a: Path, b: Path, rtol: float) -> str:
    if a.suffix == ".parquet":
        return compare_tables(pd.read_parquet(a), pd.read_parquet(b), rtol)
    if a.suffix == ".csv":
        return compare_tables(pd.read_csv(a), pd.read_csv(b), rtol)
    if a.suffix in (".json", ".jsonl"):
        added: list[str] = []
        d = first_json_diff(strip_times(read_json_file(a)), strip_times(read_json_file(b)), rtol, added=added)
        if d:
            return f"differs: {d}"
        return f"superset: B adds keys {added[:5]}{' …' if len(added) > 5 else ''}" if added else "same"
    return "same" if a.read_bytes() == b.read_bytes() else "differs: bytes"


def compared_files(root: Path) -> set[Path]:
    out = set()
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.is_file() and p.suffix not in SKIP_SUFFIXES and not SKIP_PARTS & set(rel.parts):
            out.add(rel)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="teachable diff-runs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="results directory A (e.g. the reference run)")
    ap.add_argument("b", type=Path, help="results directory B")
    ap.add_argument("--rtol", type=float, default=0.0, help="relative tolerance on floats (default: exact)")
    args = ap.parse_args(argv)
    for d in (args.a, args.b):
        if not d.is_dir():
            ap.error(f"{d} is not a directory")
    fa, fb = compared_files(args.a), compared_files(args.b)
    counts: dict[str, int] = {}
    for rel in sorted(fa | fb):
        if rel not in fb:
            verdict = "only in A"
        elif rel not in fa:
            verdict = "only in B"
        else:
            try:
                verdict = compare_file(args.a / rel, args.b / rel, args.rtol)
            except Exception as e:  # an unreadable file is a difference, and says why
                verdict = f"differs: unreadable ({type(e).__name__}: {e})"
        kind = verdict.split(":")[0]
        counts[kind] = counts.get(kind, 0) + 1
        print(f"{rel}\t{verdict}")
    print("# " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 1 if counts.get("differs") else 0


if __name__ == "__main__":
    sys.exit(main())
