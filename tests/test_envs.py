"""Tests of the text environments: BabyAI textualizer, restore, parsing, expert and oracle teacher."""

from __future__ import annotations

import random
import re
import time

import numpy as np
import pytest

from teachable.envs import INVALID_ACTION, make_env, registry
from teachable.envs.babyai import (
    ACTIONS,
    BabyAITextEnv,
    classify_error,
    mentioned_actions,
    parse_action_text,
)
from teachable.envs.base import Advice, ExpertError
from teachable.envs.babyai.text import describe_view, textualize
from teachable.teachers.base import count_sentences, validate_advice

LEVELS = (
    "BabyAI-GoToLocal-v0",
    "BabyAI-PickupLoc-v0",
    "BabyAI-PutNextLocal-v0",
    "BabyAI-OpenDoor-v0",
)
# multi-room levels behind shut (and locked) doors: the expert explores its way through
MULTI_ROOM_LEVELS = ("BabyAI-GoTo-v0", "BabyAI-GoToObjMaze-v0", "BabyAI-Unlock-v0", "BabyAI-KeyCorridorS3R1-v0")
# levels of the all-states hint check: one of each mission kind, a door level, a maze
HINT_LEVELS = (
    "BabyAI-GoToLocal-v0",
    "BabyAI-PickupLoc-v0",
    "BabyAI-PutNextLocal-v0",
    "BabyAI-OpenDoor-v0",
    "BabyAI-UnlockLocal-v0",
    "BabyAI-GoToObjMaze-v0",
)
STUDENT_CHOICES = ACTIONS + (None, INVALID_ACTION)
# verbs of acting and directions the oracle's diagnosis avoids, beyond the parser's vocabulary
ACTING_WORDS = re.compile(
    r"\b(?:go|goes|going|went|mov\w*|turn\w*|rotat\w*|pick\w*|take|takes|taking|took|taken|"
    r"grab\w*|drop\w*|put|puts|putting|releas\w*|open\w*|unlock\w*|toggl\w*|advanc\w*|"
    r"forwards?|left|right|step\w*)\b",
    re.IGNORECASE,
)

# object / color indices of minigrid.core.constants
EMPTY, WALL, DOOR, KEY, BALL, BOX = 1, 2, 4, 5, 6, 7
RED, GREEN, BLUE, PURPLE = 0, 1, 2, 3
OPEN, CLOSED, LOCKED = 0, 1, 2


@pytest.fixture(scope="module")
def envs():
    return {eid: make_env(eid) for eid in LEVELS}


def _random_prefix(env, seed: int, rng: random.Random, max_len: int = 25) -> list[str]:
    """A random action prefix (with invalid steps) that does not end the episode."""
    env.reset(seed)
    prefix: list[str] = []
    for _ in range(rng.randint(0, max_len)):
        a = rng.choice(ACTIONS + (INVALID_ACTION,))
        if env.step(a).done:
            env.restore(seed, prefix)  # back to the last state before the episode ended
            break
        prefix.append(a)
    return prefix


# -- textualizer ---------------------------------------------------------------------------------


def _blank_view() -> np.ndarray:
    img = np.zeros((7, 7, 3), dtype=np.uint8)
    img[:, :, 0] = EMPTY
    return img


def test_textualizer_hand_built_view_lines_and_order():
    img = _blank_view()
    img[:, 3] = (WALL, 5, 0)  # a wall across the row 3 steps ahead
    img[0, 6] = (WALL, 5, 0)  # a wall 3 steps to the left
    img[3, 4] = (BALL, RED, 0)  # 2 steps straight ahead (does not hide the wall behind it)
    img[1, 5] = (BOX, GREEN, 0)  # 2 left, 1 forward
    img[5, 6] = (DOOR, PURPLE, LOCKED)  # 2 right, same row: stops the right wall ray
    img[3, 6] = (KEY, BLUE, 0)  # the agent's own cell = what it carries
    img[6, 0] = (0, 0, 0)  # unseen cells are skipped
    assert describe_view(img) == [
        "You carry a blue key",
        "a wall 3 steps forward",
        "a wall 3 steps left",
        "a green box 2 steps left and 1 step forward",
        "a red ball 2 steps forward",
        "a locked purple door 2 steps right",
    ]
    assert textualize(img) == "\n".join(describe_view(img))


def test_textualizer_doors_states_singular_step_and_unseen_stops_wall_ray():
    img = _blank_view()
    img[3, 5] = (DOOR, BLUE, OPEN)  # open door directly ahead: no wall line forward
    img[2, 6] = (0, 0, 0)  # unseen cell to the left: nothing visible behind it
    img[1, 6] = (WALL, 5, 0)
    img[6, 6] = (WALL, 5, 0)
    img[4, 0] = (DOOR, RED, CLOSED)
    lines = describe_view(img)
    assert lines == [
        "a wall 3 steps right",
        "an open blue door 1 step forward",
        "a closed red door 1 step right and 6 steps forward",
    ]
    assert not any(line.startswith("You carry") for line in lines)  # empty hands: no line


def test_textualizer_on_real_env_state_object_two_ahead_and_carried():
    from minigrid.core.world_object import Ball, Key

    env = BabyAITextEnv("MiniGrid-Empty-8x8-v0")
    env.reset(0)
    u = env._env
    u.agent_pos, u.agent_dir = (1, 1), 0  # top-left corner, facing right (east)
    u.grid.set(3, 1, Ball("red"))
    u.carrying = Key("blue")
    lines = describe_view(u.gen_obs()["image"])
    assert lines == [
        "You carry a blue key",
        "a wall 6 steps forward",
        "a wall 1 step left",
        "a red ball 2 steps forward",
    ]


def test_observation_has_mission_text_and_actions(envs):
    env = envs["BabyAI-GoToLocal-v0"]
    obs = env.reset(7)
    assert obs.instruction.startswith("go to ")
    assert obs.valid_actions == ACTIONS == env.valid_actions()
    assert obs.text and obs.text == env.observation().text
    assert env.steps_taken == 0 and env.max_steps == 64


# -- restore -------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", LEVELS)
def test_restore_gives_identical_observation_pos_dir_carried_and_step_count(envs, env_id):
    env = envs[env_id]
    other = BabyAITextEnv(env_id)
    rng = random.Random(LEVELS.index(env_id))
    for seed in range(12):
        prefix = _random_prefix(env, seed, rng)
        original_obs, original_state = env.observation(), env.state_key()
        for target in (env, other):  # restoring in place and in a fresh instance
            obs = target.restore(seed, prefix)
            assert obs == original_obs
            assert target.state_key() == original_state  # pos, dir, carried, step count, grid
            assert target.steps_taken == len(prefix)


def test_restore_rejects_prefix_that_ends_episode():
    env = make_env("BabyAI-GoToLocal-v0", max_steps=3)
    with pytest.raises(ValueError, match="ends the episode"):
        env.restore(0, [INVALID_ACTION] * 3)


# -- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("go forward", "go forward"),
        ("  Turn Left. ", "turn left"),
        ("PICK UP", "pick up"),
        ("toggle.", "toggle"),
        ("forward", None),
        ("turn_left", None),
        ("pickup", None),
        ('{"action": "go forward"}', None),
        ("I will go forward", None),
        ("", None),
        (INVALID_ACTION, None),
    ],
)
def test_parse_strict(text, expected):
    assert parse_action_text(text, "strict") == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("go forward", "go forward"),
        ("forward", "go forward"),
        ("Move forward.", "go forward"),
        ("left", "turn left"),
        ("turn_left", "turn left"),
        ("Turn to the right!", "turn right"),
        ("pickup", "pick up"),
        ("pick up the key", "pick up"),
        ("Pick it up", "pick up"),
        ('{"action": "go forward"}', "go forward"),
        ('```json\n{"action": "left"}\n```', "turn left"),
        ("Action: toggle", "toggle"),
        ("The key is ahead of me, so I should go forward.", "go forward"),
        ("drop it", "drop"),
        ("turn left, then go forward", None),  # two different actions: ambiguous
        ("I could pick up the ball or drop the key", None),
        ("dance", None),
        ("", None),
        (INVALID_ACTION, None),
    ],
)
def test_parse_lenient(text, expected):
    assert parse_action_text(text, "lenient") == expected


def test_parse_action_method_matches_function(envs):
    env = envs["BabyAI-GoToLocal-v0"]
    assert env.parse_action("forward") is None
    assert env.parse_action("forward", "lenient") == "go forward"
    for a in ACTIONS:
        assert env.parse_action(a) == a and env.parse_action(a.upper() + ".", "lenient") == a
    with pytest.raises(ValueError):
        env.parse_action("go forward", "fuzzy")


# -- invalid action ------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", LEVELS)
def test_invalid_action_is_a_noop_that_consumes_a_step(envs, env_id):
    env = envs[env_id]
    rng = random.Random(3)
    for seed in range(6):
        _random_prefix(env, seed, rng, max_len=10)
        before_obs, (pos, d, carried, steps, grid) = env.observation(), env.state_key()
        res = env.step(INVALID_ACTION)
        assert res.info["invalid_action"] and res.reward == 0.0 and not res.terminated
        assert res.observation == before_obs
        assert env.state_key() == (pos, d, carried, steps + 1, grid)
        assert env.steps_taken == steps + 1


def test_invalid_actions_still_truncate_at_the_step_limit():
    env = make_env("BabyAI-GoToLocal-v0", max_steps=5)
    assert env.max_steps == 5
    env.reset(1)
    results = [env.step(INVALID_ACTION) for _ in range(5)]
    assert [r.truncated for r in results] == [False] * 4 + [True]
    assert env.steps_taken == 5 and not env.is_success(
        sum(r.reward for r in results), results[-1].info
    )
    with pytest.raises(RuntimeError):
        env.step("go forward")


def test_step_rejects_unparsed_text(envs):
    env = envs["BabyAI-GoToLocal-v0"]
    env.reset(0)
    with pytest.raises(ValueError, match="parse_action"):
        env.step("forward")


# -- expert --------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", LEVELS + MULTI_ROOM_LEVELS)
def test_expert_success_rate_on_30_seeds(envs, env_id):
    env = envs[env_id] if env_id in envs else make_env(env_id)
    wins = 0
    for seed in range(1000, 1030):
        env.reset(seed)
        total = 0.0
        while True:
            res = env.step(env.expert_action())
            total += res.reward
            if res.done:
                break
        assert res.info["success"] == env.is_success(total, res.info)
        wins += env.is_success(total, res.info)
    assert wins / 30 >= 0.9, f"{env_id}: expert solved {wins}/30"


@pytest.mark.parametrize("env_id", LEVELS)
def test_expert_solves_from_restored_mid_episode_states(envs, env_id):
    """A bot re-created on a restored state (after arbitrary student actions) still solves it."""
    env = envs[env_id]
    rng = random.Random(11)
    solved = tried = 0
    for seed in range(20):
        prefix = _random_prefix(env, seed, rng)
        env.restore(seed, prefix)
        tried += 1
        total = 0.0
        try:
            while True:
                res = env.step(env.expert_action())
                total += res.reward
                if res.done:
                    break
        except ExpertError:
            assert env.vanished_mission_objects(), "the expert may only give up on a broken mission"
            continue
        solved += env.is_success(total, res.info)
    if env_id == "BabyAI-GoToLocal-v0":
        assert solved == tried
    assert solved / tried >= 0.9


def test_expert_map_is_the_agents_region_behind_shut_doors():
    env = make_env("BabyAI-GoToObjMaze-v0")
    env.reset(2)
    grid = env._env.grid
    mask = env.region_mask()
    doors = [(i, j) for i in range(grid.width) for j in range(grid.height)
             if grid.get(i, j) is not None and grid.get(i, j).type == "door"]  # fmt: skip
    assert 0 < mask.sum() < mask.size  # the agent's room, not the whole maze
    assert mask[tuple(env._env.agent_pos)]
    shut = [d for d in doors if mask[d] and not grid.get(*d).is_open]
    assert shut  # the doors bounding the room are on the map; what lies behind them is not
    env.expert_action()  # a map of the whole maze made the bot assert here (no path through shut doors)


def test_expert_action_is_stable_within_a_state_and_cache_survives_own_actions(envs):
    env = envs["BabyAI-PutNextLocal-v0"]
    env.reset(5)
    a1 = env.expert_action()
    assert env.expert_action() == a1 == env.expert_action()  # querying twice must not replan
    bot = env._bot
    env.step(a1)
    assert env._bot is bot  # advanced by its own action: kept
    a2 = env.expert_action()
    wrong = next(a for a in ("turn left", "turn right") if a != a2)
    env.step(wrong)
    assert env._bot is None  # another action: dropped, re-planned on the next query
    env.expert_action()
    assert env._bot is not None and env._bot is not bot


def test_expert_queries_do_not_perturb_the_world(envs):
    """Asking for advice at every state leaves the trajectory exactly replayable."""
    env = envs["BabyAI-PickupLoc-v0"]
    rng = random.Random(9)
    env.reset(4)
    prefix = []
    for _ in range(20):
        env.expert_advice(rng.choice(ACTIONS))
        a = rng.choice(("turn left", "turn right", "go forward", "drop", INVALID_ACTION))
        if env.step(a).done:
            break
        prefix.append(a)
    state, obs = env.state_key(), env.observation()
    fresh = BabyAITextEnv("BabyAI-PickupLoc-v0")
    assert fresh.restore(4, prefix) == obs and fresh.state_key() == state


def test_expert_of_plain_minigrid_id_is_not_implemented():
    env = make_env("MiniGrid-Empty-5x5-v0")
    env.reset(0)
    with pytest.raises(NotImplementedError):
        env.expert_action()


# -- oracle teacher ------------------------------------------------------------------------------


def _check_advice_at_every_choice(env) -> None:
    """The oracle's advice for every student choice at the current state passes the hint check
    (where the expert has no action, the diagnosis alone is checked beside a dummy action)."""
    for student in STUDENT_CHOICES:
        adv = env.expert_advice(student)
        if adv.ok:
            assert adv.error_type == classify_error(student, adv.suggested_action)
        else:
            assert adv.suggested_action is None and adv.failure_reason
            adv = Advice(suggested_action=ACTIONS[0], diagnosis=env.diagnose(student), error_type="x")
        assert validate_advice(adv, env.valid_actions(), env.mentioned_actions) is None, adv.diagnosis
        assert not ACTING_WORDS.search(adv.diagnosis), adv.diagnosis
        assert count_sentences(adv.diagnosis) == 2, adv.diagnosis
        assert ("your choice" in adv.diagnosis.lower()) == (student is not None), adv.diagnosis


def test_oracle_diagnosis_passes_the_hint_check_on_every_state_walked():
    """Random and expert actions on six levels; at each state, advice for every student choice."""
    rng = random.Random(2024)
    states, t0 = 0, time.perf_counter()
    for env_id in HINT_LEVELS:
        env = make_env(env_id)
        for seed in range(8):
            env.reset(seed)
            for _ in range(12):
                _check_advice_at_every_choice(env)
                states += 1
                try:
                    expert = env.expert_action()
                except ExpertError:
                    expert = None
                action = expert if expert is not None and rng.random() < 0.7 else rng.choice(ACTIONS)
                if env.step(action).done:
                    break
    print(f"hint check: {states} states x {len(STUDENT_CHOICES)} choices in {time.perf_counter() - t0:.1f}s")
    assert states >= 300


class _Untouchable:
    """Stands in for the expert's bot: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the diagnosis read the expert's bot ({name})")


def test_diagnosis_does_not_depend_on_the_expert(envs, monkeypatch):
    env = envs["BabyAI-PutNextLocal-v0"]
    rng = random.Random(1)
    for seed in range(6):
        prefix = _random_prefix(env, seed, rng, max_len=12)
        env.restore(seed, prefix)
        expert = env.expert_action()  # the bot has planned at this very state
        before = {s: env.diagnose(s) for s in STUDENT_CHOICES}
        other = next(a for a in ACTIONS if a != expert)
        with monkeypatch.context() as m:
            m.setattr(env, "_bot", _Untouchable())

            def raising(self):
                raise AssertionError("diagnose asked for the expert's action")

            m.setattr(BabyAITextEnv, "expert_action", raising)
            assert {s: env.diagnose(s) for s in STUDENT_CHOICES} == before
            m.setattr(BabyAITextEnv, "expert_action", lambda self, other=other: other)
            for s in STUDENT_CHOICES:  # another expert action: the same diagnosis
                adv = env.expert_advice(s)
                assert adv.suggested_action == other and adv.diagnosis == before[s]


def test_diagnosis_judges_every_action_of_the_env():
    from teachable.envs.babyai.diagnosis import _CHOICES

    assert set(_CHOICES) == set(ACTIONS)


def test_diagnosis_places_a_target_in_view():
    env = make_env("BabyAI-GoToLocal-v0")
    env.reset(0)
    adv = env.expert_advice("go forward")
    target = env.observation().instruction.removeprefix("go to the ")
    assert target in env.observation().text  # the student sees it ...
    assert f"The mission's {target} is at your " in adv.diagnosis and "o'clock" in adv.diagnosis  # ... so it is placed


# -- diagnosis on hand-built scenes ---------------------------------------------------------------


@pytest.fixture
def scene():
    """GoToLocal seed 0 with every object but the mission's target removed; the target stands at
    (5, 3) and the agent at (2, 3) facing +x (towards it)."""
    env = BabyAITextEnv("BabyAI-GoToLocal-v0")
    env.reset(0)
    u = env._env
    target = u.instrs.desc.obj_set[0]
    for x in range(1, u.grid.width - 1):
        for y in range(1, u.grid.height - 1):
            u.grid.set(x, y, None)
    u.put_obj(target, 5, 3)
    u.agent_pos, u.agent_dir = (2, 3), 0
    return env, u, f"the {target.color} {target.type}"


def test_scene_without_a_student_action_describes_the_front_cell(scene):
    env, _, name = scene
    assert env.diagnose(None) == (
        f"The mission's {name.removeprefix('the ')} is at your 12 o'clock, 3 cells away. "
        "The cell in front of you is empty."
    )


def test_scene_student_choices_are_judged_from_the_state(scene):
    env, u, name = scene
    second = {s: env.diagnose(s).split(". ", 1)[1] for s in ACTIONS}
    assert second["go forward"] == f"After your choice {name} would be at your 12 o'clock, 2 cells away, 1 cell nearer than now."
    assert second["turn right"] == f"After your choice {name} would be at your 9 o'clock, with the cell in front of you empty."
    assert second["turn left"] == f"After your choice {name} would be at your 3 o'clock, with the cell in front of you empty."
    for s in ("pick up", "toggle"):
        assert second[s] == "The cell in front of you is empty, so your choice would change nothing."
    assert second["drop"] == "Your hands are empty, so your choice would change nothing."
    u.agent_dir = 2  # facing -x: the wall at x = 0 is 2 cells away, the target behind
    u.agent_pos = (1, 3)
    assert env.diagnose("go forward").endswith(
        "A wall fills the cell in front of you, so your choice would leave you in place.")


def test_scene_target_out_of_view_gets_no_clock_or_distance(scene):
    """Read from the whole grid, an unseen target's clock position gave the expert's next turn away."""
    env, u, name = scene
    u.agent_dir = 2  # facing -x: the target at (5, 3) is behind the agent, out of its view
    assert u.relative_coords(5, 3) is None  # outside the agent's 7 x 7 view
    texts = {s: env.diagnose(s) for s in (None, *ACTIONS)}
    for s, text in texts.items():
        assert text.startswith(f"The mission's {name.removeprefix('the ')} is out of view. "), (s, text)
        assert "o'clock" not in text and "cells away" not in text and "nearer" not in text, (s, text)
    assert texts["go forward"].endswith("The cell in front of you is free, and after your choice you would stand in it.")
    assert texts["turn left"].endswith("After your choice you would have the cell in front of you empty.")


def test_scene_hands_boxes_and_doors(scene):
    from minigrid.core.world_object import Box, Door, Key

    env, u, name = scene
    u.carrying = Key("grey")
    assert env.diagnose("pick up").endswith("Your hands already hold the grey key, so your choice would change nothing.")
    assert env.diagnose("drop").endswith(
        "After your choice the grey key, which the mission does not need, would lie in the cell in "
        "front of you and your hands would be free.")
    u.put_obj(Door("red", is_locked=True), 3, 3)
    assert env.diagnose("toggle").endswith(
        "The locked red door fills the cell in front of you and your hands hold no red key, so "
        "your choice would change nothing.")
    u.carrying = Key("red")
    assert env.diagnose("toggle").endswith("After your choice the locked red door in front of you would be passable.")
    u.put_obj(Door("red", is_open=False), 3, 3)
    assert env.diagnose("go forward").endswith(
        "The shut red door fills the cell in front of you, so your choice would leave you in place.")
    u.put_obj(Box("green", contains=Key("blue")), 3, 3)
    assert env.diagnose("toggle").endswith(
        "After your choice the green box in front of you would vanish, leaving the blue key in its cell.")
    u.carrying = None
    assert env.diagnose("pick up").endswith(
        "After your choice you would hold the green box, which the mission does not need.")


# -- action vocabulary ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Rotate to your left", {"turn left": "rotate to your left"}),
        ("Move ahead", {"go forward": "move ahead"}),
        ("Grab the key", {"pick up": "grab"}),
        ("Open the door", {"toggle": "open the door"}),
        ("Unlock it", {"toggle": "unlock"}),
        ("put it down", {"drop": "put it down"}),
        ("You should advance", {"go forward": "advance"}),
        ("turning right is wrong", {"turn right": "turning right"}),
        ("go forwards", {"go forward": "go forwards"}),
        ("2 cells left", {"turn left": "left"}),
        ("the door was opened, the box taken", {"toggle": "opened", "pick up": "taken"}),
        ("pick the red key up", {"pick up": "pick the red key up"}),
        ("He went forward and released it", {"go forward": "went forward", "drop": "released"}),
        ("turn_left", {"turn left": "turn left"}),
        ("leftover, upright, opener, dropout", {}),
        ("The red key is at your 12 o'clock, 2 cells away; the door is shut.", {}),
    ],
)
def test_mentioned_actions_finds_names_aliases_and_inflections(text, expected):
    assert mentioned_actions(text) == expected


def test_every_parser_alias_is_in_the_vocabulary():
    from teachable.envs.babyai.actions import _ALIASES

    for alias, action in _ALIASES.items():
        assert action in mentioned_actions(f"You could {alias} now."), alias
        assert parse_action_text(alias, "lenient") == action


def test_vocabulary_reachable_by_class_and_by_env_id_without_an_env():
    text = "Grab it and move ahead"
    expected = {"go forward": "move ahead", "pick up": "grab it"}
    assert BabyAITextEnv.mentioned_actions(text) == expected
    assert registry.mentioned_actions("BabyAI-GoToLocal-v0", text) == expected
    with pytest.raises(ValueError, match="BabyAI-NoSuchLevel-v0"):
        registry.mentioned_actions("BabyAI-NoSuchLevel-v0", text)
    with pytest.raises(ValueError, match="Crafter-v1"):
        registry.mentioned_actions("Crafter-v1", text)
    assert registry.mentioned_actions("HTMLExtract-v0", text) == {}
    assert registry.mentioned_actions("HTMLExtract-v0", "call make_soup()")  # code names its tool


@pytest.mark.parametrize(
    "student,expert,expected",
    [
        (None, "go forward", "unknown"),
        (INVALID_ACTION, "go forward", "invalid_action"),
        ("go forward", "go forward", "correct"),
        ("turn left", "turn right", "wrong_turn"),
        ("go forward", "turn left", "moved_instead_of_turning"),
        ("turn right", "go forward", "turned_instead_of_moving"),
        ("turn left", "pick up", "missed_interaction"),
        ("toggle", "go forward", "unneeded_interaction"),
        ("drop", "toggle", "wrong_interaction"),
    ],
)
def test_error_type_categories(student, expert, expected):
    assert classify_error(student, expert) == expected


# -- registry / logs / speed ---------------------------------------------------------------------


def test_unknown_env_id_error_names_the_id_and_how_to_list_ids():
    with pytest.raises(ValueError, match="BabyAI-NoSuchLevel-v0") as e:
        make_env("BabyAI-NoSuchLevel-v0")
    assert "known_env_ids" in str(e.value)
    with pytest.raises(ValueError, match="Pong-v5"):
        make_env("Pong-v5")


def test_planned_families_raise_not_implemented(monkeypatch):
    from teachable.envs.family import Family

    planned = Family("planned", ("PlannedFamily",), lambda: [], None, frozenset(), "a planned family")
    monkeypatch.setattr(registry, "FAMILIES", (*registry.FAMILIES, planned))
    monkeypatch.setattr(registry, "PLANNED_FAMILIES", {"PlannedFamily": planned.what})
    with pytest.raises(NotImplementedError, match="planned but not implemented"):
        make_env("PlannedFamily-v0")
    with pytest.raises(ValueError, match="planned: PlannedFamily"):
        make_env("Pong-v5")


def test_level_generation_prints_nothing(capsys):
    env = make_env("BabyAI-PickupLoc-v0")  # its level generation rejects samples often
    for seed in range(40):
        env.reset(seed)
    assert capsys.readouterr().out == ""


def test_step_plus_textualize_is_well_under_a_millisecond():
    env = make_env("BabyAI-GoToLocal-v0", max_steps=10_000)
    env.reset(0)
    rng = random.Random(0)
    moves = ("turn left", "turn right", "go forward", INVALID_ACTION)
    n = 3000
    t0 = time.perf_counter()
    for _ in range(n):
        if env.step(moves[rng.randrange(4)]).done:
            env.reset(rng.randrange(10**6))
    ms = (time.perf_counter() - t0) / n * 1e3
    print(f"step + textualize: {ms:.3f} ms/step")
    assert ms < 1.0


def test_diagnosis_while_carrying_an_object_the_mission_names():
    """A carried object's cur_pos is (-1, -1): reading the mission must not index the grid there
    (PutNextLocal: the agent may hold either object of the mission, the one to move or the other)."""
    env = make_env("BabyAI-PutNextLocal-v0")
    rng = random.Random(3)
    held_named = 0
    for seed in range(60):
        env.reset(seed)
        instr = env._env.instrs
        named = {id(o) for d in (instr.desc_move, instr.desc_fixed) for o in d.obj_set}
        for _ in range(40):
            front = env._env.grid.get(*env._env.front_pos)
            a = "pick up" if front is not None and front.type in ("ball", "box", "key") else rng.choice(ACTIONS[:3])
            env.step(a)
            if env.done:
                break
            if env._env.carrying is not None and id(env._env.carrying) in named:
                for student in ACTIONS:
                    adv = env.expert_advice(student)
                    if adv.ok:
                        assert validate_advice(adv, env.valid_actions(), env.mentioned_actions) is None, adv.diagnosis
                held_named += 1
    assert held_named > 20


# ------------------------------------------------------------------------------------ archetypes
@pytest.mark.parametrize("mission, expected", [
    ("go to the red ball", "go to"),
    ("pick up a key", "pick up"),
    ("open the grey door in front of you", "open"),
    ("put the grey key next to the purple door", "put next to"),
    ("pick up the ball behind you", "pick up"),
    ("go to a blue key and go to the grey box", "go to and go to"),
    ("open the red door, then open the yellow door", "open, then open"),
    ("open the yellow door after you open the grey door", "open after you open"),
    ("put a red box next to the yellow door after you go to a door and pick up a green box",
     "put next to after you go to and pick up"),
    ("get to the green goal square", None),  # plain MiniGrid: outside BabyAI's grammar
    ("go to the red ball quickly", None),
    ("go to the red ball and dance", None),
])  # fmt: skip
def test_mission_archetype_is_the_kind_of_the_mission(mission, expected):
    from teachable.envs.babyai.missions import mission_archetype

    assert mission_archetype(mission) == expected
    assert registry.task_archetype("BabyAI-BossLevel-v0", mission) == expected


def _instr_kind(instr) -> str:
    """The archetype read from minigrid's instruction tree (not from the text)."""
    from minigrid.envs.babyai.core import verifier as v

    kinds = {v.GoToInstr: "go to", v.PickupInstr: "pick up", v.OpenInstr: "open", v.PutNextInstr: "put next to"}
    if type(instr) in kinds:
        return kinds[type(instr)]
    joint = {v.BeforeInstr: ", then ", v.AfterInstr: " after you ", v.AndInstr: " and "}[type(instr)]
    return _instr_kind(instr.instr_a) + joint + _instr_kind(instr.instr_b)


@pytest.mark.parametrize("env_id", ["BabyAI-BossLevel-v0", "BabyAI-GoToSeq-v0", "BabyAI-Synth-v0"])
def test_the_archetype_from_the_text_is_the_instruction_trees(env_id):
    """Read from the mission text, the archetype agrees with the level's own instruction object on
    every seed (the grammar covers what levelgen writes), and the levels have several."""
    env = make_env(env_id)
    seen = set()
    for seed in range(40):
        obs = env.reset(seed)
        got = registry.task_archetype(env_id, obs.instruction)
        assert got == _instr_kind(env._env.unwrapped.instrs), (seed, obs.instruction)
        seen.add(got)
    assert len(seen) >= 4, seen


def test_a_family_without_archetypes_has_none():
    pytest.importorskip("crafter")
    assert registry.task_archetype("CrafterReward-v1", "collect wood") is None
