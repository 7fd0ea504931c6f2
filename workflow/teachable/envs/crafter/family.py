"""The Crafter family as the registry lists it (``envs.family.Family``): its two ids, its options
(``env.goal``, ``env.protocol``), its 17 named actions, its episode columns (the achievements unlocked and the
progression), its metrics (``metrics``) and its trace filter (``--min-achievements``). Nothing
here imports crafter until it is used."""

from __future__ import annotations

from typing import Any

from ..action_space import FiniteActionSpace
from ..family import PRIVILEGED_EXPERT, Family, TraceFilter

CRAFTER_IDS = {"CrafterReward-v1": True, "CrafterNoReward-v1": False}  # id -> crafter's reward on


def config_schema() -> dict[str, Any]:
    from .rules import ACHIEVEMENTS

    return {"goal": {"enum": [*ACHIEVEMENTS, None], "default": None,
                     "description": "the achievement whose unlock is the task's success (e.g. collect_stone; "
                                    "null = the family's default, collect_stone); null under protocol balrog"},
            "protocol": {"enum": ["study", "balrog"], "default": "study",
                         "description": "study: the episode ends at the goal, the study's compact text; balrog: "
                                        "BALROG's evaluation (no goal, no early end but death, a hidden first "
                                        "no-op, its prompt history and text; env.max_steps null = its "
                                        "2,000-step cap, a number replaces the cap; success = alive at the "
                                        "end)"}}  # fmt: skip


def action_space() -> FiniteActionSpace:
    from .actions import ACTIONS, mentioned_actions

    return FiniteActionSpace(ACTIONS, mentioned_actions)


def episode_metrics(g, bs):
    from .metrics import episode_metrics

    return episode_metrics(g, bs)


FAMILY = Family(
    "crafter", ("Crafter",), lambda: sorted(CRAFTER_IDS), ("teachable.envs.crafter", "CrafterTextEnv"),
    frozenset({PRIVILEGED_EXPERT}), "Crafter (17 actions; success = the goal achievement)",
    config_schema, "crafter", action_space,
    episode_columns={
        "achievements": ("list[str]", "the achievements unlocked in the episode (prefix included), crafter's order"),
        "progression": ("float", "achievements unlocked / 22"),
    },
    metrics=episode_metrics,
    headline_metrics=("progression", "crafter_score"),
    trace_filters=(TraceFilter("min_achievements", "len(episode_achievements) >= ?", "episode_achievements", int,
                               "keep episodes that unlocked at least this many achievements",
                               "mean_achievements", "len(episode_achievements)"),),
)  # fmt: skip
