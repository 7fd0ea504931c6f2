"""The grammar G of one-line BeautifulSoup programs, and its interpreter in process.

    parse_g(code) -> GProgram | None          # AST matching; None: not in G
    run_in_process(code, html) -> dict | None  # == run_sandboxed(code, html).as_dict(), seconds 0.0
    menu_programs(html, limit=64) -> tuple[str, ...]
    canonical_code(code) -> str                # ast.unparse(ast.parse(code))

A G program is one or more lines, each ``print(EXPR)``, after at most one ``import json`` line
(first), where EXPR is one of (CSS, ATTR: string literals; KEY: a string or int literal; ``e``
any identifier):

    text   make_soup().select_one(CSS).get_text(strip=True)
    texts  [e.get_text(strip=True) for e in make_soup().select(CSS)]
    attr   make_soup().select_one(CSS).get(ATTR)
    attrs  [e.get(ATTR) for e in make_soup().select(CSS)]
    count  len(make_soup().select(CSS))
    json   json.loads(make_soup().select_one(CSS).string)[KEY]...   (one or more [KEY]; needs the import)

Besides the shape, a program in G has each statement on a line of its own (no ``;``, no line
continuation), no comment (a coding cookie would change the traceback's source line) and no
``\\r``, ``\\f``, ``\\v``, NUL or BOM: what makes its traceback reproducible.

``run_in_process`` evaluates a G program with the real bs4, soupsieve and json calls (no
exec/eval of the code), on the page parsed once per html string (an LRU of ``PAGE_CACHE``
pages), and returns what the sandbox returns for it (``sandbox.run_sandboxed``), byte for byte:
stdout, and on an exception stderr's traceback (the program's frame at the failing node's
columns, the library's frames under the sandbox's paths ``/site/...`` and its stdlib, formatted
by the sandbox interpreter's own ``traceback`` module, which differs between 3.11 patch
releases: measured), ``error`` (stderr's last line) and exit code 1. ``seconds`` is 0.0 (no
sandbox ran). It returns None, and the caller runs the sandbox, where it cannot vouch for
that: code not in G; the sandbox's interpreter missing or of another minor version than this
one; bs4, lxml or soupsieve at other versions than the sandbox site's; a library frame in a
file whose text differs from the sandbox's; a warning (parse or selector: the sandbox prints it
on stderr); a chained exception, a RecursionError or MemoryError; an exception inside the
comprehension; a lone surrogate printed; output over ``output_bytes``; a page over
``memory_mb`` KiB or parse + run over ``TIME_SHARE`` of ``timeout_s``. benchmarks/
bench_html_grammar.py measures the identity and the speed (benchmarks/README.md). A cached
page's soup is shared and only read; warnings are caught with ``warnings.catch_warnings``,
which is process-wide: call it from one thread at a time."""

from __future__ import annotations

import ast
import collections
import functools
import importlib.metadata
import importlib.util
import io
import json
import linecache
import operator
import os
import re
import subprocess
import sys
import time
import tokenize
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .sandbox import SandboxConfig

PAGE_CACHE = 64  # parsed pages kept in process (many programs on one page parse it once)
TIME_SHARE = 0.25  # parse + run in process over this share of timeout_s: let the sandbox say
HTML_DISTS = {"beautifulsoup4": "bs4", "lxml": "lxml", "soupsieve": "soupsieve"}  # dist -> package
JSON_LD = 'script[type="application/ld+json"]'


# ----------------------------------------------------------------------------- the grammar
@dataclass(frozen=True)
class GExpr:
    """One ``print``'s argument: its ``form`` (module docstring), CSS, ATTR (attr, attrs), the
    subscript KEYs (json) and the comprehension's variable (texts, attrs)."""

    form: str
    css: str
    attr: str | None = None
    keys: tuple[str | int, ...] = ()
    var: str | None = None
    node: ast.expr | None = field(default=None, compare=False, repr=False)  # where it sits in the code

    def source(self) -> str:
        """The expression's canonical source."""
        sel1, seln, v = f"make_soup().select_one({self.css!r})", f"make_soup().select({self.css!r})", self.var or "e"
        text = {"text": f"{sel1}.get_text(strip=True)", "attr": f"{sel1}.get({self.attr!r})",
                "texts": f"[{v}.get_text(strip=True) for {v} in {seln}]",
                "attrs": f"[{v}.get({self.attr!r}) for {v} in {seln}]", "count": f"len({seln})",
                "json": f"json.loads({sel1}.string)" + "".join(f"[{k!r}]" for k in self.keys)}[self.form]  # fmt: skip
        return ast.unparse(ast.parse(text, mode="eval"))


@dataclass(frozen=True)
class GProgram:
    """A program in G: its ``print`` arguments, in order, and whether it imports json."""

    exprs: tuple[GExpr, ...]
    imports_json: bool

    def source(self) -> str:
        """The program's canonical source (``canonical_code`` of it)."""
        return "\n".join((["import json"] if self.imports_json else []) + [f"print({e.source()})" for e in self.exprs])


def canonical_code(code: str) -> str:
    """``ast.unparse(ast.parse(code))``: one spelling per program (comments and layout dropped);
    ValueError naming the line when the code does not parse."""
    try:
        return ast.unparse(ast.parse(code))
    except SyntaxError as e:
        raise ValueError(f"code does not parse: {e.msg} (line {e.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes; nesting too deep
        raise ValueError(f"code does not parse: {type(e).__name__}: {e}") from None


def parse_g(code: str) -> GProgram | None:
    """The program ``code`` is, when it is in G (module docstring); else None. Matches the AST:
    nothing is run."""
    if not isinstance(code, str) or re.search("[\r\f\v\0\ufeff]", code) or re.search("[\ud800-\udfff]", code):
        return None
    try:
        tree = ast.parse(code)
        if any(t.type == tokenize.COMMENT for t in tokenize.generate_tokens(io.StringIO(code).readline)):
            return None
    except (SyntaxError, ValueError, RecursionError, MemoryError, tokenize.TokenError):
        return None
    body = tree.body
    imports_json = bool(body) and isinstance(body[0], ast.Import)
    if imports_json:
        if [(a.name, a.asname) for a in body[0].names] != [("json", None)]:
            return None
        body = body[1:]
    lines = [s.lineno for s in tree.body]
    if not body or len(set(lines)) != len(lines) or any(s.lineno != s.end_lineno for s in tree.body):
        return None
    exprs = []
    for stmt in body:
        arg = _print_arg(stmt)
        expr = _match_expr(arg) if arg is not None else None
        if expr is None or (expr.form == "json" and not imports_json):
            return None
        exprs.append(expr)
    return GProgram(tuple(exprs), imports_json)


def _print_arg(stmt: ast.stmt) -> ast.expr | None:
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    if _is_call(call, 1) and isinstance(call.func, ast.Name) and call.func.id == "print":
        return call.args[0]
    return None


def _is_call(node, nargs: int, keywords: tuple[tuple[str, object], ...] = ()) -> bool:
    """A call with ``nargs`` positional arguments and exactly these constant keywords."""
    return (isinstance(node, ast.Call) and len(node.args) == nargs and not any(isinstance(a, ast.Starred) for a in node.args)
            and [(k.arg, _const(k.value, bool)) for k in node.keywords] == list(keywords))  # fmt: skip


def _const(node, *types):
    """A literal's value when it is exactly one of ``types`` (True is not an int here), else None."""
    return node.value if isinstance(node, ast.Constant) and type(node.value) in types else None


def _method(node, name: str, nargs: int, keywords=()) -> ast.expr | None:
    """The receiver of ``<receiver>.name(<nargs args>, **keywords)``."""
    if _is_call(node, nargs, keywords) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
        return node.func.value
    return None


def _select(node, name: str) -> str | None:
    """CSS of ``make_soup().<name>(CSS)``."""
    soup = _method(node, name, 1)
    if _is_call(soup, 0) and isinstance(soup.func, ast.Name) and soup.func.id == "make_soup":
        return _const(node.args[0], str)
    return None


def _match_expr(node: ast.expr) -> GExpr | None:
    strip = (("strip", True),)
    if (sel := _method(node, "get_text", 0, strip)) is not None and (css := _select(sel, "select_one")) is not None:
        return GExpr("text", css, node=node)
    if (sel := _method(node, "get", 1)) is not None and (css := _select(sel, "select_one")) is not None:
        return None if (attr := _const(node.args[0], str)) is None else GExpr("attr", css, attr, node=node)
    if _is_call(node, 1) and isinstance(node.func, ast.Name) and node.func.id == "len":
        return None if (css := _select(node.args[0], "select")) is None else GExpr("count", css, node=node)
    if isinstance(node, ast.ListComp) and len(node.generators) == 1:
        gen = node.generators[0]
        if gen.ifs or gen.is_async or not isinstance(gen.target, ast.Name) or (css := _select(gen.iter, "select")) is None:
            return None
        var = gen.target.id
        if isinstance(_method(node.elt, "get_text", 0, strip), ast.Name) and node.elt.func.value.id == var:
            return GExpr("texts", css, var=var, node=node)
        if isinstance(_method(node.elt, "get", 1), ast.Name) and node.elt.func.value.id == var:
            attr = _const(node.elt.args[0], str)
            return None if attr is None else GExpr("attrs", css, attr, var=var, node=node)
        return None
    keys, base = [], node
    while isinstance(base, ast.Subscript):
        if (key := _const(base.slice, str, int)) is None:
            return None
        keys.insert(0, key)
        base = base.value
    loads = base.func if _is_call(base, 1) else None
    if (keys and isinstance(loads, ast.Attribute) and loads.attr == "loads" and isinstance(loads.value, ast.Name)
            and loads.value.id == "json" and isinstance(arg := base.args[0], ast.Attribute) and arg.attr == "string"
            and (css := _select(arg.value, "select_one")) is not None):  # fmt: skip
        return GExpr("json", css, keys=tuple(keys), node=node)
    return None


# ----------------------------------------------------------------------------- the interpreter
@dataclass(frozen=True)
class _Page:
    soup: object  # bs4.BeautifulSoup
    warned: bool  # parsing it printed a warning
    seconds: float


@functools.lru_cache(maxsize=PAGE_CACHE)
def _page(html: str) -> _Page:
    """``html`` as the sandbox's ``make_soup()`` parses it: read back as text (universal newlines)."""
    from bs4 import BeautifulSoup

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        soup = BeautifulSoup(html.replace("\r\n", "\n").replace("\r", "\n"), "lxml")
    return _Page(soup, bool(caught), time.perf_counter() - t0)


@functools.lru_cache(maxsize=4096)
def _css_warns(css: str) -> bool:
    """Whether compiling ``css`` warns (``:contains``...): soupsieve's compile cache hides a
    repeated warning in process, so compile it here uncached once."""
    from soupsieve import css_parser

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            css_parser._cached_css_compile.__wrapped__(css, None, None, 0)
        except Exception:  # a bad selector: the real call raises it again
            pass
    return bool(caught)


@dataclass(frozen=True)
class _Sandbox:
    """What the sandbox's interpreter and site directory look like from here."""

    traceback: object  # its traceback module
    stdlib: str  # its stdlib directory (the path its frames show)
    site: str  # the site directory on this machine (shown as /site)


@functools.lru_cache(maxsize=8)
def _sandbox(python: str, site: str) -> _Sandbox | None:
    """The sandbox interpreter's stdlib and traceback module, when it is this Python's minor
    version and the site holds this process's bs4, lxml and soupsieve versions; else None."""
    try:
        out = subprocess.run([os.path.realpath(python), "-I", "-S", "-c",
                              "import sys, traceback; print(traceback.__file__); print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60, env={}, check=True).stdout.split("\n")  # fmt: skip
        tb_file, version = out[0], tuple(map(int, out[1].split()))
        if version != sys.version_info[:2]:
            return None
        for dist in HTML_DISTS:
            if not (Path(site) / f"{dist}-{importlib.metadata.version(dist)}.dist-info").is_dir():
                return None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, importlib.metadata.PackageNotFoundError):
        return None
    spec = importlib.util.spec_from_file_location("_teachable_sandbox_traceback", tb_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return _Sandbox(module, os.path.dirname(tb_file), site)


@functools.lru_cache(maxsize=256)
def _sandbox_path(filename: str, python: str, site: str) -> str | None:
    """The path the sandbox shows for this process's library file, when the sandbox's copy has
    the same text (then line numbers and source lines agree); else None."""
    sb = _sandbox(python, site)
    here_site = os.path.dirname(os.path.dirname(importlib.util.find_spec("bs4").origin))
    here_stdlib = os.path.dirname(traceback.__file__)
    for here, there, shown in ((here_site, sb.site, "/site"), (here_stdlib, sb.stdlib, sb.stdlib)):
        if filename.startswith(here + os.sep):
            rel = os.path.relpath(filename, here)
            try:
                same = Path(filename).read_bytes() == Path(there, rel).read_bytes()
            except OSError:
                return None
            return f"{shown}/{rel}" if same else None
    return None


class _Unvouched(Exception):
    """run_in_process cannot vouch for the sandbox's result: the caller runs the sandbox."""


class _Raised(Exception):
    """The program raised ``exc`` at ``node``."""

    def __init__(self, exc: BaseException, node: ast.expr):
        super().__init__(exc, node)
        self.exc, self.node = exc, node


def _at(node: ast.expr, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, the operation of ``node``; an exception it raises is the program's."""
    try:
        return fn(*args, **kwargs)
    except (RecursionError, MemoryError):
        raise _Unvouched from None
    except Exception as e:
        raise _Raised(e, node) from None


def _evaluate(expr: GExpr, soup) -> object:
    """The value ``expr`` prints, computed by the calls its code makes, in its order."""
    n = expr.node
    if expr.form in ("text", "attr"):
        sel = n.func.value
        tag = _at(sel, soup.select_one, expr.css)
        method = _at(n.func, getattr, tag, "get_text" if expr.form == "text" else "get")
        return _at(n, method, strip=True) if expr.form == "text" else _at(n, method, expr.attr)
    if expr.form in ("texts", "attrs", "count"):
        sel = n.args[0] if expr.form == "count" else n.generators[0].iter
        tags = _at(sel, soup.select, expr.css)
        if expr.form == "count":
            return len(tags)
        try:  # a Tag's get_text or get does not raise; if it did, its <listcomp> frame is not reproduced
            return [t.get_text(strip=True) for t in tags] if expr.form == "texts" else [t.get(expr.attr) for t in tags]
        except Exception:
            raise _Unvouched from None
    subs = []
    while isinstance(n, ast.Subscript):
        subs.insert(0, n)
        n = n.value
    string_node = n.args[0]
    tag = _at(string_node.value, soup.select_one, expr.css)
    value = _at(n, json.loads, _at(string_node, getattr, tag, "string"))
    for sub, key in zip(subs, expr.keys):
        value = _at(sub, operator.getitem, value, key)
    return value


def run_in_process(code: str, html: str, config: SandboxConfig = SandboxConfig()) -> dict | None:
    """``run_sandboxed(code, html, config).as_dict()`` for a G program, computed here (``seconds``
    0.0); None where that cannot be vouched for (module docstring): then run the sandbox."""
    program = parse_g(code)
    if program is None or re.search("[\ud800-\udfff]", html) or len(html.encode()) > config.memory_mb << 10:
        return None
    sb = _sandbox(config.python, config.site)
    if sb is None:
        return None
    t0 = time.perf_counter()
    page = _page(html)
    if page.warned or any(_css_warns(e.css) for e in program.exprs):
        return None
    out, stderr = [], ""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for expr in program.exprs:
                out.append(f"{_evaluate(expr, page.soup)}\n")
    except _Unvouched:
        return None
    except _Raised as r:
        stderr = _traceback(r.exc, r.node, code, config)
        if stderr is None:
            return None
    stdout = "".join(out)
    if caught or re.search("[\ud800-\udfff]", stdout):  # a lone surrogate fails print's UTF-8 in the sandbox
        return None
    if page.seconds + time.perf_counter() - t0 > TIME_SHARE * config.timeout_s:
        return None
    if max(len(stdout.encode()), len(stderr.encode())) > config.output_bytes:
        return None
    error = stderr.strip().splitlines()[-1] if stderr else None
    return {"stdout": stdout, "stderr": stderr, "error": error, "exit_code": 1 if stderr else 0,
            "timed_out": False, "output_truncated": False, "seconds": 0.0}  # fmt: skip


def _traceback(exc: BaseException, node: ast.expr, code: str, config: SandboxConfig) -> str | None:
    """What the sandbox's runner prints for ``exc`` raised at ``node``: the program's frame, then
    the library's, as the sandbox interpreter's traceback module formats them; None when a
    frame or a chained exception cannot be reproduced."""
    if exc.__cause__ is not None or (exc.__context__ is not None and not exc.__suppress_context__):
        return None
    tb = _sandbox(config.python, config.site).traceback
    line = code.split("\n")[node.lineno - 1] + "\n"  # as linecache reads /code.py
    frames = [tb.FrameSummary("/code.py", node.lineno, "<module>", lookup_line=False, line=line,
                              end_lineno=node.end_lineno, colno=node.col_offset, end_colno=node.end_col_offset)]  # fmt: skip
    for f in traceback.extract_tb(exc.__traceback__)[1:]:  # [0] is _at's own frame
        shown = _sandbox_path(f.filename, config.python, config.site)
        if shown is None:
            return None
        frames.append(tb.FrameSummary(shown, f.lineno, f.name, lookup_line=False, line=linecache.getline(f.filename, f.lineno),
                                      end_lineno=f.end_lineno, colno=f.colno, end_colno=f.end_colno))  # fmt: skip
    return "".join(["Traceback (most recent call last):\n", *tb.StackSummary.from_list(frames).format(),
                    *tb.format_exception_only(type(exc), exc)])  # fmt: skip


# ----------------------------------------------------------------------------- the menu
def menu_programs(html: str, limit: int = 64) -> tuple[str, ...]:
    """A finite, deterministic menu of G programs (canonical source, one ``print`` each) reading
    this page, at most ``limit``, in this order: the title and first h1-h3's texts; per element
    with an id (document order), its text and each other attribute; per class (first seen), its
    elements' texts and count; per tag seen twice or more, its count and texts; links' hrefs,
    images' src and alt, inputs' names and values; each data-* attribute's values; the first
    JSON-LD script's keys and their keys. Ids and classes that need escaping in CSS are skipped."""
    soup = _page(html).soup
    tags = soup.find_all(True)
    exprs: list[GExpr] = [GExpr("text", t) for t in ("title", "h1", "h2", "h3") if soup.select_one(t)]
    for tag in tags:
        ident = tag.get("id")
        if isinstance(ident, str) and _CSS_NAME.fullmatch(ident):
            exprs.append(GExpr("text", f"#{ident}"))
            exprs += [GExpr("attr", f"#{ident}", a) for a in tag.attrs if a not in ("id", "class")]
    classes = dict.fromkeys(c for t in tags for c in t.get("class") or () if _CSS_NAME.fullmatch(c))
    for c in classes:
        exprs += [GExpr("texts", f".{c}"), GExpr("count", f".{c}")]
    names = collections.Counter(t.name for t in tags if t.name not in ("html", "head", "body", "meta", "script", "style", "link"))
    for name in (n for n, count in names.items() if count > 1 and _CSS_NAME.fullmatch(n)):
        exprs += [GExpr("count", name), GExpr("texts", name)]
    for css, attr in (("a[href]", "href"), ("img[src]", "src"), ("img[alt]", "alt"), ("input[name]", "name"),
                      ("input[value]", "value")):  # fmt: skip
        if soup.select_one(css):
            exprs.append(GExpr("attrs", css, attr))
    data = dict.fromkeys(a for t in tags for a in t.attrs if a.startswith("data-") and _CSS_NAME.fullmatch(a))
    exprs += [GExpr("attrs", f"[{a}]", a) for a in data]
    exprs += [GExpr("json", JSON_LD, keys=k) for k in _json_ld_keys(soup)]
    menu = dict.fromkeys(f"print({e.source()})" for e in exprs)
    return tuple(("import json\n" + p) if "json.loads" in p else p for p in menu)[:limit]


_CSS_NAME = re.compile(r"-?[A-Za-z_][A-Za-z0-9_-]*")  # an identifier CSS reads without escapes


def _json_ld_keys(soup) -> list[tuple[str | int, ...]]:
    """Subscript paths into the first JSON-LD script: its keys, then its values' keys (a list's
    first item)."""
    script = soup.select_one(JSON_LD)
    try:
        doc = json.loads(script.string) if script is not None and script.string is not None else None
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    paths: list[tuple[str | int, ...]] = []
    for k, v in doc.items():
        paths.append((k,))
        if isinstance(v, dict):
            paths += [(k, k2) for k2 in v]
        elif isinstance(v, list) and v:
            paths.append((k, 0))
    return paths
