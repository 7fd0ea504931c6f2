"""The MiniGrid/BabyAI family as the registry lists it (``envs.family.Family``): every level
gymnasium knows once ``minigrid`` is imported, plus the family's own (``levels``:
``BabyAI-MixedLocal-v0``, BALROG's level); six named actions; its option ``env.protocol`` (the
study's text and no-op for an invalid output, or BALROG's: ``env``); its episode column (the
mission kind of ``BabyAI-MixedLocal-v0``) and its metrics (success per mission kind, ``metrics``).
Nothing here imports minigrid until it is used."""

from __future__ import annotations

from typing import Any

from ..action_space import FiniteActionSpace
from ..family import PRIVILEGED_EXPERT, Family
from .missions import BALROG_KINDS


def level_ids() -> list[str]:
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the ids)

    from . import levels  # noqa: F401  (registers the family's own)

    return sorted(k for k in gym.envs.registry if k.startswith(FAMILY.prefixes))


def config_schema() -> dict[str, Any]:
    return {"protocol": {"enum": ["study", "balrog", None], "default": None,
                         "description": "study (null: the default) = the study's observation text, an invalid "
                                        "output a no-op step; balrog = BALROG's text, an invalid output goes "
                                        "forward (compare with BALROG's BabyAI on BabyAI-MixedLocal-v0)"}}  # fmt: skip


def action_space() -> FiniteActionSpace:
    from .actions import ACTIONS, mentioned_actions

    return FiniteActionSpace(ACTIONS, mentioned_actions)


def episode_metrics(g, bs):
    from .metrics import episode_metrics

    return episode_metrics(g, bs)


FAMILY = Family(
    "babyai", ("BabyAI-", "MiniGrid-"), level_ids, ("teachable.envs.babyai", "BabyAITextEnv"),
    frozenset({PRIVILEGED_EXPERT}), "MiniGrid/BabyAI (6 actions; success = the mission done)",
    config_schema, action_space=action_space,
    episode_columns={"mission_kind": ("str?", "BabyAI-MixedLocal-v0's mission kind, BALROG's task name ("
                                              + ", ".join(BALROG_KINDS) + "); absent on other levels")},
    metrics=episode_metrics,
    headline_metrics=tuple(f"success_{k}" for k in BALROG_KINDS),
)  # fmt: skip
