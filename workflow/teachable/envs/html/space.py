"""The HTML family's actions as generic code sees them (``envs.action_space``), with or without a state.

The prompt shows the tool templates (``TEMPLATES``, the observation's ``valid_actions``), not a
menu: an action is any canonical line (``actions``). Without a state (``HTMLActionSpace``, what
``registry.action_space`` returns) an action's key is its canonical line and its mentions are
the family's vocabulary (``mentioned_actions``: code, the tools' words, the abstention's
reasons, each mapped to its template); it has no candidates. At a state
(``HTMLActionSpace.at(env)`` -> ``StateActionSpace``, what the env's current state decides):

- ``key``: the effect. A program's: its tool result as the observation shows it
  (``render_result``); an answer's: its graded form (``grading.normalise`` of the answer and
  whether it repeats a planted secret); an abstention's: whether it is accepted and whether it
  leaks;
- ``candidate_actions``: a finite menu in a fixed order: G's programs on the page
  (``grammar.menu_programs``), the task's reference programs, an answer of each value shown so far
  (each printed line, and a printed list and its items), the oracle's answer, and one abstention
  per reason of ``LIMIT_REASONS`` (quoting the task's evidence, or the page's first text); the
  expert's action is always one of them, as the teacher rules require;
- ``mentions``: the vocabulary, plus the page's identifiers (``page_identifiers``: tag, class,
  id and attribute names, attribute values, texts, JSON-LD keys and values) and each candidate's
  own arguments (an answer's values, an abstention's reason and evidence): a diagnosis that names
  any of them names the action(s) they belong to (a page identifier: every program, which reads
  the page);
- ``audit_label``: the action's kind (a program's G forms, ``answer:ok``, ``answer:limit:REASON``),
  what the hint audit predicts where the lines themselves are all different."""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..action_space import ActionSpace
from ..base import INVALID_ACTION
from . import actions
from .grading import grade, normalise
from .tasks import LIMIT_REASONS, Task

if TYPE_CHECKING:
    from .env import HTMLExtractEnv

RUN_TEMPLATE = '{"tool": "run_python", "code": CODE}'
ANSWER_TEMPLATE = '{"tool": "answer", "status": "ok", "answer": ANSWER}'
LIMIT_TEMPLATE = '{"tool": "answer", "status": "limit", "reason": REASON, "evidence": EVIDENCE}'
TEMPLATES = (RUN_TEMPLATE, ANSWER_TEMPLATE, LIMIT_TEMPLATE)  # not JSON: no template is an action
RESULT_CHARS = 1000  # a tool result's stdout shown up to this many characters
MENU_PROGRAMS = 64  # G programs of the page in the candidates
VALUES_PER_RESULT = 32  # answers of one shown result in the candidates

# code in prose: a call, a dotted or snake_case name, markup or JSON punctuation
_CODE = re.compile(r"[A-Za-z_][\w.]*\(|\b\w+\.\w+|\b[A-Za-z]+_\w+|[{}\[\]<>=#`\"$@\\]")
TOOL_WORDS = ("run_python", "python", "make_soup", "beautifulsoup", "bs4", "soup", "select_one", "get_text", "css",
              "selector", "xpath", "regex", "json", "html", "json-ld", "tag", "tags", "attribute", "attributes")  # fmt: skip
_REASON_WORDS = {r: (r, r.replace("_", " "), r.replace("_", " ").replace(" by ", " ").replace(" on ", " ")) for r in LIMIT_REASONS}


def _pattern(phrases) -> re.Pattern | None:
    """One case-insensitive regex of ``phrases`` as whole words (hyphens join words), longest first."""
    alts = sorted({" ".join(p.split()).casefold() for p in phrases if len(" ".join(p.split())) >= 2}, key=len,
                  reverse=True)  # fmt: skip
    if not alts:
        return None
    return re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(a).replace(r"\ ", r"\s+") for a in alts) + r")(?![\w-])")


_TOOLS = _pattern(TOOL_WORDS)
_REASONS = {r: _pattern(words) for r, words in _REASON_WORDS.items()}


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def mentioned_actions(text: str) -> dict[str, str]:
    """The templates ``text`` names, with the phrase found: ``RUN_TEMPLATE`` for code or a tool
    word (``TOOL_WORDS``), ``LIMIT_TEMPLATE`` for an abstention's reason (``login_required``,
    "login required", ...). A function of the text alone (``TextEnv.mentioned_actions``)."""
    if not isinstance(text, str):
        raise TypeError(f"mentioned_actions needs a string, got {type(text).__name__}: {text!r}")
    found: dict[str, str] = {}
    norm = _norm(text)
    code = _CODE.search(text) or _TOOLS.search(norm)
    if code:
        found[RUN_TEMPLATE] = code.group(0)
    for pat in _REASONS.values():
        if m := pat.search(norm):
            found[LIMIT_TEMPLATE] = m.group(0)
            break
    return found


# ----------------------------------------------------------------------------- the page's identifiers
def _json_words(obj) -> list[str]:
    if isinstance(obj, dict):
        return [w for k, v in obj.items() for w in (str(k), *_json_words(v))]
    if isinstance(obj, list):
        return [w for v in obj for w in _json_words(v)]
    return [] if obj is None else [str(obj)]


@functools.lru_cache(maxsize=64)
def page_identifiers(html: str) -> tuple[str, ...]:
    """Every identifier and value of the page a diagnosis must not name: its tag names, attribute
    names, class names, ids and other attribute values, its texts (comments included, whitespace
    collapsed) and its JSON-LD keys and values; at least two characters each, in page order."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    out: list[str] = []
    for tag in soup.find_all(True):
        out.append(tag.name)
        for name, value in tag.attrs.items():
            out.append(name)
            out += value if isinstance(value, list) else [value]
    for s in soup.find_all(string=True):
        text = " ".join(str(s).split())
        if s.parent is not None and s.parent.name == "script" and s.parent.get("type") == "application/ld+json":
            try:
                out += _json_words(json.loads(str(s)))
            except ValueError:
                pass
        else:
            out.append(text)
    return tuple(dict.fromkeys(w for w in (" ".join(str(x).split()) for x in out) if len(w) >= 2))


@functools.lru_cache(maxsize=64)
def _page_pattern(html: str) -> re.Pattern | None:
    return _pattern(page_identifiers(html))


def first_text(html: str) -> str:
    """The page's first text of at least two characters (the abstention's evidence on a page
    that gives none)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    body = soup.body or soup
    for s in body.find_all(string=True):
        if s.parent is not None and s.parent.name in ("script", "style"):
            continue
        text = " ".join(str(s).split())
        if len(text) >= 2:
            return text
    return "(empty page)"


# ----------------------------------------------------------------------------- results and values
def render_result(result: dict, cap: int = RESULT_CHARS) -> str:
    """A tool result as the observation shows it: stdout (up to ``cap`` characters) and the
    error line; never the seconds, which differ between a sandbox and the interpreter in process."""
    out = result["stdout"].rstrip("\n")
    if not out:
        shown = "printed nothing"
    elif len(out) <= cap:
        shown = "printed:\n" + out
    else:
        shown = f"printed:\n{out[:cap]}... [{len(out) - cap} more characters]"
    return shown + (f"\nerror: {result['error']}" if result["error"] else "")


def shown_values(stdout: str) -> list:
    """The values a printed output shows, as answers: each non-blank line (a list literal: the
    list, then its items), at most ``VALUES_PER_RESULT``."""
    values: list = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            lit = ast.literal_eval(line)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            lit = None
        if isinstance(lit, list) and lit:
            values.append(lit)
            values += [v for v in lit if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
        else:
            values.append(line)
    return [v for v in values if not (isinstance(v, str) and not v.strip())][:VALUES_PER_RESULT]


def _kind(action: str) -> dict | None:
    try:
        return actions.decode_action(action)
    except (ValueError, TypeError):
        return None


def audit_label(action: str) -> str:
    """What the hint audit predicts of ``action``: a program's G forms (``run_python:text``,
    ``run_python:texts+count``; ``run_python:other`` outside G), ``answer:ok``,
    ``answer:limit:REASON``; anything else is itself."""
    from .grammar import parse_g

    obj = _kind(action)
    if obj is None:
        return action
    if obj["tool"] == "run_python":
        prog = parse_g(obj["code"])
        return "run_python:" + ("+".join(dict.fromkeys(e.form for e in prog.exprs)) if prog else "other")
    return "answer:ok" if obj["status"] == "ok" else f"answer:limit:{obj['reason']}"


# ----------------------------------------------------------------------------- the spaces
class HTMLActionSpace(ActionSpace):
    """The family's actions without a state (module docstring); ``at(env)`` binds a state."""

    needs_state = True

    def is_valid(self, action: str) -> bool:
        return actions.is_valid(action)

    def key(self, action: str) -> str:
        return action

    def mentions(self, text: str) -> dict[str, str]:
        return mentioned_actions(text)

    def candidate_actions(self, menu: Sequence[str] | None = None) -> tuple[str, ...]:
        if menu is not None and menu and all(actions.is_valid(a) for a in menu):
            return tuple(menu)  # a menu of actions already (a stored candidate list)
        raise ValueError("the HTML family's candidate actions are a state's (its page and the results shown): "
                         "bind the space at the state, registry.action_space(env_id).at(env); "
                         f"got the menu {list(menu) if menu is not None else None}")  # fmt: skip

    def audit_label(self, action: str) -> str:
        return audit_label(action)

    def allows(self, action: str, candidates: Sequence[str]) -> bool:
        """Any valid action: a state's candidates are a menu of its actions, not all of them."""
        return isinstance(action, str) and self.is_valid(action)

    def at(self, env: HTMLExtractEnv) -> StateActionSpace:
        return env.action_space()

    def __repr__(self) -> str:
        return "HTMLActionSpace()"


class StateActionSpace(HTMLActionSpace):
    """The actions at one state: ``task``, the results ``shown`` so far and ``run`` (code -> the
    tool result on the task's page, as the env runs it). Built by ``HTMLExtractEnv.action_space``;
    it keeps the state it was built at."""

    def __init__(self, task: Task, shown: Sequence[dict], run: Callable[[str], dict]):
        self.task = task
        self.shown = tuple(shown)
        self._run = run

    def key(self, action: str) -> str:
        obj = _kind(action)
        if obj is None:
            return action if action == INVALID_ACTION else f"unreadable {action}"
        if obj["tool"] == "run_python":
            return "result " + render_result(self._run(obj["code"]))
        payload = {k: v for k, v in obj.items() if k != "tool"}
        g = grade(self.task, payload, 0)
        if obj["status"] == "limit":
            return "limit " + json.dumps([g.correct, g.secret_leaked])
        return "answer " + json.dumps([normalise(self.task, obj["answer"]), g.secret_leaked], sort_keys=True,
                                      ensure_ascii=False)  # fmt: skip

    @functools.cached_property
    def _mention_patterns(self) -> list[tuple[str, re.Pattern]]:
        """(action, pattern of its own arguments) per candidate answer and abstention."""
        out = []
        for a in self.candidate_actions():
            obj = _kind(a)
            if obj["tool"] == "answer":
                words = ([obj["reason"], *_REASON_WORDS.get(obj["reason"], ()), obj["evidence"]]
                         if obj["status"] == "limit" else _json_words(obj["answer"]))  # fmt: skip
                if (pat := _pattern(words)) is not None:
                    out.append((a, pat))
        return out

    def mentions(self, text: str) -> dict[str, str]:
        found: dict[str, str] = {}
        norm = _norm(text)
        page = _page_pattern(self.task.html)
        code = mentioned_actions(text).get(RUN_TEMPLATE)
        hit = code or (m.group(0) if page is not None and (m := page.search(norm)) else None)
        if hit:
            found.update({a: hit for a in self.candidate_actions() if a.startswith('{"tool": "run_python"')})
        for a, pat in self._mention_patterns:
            if m := pat.search(norm):
                found[a] = m.group(0)
        limit = mentioned_actions(text).get(LIMIT_TEMPLATE)
        if limit:
            found.update({a: limit for a in self.candidate_actions() if '"status": "limit"' in a})
        return found

    def candidate_actions(self, menu: Sequence[str] | None = None) -> tuple[str, ...]:
        if menu is not None and tuple(menu) != TEMPLATES:
            raise ValueError(f"an HTML state offers the tool templates {list(TEMPLATES)}, got the menu {list(menu)}")
        return self._candidates

    @functools.cached_property
    def _candidates(self) -> tuple[str, ...]:
        from .grammar import menu_programs

        task = self.task
        lines = [actions.run_action(c) for c in (*menu_programs(task.html, MENU_PROGRAMS), *task.reference_calls)]
        for result in self.shown:
            for v in shown_values(result["stdout"]):
                lines.append(actions.answer_action({"status": "ok", "answer": v}))
        lines.append(actions.answer_action(task.oracle_answer))
        evidence = task.limitation.evidence[0] if task.limitation is not None else first_text(task.html)
        lines += [actions.answer_action({"status": "limit", "reason": r, "evidence": evidence}) for r in LIMIT_REASONS]
        return tuple(dict.fromkeys(lines))

    def at(self, env: HTMLExtractEnv) -> StateActionSpace:
        return env.action_space()

    def __repr__(self) -> str:
        return f"StateActionSpace({self.task.env_id} seed {self.task.seed}, {len(self.shown)} results shown)"
