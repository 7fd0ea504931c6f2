"""The lockstep rollout engine on every family's real env (the ``family`` fixture) with a real
(uniform-random) policy; an expert error on a BabyAI level."""
import numpy as np
import pytest

from teachable.policies.base import Answer, Draw, GenerativePolicy, Policy, sample_action
from teachable.rollouts import EXPERT, RolloutSpec, group_success, run_rollouts
from teachable.seeding import rollout_key

class UniformPolicy(Policy):
    """A real policy: every valid action equally likely. Counts its batched calls."""

    name = "uniform"

    def __init__(self):
        self.calls, self.states = 0, 0

    def action_logprobs(self, contexts):
        self.calls += 1
        self.states += len(contexts)
        return [np.full(len(c.valid_actions), -np.log(len(c.valid_actions))) for c in contexts]


def key(i: int):
    return rollout_key(0, "test", "unit", i)


def run(specs, policy=None, **kw):
    return run_rollouts(specs, policy or UniformPolicy(), temperature=1.0, history_len=2,
                        max_steps=20, progress=False, **kw)


def test_same_key_gives_identical_rollouts(family):
    env, seed = family.env_id, family.seed
    specs = [RolloutSpec(env, seed, stream=key(11)), RolloutSpec(env, seed, stream=key(11)),
             RolloutSpec(env, seed, stream=key(12))]  # fmt: skip
    a, b, c = run(specs, env_options=family.options)
    assert a.actions == b.actions
    assert a.actions != c.actions


def test_results_do_not_depend_on_batch_composition(family):
    spec = RolloutSpec(family.env_id, 5, stream=key(7))
    alone = run([spec], env_options=family.options)[0]
    crowd = run([RolloutSpec(family.env_id, s, stream=key(s)) for s in range(6)] + [spec], env_options=family.options)[-1]
    assert alone.actions == crowd.actions and alone.success == crowd.success


def test_lockstep_batches_all_active_states(family):
    pol = UniformPolicy()
    res = run([RolloutSpec(family.env_id, s, stream=key(s)) for s in range(8)], pol, env_options=family.options)
    assert pol.states == sum(r.steps for r in res)
    assert pol.calls == max(r.steps for r in res)  # one call per lockstep iteration


def test_forced_action_is_taken_first_and_prefix_is_replayed(family):
    a = family.actions  # BabyAI: turn left, turn right, go forward, ...
    prefix = (a[0], a[2])
    res = run([RolloutSpec(family.env_id, 2, prefix=prefix, forced=(a[1],), stream=key(1))], record_steps=True,
              env_options=family.options)[0]  # fmt: skip
    assert res.actions[0] == a[1] and res.records[0].source == "forced"
    assert res.records[0].step_idx == len(prefix)
    assert res.records[0].history == prefix


def test_expert_actor_succeeds_and_needs_no_student(family):
    res = run_rollouts([RolloutSpec(family.env_id, s, actor=EXPERT) for s in range(10)], None, temperature=1.0,
                       history_len=2, max_steps=40, progress=False, env_options=family.options)
    assert sum(r.success for r in res) >= 9


def test_student_rollouts_without_a_policy_are_an_error(family):
    with pytest.raises(ValueError, match="no student policy"):
        run_rollouts([RolloutSpec(family.env_id, 0)], None, temperature=1.0, history_len=0, progress=False,
                     env_options=family.options)


def test_group_success_counts_per_key(family):
    specs = [RolloutSpec(family.env_id, s, actor=EXPERT, key="k") for s in range(3)]
    res = run_rollouts(specs, None, temperature=1.0, history_len=0, max_steps=40, progress=False,
                       env_options=family.options)
    k, n = group_success(res)["k"]
    assert n == 3 and k == sum(r.success for r in res)


def test_temperature_zero_is_argmax():
    rng = np.random.default_rng(0)
    assert sample_action(np.log([0.2, 0.5, 0.3]), 0.0, Draw(rng)) == 1
    draws = [sample_action(np.log([0.2, 0.5, 0.3]), 1.0, Draw(rng)) for _ in range(2000)]
    assert abs(np.mean(np.array(draws) == 1) - 0.5) < 0.05


def test_a_draws_inverse_cdf_picks_what_numpy_choice_picks_from_the_same_stream():
    gen = np.random.default_rng(0)
    for _ in range(500):
        lp = gen.normal(size=int(gen.integers(1, 12))) * 3
        temperature, seed = float(gen.choice([0.5, 1.0, 2.0])), int(gen.integers(2**31))
        z = lp / temperature
        p = np.exp(z - z.max())
        want = np.random.default_rng(seed).choice(len(p), p=p / p.sum())
        assert sample_action(lp, temperature, Draw(np.random.default_rng(seed))) == want


class RecordingUniform(UniformPolicy):
    """The uniform policy, keeping every context it was asked to score."""

    def __init__(self):
        super().__init__()
        self.contexts = []

    def action_logprobs(self, contexts):
        self.contexts.extend(contexts)
        return super().action_logprobs(contexts)


def test_patch_is_in_context_at_the_snapshot_step_only(family):
    a = family.actions
    pol = RecordingUniform()
    spec = RolloutSpec(family.env_id, 4, prefix=(a[0],), patch=f"The best action now is: {a[2]}.", stream=key(3))
    res = run([spec], pol, record_steps=True, env_options=family.options)[0]
    assert res.steps >= 2
    assert res.records[0].patch == spec.patch and all(r.patch is None for r in res.records[1:])
    assert [c.patch for c in pol.contexts] == [spec.patch] + [None] * (res.steps - 1)
    # the unpatched rollout with the same stream differs only where the patch was shown
    unpatched = run([RolloutSpec(family.env_id, 4, prefix=(a[0],), stream=key(3))], record_steps=True,
                    env_options=family.options)[0]  # fmt: skip
    assert pol.contexts[0].observation == unpatched.records[0].observation


class KeyedAnswers(GenerativePolicy):
    """A generate-only policy whose answer is a function of the sample key and the state: the
    action is read from the key, so equal keys at one state give equal actions. Keeps the keys."""

    name, k_samples = "keyed", 1

    def __init__(self):
        self.samples = []

    def answer(self, requests):
        self.samples.extend(r.sample for r in requests)
        return [Answer(r.ctx.valid_actions[int(r.sample[1:]) % len(r.ctx.valid_actions)]) for r in requests]


@pytest.mark.parametrize("policy", [UniformPolicy, KeyedAnswers])
def test_a_forced_step_shifts_no_later_draw(family, policy):
    """Forcing the action the student took at step 0 reproduces its rollout: step t draws from
    (key, t) whatever step 0 consumed (a scoring backend's uniform, a generate-only one's key)."""
    own = run([RolloutSpec(family.env_id, 3, stream=key(5))], policy(), env_options=family.options)[0]
    assert own.steps >= 3
    forced = run([RolloutSpec(family.env_id, 3, forced=(own.actions[0],), stream=key(5))], policy(),
                 env_options=family.options)[0]  # fmt: skip
    assert forced.actions == own.actions and forced.success == own.success


def test_draws_are_keyed_by_rollout_and_step():
    """Step t of a rollout draws from (key, t): equal for equal keys, different across rollout
    indices and steps, and independent of what a draw consumed before."""
    a, b = key(1), key(2)
    assert a.step_rng(3).random() == key(1).step_rng(3).random()
    assert len({a.step_rng(0).random(), a.step_rng(1).random(), b.step_rng(0).random()}) == 3
    assert rollout_key(0, "test", "unit", 1) != rollout_key(1, "test", "unit", 1) != rollout_key(0, "test", "other", 1)
    assert a.seed == key(1).seed != b.seed


def test_a_student_rollout_without_a_key_is_an_error(family):
    with pytest.raises(ValueError, match="no stream"):
        run([RolloutSpec(family.env_id, 0, key="k")], env_options=family.options)


def _impossible_state(env_id: str = "BabyAI-PickupLoc-v0", tries: int = 200):
    """(seed, prefix) of a state where a box the mission needs was toggled away (mission impossible)."""
    from teachable.envs import make_env

    env = make_env(env_id, max_steps=64)
    for seed in range(tries):
        obs = env.reset(seed)
        if "box" not in obs.instruction:
            continue
        prefix = []
        for _ in range(30):
            a = env.expert_action()
            if a == "pick up":  # in front of the box the mission wants: open it instead
                env.step("toggle")
                prefix.append("toggle")
                if env.vanished_mission_objects():
                    return seed, tuple(prefix)
                break
            env.step(a)
            prefix.append(a)
    raise AssertionError("no seed with a box mission found")


def test_expert_error_ends_the_rollout_and_is_counted_by_kind():
    seed, prefix = _impossible_state()
    res = run_rollouts([RolloutSpec("BabyAI-PickupLoc-v0", seed, prefix=prefix, actor=EXPERT)], None,
                       temperature=1.0, history_len=0, max_steps=64, progress=False)[0]
    assert not res.success and res.steps == 0 and res.expert_error == "impossible"
    ok = run_rollouts([RolloutSpec("BabyAI-PickupLoc-v0", seed, actor=EXPERT)], None, temperature=1.0,
                      history_len=0, max_steps=64, progress=False)[0]
    assert ok.success and ok.expert_error is None
