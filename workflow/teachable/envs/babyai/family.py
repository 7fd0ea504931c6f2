"""The MiniGrid/BabyAI family as the registry lists it (``envs.family.Family``): every level
gymnasium knows once ``minigrid`` is imported, six named actions, no options, no episode columns
beyond success, reward and steps."""

from __future__ import annotations

from ..action_space import FiniteActionSpace
from ..family import PRIVILEGED_EXPERT, Family


def level_ids() -> list[str]:
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the ids)

    return sorted(k for k in gym.envs.registry if k.startswith(FAMILY.prefixes))


def action_space() -> FiniteActionSpace:
    from .actions import ACTIONS, mentioned_actions

    return FiniteActionSpace(ACTIONS, mentioned_actions)


FAMILY = Family(
    "babyai", ("BabyAI-", "MiniGrid-"), level_ids, ("teachable.envs.babyai", "BabyAITextEnv"),
    frozenset({PRIVILEGED_EXPERT}), "MiniGrid/BabyAI (6 actions; success = the mission done)",
    action_space=action_space,
)  # fmt: skip
