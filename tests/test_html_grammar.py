"""The grammar G and its interpreter in process (``envs/html/grammar.py``): what is in G, the
canonical source, the menu, and byte identity with the sandbox on seeded pages, error cases
included. The identity tests run the real sandbox and are never skipped: without it they fail
naming what is missing (``make sandbox``)."""

from __future__ import annotations

import random
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from html_pages import JSON_LD, page, pairs, relayout

from teachable.envs.html import grammar as G
from teachable.envs.html.grammar import GExpr, canonical_code, menu_programs, parse_g, run_in_process
from teachable.envs.html.sandbox import SandboxConfig, run_sandboxed

PAGE = """<html><head><title>Shop</title>
<script type="application/ld+json">{"@type": "Product", "name": "Tea", "offers": {"price": "4.50"}, "tags": ["a", "b"]}</script>
</head><body><h1 id="t">Tea  shop</h1><ul id="items"><li class="item" data-sku="1">Tea</li>
<li class="item hot" data-sku="2">Café</li></ul><a href="/x" rel="nofollow noopener">X</a><p id="中文">字</p></body></html>"""


def sandboxed(code: str, html: str, config: SandboxConfig = SandboxConfig()) -> dict:
    result = run_sandboxed(code, html, config).as_dict()
    result["seconds"] = 0.0
    return result


# ----------------------------------------------------------------------------- what is in G
@pytest.mark.parametrize("code, expr", [
    ("print(make_soup().select_one('h1').get_text(strip=True))", GExpr("text", "h1")),
    ("print([x.get_text(strip=True) for x in make_soup().select('li')])", GExpr("texts", "li", var="x")),
    ("print(make_soup().select_one('a').get('href'))", GExpr("attr", "a", "href")),
    ("print([json.get('rel') for json in make_soup().select('a')])", GExpr("attrs", "a", "rel", var="json")),
    ("print(len(make_soup().select('.item')))", GExpr("count", ".item")),
    ("import json\nprint(json.loads(make_soup().select_one('script').string)['offers']['price'])",
     GExpr("json", "script", keys=("offers", "price"))),
    ("import json\nprint(json.loads(make_soup().select_one('script').string)['tags'][0])",
     GExpr("json", "script", keys=("tags", 0))),
    ('print( make_soup( ).select_one( "h1" ).get_text( strip = True ) )\n\n', GExpr("text", "h1")),
])  # fmt: skip
def test_each_form_of_g_parses_to_its_fields(code, expr):
    program = parse_g(code)
    assert program is not None and program.exprs == (expr,)
    assert program.source() == canonical_code(code)  # the canonical source round trips
    assert parse_g(program.source()) == program


@pytest.mark.parametrize("code", [
    "print(json.loads(make_soup().select_one('script').string)['a'])",  # json without the import
    "import json as j\nprint(len(make_soup().select('a')))",
    "print(len(make_soup().select('a')))\nimport json",  # the import comes first
    "print(make_soup().select_one('h1').get_text())",  # strip=True is part of the form
    "print(make_soup().select_one('h1').get_text(strip=False))",
    "print(make_soup().select_one('h1').get_text(strip=1))",
    "print(make_soup().select('h1').get_text(strip=True))",  # select vs select_one
    "print(len(make_soup().select_one('a')))",
    "print([e.get_text(strip=True) for e in make_soup().select('li') if e])",
    "print([f.get_text(strip=True) for e in make_soup().select('li')])",  # another variable
    "print(make_soup().select_one(css).get_text(strip=True))",  # not a literal
    "print(make_soup().select_one(f'#{1}').get_text(strip=True))",
    "print(make_soup().select_one('a').get('href', 'x'))",
    "import json\nprint(json.loads(make_soup().select_one('s').string)[True])",
    "import json\nprint(json.loads(make_soup().select_one('s').string))",  # no subscript
    "print(len(make_soup().select('a'))); print(len(make_soup().select('b')))",  # one line, two statements
    "print(len(make_soup().select('a')))  # a comment",
    "print(len(make_soup().select('a')))\r\n",
    "print(len(make_soup(\n).select('a')))",  # a statement over two lines
    "print(len(make_soup().select('a')), 1)",
    "x = 1\nprint(len(make_soup().select('a')))",
    "import json",
    "",
    "print(len(make_soup().select('a'))",  # does not parse
])  # fmt: skip
def test_code_outside_g_is_none(code):
    assert parse_g(code) is None
    assert run_in_process(code, PAGE) is None


def test_canonical_code_is_the_ast_round_trip_and_names_a_syntax_error():
    assert canonical_code('print( "a" )  # hi\n\n') == "print('a')"
    with pytest.raises(ValueError, match=r"does not parse: .* \(line 2\)"):
        canonical_code("print(1)\nprint(")


# ----------------------------------------------------------------------------- the menu
def test_the_menu_is_deterministic_canonical_in_g_and_runs_without_error():
    menu = menu_programs(PAGE)
    assert menu == menu_programs(PAGE) and len(set(menu)) == len(menu)
    assert menu[:2] == ("print(make_soup().select_one('title').get_text(strip=True))",
                        "print(make_soup().select_one('h1').get_text(strip=True))")  # fmt: skip
    for expected in ("print(len(make_soup().select('.item')))",
                     "print([e.get('data-sku') for e in make_soup().select('[data-sku]')])",
                     "print([e.get('href') for e in make_soup().select('a[href]')])",
                     f"import json\nprint(json.loads(make_soup().select_one({JSON_LD!r}).string)['offers']['price'])"):  # fmt: skip
        assert expected in menu
    assert not any("中文" in p for p in menu)  # an id CSS would have to escape is left out
    for program in menu:
        assert canonical_code(program) == program and parse_g(program) is not None
        result = run_in_process(program, PAGE)
        assert result is not None and result["exit_code"] == 0, (program, result)
    assert menu_programs(PAGE, limit=3) == menu[:3]


def test_a_page_is_parsed_once_for_many_programs():
    html = page(424242)
    menu = menu_programs(html)
    before = G._page.cache_info()
    for program in menu:
        run_in_process(program, html)
    after = G._page.cache_info()
    assert after.misses == before.misses and after.hits - before.hits == len(menu)


# ----------------------------------------------------------------------------- identity with the sandbox
def test_in_process_results_equal_the_sandboxes_byte_for_byte_on_seeded_pages():
    """64 (page, program) pairs over 8 generated pages, half failing: every result equal to the
    sandbox's (but seconds), none left to the sandbox."""
    cases = pairs(8, 8, seed=1)
    with ThreadPoolExecutor(2) as pool:
        expected = list(pool.map(lambda case: sandboxed(case[1], case[0]), cases))
    errors = set()
    for (html, code), want in zip(cases, expected):
        got = run_in_process(code, html)
        assert got == want, (code, html)
        if want["error"]:
            errors.add(re.findall(r"^([A-Za-z_][\w.]*): ", want["stderr"], re.M)[-1])
    assert len(cases) >= 60 and sum(w["exit_code"] != 0 for w in expected) >= 20
    assert {"AttributeError", "TypeError", "KeyError", "json.decoder.JSONDecodeError",
            "soupsieve.util.SelectorSyntaxError"} <= errors  # fmt: skip


def test_the_traceback_marks_the_failing_node_with_wide_characters_and_partial_output():
    """A subscript chain, a CJK selector (display width), a relaid-out line and stdout before
    the error: each as the sandbox's own Python 3.11 prints it."""
    for code in ("import json\nprint(json.loads(make_soup().select_one('script').string)['tags'][0]['x'])",
                 "print(make_soup().select_one('h1').get_text(strip=True))\nprint(make_soup().select_one('#中文缺').get('x'))",
                 "print( [élément.get( 'x' ) for élément in make_soup( ).select( 'p:nth-child(' )] )"):  # fmt: skip
        want = sandboxed(code, PAGE)
        assert want["exit_code"] == 1 and run_in_process(code, PAGE) == want


def test_what_it_cannot_vouch_for_is_left_to_the_sandbox():
    """A selector that warns (the sandbox prints the warning), output over the cap, an
    interpreter that is not there: None, never a guess."""
    code = "print(make_soup().select_one('li:contains(\"Tea\")').get_text(strip=True))"
    assert "FutureWarning" in sandboxed(code, PAGE)["stderr"] and run_in_process(code, PAGE) is None
    code = "print([e.get_text(strip=True) for e in make_soup().select('li')])"
    assert run_in_process(code, PAGE, SandboxConfig(output_bytes=8)) is None
    assert run_in_process(code, PAGE, SandboxConfig(output_bytes=64)) is not None
    assert run_in_process(code, PAGE, SandboxConfig(python="/nonexistent/python3")) is None


def test_a_carriage_return_in_the_page_reads_as_the_sandbox_reads_it():
    html = PAGE.replace("\n", "\r\n").replace("Tea  shop", "Tea\rshop")
    code = "print([e.get_text() for e in make_soup().select('h1')])"  # not in G: get_text without strip
    assert run_in_process(code, html) is None
    code = "print(len(make_soup().select('li')))\nprint(make_soup().select_one('#t').get_text(strip=True))"
    assert run_in_process(code, html) == sandboxed(code, html)


def test_relaid_out_programs_are_in_g():
    rng = random.Random(3)
    for program in menu_programs(PAGE):
        fields = [[(e.form, e.css, e.attr, e.keys) for e in parse_g(p).exprs] for p in (program, relayout(rng, program))]
        assert fields[0] == fields[1]
