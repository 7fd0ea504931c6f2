"""The rules of crafter 1.8.3 as the expert and the diagnosis read them, from crafter's own data
(``crafter/data.yaml`` via ``crafter.constants``), plus the goal phrases of the missions.

- ``SOURCE``: item -> the material that gives it when the player faces it and acts (``collect``);
  ``REQUIRES``: material -> the tools it needs; ``LEAVES``: what the material turns into.
  (In 1.8.3 a tree turns into grass when its wood is taken, so wood is finite.)
- ``PLACE`` / ``MAKE``: what placing / making costs, where a placed thing may go, which stations
  must be within the 3 x 3 square around the player for making.
- ``TECH``: achievement -> the achievements that must come first (its tools, stations and
  materials), the tech tree both the expert and the diagnosis walk.
"""

from __future__ import annotations

from crafter import constants

ACHIEVEMENTS: tuple[str, ...] = tuple(constants.achievements)
ITEM_MAX: dict[str, int] = {k: int(v["max"]) for k, v in constants.items.items()}
WALKABLE: tuple[str, ...] = tuple(constants.walkable)  # grass, sand, path

SOURCE: dict[str, str] = {
    item: material for material, info in constants.collect.items() for item in info["receive"]
}  # wood: tree, stone: stone, coal: coal, iron: iron, diamond: diamond, drink: water, sapling: grass
REQUIRES: dict[str, dict[str, int]] = {m: dict(info["require"]) for m, info in constants.collect.items()}
LEAVES: dict[str, str] = {m: info["leaves"] for m, info in constants.collect.items()}
CHANCE: dict[str, float] = {m: float(info.get("probability", 1.0)) for m, info in constants.collect.items()}
PLACE: dict[str, dict] = {k: dict(v) for k, v in constants.place.items()}  # stone, table, furnace, plant
MAKE: dict[str, dict] = {k: dict(v) for k, v in constants.make.items()}  # the six tools
TOOLS: tuple[str, ...] = tuple(MAKE)
SWORD_DAMAGE = (("iron_sword", 5), ("stone_sword", 3), ("wood_sword", 2))  # crafter's damage table
CREATURE_HEALTH = {"zombie": 5, "skeleton": 3, "cow": 3}

GOAL_WORDS: dict[str, str] = {
    "collect_coal": "collect coal",
    "collect_diamond": "collect a diamond",
    "collect_drink": "drink water",
    "collect_iron": "collect iron",
    "collect_sapling": "collect a sapling",
    "collect_stone": "collect stone",
    "collect_wood": "collect wood",
    "defeat_skeleton": "defeat a skeleton",
    "defeat_zombie": "defeat a zombie",
    "eat_cow": "eat a cow",
    "eat_plant": "eat a ripe plant",
    "make_iron_pickaxe": "make an iron pickaxe",
    "make_iron_sword": "make an iron sword",
    "make_stone_pickaxe": "make a stone pickaxe",
    "make_stone_sword": "make a stone sword",
    "make_wood_pickaxe": "make a wood pickaxe",
    "make_wood_sword": "make a wood sword",
    "place_furnace": "place a furnace",
    "place_plant": "place a plant",
    "place_stone": "place stone",
    "place_table": "place a table",
    "wake_up": "sleep and wake up",
}
assert set(GOAL_WORDS) == set(ACHIEVEMENTS), sorted(set(GOAL_WORDS) ^ set(ACHIEVEMENTS))


def item_achievement(item: str) -> str:
    """The achievement that first gives ``item``: ``collect_wood``, ``make_wood_pickaxe``."""
    return f"make_{item}" if item in MAKE else f"collect_{item}"


def _needs(achievement: str) -> set[str]:
    kind, _, what = achievement.partition("_")
    if kind == "collect":
        return {item_achievement(t) for t in REQUIRES[SOURCE[what]]}
    if kind == "place":
        return {item_achievement(i) for i in PLACE[what]["uses"]}
    if kind == "make":
        stations = {f"place_{s}" for s in MAKE[what]["nearby"]}
        return stations | {item_achievement(i) for i in MAKE[what]["uses"]}
    if achievement == "eat_plant":
        return {"place_plant"}
    return set()  # eat_cow, defeat_zombie, defeat_skeleton, wake_up: nothing to hold first


TECH: dict[str, frozenset[str]] = {a: frozenset(_needs(a)) for a in ACHIEVEMENTS}


def prerequisites(achievement: str) -> set[str]:
    """Every achievement the tech tree puts before ``achievement`` (transitively)."""
    if achievement not in TECH:
        raise ValueError(f"unknown Crafter achievement {achievement!r}; known: {ACHIEVEMENTS}")
    out: set[str] = set()
    todo = list(TECH[achievement])
    while todo:
        a = todo.pop()
        if a not in out:
            out.add(a)
            todo.extend(TECH[a])
    return out
