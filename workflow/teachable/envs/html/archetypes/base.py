"""What every archetype module uses: the ``Archetype`` row, the generator's ``Draft``, a
limitation's ``Limitation``, the grammar G's program builders and the page's vocabulary.

An archetype is a question shape over a family of generated pages. Its generator draws a page
from a ``random.Random`` and returns the page, the template's slots, the ground truth (from its
own variables, never from parsing the page) and the reference programs (G source, run in order);
its reader turns those programs' printed outputs back into an answer (the tests check that the
reader's answer, normalised, is the ground truth's)."""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable

DIFFICULTIES = ("easy", "medium", "hard")
KINDS = ("scalar", "list", "structured", "limitation")
NORMS = ("text", "url", "number", "int", "date")  # normalisations (grading.normalise)
# why a question cannot be answered from the page: the ``reason`` of a ``limit`` answer
LIMIT_REASONS = ("login_required", "rendered_by_script", "not_on_page")


@dataclass(frozen=True)
class Limitation:
    """A limitation task's accepted abstentions: the reasons allowed, and the evidence strings
    (each occurs literally in the page) that show it."""

    reasons: tuple[str, ...]
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Draft:
    """A generator's output: ``slots`` fill the question's template; ``calls`` are G programs."""

    html: str
    slots: dict
    answer: Any
    calls: tuple[str, ...]
    secrets: tuple[str, ...] = ()
    limitation: Limitation | None = None


@dataclass(frozen=True)
class Archetype:
    """A question shape. ``templates``: the question's text with ``{slot}``s (one drawn per task);
    ``kind``: scalar, list, structured (``fields``: (name, norm) pairs) or limitation (answer None);
    ``norm``: the normalisation of a scalar or of a list's elements; ``mvp``: in the ``mvp`` mode
    (G solves it, pages <= 600 characters); ``generate(rng) -> Draft``; ``read(outputs) -> answer``
    from the reference programs' stdouts (one string per call, its last newline removed)."""

    name: str
    category: str
    difficulty: str
    templates: tuple[str, ...]
    kind: str
    norm: str = "text"
    fields: tuple[tuple[str, str], ...] = ()
    mvp: bool = False
    generate: Callable[[random.Random], Draft] = field(default=None, repr=False, compare=False)
    read: Callable[[list[str]], Any] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.difficulty not in DIFFICULTIES or self.kind not in KINDS or self.norm not in NORMS:
            raise ValueError(f"archetype {self.name}: difficulty {self.difficulty!r}, kind {self.kind!r} "
                             f"or norm {self.norm!r} is not one of {DIFFICULTIES}, {KINDS}, {NORMS}")
        if (self.kind == "structured") != bool(self.fields):
            raise ValueError(f"archetype {self.name}: fields are for structured answers only")


REGISTRY: list[Archetype] = []  # in registration order: the order of ``tasks.ARCHETYPES``


def archetype(name: str, category: str, difficulty: str, templates: str | tuple[str, ...], kind: str = "scalar",
              norm: str = "text", fields: tuple[tuple[str, str], ...] = (), mvp: bool = False,
              read: Callable[[list[str]], Any] | None = None):
    """Register the decorated generator as an archetype (``read`` defaults by kind: the last
    output as text, a list literal, or one line per field)."""
    templates = (templates,) if isinstance(templates, str) else tuple(templates)

    def deco(gen):
        reader = read or {"scalar": read_text, "list": read_list, "limitation": read_text,
                          "structured": lambda outs: dict(zip((f for f, _ in fields), outs[-1].split("\n")))}[kind]
        REGISTRY.append(Archetype(name, category, difficulty, templates, kind, norm, fields, mvp, gen, reader))
        return gen

    return deco


# ----------------------------------------------------------------------------- readers
def read_text(outs: list[str]) -> str:
    return outs[-1]


def read_list(outs: list[str]) -> list:
    return ast.literal_eval(outs[-1])


def read_int(outs: list[str]) -> int:
    return int(outs[-1])


_NUMBER = re.compile(r"-?\d[\d.,]*")


def parse_number(text: str) -> float | None:
    """A number written with a currency, a unit, thousands separators or a decimal comma
    ("€1.234,50", "1,234.50 USD", "12,99", "850 g"): the last of ``.``/``,`` followed by 1-2
    digits is the decimal point; None when there is no number."""
    m = _NUMBER.search(text.replace("\u2212", "-").replace(" ", ""))
    if m is None:
        return None
    s = m.group().rstrip(".,")
    cut = max(s.rfind("."), s.rfind(","))
    if cut >= 0 and 1 <= len(s) - cut - 1 <= 2:
        s = re.sub(r"[.,]", "", s[:cut]) + "." + s[cut + 1:]
    else:
        s = re.sub(r"[.,]", "", s)
    try:
        return float(s)
    except ValueError:
        return None


# ----------------------------------------------------------------------------- the grammar G
G_FORMS = """The grammar G: a program is one or more lines, each exactly ``print(EXPR)``, optionally
preceded by one line ``import json``; CSS, ATTR and KEY are string literals (KEY may be an int
literal), ``.get_text(strip=True)`` is written exactly so. EXPR is one of:
  1. make_soup().select_one(CSS).get_text(strip=True)
  2. [e.get_text(strip=True) for e in make_soup().select(CSS)]
  3. make_soup().select_one(CSS).get(ATTR)
  4. [e.get(ATTR) for e in make_soup().select(CSS)]
  5. len(make_soup().select(CSS))
  6. json.loads(make_soup().select_one(CSS).string)[KEY]   (one or more [KEY] subscripts)
``make_soup()`` is the sandbox's: BeautifulSoup(/page.html, "lxml")."""


def g_text(css: str) -> str:
    return f"print(make_soup().select_one({css!r}).get_text(strip=True))"


def g_texts(css: str) -> str:
    return f"print([e.get_text(strip=True) for e in make_soup().select({css!r})])"


def g_attr(css: str, attr: str) -> str:
    return f"print(make_soup().select_one({css!r}).get({attr!r}))"


def g_attrs(css: str, attr: str) -> str:
    return f"print([e.get({attr!r}) for e in make_soup().select({css!r})])"


def g_count(css: str) -> str:
    return f"print(len(make_soup().select({css!r})))"


def g_json(css: str, *keys: str | int) -> str:
    return f"print(json.loads(make_soup().select_one({css!r}).string){''.join(f'[{k!r}]' for k in keys)})"


def program(*lines: str) -> str:
    """A G program of these ``print`` lines (``import json`` first when one uses it)."""
    return "\n".join((["import json"] if any("json.loads" in ln for ln in lines) else []) + list(lines))


# ----------------------------------------------------------------------------- pages and words
def page(title: str, body: str, head: str = "") -> str:
    return f"<html><head><title>{title}</title>{head}</head><body>{body}</body></html>"


PRODUCTS = ("Tea Kettle", "Desk Lamp", "Wool Scarf", "Coffee Grinder", "Yoga Mat", "Water Bottle", "Backpack",
            "Headphones", "Notebook", "Umbrella", "Garden Hose", "Cutting Board", "Blender", "Alarm Clock",
            "Phone Stand", "Hiking Boots", "Rain Jacket", "Travel Mug", "Desk Chair", "Table Fan")
COLOURS = ("red", "blue", "green", "black", "white", "grey", "yellow", "purple", "orange", "teal")
SUPPLIERS = ("Acme", "Northwind", "Globex", "Initech", "Umbrella Co", "Vandelay", "Hooli", "Stark Supply")
FIRST = ("Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Radia", "Edsger", "Frances",
         "John", "Hedy", "Tim", "Katherine", "Niklaus")
LAST = ("Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Perlman",
        "Dijkstra", "Allen", "Backus", "Lamarr", "Berners", "Johnson", "Wirth")
CITIES = ("Lisbon", "Oslo", "Vienna", "Dublin", "Prague", "Zurich", "Porto", "Bergen", "Ghent", "Turin", "Krakow",
          "Lyon")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def pick(rng: random.Random, pool, k: int) -> list:
    """``k`` distinct items of ``pool`` in a random order."""
    return rng.sample(list(pool), k)


def money(rng: random.Random, lo: int = 5, hi: int = 200) -> float:
    """A price in [lo, hi) with two decimals."""
    return rng.randrange(lo * 100, hi * 100) / 100


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def code(rng: random.Random, n: int = 4, alphabet: str = "ABCDEFGHJKLMNPQRSTUVWXYZ") -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))
