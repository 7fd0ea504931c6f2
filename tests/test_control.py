"""The positive control (B1/B2 improve the base on the snapshot suite with retention held) and
the summary's gating: where it fails, the checks of trained models are not interpretable."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from teachable.evaluation_tables import snapshot_gain
from teachable.reporting.checks import GATED_CHECKS, check_positive_control

from test_reporting import _summary, study  # noqa: F401  (the fixture of a small, consistent study)

CONTROL_RUNS = ("B1_uniform", "B2_all")


def _retention(drops: dict) -> pd.DataFrame:
    return pd.DataFrame([dict(model_id=m, drop=d, drop_lo=lo, drop_hi=hi) for m, (d, lo, hi) in drops.items()])


def _gain(value, lo, hi) -> dict:
    return {"value": value, "lo": lo, "hi": hi, "n": 168, "n_tasks": 10, "reason": None}


def test_the_control_holds_when_one_baseline_gains_with_retention_not_lost():
    ret = _retention({"B1_uniform": (0.0, -0.1, 0.1), "B2_all": (0.02, -0.1, 0.15)})
    c = check_positive_control({"B1_uniform": _gain(-0.05, -0.15, 0.05), "B2_all": _gain(0.1, 0.02, 0.18)}, ret, 0.05)
    assert c["held"] is True and c["values"]["passing"] == ["B2_all"]
    assert c["values"]["runs"]["B2_all"]["retention_held"] is None  # undetermined retention does not fail it
    assert "B2_all: snapshot-suite gain 0.100 [0.020, 0.180] (n = 168 rollouts on 10 tasks)" in c["detail"]


def test_the_control_fails_without_a_gain_interval_above_0_or_with_retention_not_held():
    ret = _retention({"B1_uniform": (0.0, -0.1, 0.1), "B2_all": (0.2, 0.08, 0.3)})
    no_gain = check_positive_control({"B1_uniform": _gain(0.05, -0.01, 0.1), "B2_all": _gain(0.0, -0.1, 0.1)}, ret,
                                     0.05)  # fmt: skip
    assert no_gain["held"] is False and no_gain["values"]["reason"] == "no B1/B2 gain interval lies above 0"
    forgets = check_positive_control({"B1_uniform": _gain(0.05, -0.01, 0.1), "B2_all": _gain(0.1, 0.02, 0.2)}, ret,
                                     0.05)  # fmt: skip
    assert forgets["held"] is False and forgets["values"]["reason"].startswith("retention not held")
    missing = check_positive_control({}, ret.iloc[:0], 0.05)
    assert missing["held"] is False and "B1_uniform: not measured" in missing["detail"]


def test_snapshot_gain_is_the_paired_difference_over_the_whole_suite():
    rows = []
    for m, k in (("base", 1), ("B1_uniform", 3)):
        for t in range(4):
            rows += [dict(model_id=m, suite="snapshot", task_id=f"t{t}", snapshot_id=f"s{t}", success=i < k)
                     for i in range(4)]  # fmt: skip
    g = snapshot_gain(pd.DataFrame(rows), "B1_uniform", 0.95, 500, 0)
    assert g["value"] == pytest.approx(0.5) and g["lo"] == g["hi"] == pytest.approx(0.5)  # the same on every task
    assert (g["n"], g["n_tasks"], g["base_success"], g["model_success"]) == (16, 4, 0.25, 0.75)
    assert snapshot_gain(pd.DataFrame(rows), "B2_all", 0.95, 500, 0)["reason"] == "B2_all has no snapshot-suite rollouts"


def test_where_the_control_holds_the_checks_are_read_as_before(study):  # noqa: F811
    s = _summary(study)
    assert s["control"]["held"] is True and s["control"]["values"]["passing"] == ["B1_uniform"]
    assert not any(c.get("not_interpretable") for c in s["checks"])
    md = (study["out"] / "summary.md").read_text().splitlines()
    assert md[2].startswith("**Positive control held**")


def test_where_the_control_fails_the_trained_model_checks_are_not_interpretable(study):  # noqa: F811
    before = {c["id"]: c for c in _summary(study)["checks"]}
    r = pd.read_parquet(study["eval_rollouts"])
    base = r[(r["model_id"] == "base") & (r["suite"] == "snapshot")]
    keep = r[~(r["model_id"].isin(CONTROL_RUNS) & (r["suite"] == "snapshot"))]
    same = [base.assign(model_id=m) for m in CONTROL_RUNS]  # B1/B2 exactly as good as the base: no gain
    pd.concat([keep, *same], ignore_index=True).to_parquet(study["eval_rollouts"])
    s = _summary(study)
    assert s["control"]["held"] is False and s["control"]["values"]["runs"]["B1_uniform"]["gain"] == 0
    for c in s["checks"]:
        if c["id"] in GATED_CHECKS:
            assert c["held"] is None and c["not_interpretable"].startswith("the positive control failed")
            assert c["values"]["verdict_if_read"] == before[c["id"]]["held"]
            assert c["detail"].startswith("not interpretable: ")
        else:
            assert c["held"] == before[c["id"]]["held"] and "not_interpretable" not in c
    md = (study["out"] / "summary.md").read_text()
    lines = md.splitlines()
    assert lines[2].startswith("**⚠ Positive control failed**: no B1/B2 gain interval lies above 0")
    assert "(c), (d), (f), (g), are not interpretable" in lines[2]
    marks = [line[2] for line in lines if line.startswith("- ") and "**(" in line]
    assert marks == ["✔", "✔", "⊘", "⊘", "✔", "⊘", "⊘"]
    assert json.loads((study["out"] / "summary.json").read_text())["control"]["id"] == "positive_control"


def test_the_summary_shows_each_runs_target_marginal_and_drift(study):  # noqa: F811
    t = json.loads(study["training"].read_text())
    t["anchor_share"] = 0.5
    t["runs"]["B1_uniform"] = {"anchor_examples": 8, "target_marginal": {"turn left": 6, "go forward": 2},
                               "drift": {"kl": 0.05, "lo": 0.04, "hi": 0.06, "n_states": 200, "n_tasks": 10}}
    study["training"].write_text(json.dumps(t))
    sel = json.loads(study["selection"].read_text())
    sel["methods"]["ORACLE"].update(target_marginal={"turn right": 13, "go forward": 3},
                                    drift={"kl": 0.37, "lo": 0.3, "hi": 0.45, "n_states": 200, "n_tasks": 10})
    study["selection"].write_text(json.dumps(sel))
    s = _summary(study)
    assert s["protocol"]["training"]["runs"]["B1_uniform"]["drift"]["kl"] == 0.05
    md = (study["out"] / "summary.md").read_text()
    assert ("  - B1_uniform: targets turn left 6 (75%), go forward 2 (25%); 8 anchor pairs; drift 0.050 [0.040, 0.060] "
            "nats (n = 200 states, 10 tasks)") in md
    assert "- Anchor: 0.50 of each run's examples" in md
    oracle = next(line for line in md.splitlines() if line.startswith("  - ORACLE:"))
    assert oracle.endswith("targets turn right 13 (81%), go forward 3 (19%); drift 0.370 [0.300, 0.450] nats "
                           "(n = 200 states, 10 tasks)")
