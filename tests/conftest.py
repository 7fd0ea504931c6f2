"""Shared test helpers: the one tiny-student fixture, the ``family`` fixture that runs a generic
phase test on every environment family, the micro DAG run that several modules read, and complete
tables from partial ones."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/openai_server.py, tests/slurm_cluster.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_FILL = {"str": "", "str?": None, "int": 0, "float": 0.0, "bool": False}


def complete(df: pd.DataFrame, table) -> pd.DataFrame:
    """``df`` with every (not optional) column ``table`` (a ``teachable.schemas.Table``) declares
    and ``df`` lacks, filled with an empty value of its kind (a test builds only the columns it
    checks)."""
    out = df.copy()
    for name, col in table.columns.items():
        if name not in out.columns and not col.optional:
            out[name] = [[] for _ in range(len(out))] if col.kind.startswith("list") else _FILL[col.kind]
    return out[[*(c for c in table.columns if c in out.columns), *[c for c in out.columns if c not in table.columns]]]


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory):
    """A tiny untrained student on BabyAI-GoToLocal-v0 (``student_init.build_random_student``),
    built once per session; scripts build the same with the same function."""
    from teachable.student_init import build_random_student

    return build_random_student(tmp_path_factory.mktemp("tiny_student"))


@pytest.fixture(scope="session")
def micro_workdir(tmp_path_factory) -> Path:
    """The work directory of the session's micro run (``dag.micro_workdir``)."""
    from dag import micro_workdir as workdir

    return workdir(tmp_path_factory)


@pytest.fixture(scope="session")
def micro_labels(micro_workdir) -> Path:
    """Phases 0-1 of the micro DAG (tests/micro.yaml; ``dag.PHASE01``), run once: its results dir."""
    from dag import PHASE01, smk

    smk(micro_workdir, "--cores", "2", *PHASE01)
    return micro_workdir / "results"


@pytest.fixture(scope="session")
def micro_run(micro_workdir) -> Path:
    """The whole micro DAG, run once (after ``micro_labels`` it adds the later phases in the same
    directory): its results dir."""
    from dag import smk

    smk(micro_workdir, "--cores", "2")
    return micro_workdir / "results"


@dataclass(frozen=True)
class FamilyCase:
    """One environment family as a generic phase test sees it: an env id, the family's options
    (its ``env`` config keys, passed to ``make_env``), a seed whose episode runs a while, and a
    step limit within which the expert finishes that family's tasks."""

    name: str
    env_id: str
    seed: int
    horizon: int
    options: dict[str, Any] = field(default_factory=dict)

    def env(self, max_steps: int | None = None):
        from teachable.envs import make_env

        return make_env(self.env_id, max_steps=max_steps, **self.options)

    def env_cfg(self, **keys: Any) -> dict[str, Any]:
        """The ``env`` config section of this family, with ``keys`` (max_steps, history_len...)."""
        return {"id": self.env_id, **self.options, **keys}

    @property
    def actions(self) -> tuple[str, ...]:
        """The valid actions at the start of ``seed``'s episode."""
        return tuple(self.env().reset(self.seed).valid_actions)


FAMILY_CASES = {c.name: c for c in (
    FamilyCase("babyai", "BabyAI-GoToLocal-v0", seed=3, horizon=12),
    FamilyCase("crafter", "CrafterReward-v1", seed=100003, horizon=40, options={"goal": "collect_stone"}),
)}  # fmt: skip


@pytest.fixture(params=list(FAMILY_CASES))
def family(request) -> FamilyCase:
    """Each implemented family in turn (``FAMILY_CASES``), for the generic phase tests. A test
    whose run on a family is slow puts that family in the integration tier:
    ``@pytest.mark.parametrize("family", ["babyai", pytest.param("crafter", marks=pytest.mark.integration)],
    indirect=True)``."""
    return FAMILY_CASES[request.param]
