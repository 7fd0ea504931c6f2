"""Environment ids -> ``TextEnv`` instances.

- ``BabyAI-*`` / ``MiniGrid-*``: any id that gymnasium knows once ``minigrid`` is imported ->
  ``BabyAITextEnv`` (the BabyAI bot expert needs a BabyAI level; plain MiniGrid ids have no
  instruction to plan for).
- ``Crafter*``: ``CrafterReward-v1`` / ``CrafterNoReward-v1`` (crafter's two ids: with and without
  its reward) -> ``CrafterTextEnv`` (17 actions, success = a configured goal achievement); any
  other ``Crafter*`` id is an error naming it.
- ``HTMLExtract*``: planned (free-form multi-turn tool calls), not implemented yet.

Each family's class is imported on first use (``env_class``), so importing the registry stays
cheap; ``mentioned_actions(env_id, text)`` reaches a family's action vocabulary without building
an environment.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from .base import TextEnv

CRAFTER_IDS = {"CrafterReward-v1": True, "CrafterNoReward-v1": False}  # id -> crafter's reward on
PLANNED_FAMILIES = {
    "HTMLExtract": "HTML extraction (free-form multi-turn tool calls; success = graded reward >= 0.5)",
}
_MINIGRID_PREFIXES = ("BabyAI-", "MiniGrid-")
# family -> (module, class) of its TextEnv, imported on first use
_FAMILY_CLASSES = {
    "babyai": ("teachable.envs.babyai", "BabyAITextEnv"),
    "crafter": ("teachable.envs.crafter", "CrafterTextEnv"),
}


def known_env_ids(prefix: str = "BabyAI-") -> list[str]:
    """The registered gymnasium ids starting with ``prefix`` (``BabyAI-`` or ``MiniGrid-``)."""
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the ids)

    return sorted(k for k in gym.envs.registry if k.startswith(prefix))


def check_env_id(env_id: str) -> str:
    """The family of a known env id; a clear error for an unknown or planned one."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id must be a non-empty string, got {env_id!r}")
    if env_id.startswith("Crafter"):
        if env_id in CRAFTER_IDS:
            return "crafter"
        raise ValueError(
            f"unknown Crafter env id {env_id!r}: the Crafter family has the ids "
            f"{', '.join(repr(i) for i in CRAFTER_IDS)} (crafter's reward on / off)"
        )
    for prefix, what in PLANNED_FAMILIES.items():
        if env_id.startswith(prefix):
            raise NotImplementedError(
                f"env id {env_id!r}: the {what} family is planned but not implemented yet; "
                f"the implemented ids are BabyAI-*/MiniGrid-* and {', '.join(CRAFTER_IDS)}"
            )
    if env_id.startswith(_MINIGRID_PREFIXES):
        known = known_env_ids(env_id.split("-", 1)[0] + "-")
        if env_id in known:
            return "babyai"
        close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown env id {env_id!r}: gymnasium has no such MiniGrid/BabyAI id.{hint} List the "
            f"valid ones with teachable.envs.registry.known_env_ids('BabyAI-') (or 'MiniGrid-'), "
            f"e.g. BabyAI-GoToLocal-v0."
        )
    raise ValueError(
        f"unknown env id {env_id!r}: supported families are BabyAI-*/MiniGrid-* (any id in "
        f"gymnasium's registry after `import minigrid`; list them with "
        f"teachable.envs.registry.known_env_ids('BabyAI-')) and Crafter "
        f"({', '.join(CRAFTER_IDS)}); planned: "
        f"{', '.join(p + '*' for p in PLANNED_FAMILIES)}."
    )


def env_class(env_id: str) -> type[TextEnv]:
    """The ``TextEnv`` class of ``env_id``'s family (a clear error for an unknown id)."""
    family = check_env_id(env_id)
    module, name = _FAMILY_CLASSES[family]
    return getattr(importlib.import_module(module), name)


def make_env(env_id: str, max_steps: int | None = None, **options: Any) -> TextEnv:
    """A fresh text environment for ``env_id`` (call ``reset(seed)`` before use). ``options``
    go to the family's constructor (Crafter: ``goal``, ``end_on_success``); BabyAI takes none
    but ``omniscient_expert``, and an option a family does not know is a TypeError."""
    return env_class(env_id)(env_id, max_steps=max_steps, **options)


def mentioned_actions(env_id: str, text: str) -> dict[str, str]:
    """Every action of ``env_id``'s family that ``text`` names or paraphrases, with the phrase
    found (the family parser's vocabulary; see ``TextEnv.mentioned_actions``)."""
    return env_class(env_id).mentioned_actions(text)


__all__ = [
    "CRAFTER_IDS",
    "PLANNED_FAMILIES",
    "check_env_id",
    "env_class",
    "known_env_ids",
    "make_env",
    "mentioned_actions",
]
