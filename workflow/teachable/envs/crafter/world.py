"""A deterministic, pixel-free crafter world, its exact state key and a cache of its snapshots.

Why a subclass of ``crafter.Env`` (crafter 1.8.3):
- Creature balancing (``Env._balance_object``, every 10 steps) picks the creature to despawn by
  index into a list built from a Python ``set`` of objects, whose order follows memory
  addresses; replaying seed + actions then diverges after a few dozen steps. ``World`` sorts the
  candidates by position (one creature per cell, so the order is total) before drawing the
  index, with the same random draws in the same order as crafter, so the dynamics are crafter's.
- The world's generator feeds one more consumer in crafter: its renderer draws the night noise
  (``engine.LocalView._noise``: 63 x 49 uniforms per frame while daylight < 0.5, steps 148-272
  of every 300) from ``World.random``, so under crafter's own ``Env`` every draw after the first
  night frame comes out of another place in the stream. ``World`` renders nothing and draws no
  noise: its world equals crafter's by day only, and equals ``ExactEnv``'s (crafter's ``Env``,
  pixels and all, with this despawn order and the noise on a generator of its own) at every
  step (``tests/test_crafter.py``; 2,000 steps: ``benchmarks/bench_crafter_world.py``).
- The other sources were checked and are deterministic: the world seed is
  ``hash((seed, episode))`` of ints (not salted by PYTHONHASHSEED); objects update in the order
  of ``World._objects`` (a list); chunks are balanced in the insertion order of a dict; every
  draw comes from the world's one ``numpy.random.RandomState``; ``World.nearby`` returns sets
  that are only tested for membership.
- No pixels: crafter renders an RGB frame (and a semantic map for ``info``) on every step. Here
  ``__init__`` loads no textures, ``_obs`` returns ``None`` and the semantic view is skipped;
  ``render`` raises. The text observation reads the world directly (``text.py``).
- ``reset_world(seed)`` builds the same world as ``crafter.Env(seed=seed).reset()`` (episode 1
  of that seed), whatever this instance has reset before.

State: ``state_key`` is the exact dynamic state (player, every object with its list index and
attributes, material and object maps, chunk order, step, the random generator's state) as a
hashable tuple. ``Snapshots`` is an LRU of pickled states keyed by (seed, encoded action prefix),
shared by all instances in a process (the dynamics do not depend on the env id, the goal or the
step limit), so restoring a late state replays only from the nearest cached prefix.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from typing import Any

import crafter
import numpy as np
from crafter import constants, engine, objects

AREA = (64, 64)
VIEW = (9, 9)  # crafter's default: the local view is 9 x 7 cells (2 rows show the inventory)
CHUNK = (12, 12)
MATERIAL_IDS: dict[str, int] = {m: i + 1 for i, m in enumerate(constants.materials)}  # 0: none
ACHIEVEMENTS: tuple[str, ...] = tuple(constants.achievements)


def _semantic_off() -> None:
    """Stands in for crafter's semantic view: ``info['semantic']`` is not computed."""
    return None


def _by_position(obj: Any) -> tuple[int, int]:
    return int(obj.pos[0]), int(obj.pos[1])


class World(crafter.Env):
    """``crafter.Env`` with deterministic balancing and no rendering (see module docstring)."""

    def __init__(self, reward: bool = True):
        # crafter.Env.__init__ would load the textures of its pixel renderer: set its fields here
        self._area = AREA
        self._view = np.array(VIEW)
        self._size = np.array((64, 64))
        self._reward = bool(reward)
        self._length = None  # the step limit is the text env's (truncation), not crafter's
        self._seed = 0
        self._episode = 0
        self._world = engine.World(AREA, constants.materials, CHUNK)
        self._sem_view = _semantic_off
        self._step = None
        self._player = None
        self._last_health = None
        self._unlocked = None
        self.reward_range = None
        self.metadata = None

    def reset_world(self, seed: int) -> None:
        """The world of ``crafter.Env(seed=seed).reset()``: world seed ``hash((seed, 1))``."""
        self._seed = int(seed)
        self._episode = 0
        super().reset()

    def _obs(self) -> None:
        return None

    def render(self, size: Any = None) -> np.ndarray:
        raise NotImplementedError("this crafter world renders no pixels; read the text observation")

    def _balance_object(
        self, chunk, objs, cls, material, span_dist, despan_dist, spawn_prob, despawn_prob, ctor, target_fn
    ) -> None:
        """crafter's spawn / despawn rule for one creature class in one chunk, with the same draws
        in the same order; only the despawn candidates are sorted by position first."""
        xmin, xmax, ymin, ymax = chunk
        rng = self._world.random
        creatures = sorted((o for o in objs if isinstance(o, cls)), key=_by_position)
        mask = self._world.mask(*chunk, material)
        target_min, target_max = target_fn(len(creatures), mask.sum())
        if len(creatures) < int(target_min) and rng.uniform() < spawn_prob:
            xs = np.tile(np.arange(xmin, xmax)[:, None], [1, ymax - ymin])[mask]
            ys = np.tile(np.arange(ymin, ymax)[None, :], [xmax - xmin, 1])[mask]
            i = rng.randint(0, len(xs))
            pos = np.array((xs[i], ys[i]))
            if self._world[pos][1] is None and self._player.distance(pos) >= span_dist:
                self._world.add(ctor(pos))
        elif len(creatures) > int(target_max) and rng.uniform() < despawn_prob:
            victim = creatures[rng.randint(0, len(creatures))]
            if self._player.distance(victim.pos) >= despan_dist:
                self._world.remove(victim)

    # -- state ---------------------------------------------------------------------------

    def dump(self) -> bytes:
        """The dynamic state, pickled (world, player, step, last health, unlocked set)."""
        state = (self._world, self._player, self._step, self._last_health, self._unlocked)
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, blob: bytes) -> None:
        """Set the dynamic state from ``dump()`` output (a fresh copy: the blob stays valid)."""
        self._world, self._player, self._step, self._last_health, self._unlocked = pickle.loads(blob)

    def state_key(self) -> tuple:
        """The exact dynamic state as a hashable tuple (equal iff the future is the same for the
        same actions): player, objects (list index, type, position, attributes), maps, chunk
        order, step, the last health seen by the reward, the unlocked set and the RNG state."""
        w, p = self._world, self._player
        objs = tuple(
            (i, type(o).__name__, *_by_position(o), *_object_fields(o))
            for i, o in enumerate(w._objects)
            if o is not None
        )
        kind, keys, pos, has_gauss, gauss = w.random.get_state()
        return (
            int(self._step),
            _by_position(p),
            tuple(int(v) for v in p.facing),
            tuple(sorted(p.inventory.items())),
            tuple(sorted(p.achievements.items())),
            (bool(p.sleeping), p._hunger, p._thirst, p._fatigue, p._recover, p._last_health),
            (self._last_health, tuple(sorted(self._unlocked))),
            len(w._objects),
            objs,
            tuple(w._chunks.keys()),
            w._mat_map.tobytes(),
            w._obj_map.tobytes(),
            (kind, keys.tobytes(), int(pos), int(has_gauss), float(gauss)),
        )


class ExactEnv(crafter.Env):
    """crafter's own ``Env`` (pixels, semantic view, reward, ``done``) patched as ``World`` is:
    creatures despawn in ``World``'s order, and the renderer's night noise is drawn from a
    generator of its own, seeded by (seed, episode), instead of from the world's. Its world is
    ``World``'s step for step for the same seed and actions (module docstring)."""

    _balance_object = World._balance_object
    state_key = World.state_key

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._noise_random = np.random.RandomState(0)
        self._local_view._noise = self._night_noise  # the instance's, over crafter's method

    def reset(self) -> np.ndarray:
        self._noise_random = np.random.RandomState([self._seed % 2**32, self._episode + 1])
        return super().reset()

    def _night_noise(self, *args: Any) -> np.ndarray:
        """crafter's ``LocalView._noise``, its draws taken from this env's noise generator."""
        world = self._world
        kept, world.random = world.random, self._noise_random
        try:
            return engine.LocalView._noise(self._local_view, *args)
        finally:
            world.random = kept


def _object_fields(o: Any) -> tuple:
    """A creature's own dynamic attributes (the player's are read separately)."""
    if isinstance(o, objects.Player):
        return ()
    fields: tuple = (int(o.health), bool(o.removed))
    if isinstance(o, objects.Zombie):
        fields += (int(o.cooldown),)
    elif isinstance(o, objects.Skeleton):
        fields += (int(o.reload),)
    elif isinstance(o, objects.Arrow):
        fields += (tuple(int(v) for v in o.facing),)
    elif isinstance(o, objects.Plant):
        fields += (int(o.grown),)
    return fields


class Snapshots:
    """An LRU of pickled world states keyed by ``(seed, encoded action prefix)``.

    ``every``: replays store a checkpoint every ``every`` steps (and at the end of each restored
    prefix); ``capacity``: entries kept (about 36 kB each). ``nearest`` finds the longest cached
    prefix of a prefix, checking its full length and the checkpoints below it."""

    def __init__(self, capacity: int = 512, every: int = 100):
        if capacity < 1 or every < 1:
            raise ValueError(f"Snapshots needs capacity >= 1 and every >= 1, got {capacity}, {every}")
        self.capacity = int(capacity)
        self.every = int(every)
        self._store: OrderedDict[tuple[int, bytes], bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()

    def put(self, seed: int, prefix: bytes, blob: bytes) -> None:
        key = (int(seed), bytes(prefix))
        self._store[key] = blob
        self._store.move_to_end(key)
        while len(self._store) > self.capacity:
            self._store.popitem(last=False)

    def nearest(self, seed: int, prefix: bytes) -> tuple[int, bytes] | None:
        """(length, blob) of the longest cached prefix of ``prefix`` for ``seed``, or ``None``."""
        n = len(prefix)
        for k in [n, *range(n // self.every * self.every, -1, -self.every)]:
            blob = self._store.get((int(seed), prefix[:k]))
            if blob is not None:
                self._store.move_to_end((int(seed), prefix[:k]))
                self.hits += 1
                return k, blob
        self.misses += 1
        return None


SNAPSHOTS = Snapshots()  # shared by every CrafterTextEnv of this process
