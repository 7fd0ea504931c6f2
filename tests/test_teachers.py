"""Teachers: the OpenAI-compatible backend against a local test server, the advice rules, and the
oracle on a real restored environment."""

from __future__ import annotations

import json
import os

import pytest
from openai_server import FakeOpenAIServer, answer, content, error, slow

from teachable.envs.babyai import BabyAITextEnv
from teachable.envs.base import Advice
from teachable.teachers import AdviceRequest, make_teacher, validate_advice
from teachable.teachers.openai_teacher import (
    SYSTEM_PROMPT,
    MissingAPIKeyError,
    OpenAITeacher,
    extract_json,
)

VALID = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done")
GOOD_DIAGNOSIS = "The key you need is directly in front of you and nothing blocks the way."
BABYAI_VOCABULARY = BabyAITextEnv.mentioned_actions
# paraphrases of BabyAI actions that name no action literally (the old check let them through)
PARAPHRASES = {
    "Rotate to your left": ("turn left", "rotate to your left"),
    "Move ahead": ("go forward", "move ahead"),
    "Grab the key": ("pick up", "grab"),
    "Open the door": ("toggle", "open the door"),
    "Unlock it": ("toggle", "unlock"),
    "put it down": ("drop", "put it down"),
    "You should advance": ("go forward", "advance"),
    "turning right is wrong": ("turn right", "turning right"),
    "go forwards": ("go forward", "go forwards"),
}
CLEAN_DIAGNOSIS = "The mission's red key is at your 10 o'clock, 2 cells away. A wall fills the cell in front of you."


def request(**overrides) -> AdviceRequest:
    fields = dict(
        env_id="BabyAI-GoToObj-v0",
        seed=7,
        actions=("turn left",),
        instruction="go to the red key",
        observation="You face a wall. A red key is one step to your left.",
        valid_actions=VALID,
        history=("turn left",),
        student_action="turn right",
    )
    fields.update(overrides)
    return AdviceRequest(**fields)


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def make(server, tmp_path):
    """An OpenAITeacher on the test server; keyword overrides go into its config."""
    teachers = []

    def _make(**overrides) -> OpenAITeacher:
        cfg = dict(
            base_url=server.base_url,
            model="test-model",
            api_key_env="TEACHABLE_TEST_KEY_UNSET",  # unset: localhost may use a dummy key
            temperature=0.0,
            timeout_s=5.0,
            max_retries=2,
            max_invalid_retries=2,
            concurrency=1,
            cache_dir=str(tmp_path / "cache"),
        )
        cfg.update(overrides)
        t = OpenAITeacher(cfg)
        teachers.append(t)
        return t

    yield _make
    for t in teachers:
        t.close()


# ------------------------------------------------------------------ answers and retries


def test_good_answer_is_parsed(server, make):
    server.script(answer("go forward", GOOD_DIAGNOSIS, "Wrong Direction"))
    adv = make().advise(request())
    assert adv.ok and adv.suggested_action == "go forward"
    assert adv.diagnosis == GOOD_DIAGNOSIS
    assert adv.error_type == "wrong_direction"
    assert len(server.requests) == 1
    body = server.requests[0]["body"]
    assert body["model"] == "test-model" and body["temperature"] == 0.0
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert system["role"] == "system" and "JSON" in system["content"]
    for part in ("go to the red key", "A red key is one step", "turn right", '"pick up"'):
        assert part in user["content"]


def test_fenced_json_in_prose_is_parsed(server, make):
    server.script(content(f'Sure!\n```json\n{{"suggested_action": "go forward", '
                          f'"diagnosis": "{GOOD_DIAGNOSIS}", "error_type": "x"}}\n```'))
    adv = make().advise(request())
    assert adv.ok and adv.suggested_action == "go forward"


def test_429_then_200_is_retried_by_the_client_and_succeeds(server, make):
    server.script(error(429), answer("go forward", GOOD_DIAGNOSIS))
    teacher = make()
    adv = teacher.advise(request())
    assert adv.ok and adv.suggested_action == "go forward"
    assert len(server.requests) == 2
    assert adv.meta["transport_retries"] == 1
    assert teacher.usage["requests"] == 1 and teacher.usage["failures"] == 0


def test_timeout_is_retried(server, make):
    server.script(slow(1.0, answer("go forward", GOOD_DIAGNOSIS)), answer("go forward", GOOD_DIAGNOSIS))
    adv = make(timeout_s=0.3).advise(request())
    assert adv.ok and adv.suggested_action == "go forward"
    assert len(server.requests) == 2


def test_500s_beyond_max_retries_are_a_recorded_failure(server, make):
    server.script(error(500), error(500), error(500), answer("go forward", GOOD_DIAGNOSIS))
    teacher = make(max_retries=2)
    adv = teacher.advise(request())  # not raised
    assert not adv.ok and adv.suggested_action is None  # not replaced by any action
    assert "transport" in adv.failure_reason and "500" in adv.failure_reason
    assert len(server.requests) == 3  # the first try + 2 retries; the good answer never asked
    assert teacher.usage["failures"] == 1 and teacher.usage["requests"] == 0


def test_transport_failure_is_not_cached(server, make):
    server.script(error(500, retry_after_ms=None))
    teacher = make(max_retries=0)
    assert not teacher.advise(request()).ok
    server.script(answer("go forward", GOOD_DIAGNOSIS))
    assert teacher.advise(request()).ok
    assert len(server.requests) == 2


def test_invalid_action_is_retried_with_a_correction_then_accepted(server, make):
    server.script(answer("fly away", GOOD_DIAGNOSIS), answer("go forward", GOOD_DIAGNOSIS))
    adv = make().advise(request())
    assert adv.ok and adv.suggested_action == "go forward"
    assert adv.meta["attempts"] == 2
    assert "fly away" in adv.meta["rejections"][0]["reason"]
    follow_up = server.requests[1]["body"]["messages"]
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "user"]
    assert "fly away" in follow_up[2]["content"]
    assert "rejected" in follow_up[3]["content"] and '"go forward"' in follow_up[3]["content"]


def test_invalid_json_is_retried_then_accepted(server, make):
    server.script(content("I think you should go ahead."), answer("go forward", GOOD_DIAGNOSIS))
    adv = make().advise(request())
    assert adv.ok and adv.meta["attempts"] == 2
    assert "JSON" in adv.meta["rejections"][0]["reason"]


def test_invalid_action_every_time_is_a_failure_with_reason(server, make):
    server.script(*[answer("fly away", GOOD_DIAGNOSIS) for _ in range(3)])
    teacher = make(max_invalid_retries=2)
    adv = teacher.advise(request())
    assert adv == Advice(
        suggested_action=None,
        diagnosis="",
        error_type="teacher_failure",
        ok=False,
        failure_reason=adv.failure_reason,
        meta=adv.meta,
    )
    assert "3 attempt" in adv.failure_reason and "fly away" in adv.failure_reason
    assert len(server.requests) == 3 and server.pending == 0
    assert teacher.usage["failures"] == 1 and teacher.usage["requests"] == 3


@pytest.mark.parametrize("paraphrase", sorted(PARAPHRASES))
def test_diagnosis_paraphrasing_an_action_is_rejected_with_the_phrase_found(server, make, paraphrase):
    action, phrase = PARAPHRASES[paraphrase]
    suggested = "drop" if action != "drop" else "toggle"  # rejected for naming ANOTHER valid action
    server.script(answer(suggested, paraphrase), answer(suggested, CLEAN_DIAGNOSIS))
    adv = make().advise(request(env_id="BabyAI-GoToLocal-v0"))
    assert adv.ok and adv.diagnosis == CLEAN_DIAGNOSIS and adv.meta["attempts"] == 2
    reason = adv.meta["rejections"][0]["reason"]
    assert f"valid action {action!r}" in reason and f"found {phrase!r}" in reason
    follow_up = server.requests[1]["body"]["messages"][-1]["content"]
    assert f"found {phrase!r}" in follow_up and "synonym" in follow_up


def test_diagnosis_paraphrasing_the_suggested_action_is_rejected(server, make):
    server.script(*[answer("turn left", "Rotate to your left.") for _ in range(3)])
    adv = make().advise(request())
    assert not adv.ok and adv.suggested_action is None
    assert "suggested action 'turn left' (found 'rotate to your left')" in adv.failure_reason


def test_unknown_env_id_is_an_error_before_any_request(server, make):
    with pytest.raises(ValueError, match="BabyAI-NoSuchLevel-v0"):
        make().advise(request(env_id="BabyAI-NoSuchLevel-v0"))
    assert server.requests == []


def test_system_prompt_states_the_hint_rule():
    for part in ("synonym", "paraphrase", "clock positions", "12 o'clock = straight ahead"):
        assert part in SYSTEM_PROMPT


def test_diagnosis_naming_the_action_is_rejected(server, make):
    server.script(
        answer("go forward", "You should GO  FORWARD to reach the key."),
        answer("go forward", "You could pick up the key if you were next to it."),
        answer("go forward", GOOD_DIAGNOSIS),
    )
    adv = make().advise(request())
    assert adv.ok and adv.diagnosis == GOOD_DIAGNOSIS and adv.meta["attempts"] == 3
    reasons = [r["reason"] for r in adv.meta["rejections"]]
    assert "suggested action 'go forward'" in reasons[0]
    assert "'pick up'" in reasons[1]


# ------------------------------------------------------------------------ cache and cost


def test_cache_second_identical_request_makes_no_http_call(server, make, tmp_path):
    server.script(answer("go forward", GOOD_DIAGNOSIS, prompt_tokens=100, completion_tokens=20))
    first = make().advise(request())
    files = list((tmp_path / "cache").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["content"]
    assert not list((tmp_path / "cache").glob("*.tmp"))  # atomic write left no temp file

    rerun = make()  # a fresh teacher (a re-run) on the same cache folder
    second = rerun.advise(request())
    assert len(server.requests) == 1  # no new HTTP request
    assert (second.suggested_action, second.diagnosis, second.error_type) == (
        first.suggested_action, first.diagnosis, first.error_type)
    assert second.meta["cache_hit"] and second.meta["cost_usd"] == 0.0
    assert rerun.usage["cache_hits"] == 1 and rerun.usage["requests"] == 0


def test_cache_replays_a_corrected_conversation(server, make):
    server.script(answer("fly away", GOOD_DIAGNOSIS), answer("go forward", GOOD_DIAGNOSIS))
    assert make().advise(request()).ok
    again = make().advise(request())
    assert again.ok and again.meta["attempts"] == 2 and again.meta["cache_hits"] == 2
    assert len(server.requests) == 2


def test_cache_key_depends_on_model_and_temperature(server, make):
    server.script(*[answer("go forward", GOOD_DIAGNOSIS) for _ in range(3)])
    make().advise(request())
    make(model="other-model").advise(request())
    make(temperature=0.7).advise(request())
    assert len(server.requests) == 3


def test_tokens_and_cost_are_counted(server, make):
    server.script(
        answer("fly away", GOOD_DIAGNOSIS, prompt_tokens=1000, completion_tokens=100),
        answer("go forward", GOOD_DIAGNOSIS, prompt_tokens=2000, completion_tokens=200),
    )
    teacher = make(price_per_1m_input=2.0, price_per_1m_output=10.0)
    adv = teacher.advise(request())
    assert adv.meta["prompt_tokens"] == 3000 and adv.meta["completion_tokens"] == 300
    expected = 3000 * 2.0 / 1e6 + 300 * 10.0 / 1e6
    assert adv.meta["cost_usd"] == pytest.approx(expected)
    assert teacher.usage == {
        "requests": 2,
        "cache_hits": 0,
        "prompt_tokens": 3000,
        "completion_tokens": 300,
        "cost_usd": pytest.approx(expected),
        "failures": 0,
    }


def _answer_last_valid_action(body):
    """Answers with the last valid action listed in the prompt (so answers identify requests)."""
    user = body["messages"][1]["content"]
    line = next(x for x in user.splitlines() if x.startswith("Valid actions: "))
    return answer(json.loads(line.removeprefix("Valid actions: "))[-1], GOOD_DIAGNOSIS)


def test_advise_many_keeps_order_with_a_thread_pool(server, make):
    reqs = [request(valid_actions=VALID[: i + 1]) for i in range(6)]
    server.script(*[_answer_last_valid_action] * 6)
    teacher = make(concurrency=3)
    out = teacher.advise_many(reqs)
    assert [a.suggested_action for a in out] == list(VALID[:6])
    assert teacher.usage["requests"] == 6 and len(server.requests) == 6


def test_server_refusing_json_mode_falls_back_to_plain_prompting(server, make):
    msg = "response_format json_object is not supported by this server"
    server.script(error(400, None, msg), answer("go forward", GOOD_DIAGNOSIS))
    adv = make(max_retries=0).advise(request())
    assert adv.ok and adv.suggested_action == "go forward"
    assert "response_format" in server.requests[0]["body"]
    assert "response_format" not in server.requests[1]["body"]


def test_other_400_is_a_recorded_failure(server, make):
    server.script(error(400, None, "context too long"), answer("go forward", GOOD_DIAGNOSIS))
    adv = make(max_retries=0).advise(request())
    assert not adv.ok and adv.suggested_action is None and "400" in adv.failure_reason
    assert len(server.requests) == 1


# ------------------------------------------------------------------------ config and keys


def test_missing_api_key_env_var_error_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("TEACHABLE_NO_SUCH_KEY", raising=False)
    cfg = {"backend": "openai", "openai": {"api_key_env": "TEACHABLE_NO_SUCH_KEY",
                                           "base_url": "https://api.example.com/v1",
                                           "cache_dir": str(tmp_path)}}
    with pytest.raises(MissingAPIKeyError, match="TEACHABLE_NO_SUCH_KEY"):
        make_teacher(cfg, env_max_steps=64)


def test_api_key_is_read_from_the_named_variable(server, make, monkeypatch):
    monkeypatch.setenv("TEACHABLE_TEST_KEY", "sk-from-env")
    server.script(answer("go forward", GOOD_DIAGNOSIS))
    make(api_key_env="TEACHABLE_TEST_KEY").advise(request())
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-from-env"


def test_unknown_backend_error_names_the_key_and_value():
    with pytest.raises(ValueError, match=r"teacher\.backend.*'gpt_magic'"):
        make_teacher({"backend": "gpt_magic"}, env_max_steps=None)


def test_unknown_openai_key_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="max_retry"):
        make_teacher({"backend": "openai", "openai": {"max_retry": 3}}, env_max_steps=None)


def test_make_teacher_builds_openai_backend(server, tmp_path):
    t = make_teacher({"backend": "openai", "openai": {"base_url": server.base_url,
                                                      "api_key_env": "TEACHABLE_TEST_KEY_UNSET",
                                                      "cache_dir": str(tmp_path)}}, None)
    assert isinstance(t, OpenAITeacher)
    t.close()


# ------------------------------------------------------------------------ advice rules


def _adv(action, diagnosis):
    return Advice(suggested_action=action, diagnosis=diagnosis, error_type="x")


@pytest.mark.parametrize(
    "action, diagnosis, problem",
    [
        ("go forward", GOOD_DIAGNOSIS, None),
        ("go forward", "The goal is straight ahead. Nothing is in the way.", None),
        ("go forward", "Everything is abandoned here, e.g. the old room.", None),  # "done" inside a word
        ("fly", GOOD_DIAGNOSIS, "not one of the valid actions"),
        (None, GOOD_DIAGNOSIS, "not one of the valid actions"),
        ("go forward", "   ", "empty"),
        ("go forward", "x" * 401, "characters"),
        ("go forward", "One thing. Two things. Three things.", "sentences"),
        ("go forward", "Just Go Forward now.", "suggested action"),
        ("go forward", "You are done with turning.", "'done'"),
        ("go forward", "Do not turn\nleft again.", "'turn left'"),
        ("go forward", CLEAN_DIAGNOSIS, None),
        ("go forward", "Only 2 cells left until the wall.", "'turn left' (found 'left')"),
        ("go forward", "Some leftover keys lie at your 3 o'clock.", None),  # whole words only
        ("go forward", "The box can be taken now.", "'pick up' (found 'taken')"),
        ("go forward", "The door has to be opened.", "'toggle' (found 'opened')"),
        ("pick up", "Grabbing it would help.", "suggested action 'pick up' (found 'grabbing it')"),
        *[("drop" if a != "drop" else "toggle", text, f"{a!r} (found {phrase!r})")
          for text, (a, phrase) in PARAPHRASES.items()],
    ],
)
def test_validate_advice(action, diagnosis, problem):
    reason = validate_advice(_adv(action, diagnosis), VALID, BABYAI_VOCABULARY)
    if problem is None:
        assert reason is None
    else:
        assert reason is not None and problem in reason


def test_extract_json_variants():
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('Here: {"a": 1} hope it helps') == {"a": 1}
    assert extract_json("no json") is None
    assert extract_json("[1, 2]") is None


# ------------------------------------------------------------------------------ oracle


def test_oracle_teacher_gives_a_valid_action_and_a_hint_that_does_not_name_it(family):
    env_id, seed = family.env_id, family.seed
    env = family.env(max_steps=64)
    obs = env.reset(seed)
    prefix = []
    for _ in range(2):  # a couple of student-ish steps into the episode
        res = env.step(obs.valid_actions[0])
        if res.done:
            break
        prefix.append(obs.valid_actions[0])
        obs = res.observation
    obs = env.restore(seed, prefix)
    req = AdviceRequest(env_id=env_id, seed=seed, actions=tuple(prefix), instruction=obs.instruction,
                        observation=obs.text, valid_actions=obs.valid_actions,
                        history=tuple(prefix), student_action=obs.valid_actions[0])
    teacher = make_teacher({"backend": "oracle"}, env_max_steps=64, env_options=family.options)
    adv = teacher.advise(req)
    assert adv.ok, adv.failure_reason
    assert adv.suggested_action in obs.valid_actions
    env.restore(seed, prefix)
    assert adv.suggested_action == env.expert_action()  # the expert's action at that very state
    assert validate_advice(adv, obs.valid_actions, env.mentioned_actions) is None
    assert env.mentioned_actions(adv.diagnosis) == {}
    assert len(teacher._envs) == 1  # one env instance per env_id, reused
    teacher.advise(req)
    assert len(teacher._envs) == 1


@pytest.mark.parametrize("paraphrase", sorted(PARAPHRASES))
def test_oracle_teacher_rejects_a_diagnosis_paraphrasing_an_action(monkeypatch, paraphrase):
    from teachable.teachers.oracle import OracleTeacher

    monkeypatch.setattr(BabyAITextEnv, "diagnose", lambda self, student_action: paraphrase)
    env_id = "BabyAI-GoToLocal-v0"
    req = request(env_id=env_id, seed=0, actions=(), history=(), valid_actions=BabyAITextEnv.ACTIONS)
    adv = OracleTeacher().advise(req)
    action, phrase = PARAPHRASES[paraphrase]
    assert not adv.ok and adv.suggested_action is None
    assert f"{action!r} (found {phrase!r})" in adv.failure_reason
    assert adv.meta["rejected_diagnosis"] == paraphrase


def test_oracle_teacher_accepts_a_clean_diagnosis(monkeypatch):
    from teachable.teachers.oracle import OracleTeacher

    monkeypatch.setattr(BabyAITextEnv, "diagnose", lambda self, student_action: CLEAN_DIAGNOSIS)
    req = request(env_id="BabyAI-GoToLocal-v0", seed=0, actions=(), history=(),
                  valid_actions=BabyAITextEnv.ACTIONS)
    adv = OracleTeacher().advise(req)
    assert adv.ok and adv.diagnosis == CLEAN_DIAGNOSIS


# ---------------------------------------------------------------------------- real API


@pytest.mark.network
@pytest.mark.skipif(not os.environ.get("TEACHABLE_OPENAI_API_KEY"),
                    reason="TEACHABLE_OPENAI_API_KEY is not set (real-API smoke test)")
def test_real_api_smoke(tmp_path):
    teacher = OpenAITeacher({
        "base_url": os.environ.get("TEACHABLE_OPENAI_BASE_URL", "https://api.openai.com/v1"),
        "model": os.environ.get("TEACHABLE_OPENAI_MODEL", "gpt-4o-mini"),
        "api_key_env": "TEACHABLE_OPENAI_API_KEY",
        "cache_dir": str(tmp_path),
        "max_retries": 2,
    })
    adv = teacher.advise(request())
    assert adv.ok, adv.failure_reason
    assert adv.suggested_action in VALID
    assert validate_advice(adv, VALID, BABYAI_VOCABULARY) is None
    assert teacher.usage["requests"] >= 1 and teacher.usage["prompt_tokens"] > 0
    teacher.close()
