"""BabyAI under BALROG's protocol (``env.protocol: balrog``): the mixed local level's mission-kind
mix, the invalid-answer rule, BALROG's observation text, and the bench's success per mission kind."""

from __future__ import annotations

import collections

import numpy as np
import pandas as pd
import pytest
from test_bench import SPLITS, UniformStudent, within

from teachable.bench import bench_config, bench_episodes, bench_results
from teachable.envs import INVALID_ACTION
from teachable.envs.babyai.levels import DOOR_COLORS, EXCLUDED, KINDS, MIXED_LOCAL_ID, mission_kind_of
from teachable.envs.babyai.missions import BALROG_KINDS
from teachable.envs.babyai.text import describe_view
from teachable.envs.registry import env_options, make_env, parse_action, task_archetype
from teachable.evaluation_tables import family_metrics_table

# a kind -> the archetypes (``missions.mission_archetype``) its missions read as
ARCHETYPES = {"goto": {"go to"}, "pickup": {"pick up"}, "open": {"open"}, "putnext": {"put next to"},
              "pick_up_seq_go_to": {"pick up, then go to", "go to after you pick up"}}  # fmt: skip


def objects(env) -> list[tuple[str, str]]:
    """(type, colour) of every key, ball, box and door on the level's grid."""
    return [(c.type, c.color) for c in env._env.grid.grid if c is not None and c.type != "wall"]


def test_the_mixed_local_level_has_balrogs_five_kinds_in_equal_shares():
    assert KINDS == BALROG_KINDS == ("goto", "pickup", "open", "putnext", "pick_up_seq_go_to")
    env = make_env(MIXED_LOCAL_ID, protocol="balrog")
    seen, orders, doors = collections.Counter(), collections.Counter(), set()
    for seed in range(200):
        obs = env.reset(seed)
        kind = env.episode_values()["mission_kind"]
        seen[kind] += 1
        assert kind == mission_kind_of(seed)
        assert task_archetype(MIXED_LOCAL_ID, obs.instruction) in ARCHETYPES[kind], (seed, obs.instruction)
        assert not any(s in obs.instruction for s in EXCLUDED), obs.instruction
        objs = objects(env)
        if kind == "open":  # two rooms, the locked door's key in the agent's room, nothing else
            (door,) = [o for o in objs if o[0] == "door"]
            assert door[1] in DOOR_COLORS and objs.count(("key", door[1])) == 1 and len(objs) == 2
            assert env._env.grid.width == 15 and any(c.type == "door" and c.is_locked for c in env._env.grid.grid if c)
            doors.add(obs.instruction)
        else:  # one room, the mission's objects only (BALROG: no distractors)
            assert env._env.grid.width == 8 and len(objs) == (1 if kind in ("goto", "pickup") else 2), (seed, objs)
        orders[task_archetype(MIXED_LOCAL_ID, obs.instruction)] += kind == "pick_up_seq_go_to"
    assert seen == {k: 40 for k in KINDS}  # BALROG plays as many episodes of each kind
    assert orders["pick up, then go to"] > 10 and orders["go to after you pick up"] > 10
    assert "open the door" in doors and len(doors) > 2  # the door named by colour or not
    again = make_env(MIXED_LOCAL_ID)
    assert again.reset(37).instruction == env.reset(37).instruction  # a seed is one task


@pytest.mark.parametrize("seed", range(10))
def test_the_expert_solves_every_kind(seed):
    env = make_env(MIXED_LOCAL_ID, protocol="balrog")
    env.reset(seed)
    total = 0.0
    while not env.done:
        total += env.step(env.expert_action()).reward
    assert env.is_success(total, {})


def forward_moves(env) -> int:
    """A seed of ``env`` where going forward from the start moves the agent."""
    for seed in range(50):
        env.reset(seed)
        start = env.state_key()[0]
        env.step("go forward")
        if env.state_key()[0] != start:
            return seed
    raise AssertionError("no seed where the agent can go forward")


def test_an_unparseable_answer_goes_forward_under_balrog_and_is_a_noop_under_study():
    answer = "I would rather think about it first."
    assert parse_action(MIXED_LOCAL_ID, answer, "lenient") is None
    balrog, study = make_env(MIXED_LOCAL_ID, protocol="balrog"), make_env(MIXED_LOCAL_ID)
    seed = forward_moves(balrog)
    balrog.reset(seed)
    res = balrog.step(INVALID_ACTION)
    assert res.info["invalid_action"] is True
    after = balrog.state_key()
    balrog.reset(seed)
    balrog.step("go forward")
    assert balrog.state_key() == after and res.observation == balrog.observation()
    study.reset(seed)
    before = study.state_key()
    assert study.step(INVALID_ACTION).info["invalid_action"] is True
    assert study.state_key()[0] == before[0] and study.state_key()[1:3] == before[1:3]
    assert study.state_key()[3] == before[3] + 1 and study.state_key()[4] == before[4]


def view(cells: dict[tuple[int, int], tuple[int, int, int]]) -> np.ndarray:
    """A 7x7 egocentric view of empty floor with ``cells`` ((column, row) -> triple) set."""
    image = np.zeros((7, 7, 3), dtype=np.uint8)
    image[:, :, 0] = 1
    for pos, triple in cells.items():
        image[pos] = triple
    return image


def test_balrogs_text_hides_a_wall_behind_an_object_and_writes_a_open_door():
    # the agent at (3, 6) facing row 0: a red ball 1 ahead, a wall 3 ahead, an open blue door left
    image = view({(3, 5): (6, 0, 0), (3, 3): (2, 5, 0), (1, 6): (4, 2, 0)})
    study, balrog = describe_view(image), describe_view(image, "balrog")
    assert study == ["a wall 3 steps forward", "an open blue door 2 steps left", "a red ball 1 step forward"]
    assert balrog == ["a open blue door 2 steps left", "a red ball 1 step forward"]
    with pytest.raises(ValueError, match="balrg"):
        describe_view(image, "balrg")


def test_the_protocol_is_a_checked_option_and_the_study_text_is_the_default():
    assert env_options({"id": MIXED_LOCAL_ID, "protocol": "balrog"}) == {"protocol": "balrog"}
    with pytest.raises(ValueError, match=r"env.protocol='balrg'.*Did you mean 'balrog'"):
        env_options({"id": MIXED_LOCAL_ID, "protocol": "balrg"})
    with pytest.raises(ValueError, match="env.protocol='balrg'"):
        make_env(MIXED_LOCAL_ID, protocol="balrg")
    default, study = make_env("BabyAI-GoToLocal-v0"), make_env("BabyAI-GoToLocal-v0", protocol="study")
    assert default.reset(5) == study.reset(5) and default.episode_values() == {}


def test_the_bench_reports_success_per_mission_kind():
    cfg = bench_config({"seed": 0, "env": {"id": MIXED_LOCAL_ID, "max_steps": 12, "protocol": "balrog"},
                        "splits": SPLITS, "bench": {"tasks": 10, "rollouts_per_task": 2},
                        "phase3": {"n_bootstrap": 200}})  # fmt: skip
    eps = bench_episodes("uniform", UniformStudent(), cfg, progress=False)
    assert (eps["mission_kind"] == [mission_kind_of(s) for s in eps["seed"]]).all()
    res = bench_results(eps, "uniform", None, 0.95, 200, 0)
    for k in KINDS:
        g = eps[eps["mission_kind"] == k]
        m = res[f"success_{k}"]
        assert m["n"] == len(g) == 4 and m["n_tasks"] == 2 and m["value"] == pytest.approx(g["success"].mean()), k
        assert m["ci95"][0] - 1e-12 <= m["value"] <= m["ci95"][1] + 1e-12
    assert res["n"] == len(eps) == 20 and within(res["metrics"]["success_rate"])
    # rollouts of another level record no kind, and have no per-kind metrics
    other = eps.drop(columns="mission_kind").assign(env_id="BabyAI-GoToLocal-v0", suite="overall",
                                                    snapshot_id=None, quadrant=None)  # fmt: skip
    assert family_metrics_table(other, 0.95, 200, 0).empty
    partial = eps.iloc[:2].assign(suite="overall", snapshot_id=None, quadrant=None)
    assert list(family_metrics_table(partial, 0.95, 200, 0)["metric"]) == ["success_goto"]
