"""The seams between generic code and the environment families: generic modules (everything in
``workflow/teachable`` outside ``envs/``) name no family and no achievement, docstrings
included; they ask the registry (``envs.registry``), whose families declare their action space,
columns, metrics, trace filters and options (``envs.family.Family``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from teachable.envs import registry
from teachable.envs.action_space import ActionSpace, FiniteActionSpace
from teachable.envs.base import INVALID_ACTION

PACKAGE = Path(__file__).resolve().parents[1] / "workflow" / "teachable"
# the HTML-extraction family by its ids and name, not the word "html" (a report is report.html)
FAMILY_WORDS = re.compile(r"babyai|minigrid|crafter|html[ _-]?extract", re.IGNORECASE)
BABYAI, CRAFTER = "BabyAI-GoToLocal-v0", "CrafterReward-v1"


def generic_modules() -> list[Path]:
    mods = sorted(p for p in PACKAGE.rglob("*.py") if "envs" not in p.relative_to(PACKAGE).parts)
    assert len(mods) > 20, f"found only {len(mods)} generic modules under {PACKAGE}"
    return mods


def offending_lines(pattern: re.Pattern) -> list[str]:
    return [f"{p.relative_to(PACKAGE)}:{i}: {line.strip()}" for p in generic_modules()
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]  # fmt: skip


def test_generic_modules_name_no_family():
    """A family is plugged in by its registry row only: no generic module, comment or docstring
    names one (BabyAI, MiniGrid, Crafter, HTML extraction), so a new family edits no generic module."""
    found = offending_lines(FAMILY_WORDS)
    assert not found, "generic modules name a family (ask teachable.envs.registry instead):\n" + "\n".join(found)


def test_generic_modules_name_no_achievement():
    """No generic module names one of Crafter's achievements: its metrics and filters are the
    family's (``envs/crafter/family.py``)."""
    pytest.importorskip("crafter")
    from teachable.envs.crafter.rules import ACHIEVEMENTS

    found = offending_lines(re.compile(r"\b(?:" + "|".join(map(re.escape, ACHIEVEMENTS)) + r")\b"))
    assert not found, "generic modules name an achievement:\n" + "\n".join(found)


def test_the_scan_sees_a_family_name():
    """The scan itself works: it flags a family's name in any case."""
    assert FAMILY_WORDS.search("on Crafter's student") and FAMILY_WORDS.search("a MINIGRID level")
    assert not FAMILY_WORDS.search("a family with achievements")


# ----------------------------------------------------------------------------- action spaces
@pytest.mark.parametrize("env_id", [BABYAI, CRAFTER])
def test_action_space_is_finite_with_the_envs_actions(env_id):
    """BabyAI's and Crafter's spaces are finite: their members are the env's actions, in its
    order; every member is valid and its own key; candidates are the state's menu as offered."""
    space = registry.action_space(env_id)
    actions = __import__(f"teachable.envs.{registry.family_of(env_id).name}.actions", fromlist=["ACTIONS"])
    assert isinstance(space, FiniteActionSpace) and isinstance(space, ActionSpace)
    assert space.members == actions.ACTIONS
    assert registry.action_space(env_id) is space  # one object per family
    for a in space.members:
        assert space.is_valid(a) and space.key(a) == a and space.same(a, a)
    assert not space.is_valid(INVALID_ACTION) and not space.is_valid("fly away") and not space.is_valid("")
    assert not space.same(space.members[0], space.members[1])
    assert space.candidate_actions() == space.members
    menu = space.members[:3][::-1]
    assert space.candidate_actions(menu) == menu  # the state's menu, in its order
    with pytest.raises(ValueError, match="fly away"):
        space.candidate_actions(["fly away"])


@pytest.mark.parametrize("env_id,text,action", [
    (BABYAI, "You should Turn Left now.", "turn left"),
    (BABYAI, "Pick it up.", "pick up"),
    (CRAFTER, "Place a table here.", "Place Table"),
    (CRAFTER, "Go north.", "Move North"),
])  # fmt: skip
def test_action_space_mentions_are_the_family_vocabulary(env_id, text, action):
    """``mentions`` is the family parser's vocabulary (what the teacher rules check), as the
    family module states it; a text naming no action mentions none."""
    space = registry.action_space(env_id)
    module = __import__(f"teachable.envs.{registry.family_of(env_id).name}.actions", fromlist=["mentioned_actions"])
    assert space.mentions(text) == module.mentioned_actions(text) == registry.mentioned_actions(env_id, text)
    assert action in space.mentions(text)
    assert space.mentions("The sky is blue.") == {}


def test_finite_action_space_rejects_bad_members():
    with pytest.raises(ValueError, match="distinct"):
        FiniteActionSpace(("a", "a"), lambda t: {})
    with pytest.raises(ValueError, match="distinct"):
        FiniteActionSpace((), lambda t: {})


# ------------------------------------------------------------------- what a family declares
def test_family_columns_come_from_the_family():
    """The rollout tables' family columns are the families' ``episode_columns`` (phase 0 prefixes
    them ``episode_``); a family that declares none adds none."""
    from teachable.schemas import EPISODE_TABLES, FAMILY_COLUMNS, ROLLOUT_STEPS

    assert set(FAMILY_COLUMNS) == {f.name for f in registry.FAMILIES if f.episode_columns}
    for fam in registry.FAMILIES:
        for table, prefix in EPISODE_TABLES.items():
            declared = FAMILY_COLUMNS.get(fam.name, {}).get(table, {})
            assert {c: (k.kind, k.meaning) for c, k in declared.items()} == {
                prefix + c: v for c, v in fam.episode_columns.items()}
    assert EPISODE_TABLES[ROLLOUT_STEPS.name] == "episode_"


def test_trace_filters_reach_the_cli():
    """Every family's trace filter is a flag of ``teachable traces`` and a filter key of the
    matrix's traces baseline."""
    from teachable.cli import build_parser
    from teachable.traces import FILTER_KEYS

    filters = registry.trace_filters()
    assert filters, "no family declares a trace filter"
    sub = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "traces")[1]
    flags = {o for a in sub._actions for o in a.option_strings}
    for f in filters:
        assert f.flag in flags and f.name in FILTER_KEYS


def test_unknown_trace_filter_is_named(tmp_path):
    from teachable.traces import query_traces

    with pytest.raises(ValueError, match="min_achievments"):
        query_traces(tmp_path / "r.parquet", min_achievments=1)


@pytest.mark.parametrize("env,needle", [
    ({"id": CRAFTER, "goal": "collect_stones"}, "env.goal='collect_stones'"),
    ({"id": CRAFTER, "goal": 3}, "env.goal=3"),
    ({"id": BABYAI, "goal": "collect_stone"}, "env.goal='collect_stone' is not an option of the babyai family"),
    ({"id": BABYAI, "max_step": 3}, "env.max_step=3"),
])  # fmt: skip
def test_family_options_are_checked_against_its_schema_fragment(env, needle):
    """``env`` keys beyond the generic ones are the family's options, checked against its schema
    fragment (``Family.config_schema``) when the DAG is built; the error names the key."""
    with pytest.raises(ValueError) as e:
        registry.env_options(env)
    assert needle in str(e.value)


def test_family_options_pass_through():
    assert registry.env_options({"id": CRAFTER, "goal": "collect_wood", "max_steps": 5, "history_len": 2}) == {
        "goal": "collect_wood"}
    assert registry.env_options({"id": CRAFTER, "goal": None}) == {}
    assert registry.env_options({"id": BABYAI, "max_steps": 5, "history_len": 2}) == {}


def test_family_metrics_need_the_familys_columns():
    """A family without metrics, or rollouts without the family's columns, give no metrics; a
    table mixing families is an error."""
    assert registry.family_metrics([BABYAI], ["env_id", "success"]) == (None, ())
    assert registry.family_metrics([CRAFTER], ["env_id", "success"]) == (None, ())
    fn, headline = registry.family_metrics([CRAFTER], ["env_id", "achievements", "progression"])
    assert callable(fn) and headline == registry.family_of(CRAFTER).headline_metrics
    with pytest.raises(ValueError, match="mix families"):
        registry.family_metrics([BABYAI, CRAFTER], ["achievements", "progression"])
