"""The HTML family's action format and parser (``envs/html/actions.py``): the canonical line,
strict and lenient reading, truncation repair, and text that must not read as an action."""

from __future__ import annotations

import json

import pytest

from teachable.envs.html.actions import ParseResult, canonical_action, decode_action, is_valid, parse_action

RUN = '{"tool": "run_python", "code": "print(len(make_soup().select(\'li\')))"}'
OK = '{"tool": "answer", "status": "ok", "answer": "€4.50"}'
LIMIT = '{"tool": "answer", "status": "limit", "reason": "login required", "evidence": "Sign in to see prices"}'


# ----------------------------------------------------------------------------- the format
def test_canonical_lines_have_fixed_keys_separators_and_keep_unicode():
    assert canonical_action({"code": "print( len(make_soup().select('li')) )  # n", "tool": "run_python"}) == RUN
    assert canonical_action({"answer": "€4.50", "status": "ok", "tool": "answer"}) == OK
    assert canonical_action(json.loads(LIMIT)) == LIMIT
    nested = {"tool": "answer", "status": "ok", "answer": {"b": [{"z": 1, "y": 2}], "a": "中文"}}
    assert canonical_action(nested) == '{"tool": "answer", "status": "ok", "answer": {"a": "中文", "b": [{"y": 2, "z": 1}]}}'
    for line in (RUN, OK, LIMIT):
        assert is_valid(line) and decode_action(line) == json.loads(line) and canonical_action(decode_action(line)) == line


def test_code_that_does_not_parse_is_kept_as_written():
    line = canonical_action({"tool": "run_python", "code": "print(make_soup(  "})
    assert json.loads(line)["code"] == "print(make_soup(  " and is_valid(line)


@pytest.mark.parametrize("obj, message", [
    ({"tool": "search", "query": "x"}, "unknown tool 'search'"),
    ({"tool": "run_python"}, "lacks 'code'"),
    ({"tool": "run_python", "code": "  \n"}, "non-blank string"),
    ({"tool": "run_python", "code": 3}, "non-blank string"),
    ({"tool": "run_python", "code": "print(1)", "why": "x"}, "unknown key 'why'"),
    ({"tool": "answer", "status": "maybe", "answer": "x"}, "unknown answer status 'maybe'"),
    ({"tool": "answer", "status": "ok"}, "lacks 'answer'"),
    ({"tool": "answer", "status": "ok", "answer": None}, "null or blank"),
    ({"tool": "answer", "status": "ok", "answer": " "}, "null or blank"),
    ({"tool": "answer", "status": "ok", "answer": float("nan")}, "not JSON compliant"),
    ({"tool": "answer", "status": "limit", "reason": "x"}, "lacks 'evidence'"),
    ({"tool": "answer", "status": "limit", "reason": "", "evidence": "e"}, "'reason' must be a non-blank"),
    ({"tool": "answer", "status": "ok", "answer": "\ud800"}, "lone surrogate"),
    (["tool", "answer"], "JSON object"),
])  # fmt: skip
def test_invalid_actions_are_refused_naming_the_key(obj, message):
    with pytest.raises(ValueError, match=message):
        canonical_action(obj)


@pytest.mark.parametrize("line", [
    '{"code": "print(1)", "tool": "run_python"}',  # key order
    '{"tool":"run_python","code":"print(1)"}',  # separators
    '{"tool": "run_python", "code": "print( 1 )"}',  # code not canonical
    '{"tool": "answer", "status": "ok", "answer": "\\u20ac"}',  # ASCII-escaped
    '{"tool": "answer", "status": "ok", "answer": "a"} ',
    'not json', "", '{"tool": "answer", "tool": "answer", "status": "ok", "answer": "a"}',
])  # fmt: skip
def test_only_canonical_lines_are_valid(line):
    assert not is_valid(line)
    with pytest.raises(ValueError):
        decode_action(line)


# ----------------------------------------------------------------------------- strict
def test_strict_reads_one_equivalent_object_only():
    assert parse_action('  {"code": "print( 1 )", "tool": "run_python"}\n') == ParseResult('{"tool": "run_python", "code": "print(1)"}')
    for text in (f"Here: {OK}", f"```json\n{OK}\n```", OK + OK, '{"status": "ok", "answer": "a"}', OK[:-1],
                 '{"tool": "answer", "status": "ok", "answer": "a", "confidence": 0.9}'):  # fmt: skip
        assert parse_action(text, "strict") == ParseResult(None), text
    with pytest.raises(ValueError, match="mode"):
        parse_action(OK, "loose")


# ----------------------------------------------------------------------------- lenient
@pytest.mark.parametrize("text, action", [
    (f"I will count the items.\n{RUN}\nThen answer.", RUN),
    (f"```json\n{OK}\n```", OK),
    ("```python\nprint( len(make_soup().select('li')) )\n```", RUN),
    ("Let me look:\n```py\n    print(len(make_soup().select('li')))\n```\n", RUN),  # indented block
    ('{"status": "limit", "reason": "login required", "evidence": "Sign in to see prices"}', LIMIT),
    ('{"status": "ok", "answer": "€4.50", "confidence": "high"}', OK),  # unknown key dropped
    (f"{OK}\nSo the answer is {OK}", OK),  # the same action twice
    ('{"tool": "run_python", "code": "d = {\\"a\\": {\\"b\\": 1}}\\nprint(d[\\"a\\"])"}',
     '{"tool": "run_python", "code": "d = {\'a\': {\'b\': 1}}\\nprint(d[\'a\'])"}'),  # braces inside the code
    ('```python\nx = {"status": "ok", "answer": "no"}\nprint(x)\n```',
     '{"tool": "run_python", "code": "x = {\'status\': \'ok\', \'answer\': \'no\'}\\nprint(x)"}'),  # a dict in code is code
    ('{"tool": "answer", "status": "ok", "answer": "中文 👍"}', '{"tool": "answer", "status": "ok", "answer": "中文 👍"}'),
    ('{"tool": "browse", "url": "x"} then ' + OK, OK),  # the one valid action
])  # fmt: skip
def test_lenient_reads_actions_in_prose_fences_and_bare_status(text, action):
    assert parse_action(text, "lenient") == ParseResult(action, False)


@pytest.mark.parametrize("text, action", [
    ('{"tool": "run_python", "code": "print(len(make_soup().select(\'li\')))', RUN),  # missing "}
    ('{"tool": "answer", "status": "ok", "answer": "€4.50', OK),
    ('```json\n{"tool": "answer", "status": "ok", "answer": ["a", {"b": "c', '{"tool": "answer", "status": "ok", "answer": ["a", {"b": "c"}]}'),
    ('{"tool": "answer", "status": "ok", "answer": "€4.50",', OK),  # trailing comma
    ('{"tool": "answer", "status": "ok", "answer": "a\\u20', '{"tool": "answer", "status": "ok", "answer": "a"}'),  # cut escape
    ('{"status": "limit", "reason": "login required", "evidence": "Sign in to see prices', LIMIT),
])  # fmt: skip
def test_lenient_repairs_truncated_json_and_says_so(text, action):
    assert parse_action(text, "lenient") == ParseResult(action, True)


@pytest.mark.parametrize("text", [
    "I don't know.",
    f"{OK} or maybe {OK.replace('€4.50', '€3.20')}",  # two different actions
    "```python\nprint(1)\n```\n```python\nprint(2)\n```",
    '{"tool": "search", "query": "tea"}',  # a tool that does not exist
    '{"tool": "run_python", "code": ""}',  # never empty arguments
    '{"tool": "run_python", "code": "',
    '{"tool": "answer", "status": "ok", "answer":',  # cut after the colon: no value to close
    '{"tool": "answer", "status": "ok", "answer": tru',
    '{"tool": "answer", "status": "ok"}',
    '{"tool": "answer", "status": "ok", "answer": null}',
    '{"tool": "answer", "tool": "run_python", "status": "ok", "answer": "a"}',  # duplicate key
    "```python\n\n```",
    '{"answer": "4.50"}',
])  # fmt: skip
def test_lenient_leaves_unreadable_text_unread(text):
    assert parse_action(text, "lenient") == ParseResult(None, False)


def test_every_parsed_action_is_valid():
    texts = ['{"status": "ok", "answer": {"b": 1, "a": 2}}', "```python\nimport json\nprint( 1 )\n```",
             '{"tool": "run_python", "code": "for x in [1,2]: print(x)', OK, RUN, LIMIT]  # fmt: skip
    for text in texts:
        action = parse_action(text, "lenient").action
        assert action is not None and is_valid(action), text
