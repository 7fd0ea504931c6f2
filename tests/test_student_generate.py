"""Students on a free-form family (HTML extraction): every backend generates its actions through
the one student protocol; the rollout engine reads them with the family's lenient parser at the
state (``rollouts.state_reader``), steps unreadable text as INVALID_ACTION and repaired text with
``repaired=True``; U is the entropy of k samples grouped by the key of their effect."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bs4")

from teachable.envs import make_env  # noqa: E402
from teachable.envs.base import INVALID_ACTION  # noqa: E402
from teachable.envs.html.actions import answer_action, run_action  # noqa: E402
from teachable.policies.base import (  # noqa: E402
    Answer,
    Context,
    Draw,
    GenerativePolicy,
    SampleRequest,
    entropy_of,
)
from teachable.policies.generated_u import UEstimateError, estimate_u  # noqa: E402
from teachable.rollouts import RolloutSpec, run_rollouts, state_reader  # noqa: E402
from teachable.seeding import rollout_key  # noqa: E402

ENV_ID = "HTMLExtract-v0"
MVP = {"mode": "mvp"}
SEED = 300004  # malformed_list: one program (the tools' texts), then the list


def _run(code: str) -> str:
    return run_action(code)


def _answer(value) -> str:
    return answer_action({"status": "ok", "answer": value})


class Scripted(GenerativePolicy):
    """A generating student whose answers are ``script[sample key]`` (a default for the rest);
    it records every request."""

    name, config_section = "scripted", "student.fake"

    def __init__(self, script: dict[str, str], default: str = "", k: int = 4, u_source: str = "samples"):
        self.script, self.default, self.k_samples, self.u_source = script, default, k, u_source
        self.requests: list[SampleRequest] = []

    def answer(self, requests):
        self.requests.extend(requests)
        return [Answer(self.script.get(r.sample, self.default)) for r in requests]


def _state():
    env = make_env(ENV_ID, **MVP)
    obs = env.reset(SEED)
    return env, Context(obs.instruction, obs.text, (), obs.valid_actions)


def test_u_is_the_entropy_of_samples_grouped_by_effect():
    """Two programs with the same result are one key; an unreadable sample is left out; the
    act's probability is its key's share."""
    env, ctx = _state()
    same_a = _run("print([e.get_text(strip=True) for e in make_soup().select('#tools li')])")
    same_b = "```python\nprint([t.get_text(strip=True) for t in make_soup().select('#tools li')])\n```"
    other = _run("print(len(make_soup().select('#tools li')))")
    reader = state_reader(env)
    assert reader.key(same_a) == reader.key(reader(same_b)) != reader.key(other)
    pol = Scripted({"u0": same_a, "u1": same_b, "u2": other, "u3": "no idea"})
    (est,) = estimate_u(pol, [ctx], [reader])
    assert est.k == 4 and est.n_invalid == 1 and len(est.keys) == 2
    assert est.U == pytest.approx(entropy_of(np.log([2 / 3, 1 / 3])))
    assert est.key_prob(reader.key(same_a)) == pytest.approx(2 / 3)
    assert est.key_prob(reader.key(_answer("x"))) == 0.0
    # the act: one keyed sample; with U, its probability is its key's share of the samples
    pol.default = same_b
    (act,) = pol.act([ctx], [Draw(np.random.default_rng(0))], temperature=1.0, parsers=[reader], with_u=True)
    assert act.action == reader(same_b) and act.prob == pytest.approx(2 / 3) and act.U == pytest.approx(est.U)


def test_u_from_logprobs_is_an_error_naming_the_key_on_a_free_form_family():
    env, ctx = _state()
    with pytest.raises(UEstimateError, match=r"student\.fake\.u_source"):
        estimate_u(Scripted({}, k=2, u_source="logprobs"), [ctx], [state_reader(env)])


def test_unreadable_output_steps_invalid_and_a_repair_is_counted():
    """Step 0: a truncated JSON program (repaired, counted in json_repairs); step 1: prose (no
    action: INVALID_ACTION); step 2: the answer, read from a bare status object."""
    stream = rollout_key(0, "test", "html", 0)
    keys = [f"r{Draw(stream.step_rng(t)).key()}" for t in range(3)]
    program = "print([e.get_text(strip=True) for e in make_soup().select('#tools li')])"
    truncated = '{"tool": "run_python", "code": "' + program
    env = make_env(ENV_ID, **MVP)
    env.reset(SEED)
    tools = eval(env.run(program)["stdout"])  # the page's list, as the program prints it
    script = {keys[0]: truncated, keys[1]: "I would look at the page first.",
              keys[2]: '{"status": "ok", "answer": ' + str(tools).replace("'", '"') + "}"}  # fmt: skip
    (res,) = run_rollouts([RolloutSpec(ENV_ID, SEED, stream=stream)], Scripted(script), temperature=1.0,
                          history_len=0, progress=False, env_options=MVP)  # fmt: skip
    assert res.actions == [_run(program), INVALID_ACTION, _answer(tools)]
    assert res.success and res.values["json_repairs"] == 1 and res.values["tool_calls"] == 1


def test_a_scoring_student_cannot_act_on_a_free_form_family():
    from teachable.policies.base import Policy

    class Uniform(Policy):
        name = "uniform"

        def action_logprobs(self, contexts):
            return [np.full(len(c.valid_actions), -np.log(len(c.valid_actions))) for c in contexts]

    env, ctx = _state()
    with pytest.raises(ValueError, match="free-form"):
        Uniform().act([ctx], [Draw(np.random.default_rng(0))], temperature=1.0, parsers=[state_reader(env)])


# ------------------------------------------------------------------------ the HF backend generates


@pytest.fixture(scope="module")
def hf_student(tmp_path_factory):
    from teachable.envs.registry import system_prompt
    from teachable.policies.hf import HFPolicy
    from teachable.student_init import build_random_student

    path = build_random_student(tmp_path_factory.mktemp("html_student"), ENV_ID, seeds=range(300000, 300006),
                                max_steps=8, vocab_size=300, n_layers=1, env_options=MVP)  # fmt: skip
    return HFPolicy(path, batch_size=3, system_prompt=system_prompt(ENV_ID), generates=True,
                    generate={"max_new_tokens": 12, "k_samples": 3})  # fmt: skip


def test_a_sample_is_seeded_by_its_key(hf_student):
    """The same (state, key) draws the same text in another call, batch and position; another
    key draws another stream; every answer stops at max_new_tokens (counted)."""
    _, ctx = _state()
    other = Context("Another question?", ctx.observation, (), ctx.valid_actions)
    first = hf_student.generate([SampleRequest(ctx, "r1", 1.0), SampleRequest(ctx, "r2", 1.0)])
    again = hf_student.generate([SampleRequest(other, "r1", 1.0), SampleRequest(ctx, "r2", 1.0),
                                 SampleRequest(ctx, "r1", 1.0)])  # fmt: skip
    assert [again[2], again[1]] == first and first[0] != first[1]
    greedy = hf_student.generate([SampleRequest(ctx, "r1", 0.0), SampleRequest(ctx, "r2", 0.0)])
    assert greedy[0] == greedy[1]
    usage = hf_student.usage_summary()
    assert usage["samples"] == 7 and 0 < usage["truncations"] <= 7 and usage["generated_tokens"] <= 7 * 12


def test_hf_student_acts_and_estimates_u_by_sampling_on_html(hf_student):
    env, ctx = _state()
    assert not hf_student.exact_u
    reader = state_reader(env)
    (act,) = hf_student.act([ctx], [Draw(np.random.default_rng(1))], temperature=1.0, parsers=[reader], with_u=True)
    assert act.text is not None and act.u_est.k == 3 and act.u_est.estimator == "samples"
    assert act.action == (reader(act.text) or INVALID_ACTION)
    with pytest.raises(ValueError, match="StateReader"):
        hf_student.distribution([ctx], [lambda t: None])


def test_openai_student_needs_room_for_a_program_on_html():
    from teachable.policies import make_student

    with pytest.raises(ValueError, match=r"student\.openai\.max_tokens=16 .* at least 1024"):
        make_student({"backend": "openai", "openai": {"max_tokens": 16}}, None, env_id=ENV_ID)
