"""Deterministic seeds derived from names and numbers (stable across processes and machines), and
the keys of rollouts' random draws (``RolloutKey``)."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import numpy as np


def derive_seed(*parts: object) -> int:
    """A 32-bit seed from any mix of ints and strings, independent of PYTHONHASHSEED."""
    ints = [p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts]
    return int(np.random.SeedSequence(ints).generate_state(1)[0])


def rng_for(*parts: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))


def _entropy(part: object) -> int:
    """``part`` as SeedSequence entropy: a non-negative int as it is, anything else (a snapshot id,
    a scope name) as the 64-bit blake2b digest of its text (never Python's salted ``hash``)."""
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool) and part >= 0:
        return int(part)
    return int.from_bytes(hashlib.blake2b(repr(part).encode(), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class RolloutKey:
    """The key of one rollout's random draws (SPEC "Paired randomness"): the draws of its step t
    (t = 0 at its start state, forced steps counted) come from a generator seeded by
    ``SeedSequence((*entropy, t))``, whatever the earlier steps drew. Rollouts with one key
    (rollout i of every condition of a snapshot) therefore draw alike at every step they both
    reach, through a forced step, a patch, an invalid answer or a generate-only backend's sample
    key. Built by ``rollout_key``."""

    entropy: tuple[int, ...]

    def step_rng(self, step: int) -> np.random.Generator:
        """The generator of the draws at ``step``."""
        return np.random.default_rng(np.random.SeedSequence((*self.entropy, int(step))))

    @property
    def seed(self) -> int:
        """A 32-bit digest of the key, for tables (``rng_seed``: equal rows, equal streams)."""
        return int(np.random.SeedSequence(self.entropy).generate_state(1)[0])


def rollout_key(seed: int, scope: str, unit: object, index: int) -> RolloutKey:
    """The key of rollout ``index`` of ``unit`` (a snapshot id, a task) in ``scope`` (the phase or
    suite that rolls out) of the run with ``seed``: every condition and every model that plays
    that rollout gets this key, so they are paired."""
    return RolloutKey(tuple(_entropy(p) for p in (seed, scope, unit, index)))
