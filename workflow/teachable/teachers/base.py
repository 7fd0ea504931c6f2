"""The teacher interface: for a snapshot, a suggested action, a diagnosis and an error type.

Rules every backend obeys (SPEC, "teacher"), checked by ``validate_advice``:
- ``suggested_action`` is one of the snapshot's ``valid_actions`` verbatim (the candidates of the
  action space at the state: ``ActionSpace.candidate_actions``; where the family's space is a
  state's, any valid action there: ``ActionSpace.allows``); an answer that is not is rejected
  (and retried by backends that can retry), never silently replaced by another action.
- ``diagnosis`` is non-empty, at most two sentences and 400 characters, and names or paraphrases
  neither the suggested action nor any other valid action, so a hint is really a hint. "Names or
  paraphrases" is decided by the environment family's own action vocabulary, the one its parser
  uses (``ActionSpace.mentions``; by env id: ``teachable.envs.registry.action_space``):
  every action name, alias and mention pattern, inflected ("Rotate to your left", "Move ahead",
  "grabbed", "opens" are all caught), plus the literal text of every valid action.
- A teacher that cannot give valid advice returns ``Advice(ok=False, suggested_action=None,
  failure_reason=...)``: the failure is recorded, not raised and not replaced.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from teachable.envs.base import Advice

MAX_DIAGNOSIS_CHARS = 400
MAX_DIAGNOSIS_SENTENCES = 2

# text -> {action: phrase found} for every action of an env family that the text names or
# paraphrases (``ActionSpace.mentions``)
Mentions = Callable[[str], Mapping[str, str]]

# A sentence ends at . ! or ? followed by whitespace and a capital letter (so "e.g. the key"
# stays one sentence), or at the end of the text.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


@dataclass(frozen=True)
class AdviceRequest:
    """One snapshot as the teacher sees it (restorable from env_id, seed and the prefix)."""

    env_id: str
    seed: int
    actions: tuple[str, ...]  # the action prefix that reaches the state
    instruction: str
    observation: str
    valid_actions: tuple[str, ...]
    history: tuple[str, ...] = ()  # the student's most recent actions, oldest first
    student_action: str | None = None  # what the student did here (None: no valid action)

    def __post_init__(self) -> None:
        # tuples whatever the caller passed (lists from Parquet rows), so requests stay hashable
        for name in ("actions", "valid_actions", "history"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not isinstance(self.student_action, str):  # None, or NaN from a DataFrame
            object.__setattr__(self, "student_action", None)


# Why a teacher failed, by kind (``Advice.meta["failure_kind"]``; counted in phase 1's
# teacher_failures.parquet and in summary.md).
FAILURE_KINDS = (
    "rate_limited", "server_error", "timeout", "connection", "http_error",  # transport (after retries)
    "malformed_json", "wrong_schema",  # the answer is not the JSON object asked for
    "invalid_action", "diagnosis_names_action", "diagnosis_format",  # it breaks the teacher rules
    "expert_error", "contrast_diagnosis",  # the oracle's expert could not act; a contrast's 2nd answer failed
)  # fmt: skip


def failure(reason: str, meta: dict[str, Any] | None = None, kind: str = "expert_error") -> Advice:
    """A recorded teacher failure: no action, the reason, its kind (``FAILURE_KINDS``), and
    whatever meta was gathered."""
    if kind not in FAILURE_KINDS:
        raise ValueError(f"unknown teacher failure kind {kind!r}; expected one of {FAILURE_KINDS}")
    return Advice(
        suggested_action=None,
        diagnosis="",
        error_type="teacher_failure",
        ok=False,
        failure_reason=reason,
        meta={**(meta or {}), "failure_kind": kind},
    )


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def mentions_action(text: str, action: str) -> bool:
    """Whether ``text`` names ``action`` (case- and whitespace-insensitive, as a whole phrase:
    "done" is found in "you are done." but not in "abandoned")."""
    needle = _normalise(action)
    if not needle:
        return False
    pattern = r"(?<!\w)" + re.escape(needle) + r"(?!\w)"
    return re.search(pattern, _normalise(text)) is not None


def count_sentences(text: str) -> int:
    return len([s for s in _SENTENCE_BREAK.split(text.strip()) if s.strip()])


def named_actions(text: str, valid_actions: Sequence[str], mentions: Mentions) -> dict[str, str]:
    """The valid actions that ``text`` names or paraphrases, each with the phrase found: the
    family vocabulary (``mentions``) and the literal text of each valid action."""
    found = {a: p for a, p in mentions(text).items() if a in valid_actions}
    for a in valid_actions:
        if a not in found and mentions_action(text, a):
            found[a] = _normalise(a)
    return found


# (action, the state's candidates) -> whether the action may be suggested there (``ActionSpace.allows``)
Allows = Callable[[str, Sequence[str]], bool]


def advice_problem(advice: Advice, valid_actions: Sequence[str], mentions: Mentions,
                   allows: Allows | None = None) -> tuple[str, str] | None:  # fmt: skip
    """(kind, reason) of the first teacher rule ``advice`` breaks, or ``None`` when it is valid.
    ``mentions`` is the env family's vocabulary check (``ActionSpace.mentions``); ``allows`` the
    state's check of the suggested action (``ActionSpace.allows``; None: one of ``valid_actions``)."""
    action = advice.suggested_action
    if action is None or not (allows(action, valid_actions) if allows is not None else action in valid_actions):
        return "invalid_action", f"suggested_action {action!r} is not one of the valid actions {list(valid_actions)}"
    diagnosis = (advice.diagnosis or "").strip()
    if not diagnosis:
        return "diagnosis_format", "diagnosis is empty"
    if len(diagnosis) > MAX_DIAGNOSIS_CHARS:
        return "diagnosis_format", f"diagnosis has {len(diagnosis)} characters; at most {MAX_DIAGNOSIS_CHARS} allowed"
    n_sentences = count_sentences(diagnosis)
    if n_sentences > MAX_DIAGNOSIS_SENTENCES:
        return "diagnosis_format", f"diagnosis has {n_sentences} sentences; at most {MAX_DIAGNOSIS_SENTENCES} allowed"
    named = named_actions(diagnosis, valid_actions if action in valid_actions else (*valid_actions, action), mentions)
    if action in named:
        return ("diagnosis_names_action",
                f"diagnosis names or paraphrases the suggested action {action!r} (found {named[action]!r})")
    if named:
        other, phrase = next(iter(named.items()))
        return "diagnosis_names_action", f"diagnosis names or paraphrases the valid action {other!r} (found {phrase!r})"
    return None


def validate_advice(advice: Advice, valid_actions: Sequence[str], mentions: Mentions,
                    allows: Allows | None = None) -> str | None:  # fmt: skip
    """Why ``advice`` breaks the teacher rules (``advice_problem``'s reason), or ``None``."""
    problem = advice_problem(advice, valid_actions, mentions, allows)
    return problem[1] if problem else None


class Teacher(ABC):
    """Gives advice for snapshots. ``name`` identifies the backend in outputs."""

    name: str = "teacher"

    @abstractmethod
    def advise(self, req: AdviceRequest) -> Advice: ...

    def advise_many(self, reqs: Sequence[AdviceRequest]) -> list[Advice]:
        """Advice for each request, in order."""
        return [self.advise(r) for r in reqs]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (HTTP clients, env instances)."""

    def __enter__(self) -> Teacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
