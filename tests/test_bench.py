"""`teachable bench` (a student on the bench split: bench_results.json and its episodes) and
`teachable compare --bench` of two bench results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from openai_server import FakeOpenAIServer, StudentResponder

from conftest import complete
from teachable.bench import (EPISODES_FILE, NO_ARCHETYPE, RUN_FILE, bench_config, bench_episodes, bench_results, read_bench,
                             read_run as read_bench_run, run_bench, usage_of)  # fmt: skip
from teachable.cli import main
from teachable.compare import IMPROVEMENT, REGRESSION, compare_bench
from teachable.envs.registry import system_prompt
from teachable.io import read_table, write_json, write_table
from teachable.policies.base import Policy
from teachable.schemas import BENCH_EPISODES

ENV = "BabyAI-GoToLocal-v0"
EASY = "BabyAI-GoToRedBallNoDists-v0"
SPLITS = {"train": {"start": 0, "count": 20}, "eval": {"start": 1000, "count": 20},
          "bench": {"start": 2000, "count": 20}, "demo": {"start": 3000, "count": 20}}  # fmt: skip
N200 = json.dumps({"phase3": {"n_bootstrap": 200}})  # a statistics step's --config-json


def config(**bench) -> dict:
    return {"seed": 0, "env": {"id": ENV, "max_steps": 20, "history_len": 2}, "splits": SPLITS,
            "student": {"device": "cpu"}, "bench": {"tasks": 5, "rollouts_per_task": 3, **bench},
            "phase3": {"n_bootstrap": 200}}  # fmt: skip


def within(m: dict) -> bool:
    return m["lo"] - 1e-12 <= m["value"] <= m["hi"] + 1e-12


def test_bench_of_the_tiny_student_writes_the_json_and_the_episodes(tiny_student, tmp_path):
    out = tmp_path / "bench" / "base" / "bench_results.json"
    res = run_bench(config(levels=[ENV, EASY]), str(tiny_student), None, "base", out, progress=False)
    disk = json.loads(out.read_text())
    eps = read_table(out.parent / EPISODES_FILE, BENCH_EPISODES)
    assert disk["model"] == res["model"] == "base" and disk["suite"] == "bench" and disk["episodes"] == EPISODES_FILE
    assert len(eps) == 2 * 5 * 3 and set(eps["env_id"]) == {ENV, EASY}
    assert set(eps["seed"]) == set(range(2000, 2005))  # the bench split's head, never train/eval/demo seeds
    m = disk["metrics"]
    for name, col in (("success_rate", "success"), ("mean_reward", "return"), ("mean_steps", "steps"),
                      ("invalid_rate", "invalid_rate")):  # fmt: skip
        assert m[name]["n"] == 30 and m[name]["n_tasks"] == 10 and within(m[name]), name
        assert m[name]["value"] == pytest.approx(eps[col].astype(float).mean()), name
    assert disk["pass_rate"] == m["success_rate"]["value"] and disk["n"] == 30
    assert disk["ci95"] == [m["success_rate"]["lo"], m["success_rate"]["hi"]]
    assert m["invalid_rate"]["value"] == 0  # a scoring student picks among the valid actions
    for env_id in (ENV, EASY):
        lv = disk["by_level"][env_id]
        assert lv["n_rollouts"] == 15 and lv["n_tasks"] == 5 and within(lv["success_rate"])
        assert lv["success_rate"]["value"] == pytest.approx(eps.loc[eps["env_id"] == env_id, "success"].mean())
    u = disk["usage"]
    assert u["backend"] == "hf" and u["counted"] is False and u["prompt_tokens"] is None and u["cost_usd"] is None
    # common random numbers: a second bench of the same student plays the same episodes
    again = run_bench(config(levels=[ENV, EASY]), str(tiny_student), None, "base", tmp_path / "again.json",
                      progress=False)  # fmt: skip
    assert again["metrics"] == res["metrics"]
    assert read_table(tmp_path / EPISODES_FILE, BENCH_EPISODES)["actions"].map(tuple).tolist() == \
        eps["actions"].map(tuple).tolist()  # fmt: skip


class UniformStudent(Policy):
    """A scoring student with equal scores for every valid action (no model to load)."""

    name = "uniform"

    def action_logprobs(self, contexts):
        return [np.full(len(c.valid_actions), -np.log(len(c.valid_actions))) for c in contexts]


def test_crafter_bench_has_per_achievement_rates(tmp_path):
    cfg = bench_config({"seed": 0, "env": {"id": "CrafterReward-v1", "max_steps": 25, "goal": "collect_wood"},
                        "splits": SPLITS, "bench": {"tasks": 4, "rollouts_per_task": 2},
                        "phase3": {"n_bootstrap": 200}})  # fmt: skip
    eps = bench_episodes("uniform", UniformStudent(), cfg, progress=False)
    res = bench_results(eps, "uniform", None, 0.95, 200, 0)
    from teachable.envs.crafter.rules import ACHIEVEMENTS

    assert list(res["achievements"]) == list(ACHIEVEMENTS) and len(ACHIEVEMENTS) == 22
    for name, a in res["achievements"].items():
        assert a["n"] == 8 and a["n_tasks"] == 4 and within(a), name
        assert a["value"] == pytest.approx(np.mean([name in u for u in eps["achievements"]])), name
    assert "crafter_score" in res and "progression" in res and within(res["metrics"]["success_rate"])
    write_table(eps, BENCH_EPISODES, tmp_path / EPISODES_FILE)  # Crafter's family columns are declared
    assert read_table(tmp_path / EPISODES_FILE, BENCH_EPISODES)["achievements"].map(list).tolist() == \
        eps["achievements"].map(list).tolist()  # fmt: skip


@pytest.mark.integration  # an HTTP student
def test_the_openai_student_benches_through_the_local_server_and_reports_tokens(tiny_student, tmp_path):
    from teachable.policies.hf import HFPolicy

    hf = HFPolicy(tiny_student, device="cpu", system_prompt=system_prompt(ENV))
    with FakeOpenAIServer(responder=StudentResponder(hf, system_prompt(ENV))) as server:
        cfg = config(tasks=3, rollouts_per_task=2)
        cfg["env"]["max_steps"] = 8
        cfg["student"] = {"backend": "openai", "openai": {
            "base_url": server.base_url, "model": "tiny-student", "api_key_env": "TEACHABLE_TEST_KEY_UNSET",
            "concurrency": 4, "cache_dir": str(tmp_path / "cache")}}  # fmt: skip
        out = tmp_path / "bench" / "api" / "bench_results.json"
        res = run_bench(cfg, None, None, "api", out, progress=False)
        n_http = len(server.requests)
    eps = read_table(out.parent / EPISODES_FILE, BENCH_EPISODES)
    u = res["usage"]
    assert u["backend"] == "openai" and u["counted"] and u["model"] == "tiny-student"
    assert u["requests"] == n_http == int(eps["steps"].sum())  # one sample per step, none cached yet
    assert u["prompt_tokens"] > 0 and u["completion_tokens"] > 0 and u["cost_usd"] == 0  # no price configured
    assert u["requests_per_s"] > 0
    assert res["metrics"]["success_rate"]["n"] == 6 and within(res["metrics"]["invalid_rate"])
    assert res["backend"] == "openai" and res["model_dir"] is None


def episodes(model_id: str, solved: int, invalid: float, tasks: int = 24, r: int = 4) -> pd.DataFrame:
    """Bench episodes where the first ``solved`` tasks succeed in every rollout, the others never."""
    rows = []
    for t in range(tasks):
        for i in range(r):
            ok = t < solved
            rows.append(dict(model_id=model_id, env_id=ENV, seed=2000 + t, task_id=f"{ENV}:{2000 + t}",
                             rollout_idx=i, success=ok, steps=5 if ok else 20, actions=["go forward"],
                             n_invalid=0, invalid_rate=invalid, repeat_rate=0.0, loop=False,
                             wasted_steps=0.0 if ok else 20.0, expert_steps=5.0, rng_seed=i,
                             **{"return": 0.9 if ok else 0.0}))  # fmt: skip
    return complete(pd.DataFrame(rows), BENCH_EPISODES)


def write_bench(df: pd.DataFrame, d) -> str:
    out = d / "bench_results.json"
    write_table(df, BENCH_EPISODES, d / EPISODES_FILE)
    write_json(bench_results(df, df["model_id"].iloc[0], None, 0.95, 200, 0), out)
    return str(out)


def test_compare_of_two_bench_results_lists_improvements_and_regressions(tmp_path):
    (tmp_path / "b").mkdir(), (tmp_path / "m").mkdir()
    base = write_bench(episodes("base", 6, invalid=0.0), tmp_path / "b")
    model = write_bench(episodes("B3_traces", 18, invalid=0.5), tmp_path / "m")
    rep = compare_bench(base, model, n_bootstrap=200)
    verdicts = {m["metric"]: m["verdict"] for m in rep["metrics"]}
    assert verdicts["overall_success"] == IMPROVEMENT and "overall_success" in rep["improvements"]
    assert verdicts["invalid_rate"] == REGRESSION and "invalid_rate" in rep["regressions"]
    assert rep["bench"]["paired"] and rep["bench"]["shared_tasks"] == 24
    succ = next(m for m in rep["metrics"] if m["metric"] == "overall_success")
    assert succ["test"]["paired"] and succ["baseline"]["n"] == succ["model"]["n"] == 96
    assert succ["difference"]["value"] == pytest.approx(0.5)
    b = json.loads(open(base).read())["metrics"]["success_rate"]  # a real interval around 0.25
    assert b["value"] == 0.25 and b["lo"] < 0.25 < b["hi"] and b["n"] == 96 and b["n_tasks"] == 24
    # the CLI writes the same report
    main(["compare", "--bench", base, model, "--config-json", N200, "--out-json", str(tmp_path / "c.json"),
          "--out-md", str(tmp_path / "c.md")])  # fmt: skip
    assert json.loads((tmp_path / "c.json").read_text())["improvements"] == rep["improvements"]
    assert "B3_traces vs base" in (tmp_path / "c.md").read_text()


def test_compare_of_the_same_model_twice_finds_no_change(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a = write_bench(episodes("base", 6, invalid=0.0), tmp_path / "a")
    b = write_bench(episodes("base", 6, invalid=0.0), tmp_path / "b")
    rep = compare_bench(a, b, n_bootstrap=200)
    assert rep["model"] == "base (model)" and rep["improvements"] == [] and rep["regressions"] == []


def test_bad_paths_and_keys_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere/bench_results.json"):
        read_bench(tmp_path / "nowhere" / "bench_results.json")
    (tmp_path / "other.json").write_text(json.dumps({"model": "base", "pass_rate": 0.5}))
    with pytest.raises(ValueError, match="other.json is not a bench result"):
        compare_bench(tmp_path / "other.json", tmp_path / "other.json")
    (tmp_path / "m").mkdir()
    good = write_bench(episodes("base", 6, invalid=0.0), tmp_path / "m")
    (tmp_path / "m" / EPISODES_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=EPISODES_FILE):
        read_bench(good)
    with pytest.raises(ValueError, match="bench.tasks=50 exceeds splits.bench.count=20"):
        run_bench(config(tasks=50), "unused", None, "base", tmp_path / "x.json")
    with pytest.raises(ValueError, match="bench.levels"):
        run_bench(config(levels=["CrafterReward-v1"]), "unused", None, "base", tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="no/such/model"):
        run_bench(config(), "no/such/model", None, "base", tmp_path / "x.json")
    with pytest.raises(SystemExit):
        main(["bench", "--config", str(tmp_path / "missing.yaml"), "--model-id", "base", "--out", "x.json"])


def test_compare_of_phase3_rollouts_still_works_from_the_cli(tmp_path):
    """The rollouts form of `teachable compare` (the bench form shares its report writer)."""
    from teachable.bench import as_overall
    from teachable.schemas import ALL_EVAL_ROLLOUTS

    rows = pd.concat([as_overall(episodes("base", 6, invalid=0.0)), as_overall(episodes("B3_traces", 18, invalid=0.5))],
                     ignore_index=True)  # fmt: skip
    write_table(rows[[*ALL_EVAL_ROLLOUTS.columns]], ALL_EVAL_ROLLOUTS, tmp_path / "rollouts.parquet")
    main(["compare", "--rollouts", str(tmp_path / "rollouts.parquet"), "--baseline", "base", "--model", "B3_traces",
          "--config-json", N200, "--out-dir", str(tmp_path / "cmp")])  # fmt: skip
    rep = json.loads((tmp_path / "cmp" / "B3_traces_vs_base.json").read_text())
    assert "overall_success" in rep["improvements"] and (tmp_path / "cmp" / "B3_traces_vs_base.md").exists()
    with pytest.raises(SystemExit):  # neither form given
        main(["compare", "--baseline", "base"])


def test_bench_rollouts_then_bench_results_equal_one_bench(tiny_student, tmp_path):
    """The rules' two commands give `teachable bench`'s result; bench-results with another
    phase3.confidence changes the intervals only, from the same episodes (it plays nothing)."""
    cfg = config(tasks=3, rollouts_per_task=2)
    one = run_bench(cfg, str(tiny_student), None, "base", tmp_path / "one" / "bench_results.json", progress=False)
    d = tmp_path / "two"
    main(["bench-rollouts", "--config-json", json.dumps(cfg), "--model", str(tiny_student), "--model-id", "base",
          "--out-dir", str(d), "--no-progress"])  # fmt: skip
    run = json.loads((d / RUN_FILE).read_text())
    assert run["model"] == "base" and run["usage"]["backend"] == "hf" and run["about"]["levels"] == [ENV]
    assert not (d / "bench_results.json").exists()
    main(["bench-results", "--run", str(d / RUN_FILE), "--config-json", N200, "--out", str(d / "bench_results.json")])
    two = json.loads((d / "bench_results.json").read_text())
    for k in ("metrics", "by_level", "by_archetype", "pass_rate", "n", "levels", "split"):
        assert two[k] == one[k], k
    with pytest.raises(SystemExit):  # the results must lie beside the run (they name the episodes by file)
        main(["bench-results", "--run", str(d / RUN_FILE), "--out", str(tmp_path / "elsewhere.json")])


def test_bench_results_at_another_confidence_reads_the_same_episodes(tmp_path):
    eps = episodes("base", 6, invalid=0.0)
    write_table(eps, BENCH_EPISODES, tmp_path / EPISODES_FILE)
    write_json({"suite": "bench_run", "model": "base", "episodes": EPISODES_FILE, "usage": usage_of(UniformStudent(), 1.0),
                "about": {"levels": [ENV]}}, tmp_path / RUN_FILE)  # fmt: skip
    before = (tmp_path / EPISODES_FILE).stat().st_mtime_ns
    out = {}
    for conf in ("0.95", "0.5"):
        main(["bench-results", "--run", str(tmp_path / RUN_FILE), "--config-json",
              json.dumps({"phase3": {"confidence": float(conf), "n_bootstrap": 300}}),
              "--out", str(tmp_path / "bench_results.json")])  # fmt: skip
        out[conf] = json.loads((tmp_path / "bench_results.json").read_text())["metrics"]["success_rate"]
    wide, narrow = out["0.95"], out["0.5"]
    assert wide["value"] == narrow["value"] == 0.25 and wide["n"] == narrow["n"] == 96
    assert wide["lo"] < narrow["lo"] < 0.25 < narrow["hi"] < wide["hi"]
    assert (tmp_path / EPISODES_FILE).stat().st_mtime_ns == before
    write_json({"suite": "bench_run", "model": "other", "episodes": EPISODES_FILE, "usage": None, "about": {}},
               tmp_path / RUN_FILE)  # fmt: skip
    with pytest.raises(ValueError, match="different benches"):
        read_bench_run(tmp_path / RUN_FILE)


def test_bench_config_files_are_read_once(tmp_path, monkeypatch):
    """`teachable bench --config` reads each YAML once (the GPU slot and the bench share it)."""
    from pathlib import Path

    import yaml

    f = tmp_path / "bench.yaml"
    f.write_text(yaml.safe_dump(config()))
    reads = []
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (reads.append(self.name), real(self, *a, **k))[1])
    with pytest.raises(SystemExit):  # stops at the missing model, after both have read the config
        main(["bench", "--config", str(f), "--model", str(tmp_path / "no_model"), "--model-id", "base",
              "--out", str(tmp_path / "x.json")])  # fmt: skip
    assert reads.count("bench.yaml") == 1, reads


def test_babyai_bench_breaks_down_by_mission_archetype(tmp_path):
    """by_archetype on a level with several mission kinds (Synth: go to, pick up, open, put next
    to) and on GoToLocal (go to only): each archetype's metrics over its tasks, with n and n_tasks."""
    synth = "BabyAI-Synth-v0"
    cfg = bench_config({"seed": 0, "env": {"id": synth, "max_steps": 6, "history_len": 2}, "splits": SPLITS,
                        "bench": {"tasks": 12, "rollouts_per_task": 2, "levels": [synth, ENV]},
                        "phase3": {"n_bootstrap": 200}})  # fmt: skip
    eps = bench_episodes("uniform", UniformStudent(), cfg, progress=False)
    write_table(eps, BENCH_EPISODES, tmp_path / EPISODES_FILE)  # the columns are declared
    from teachable.envs.registry import task_archetype

    assert (eps["archetype"] == [task_archetype(e, m) for e, m in zip(eps["env_id"], eps["instruction"])]).all()
    assert set(eps.loc[eps["env_id"] == ENV, "archetype"]) == {"go to"}
    kinds = set(eps.loc[eps["env_id"] == synth, "archetype"])
    assert len(kinds) >= 3 and kinds <= {"go to", "pick up", "open", "put next to"}, kinds
    res = bench_results(eps, "uniform", None, 0.95, 200, 0)
    by = res["by_archetype"]
    assert set(by) == kinds | {"go to"} and NO_ARCHETYPE not in by
    assert sum(a["n_rollouts"] for a in by.values()) == len(eps) == 2 * 12 * 2
    for kind, a in by.items():
        g = eps[eps["archetype"] == kind]
        assert a["n_rollouts"] == len(g) and a["n_tasks"] == g["task_id"].nunique(), kind
        for name, col in (("success_rate", "success"), ("mean_steps", "steps"), ("invalid_rate", "invalid_rate")):
            assert a[name]["n"] == len(g) and a[name]["n_tasks"] == a["n_tasks"] and within(a[name]), (kind, name)
            assert a[name]["value"] == pytest.approx(g[col].astype(float).mean()), (kind, name)
    # GoToLocal alone: one archetype, the whole bench
    only = bench_results(eps[eps["env_id"] == ENV], "uniform", None, 0.95, 200, 0)
    assert list(only["by_archetype"]) == ["go to"]
    assert only["by_archetype"]["go to"]["success_rate"] == only["metrics"]["success_rate"]
    # a level whose missions have no archetype (plain MiniGrid) is listed apart, never dropped
    mixed = eps.assign(archetype=eps["archetype"].where(eps["env_id"] == synth, None))
    assert by_n(bench_results(mixed, "uniform", None, 0.95, 200, 0)["by_archetype"], NO_ARCHETYPE) == 24


def by_n(by: dict, key: str) -> int:
    return by[key]["n_rollouts"]
