"""Environment families, in one table (``FAMILIES``): one row per family, the ``Family`` its
package declares (``envs/<family>/family.py``; ``envs.family`` lists what a family declares).
Generic code asks this module, never a family by name: the config check (``check_env_id`` and
``env_options``, run when the DAG is built), the known ids (``known_env_ids``), ``make_env``, the
action space (``action_space``), the rollout tables' family columns (``episode_columns``), the
evaluation metrics (``family_metrics``), the trace filters (``trace_filters``). Adding a family
is its package under ``envs/`` plus one row here.

- ``babyai``: ``BabyAI-*`` / ``MiniGrid-*``, any id gymnasium knows once ``minigrid`` is imported
  (the BabyAI bot expert needs a BabyAI level: plain MiniGrid ids have no instruction to plan for).
- ``crafter``: ``CrafterReward-v1`` / ``CrafterNoReward-v1`` (crafter's reward on / off); success =
  the configured goal achievement (config key ``env.goal``).
- ``html``: ``HTMLExtract-v0`` / ``HTMLExtract-{Easy,Medium,Hard}-v0`` (free-form tool calls:
  run_python in a sandbox, then a JSON answer; success = graded reward >= 0.5; options
  ``env.mode``, ``env.sandbox``). Its actions depend on the state: generic code that holds the env
  asks ``action_space(env_id).at(env)`` (``ActionSpace.at``); code that holds a table row (env id,
  seed, action prefix) asks ``StateSpaces``, which restores an env only for such a family.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import sys
from typing import Any

from .action_space import ActionSpace
from .babyai.family import FAMILY as BABYAI
from .base import TextEnv
from .crafter.family import FAMILY as CRAFTER
from .html.family import FAMILY as HTML
from .family import PRIVILEGED_EXPERT, Family, Metrics, TraceFilter  # noqa: F401  (PRIVILEGED_EXPERT: the capability)

FAMILIES = (BABYAI, CRAFTER, HTML)
PLANNED_FAMILIES = {f.prefixes[0]: f.what for f in FAMILIES if f.planned}
DEFAULT_ENV_ID = "BabyAI-GoToLocal-v0"  # the env id of tools and tests given none (a small, fast level)


def family_of(env_id: str) -> Family:
    """The family whose id prefix ``env_id`` has (before checking the id itself)."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id must be a non-empty string, got {env_id!r}")
    for fam in FAMILIES:
        if env_id.startswith(fam.prefixes):
            return fam
    implemented = "; ".join(f"{'/'.join(p + '*' for p in f.prefixes)}: {f.what}" for f in FAMILIES if not f.planned)
    planned = f"; planned: {', '.join(p + '*' for p in PLANNED_FAMILIES)}" if PLANNED_FAMILIES else ""
    raise ValueError(f"unknown env id {env_id!r}: the families are {implemented}{planned}")


def known_env_ids(prefix: str = "BabyAI-") -> list[str]:
    """Every valid id starting with ``prefix`` (``BabyAI-``, ``MiniGrid-``, ``Crafter``, ...)."""
    return sorted(i for fam in FAMILIES if not fam.planned for i in fam.ids() if i.startswith(prefix))


def check_env_id(env_id: str) -> str:
    """The family name of a valid env id; an error naming the id (and close matches) otherwise."""
    fam = family_of(env_id)
    if fam.planned:
        raise NotImplementedError(f"env id {env_id!r}: the {fam.what} family is planned but not implemented yet")
    if fam.extra is not None and importlib.util.find_spec(fam.extra_module or fam.extra) is None:
        raise ModuleNotFoundError(f"env id {env_id!r}: the {fam.name} family needs the {fam.extra!r} extra "
                                  f"(module {fam.extra_module or fam.extra!r}), "
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
    """The constructor options of the ``env`` config section: its keys beyond the generic ones
    (the config schema's ``env`` properties), checked against the family's schema fragment
    (``Family.config_schema``); an error names the key (``env.<key>``) and the value. A null
    option is unset (the family's default)."""
    import jsonschema

    from ..config import subschema

    fam = family_of(env_cfg["id"])
    generic = subschema("env").get("properties", {})
    schema = fam.config_schema()
    given = {k: v for k, v in env_cfg.items() if k not in generic and v is not None}
    for key, value in given.items():
        if key not in schema:
            raise ValueError(f"config key env.{key}={value!r} is not an option of the {fam.name} family "
                             f"({env_cfg['id']}); its options: {sorted(schema) or 'none'}")  # fmt: skip
        try:
            jsonschema.validate(value, schema[key])
        except jsonschema.ValidationError as e:
            valid = [v for v in schema[key].get("enum", ()) if v is not None]
            close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            what = f"Valid: {', '.join(map(str, valid))}" if valid else e.message
            where = ".".join(["env", key, *map(str, e.absolute_path)])  # env.sandbox.timeout_s: the key inside
            raise ValueError(f"config key {where}={e.instance if e.absolute_path else value!r} is not valid for "
                             f"{env_cfg['id']}.{hint} {what}") from None
    return given


def make_env(env_id: str, max_steps: int | None = None, **options: Any) -> TextEnv:
    """A fresh text environment for ``env_id`` (call ``reset(seed)`` before use). ``options``
    go to the family's constructor (Crafter: ``goal``, ``end_on_success``; ``env_options`` maps
    the config to them)."""
    return env_class(env_id)(env_id, max_steps=max_steps, **options)


def make_env_from(env_cfg: dict[str, Any]) -> TextEnv:
    """``make_env`` from the ``env`` config section (id, max_steps, the family's options)."""
    return make_env(env_cfg["id"], max_steps=env_cfg.get("max_steps"), **env_options(env_cfg))


@functools.cache
def _action_space(family: str) -> ActionSpace:
    fam = next(f for f in FAMILIES if f.name == family)
    return fam.action_space()


def action_space(env_id: str) -> ActionSpace:
    """The action space of ``env_id``'s family (``Family.action_space``; one object per family)."""
    check_env_id(env_id)
    return _action_space(family_of(env_id).name)


class StateSpaces:
    """The action space at stored states: a table row's (env id, seed, action prefix). A family
    whose space is the same at every state (``ActionSpace.needs_state`` false) answers with
    ``action_space(env_id)`` and no env; another's is restored (one env per id, with the run's
    step limit and family options, e.g. HTML's ``env.mode`` and sandbox cache: ``of_config``)
    and bound there (``ActionSpace.at``), once per state. Where the row gives its instruction and
    observation, the restored state must show them: a mismatch (a config other than the run's)
    is an error naming the row's state and the keys that decide it."""

    def __init__(self, max_steps: int | None = None, options: dict[str, Any] | None = None):
        self.max_steps = max_steps
        self.options = dict(options or {})
        self._envs: dict[str, TextEnv] = {}
        self._bound: dict[tuple, ActionSpace] = {}

    @classmethod
    def of_config(cls, env_cfg: dict[str, Any]) -> StateSpaces:
        """The spaces of a run whose ``env`` config section is ``env_cfg``."""
        return cls(env_cfg.get("max_steps"), env_options(env_cfg))

    def at(self, env_id: str, seed: int, prefix, instruction: str | None = None,
           observation: str | None = None) -> ActionSpace:  # fmt: skip
        """The space at the state reached by ``prefix`` from ``reset(seed)`` of ``env_id``."""
        space = action_space(env_id)
        if not space.needs_state:
            return space
        key = (env_id, int(seed), tuple(prefix))
        if key not in self._bound:
            if env_id not in self._envs:
                self._envs[env_id] = make_env(env_id, max_steps=self.max_steps, **self.options)
            env = self._envs[env_id]
            obs = env.restore(int(seed), list(prefix))
            for name, want, got in (("instruction", instruction, obs.instruction), ("observation", observation, obs.text)):
                if isinstance(want, str) and want != got:
                    raise ValueError(f"{env_id} seed {seed} after {len(key[2])} action(s): the restored state's "
                                     f"{name} is not the row's ({got[:120]!r} vs {want[:120]!r}); restore it with the "
                                     f"run's env config (env.max_steps and the family's options: "
                                     f"{sorted(family_of(env_id).config_schema())})")  # fmt: skip
            self._bound[key] = space.at(env)
        return self._bound[key]

    def of_row(self, row) -> ActionSpace:
        """``at`` the state of a snapshot-like row (``env_id``, ``seed``, ``actions``, and where it
        has them ``instruction`` and ``observation``)."""
        get = row.get if hasattr(row, "get") else lambda k, d=None: getattr(row, k, d)
        return self.at(get("env_id"), get("seed"), get("actions"), get("instruction"), get("observation"))

    def close(self) -> None:
        close_envs(self._envs)


def close_envs(envs: dict[str, TextEnv]) -> None:
    """Close every env of ``envs`` that has ``close`` (a pool of envs by id), and empty it."""
    for env in envs.values():
        close = getattr(env, "close", None)
        if callable(close):
            close()
    envs.clear()


def free_form(env_id: str) -> bool:
    """Whether ``env_id``'s family's actions are free-form text (its action space is no finite set
    of names: HTML extraction's tool calls), so a student generates its actions there."""
    from .action_space import FiniteActionSpace

    return not isinstance(action_space(env_id), FiniteActionSpace)


def mentioned_actions(env_id: str, text: str) -> dict[str, str]:
    """Every action of ``env_id``'s family that ``text`` names or paraphrases, with the phrase
    found (``ActionSpace.mentions``: the family parser's vocabulary)."""
    return action_space(env_id).mentions(text)


def episode_columns() -> dict[str, dict[str, tuple[str, str]]]:
    """Family name -> the columns its ``TextEnv.episode_values`` adds to the rollout tables
    (column -> (kind, meaning); ``Family.episode_columns``), for the families that add any."""
    return {f.name: dict(f.episode_columns) for f in FAMILIES if f.episode_columns}


def family_metrics(env_ids, columns) -> tuple[Metrics | None, tuple[str, ...]]:
    """The metrics function (``Family.metrics``) and headline metrics of the family of ``env_ids``
    (rollouts of one family), or (None, ()) where the family declares none or the rollouts lack
    its episode ``columns``."""
    fams = {family_of(e).name: family_of(e) for e in env_ids}
    if len(fams) > 1:
        raise ValueError(f"rollouts mix families ({sorted(fams)}): env ids {sorted(env_ids)}; one family per table")
    fam = next(iter(fams.values()), None)
    if fam is None or fam.metrics is None or not set(fam.episode_columns) <= set(columns):
        return None, ()
    return fam.metrics, fam.headline_metrics


def trace_filters() -> tuple[TraceFilter, ...]:
    """The episode filters the families add to ``teachable traces`` (``Family.trace_filters``)."""
    return tuple(t for f in FAMILIES for t in f.trace_filters)


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
    "DEFAULT_ENV_ID",
    "FAMILIES",
    "PLANNED_FAMILIES",
    "StateSpaces",
    "action_space",
    "check_env_id",
    "env_class",
    "env_options",
    "episode_columns",
    "family_metrics",
    "free_form",
    "known_env_ids",
    "make_env",
    "make_env_from",
    "mentioned_actions",
    "parse_action",
    "system_prompt",
    "task_archetype",
    "trace_filters",
]
