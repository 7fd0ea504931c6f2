"""Reliability: phase 1 against a misbehaving teacher API (a local OpenAI-compatible server that
injects faults: the network boundary), no API key in any output, and bad data met with errors
that name the file or the condition. The faulty teacher API's tests are in the integration tier.
Kill-and-resume and determinism of the whole DAG are in tests/test_workflow.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from openai_server import FakeOpenAIServer, Reply, answer, content, dropped, error, slow
from teachable.cli import main
from teachable.envs import make_env
from teachable.mining import SNAPSHOT_COLUMNS, task_id
from teachable.teachers.base import FAILURE_KINDS

ENV = "BabyAI-GoToLocal-v0"
CANARY = "sk-canary-7f3a9c1e55d04b2a"
KEY_ENV = "TEACHABLE_TEST_CANARY_KEY"


@pytest.fixture(scope="module")
def student_dir(tiny_student):
    return tiny_student


def _snapshots(n: int) -> pd.DataFrame:
    """Experiment A-like snapshots: a state two expert steps into each task, a wrong student action."""
    env = make_env(ENV, max_steps=20)
    rows = []
    for seed in range(10 * n):
        env.reset(seed)
        prefix = []
        for _ in range(2):
            a = env.expert_action()
            prefix.append(a)
            if env.step(a).done:
                break
        if env.done:  # solved in two steps: not a snapshot
            continue
        if len(rows) == n:
            break
        obs, expert = env.observation(), env.expert_action()
        wrong = next(a for a in obs.valid_actions if a != expert)
        rows.append({"snapshot_id": f"{ENV}/A-{seed}-0/t2", "experiment": "A", "task_id": task_id(ENV, seed),
                     "env_id": ENV, "seed": seed, "step_idx": 2, "actions": prefix, "instruction": obs.instruction,
                     "observation": obs.text, "history": prefix, "valid_actions": list(obs.valid_actions),
                     "student_action": wrong, "expert_action": expert, "episode_id": f"A-{seed}-0",
                     "episode_length": 20, "steps_left": 18})  # fmt: skip
    return pd.DataFrame(rows, columns=SNAPSHOT_COLUMNS)


def _good(body: dict) -> Reply:
    """A valid answer to the request: a valid action other than the student's, a clean hint."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    valid = json.loads(user.split("Valid actions: ", 1)[1].splitlines()[0])
    student = user.split("Student's action: ", 1)[1].splitlines()[0]
    return answer(next(a for a in valid if a != student), "The target is 3 cells away at your 2 o'clock.")


def _names_action(body: dict) -> Reply:
    return answer(json.loads(_good(body).content)["suggested_action"], "You should rotate to your left now.")


# per snapshot (in order), the replies to its successive requests; "good" answers from the request
FAULTS = [
    ("429 Retry-After, then an answer", [error(429, retry_after_s=0), _good], None),
    ("500 on every attempt", [error(500)] * 3, "server_error"),
    ("a timeout, then an answer", [slow(1.5, Reply(content="{}")), _good], None),
    ("a dropped connection, then an answer", [dropped(), _good], None),
    ("malformed JSON, then an answer", [content("no json here"), _good], None),
    ("malformed JSON twice", [content("{oops"), content("{oops")], "malformed_json"),
    ("a wrong schema twice", [content('{"action": "go forward"}')] * 2, "wrong_schema"),
    ("an action outside valid_actions twice", [answer("fly", "The exit is at your 3 o'clock.")] * 2,
     "invalid_action"),
    ("a diagnosis naming an action twice", [_names_action] * 2, "diagnosis_names_action"),
    ("429 on every attempt", [error(429)] * 3, "rate_limited"),
    ("a clean answer", [_good], None),
]  # fmt: skip


class FaultScript:
    """Answers each snapshot's requests from its row of FAULTS (keyed by the first user message)."""

    def __init__(self, snaps: pd.DataFrame):
        self.by_obs = {r["observation"]: list(FAULTS[i][1]) for i, (_, r) in enumerate(snaps.iterrows())}
        self.count: dict[str, int] = {}

    def __call__(self, body: dict) -> Reply:
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        obs = next(o for o in self.by_obs if o in user)
        k = self.count.get(obs, 0)
        self.count[obs] = k + 1
        reply = self.by_obs[obs][min(k, len(self.by_obs[obs]) - 1)]
        return reply(body) if callable(reply) else Reply(**vars(reply))


def _label_shard(tmp: Path, student_dir, server: FakeOpenAIServer, snaps_path: Path, verbose: bool) -> Path:
    cfg = {
        "seed": 0, "env": {"id": ENV, "max_steps": 20, "history_len": 4},
        "student": {"backend": "hf", "device": "cpu", "dtype": "float32", "batch_size": 64, "temperature": 1.0},
        "teacher": {"backend": "openai", "openai": {
            "base_url": server.base_url, "model": "fault-model", "api_key_env": KEY_ENV, "timeout_s": 0.5,
            "max_retries": 2, "max_invalid_retries": 1, "concurrency": 1, "cache_dir": str(tmp / "cache")}},
        "phase1": {"experiments": ["A"], "max_snapshots": {}, "n_rollouts": 2, "n_rollouts_expert": 1},
    }  # fmt: skip
    log = tmp / "results/logs/label_shard.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "teachable", *(["-v"] if verbose else []), "label-shard", "--config-json",
            json.dumps(cfg), "--model", str(student_dir), "--snapshots", str(snaps_path), "--shard", "0",
            "--n-shards", "1", "--out", str(tmp / "results/labels_0.parquet"),
            "--out-failures", str(tmp / "results/failures_0.parquet"), "--no-progress"]  # fmt: skip
    env = dict(os.environ, **{KEY_ENV: CANARY}, OMP_NUM_THREADS="1")
    with open(log, "w") as err:
        p = subprocess.run(args, stderr=err, env=env, cwd=tmp)
    assert p.returncode == 0, log.read_text()[-3000:]
    return tmp / "results"


@pytest.fixture(scope="module")
def faulty_phase1(tmp_path_factory, student_dir):
    tmp = tmp_path_factory.mktemp("faults")
    snaps = _snapshots(len(FAULTS))
    snaps_path = tmp / "snapshots.parquet"
    snaps.to_parquet(snaps_path)
    with FakeOpenAIServer() as server:
        script = FaultScript(snaps)
        server.script(*[script] * 200)
        results = _label_shard(tmp, student_dir, server, snaps_path, verbose=True)
        requests = len(server.requests)
    return tmp, results, snaps, script, requests


@pytest.mark.integration
def test_phase1_completes_and_records_every_fault_with_its_kind(faulty_phase1):
    tmp, results, snaps, script, requests = faulty_phase1
    labels = pd.read_parquet(results / "labels_0.parquet")
    fails = pd.read_parquet(results / "failures_0.parquet")
    assert len(labels) + len(fails) == len(snaps) and not set(labels["snapshot_id"]) & set(fails["snapshot_id"])
    expected = {snaps["snapshot_id"].iloc[i]: kind for i, (_, _, kind) in enumerate(FAULTS)}
    assert dict(zip(fails["snapshot_id"], fails["failure_kind"])) == {s: k for s, k in expected.items() if k}
    assert set(labels["snapshot_id"]) == {s for s, k in expected.items() if k is None}
    assert set(fails["failure_kind"]) <= set(FAILURE_KINDS)
    # transport faults were retried by the client (max_retries = 2: 3 attempts), invalid answers
    # once with a correction (max_invalid_retries = 1: 2 answers)
    obs = dict(zip(snaps["snapshot_id"], snaps["observation"]))
    for i, (what, replies, kind) in enumerate(FAULTS):
        n = script.count[obs[snaps["snapshot_id"].iloc[i]]]
        assert n == len(replies) or (kind is None and n >= len(replies)), (what, n)
    # advice of a recovered snapshot is the server's answer, never a replacement
    for _, r in labels.iterrows():
        assert r["suggested_action"] != r["student_action"] and r["diagnosis"].startswith("The target is")
    assert requests == sum(script.count.values())


@pytest.mark.integration
def test_failure_counts_by_kind_reach_the_merged_table_and_summary(faulty_phase1, tmp_path):
    from teachable.reporting import read_failures

    tmp, results, *_ = faulty_phase1
    out = tmp / "merged"
    main(["merge-labels", "--config-json", json.dumps({"phase1": {"quadrants": {"mode": "auto", "u_quantile": 0.5,
          "l_quantile": 0.5, "min_size": 1}}}), "--shards", str(results / "labels_0.parquet"), "--failures",
          str(results / "failures_0.parquet"), "--out", str(out / "labeled.parquet"), "--out-jsonl",
          str(out / "labeled.jsonl"), "--out-failures", str(out / "teacher_failures.parquet"), "--thresholds",
          str(out / "thresholds.json"), "--plots-dir", str(out / "plots")])  # fmt: skip
    fails = read_failures(out / "teacher_failures.parquet")
    counts = fails["failure_kind"].value_counts().to_dict()
    assert counts == {k: 1 for _, _, k in FAULTS if k}


@pytest.mark.integration
def test_no_api_key_value_in_any_output_log_or_cache(faulty_phase1):
    tmp, *_ = faulty_phase1
    files = [p for p in tmp.rglob("*") if p.is_file()]
    assert any("cache" in str(p) for p in files) and any(p.suffix == ".log" for p in files)
    leaks = [str(p) for p in files if CANARY.encode() in p.read_bytes()]
    assert not leaks, leaks


# ------------------------------------------------------------------------------------ bad data
def test_a_truncated_parquet_or_json_names_the_file(tmp_path):
    from teachable.io import read_json, read_parquet

    p = tmp_path / "labeled_snapshots.parquet"
    pd.DataFrame({"a": np.arange(1000)}).to_parquet(p)
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(ValueError, match="labeled_snapshots.parquet is not a readable Parquet file.*truncated"):
        read_parquet(p)
    j = tmp_path / "plan.json"
    j.write_text('{"budget": 4, "runs": {')
    with pytest.raises(ValueError, match="plan.json is not a readable JSON file"):
        read_json(j)


def test_the_cli_turns_a_truncated_input_into_an_error_naming_it(tmp_path, capsys):
    p = tmp_path / "rollouts.parquet"
    p.write_bytes(b"PAR1 not really")
    cfg = {"seed": 0, "env": {"id": ENV, "max_steps": 20, "history_len": 4},
           "phase0": {"mining": {"per_episode": 2}, "b_rate": 0.2, "b_per_episode": 2}}  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(["mine", "--config-json", json.dumps(cfg), "--rollouts", str(p), "--out-failure", str(tmp_path / "a"),
              "--out-expert", str(tmp_path / "b"), "--out-summary", str(tmp_path / "c")])  # fmt: skip
    assert e.value.code == 2 and not (tmp_path / "a").exists()


def test_a_model_directory_without_weights_is_named(student_dir, tmp_path):
    import shutil

    from teachable.policies import make_student

    broken = tmp_path / "model"
    shutil.copytree(student_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=f"{broken} has no weights"):
        make_student({"backend": "hf", "device": "cpu"}, str(broken), env_id=ENV)


def _episodes(successes: list[bool]) -> pd.DataFrame:
    from teachable.mining import episode_rows
    from teachable.rollouts import EXPERT, RolloutSpec, run_rollouts

    frames = []
    for seed, ok in enumerate(successes):
        forced = () if ok else ("turn left",) * 20  # the expert (succeeds) or a spin (fails)
        r = run_rollouts([RolloutSpec(ENV, seed, actor=EXPERT, forced=forced)], None, temperature=1.0, history_len=4,
                         max_steps=20, record_steps=True, progress=False)[0]  # fmt: skip
        frames.append(pd.DataFrame(episode_rows("A", f"A-{seed}-0", r)))
    return pd.concat(frames, ignore_index=True)


def test_a_student_that_never_fails_gives_no_experiment_a_snapshot_and_says_so():
    from teachable.mining import mine_failure_snapshots

    cfg = {"seed": 0, "env": {"id": ENV, "max_steps": 20}, "phase0": {"mining": {"per_episode": 2}}}
    snaps, summary = mine_failure_snapshots(_episodes([True, True, True]), cfg)
    assert snaps.empty and list(snaps.columns) == SNAPSHOT_COLUMNS
    assert summary["failed_episodes"] == 0 and summary["successful_episodes"] == 3 and summary["snapshots"] == 0


def test_a_phase0_that_mines_nothing_is_an_error_saying_what_to_change(tmp_path, caplog):
    p = tmp_path / "rollouts.parquet"
    _episodes([True, True]).to_parquet(p)
    cfg = {"seed": 0, "env": {"id": ENV, "max_steps": 20, "history_len": 4},
           "phase0": {"mining": {"per_episode": 2}, "b_rate": 0.2, "b_per_episode": 2}}  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(["mine", "--config-json", json.dumps(cfg), "--rollouts", str(p), "--out-failure", str(tmp_path / "a"),
              "--out-expert", str(tmp_path / "b"), "--out-summary", str(tmp_path / "c")])  # fmt: skip
    assert e.value.code == 2
    assert "mined no snapshot" in caplog.text and "phase0.a_tasks" in caplog.text and "env.id" in caplog.text
