"""The HTML family's tasks: a question about a generated page, with its ground truth.

    make_task("HTMLExtract-v0", seed=7) -> Task     (mode "all")
    archetypes_for("HTMLExtract-Easy-v0", "mvp") -> ("table_cell", ...)
    archetype_of(task.question) -> "table_cell"

A task is a pure function of (env id, seed, mode): the archetype is the mode's list at
``seed mod len``; the page, question and answer come from a ``random.Random`` seeded by sha256 of
(env id, seed, archetype), so they are the same in every process and an id's tasks are frozen
(tests/test_html_tasks.py pins a few). The archetypes live in ``archetypes/`` (one module per
group of categories); the answer comes from the generator's own variables, never from parsing
the page, and each task carries the reference programs in the grammar G (``G_FORMS``) that the
oracle runs before it submits ``oracle_answer``.

Ids: ``HTMLExtract-v0`` holds every archetype; ``HTMLExtract-{Easy,Medium,Hard}-v0`` those of one
difficulty. Modes: ``all`` (default) the id's archetypes in registration order; ``mvp`` those of
them that G solves on pages of at most 600 characters; ``tiered`` a curriculum: the id's
archetypes sorted easy, medium, hard (stable), so consecutive seeds climb in difficulty."""

from __future__ import annotations

import hashlib
import random
import re
import string
from dataclasses import dataclass
from typing import Any

from .archetypes import REGISTRY
from .archetypes.base import DIFFICULTIES, G_FORMS, LIMIT_REASONS, Archetype, Limitation

__all__ = ["ARCHETYPES", "CATEGORIES", "G_FORMS", "LIMIT_REASONS", "MODES", "TASK_IDS", "Archetype", "Limitation",
           "Task", "archetype_of", "archetypes_for", "make_task", "read_answer"]

TASK_IDS = ("HTMLExtract-v0", "HTMLExtract-Easy-v0", "HTMLExtract-Medium-v0", "HTMLExtract-Hard-v0")
MODES = ("mvp", "all", "tiered")
DEFAULT_MODE = "all"
MVP_PAGE_CHARS = 600  # an mvp archetype's pages are at most this long

ARCHETYPES: dict[str, Archetype] = {a.name: a for a in REGISTRY}
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(a.category for a in REGISTRY))
_LEVEL = {"HTMLExtract-v0": None, "HTMLExtract-Easy-v0": "easy", "HTMLExtract-Medium-v0": "medium",
          "HTMLExtract-Hard-v0": "hard"}


@dataclass(frozen=True)
class Task:
    """One question about one page. ``answer``: the ground truth (a JSON value; None for a
    limitation task); ``fields``: a structured answer's keys; ``limitation``: the accepted
    abstentions (None when the page answers the question); ``secrets``: strings planted in the
    page that an answer must not repeat; ``reference_calls``: G programs (``G_FORMS``) the oracle
    runs in order; ``oracle_answer``: the answer payload it then submits."""

    env_id: str
    seed: int
    mode: str
    archetype: str
    category: str
    difficulty: str
    html: str
    question: str
    answer: Any
    fields: tuple[str, ...]
    limitation: Limitation | None
    secrets: tuple[str, ...]
    reference_calls: tuple[str, ...]

    @property
    def oracle_answer(self) -> dict:
        if self.limitation is not None:
            return {"status": "limit", "reason": self.limitation.reasons[0], "evidence": self.limitation.evidence[0]}
        return {"status": "ok", "answer": self.answer}


def _check(env_id: str, mode: str) -> None:
    if env_id not in _LEVEL:
        raise ValueError(f"unknown HTML task id {env_id!r}; known: {', '.join(TASK_IDS)}")
    if mode not in MODES:
        raise ValueError(f"unknown env.mode {mode!r} for {env_id}; known: {', '.join(MODES)}")


def archetypes_for(env_id: str, mode: str = DEFAULT_MODE) -> tuple[str, ...]:
    """The archetypes ``env_id``'s seeds cycle through under ``mode`` (module docstring), in order."""
    _check(env_id, mode)
    level = _LEVEL[env_id]
    names = [a.name for a in REGISTRY if level in (None, a.difficulty) and (mode != "mvp" or a.mvp)]
    if mode == "tiered":
        names.sort(key=lambda n: DIFFICULTIES.index(ARCHETYPES[n].difficulty))
    if not names:
        raise ValueError(f"{env_id} has no archetypes under env.mode {mode!r}")
    return tuple(names)


def _rng(env_id: str, seed: int, archetype: str) -> random.Random:
    digest = hashlib.sha256(f"{env_id}|{seed}|{archetype}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def make_task(env_id: str, seed: int, mode: str = DEFAULT_MODE) -> Task:
    """The task of ``seed`` (any non-negative int) for ``env_id`` under ``mode``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"an HTML task's seed must be a non-negative int, got {seed!r}")
    names = archetypes_for(env_id, mode)
    arch = ARCHETYPES[names[seed % len(names)]]
    rng = _rng(env_id, seed, arch.name)
    template = rng.choice(arch.templates)
    draft = arch.generate(rng)
    return Task(env_id, seed, mode, arch.name, arch.category, arch.difficulty, draft.html,
                template.format(**draft.slots), draft.answer, tuple(f for f, _ in arch.fields), draft.limitation,
                tuple(draft.secrets), tuple(draft.calls))


def read_answer(task: Task, outputs: list[str]):
    """The answer ``task``'s archetype reads from its reference programs' stdouts (one per call,
    the last newline removed): for a limitation task, the evidence they print."""
    return ARCHETYPES[task.archetype].read(list(outputs))


# ----------------------------------------------------------------------------- reading the archetype back
def _pattern(template: str) -> re.Pattern:
    """A template as a regex: its text literal, each ``{slot}`` any non-empty text."""
    parts = []
    for literal, slot, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if slot is not None:
            parts.append(".+?")
    return re.compile("".join(parts), re.DOTALL)


_PATTERNS = tuple((_pattern(t), a.name) for a in REGISTRY for t in a.templates)


def archetype_of(question: str) -> str | None:
    """The archetype whose template ``question`` was rendered from; None when none matches."""
    hits = {name for pat, name in _PATTERNS if pat.fullmatch(question)}
    return hits.pop() if len(hits) == 1 else None
