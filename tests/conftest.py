"""Shared test helpers: the one tiny-student fixture, and complete tables from partial ones."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/openai_server.py, tests/slurm_cluster.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_FILL = {"str": "", "str?": None, "int": 0, "float": 0.0, "bool": False}


def complete(df: pd.DataFrame, table) -> pd.DataFrame:
    """``df`` with every column ``table`` (a ``teachable.schemas.Table``) declares and ``df``
    lacks, filled with an empty value of its kind (a test builds only the columns it checks)."""
    out = df.copy()
    for name, col in table.columns.items():
        if name not in out.columns:
            out[name] = [[] for _ in range(len(out))] if col.kind.startswith("list") else _FILL[col.kind]
    return out[[*table.columns, *[c for c in out.columns if c not in table.columns]]]


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory):
    """A tiny untrained student on BabyAI-GoToLocal-v0 (``student_init.build_random_student``),
    built once per session; scripts build the same with the same function."""
    from teachable.student_init import build_random_student

    return build_random_student(tmp_path_factory.mktemp("tiny_student"))
