"""Trace queries and the SFT export, on every family's actions (the ``family`` fixture)."""
import json

import pandas as pd
import pytest

from teachable.cli import main
from teachable.traces import export_sft_jsonl, query_traces

VA = ["turn left", "turn right", "go forward"]


def _episode(eid, success, ret, actions, experiment="A", source="student", env_id="BabyAI-GoToLocal-v0", va=VA):
    return [
        dict(experiment=experiment, episode_id=eid, task_id=f"env:{eid}", env_id=env_id, seed=1,
             step_idx=i, instruction="go to the box", observation=f"obs {i}", valid_actions=va,
             history=actions[max(0, i - 2):i], action=a, source=source, action_prob=0.5, U=1.0,
             reward=ret if (success and i == len(actions) - 1) else 0.0, done=i == len(actions) - 1,
             episode_success=success, episode_return=ret, episode_length=len(actions))
        for i, a in enumerate(actions)
    ]


@pytest.fixture
def va(family):
    return list(family.actions[:3])  # BabyAI: VA


@pytest.fixture
def rollouts(tmp_path, family, va):
    left, right, forward = va
    ep = dict(env_id=family.env_id, va=va)
    rows = (_episode("e1", True, 0.9, [forward, left], **ep)
            + _episode("e2", False, 0.0, [left] * 5, **ep)
            + _episode("e3", True, 0.5, [forward, "<invalid>", forward, right], **ep)
            + _episode("b1", True, 0.95, [forward], experiment="B", source="expert", **ep))
    p = tmp_path / "rollouts.parquet"
    pd.DataFrame(rows).to_parquet(p)
    return p


def test_filters_by_reward_turns_and_success(rollouts):
    steps, stats = query_traces(rollouts, min_reward=0.6)
    assert set(steps["episode_id"]) == {"e1", "b1"}
    steps, stats = query_traces(rollouts, max_turns=2, success_only=True, experiment="A")
    assert set(steps["episode_id"]) == {"e1"}
    assert stats["all"]["episodes"] == 4 and stats["all"]["successes"] == 3
    assert stats["kept"] == {"episodes": 1, "successes": 1, "mean_return": 0.9, "mean_length": 2.0, "steps": 2}
    steps, _ = query_traces(rollouts, source="expert")
    assert set(steps["episode_id"]) == {"b1"}


def test_export_is_chat_messages_and_skips_invalid_actions(rollouts, va, tmp_path):
    steps, _ = query_traces(rollouts, experiment="A", success_only=True)
    out = tmp_path / "sft.jsonl"
    n = export_sft_jsonl(steps, out)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert n == len(recs) == 5  # 2 + 4 steps, one invalid output dropped
    for r in recs:
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert r["messages"][-1]["content"] in va


def test_cli_stats_only_writes_nothing(rollouts, tmp_path, capsys):
    main(["traces", str(rollouts), "--success-only", "--stats-only"])
    stats = json.loads(capsys.readouterr().out)
    assert stats["kept"]["episodes"] == 3
    assert not list(tmp_path.glob("*.jsonl"))


def test_missing_rollouts_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        query_traces(tmp_path / "nope.parquet")


def test_atomic_outputs_get_the_mode_a_plain_write_would(tmp_path):
    import os
    import stat

    from teachable.io import write_json

    old = os.umask(0o022)
    try:
        write_json({"a": 1}, tmp_path / "x.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


def test_min_achievements_and_excluded_tasks(rollouts, tmp_path, capsys):
    df = pd.read_parquet(rollouts)
    n_ach = {"e1": 3, "e2": 0, "e3": 1, "b1": 5}  # Crafter episodes: the achievements they unlocked
    df["episode_achievements"] = [[f"a{i}" for i in range(n_ach[e])] for e in df["episode_id"]]
    p = tmp_path / "crafter.parquet"
    df.to_parquet(p)
    steps, stats = query_traces(p, min_achievements=1, exclude_tasks=["env:b1"])
    assert set(steps["episode_id"]) == {"e1", "e3"}
    assert stats["kept"]["mean_achievements"] == pytest.approx(2.0) and stats["all"]["mean_achievements"] == 2.25
    steps, _ = query_traces(p, min_achievements=3, success_only=True)
    assert set(steps["episode_id"]) == {"e1", "b1"}
    main(["traces", str(p), "--min-achievements", "4", "--stats-only"])
    assert json.loads(capsys.readouterr().out)["kept"]["episodes"] == 1
    with pytest.raises(ValueError, match="needs the episode_achievements column"):  # BabyAI traces have none
        query_traces(rollouts, min_achievements=1)


def test_stats_do_not_depend_on_the_row_order_of_the_file(tmp_path):
    """The means are summed in episode order: the same episodes written in another row order give
    bit-identical stats (a resumed run must equal an uninterrupted one)."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = [r for k in range(300) for r in _episode(f"e{k:03d}", bool(k % 3), float(rng.random()), ["go forward"] * (1 + k % 4))]
    df = pd.DataFrame(rows)
    stats = []
    for n, order in enumerate([np.arange(len(df)), rng.permutation(len(df)), rng.permutation(len(df))[::-1]]):
        p = tmp_path / f"r{n}.parquet"
        df.iloc[order].to_parquet(p)
        stats.append(query_traces(p, success_only=True)[1])
    assert stats[0] == stats[1] == stats[2]
    kept = df.drop_duplicates("episode_id").query("episode_success")
    assert stats[0]["kept"]["mean_return"] == pytest.approx(kept["episode_return"].mean(), rel=1e-12)
