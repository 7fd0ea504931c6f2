"""A family's actions as generic code sees them (``registry.action_space``): generic modules ask
the action space, never assume a finite action set.

- ``is_valid(action)``: the action can be stepped (a family's own check: a name of a finite
  family, a well-formed call of a free-form one).
- ``key(action)``: the action's canonical key; two actions with the same effect share it, so
  "is the student's action the teacher's?" compares keys (a finite family: the name itself).
- ``mentions(text)``: every action the text names or paraphrases, with the phrase found (the
  family parser's vocabulary): what the teacher rules and the hint audit check a diagnosis with.
- ``candidate_actions(menu)``: a finite menu of actions at a state, in a fixed order: the actions
  the student's distribution is over and the ones placebos are sized by, noisy demonstrations drawn
  from and contrasts fall back to. ``menu`` is the state's offered actions
  (``Observation.valid_actions``, stored with every step and snapshot); a finite family offers
  its members, a free-form family its menu of calls at that state.
- ``at(env)``: the space at ``env``'s current state. A finite family's actions mean the same at
  every state: the space itself. A free-form family's key (an action's effect), candidates and
  mentions depend on the state (HTML: a program's key is its result on the page), so callers
  that hold the env ask ``space.at(env)``; without a state such a space keys an action by its
  canonical text and has no candidates.
- ``audit_label(action)``: what the hint audit predicts of a suggested action (a finite family:
  the action; a free-form family: its kind, where every suggested line differs).
- ``needs_state``: whether ``at(env)`` gives another space (the family's key and candidates are a
  state's); generic code that holds only a table row restores an env for such a family alone
  (``registry.StateSpaces``), so a finite family's rows never restore one.
- ``allows(action, candidates)``: whether ``action`` may stand at a state whose candidates are
  ``candidates`` (a teacher's suggestion, the action a contrast calls worse): one of them (a
  finite family), any valid action (a free-form family bound at a state, where the candidates
  are a menu, not the actions).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import TextEnv


class ActionSpace(ABC):
    """The actions of one family (module docstring)."""

    needs_state: bool = False  # at(env) gives another space (module docstring)

    @abstractmethod
    def is_valid(self, action: str) -> bool: ...

    @abstractmethod
    def key(self, action: str) -> str:
        """The canonical key of ``action`` (equal for actions with the same effect)."""

    @abstractmethod
    def mentions(self, text: str) -> dict[str, str]:
        """Every action ``text`` names or paraphrases -> the phrase found (whole words, any case)."""

    @abstractmethod
    def candidate_actions(self, menu: Sequence[str] | None = None) -> tuple[str, ...]:
        """The finite candidates at a state that offers ``menu`` (None: the family's default menu)."""

    def same(self, a: str, b: str) -> bool:
        """Whether actions ``a`` and ``b`` have the same effect (share a key)."""
        return self.key(a) == self.key(b)

    def at(self, env: TextEnv) -> ActionSpace:
        """The space at ``env``'s current state (module docstring): itself unless the family's
        actions depend on the state."""
        return self

    def audit_label(self, action: str) -> str:
        """What the hint audit predicts of ``action`` (module docstring): the action itself."""
        return action

    def allows(self, action: str, candidates: Sequence[str]) -> bool:
        """Whether ``action`` may stand at a state with ``candidates`` (module docstring): one of them."""
        return action in candidates


class FiniteActionSpace(ActionSpace):
    """A fixed set of named actions (``members``, in the family's order); an action's key is its
    name; a state's candidates are the members it offers, in its menu's order."""

    def __init__(self, members: Sequence[str], mentions: Callable[[str], dict[str, str]]):
        if not members or len(set(members)) != len(members):
            raise ValueError(f"a finite action space needs distinct members, got {list(members)}")
        self.members = tuple(members)
        self._mentions = mentions

    def is_valid(self, action: str) -> bool:
        return action in self.members

    def key(self, action: str) -> str:
        return action

    def mentions(self, text: str) -> dict[str, str]:
        return self._mentions(text)

    def candidate_actions(self, menu: Sequence[str] | None = None) -> tuple[str, ...]:
        if menu is None:
            return self.members
        wrong = [a for a in menu if a not in self.members]
        if wrong:
            raise ValueError(f"menu action {wrong[0]!r} is not an action of this family (valid: {list(self.members)})")
        return tuple(menu)

    def __repr__(self) -> str:
        return f"FiniteActionSpace({list(self.members)})"
