"""Phase 0 mining on every family's real env (the ``family`` fixture): Experiment A snapshots are
the student's earliest recoverable mistakes of a failed episode."""
import pandas as pd

from teachable.mining import episode_rows, mine_failure_snapshots
from teachable.rollouts import EXPERT, RolloutSpec, expert_finishes, run_rollouts



def _episode(family, seed: int, actions: list[str], eid: str) -> pd.DataFrame:
    """One recorded episode that plays exactly ``actions`` (forced), as phase 0 stores it."""
    res = run_rollouts([RolloutSpec(family.env_id, seed, actor=EXPERT, forced=tuple(actions))], None,
                       temperature=1.0, history_len=4, max_steps=family.horizon, record_steps=True, progress=False,
                       env_options=family.options)[0]  # fmt: skip
    assert res.actions[: len(actions)] == actions
    return pd.DataFrame(episode_rows("A", eid, res))


def _expected_mistakes(family, seed: int, actions: list[str], limit: int) -> list[int]:
    """Brute force: every step t where the action differs from the expert's and the expert,
    taking over at t, succeeds; the first ``limit``."""
    env, probe = family.env(family.horizon), family.env(family.horizon)
    out = []
    for t in range(len(actions)):
        env.restore(seed, actions[:t])
        if actions[t] != env.expert_action() and expert_finishes(probe, seed, actions[:t])[0]:
            out.append(t)
    return out[:limit]


def test_snapshots_are_the_earliest_recoverable_mistakes_of_failed_episodes(family):
    MAX_STEPS, (a0, a1) = family.horizon, family.actions[:2]  # BabyAI: turn left, turn right
    env = family.env(MAX_STEPS)
    episodes, failed = [], {}
    for seed in range(8):
        env.reset(seed)
        first = env.expert_action()
        wrong = a0 if first != a0 else a1
        actions = [wrong] + [a1] * (MAX_STEPS - 1)  # spins in place (BabyAI), walks off (Crafter): fails
        ep = _episode(family, seed, actions, f"A-{seed}-0")
        if not ep["episode_success"].iloc[0]:
            failed[f"A-{seed}-0"] = (seed, ep["action"].tolist())
        episodes.append(ep)
    solved = _episode(family, 0, [], "A-0-1")  # the expert itself: a success gives no snapshot
    assert solved["episode_success"].iloc[0]
    rollouts = pd.concat([*episodes, solved], ignore_index=True)
    cfg = {"seed": 0, "env": family.env_cfg(max_steps=MAX_STEPS), "phase0": {"mining": {"per_episode": 2}}}
    snaps, summary = mine_failure_snapshots(rollouts, cfg)
    assert failed and set(snaps["episode_id"]) <= set(failed)
    for eid, (seed, actions) in failed.items():
        got = snaps[snaps["episode_id"] == eid].sort_values("step_idx")
        assert got["step_idx"].tolist() == _expected_mistakes(family, seed, actions, 2)
        for _, s in got.iterrows():
            t = s["step_idx"]
            assert list(s["actions"]) == actions[:t] and s["student_action"] == actions[t]
            assert s["student_action"] != s["expert_action"] and s["steps_left"] == MAX_STEPS - t
    assert summary["successful_episodes"] == 1 and summary["failed_episodes"] == len(failed)
    assert summary["snapshots"] == len(snaps) and summary["mistakes"] >= len(snaps)


def test_per_episode_limit_and_no_snapshot_after_the_state_is_lost(family):
    seed, MAX_STEPS = 1, family.horizon
    actions = [family.actions[1]] * MAX_STEPS  # BabyAI: turn right
    ep = _episode(family, seed, actions, "A-1-0")
    cfg = {"seed": 0, "env": family.env_cfg(max_steps=MAX_STEPS), "phase0": {"mining": {"per_episode": 50}}}
    snaps, _ = mine_failure_snapshots(ep, cfg)
    expected = _expected_mistakes(family, seed, actions, 50)
    assert snaps["step_idx"].tolist() == expected
    # late steps leave too few steps for the expert: they are mistakes, but not recoverable
    assert max(expected) < MAX_STEPS - 1
    one, _ = mine_failure_snapshots(ep, dict(cfg, phase0={"mining": {"per_episode": 1}}))
    assert one["step_idx"].tolist() == expected[:1]
