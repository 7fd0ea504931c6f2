"""Sandbox results by content (``envs/html/cache.py``): the key, exact replay (a timeout too),
one write per key under concurrent writers, corrupt entries named, no unisolated fallback, and
G programs in process. Runs the real sandbox; never skipped."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from teachable.envs.html import cache as C
from teachable.envs.html.cache import CorruptEntry, ResultCache, result_key
from teachable.envs.html.sandbox import SandboxConfig, SandboxUnavailable

PAGE = '<html><body><h1 id="t">Tea</h1><p class="price">€4.50</p></body></html>'
CODE = "print(make_soup().select_one('.price').get_text(strip=True))"
FAST = SandboxConfig(timeout_s=1.0)


def test_the_key_covers_version_interpreter_limits_page_and_code(monkeypatch):
    key = result_key(CODE, PAGE, SandboxConfig())
    assert len(key) == 64 and key == result_key(CODE, PAGE, SandboxConfig())
    others = {result_key(CODE + " ", PAGE, SandboxConfig()), result_key(CODE, PAGE + " ", SandboxConfig()),
              result_key(CODE, PAGE, SandboxConfig(python="/usr/local/bin/python3"))}  # fmt: skip
    for limit in C.LIMITS:
        value = getattr(SandboxConfig(), limit)
        others.add(result_key(CODE, PAGE, dataclasses.replace(SandboxConfig(), **{limit: value * 2})))
    monkeypatch.setattr(C, "VERSION", C.VERSION + 1)
    others.add(result_key(CODE, PAGE, SandboxConfig()))
    assert key not in others and len(others) == 4 + len(C.LIMITS)


def test_a_hit_replays_the_stored_result_without_a_sandbox(tmp_path, monkeypatch):
    cache = ResultCache(tmp_path)
    first = cache.run(CODE, PAGE, FAST)
    assert first["stdout"] == "€4.50\n" and first["seconds"] > 0
    path = cache.path(result_key(CODE, PAGE, FAST))
    assert json.loads(path.read_text(encoding="utf-8")) == {"key": path.stem, "result": first}

    def no_sandbox(*args):
        raise AssertionError("a cache hit ran the sandbox")

    monkeypatch.setattr(C, "run_sandboxed", no_sandbox)
    assert cache.run(CODE, PAGE, FAST) == first  # seconds included: the stored result, not a rerun


def test_a_timed_out_program_replays_exactly(tmp_path):
    cache, config = ResultCache(tmp_path), SandboxConfig(timeout_s=0.5)
    first = cache.run("print('start', flush=True)\nwhile True: pass", PAGE, config)
    assert first["timed_out"] and first["error"] == "timed out after 0.5 s" and first["stdout"] == "start\n"
    assert cache.run("print('start', flush=True)\nwhile True: pass", PAGE, config) == first


def test_concurrent_writers_of_a_key_leave_one_entry_and_agree(tmp_path):
    """Four jobs miss the same key at once: each runs a sandbox, one entry is kept and every
    caller returns it."""
    code = "import time\nprint(time.time())"  # a different stdout each run
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ResultCache(tmp_path).run(code, PAGE, FAST), range(4)))
    assert all(r == results[0] for r in results)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{result_key(code, PAGE, FAST)}.json"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "is unreadable"),
    ('{"key": "other", "result": {}}', "does not hold a result for key"),
    ('{"key": "KEY", "result": {"stdout": ""}}', "has fields"),
    ('{"key": "KEY", "result": {"stdout": "", "stderr": "", "error": null, "exit_code": true, "timed_out": false, '
     '"output_truncated": false, "seconds": 0.1}}', "exit_code is True"),
])  # fmt: skip
def test_a_corrupt_entry_names_its_file(tmp_path, content, message):
    cache = ResultCache(tmp_path)
    key = result_key(CODE, PAGE, FAST)
    path = cache.path(key)
    path.parent.mkdir(parents=True)
    path.write_text(content.replace("KEY", key), encoding="utf-8")
    with pytest.raises(CorruptEntry, match=message) as e:
        cache.run(CODE, PAGE, FAST)
    assert str(path) in str(e.value)


def test_no_sandbox_means_an_error_not_an_unisolated_run(tmp_path):
    config = SandboxConfig(python="/nonexistent/python3")
    with pytest.raises(SandboxUnavailable, match="/nonexistent/python3"):
        ResultCache(tmp_path).run(CODE, PAGE, config)
    with pytest.raises(SandboxUnavailable):  # in process cannot vouch without the interpreter either
        ResultCache(tmp_path).run(CODE, PAGE, config, in_process_first=True)
    assert not any(tmp_path.rglob("*.json"))


def test_in_process_first_runs_g_programs_here_and_the_rest_in_the_sandbox(tmp_path):
    cache = ResultCache(tmp_path)
    here = cache.run(CODE, PAGE, FAST, in_process_first=True)
    assert here["seconds"] == 0.0 and {**cache.run(CODE, PAGE, FAST), "seconds": 0.0} == here
    code = "print(open('/page.html').read()[:6])"  # not in G
    there = cache.run(code, PAGE, FAST, in_process_first=True)
    assert there["stdout"] == "<html>\n" and cache.path(result_key(code, PAGE, FAST)).exists()
