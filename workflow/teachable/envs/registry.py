"""Environment families, in one table (``FAMILIES``): each family's env ids, the class that
implements it (imported on first use), its capabilities and the ``env`` config keys it takes as
constructor options. The config check (``check_env_id``, run when the DAG is built), the list of
known ids (``known_env_ids``), ``make_env`` and the action vocabulary (``mentioned_actions``)
all read this table; adding a family is one row here plus its package under ``envs/``.

- ``babyai``: ``BabyAI-*`` / ``MiniGrid-*``, any id gymnasium knows once ``minigrid`` is imported
  (the BabyAI bot expert needs a BabyAI level: plain MiniGrid ids have no instruction to plan for).
- ``crafter``: ``CrafterReward-v1`` / ``CrafterNoReward-v1`` (crafter's reward on / off); success =
  the configured goal achievement (config key ``env.goal``).
- ``html``: ``HTMLExtract*``, planned (free-form multi-turn tool calls), not implemented yet.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import TextEnv

PRIVILEGED_EXPERT = "privileged_expert"  # an expert with full state access (oracle, Experiment B)


def _minigrid_ids() -> list[str]:
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the ids)

    return sorted(k for k in gym.envs.registry if k.startswith(("BabyAI-", "MiniGrid-")))


CRAFTER_IDS = {"CrafterReward-v1": True, "CrafterNoReward-v1": False}  # id -> crafter's reward on


def _crafter_choices() -> dict[str, tuple]:
    from .crafter.rules import ACHIEVEMENTS

    return {"goal": ACHIEVEMENTS}


@dataclass(frozen=True)
class Family:
    name: str
    prefixes: tuple[str, ...]  # env ids of the family start with one of these
    ids: Callable[[], list[str]]  # every valid id
    loader: tuple[str, str] | None  # (module, class) of its TextEnv; None: planned
    capabilities: frozenset[str]
    options: tuple[str, ...]  # env config keys passed to the constructor
    what: str  # for messages
    choices: Callable[[], dict[str, tuple]] = dict  # option -> its valid values (read on use)
    extra: str | None = None  # the pip extra (and module) the family needs beyond the base install

    @property
    def planned(self) -> bool:
        return self.loader is None


FAMILIES = (
    Family("babyai", ("BabyAI-", "MiniGrid-"), _minigrid_ids, ("teachable.envs.babyai", "BabyAITextEnv"),
           frozenset({PRIVILEGED_EXPERT}), (), "MiniGrid/BabyAI (6 actions; success = the mission done)"),
    Family("crafter", ("Crafter",), lambda: sorted(CRAFTER_IDS), ("teachable.envs.crafter", "CrafterTextEnv"),
           frozenset({PRIVILEGED_EXPERT}), ("goal",), "Crafter (17 actions; success = the goal achievement)",
           _crafter_choices, "crafter"),
    Family("html", ("HTMLExtract",), lambda: [], None, frozenset(), (),
           "HTML extraction (free-form multi-turn tool calls; success = graded reward >= 0.5)"),
)  # fmt: skip
PLANNED_FAMILIES = {f.prefixes[0]: f.what for f in FAMILIES if f.planned}
OPTION_KEYS = tuple(sorted({o for f in FAMILIES for o in f.options}))  # env config keys that are options


def family_of(env_id: str) -> Family:
    """The family whose id prefix ``env_id`` has (before checking the id itself)."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id must be a non-empty string, got {env_id!r}")
    for fam in FAMILIES:
        if env_id.startswith(fam.prefixes):
            return fam
    implemented = "; ".join(f"{'/'.join(p + '*' for p in f.prefixes)}: {f.what}" for f in FAMILIES if not f.planned)
    raise ValueError(f"unknown env id {env_id!r}: the families are {implemented}; planned: "
                     f"{', '.join(p + '*' for p in PLANNED_FAMILIES)}")  # fmt: skip


def known_env_ids(prefix: str = "BabyAI-") -> list[str]:
    """Every valid id starting with ``prefix`` (``BabyAI-``, ``MiniGrid-``, ``Crafter``, ...)."""
    return sorted(i for fam in FAMILIES if not fam.planned for i in fam.ids() if i.startswith(prefix))


def check_env_id(env_id: str) -> str:
    """The family name of a valid env id; an error naming the id (and close matches) otherwise."""
    fam = family_of(env_id)
    if fam.planned:
        raise NotImplementedError(f"env id {env_id!r}: the {fam.what} family is planned but not implemented yet")
    if fam.extra is not None and importlib.util.find_spec(fam.extra) is None:
        raise ModuleNotFoundError(f"env id {env_id!r}: the {fam.name} family needs the {fam.extra!r} extra, "
                                  f"not installed in this Python ({sys.executable}); install it with "
                                  f"pip install -e '.[{fam.extra}]' (make venv does)")  # fmt: skip
    ids = fam.ids()
    if env_id in ids:
        return fam.name
    close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown env id {env_id!r}: the {fam.name} family has no such id.{hint} List them with "
                     f"teachable.envs.registry.known_env_ids({fam.prefixes[0]!r}), e.g. {ids[0]!r}.")  # fmt: skip


def env_class(env_id: str) -> type[TextEnv]:
    """The ``TextEnv`` class of ``env_id``'s family (a clear error for an unknown id)."""
    check_env_id(env_id)
    module, name = family_of(env_id).loader
    return getattr(importlib.import_module(module), name)


def env_options(env_cfg: dict[str, Any]) -> dict[str, Any]:
    """The constructor options of the ``env`` config section (``Family.options``; a key set for a
    family that does not take it is an error naming it)."""
    fam = family_of(env_cfg["id"])
    given = {k: v for k, v in env_cfg.items() if k in OPTION_KEYS and v is not None}
    wrong = [k for k in given if k not in fam.options]
    if wrong:
        raise ValueError(f"config key env.{wrong[0]}={given[wrong[0]]!r} is not an option of the {fam.name} family ({env_cfg['id']}); "
                         f"its options: {list(fam.options) or 'none'}")  # fmt: skip
    if given:
        for key, valid in fam.choices().items():
            if key in given and given[key] not in valid:
                close = difflib.get_close_matches(str(given[key]), [str(v) for v in valid], n=3, cutoff=0.5)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ValueError(f"config key env.{key}={given[key]!r} is not valid for {env_cfg['id']}.{hint} "
                                 f"Valid: {', '.join(map(str, valid))}")  # fmt: skip
    return given


def make_env(env_id: str, max_steps: int | None = None, **options: Any) -> TextEnv:
    """A fresh text environment for ``env_id`` (call ``reset(seed)`` before use). ``options``
    go to the family's constructor (Crafter: ``goal``, ``end_on_success``; ``env_options`` maps
    the config to them)."""
    return env_class(env_id)(env_id, max_steps=max_steps, **options)


def make_env_from(env_cfg: dict[str, Any]) -> TextEnv:
    """``make_env`` from the ``env`` config section (id, max_steps, the family's options)."""
    return make_env(env_cfg["id"], max_steps=env_cfg.get("max_steps"), **env_options(env_cfg))


def mentioned_actions(env_id: str, text: str) -> dict[str, str]:
    """Every action of ``env_id``'s family that ``text`` names or paraphrases, with the phrase
    found (the family parser's vocabulary; see ``TextEnv.mentioned_actions``)."""
    return env_class(env_id).mentioned_actions(text)


def parse_action(env_id: str, text: str, mode: str = "lenient") -> str | None:
    """``text`` (a model's answer) parsed by ``env_id``'s family's parser (``TextEnv.parse_action``):
    an action of the family, or ``None``."""
    return env_class(env_id).parse_action(text, mode)


def task_archetype(env_id: str, instruction: str) -> str | None:
    """The archetype of a task of ``env_id`` from its instruction (``TextEnv.archetype``: BabyAI's
    mission kinds; None where the family defines none)."""
    return env_class(env_id).archetype(instruction)


def system_prompt(env_id: str) -> str:
    """The student's system prompt of ``env_id``'s family (``TextEnv.SYSTEM_PROMPT``)."""
    return env_class(env_id).SYSTEM_PROMPT


__all__ = [
    "CRAFTER_IDS",
    "FAMILIES",
    "PLANNED_FAMILIES",
    "check_env_id",
    "env_class",
    "env_options",
    "known_env_ids",
    "make_env",
    "make_env_from",
    "mentioned_actions",
    "parse_action",
    "system_prompt",
    "task_archetype",
]
