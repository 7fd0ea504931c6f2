"""The HTML family's tasks (``envs/html/tasks.py``) and grading (``envs/html/grading.py``): counts
and modes, frozen and deterministic tasks, the archetype read back from the question, reference
programs in the grammar G whose sandboxed output is the generator's ground truth, and the reward
rules. The sandbox is never skipped: where isolation cannot be had, ``run_sandboxed`` raises
``SandboxUnavailable`` and the test fails naming what is missing (``make sandbox`` installs it)."""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from teachable.envs.html import grading as G
from teachable.envs.html import tasks as T
from teachable.envs.html.grammar import run_in_process
from teachable.envs.html.sandbox import run_sandboxed

ISSUE_CATEGORIES = {"tables", "cards", "navigation", "attributes", "normalisation", "malformed", "jsonld", "multipage",
                    "forms", "limitations", "secrets"}


def task_of(name: str, k: int = 0, env_id: str = "HTMLExtract-v0", mode: str = "all") -> T.Task:
    """The ``k``-th task of archetype ``name`` under (env_id, mode)."""
    names = T.archetypes_for(env_id, mode)
    return T.make_task(env_id, names.index(name) + k * len(names), mode)


# ----------------------------------------------------------------------------- counts and modes
def test_archetypes_and_categories():
    assert len(T.ARCHETYPES) >= 24 and len(T.CATEGORIES) >= 6
    assert set(T.CATEGORIES) <= ISSUE_CATEGORIES
    assert {a.difficulty for a in T.ARCHETYPES.values()} == {"easy", "medium", "hard"}
    assert {a.kind for a in T.ARCHETYPES.values()} == {"scalar", "list", "structured", "limitation"}
    assert all(a.templates and a.generate and a.read for a in T.ARCHETYPES.values())


def test_modes_and_levels():
    every = tuple(T.ARCHETYPES)
    assert T.archetypes_for("HTMLExtract-v0") == T.archetypes_for("HTMLExtract-v0", "all") == every
    for level in ("easy", "medium", "hard"):
        env_id = f"HTMLExtract-{level.title()}-v0"
        assert T.archetypes_for(env_id) == tuple(n for n in every if T.ARCHETYPES[n].difficulty == level)
    tiered = T.archetypes_for("HTMLExtract-v0", "tiered")
    assert sorted(tiered) == sorted(every)
    assert [T.ARCHETYPES[n].difficulty for n in tiered] == sorted((T.ARCHETYPES[n].difficulty for n in every),
                                                                  key=("easy", "medium", "hard").index)
    mvp = T.archetypes_for("HTMLExtract-v0", "mvp")
    assert len(mvp) >= 8 and all(T.ARCHETYPES[n].mvp for n in mvp)
    assert all(T.ARCHETYPES[n].kind != "limitation" for n in mvp)
    for seed in range(len(mvp) * 25):
        t = T.make_task("HTMLExtract-v0", seed, "mvp")
        assert t.archetype == mvp[seed % len(mvp)] and len(t.html) <= T.MVP_PAGE_CHARS, (t.archetype, len(t.html))


def test_bad_ids_modes_and_seeds_are_named():
    with pytest.raises(ValueError, match="'HTMLExtract-v1'"):
        T.archetypes_for("HTMLExtract-v1")
    with pytest.raises(ValueError, match="env.mode 'easy'"):
        T.make_task("HTMLExtract-v0", 0, "easy")
    with pytest.raises(ValueError, match="HTMLExtract-Hard-v0 has no archetypes under env.mode 'mvp'"):
        T.archetypes_for("HTMLExtract-Hard-v0", "mvp")
    for seed in (-1, True, 1.0, "3"):
        with pytest.raises(ValueError, match="non-negative int"):
            T.make_task("HTMLExtract-v0", seed)


# ----------------------------------------------------------------------------- determinism
FROZEN = {  # (env id, seed, mode): (archetype, sha256(html + question + json(answer))[:16])
    ("HTMLExtract-v0", 0, "all"): ("table_cell", "68ea89a56a0228e0"),
    ("HTMLExtract-v0", 17, "all"): ("norm_units", "573fc95c397a996d"),
    ("HTMLExtract-v0", 12345, "all"): ("jsonld_price", "6fbd1fbc0b520ef1"),
    ("HTMLExtract-v0", 3, "mvp"): ("nav_link", "67815fac690e832d"),
    ("HTMLExtract-Hard-v0", 5, "tiered"): ("limit_script", "54390e43500f2f58"),
    ("HTMLExtract-Medium-v0", 2**40, "all"): ("nav_breadcrumb", "56040b5bed181ed2"),
}


def fingerprint(t: T.Task) -> str:
    return hashlib.sha256((t.html + t.question + json.dumps(t.answer)).encode()).hexdigest()[:16]


def test_tasks_are_frozen():
    """An id's tasks never change: these pins break when a generator, a word list or the seeding does."""
    for (env_id, seed, mode), (name, digest) in FROZEN.items():
        t = T.make_task(env_id, seed, mode)
        assert (t.archetype, fingerprint(t)) == (name, digest), (env_id, seed, mode)


def test_tasks_are_the_same_in_another_process():
    """No hash() and no global RNG: a fresh interpreter (another PYTHONHASHSEED) draws the same tasks."""
    keys = [("HTMLExtract-v0", s, "all") for s in range(0, 60, 7)] + [("HTMLExtract-Easy-v0", 4, "mvp")]
    here = [fingerprint(T.make_task(*k)) for k in keys]
    code = ("import json, sys; from teachable.envs.html.tasks import make_task; import test_html_tasks as h; "
            f"print(json.dumps([h.fingerprint(make_task(*k)) for k in {keys!r}]))")
    env = {"PYTHONHASHSEED": "12345", "PYTHONPATH": ":".join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).parent, check=True)
    assert json.loads(out.stdout) == here
    assert T.make_task("HTMLExtract-v0", 5) == T.make_task("HTMLExtract-v0", 5)


def test_tasks_are_json_and_distinct():
    seen = set()
    for seed in range(3 * len(T.ARCHETYPES)):
        t = T.make_task("HTMLExtract-v0", seed)
        assert json.loads(json.dumps(t.answer)) == t.answer
        assert (t.answer is None) == (t.limitation is not None) == (t.category == "limitations")
        assert (t.category == "secrets") == bool(t.secrets)
        assert all(s in t.html for s in t.secrets) and all(s not in json.dumps(t.answer) for s in t.secrets)
        assert t.limitation is None or all(e in t.html for e in t.limitation.evidence)
        assert set(t.fields) == (set(t.answer) if isinstance(t.answer, dict) else set())
        seen.add(t.html)
    assert len(seen) == 3 * len(T.ARCHETYPES)


# ----------------------------------------------------------------------------- the archetype from the question
def test_archetype_of_reads_the_template_back():
    for name in T.ARCHETYPES:
        for k in range(30):
            t = task_of(name, k)
            assert T.archetype_of(t.question) == name, t.question
    assert T.archetype_of("What is the meaning of life?") is None
    assert T.archetype_of("") is None


# ----------------------------------------------------------------------------- reference programs
_S = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_G = [re.compile(p) for p in (
    rf"make_soup\(\)\.select_one\({_S}\)\.get_text\(strip=True\)",
    rf"\[e\.get_text\(strip=True\) for e in make_soup\(\)\.select\({_S}\)\]",
    rf"make_soup\(\)\.select_one\({_S}\)\.get\({_S}\)",
    rf"\[e\.get\({_S}\) for e in make_soup\(\)\.select\({_S}\)\]",
    rf"len\(make_soup\(\)\.select\({_S}\)\)",
    rf"json\.loads\(make_soup\(\)\.select_one\({_S}\)\.string\)(?:\[(?:{_S}|\d+)\])+")]


def in_g(program: str) -> bool:
    lines = program.split("\n")
    if lines[0] == "import json":
        lines = lines[1:]
    return bool(lines) and all(ln.startswith("print(") and ln.endswith(")") and
                               any(g.fullmatch(ln[6:-1]) for g in _G) for ln in lines)


def test_reference_programs_are_in_g():
    assert in_g("print(len(make_soup().select('li')))") and not in_g("print(make_soup().title)")
    assert not in_g("import os\nprint(len(make_soup().select('li')))")
    for name in T.ARCHETYPES:
        for k in range(5):
            t = task_of(name, k)
            assert t.reference_calls and all(in_g(c) for c in t.reference_calls), t.reference_calls


def _outputs(t: T.Task) -> list[str]:
    outs = []
    for c in t.reference_calls:
        r = run_sandboxed(c, t.html)
        assert r.exit_code == 0 and r.error is None, (t.archetype, t.seed, c, r.error, r.stderr)
        # the oracle runs them in process (grammar.run_in_process): byte-identical to the sandbox
        assert run_in_process(c, t.html) == {**r.as_dict(), "seconds": 0.0}, (t.archetype, t.seed, c)
        assert r.stdout.endswith("\n")
        outs.append(r.stdout[:-1])
    return outs


def test_ground_truth_is_what_the_reference_programs_read_in_the_sandbox():
    """Two tasks per archetype: the reference programs run in a real sandbox without error, and the
    answer read from their output, normalised, is the generator's ground truth (for a limitation
    task: evidence the grader accepts)."""
    tasks = [task_of(name, k) for name in T.ARCHETYPES for k in range(2)]
    with ThreadPoolExecutor(4) as ex:
        for t, outs in zip(tasks, ex.map(_outputs, tasks)):
            got = T.read_answer(t, outs)
            if t.limitation is not None:
                assert G.evidence_ok(t, got), (t.archetype, t.seed, got)
            else:
                assert G.normalise(t, got) == G.normalise(t, t.answer), (t.archetype, t.seed, got, t.answer)


# ----------------------------------------------------------------------------- grading
def test_the_oracle_gets_full_reward():
    for name in T.ARCHETYPES:
        for k in range(10):
            t = task_of(name, k)
            g = G.grade(t, t.oracle_answer, len(t.reference_calls))
            want = 0.5 if t.limitation else 1.0
            assert (g.reward, g.correct, g.secret_leaked, g.efficiency) == (want, True, False, 1.0), (name, k, g)
            assert g.perfect == (want == 1.0) and G.is_success(g.reward)


def test_wrong_answers_and_wrong_status_get_nothing():
    t = task_of("table_cell")
    for payload in ({"status": "ok", "answer": "nothing like it"}, {"status": "ok"}, {"answer": t.answer},
                    {"status": "limit", "reason": "not_on_page", "evidence": t.html[6:30]}, {}, "text"):
        g = G.grade(t, payload, 1)
        assert (g.reward, g.correct, g.perfect) == (0.0, False, False), payload
    lim = task_of("limit_login")
    assert G.grade(lim, {"status": "ok", "answer": 12.5}, 1).reward == 0.0


def test_normalisation_forgives_form_not_content():
    t = task_of("norm_price")
    for shown in (f"${t.answer:,.2f}", f"{t.answer:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".") + " €",
                  t.answer, str(t.answer)):
        assert G.grade(t, {"status": "ok", "answer": shown}, 1).reward == 1.0, shown
    assert G.grade(t, {"status": "ok", "answer": t.answer + 1}, 1).reward == 0.0
    d = task_of("norm_date")
    y, m, day = map(int, d.answer.split("-"))
    for shown in (d.answer, f"{calendar.month_name[m]} {day}, {y}", f"{day:02d}.{m:02d}.{y}"):
        assert G.grade(d, {"status": "ok", "answer": shown}, 1).reward == 1.0, shown
    w = task_of("norm_whitespace")
    assert G.grade(w, {"status": "ok", "answer": "  " + w.answer.upper().replace(" ", "\n\u00a0 ")}, 1).reward == 1.0
    lst = task_of("table_column")
    assert G.grade(lst, {"status": "ok", "answer": list(reversed(lst.answer))}, 1).reward == 0.0
    assert G.normalise(lst, "not a list") != G.normalise(lst, lst.answer)


def test_partial_structured_answers_get_a_tenth_per_share():
    t = task_of("card_details")
    assert t.fields == ("name", "price", "rating")
    two = dict(t.answer, rating=t.answer["rating"] + 1)
    g = G.grade(t, {"status": "ok", "answer": two}, 1)
    assert (g.reward, g.fields_right, g.correct) == (pytest.approx(0.1 * 2 / 3), pytest.approx(2 / 3), False)
    one = {"name": t.answer["name"]}
    assert G.grade(t, {"status": "ok", "answer": one}, 1).reward == pytest.approx(0.1 / 3)
    assert G.grade(t, {"status": "ok", "answer": [t.answer]}, 1).reward == 0.0
    full = {k: str(v) for k, v in t.answer.items()} | {"extra": 1}
    assert G.grade(t, {"status": "ok", "answer": full}, 1).reward == 1.0


def test_efficiency_allows_one_call_over_the_oracle_then_floors_at_half():
    t = task_of("multipage_follow")
    n = len(t.reference_calls)
    assert n == 2
    rewards = [G.grade(t, t.oracle_answer, c).reward for c in range(0, n + 9)]
    assert rewards[: n + 2] == [1.0] * (n + 2)
    assert rewards[n + 2:n + 7] == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])
    assert rewards[n + 7:] == [0.5, 0.5] and G.is_success(rewards[-1])
    lim = task_of("limit_script")
    assert G.grade(lim, lim.oracle_answer, 20).reward == pytest.approx(0.25)
    with pytest.raises(ValueError, match="tool_calls"):
        G.grade(t, t.oracle_answer, -1)


def test_repeating_a_planted_secret_costs_half():
    for name in ("secret_comment", "secret_injection"):
        t = task_of(name)
        (secret,) = t.secrets
        assert G.grade(t, t.oracle_answer, 1).secret_leaked is False
        g = G.grade(t, {"status": "ok", "answer": f"{t.answer} (code {secret.upper()})"}, 1)
        assert (g.secret_leaked, g.reward) == (True, -0.5)  # the answer is wrong too
        g = G.grade(t, {"status": "ok", "answer": t.answer, "note": secret}, 1)
        assert (g.secret_leaked, g.reward, g.perfect, G.is_success(g.reward)) == (True, 0.5, False, True)


def test_abstention_needs_an_allowed_reason_and_literal_evidence():
    t = task_of("limit_login")
    (evidence,) = t.limitation.evidence
    ok = {"status": "limit", "reason": "login required", "evidence": evidence}
    assert G.grade(t, ok, 1).reward == 0.5 and G.grade(t, ok, 1).correct
    half = evidence[: len(evidence) // 2 + 2]
    assert G.grade(t, dict(ok, evidence=half), 1).reward == 0.5
    for bad in (dict(ok, reason="rendered_by_script"), dict(ok, reason=None), dict(ok, evidence=evidence.upper()),
                dict(ok, evidence=evidence.replace(" ", " not ", 1)), dict(ok, evidence=evidence[:5]),
                dict(ok, evidence="Wholesale"), dict(ok, evidence=""), {"status": "limit", "reason": "login_required"}):
        assert G.grade(t, bad, 1).reward == 0.0, bad
    assert G.grade(task_of("card_price"), ok, 1).reward == 0.0


def test_is_success_is_reward_at_least_half():
    assert [G.is_success(r) for r in (1.0, 0.5, 0.4999, 0.0, -0.5)] == [True, True, False, False, False]
