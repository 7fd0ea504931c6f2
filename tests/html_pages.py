"""Seeded pages and G programs on them for the in-process interpreter's identity checks
(tests/test_html_grammar.py, benchmarks/bench_html_grammar.py): tables, lists, cards, forms,
attributes, JSON-LD (valid, nested, invalid), malformed markup, entities, unicode (wide and
right-to-left), odd whitespace and CRLF line ends; programs from the page's menu, rewritten in
other layouts, and ones that fail (a missing element, a bad selector, a missing JSON key, JSON
that is not, a subscript of the wrong type), some after a line that printed."""

from __future__ import annotations

import json
import random

from teachable.envs.html.grammar import JSON_LD, menu_programs

WORDS = ["Tea", "Coffee", "Café crème", "Grüner Tee", "中文标题", "日本茶", "שלום", "naïve  text", "émoji 🍵",
         "A &amp; B", "x &lt; y", "tab\there", "caf&#233;", "nbsp&nbsp;here", "  padded  ", "Ünïcödé"]  # fmt: skip
BAD_CSS = ["[x", "div >", "p:nth-child(", "##a", "a[href=", ":not(", "p,,b", "::before", ":unknown-pseudo"]


def _text(rng: random.Random) -> str:
    return " ".join(rng.sample(WORDS, rng.randint(1, 3)))


def page(seed: int) -> str:
    """A page drawn from ``seed``: a few of the blocks below, in a random order, sometimes malformed."""
    rng = random.Random(seed)
    blocks = [f"<h1 id=\"title\">{_text(rng)}</h1>"]
    if rng.random() < 0.7:  # a table
        rows = "".join(f'<tr data-sku="sku-{i}"><td class="name">{_text(rng)}</td><td class="price">€{rng.randint(1, 99)}.{rng.randint(0, 99):02d}</td></tr>'
                       for i in range(rng.randint(1, 5)))  # fmt: skip
        blocks.append(f'<table id="prices"><thead><tr><th>Item</th><th>Price</th></tr></thead><tbody>{rows}</tbody></table>')
    if rng.random() < 0.7:  # a list, maybe nested
        items = "".join(f'<li class="item {rng.choice(["a", "b", "hot"])}">{_text(rng)}</li>' for _ in range(rng.randint(1, 4)))
        nested = "<li>outer<ul><li class=\"inner\">inner</li></ul></li>" if rng.random() < 0.4 else ""
        blocks.append(f'<ul id="list">{items}{nested}</ul>')
    if rng.random() < 0.6:  # cards with links and decoys
        for i in range(rng.randint(1, 3)):
            blocks.append(f'<div class="card{" decoy" if rng.random() < 0.3 else ""}" data-id="{i}"><h2>{_text(rng)}</h2>'
                          f'<a href="/item/{i}?q={rng.randint(0, 9)}&amp;r=1" rel="nofollow noopener">{_text(rng)}</a>'
                          f'<span class="price">{rng.randint(1, 500)}</span></div>')  # fmt: skip
    if rng.random() < 0.5:  # a form
        blocks.append(f'<form action="/s"><input name="q" value="{_text(rng)}"><input type="hidden" name="token" '
                      f'value="t{rng.randint(0, 9999)}"><select name="s"><option value="1" selected>One</option></select></form>')  # fmt: skip
    if rng.random() < 0.6:  # JSON-LD: valid, nested, or not JSON
        doc = {"@type": "Product", "name": _text(rng), "offers": {"price": str(rng.randint(1, 99)), "currency": "EUR"},
               "tags": rng.sample(WORDS, 2), "rating": rng.random() < 0.5 and 4.5}  # fmt: skip
        body = json.dumps(doc, ensure_ascii=rng.random() < 0.5) if rng.random() < 0.85 else '{"name": "broken",'
        blocks.append(f'<script type="application/ld+json">{body}</script>')
    if rng.random() < 0.4:  # malformed markup
        blocks.append(rng.choice(['<div class="m"><p>unclosed <b>bold<p>next', "<DIV CLASS=up>Upper</DIV></span>",
                                  "<p class=bare data-x=1>bare attrs", '<img src="i.png" alt="pic">', "<!-- comment --><br/>"]))  # fmt: skip
    if rng.random() < 0.3:
        blocks.append(f'<p id="中文">{_text(rng)}</p>')
    rng.shuffle(blocks)
    sep = rng.choice(["", "\n", "\n  ", "\t", "\r\n"])
    return f"<html><head><title>{_text(rng)}</title></head><body>{sep}{sep.join(blocks)}{sep}</body></html>"


def failing_programs(rng: random.Random, html: str) -> list[str]:
    """Programs in G that fail on ``html`` (or may: a subscript of whatever the JSON holds)."""
    missing = "#nope" if rng.random() < 0.5 else "div.absent > span"
    out = [f"print(make_soup().select_one({missing!r}).get_text(strip=True))",
           f"print(make_soup().select_one({missing!r}).get('href'))",
           f"print(make_soup().select_one('#中文缺').get_text(strip=True))",
           f"print(len(make_soup().select({rng.choice(BAD_CSS)!r})))",
           f"print([e.get_text(strip=True) for e in make_soup().select({rng.choice(BAD_CSS)!r})])",
           f"print(make_soup().select_one({rng.choice(BAD_CSS)!r}).get('x'))",
           "print(make_soup().select_one('h1').get_text(strip=True))\nprint(make_soup().select_one('#gone').get('id'))",
           "import json\nprint(json.loads(make_soup().select_one('#gone').string)['a'])",
           "import json\nprint(json.loads(make_soup().select_one('body').string)['a'])",
           "import json\nprint(json.loads(make_soup().select_one('h1').string)['a'])"]  # fmt: skip
    if '"application/ld+json"' in html:
        for keys in (["missing"], ["offers", "nope"], ["tags", "x"], ["name", 0], ["offers", 0], ["rating", "x"], ["tags", 9]):
            subs = "".join(f"[{k!r}]" for k in keys)
            out.append(f"import json\nprint(json.loads(make_soup().select_one({JSON_LD!r}).string){subs})")
    return out


def relayout(rng: random.Random, program: str) -> str:
    """The program in another layout G still accepts (spaces, double quotes, another variable)."""
    var = rng.choice(["e", "json", "make_soup", "_x1", "élément"])
    out = program.replace(" for e in ", f" for {var} in ").replace("[e.", f"[{var}.")
    if rng.random() < 0.5:
        out = out.replace("(strip=True)", "( strip = True )").replace("print(", "print( ", 1)
    if rng.random() < 0.5 and '"' not in out:
        out = out.replace("'", '"')
    return out


def pairs(n_pages: int, per_page: int, seed: int = 0) -> list[tuple[str, str]]:
    """``per_page`` (page, program) pairs on each of ``n_pages`` pages: about half from the
    page's menu (some relaid out), half failing."""
    rng = random.Random(seed)
    out = []
    for p in range(n_pages):
        html = page(seed * 100_000 + p)
        menu, bad = list(menu_programs(html)), failing_programs(rng, html)
        good = rng.sample(menu, min(len(menu), per_page - per_page // 2))
        good = [relayout(rng, g) if rng.random() < 0.4 else g for g in good]
        bad = [relayout(rng, b) if rng.random() < 0.3 else b for b in rng.sample(bad, min(len(bad), per_page - len(good)))]
        out += [(html, prog) for prog in good + bad]
    return out
