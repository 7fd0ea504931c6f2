"""The HTML family's archetypes, one module per group of categories; importing the package
registers them (``base.REGISTRY``, in this order)."""

from . import structure, content, abstain  # noqa: F401  (registration order = ARCHETYPES order)
from .base import REGISTRY

__all__ = ["REGISTRY"]
