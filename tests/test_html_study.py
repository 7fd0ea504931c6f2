"""The study's generic phases on the HTML family, from table rows: the action space bound at a
row's state (``registry.StateSpaces``, restoring an env only where the family's space needs a
state), the labels' candidates, validity, contrast and p(teacher), the hint audit's naming check,
an API teacher's rules, and the bench with the expert as its player. BabyAI rows never restore an
env. The rows are built from a real env (mode mvp), as phase 0 records them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from teachable.envs import INVALID_ACTION, make_env
from teachable.envs.base import Advice
from teachable.envs.html.actions import answer_action, run_action
from teachable.envs.html.space import TEMPLATES, page_identifiers
from teachable.envs.registry import StateSpaces, action_space
from teachable.hint_audit import naming_examples
from teachable.labeling import _valid, action_prob, advice_request, candidates_of, condition_patches, contrast_action
from teachable.teachers.base import advice_problem

ID = "HTMLExtract-v0"
CLEAN = "The value you need is already in what you printed."


def run(code: str) -> str:
    return run_action(code)


def answer(value) -> str:
    return answer_action({"status": "ok", "answer": value})


@pytest.fixture
def env_cfg(tmp_path):
    return {"id": ID, "mode": "mvp", "max_steps": 8, "history_len": 4, "sandbox": {"cache_dir": str(tmp_path)}}


def html_row(env_cfg, seed: int = 3, depth: int = 1, student_action=None) -> dict:
    """A snapshot row after ``depth`` expert steps of ``seed`` (as phase 0 stores it)."""
    env = make_env(ID, max_steps=env_cfg["max_steps"], mode="mvp", sandbox=env_cfg["sandbox"])
    obs = env.reset(seed)
    actions = []
    for _ in range(depth):
        actions.append(env.expert_action())
        obs = env.step(actions[-1]).observation
    return {"snapshot_id": f"s{seed}", "task_id": f"{ID}:{seed}", "env_id": ID, "seed": seed, "actions": actions,
            "instruction": obs.instruction, "observation": obs.text, "valid_actions": list(obs.valid_actions),
            "history": actions[-4:], "student_action": student_action, "expert": env.expert_action(),
            "space": env.action_space()}  # fmt: skip


def test_a_finite_familys_rows_restore_no_env():
    spaces = StateSpaces.of_config({"id": "BabyAI-GoToLocal-v0", "max_steps": 64, "history_len": 4})
    row = {"env_id": "BabyAI-GoToLocal-v0", "seed": 0, "actions": ["turn left"], "valid_actions": ["turn left", "drop"]}
    space, cands = candidates_of(row, spaces)
    assert space is action_space("BabyAI-GoToLocal-v0") and cands == ("turn left", "drop") and not spaces._envs
    assert candidates_of(row) == (space, cands)  # no spaces given: the same


def test_the_space_is_bound_at_the_rows_state(env_cfg):
    row = html_row(env_cfg)
    spaces = StateSpaces.of_config(env_cfg)
    space, cands = candidates_of(row, spaces)
    assert space.needs_state and cands == row["space"].candidate_actions(TEMPLATES)
    assert row["expert"] in cands and len(space.shown) == 1
    assert candidates_of(row, spaces)[0] is space  # bound once per state
    # a config other than the run's (mode all instead of mvp; another step limit) is refused by name
    for other in (StateSpaces(), StateSpaces(max_steps=5, options={"mode": "mvp", "sandbox": env_cfg["sandbox"]})):
        with pytest.raises(ValueError, match=r"not the row's.*env\.max_steps.*'mode'"):
            candidates_of(row, other)


def test_validity_allows_any_valid_action_at_an_html_state(env_cfg):
    row = html_row(env_cfg)
    spaces = StateSpaces.of_config(env_cfg)
    req = advice_request(row, None)

    def ok(action):
        return _valid(Advice(action, CLEAN, "x"), req, spaces)

    off_menu = run("print(len(make_soup().find_all('p')))")
    assert off_menu not in candidates_of(row, spaces)[1]
    assert ok(row["expert"]) and ok(off_menu)
    assert not ok(INVALID_ACTION) and not ok(TEMPLATES[0]) and not ok("print(1)")
    assert not _valid(Advice(None, "", "x", ok=False), req, spaces)
    # a finite family still needs one of the state's candidates
    babyai = advice_request({"env_id": "BabyAI-GoToLocal-v0", "seed": 0, "actions": [], "instruction": "go",
                             "observation": "o", "valid_actions": ["turn left", "drop"], "history": []}, None)  # fmt: skip
    assert _valid(Advice("drop", CLEAN, "x"), babyai, spaces)
    assert not _valid(Advice("go forward", CLEAN, "x"), babyai, spaces)


def test_contrast_and_p_teacher_go_by_effect(env_cfg):
    import json

    row = html_row(env_cfg, depth=0)
    space, cands = candidates_of(row, StateSpaces.of_config(env_cfg))
    teacher = row["expert"]  # the first reference program
    wrong = answer("not the answer")
    same_as_teacher = [run("x = 1\n" + json.loads(teacher)["code"])]  # another program, the same output
    assert same_as_teacher[0] != teacher and space.same(same_as_teacher[0], teacher)
    # the student's own valid action with another effect, even off the menu
    assert contrast_action(wrong, teacher, cands, [0.0], space, support=(wrong,)) == wrong
    # the student's action has the teacher's effect: its most sampled other key
    support = (same_as_teacher[0], wrong)
    lp = np.log([0.75, 0.25])
    assert contrast_action(same_as_teacher[0], teacher, cands, lp, space, support) == wrong
    # nothing else sampled (or unreadable): the first candidate of another effect
    first_other = next(a for a in cands if not space.same(a, teacher))
    assert contrast_action(INVALID_ACTION, teacher, cands, np.log([1.0]), space, (same_as_teacher[0],)) == first_other
    # p(teacher) is the share of its key, whichever action of that key was sampled
    assert action_prob(teacher, support, lp, space) == pytest.approx(0.75)
    assert action_prob(run("print(1)"), support, lp, space) == 0.0


def test_contrast_on_a_finite_family_is_unchanged():
    space = action_space("BabyAI-GoToLocal-v0")
    cands = ("turn left", "turn right", "drop")
    lp = np.log([0.2, 0.5, 0.3])
    assert contrast_action("turn left", "drop", cands, lp, space) == "turn left"
    assert contrast_action("drop", "drop", cands, lp, space) == "turn right"
    assert contrast_action(INVALID_ACTION, "turn right", cands, lp, space) == "drop"
    assert action_prob("drop", cands, lp, space) == float(np.exp(lp[2]))


def test_placebos_are_sized_by_the_bound_candidates(env_cfg):
    row = html_row(env_cfg, student_action=answer("not the answer"))
    spaces = StateSpaces.of_config(env_cfg)
    row["_logprobs"] = np.log([1.0])
    row["_support"] = (row["student_action"],)
    patches = condition_patches(row, Advice(row["expert"], CLEAN, "x"), spaces=spaces)
    assert patches["demo"] == f"The best action now is: {row['expert']}."
    assert row["student_action"] in patches["contrast"]
    cands = candidates_of(row, spaces)[1]
    mean_demo = np.mean([len(f"The best action now is: {a}.") for a in cands])
    assert len(patches["placebo_demo"]) == int(round(mean_demo))


def test_the_hint_audit_names_page_identifiers_at_the_rows_state(env_cfg):
    row = html_row(env_cfg)
    word = next(w for w in page_identifiers(row["space"].task.html) if w.isalpha() and len(w) > 3 and w not in CLEAN)
    rows = pd.DataFrame([{**row, "diagnosis": CLEAN, "snapshot_id": "clean"},
                         {**row, "diagnosis": f"Look inside the {word} part.", "snapshot_id": "leaky"}])  # fmt: skip
    found = naming_examples(rows, StateSpaces.of_config(env_cfg))
    assert [f["snapshot_id"] for f in found] == ["leaky"] and found[0]["phrase"] == word.casefold()


def test_an_api_teachers_rules_use_the_bound_candidates(env_cfg):
    row = html_row(env_cfg)
    space, cands = candidates_of(row, StateSpaces.of_config(env_cfg))
    check = lambda a, d=CLEAN: advice_problem(Advice(a, d, "x"), cands, space.mentions, space.allows)  # noqa: E731
    assert check(row["expert"]) is None
    assert check(run("print(len(make_soup().find_all('p')))")) is None  # valid, off the menu
    assert check(TEMPLATES[1])[0] == "invalid_action"  # a template is no action
    assert check(row["expert"], "Call make_soup() again.")[0] == "diagnosis_names_action"
    # without the bound space the concrete action is not among the request's templates
    assert advice_problem(Advice(row["expert"], CLEAN, "x"), row["valid_actions"], space.mentions)[0] == "invalid_action"


def test_the_bench_with_the_expert_reports_the_familys_values(tmp_path, env_cfg):
    from teachable.bench import play_bench, summarize_bench

    from teachable.config import read_config_files

    cfg = {**read_config_files(["config/config.yaml"]), "env": env_cfg,
           "bench": {"tasks": 6, "levels": ["HTMLExtract-Easy-v0", "HTMLExtract-Medium-v0"], "rollouts_per_task": 1}}  # fmt: skip
    eps, run_doc = play_bench(cfg, None, None, "expert", tmp_path, progress=False, expert=True)
    assert run_doc["usage"]["backend"] == "expert" and eps["success"].all() and len(eps) == 12
    res = summarize_bench(tmp_path / "bench_run.json", tmp_path / "bench_results.json", n_bootstrap=200)
    values = ("reward", "perfect", "tool_calls", "json_repairs", "sandbox_timeouts")
    for where in (res["metrics"], *res["by_level"].values(), *res["by_archetype"].values()):
        for name in ("success_rate", "mean_reward", *values):
            r = where[name]
            assert r["n"] >= 1, (name, r)
            if r["n_tasks"] < 2 and name != "success_rate":  # one task: no bootstrap interval, and the reason
                assert math.isnan(r["lo"]) and "cluster" in r["reason"], (name, r)
            else:
                assert r["lo"] <= r["value"] <= r["hi"], (name, r)
    assert res["metrics"]["tool_calls"]["value"] == pytest.approx(eps["tool_calls"].mean())
    with pytest.raises(ValueError, match="--expert.*--model"):
        play_bench(cfg, "some/model", None, "expert", tmp_path, progress=False, expert=True)


def test_a_free_form_students_distribution_is_scored_by_key(env_cfg):
    from teachable.labeling import score_rows, snapshot_parsers
    from teachable.policies.base import StateReader
    from teachable.policies.generated_u import from_keyed_samples

    row = html_row(env_cfg, depth=0, student_action=None)
    spaces = StateSpaces.of_config(env_cfg)
    babyai = {"env_id": "BabyAI-GoToLocal-v0", "seed": 0, "actions": []}
    reader, finite = snapshot_parsers([row, babyai], spaces)
    assert isinstance(reader, StateReader) and not isinstance(finite, StateReader) and finite("drop") == "drop"
    teacher = row["expert"]
    same = run("x = 1\n" + __import__("json").loads(teacher)["code"])
    texts = [teacher, same, "```python\n" + __import__("json").loads(teacher)["code"] + "\n```",
             answer("not the answer"), "no idea"]  # fmt: skip
    d = from_keyed_samples(texts, reader)
    assert len(d.actions) == 2 and d.n_invalid == 1  # three samples of the teacher's effect, one other
    snaps = pd.DataFrame([{k: v for k, v in row.items() if k not in ("expert", "space")}])
    out = score_rows(snaps, [None], [d.logprobs], [d.actions], spaces).iloc[0]
    assert out["student_action"] == teacher  # Experiment B: the most sampled key's action
    assert out["p_student_action"] == pytest.approx(0.75) and out["_support"] == d.actions
    assert out["U"] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    space, cands = candidates_of(out, spaces)
    assert action_prob(same, out["_support"], out["_logprobs"], space) == pytest.approx(0.75)
    assert contrast_action(teacher, teacher, cands, out["_logprobs"], space, out["_support"]) == answer("not the answer")


def test_one_b_aligns_a_free_form_drift_by_key():
    from teachable.microtrain import _drift_kl
    from teachable.policies.base import ActionDistribution

    def dist(shares, keys):
        return ActionDistribution(np.log(shares), "samples", 4, keys=keys, actions=keys)

    base = [dist([0.5, 0.5], ("a", "b")), dist([1.0], ("a",))]
    tuned = [dist([1.0], ("b",)), dist([0.25, 0.75], ("c", "a"))]
    assert _drift_kl(base, tuned, skip=0) == pytest.approx(np.log(1 / 0.75))
    assert _drift_kl(base, tuned, skip=1) == np.inf  # tuned never sampled key "a"


def test_a_free_form_target_is_a_supervision_example(env_cfg):
    from teachable.training import supervision_example

    row = {k: v for k, v in html_row(env_cfg).items() if k not in ("space",)}
    row.update(suggested_action=row["expert"], diagnosis=CLEAN, contrast_action=answer("x"), contrast_diagnosis=CLEAN)
    ctx, target = supervision_example(pd.Series(row), "contrast")
    assert target == row["expert"] and ctx.valid_actions == TEMPLATES and answer("x") in ctx.patch
    with pytest.raises(ValueError, match="not one of its valid actions"):
        supervision_example(pd.Series({**row, "suggested_action": TEMPLATES[0]}), "demo")
