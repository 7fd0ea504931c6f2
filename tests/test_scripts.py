"""The repo's measuring scripts and run tools: each benchmark script (benchmarks/) answers
--help; `teachable diff-runs` (are two runs the same?) and `teachable phase-times` (which phase
each rule's time belongs to)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from teachable import cli, diff_runs, phase_times

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_every_benchmark_script_answers_help(script):
    """Imports resolve and the usage prints (a script's heavy work starts only after parsing)."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("usage:")


@pytest.mark.parametrize("tool", sorted(cli.TOOLS))
def test_every_run_tool_is_a_teachable_subcommand_with_its_own_help(tool, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([tool, "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: teachable {tool} ")


def test_phase_times_knows_the_phase_of_every_rule():
    rules = {m for f in (ROOT / "workflow" / "rules").glob("*.smk")
             for m in re.findall(r"^(?:rule|checkpoint) (\w+):", f.read_text(), re.M)} - {"all"}  # fmt: skip
    assert rules and rules <= set(phase_times.PHASES), sorted(rules - set(phase_times.PHASES))


def _run(root: Path, success: float, wall: float, extra_run: bool = False) -> Path:
    (root / "phase3").mkdir(parents=True)
    rows = [{"model_id": "base", "success_rate": 0.5}, {"model_id": "Q1", "success_rate": success}]
    if extra_run:
        rows.append({"model_id": "B3_traces", "success_rate": 0.7})
    pd.DataFrame(rows).to_csv(root / "phase3" / "overall.csv", index=False)
    runs = {"Q1": {"steps": 8}, **({"B3_traces": {"steps": 60}} if extra_run else {})}
    (root / "phase3" / "plan.json").write_text(json.dumps({"k": 16, "wall_s": wall, "runs": runs}))
    (root / "logs").mkdir()
    (root / "logs" / "x.log").write_text(f"took {wall}s")
    return root


def test_identical_runs_up_to_times_are_the_same(tmp_path, capsys):
    a, b = _run(tmp_path / "a", 0.25, 10.0), _run(tmp_path / "b", 0.25, 99.0)
    with pytest.raises(SystemExit) as e:
        cli.main(["diff-runs", str(a), str(b)])
    assert e.value.code == 0  # the exit code reaches the CLI
    out = capsys.readouterr().out
    assert "phase3/overall.csv\tsame" in out and "phase3/plan.json\tsame" in out and "x.log" not in out


def test_a_changed_value_differs_and_fails(tmp_path, capsys):
    a, b = _run(tmp_path / "a", 0.25, 10.0), _run(tmp_path / "b", 0.375, 10.0)
    assert diff_runs.main([str(a), str(b)]) == 1
    assert "differs: column 'success_rate' in 1 rows" in capsys.readouterr().out


def test_a_newer_run_that_adds_a_model_is_a_superset(tmp_path, capsys):
    a, b = _run(tmp_path / "a", 0.25, 10.0), _run(tmp_path / "b", 0.25, 10.0, extra_run=True)
    assert diff_runs.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "superset: B adds rows with model_id in ['B3_traces']" in out
    assert "superset: B adds keys ['$.runs.B3_traces']" in out
