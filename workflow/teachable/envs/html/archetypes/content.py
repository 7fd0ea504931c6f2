"""Archetypes over a page's content: values to normalise, malformed HTML, JSON-LD data and a
small site packed into one page (``<section data-url=...>`` pages linked by ``href``)."""

from __future__ import annotations

import json

from .base import (CITIES, MONTHS, PRODUCTS, SUPPLIERS, Draft, archetype, code, g_attr, g_json, g_text, g_texts,
                   money, page, parse_number, person, pick, program)


# ----------------------------------------------------------------------------- normalisation
ROLES = ("editor", "photographer", "translator", "illustrator", "reviewer")


@archetype("norm_whitespace", "normalisation", "easy", "Who is credited as the {role}? Answer with the full name.",
           mvp=True)
def norm_whitespace(rng):
    roles = pick(rng, ROLES, 3)
    names = [person(rng) for _ in roles]
    gaps = ("\n      ", "&nbsp;", "  ", " \n ")
    dds = "".join(f"<dt>{r.title()}</dt><dd>\n   {n.replace(' ', rng.choice(gaps))}  \n </dd>"
                  for r, n in zip(roles, names))
    i = rng.randrange(3)
    return Draft(page("Credits", f"<dl class=\"credits\">{dds}</dl>"), {"role": roles[i]}, names[i],
                 (program(g_text(f"dl.credits dd:nth-of-type({i + 1})")),))


def _price_text(rng, p: float) -> str:
    us, eu = f"{p:,.2f}", f"{p:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    return rng.choice((f"${us}", f"USD {us}", f"{eu} €", f"€{eu}", f"EUR {eu}", f"£{us}"))


@archetype("norm_price", "normalisation", "medium",
           "What does the {product} cost? Answer with a plain number, without the currency.", norm="number")
def norm_price(rng):
    names = pick(rng, PRODUCTS, rng.randint(3, 5))
    prices = [rng.randrange(100, 500_000) / 100 for _ in names]
    rows = "".join(f"<div class=\"product\"><h2>{n}</h2><span class=\"price\">{_price_text(rng, p)}</span></div>"
                   for n, p in zip(names, prices))
    i = rng.randrange(len(names))
    return Draft(page("Prices", f"<div class=\"list\">{rows}</div>"), {"product": names[i]}, prices[i],
                 (program(g_text(f".list > div:nth-of-type({i + 1}) .price")),))


DATE_FORMATS = ("{d} {M} {y}", "{M} {d}, {y}", "{m3} {d}, {y}", "{dd}.{mm}.{y}", "{y}/{mm}/{dd}", "{y}-{mm}-{dd}")


@archetype("norm_date", "normalisation", "medium",
           "On what date was the post \"{title}\" published? Answer as YYYY-MM-DD.", norm="date")
def norm_date(rng):
    titles = rng.sample([f"{a} {b}" for a in ("Notes on", "Why we love", "A week in", "Ten tips for")
                         for b in ("packing", "winter", CITIES[0], CITIES[3], "gardening", "coffee")], rng.randint(3, 5))
    posts, dates = [], []
    for t in titles:
        y, m, d = rng.randint(2015, 2025), rng.randint(1, 12), rng.randint(1, 28)
        dates.append(f"{y:04d}-{m:02d}-{d:02d}")
        shown = rng.choice(DATE_FORMATS).format(d=d, dd=f"{d:02d}", mm=f"{m:02d}", y=y, M=MONTHS[m - 1],
                                                m3=MONTHS[m - 1][:3])
        posts.append(f"<article><h2>{t}</h2><p>Posted on <span class=\"date\">{shown}</span> by {person(rng)}</p>"
                     "</article>")
    i = rng.randrange(len(titles))
    return Draft(page("Blog", "".join(posts)), {"title": titles[i]}, dates[i],
                 (program(g_text(f"article:nth-of-type({i + 1}) .date")),))


def _read_grams(outs):
    text = outs[-1]
    return round(parse_number(text) * (1000 if text.rstrip().endswith("kg") else 1), 2)


@archetype("norm_units", "normalisation", "hard", "How heavy is the {product} itself, in grams? Answer with a number.",
           norm="number", read=_read_grams)
def norm_units(rng):
    product = rng.choice(PRODUCTS)
    grams = rng.randrange(50, 9_000, 10)
    shown = f"{grams / 1000:g} kg" if grams >= 1000 and rng.random() < 0.8 else f"{grams} g"
    ship = f"{(grams + rng.randint(200, 900)) / 1000:g} kg"
    specs = [("Colour", rng.choice(("black", "steel", "white"))), ("Shipping weight", ship), ("Weight", shown),
             ("Maker", rng.choice(SUPPLIERS))]
    rng.shuffle(specs)
    k = [s for s, _ in specs].index("Weight")
    rows = "".join(f"<tr><th>{s}</th><td>{v}</td></tr>" for s, v in specs)
    return Draft(page(product, f"<h1>{product}</h1><table id=\"specs\"><tbody>{rows}</tbody></table>"),
                 {"product": product}, float(grams), (program(g_text(f"#specs tr:nth-of-type({k + 1}) td")),))


# ----------------------------------------------------------------------------- malformed HTML
LISTS = {"ingredients": ("flour", "sugar", "eggs", "butter", "milk", "salt", "yeast", "honey"),
         "tools": ("bowl", "whisk", "oven", "spatula", "scale", "sieve", "tray", "knife")}


@archetype("malformed_list", "malformed", "medium", "List the {heading} given on the page, in page order, as a JSON list.",
           kind="list", mvp=True)
def malformed_list(rng):
    lists = {h: pick(rng, words, rng.randint(2, 5)) for h, words in LISTS.items()}
    order = pick(rng, lists, 2)
    body = "".join(f"<h2>{h.title()}</h2><ul id={h}>" + "".join(f"<li>{w}" for w in lists[h]) + "</ul>"
                   for h in order)
    heading = rng.choice(order)
    return Draft(f"<html><body><h1>Bread</h1>{body}</div></body>", {"heading": heading}, lists[heading],
                 (program(g_texts(f"#{heading} li")),))


@archetype("malformed_table", "malformed", "hard",
           "According to the stock table, how many {item} are in stock? Answer with a number.", norm="int")
def malformed_table(rng):
    items = pick(rng, ("bolts", "nuts", "screws", "washers", "hinges", "rivets", "nails", "brackets"), rng.randint(3, 6))
    qty = [rng.randint(0, 500) for _ in items]
    rows = "".join(f"<tr class={'low' if q < 50 else 'ok'}><td>{it}<td align=right>{q}</span>"
                   for it, q in zip(items, qty))
    i = rng.randrange(len(items))
    html = (f"<html><body><p>Updated {rng.randint(1, 28)} {rng.choice(MONTHS)}<p><b>Warehouse {code(rng, 1)}"
            f"<table class=stock><tr><th>Item<th>Quantity{rows}</table></b></body></html>")
    return Draft(html, {"item": items[i]}, qty[i],
                 (program(g_text(f"table.stock tr:nth-of-type({i + 2}) td:nth-of-type(2)")),))


# ----------------------------------------------------------------------------- JSON-LD
LD = 'script[type="application/ld+json"]'


def _ld(obj) -> str:
    return f"<script type=\"application/ld+json\">{json.dumps(obj)}</script>"


@archetype("jsonld_price", "jsonld", "easy",
           "What price does the page's structured data (JSON-LD) give for the product? Answer with a number.",
           norm="number", mvp=True)
def jsonld_price(rng):
    name, price = rng.choice(PRODUCTS), money(rng, 10, 300)
    shown = round(price * rng.choice((0.7, 0.85, 0.9)), 2)
    ld = _ld({"@context": "https://schema.org", "@type": "Product", "name": name,
              "offers": {"@type": "Offer", "price": f"{price:.2f}", "priceCurrency": "EUR"}})
    html = page(name, f"<h1>{name}</h1><p>Today only: <b>{shown:.2f} EUR</b></p>", head=ld)
    return Draft(html, {}, price, (program(g_json(LD, "offers", "price")),))


@archetype("jsonld_product", "jsonld", "medium",
           "From the page's JSON-LD data, give the product's name, sku and brand as a JSON object with the keys "
           "name, sku and brand.", kind="structured", fields=(("name", "text"), ("sku", "text"), ("brand", "text")))
def jsonld_product(rng):
    name, brand, sku = rng.choice(PRODUCTS), rng.choice(SUPPLIERS), f"{code(rng, 3)}{rng.randint(100, 999)}"
    ld = _ld({"@context": "https://schema.org", "@type": "Product", "name": name, "sku": sku,
              "brand": {"@type": "Brand", "name": brand}, "offers": {"price": f"{money(rng):.2f}"}})
    html = page(name, f"<h1>The {rng.choice(('new', 'best', 'classic'))} {name} by {rng.choice(SUPPLIERS)}</h1>"
                      f"<p>Item no. {code(rng, 3)}{rng.randint(100, 999)}</p>", head=ld)
    return Draft(html, {}, {"name": name, "sku": sku, "brand": brand},
                 (program(g_json(LD, "name"), g_json(LD, "sku"), g_json(LD, "brand", "name")),))


@archetype("jsonld_breadcrumb", "jsonld", "hard",
           "In the page's JSON-LD breadcrumb list, what is the name of item number {position}?")
def jsonld_breadcrumb(rng):
    trail = ["Home", rng.choice(("Shop", "Store")), rng.choice(("Kitchen", "Garden", "Office")), rng.choice(PRODUCTS)]
    org = _ld({"@context": "https://schema.org", "@type": "Organization", "name": rng.choice(SUPPLIERS),
               "url": "https://example.com"})
    crumbs = _ld({"@context": "https://schema.org", "@type": "BreadcrumbList",
                  "itemListElement": [{"@type": "ListItem", "position": k + 1, "name": t} for k, t in enumerate(trail)]})
    shown = " / ".join(reversed(trail))
    pos = rng.randint(1, len(trail))
    html = page(trail[-1], f"<p class=\"crumbs\">{shown}</p>", head=org + crumbs)
    return Draft(html, {"position": pos}, trail[pos - 1],
                 (program(g_json(f"{LD}:nth-of-type(2)", "itemListElement", pos - 1, "name")),))


# ----------------------------------------------------------------------------- a site in one page
def _slug(rng, word: str) -> str:
    return f"/{rng.choice(('p', 'item', 'shop'))}/{rng.randint(100, 999)}-{word.lower().replace(' ', '-')[:4]}"


@archetype("multipage_follow", "multipage", "medium",
           "The page holds a small site (one section per URL). From the home page (/), follow the link \"{label}\": "
           "what price does the page it leads to show? Answer with a number.", norm="number")
def multipage_follow(rng):
    names = pick(rng, PRODUCTS, rng.randint(3, 5))
    urls, prices = [_slug(rng, n) for n in names], [money(rng) for _ in names]
    labels = [f"{rng.choice(('See', 'Open', 'View'))} {n}" for n in names]
    home = "".join(f"<a href=\"{u}\">{lab}</a> " for u, lab in zip(urls, labels))
    pages = [f"<section data-url=\"{u}\"><h1>{n}</h1><p class=\"price\">${p:.2f}</p></section>"
             for u, n, p in zip(urls, names, prices)]
    rng.shuffle(pages)
    i = rng.randrange(len(names))
    html = page("Site", f"<section data-url=\"/\"><h1>Home</h1><p>{home}</p></section>{''.join(pages)}")
    return Draft(html, {"label": labels[i]}, prices[i],
                 (program(g_attr(f'section[data-url="/"] a:nth-of-type({i + 1})', "href")),
                  program(g_text(f'section[data-url="{urls[i]}"] .price'))))


@archetype("multipage_two_hops", "multipage", "hard",
           "The page holds a small site (one section per URL). From the home page (/), open the \"{category}\" "
           "category, then its \"{product}\" entry: what SKU does that page show?")
def multipage_two_hops(rng):
    cats = pick(rng, ("Kitchen", "Garden", "Office", "Travel", "Outdoor"), 3)
    shared = rng.choice(PRODUCTS)
    sections, home, answer = [], [], None
    ci = rng.randrange(3)
    for k, c in enumerate(cats):
        curl = f"/c/{c.lower()}-{rng.randint(10, 99)}"
        home.append(f"<a href=\"{curl}\">{c}</a>")
        prods = pick(rng, [p for p in PRODUCTS if p != shared], 2) + [shared]
        rng.shuffle(prods)
        links = []
        for p in prods:
            purl, sku = f"{curl}/{rng.randint(1000, 9999)}", f"{code(rng, 2)}-{rng.randint(10000, 99999)}"
            links.append(f"<a href=\"{purl}\">{p}</a>")
            sections.append(f"<section data-url=\"{purl}\"><h1>{p}</h1><p>SKU: <code class=\"sku\">{sku}</code></p>"
                            "</section>")
            if k == ci and p == shared:
                answer, pi, cat_url, prod_url = sku, prods.index(p), curl, purl
        sections.append(f"<section data-url=\"{curl}\"><h1>{c}</h1><nav>{' '.join(links)}</nav></section>")
    rng.shuffle(sections)
    html = page("Site", f"<section data-url=\"/\"><h1>Home</h1><nav>{' '.join(home)}</nav></section>{''.join(sections)}")
    return Draft(html, {"category": cats[ci], "product": shared}, answer,
                 (program(g_attr(f'section[data-url="/"] a:nth-of-type({ci + 1})', "href")),
                  program(g_attr(f'section[data-url="{cat_url}"] a:nth-of-type({pi + 1})', "href")),
                  program(g_text(f'section[data-url="{prod_url}"] .sku'))))
