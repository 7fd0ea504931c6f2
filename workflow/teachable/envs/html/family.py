"""The HTML extraction family as the registry lists it (``envs.family.Family``): its four ids
(``tasks.TASK_IDS``), its options (``env.mode``, ``env.sandbox``), its free-form actions
(``space.HTMLActionSpace``), its episode columns (reward, perfect, tool calls, JSON repairs,
sandbox timeouts) and its metrics (``metrics``). It needs the ``html`` extra (bs4, lxml,
soupsieve, pyseccomp), checked by importing ``bs4`` (``html`` is a standard-library module).
Nothing here imports bs4 until it is used."""

from __future__ import annotations

from typing import Any

from ..family import PRIVILEGED_EXPERT, Family


def ids() -> list[str]:
    from .tasks import TASK_IDS

    return list(TASK_IDS)


def config_schema() -> dict[str, Any]:
    from .env import DEFAULT_MAX_STEPS
    from .sandbox import SandboxConfig
    from .tasks import DEFAULT_MODE, MODES

    d = SandboxConfig()
    count = {"type": ["integer", "null"], "minimum": 1}
    return {"mode": {"enum": [*MODES, None], "default": None,
                     "description": f"the archetypes a seed cycles through (null = {DEFAULT_MODE}): mvp = those the "
                                    "grammar G solves on pages of at most 600 characters, all = the id's archetypes, "
                                    "tiered = them sorted easy, medium, hard; env.max_steps null = "
                                    f"{DEFAULT_MAX_STEPS}"},
            "sandbox": {"type": ["object", "null"], "default": None, "additionalProperties": False,
                        "description": "where run_python runs code outside the grammar G (envs/html/sandbox.py); "
                                       "null = the defaults",
                        "properties": {
                            "python": {"type": ["string", "null"], "minLength": 1,
                                       "description": f"the sandbox's interpreter (default {d.python})"},
                            "site": {"type": ["string", "null"], "minLength": 1,
                                     "description": f"the site directory of bs4, lxml, soupsieve (default {d.site})"},
                            "timeout_s": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 600,
                                          "description": f"wall-clock limit of one call (default {d.timeout_s})"},
                            "memory_mb": count | {"description": f"address space (default {d.memory_mb})"},
                            "tmpfs_mb": count | {"description": f"the /tmp tmpfs (default {d.tmpfs_mb})"},
                            "tasks": count | {"description": f"processes and threads (default {d.tasks})"},
                            "open_files": count | {"description": f"open files (default {d.open_files})"},
                            "file_mb": count | {"description": f"largest file written (default {d.file_mb})"},
                            "output_bytes": count | {"description": f"stdout/stderr cap (default {d.output_bytes})"},
                            "cache_dir": {"type": ["string", "null"], "minLength": 1,
                                          "description": "the sandbox result cache, shared by a run's jobs (null = "
                                                         "a temporary directory per process)"}}}}  # fmt: skip


def action_space():
    from .space import HTMLActionSpace

    return HTMLActionSpace()


def episode_metrics(g, bs):
    from .metrics import episode_metrics

    return episode_metrics(g, bs)


FAMILY = Family(
    "html", ("HTMLExtract",), ids, ("teachable.envs.html.env", "HTMLExtractEnv"), frozenset({PRIVILEGED_EXPERT}),
    "HTML extraction (free-form tool calls: run_python, answer; success = graded reward >= 0.5)",
    config_schema, "html", action_space,
    episode_columns={
        "reward": ("float", "the graded reward of the episode's answer (0 without one)"),
        "perfect": ("bool", "the reward is 1"),
        "tool_calls": ("int", "run_python calls in the episode (prefix included)"),
        "json_repairs": ("int", "actions read from truncated JSON the parser closed (since the rollout's start)"),
        "sandbox_timeouts": ("int", "tool calls stopped by the sandbox's timeout (prefix included)"),
    },
    metrics=episode_metrics,
    headline_metrics=("reward", "perfect"),
    extra_module="bs4",
)  # fmt: skip
