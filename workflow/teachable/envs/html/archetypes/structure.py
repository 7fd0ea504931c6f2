"""Archetypes over a page's structure: tables, product cards with decoys, navigation, attributes
and forms."""

from __future__ import annotations

from .base import (CITIES, COLOURS, PRODUCTS, SUPPLIERS, Draft, archetype, code, g_attr, g_attrs, g_count, g_text,
                   g_texts, money, page, parse_number, person, pick, program, read_int, read_list)


# ----------------------------------------------------------------------------- tables
@archetype("table_cell", "tables", "easy", "In the table, what is the {column} of the {item}?", mvp=True)
def table_cell(rng):
    items = pick(rng, PRODUCTS, rng.randint(3, 4))
    rows = [(it, rng.choice(COLOURS), rng.choice(SUPPLIERS)) for it in items]
    i, j = rng.randrange(len(rows)), rng.choice((1, 2))
    body = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    html = page("Stock", "<table><thead><tr><th>Item</th><th>Colour</th><th>Supplier</th></tr></thead>"
                         f"<tbody>{body}</tbody></table>")
    return Draft(html, {"column": ("colour", "supplier")[j - 1], "item": items[i]}, rows[i][j],
                 (program(g_text(f"tbody tr:nth-of-type({i + 1}) td:nth-of-type({j + 1})")),))


@archetype("table_count", "tables", "easy",
           "How many {noun} does the table list, not counting the header and the total row? Answer with a number.",
           norm="int", mvp=True, read=read_int)
def table_count(rng):
    noun = rng.choice(("orders", "invoices", "shipments"))
    n = rng.randint(2, 6)
    amounts = [money(rng, 5, 90) for _ in range(n)]
    body = "".join(f"<tr><td>#{rng.randint(1000, 9999)}</td><td>{a:.2f}</td></tr>" for a in amounts)
    html = page(noun.title(), f"<table><thead><tr><th>No.</th><th>Amount</th></tr></thead><tbody>{body}</tbody>"
                              f"<tfoot><tr><td>Total</td><td>{sum(amounts):.2f}</td></tr></tfoot></table>")
    return Draft(html, {"noun": noun}, n, (program(g_count("tbody tr")),))


@archetype("table_column", "tables", "medium",
           "List every value in the {column} column of the members table, top to bottom, as a JSON list.",
           kind="list")
def table_column(rng):
    n = rng.randint(4, 8)
    rows = [(person(rng), rng.choice(CITIES), f"Team {code(rng, 1)}") for _ in range(n)]
    j = rng.randrange(3)
    body = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    html = page("Members", "<h1>Club</h1><table id=\"officers\"><tbody><tr><td>Chair</td><td>"
                           f"{person(rng)}</td></tr></tbody></table><table id=\"members\"><thead><tr><th>Name</th>"
                           f"<th>City</th><th>Team</th></tr></thead><tbody>{body}</tbody></table>")
    return Draft(html, {"column": ("Name", "City", "Team")[j]}, [r[j] for r in rows],
                 (program(g_texts(f"#members tbody td:nth-of-type({j + 1})")),))


def _read_argmax(outs):
    names, values = (read_list([line]) for line in outs[-1].split("\n"))
    nums = [parse_number(v) for v in values]
    return names[nums.index(max(nums))]


@archetype("table_argmax", "tables", "hard",
           "Which city in the sales table had the highest {metric}? Answer with the city's name.", read=_read_argmax)
def table_argmax(rng):
    metric = rng.choice(("revenue", "units sold"))
    cities = pick(rng, CITIES, rng.randint(5, 8))
    values = rng.sample(range(1_000, 99_999), len(cities))
    other = [rng.randint(1_000, 99_999) for _ in cities]
    cols = ("revenue", "units sold")
    body = "".join(f"<tr><td>{c}</td><td>{(v if metric == cols[0] else o):,}</td>"
                   f"<td>{(o if metric == cols[0] else v):,}</td></tr>" for c, v, o in zip(cities, values, other))
    html = page("Sales", "<table class=\"sales\"><thead><tr><th>City</th><th>Revenue</th><th>Units sold</th></tr>"
                         f"</thead><tbody>{body}</tbody></table><p>Best month: {rng.choice(CITIES)} in May.</p>")
    col = 2 if metric == "revenue" else 3
    return Draft(html, {"metric": metric}, cities[values.index(max(values))],
                 (program(g_texts("table.sales tbody td:nth-of-type(1)"),
                          g_texts(f"table.sales tbody td:nth-of-type({col})")),))


# ----------------------------------------------------------------------------- cards with decoys
@archetype("card_price", "cards", "easy", "What is the current price of the {product}? Answer with a number.",
           norm="number", mvp=True)
def card_price(rng):
    names = pick(rng, PRODUCTS, 3)
    was = [money(rng, 20, 150) for _ in names]
    prices = [(w, round(w * rng.choice((0.6, 0.75, 0.8, 0.9)), 2)) for w in was]
    cards = "".join(f"<article class=\"card\"><h3>{n}</h3><s class=\"was\">${w:.2f}</s> <b class=\"now\">${p:.2f}</b>"
                    "</article>" for n, (w, p) in zip(names, prices))
    i = rng.randrange(3)
    return Draft(page("Sale", f"<main>{cards}</main>"), {"product": names[i]}, prices[i][1],
                 (program(g_text(f"article:nth-of-type({i + 1}) .now")),))


@archetype("card_sponsored", "cards", "medium",
           "What star rating does the {product} have in the regular results (not the sponsored listing)? "
           "Answer with a number.", norm="number")
def card_sponsored(rng):
    names = pick(rng, PRODUCTS, rng.randint(3, 5))
    ratings = [rng.randint(10, 50) / 10 for _ in names]
    target = rng.randrange(len(names))
    decoy = rng.choice([r / 10 for r in range(10, 51) if r / 10 != ratings[target]])
    cards = [f"<article class=\"card\"><h3>{n}</h3><span class=\"rating\">{r:.1f}</span> stars</article>"
             for n, r in zip(names, ratings)]
    at = rng.randrange(len(cards) + 1)
    cards.insert(at, f"<article class=\"card sponsored\"><small>Sponsored</small><h3>{names[target]}</h3>"
                     f"<span class=\"rating\">{decoy:.1f}</span> stars</article>")
    pos = target + 1 + (at <= target)
    return Draft(page("Results", f"<div id=\"results\">{''.join(cards)}</div>"), {"product": names[target]},
                 ratings[target], (program(g_text(f"#results > article:nth-of-type({pos}) .rating")),))


@archetype("card_details", "cards", "medium",
           "Give the name, price and rating of the product marked Top pick, as a JSON object with the keys "
           "name, price and rating.", kind="structured",
           fields=(("name", "text"), ("price", "number"), ("rating", "number")))
def card_details(rng):
    names = pick(rng, PRODUCTS, rng.randint(3, 6))
    prices, ratings = [money(rng) for _ in names], [rng.randint(20, 50) / 10 for _ in names]
    top = rng.randrange(len(names))
    cards = "".join(f"<article class=\"card\">{'<span class=badge>Top pick</span>' if k == top else ''}<h3>{n}</h3>"
                    f"<p class=\"price\">${p:.2f}</p><p class=\"rating\">{r:.1f} / 5</p></article>"
                    for k, (n, p, r) in enumerate(zip(names, prices, ratings)))
    sel = f"article:nth-of-type({top + 1})"
    return Draft(page("Catalogue", f"<section class=\"grid\">{cards}</section>"), {},
                 {"name": names[top], "price": prices[top], "rating": ratings[top]},
                 (program(g_text(f"{sel} h3"), g_text(f"{sel} .price"), g_text(f"{sel} .rating")),))


# ----------------------------------------------------------------------------- navigation
NAV = ("Home", "Shop", "Blog", "About", "Contact", "Careers", "Support", "Press")


@archetype("nav_link", "navigation", "easy",
           "Which URL does the \"{label}\" link in the main navigation point to?", norm="url", mvp=True)
def nav_link(rng):
    labels = pick(rng, NAV, 4)
    hrefs = [f"/{lab.lower()}{rng.choice(('', '/', '.html'))}" for lab in labels]
    i = rng.randrange(4)
    foot = f"<footer><a href=\"/legacy/{labels[i].lower()}-{rng.randint(1, 9)}\">{labels[i]}</a></footer>"
    links = "".join(f"<a href=\"{h}\">{lab}</a>" for lab, h in zip(labels, hrefs))
    html = page("Welcome", f"<nav class=\"main\">{links}</nav><p>Hello.</p>{foot}")
    return Draft(html, {"label": labels[i]}, hrefs[i], (program(g_attr(f"nav.main a:nth-of-type({i + 1})", "href")),))


@archetype("nav_breadcrumb", "navigation", "medium",
           "List the labels of the page's breadcrumb trail, from first to last, as a JSON list.", kind="list")
def nav_breadcrumb(rng):
    trail = ["Home", rng.choice(("Shop", "Catalogue", "Store")), rng.choice(("Kitchen", "Outdoor", "Office", "Travel")),
             *pick(rng, PRODUCTS, rng.randint(0, 1))]
    lis = "".join(f"<li><a href=\"/{'/'.join(t.lower().replace(' ', '-') for t in trail[1:k + 1])}\">{t}</a></li>"
                  for k, t in enumerate(trail[:-1])) + f"<li aria-current=\"page\">{trail[-1]}</li>"
    menu = "".join(f"<li><a href=\"/{n.lower()}\">{n}</a></li>" for n in pick(rng, NAV, 3))
    html = page(trail[-1], f"<ul class=\"menu\">{menu}</ul><nav aria-label=\"Breadcrumb\"><ol class=\"breadcrumb\">"
                           f"{lis}</ol></nav><h1>{trail[-1]}</h1>")
    return Draft(html, {}, trail, (program(g_texts("ol.breadcrumb li")),))


# ----------------------------------------------------------------------------- attributes
@archetype("attr_data", "attributes", "easy", "What is the SKU (the data-sku attribute) of the {product}?",
           mvp=True)
def attr_data(rng):
    names = pick(rng, PRODUCTS, rng.randint(3, 5))
    skus = [f"{code(rng, 2)}-{rng.randint(1000, 9999)}" for _ in names]
    lis = "".join(f"<li data-sku=\"{s}\">{n}</li>" for n, s in zip(names, skus))
    i = rng.randrange(len(names))
    return Draft(page("Items", f"<ul id=\"items\">{lis}</ul>"), {"product": names[i]}, skus[i],
                 (program(g_attr(f"#items li:nth-of-type({i + 1})", "data-sku")),))


@archetype("attr_links", "attributes", "medium",
           "List the links (href) of all PDF documents on the page, in page order, as a JSON list.",
           kind="list", norm="url")
def attr_links(rng):
    docs = []
    for _ in range(rng.randint(4, 8)):
        ext = rng.choice(("pdf", "pdf", "docx", "zip", "html"))
        stem = f"{rng.choice(('report', 'manual', 'notes', 'invoice', 'brochure'))}-{rng.randint(10, 99)}"
        docs.append((f"/files/{stem}.{ext}", f"{stem.title()} ({ext.upper()})"))
    if not any(h.endswith(".pdf") for h, _ in docs):
        docs[rng.randrange(len(docs))] = ("/files/summary.pdf", "Summary (PDF)")
    lis = "".join(f"<li><a href=\"{h}\">{t}</a></li>" for h, t in docs)
    return Draft(page("Downloads", f"<h1>Downloads</h1><ul>{lis}</ul>"), {},
                 [h for h, _ in docs if h.endswith(".pdf")], (program(g_attrs('a[href$=".pdf"]', "href")),))


@archetype("attr_image", "attributes", "easy", "Which image file (its src) shows the {product}?", norm="url")
def attr_image(rng):
    names = pick(rng, PRODUCTS, rng.randint(2, 4))
    srcs = [f"/img/{n.lower().replace(' ', '_')}_{rng.randint(100, 999)}.{rng.choice(('jpg', 'png', 'webp'))}"
            for n in names]
    figs = "".join(f"<figure><img src=\"{s}\" alt=\"Photo of the {n}\"><figcaption>{n}</figcaption></figure>"
                   for n, s in zip(names, srcs))
    i = rng.randrange(len(names))
    return Draft(page("Gallery", f"<img src=\"/img/logo.svg\" alt=\"Logo\">{figs}"), {"product": names[i]}, srcs[i],
                 (program(g_attr(f'img[alt="Photo of the {names[i]}"]', "src")),))


# ----------------------------------------------------------------------------- forms
PURPOSES = {"newsletter": "Subscribe", "login": "Sign in", "contact": "Send", "search": "Search"}


@archetype("form_action", "forms", "easy", "Which URL does the {purpose} form submit to (its action)?",
           norm="url", mvp=True)
def form_action(rng):
    purposes = pick(rng, PURPOSES, 2)
    actions = [f"/{p}/{rng.choice(('submit', 'post', 'go'))}" for p in purposes]
    forms = "".join(f"<form action=\"{a}\" method=\"post\"><h2>{p.title()}</h2><input name=\"q\">"
                    f"<button>{PURPOSES[p]}</button></form>" for p, a in zip(purposes, actions))
    i = rng.randrange(2)
    return Draft(page("Forms", forms), {"purpose": purposes[i]}, actions[i],
                 (program(g_attr(f"form:nth-of-type({i + 1})", "action")),))


FIELDS = ("email", "password", "username", "phone", "company", "website", "birthday", "city")


@archetype("form_required", "forms", "medium",
           "List the names (the name attribute) of the required fields of the sign-up form, in page order, as a "
           "JSON list.", kind="list")
def form_required(rng):
    names = pick(rng, FIELDS, rng.randint(4, 7))
    req = [rng.random() < 0.5 for _ in names]
    req[rng.randrange(len(names))] = True
    inputs = "".join(f"<label>{n.title()} <input name=\"{n}\"{' required' if r else ''}></label>"
                     for n, r in zip(names, req))
    login = "<form id=\"login\"><input name=\"user\" required><input name=\"pass\" required></form>"
    html = page("Join", f"{login}<form id=\"signup\" action=\"/join\">{inputs}<button>Create account</button></form>")
    return Draft(html, {}, [n for n, r in zip(names, req) if r],
                 (program(g_attrs("form#signup input[required]", "name")),))
