"""The ``TextEnv`` contract, checked the same way for every implemented family: exact restore,
invalid actions, oracle advice, the one success definition, process-independent state keys. A
state's actions are its family's candidates (``action_space(id).at(env)``: a finite family's
valid actions, HTML's menu at that state)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from teachable.envs import INVALID_ACTION
from teachable.envs import make_env as _make_env
from teachable.envs.registry import action_space
from teachable.teachers.base import named_actions, validate_advice

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"
# env id (``id:protocol`` for a protocol other than the study's) -> (seed, the valid action that
# INVALID_ACTION must equal: the family's no-op, or its protocol's default action; or None when
# there is none and INVALID_ACTION must leave everything but the step count alone)
FAMILIES = {
    "BabyAI-GoToLocal-v0": (3, None),
    "BabyAI-MixedLocal-v0": (7, None),
    "BabyAI-MixedLocal-v0:balrog": (7, "go forward"),
    "CrafterReward-v1": (100003, "Noop"),
    "HTMLExtract-v0": (24, None),
}
IDS = list(FAMILIES)


def make_env(case: str):
    """The env of a ``FAMILIES`` key."""
    env_id, _, protocol = case.partition(":")
    return _make_env(env_id, **({"protocol": protocol} if protocol else {}))


def candidates(env) -> tuple[str, ...]:
    """The actions at ``env``'s state (module docstring)."""
    return action_space(env.env_id).at(env).candidate_actions(env.valid_actions())


def _prefix(env, seed: int, n: int, rng: random.Random) -> list[str]:
    """Up to ``n`` actions (the expert's, random ones and invalid ones) that keep the episode on:
    a draw that ends it is taken back (HTML: an answer) and the next one drawn."""
    env.reset(seed)
    prefix: list[str] = []
    for _ in range(n):
        r = rng.random()
        a = env.expert_action() if r < 0.5 else INVALID_ACTION if r < 0.6 else rng.choice(candidates(env))
        if env.step(a).done:
            env.restore(seed, prefix)
            continue
        prefix.append(a)
    return prefix


def _digest(env) -> str:
    return hashlib.sha256(repr(env.state_key()).encode()).hexdigest()


@pytest.mark.parametrize("env_id", IDS)
def test_exact_restore(env_id):
    seed, _ = FAMILIES[env_id]
    env = make_env(env_id)
    prefix = _prefix(env, seed, 30, random.Random(1))
    assert len(prefix) >= 5
    env.reset(seed)
    for a in prefix:
        env.step(a)
    played, text = env.state_key(), env.observation().text
    other = make_env(env_id)
    other.reset(seed + 1)
    assert other.restore(seed, prefix).text == text
    assert other.state_key() == played and other.steps_taken == len(prefix)


@pytest.mark.parametrize("env_id", IDS)
def test_invalid_action_consumes_a_step_and_plays_the_default(env_id):
    seed, idle = FAMILIES[env_id]
    env = make_env(env_id)
    prefix = _prefix(env, seed, 10, random.Random(2))
    env.restore(seed, prefix)
    before, steps = env.state_key(), env.steps_taken
    res = env.step(INVALID_ACTION)
    assert res.info["invalid_action"] is True and env.steps_taken == steps + 1
    after = env.state_key()
    if idle is None:
        changed = [i for i, (x, y) in enumerate(zip(before, after)) if x != y]
        assert len(changed) == 1 and after[changed[0]] == before[changed[0]] + 1  # the step count
    else:
        env.restore(seed, prefix)
        env.step(idle)
        assert env.state_key() == after


@pytest.mark.parametrize("env_id", IDS)
def test_advice_is_valid_and_its_diagnosis_names_no_action(env_id):
    seed, _ = FAMILIES[env_id]
    env = make_env(env_id)
    rng = random.Random(3)
    for n in (0, 3, 8):
        prefix = _prefix(env, seed, n, rng)
        env.restore(seed, prefix)
        space = action_space(env.env_id).at(env)
        valid = space.candidate_actions(env.valid_actions())
        for student in valid + (None, INVALID_ACTION):
            advice = env.expert_advice(student)
            assert advice.ok and advice.suggested_action in valid
            assert validate_advice(advice, valid, space.mentions) is None
            assert named_actions(advice.diagnosis, valid, space.mentions) == {}
            assert named_actions(advice.diagnosis, env.valid_actions(), env.mentioned_actions) == {}


@pytest.mark.parametrize("env_id", IDS)
def test_is_success_is_the_one_success_definition(env_id):
    seed, _ = FAMILIES[env_id]
    env = make_env(env_id)
    env.reset(seed)
    total = 0.0
    while True:
        res = env.step(env.expert_action())
        total += res.reward
        assert env.is_success(total, res.info) == bool(res.info["success"])
        if res.done:
            break
    assert res.terminated and env.is_success(total, res.info)


_HASH = """
import hashlib, json, sys
from teachable.envs import make_env
case, seed, prefix = json.load(sys.stdin)
env_id, _, protocol = case.partition(":")
env = make_env(env_id, **({"protocol": protocol} if protocol else {}))
env.restore(seed, prefix)
print(hashlib.sha256(repr(env.state_key()).encode()).hexdigest())
"""


def test_state_hashes_are_identical_across_processes():
    jobs = []
    for env_id, (seed, _) in FAMILIES.items():
        env = make_env(env_id)
        prefix = _prefix(env, seed, 40, random.Random(4))
        env.restore(seed, prefix)
        payload = json.dumps([env_id, seed, prefix])
        for hash_seed in ("0", "977"):
            proc = subprocess.Popen(
                [sys.executable, "-c", _HASH], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(WORKFLOW)},
            )  # fmt: skip
            jobs.append((env_id, _digest(env), proc, payload))
    for env_id, expected, proc, payload in jobs:
        out, _ = proc.communicate(payload, timeout=120)
        assert proc.returncode == 0 and out.strip() == expected, env_id
