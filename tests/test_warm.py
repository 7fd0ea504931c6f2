"""`teachable warm`: a step handed to the warm server runs as it would in its own process (same
output, its own streams and exit status); without a listening server the caller runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import complete
from teachable import cli, warm
from teachable.io import write_table
from teachable.schemas import EVAL_ROLLOUTS

ENV = "BabyAI-GoToLocal-v0"


@pytest.fixture
def server(tmp_path):
    """A warm server that preloads the CLI only (the test stays fast): its socket path."""
    path = str(tmp_path / "sock")
    proc = subprocess.Popen([sys.executable, "-c", f"from teachable.warm import serve; serve({path!r}, ('teachable.cli',))"])
    for _ in range(300):
        if os.path.exists(path):
            break
        assert proc.poll() is None, "the warm server exited"
        time.sleep(0.05)
    yield path
    proc.terminate()
    assert proc.wait(timeout=10) == 0 and not os.path.exists(path)


def _rollouts(path):
    rows = [{"model_id": "m", "suite": "overall", "env_id": ENV, "seed": i, "task_id": f"{ENV}:{i}", "rollout_idx": 0,
             "success": i % 3 == 0, "steps": 5, "actions": ["a"] * 5} for i in range(12)]  # fmt: skip
    write_table(complete(pd.DataFrame(rows), EVAL_ROLLOUTS), EVAL_ROLLOUTS, path)


def test_a_step_in_the_warm_server_writes_what_it_writes_in_its_own_process(server, tmp_path, monkeypatch, capfd):
    _rollouts(tmp_path / "r.parquet")
    argv = ["benchmark", "--rollouts", str(tmp_path / "r.parquet"), "--model-id", "m"]
    cli.run([*argv, "--out", str(tmp_path / "own.json")])
    monkeypatch.setenv(warm.ENV, server)
    monkeypatch.chdir(tmp_path)  # the child works in the caller's directory: a relative --out lands here
    assert warm.forward([*argv, "--out", "warm.json"]) == 0  # not None: the server ran it
    assert json.loads((tmp_path / "warm.json").read_text()) == json.loads((tmp_path / "own.json").read_text())
    # a failing step: its exit status and its error on the caller's stderr (the rule's log)
    capfd.readouterr()
    assert warm.forward(["benchmark", "--rollouts", "no/such.parquet", "--model-id", "m", "--out", "x.json"]) == 2
    assert "no/such.parquet" in capfd.readouterr().err


def test_without_a_listening_server_the_caller_runs_the_step(tmp_path, monkeypatch):
    monkeypatch.delenv(warm.ENV, raising=False)
    assert warm.forward(["benchmark"]) is None
    monkeypatch.setenv(warm.ENV, str(tmp_path / "nobody"))
    assert warm.forward(["benchmark"]) is None


def test_a_job_gets_the_thread_count_of_a_fresh_process():
    assert warm._job_threads({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "3"}, 8) == 2
    assert warm._job_threads({"MKL_NUM_THREADS": "3"}, 8) == 3
    assert warm._job_threads({"OMP_NUM_THREADS": ""}, 8) == 8
