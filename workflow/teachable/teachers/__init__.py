"""Teachers: advice (suggested action, diagnosis, error type) for snapshots.

``make_teacher(cfg["teacher"], env_max_steps, env_options)`` builds the configured backend:
``oracle`` (the environment's privileged expert, no network) or ``openai`` (any
OpenAI-compatible chat API, cached on disk).
"""

from __future__ import annotations

from typing import Any

from .base import AdviceRequest, Teacher, named_actions, validate_advice

BACKENDS = ("oracle", "openai")


def make_teacher(cfg: dict[str, Any], env_max_steps: int | None = None,
                 env_options: dict[str, Any] | None = None) -> Teacher:
    """The teacher of the config's ``teacher`` section: {"backend": ..., "openai": {...}}.
    ``env_max_steps`` / ``env_options``: how a teacher builds its envs (the ``env`` section's
    step limit and the family's options, ``registry.env_options``): the oracle's, and the
    states where an API teacher's candidates are a state's (``registry.StateSpaces``)."""
    backend = (cfg or {}).get("backend")
    if backend == "oracle":
        from .oracle import OracleTeacher

        return OracleTeacher(env_max_steps=env_max_steps, env_options=env_options)
    if backend == "openai":
        from .openai_teacher import OpenAITeacher

        return OpenAITeacher(cfg.get("openai") or {}, env_max_steps, env_options)
    raise ValueError(f"teacher.backend: unknown value {backend!r}; expected one of {BACKENDS}")


__all__ = ["BACKENDS", "AdviceRequest", "Teacher", "make_teacher", "named_actions", "validate_advice"]
