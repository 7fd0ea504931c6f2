"""The Crafter expert's survival rules, each on a constructed state where it must fire (the
long-episode statistics are in benchmarks/bench_crafter_expert.py)."""

from __future__ import annotations

import numpy as np
from crafter import constants, objects

from test_crafter import _blank_world

from teachable.envs.crafter import expert as expert_mod
from teachable.envs.crafter.actions import ACTION_INDEX
from teachable.envs.crafter.navigation import UNREACHED, costs, facing_costs, facing_goal, search
from teachable.envs.crafter.scene import Scene, daylight
from teachable.envs.crafter.world import World

NOON, MIDNIGHT = 60, 210  # steps of crafter's 300-step day


def _field(step: int = NOON) -> World:
    """A world whose 21 x 21 square around the player (32, 32) is bare grass, no creature in it, at
    ``step`` of the day (daylight set to match)."""
    w = _blank_world((10, 10))
    w._step = step
    w._world.daylight = daylight(step)
    return w


def _act(w: World, goal: str = "collect_wood") -> str:
    return expert_mod.expert_action(w, goal)


def _apply(w: World, action: str) -> None:
    """One step of the player alone (no creature or balancing update), so that a constructed
    state stays as built."""
    w._player.action = constants.actions[ACTION_INDEX[action]]
    w._player.update()


def test_costs_are_searchs_route_costs_and_facing_costs_its_inverse():
    rng = np.random.default_rng(0)
    enter = np.where(rng.random((12, 10)) < 0.7, rng.integers(1, 5, (12, 10)), 0)
    enter[0, 0] = 1
    mine = np.where((enter == 0) & (rng.random((12, 10)) < 0.5), 3, 0)
    dist = costs(enter, mine, (0, 0), 3)
    for _ in range(30):
        target = np.zeros((12, 10), dtype=bool)
        target[tuple(rng.integers(0, (12, 10)))] = True
        route = search(enter, mine, facing_goal(target), (0, 0), 3)
        reach = facing_costs(dist)[target][0]
        assert (route is None and reach == UNREACHED) or route.cost == reach
    assert costs(enter, mine, (0, 0), 3, limit=2).max() == UNREACHED


def _pocket_with_one_open_wall(w: World) -> tuple[int, int]:
    """Stones walling the pocket P (34, 32), F (35, 32) (entrance (33, 32)) on all sides but
    (34, 33); returns that open wall."""
    for c in ((34, 31), (35, 31), (35, 33), (36, 32)):
        w._world[c] = "stone"
    return (34, 33)


def test_unfinished_shelter_keeps_the_pocket_whose_wall_the_player_stands_on():
    w = _field()
    open_wall = _pocket_with_one_open_wall(w)
    w._player.pos = np.array(open_wall)
    w._world._obj_map[32, 32] = 0
    w._world._obj_map[open_wall] = w._world._objects.index(w._player) + 1
    w._player.inventory["stone"] = 2
    s = Scene(w)
    reach = facing_costs(costs(np.ones(s.shape, np.int64), np.zeros(s.shape, np.int64), s.pos, s.facing))
    walls = s.unfinished_shelter(2, 6, reach)
    assert walls is not None and walls[open_wall] and walls.sum() == 1


def test_walling_in_holds_its_target_until_the_shelter_is_closed():
    """At night with stones and no shelter near, the expert walls in the pocket next to it and is
    enclosed within a few steps (the route passes over the open wall: a choice by straight-line
    distance, or one that drops the pocket whose wall the player stands on, goes back and
    forth)."""
    w = _field(MIDNIGHT)
    _pocket_with_one_open_wall(w)
    w._player.inventory.update(stone=3, wood_pickaxe=1, wood_sword=1)
    seen = []
    for _ in range(12):
        if Scene(w).enclosed:
            break
        action = _act(w)
        seen.append(tuple(int(v) for v in w._player.pos))
        _apply(w, action)
    assert Scene(w).enclosed, seen


def test_guarding_a_plant_never_mines_a_guard_stone_back():
    """The plant's last open side (north) is cheapest to reach through the guard stone just
    placed (east): the expert must not take that stone back (it used to, placing and mining it
    in turn until the night came)."""
    w = _field()
    w._world.add(objects.Plant(w._world, np.array((34, 30))))
    for x in range(30, 39):
        for y in range(26, 35):
            w._world[(x, y)] = "water"
    for c in ((35, 31), (35, 29), (36, 29), (34, 29)):
        w._world[c] = "grass"
    for c in ((33, 30), (34, 31), (35, 30)):  # west, south, east of the plant
        w._world[c] = "stone"
    w._world.move(w._player, np.array((35, 31)))
    w._player.facing = (0, -1)  # at the east guard
    w._player.inventory.update(stone=2, wood_pickaxe=1, wood_sword=1, sapling=0)
    w._player.achievements.update(collect_sapling=1, place_plant=1)
    assert _act(w, "eat_plant") != "Do"


def test_by_day_a_cow_at_hand_is_eaten_at_food_5_not_at_6():
    w = _field()
    w._world.add(objects.Cow(w._world, np.array((29, 32))))
    w._world[(35, 32)] = "tree"
    w._player.inventory.update(wood_sword=1, food=6)
    assert _act(w) == "Move East"  # the tree
    w._player.inventory["food"] = 5
    assert _act(w) == "Move West"  # the cow first


def test_at_dusk_it_gets_into_a_shelter_at_noon_it_works_on():
    for step, enclosed in ((NOON, False), (125, True)):  # daylight 0.99, then 0.76 and fading
        w = _field(step)
        _pocket_with_one_open_wall(w)
        w._world[(34, 33)] = "stone"  # the pocket is whole: only its entrance is open
        w._world[(28, 32)] = "tree"
        w._player.inventory.update(stone=3, wood_pickaxe=1, wood_sword=1, wood=9)
        w._player.achievements.update(collect_wood=1)
        for _ in range(8):
            _apply(w, _act(w, "collect_wood" if step == NOON else "make_wood_pickaxe"))
        assert Scene(w).enclosed == enclosed
