"""The HTML family's env (``envs/html/env.py``) beyond the shared contract (tests/test_env_contract.py):
the oracle solves every archetype, restores replay sandboxed results (a timed-out one too) from
the cache, the diagnosis names nothing of the page, keys are effects, the config is checked by
key, and BabyAI and Crafter see their action spaces unchanged. The sandbox is needed: without it
these tests fail, never skip."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from teachable.envs import INVALID_ACTION, make_env
from teachable.envs.html import cache as cache_module
from teachable.envs.html import diagnosis, space, tasks
from teachable.envs.html.actions import answer_action, run_action
from teachable.envs.html.family import FAMILY
from teachable.envs.registry import action_space, check_env_id, env_options
from teachable.hint_audit import audit_labels
from teachable.stats import ClusterBootstrap
from teachable.teachers.base import validate_advice

ID = "HTMLExtract-v0"
N = len(tasks.archetypes_for(ID))


def run(code: str) -> str:
    return run_action(code)


def answer(value) -> str:
    return answer_action({"status": "ok", "answer": value})


@pytest.fixture
def no_sandbox(monkeypatch):
    """Any sandbox start fails the test: what runs must run in process or come from the cache."""

    def refuse(*args, **kwargs):
        raise AssertionError("a sandbox was started")

    monkeypatch.setattr(cache_module, "run_sandboxed", refuse)


def play_expert(env, seed: int):
    env.reset(seed)
    total, infos = 0.0, []
    while True:
        res = env.step(env.expert_action())
        total += res.reward
        infos.append(res.info)
        if res.done:
            return total, res, infos


@pytest.mark.parametrize("mode", ["all", "mvp", "tiered"])
def test_the_oracle_solves_every_archetype_in_process(mode, no_sandbox, tmp_path):
    env = make_env(ID, mode=mode, sandbox={"cache_dir": str(tmp_path)})
    names = tasks.archetypes_for(ID, mode)
    seen = set()
    for seed in range(2 * len(names)):
        total, res, infos = play_expert(env, seed)
        task = env.task
        seen.add(task.archetype)
        want = 0.5 if task.limitation is not None else 1.0
        assert res.terminated and total == want and env.is_success(total, res.info), (task.archetype, total)
        assert env.steps_taken == len(task.reference_calls) + 1 <= env.max_steps == 8
        assert all(i["archetype"] == task.archetype and i["difficulty"] == task.difficulty for i in infos)
        assert env.archetype(env.observation().instruction) == task.archetype
        values = env.episode_values()
        assert values == {"reward": want, "perfect": want == 1.0, "tool_calls": len(task.reference_calls),
                          "json_repairs": 0, "sandbox_timeouts": 0}  # fmt: skip
    assert seen == set(names)
    assert list(tmp_path.iterdir()) == []  # nothing cached: G programs run in process


def test_levels_and_modes_are_the_tasks(tmp_path):
    for env_id in tasks.TASK_IDS:
        env = make_env(env_id, sandbox={"cache_dir": str(tmp_path)})
        obs = env.reset(5)
        task = tasks.make_task(env_id, 5, "all")
        assert obs.instruction == task.question and env.task == task and env.mode == "all"
        assert "make_soup()" in obs.text and task.html not in obs.text  # the page is read with code, not shown
        assert env.valid_actions() == space.TEMPLATES
    with pytest.raises(ValueError, match="env.mode"):
        make_env("HTMLExtract-Hard-v0", mode="mvp").reset(0)  # no hard archetype in mvp


def test_invalid_actions_and_the_step_limit(tmp_path):
    env = make_env(ID, max_steps=3, sandbox={"cache_dir": str(tmp_path)})
    env.reset(0)
    res = env.step(INVALID_ACTION)
    assert res.info["invalid_action"] and res.reward == 0 and not res.done and env.tool_calls == 0
    assert "Steps left: 2." in res.observation.text
    with pytest.raises(ValueError, match="parse_action"):
        env.step('{"tool": "run_python", "code": "print(1)", "extra": 1}')
    env.step(env.expert_action())
    res = env.step(INVALID_ACTION)
    assert res.truncated and not res.terminated and res.reward == 0 and not env.is_success(0.0, res.info)
    assert env.episode_values()["reward"] == 0.0 and env.episode_values()["tool_calls"] == 1
    env.reset(0)
    env.step(env.expert_action(), repaired=True)
    assert env.episode_values()["json_repairs"] == 1


def test_restore_is_exact_with_sandboxed_and_timed_out_programs(tmp_path, monkeypatch):
    options = {"cache_dir": str(tmp_path), "timeout_s": 1}
    env = make_env(ID, sandbox=options)
    env.reset(24)  # multipage_two_hops: three reference programs
    prefix = [run("import re\nprint(len(re.findall('section', open('/page.html').read())))"),  # not in G: sandboxed
              run("while True:\n    pass"),  # times out
              INVALID_ACTION, env.expert_action()]  # fmt: skip
    for a in prefix:
        res = env.step(a)
    assert res.info["tool_result"]["error"] is None
    played = (env.observation(), env.state_key(), env.episode_values())
    assert played[2]["sandbox_timeouts"] == 1 and played[2]["tool_calls"] == 3
    assert "timed out after 1 s" in played[0].text and f"printed:\n{env.task.html.count('section')}\n" in played[0].text
    nxt = env.step(env.expert_action())

    def refuse(*args, **kwargs):
        raise AssertionError("a sandbox was started on replay")

    monkeypatch.setattr(cache_module, "run_sandboxed", refuse)
    other = make_env(ID, sandbox=options)
    other.reset(3)
    assert other.restore(24, prefix) == played[0]
    assert (other.state_key(), other.episode_values()) == played[1:]
    again = other.step(other.expert_action())
    assert again.observation == nxt.observation and again.info == nxt.info


def test_keys_are_effects_and_the_candidates_hold_the_expert(tmp_path):
    env = make_env(ID, sandbox={"cache_dir": str(tmp_path)})
    env.reset(15)  # norm_price: "€4.379,58" is 4379.58
    call = env.expert_action()
    env.step(call)
    sp = action_space(ID).at(env)
    cands = sp.candidate_actions(env.valid_actions())
    assert env.expert_action() in cands and call in cands and len(cands) == len(set(cands))
    shown = env.task.reference_calls[0]
    same_program = run(shown.replace("print(", "print( ", 1))
    assert same_program == call and sp.same(call, run(f"x = 1\n{shown}"))  # same output, same key
    assert not sp.same(call, run("print(make_soup().select_one('title').get_text(strip=True))"))
    printed = env.observation().text.split("printed:\n")[1].split("\n")[0]
    assert answer(printed) in cands and sp.same(answer(printed), env.expert_action())  # "€4.379,58" grades right
    assert not sp.same(answer("4379"), env.expert_action())
    limits = [a for a in cands if '"status": "limit"' in a]
    assert len(limits) == len(tasks.LIMIT_REASONS) and len({sp.key(a) for a in limits}) == 1  # all refused
    assert sp.key(INVALID_ACTION) == INVALID_ACTION
    # the unbound space keys by text and has no candidates of its own
    assert action_space(ID).key(call) == call
    with pytest.raises(ValueError, match=r"\.at\(env\)"):
        action_space(ID).candidate_actions(env.valid_actions())
    # the space keeps the state it was built at, on its page, after the env moved on
    key = sp.key(call)
    env.reset(0)
    assert sp.candidate_actions() == cands and sp.key(call) == key and len(sp.shown) == 1


def _identifier_free(text: str, html: str) -> bool:
    pat = space._page_pattern(html)
    return (pat is None or not pat.search(" ".join(text.split()).casefold())) and not space.mentioned_actions(text)


def test_the_diagnosis_names_no_code_selector_identifier_or_value(no_sandbox, tmp_path):
    sentences = [*diagnosis.SAYS.values(), *diagnosis.PAGE_WORDS.values()]
    for env_id in tasks.TASK_IDS:
        for seed in range(3 * N):
            html = tasks.make_task(env_id, seed).html
            assert all(_identifier_free(s, html) for s in sentences), (env_id, seed)
    env = make_env(ID, sandbox={"cache_dir": str(tmp_path)})
    kinds = set()
    for seed in range(N):
        env.reset(seed)
        for depth in range(len(env.task.reference_calls) + 1):
            sp = action_space(ID).at(env)
            cands = sp.candidate_actions(env.valid_actions())
            students = (*cands, None, INVALID_ACTION, answer("no such thing"), run("print(len(make_soup().select('#nowhere')))"),
                        *(answer(f"it is {s}") for s in env.task.secrets),
                        run("print(make_soup().select_one('#nowhere').get_text(strip=True))"))  # fmt: skip
            for student in students:
                advice = env.expert_advice(student)
                kinds.add(advice.error_type)
                assert advice.error_type in diagnosis.ERROR_TYPES
                assert validate_advice(advice, cands, sp.mentions) is None, (seed, student, advice.diagnosis)
                assert _identifier_free(advice.diagnosis, env.task.html)
                assert not re.search(r"\d", advice.diagnosis)
            if depth < len(env.task.reference_calls):
                env.step(env.expert_action())
    assert {"correct", "invalid_action", "wrong_answer", "empty_result", "failing_program", "missed_limitation",
            "needless_abstention", "leaked_secret", "off_target_program"} <= kinds  # fmt: skip


def test_mentions_catch_code_identifiers_and_values(tmp_path):
    env = make_env(ID, sandbox={"cache_dir": str(tmp_path)})
    env.reset(0)  # table_cell
    sp = action_space(ID).at(env)
    cands = sp.candidate_actions()
    truth = env.task.answer
    for text in ("Try make_soup() first.", "Look at the tbody rows.", f"It is {truth}.", "Use select_one.",
                 "Say login required."):  # fmt: skip
        assert set(sp.mentions(text)) & set(cands), text
    assert sp.mentions(diagnosis.SAYS["wrong_answer"]) == {}
    assert space.mentioned_actions("run it with python") == {space.RUN_TEMPLATE: "python"}
    assert space.mentioned_actions("the page says: login required")  == {space.LIMIT_TEMPLATE: "login required"}


def test_config_is_refused_by_key():
    for env, needle in [({"id": ID, "mode": "mvpp"}, "env.mode"),
                        ({"id": ID, "sandbox": {"timeout_s": 0}}, "env.sandbox.timeout_s"),
                        ({"id": ID, "sandbox": {"memory_mb": "big"}}, "env.sandbox.memory_mb"),
                        ({"id": ID, "sandbox": {"timeot_s": 1}}, "timeot_s"),
                        ({"id": ID, "goal": "collect_stone"}, "env.goal")]:  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(needle)):
            env_options(env)
    with pytest.raises(ValueError, match="HTMLExtract-Hard-v0"):
        check_env_id("HTMLExtract-Hardest-v0")
    assert env_options({"id": ID, "mode": "mvp", "sandbox": {"timeout_s": 2}}) == {"mode": "mvp",
                                                                                   "sandbox": {"timeout_s": 2}}
    with pytest.raises(ValueError, match="env.sandbox.tasks"):
        make_env(ID, sandbox={"tasks": 0})
    assert FAMILY.extra == "html" and FAMILY.extra_module == "bs4"


@pytest.mark.parametrize("env_id", ["BabyAI-GoToLocal-v0", "CrafterReward-v1"])
def test_finite_families_are_unchanged(env_id):
    env = make_env(env_id)
    env.reset(1)
    sp = action_space(env_id)
    assert sp.at(env) is sp and sp.candidate_actions(env.valid_actions()) == env.valid_actions()
    assert all(sp.audit_label(a) == a for a in env.valid_actions())


def test_audit_labels_and_metrics(tmp_path):
    env = make_env(ID, sandbox={"cache_dir": str(tmp_path)})
    rows = []
    for seed in range(N):
        env.reset(seed)
        a = env.expert_action()
        rows.append({"env_id": ID, "suggested_action": a})
        total, res, _ = play_expert(env, seed)
        rows[-1].update(task_id=f"t{seed}", success=env.is_success(total, res.info),
                        instruction=env.observation().instruction, **env.episode_values())  # fmt: skip
    labels = audit_labels(pd.DataFrame(rows))
    assert set(labels) == {"run_python:text", "run_python:texts", "run_python:attr", "run_python:attrs",
                           "run_python:count", "run_python:json"}  # fmt: skip
    assert space.audit_label(answer(1)) == "answer:ok"
    metrics = dict(FAMILY.metrics(pd.DataFrame(rows), ClusterBootstrap(0.95, 200, 0)))
    assert metrics["reward"]["n"] == N and metrics["archetype_success:limit_login"]["value"] == 1.0
    assert metrics["archetype_reward:limit_login"]["value"] == 0.5
    assert metrics["archetype_perfect:table_cell"]["value"] == 1.0 and not any(k.startswith("success:") for k in metrics)
    assert json.dumps(metrics)  # plain numbers


def test_the_extra_is_checked_by_importing_bs4(monkeypatch):
    """``html`` is a standard-library module: the family's import check is on bs4."""
    import importlib.util

    from teachable.envs import registry

    real = importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name, *a: None if name == "bs4" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"'html' extra \(module 'bs4'\)"):
        check_env_id(ID)
