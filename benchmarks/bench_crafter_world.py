#!/usr/bin/env python
"""The family's Crafter world against crafter's own ``Env``, step for step, over whole 2,000-step
episodes (the test suite checks the first 300 steps, through the first night).

    PYTHONPATH=workflow nice -n 10 .venv/bin/python benchmarks/bench_crafter_world.py --episodes 3

Each episode: the expert (no goal: ``collect_wood`` then the curriculum, ``end_on_success=False``)
plays the family's env on an eval seed; each action is replayed on ``world.ExactEnv`` (crafter's
``Env`` with the family's despawn order and the night noise on its own generator) and on crafter's
``Env`` with the despawn order alone (the night noise from the world's generator, as in crafter).
After every step the exact state (``World.state_key``) is compared. Reported per episode: the
steps played, the first step at which each crafter env leaves the family's world (none: equal
throughout) and the steps that drew night noise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import crafter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from teachable.envs.crafter.actions import ACTIONS  # noqa: E402
from teachable.envs.crafter.env import CrafterTextEnv  # noqa: E402
from teachable.envs.crafter.scene import daylight  # noqa: E402
from teachable.envs.crafter.world import ExactEnv, Snapshots, World  # noqa: E402


class OrderOnly(crafter.Env):
    """crafter's ``Env`` with the family's despawn order; its renderer draws the night noise from
    the world's generator, as crafter's does."""

    _balance_object = World._balance_object
    state_key = World.state_key


def episode(seed: int, steps: int) -> dict:
    env = CrafterTextEnv("CrafterReward-v1", steps, goal="collect_wood", end_on_success=False, snapshots=Snapshots(4))
    env.reset(seed)
    others = {"ExactEnv": ExactEnv(seed=seed), "Env + despawn order": OrderOnly(seed=seed)}
    parted: dict[str, int | None] = dict.fromkeys(others)
    for e in others.values():
        e.reset()
    t = time.perf_counter()
    while not env.done:
        code = ACTIONS.index(env.expert_action())
        env.step(ACTIONS[code])
        key = env.state_key()
        for name, e in others.items():
            e.step(code)
            if parted[name] is None and e.state_key() != key:
                parted[name] = env.steps_taken
    night = sum(daylight(s) < 0.5 for s in range(1, env.steps_taken + 1))
    return {"seed": seed, "steps": env.steps_taken, "first_difference": parted, "night_noise_steps": night,
            "seconds": time.perf_counter() - t}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed-start", type=int, default=100000, help="the eval split's first seed")
    a = ap.parse_args()
    for i in range(a.episodes):
        r = episode(a.seed_start + i, a.steps)
        diffs = ", ".join(f"{k}: {'equal throughout' if v is None else f'differs from step {v}'}" for k, v in r["first_difference"].items())
        print(f"seed {r['seed']}: {r['steps']} steps ({r['night_noise_steps']} drew night noise); {diffs}; {r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
