"""The repo's measuring scripts: each answers --help; scripts/diff_runs.py (are two runs the
same?) and scripts/phase_times.py (which phase each rule's time belongs to)."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


diff_runs = _script("diff_runs")


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.py")))
def test_every_script_answers_help(script):
    """Imports resolve and the usage prints (a script's heavy work starts only after parsing)."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("usage:")


def test_phase_times_knows_the_phase_of_every_rule():
    rules = {m for f in (ROOT / "workflow" / "rules").glob("*.smk")
             for m in re.findall(r"^(?:rule|checkpoint) (\w+):", f.read_text(), re.M)} - {"all"}  # fmt: skip
    assert rules and rules <= set(_script("phase_times").PHASES), sorted(rules - set(_script("phase_times").PHASES))


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
    assert diff_runs.main([str(a), str(b)]) == 0
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
