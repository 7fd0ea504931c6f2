"""Running the real Snakemake DAG from a test: the command, its environment, the micro run that
several test modules share (``conftest.micro_run``) and the job counts of a dry-run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "tests" / "micro.yaml"
# the targets of phases 0-1 (student, rollouts, mining, labels, the label report): the unit tier's DAG
PHASE01 = ("results/student/eval_summary.json", "results/phase1/hint_audit.json")
# the micro run's work directory, kept across pytest sessions when set (`make test-all` shares one
# run between its two tiers; set it by hand to reuse a finished run while developing the checks)
MICRO_RUN_ENV = "TEACHABLE_MICRO_RUN"


def smk_env(**extra: str) -> dict:
    """The test's environment WITHOUT the venv's bin/ on PATH (as a newcomer runs
    `.venv/bin/snakemake ...` without activating): rules must find `teachable` themselves. No
    ``TEACHABLE_MODEL_PATH``: the micro config builds its embedded student."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env = dict(os.environ, PATH=path, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    env.pop("TEACHABLE_MODEL_PATH", None)
    return env


def smk_cmd(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(MICRO), *args]  # fmt: skip


def smk(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Snakemake on the micro config in ``workdir``; a failure (``check``) fails the test with the
    output's tail and every job log."""
    p = subprocess.run(smk_cmd(workdir, *args), capture_output=True, text=True, env=smk_env())
    if check and p.returncode != 0:
        logs = "\n".join(f"--- {f}\n{f.read_text()[-3000:]}" for f in workdir.glob("results/logs/**/*.log"))
        pytest.fail(f"snakemake {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-5000:]}\n{logs}")
    return p


def planned_jobs(out: str) -> dict[str, int]:
    """Job counts from a dry-run's 'Job stats' table."""
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", out, re.S)
    if not m:
        return {}
    return {line.split()[0]: int(line.split()[1]) for line in m.group(1).splitlines() if line.strip()}


def micro_workdir(tmp_path_factory) -> Path:
    """The micro run's work directory: ``$TEACHABLE_MICRO_RUN`` (created if missing; a finished run
    there is Snakemake's "Nothing to be done"), else a fresh temp dir."""
    given = os.environ.get(MICRO_RUN_ENV)
    wd = Path(given) if given else tmp_path_factory.mktemp("micro")
    wd.mkdir(parents=True, exist_ok=True)
    return wd
