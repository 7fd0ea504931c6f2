"""The OpenAI-compatible student through real HTTP: the local test server (tests/openai_server.py)
serves the embedded student's own generations (``StudentResponder``), the real ``openai`` client
talks to it, and the OpenAI student plays BabyAI through the lockstep rollout engine."""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from openai_server import FakeOpenAIServer, StudentResponder, content, dropped, error, slow

from conftest import complete
from teachable.envs.base import INVALID_ACTION
from teachable.envs.registry import system_prompt
from teachable.labeling import score_snapshots
from teachable.mining import episode_rows
from teachable.openai_api import MissingAPIKeyError
from teachable.policies import check_trainable, make_student
from teachable.policies.base import Context, entropy_of, sampled_logprobs
from teachable.policies.openai_student import OpenAIStudent, StudentRequestError
from teachable.rollouts import RolloutSpec, run_rollouts
from teachable.seeding import rollout_key
from teachable.schemas import RAW_LABELS, ROLLOUT_STEPS, check_frame
from teachable.stats import wilson_interval

ENV = "BabyAI-GoToLocal-v0"
EASY = "BabyAI-GoToRedBallNoDists-v0"
SYSTEM = system_prompt(ENV)


@pytest.fixture(scope="module")
def hf_student(tiny_student):
    from teachable.policies.hf import HFPolicy

    return HFPolicy(tiny_student, device="cpu", system_prompt=SYSTEM)


@pytest.fixture
def server(hf_student):
    with FakeOpenAIServer(responder=StudentResponder(hf_student, SYSTEM)) as srv:
        yield srv


@pytest.fixture
def make(server, tmp_path):
    """An OpenAIStudent on the test server; keyword overrides go into its config."""
    students = []

    def _make(**overrides) -> OpenAIStudent:
        cfg = dict(base_url=server.base_url, model="tiny-student", api_key_env="TEACHABLE_TEST_KEY_UNSET",
                   timeout_s=5.0, max_retries=2, concurrency=4, k_samples=4, cache_dir=str(tmp_path / "cache"))  # fmt: skip
        cfg.update(overrides)
        s = OpenAIStudent(cfg, system_prompt=SYSTEM)
        students.append(s)
        return s

    yield _make
    for s in students:
        s.close()


def _train_easy_student(tmp_path_factory, name: str, *, vocab_size: int, train_steps: int):
    """An HFPolicy on a tiny student trained on the easy level (``student_init.train_student``)."""
    from teachable.policies.hf import HFPolicy
    from teachable.student_init import train_student

    cfg = {"env_id": EASY, "env_options": {}, "max_steps": 20, "history_len": 2,
           "demo_seeds": list(range(300000, 300040)), "patch_fraction": 0.0, "noise_fraction": 0.0,
           "explore_prob": 0.1, "vocab_size": vocab_size, "hidden_size": 32, "n_layers": 1, "n_heads": 2,
           "intermediate_size": 64, "max_position_embeddings": 512, "train_steps": train_steps, "lr": 3e-3,
           "batch_size": 16, "seed": 0}  # fmt: skip
    out = tmp_path_factory.mktemp(name) / "student"
    train_student(cfg, out, progress=False)
    return HFPolicy(out, device="cpu", system_prompt=SYSTEM)


@pytest.fixture(scope="module")
def trained_student(tmp_path_factory):
    """A tiny student trained briefly on an easy level (about 10 s; success about one half at
    T = 1), so that success rates can disagree."""
    return _train_easy_student(tmp_path_factory, "trained", vocab_size=300, train_steps=150)


def play(policy, seeds, temperature=1.0, max_steps=12, env=ENV, **kw):
    specs = [RolloutSpec(env, s, stream=rollout_key(0, "test", s, 0)) for s in seeds]
    return run_rollouts(specs, policy, temperature=temperature, history_len=2, max_steps=max_steps,
                        progress=False, **kw)  # fmt: skip


# ------------------------------------------------------------------------ the estimator


def test_sampled_logprobs_leave_invalid_answers_out_and_count_them():
    lp, n_invalid = sampled_logprobs(["drop", None, "drop", "toggle"], ("drop", "toggle", "done"))
    assert n_invalid == 1
    assert np.allclose(np.exp(lp), [2 / 3, 1 / 3, 0])
    assert entropy_of(lp) == pytest.approx(-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)))
    lp, n_invalid = sampled_logprobs([None, None], ("drop", "done"))
    assert n_invalid == 2 and np.isnan(lp).all()


def test_what_a_backend_is_is_declared(hf_student, make):
    assert hf_student.exact_u and not hf_student.metered
    assert not make().exact_u and make().metered
    assert set(hf_student.usage_summary()) == {"model", "states_scored", "memo_hits"}
    with pytest.raises(ValueError, match="student.backend: hf or vllm"):
        make().load_adapter(None)  # an API student serves no adapters


# ------------------------------------------------------------------- the same model behind HTTP


def test_greedy_openai_student_takes_exactly_the_hf_students_actions(hf_student, make, server):
    seeds = range(4)
    hf = play(hf_student, seeds, temperature=0.0)
    api = play(make(), seeds, temperature=0.0)
    assert [r.actions for r in api] == [r.actions for r in hf]
    assert server.responder.served == sum(r.steps for r in api)


def overlap(k1, n1, k2, n2) -> bool:
    """Whether the Wilson intervals of k1/n1 and k2/n2 overlap."""
    lo1, hi1 = wilson_interval(k1, n1)
    lo2, hi2 = wilson_interval(k2, n2)
    return lo1 <= hi2 and lo2 <= hi1


@pytest.mark.integration  # trains a student of its own
def test_success_and_actions_agree_with_the_hf_backend_within_intervals(trained_student, tmp_path):
    """Sampled at T = 1 on the same tasks of an easy level: the success rates and the rate of
    each action taken agree within their Wilson intervals."""
    seeds = range(40)
    with FakeOpenAIServer(responder=StudentResponder(trained_student, SYSTEM)) as server:
        student = OpenAIStudent({"base_url": server.base_url, "model": "trained", "concurrency": 8,
                                 "cache_dir": str(tmp_path / "cache")}, system_prompt=SYSTEM)  # fmt: skip
        t0 = time.perf_counter()
        api = play(student, seeds, env=EASY, max_steps=20)
        seconds = time.perf_counter() - t0
        n_requests = len(server.requests)
    hf = play(trained_student, seeds, env=EASY, max_steps=20)
    n = len(seeds)
    k_api, k_hf = sum(r.success for r in api), sum(r.success for r in hf)
    assert 0 < k_hf < n  # success can disagree
    assert overlap(k_api, n, k_hf, n), (k_api, k_hf)
    a_api, a_hf = Counter(a for r in api for a in r.actions), Counter(a for r in hf for a in r.actions)
    n_api, n_hf = sum(a_api.values()), sum(a_hf.values())
    for action in set(a_api) | set(a_hf):
        assert overlap(a_api[action], n_api, a_hf[action], n_hf), (action, a_api, a_hf)
    assert INVALID_ACTION not in a_api
    usage = student.usage_summary()
    assert usage["requests"] == n_api == n_requests and usage["cache_hits"] == 0
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0 and usage["failures"] == 0
    student.close()
    lo, hi = wilson_interval(k_api, n)
    lo_hf, hi_hf = wilson_interval(k_hf, n)
    print(f"\nsuccess {EASY} n={n}: openai {k_api / n:.2f} [{lo:.2f}, {hi:.2f}], hf {k_hf / n:.2f} "
          f"[{lo_hf:.2f}, {hi_hf:.2f}]; {n_api} requests in {seconds:.2f} s = {n_api / seconds:.0f} requests/s")


def test_a_server_without_the_student_would_be_caught(hf_student, make, server):
    """The agreement test can fail: a server that always answers one action does not agree."""
    server.responder = lambda body: content("turn left")
    api = play(make(), range(12))
    hf = play(hf_student, range(12))
    k_api, n_api = sum(a == "turn left" for r in api for a in r.actions), sum(r.steps for r in api)
    k_hf, n_hf = sum(a == "turn left" for r in hf for a in r.actions), sum(r.steps for r in hf)
    assert not overlap(k_api, n_api, k_hf, n_hf)


# --------------------------------------------------------------------------------- faults


def test_fault_mix_is_survived_and_counted(make, server):
    """429 with Retry-After (seconds), 500, a timeout and a dropped connection are retried by the
    client; an answer that names no action is played as INVALID_ACTION and counted."""
    student = make(timeout_s=0.5, max_retries=4, concurrency=1)
    server.script(error(429, retry_after_ms=None, retry_after_s=1), error(500), slow(1.0, content("drop")), dropped(),
                  content("I would rather dance"))  # fmt: skip
    t0 = time.perf_counter()
    (r,) = play(student, [0], max_steps=6)
    assert time.perf_counter() - t0 >= 1.0  # Retry-After: 1 honoured
    assert r.actions[0] == INVALID_ACTION and INVALID_ACTION not in r.actions[1:]
    assert server.pending == 0
    usage = student.usage_summary()
    assert usage["transport_retries"] == 4 and usage["failures"] == 0
    assert usage["requests"] == r.steps and len(server.requests) == r.steps + 4


def test_retries_exhausted_stop_the_job_with_the_fault_named(make, server):
    student = make(max_retries=1, concurrency=1)
    server.script(error(500), error(500))
    with pytest.raises(StudentRequestError, match=r"student.openai.max_retries\): HTTP 500") as exc:
        play(student, [0], max_steps=3)
    assert exc.value.kind == "server_error" and student.usage["failures"] == 1


# --------------------------------------------------------------------------------- cache


def test_cache_makes_a_rerun_issue_zero_requests(make, server, tmp_path):
    first = play(make(), range(3), record_steps=True)
    n = len(server.requests)
    assert n > 0
    again = make()
    second = play(again, range(3), record_steps=True)
    assert len(server.requests) == n and again.usage["requests"] == 0 and again.usage["cache_hits"] > 0
    assert [r.actions for r in second] == [r.actions for r in first]
    assert [[s.U for s in r.records] for r in second] == [[s.U for s in r.records] for r in first]
    entry = json.loads(next((tmp_path / "cache").glob("*.json")).read_text())
    assert set(entry["request"]) == {"model", "messages", "params", "sample"}


def test_cache_key_depends_on_the_sample_and_the_temperature(make, server):
    student = make(concurrency=1)
    ctx = Context("go to the red ball", "You see a wall.", (), ("turn left", "turn right", "drop"))
    from teachable.policies.base import SampleRequest

    student.generate([SampleRequest(ctx, "r1", 1.0), SampleRequest(ctx, "r1", 1.0)])
    assert len(server.requests) == 1
    student.generate([SampleRequest(ctx, "r2", 1.0), SampleRequest(ctx, "r1", 0.5)])
    assert len(server.requests) == 3
    assert server.requests[0]["body"]["seed"] != server.requests[1]["body"]["seed"]


def test_the_api_key_is_sent_but_never_written(make, server, tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHABLE_TEST_STUDENT_KEY", "sk-secret-value-123")
    play(make(api_key_env="TEACHABLE_TEST_STUDENT_KEY"), [0], max_steps=2, record_steps=True)
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-secret-value-123"
    assert not any("sk-secret-value-123" in p.read_text() for p in (tmp_path / "cache").glob("*.json"))


# ------------------------------------------------------------------------ U beside its estimator


def test_rollout_U_is_the_entropy_of_k_parsed_samples(make, server):
    student = make(k_samples=5)
    (r,) = play(student, [1], max_steps=3, record_steps=True)
    assert all(s.u_est.k == 5 and np.isnan(s.action_prob) for s in r.records)
    assert len(server.requests) == r.steps * (1 + 5)
    rows = pd.DataFrame(episode_rows("A", "A-1-0", r, sampled_u=True))
    assert set(rows["U_estimator"]) == {"samples"} and set(rows["U_k"]) == {5}
    check_frame(rows, ROLLOUT_STEPS, "rollouts")
    assert all(np.isfinite(s.U) and 0 <= s.U <= np.log(len(s.valid_actions)) for s in r.records)


def test_snapshot_scores_of_a_generate_only_student_say_their_estimator(make, server):
    from teachable.envs import make_env

    env = make_env(ENV, max_steps=12)
    obs = env.reset(3)
    snaps = pd.DataFrame([{"env_id": ENV, "instruction": obs.instruction, "observation": obs.text, "history": [],
                           "valid_actions": list(obs.valid_actions), "student_action": None}])  # fmt: skip
    server.script(*[content(a) for a in ("drop", "drop", "pick up", "sing a song")])
    scored = score_snapshots(snaps, make(k_samples=4, concurrency=1))
    row = scored.iloc[0]
    assert row["U_estimator"] == "samples" and row["U_k"] == 4
    assert row["U"] == pytest.approx(-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)))
    assert row["student_action"] == "drop" and row["p_student_action"] == pytest.approx(2 / 3)
    labels = complete(scored.drop(columns=["_logprobs"]), RAW_LABELS)
    check_frame(labels, RAW_LABELS, "labels")


def test_snapshot_without_a_valid_sample_is_left_out(make, server):
    snaps = pd.DataFrame([{"env_id": ENV, "instruction": "go to the red ball", "observation": "You see a wall.",
                           "history": [], "valid_actions": ["turn left", "drop"], "student_action": None}])  # fmt: skip
    server.script(*[content("hmm") for _ in range(2)])
    assert score_snapshots(snaps, make(k_samples=2, concurrency=1)).empty


# ------------------------------------------------------------------------------- config


def test_make_student_builds_the_openai_backend(server, tmp_path):
    cfg = {"backend": "openai", "openai": {"base_url": server.base_url, "cache_dir": str(tmp_path / "c")}}
    student = make_student(cfg, None, env_id=ENV)
    assert isinstance(student, OpenAIStudent) and student.system_prompt == SYSTEM
    assert student.cfg.k_samples == 8  # the schema's default
    with pytest.raises(ValueError, match="adapter"):
        make_student(cfg, None, "some/adapter", env_id=ENV)


def test_unknown_openai_key_is_an_error_naming_it():
    with pytest.raises(ValueError, match="temprature"):
        OpenAIStudent({"temprature": 0.5}, system_prompt=SYSTEM)


def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("TEACHABLE_NO_SUCH_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="TEACHABLE_NO_SUCH_KEY.*student.openai.api_key_env"):
        OpenAIStudent({"base_url": "https://api.example.com/v1", "api_key_env": "TEACHABLE_NO_SUCH_KEY"},
                      system_prompt=SYSTEM)  # fmt: skip


def test_a_study_refuses_a_backend_that_cannot_train():
    check_trainable({"backend": "hf"})
    with pytest.raises(ValueError, match=r"student.backend='openai'.*1B.*2.*5.*student.backend: hf"):
        check_trainable({"backend": "openai"})


def test_close_logs_the_jobs_usage(make, server, caplog):
    import logging

    student = make()
    play(student, [0], max_steps=2)
    with caplog.at_level(logging.INFO, logger="teachable.policies.openai_student"):
        student.close()
    assert "OpenAI student usage" in caplog.text and "'requests': 2" in caplog.text


def test_an_invalid_student_action_is_labeled_against_the_students_likeliest_other_action(make, server):
    """Experiment A can mine a step where a generate-only student's answer did not parse: it
    keeps its INVALID_ACTION (never replaced), has no probability, and the contrast calls the
    student's likeliest valid action other than the teacher's worse."""
    from teachable.envs.registry import action_space
    from teachable.labeling import contrast_action

    space = action_space(ENV)
    snaps = pd.DataFrame([{"env_id": ENV, "instruction": "go to the red ball", "observation": "You see a wall.",
                           "history": [], "valid_actions": ["turn left", "turn right", "drop"],
                           "student_action": INVALID_ACTION}])  # fmt: skip
    server.script(*[content(a) for a in ("drop", "turn right", "drop", "??")])
    row = score_snapshots(snaps, make(k_samples=4, concurrency=1)).iloc[0]
    assert row["student_action"] == INVALID_ACTION and np.isnan(row["p_student_action"])
    va = list(row["valid_actions"])
    assert contrast_action(INVALID_ACTION, "drop", va, row["_logprobs"], space) == "turn right"
    assert contrast_action(INVALID_ACTION, "turn left", va, row["_logprobs"], space) == "drop"


def test_phase1_labels_a_snapshot_with_the_openai_student(make, server):
    """label_snapshots end to end with a generate-only student: U from k samples beside its
    estimator, every condition rolled out through the API, and the rows fit the declared table."""
    from teachable.envs import make_env
    from teachable.labeling import label_snapshots
    from teachable.schemas import OUTCOME_CONDITIONS
    from teachable.teachers.oracle import OracleTeacher

    seed = 4
    obs = make_env(ENV, max_steps=12).reset(seed)
    snap = pd.DataFrame([{"snapshot_id": f"{ENV}/B-{seed}/t0", "experiment": "B", "task_id": f"{ENV}:{seed}",
                          "env_id": ENV, "seed": seed, "step_idx": 0, "actions": [], "instruction": obs.instruction,
                          "observation": obs.text, "history": [], "valid_actions": list(obs.valid_actions),
                          "student_action": None, "expert_action": "", "episode_id": f"B-{seed}-0",
                          "episode_length": 1, "steps_left": 12}])  # fmt: skip
    cfg = {"seed": 0, "env": {"id": ENV, "max_steps": 12, "history_len": 2}, "student": {"temperature": 1.0},
           "phase1": {"n_rollouts": 2, "n_rollouts_expert": 1, "confidence": 0.95, "n_bootstrap": 100}}  # fmt: skip
    raw, failures = label_snapshots(snap, make(k_samples=4), OracleTeacher(12), cfg, progress=False)
    assert failures.empty and len(raw) == 1
    row = raw.iloc[0]
    assert row["U_estimator"] == "samples" and row["U_k"] == 4 and np.isfinite(row["U"])
    assert all(len(row[f"y_{c}"]) == (1 if c == "expert" else 2) for c in OUTCOME_CONDITIONS)
    check_frame(raw, RAW_LABELS, "labels")
    assert len(server.requests) > 4
    from teachable.labeling import label_stats

    stats = label_stats(raw)
    assert stats.loc[0, "U_estimator"] == "samples" and stats.loc[0, "U_k"] == 4  # carried to the labels


# ------------------------------------------------------------------- U from the server's logprobs


@pytest.fixture(scope="module")
def sharp_student(tmp_path_factory):
    """A tiny student trained on an easy level with a vocabulary in which "turn left", "turn
    right" and "go forward" are one token each (about 10 s): sure enough of its answers that
    almost all of its probability is on valid actions' text."""
    return _train_easy_student(tmp_path_factory, "sharp", vocab_size=600, train_steps=200)


def visited_states(policy, env=EASY, seeds=range(8), max_steps=10) -> list[Context]:
    """The states of the HF student's own episodes (T = 1)."""
    res = play(policy, seeds, env=env, max_steps=max_steps, record_steps=True)
    return [Context(s.instruction, s.observation, s.history, s.valid_actions) for r in res for s in r.records]


def api_student(server, tmp_path, **cfg) -> OpenAIStudent:
    return OpenAIStudent({"base_url": server.base_url, "model": "student", "cache_dir": str(tmp_path / "cache"), **cfg},
                         system_prompt=SYSTEM)  # fmt: skip


def parsers(ctxs, env=EASY):
    from teachable.envs.registry import parse_action

    return [lambda t: parse_action(env, t)] * len(ctxs)


@pytest.mark.integration  # trains a student of its own
def test_U_from_token_logprobs_through_http_equals_the_hf_students_U(sharp_student, tmp_path):
    """The server returns the HF student's own token logprobs (top 20); U reconstructed from
    them agrees with the HF backend's U (entropy of action_logprobs) at the states of its own
    episodes. They differ by what the logprobs do not show: the end-of-turn token the HF score
    multiplies into each action (P(<|end|> | action) is near 1 for a trained student) and the
    mass the logprobs leave unresolved (1 - U_logprob_mass <= 0.1), so the tolerance is 0.05 nats
    (measured: about 0.01)."""
    from teachable.policies.generated_u import estimate_u

    ctxs = visited_states(sharp_student)
    with FakeOpenAIServer(responder=StudentResponder(sharp_student, SYSTEM, logprobs=True)) as server:
        student = api_student(server, tmp_path)  # the schema's defaults: u_source auto, top_logprobs 20
        ests = estimate_u(student, ctxs, parsers(ctxs))
        bodies = [r["body"] for r in server.requests]
    assert all(b["logprobs"] is True and b["top_logprobs"] == 20 and b["temperature"] == 1.0 for b in bodies)
    u_hf = [entropy_of(lp) for lp in sharp_student.action_logprobs(ctxs)]
    lp_states = [(e, u) for e, u in zip(ests, u_hf) if e.estimator == "logprobs"]
    assert len(lp_states) >= 0.9 * len(ctxs) >= 40
    assert all(e.mass >= 0.9 and e.k >= 1 for e, _ in lp_states)
    n_answers = len(bodies) + student.usage["cache_hits"]  # a state visited twice is answered from the cache
    assert n_answers == sum(e.k for e in ests) < 1.5 * len(ctxs)  # mostly one answer per state
    diffs = np.array([abs(e.U - u) for e, u in lp_states])
    print(f"\nU from logprobs vs HF over {len(diffs)} of {len(ctxs)} states: max |dU| {diffs.max():.4f}, mean "
          f"{diffs.mean():.4f} nats; U_hf spans [{min(u_hf):.3f}, {max(u_hf):.3f}]; {len(bodies)} requests")  # fmt: skip
    assert diffs.max() < 0.05
    assert np.ptp([u for _, u in lp_states]) > 0.3  # the states differ in U: agreement is not a constant


@pytest.mark.integration  # trains a student of its own
def test_logprob_U_of_another_model_does_not_agree(sharp_student, tmp_path):
    """The agreement test can fail: the same answers with the token logprobs of another model
    (the student's weights perturbed) give another U."""
    import torch

    from teachable.policies.generated_u import estimate_u
    from teachable.policies.hf import HFPolicy

    ctxs = visited_states(sharp_student, seeds=range(2))
    other = HFPolicy(sharp_student.model_dir, device="cpu", system_prompt=SYSTEM)
    torch.manual_seed(0)
    with torch.no_grad():
        for w in other.model.parameters():
            w.add_(0.2 * torch.randn_like(w))
    responder, scorer = StudentResponder(sharp_student, SYSTEM), StudentResponder(other, SYSTEM)

    def answer(body):
        reply = responder(body)
        reply.logprobs = scorer.token_logprobs(scorer.context(body["messages"]), reply.content, 20)
        return reply

    with FakeOpenAIServer(responder=answer) as server:
        ests = estimate_u(api_student(server, tmp_path, min_logprob_mass=0.01), ctxs, parsers(ctxs))
    u_hf = [entropy_of(lp) for lp in sharp_student.action_logprobs(ctxs)]
    diffs = [abs(e.U - u) for e, u in zip(ests, u_hf) if e.estimator == "logprobs"]
    print(f"\nperturbed: {len(diffs)} of {len(ctxs)} states from logprobs, max |dU| {max(diffs):.3f}")
    assert len(diffs) >= len(ctxs) / 2 and max(diffs) > 0.2


def one_snapshot(seed: int = 3, env: str = EASY) -> pd.DataFrame:
    from teachable.envs import make_env

    obs = make_env(env, max_steps=12).reset(seed)
    return pd.DataFrame([{"env_id": env, "instruction": obs.instruction, "observation": obs.text, "history": [],
                          "valid_actions": list(obs.valid_actions), "student_action": None}])  # fmt: skip


@pytest.mark.integration  # trains a student of its own
def test_rows_carry_a_U_from_logprobs_with_its_resolved_mass(sharp_student, tmp_path):
    """Rollout steps and labels say U_estimator logprobs, with U_k and U_logprob_mass, and fit
    their declared tables; a re-run is answered from the cache (logprobs included)."""
    with FakeOpenAIServer(responder=StudentResponder(sharp_student, SYSTEM, logprobs=True)) as server:
        (r,) = play(api_student(server, tmp_path, k_samples=4), [2], env=EASY, max_steps=4, record_steps=True)
        rows = pd.DataFrame(episode_rows("A", "A-2-0", r, sampled_u=True))
        check_frame(rows, ROLLOUT_STEPS, "rollouts")
        assert set(rows["U_estimator"]) == {"logprobs"} and (rows["U_logprob_mass"] >= 0.9).all()
        assert (rows["U_k"] >= 1).all() and rows["U"].between(0, np.log(3)).all()
        scored = score_snapshots(one_snapshot(), api_student(server, tmp_path))
        row = scored.iloc[0]
        assert row["U_estimator"] == "logprobs" and row["U_logprob_mass"] >= 0.9 and row["U_k"] >= 1
        lp_hf = sharp_student.action_logprobs([Context(row["instruction"], row["observation"], (),
                                                       tuple(row["valid_actions"]))])[0]  # fmt: skip
        assert row["U"] == pytest.approx(entropy_of(lp_hf), abs=0.05)
        check_frame(complete(scored.drop(columns=["_logprobs"]), RAW_LABELS), RAW_LABELS, "labels")
        n = len(server.requests)
        again = api_student(server, tmp_path)
        rescored = score_snapshots(one_snapshot(), again)
        assert len(server.requests) == n and again.usage["cache_hits"] == row["U_k"]
        assert rescored.iloc[0]["U"] == row["U"]
    # the cache holds the rollouts' requests (no logprobs) and U's (with them): U's were stored with their params
    entries = [json.loads(f.read_text()) for f in sorted((tmp_path / "cache").glob("*.json"))]
    u_entries = [e for e in entries if e["request"]["params"].get("logprobs") is True]
    assert u_entries and all(e["request"]["params"]["top_logprobs"] == 20 for e in u_entries)
    assert all(e["logprobs"][0]["top_logprobs"] and {"token", "logprob"} <= set(e["logprobs"][0]) for e in u_entries)
    assert again.usage_summary()["u_states"]["logprobs"] == 1


def test_auto_falls_back_to_samples_where_the_server_returns_no_logprobs(make, server):
    """The server (the HF student, no logprobs) answers U's first request without them: the
    state's U comes from k samples, the first answer among them, and the row says so."""
    student = make(k_samples=4, concurrency=1)
    row = score_snapshots(one_snapshot(), student).iloc[0]
    assert row["U_estimator"] == "samples" and row["U_k"] == 4 and np.isnan(row["U_logprob_mass"])
    bodies = [r["body"] for r in server.requests]
    assert len(bodies) == 4 and bodies[0]["logprobs"] is True and not any("logprobs" in b for b in bodies[1:])
    assert student.usage_summary()["u_states"] == {"samples": 1, "logprobs": 0, "no logprobs returned": 1}


def test_logprobs_mode_without_logprobs_is_an_error_naming_the_key(make, server):
    from teachable.policies.generated_u import UEstimateError

    with pytest.raises(UEstimateError, match=r"student.openai.u_source is 'logprobs'"):
        score_snapshots(one_snapshot(), make(u_source="logprobs"))


@pytest.mark.integration  # trains a student of its own
def test_logprobs_that_resolve_too_little_are_samples_in_auto_and_an_error_in_logprobs_mode(trained_student, tmp_path):
    """The briefly trained student spells actions in characters and leaves much of its
    probability on no valid action's text: auto takes its k answers (asked with logprobs) as
    samples; logprobs mode stops naming student.openai.min_logprob_mass."""
    from teachable.policies.generated_u import UEstimateError

    with FakeOpenAIServer(responder=StudentResponder(trained_student, SYSTEM, logprobs=True)) as server:
        row = score_snapshots(one_snapshot(), api_student(server, tmp_path, k_samples=4)).iloc[0]
        assert row["U_estimator"] == "samples" and row["U_k"] == 4
        assert len(server.requests) == 4 and all(r["body"]["logprobs"] for r in server.requests)
        with pytest.raises(UEstimateError, match=r"below config key student.openai.min_logprob_mass=0.9"):
            score_snapshots(one_snapshot(), api_student(server, tmp_path, k_samples=4, u_source="logprobs"))


def test_a_server_refusing_logprobs_is_asked_again_without_them_or_stops_in_logprobs_mode(make, server):
    server.script(error(400, message="logprobs are not supported"))
    student = make(k_samples=3, concurrency=1)
    row = score_snapshots(one_snapshot(), student).iloc[0]
    assert row["U_estimator"] == "samples" and row["U_k"] == 3
    bodies = [r["body"] for r in server.requests]
    assert bodies[0]["logprobs"] is True and not any("logprobs" in b for b in bodies[1:]) and len(bodies) == 4
    assert student.usage["logprobs_refused"] == 1 and student.usage["failures"] == 0
    score_snapshots(one_snapshot(seed=4), student)  # later states no longer ask
    assert not any("logprobs" in r["body"] for r in server.requests[4:])
    server.script(error(400, message="logprobs are not supported"))
    with pytest.raises(StudentRequestError, match=r"refuses logprobs.*student.openai.u_source: logprobs"):
        score_snapshots(one_snapshot(seed=5), make(u_source="logprobs"))


def test_samples_mode_asks_no_logprobs(make, server):
    row = score_snapshots(one_snapshot(), make(u_source="samples", k_samples=3)).iloc[0]
    assert row["U_estimator"] == "samples" and len(server.requests) == 3
    assert not any("logprobs" in r["body"] or "top_logprobs" in r["body"] for r in server.requests)
