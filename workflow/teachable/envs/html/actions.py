"""The HTML family's actions: one canonical JSON line each, and the parser that reads them from text.

    {"tool": "run_python", "code": CODE}
    {"tool": "answer", "status": "ok", "answer": ANSWER}
    {"tool": "answer", "status": "limit", "reason": REASON, "evidence": EVIDENCE}

Canonical (``canonical_action``): these keys in this order, ``json.dumps`` with ``", "`` and
``": "`` separators and ``ensure_ascii=False``; CODE through ``grammar.canonical_code`` (the AST
round trip) when it parses, else kept as written (running it answers the SyntaxError: the
agent's failure is a result); an object ANSWER's keys sorted, at every depth. Every argument is
present: CODE, REASON and EVIDENCE non-blank strings, ANSWER any JSON value but null or a blank
string (no NaN, no lone surrogate).

``parse_action(text, "strict")`` reads exactly one JSON object equivalent to a valid action
(whitespace, key order, non-canonical code); ``"lenient"`` also reads, in this order: the one
action among the JSON objects embedded in the text (prose, a fenced block; an object with
``"status"`` and no ``"tool"`` is an answer; unknown keys are dropped), the one fenced python
block (-> run_python), and a truncated action (a ``{"tool"`` or ``{"status"`` whose string,
arrays and objects are closed for it: ``repaired=True``). Two different actions, or nothing
readable, give ``action=None`` (the caller steps INVALID_ACTION), never an action with empty
arguments."""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass

from .grammar import canonical_code

TOOLS = {"run_python": ("code",), "answer": ("status",)}
STATUS_KEYS = {"ok": ("answer",), "limit": ("reason", "evidence")}  # an answer's arguments, by status
SEPARATORS = (", ", ": ")
FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
PYTHON_FENCES = ("python", "py", "python3")
ACTION_START = re.compile(r'\{\s*"(?:tool|status)"\s*:')


@dataclass(frozen=True)
class ParseResult:
    """What ``parse_action`` read: the canonical action (None: unreadable) and whether truncated
    JSON had to be closed to read it (the caller counts repairs)."""

    action: str | None
    repaired: bool = False


# ----------------------------------------------------------------------------- the format
def canonical_action(obj: dict) -> str:
    """The canonical line of the action ``obj``; ValueError naming the bad key or value."""
    return _dump(_normalise(obj, drop_unknown=False))


def run_action(code: str) -> str:
    """The canonical line running ``code``."""
    return canonical_action({"tool": "run_python", "code": code})


def answer_action(payload: dict) -> str:
    """The canonical line submitting ``payload`` ({"status": "ok", "answer": ...} or
    {"status": "limit", "reason": ..., "evidence": ...}: a task's ``oracle_answer``)."""
    return canonical_action({"tool": "answer", **payload})


def decode_action(line: str) -> dict:
    """The action a canonical line holds; ValueError when the line is not one."""
    obj = _loads(line)
    canonical = canonical_action(obj)
    if canonical != line:
        raise ValueError(f"action is not in canonical form: {line!r} (canonical: {canonical!r})")
    return obj


def is_valid(action: str) -> bool:
    """Whether ``action`` is a canonical action line."""
    try:
        decode_action(action)
    except (ValueError, TypeError):
        return False
    return True


def _loads(text: str) -> object:
    """JSON, refusing duplicate keys (``{"tool": "answer", "tool": "run_python"}``) and NaN."""
    return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)


def _unique_pairs(items: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in items]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key in JSON object: {sorted(k for k in keys if keys.count(k) > 1)[0]!r}")
    return dict(items)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _dump(action: dict) -> str:
    line = json.dumps(action, ensure_ascii=False, separators=SEPARATORS, allow_nan=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"action holds a lone surrogate: {line!r}") from None
    return line


def _normalise(obj: object, drop_unknown: bool) -> dict:
    """The action ``obj`` with its keys in canonical order and canonical values."""
    if not isinstance(obj, dict):
        raise ValueError(f"an action is a JSON object, got {type(obj).__name__}")
    tool = obj.get("tool")
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}: expected one of {sorted(TOOLS)}")
    if tool == "run_python":
        keys = ("tool", "code")
    else:
        status = obj.get("status")
        if status not in STATUS_KEYS:
            raise ValueError(f"unknown answer status {status!r}: expected one of {sorted(STATUS_KEYS)}")
        keys = ("tool", "status", *STATUS_KEYS[status])
    extra = sorted(set(obj) - set(keys))
    if extra and not drop_unknown:
        raise ValueError(f"{tool} action has unknown key {extra[0]!r}: expected {list(keys)}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"{tool} action lacks {missing[0]!r}")
    action = {k: obj[k] for k in keys}
    for k in ("code", "reason", "evidence"):
        if k in action and (not isinstance(action[k], str) or not action[k].strip()):
            raise ValueError(f"{tool} action's {k!r} must be a non-blank string, got {action[k]!r}")
    if "code" in action:
        try:
            action["code"] = canonical_code(action["code"])
        except ValueError:
            pass  # kept as written: running it reports the SyntaxError
    if "answer" in action:
        answer = action["answer"]
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            raise ValueError(f"answer action's 'answer' must not be null or blank, got {answer!r}")
        action["answer"] = json.loads(json.dumps(answer, sort_keys=True, allow_nan=False))  # keys sorted
    return action


# ----------------------------------------------------------------------------- the parser
def parse_action(text: str, mode: str = "strict") -> ParseResult:
    """The action ``text`` holds (module docstring): ``mode`` "strict" or "lenient"."""
    if mode not in ("strict", "lenient"):
        raise ValueError(f"parse_action mode must be 'strict' or 'lenient', got {mode!r}")
    if not isinstance(text, str):
        return ParseResult(None)
    try:
        return ParseResult(canonical_action(_loads(text.strip())))
    except (ValueError, TypeError):
        if mode == "strict":
            return ParseResult(None)
    fences = [(lang.lower(), body) for lang, body in FENCE.findall(text)]
    prose = FENCE.sub(lambda m: "" if m.group(1).lower() in PYTHON_FENCES else m.group(0), text)  # code is not JSON
    found = {_lenient(obj) for obj in _objects(prose)} - {None}
    if found:
        return ParseResult(found.pop() if len(found) == 1 else None)
    codes = {textwrap.dedent(body) for lang, body in fences if lang in PYTHON_FENCES and body.strip()}
    if codes:
        return ParseResult(_lenient({"tool": "run_python", "code": codes.pop()}) if len(codes) == 1 else None)
    start = ACTION_START.search(prose)
    if start is None:
        return ParseResult(None)
    tail = prose[start.start():]
    closed = _close_truncated(tail[: tail.index("```")] if "```" in tail else tail)
    try:
        action = _lenient(_loads(closed)) if closed is not None else None
    except ValueError:
        action = None
    return ParseResult(action, repaired=action is not None)


def _lenient(obj: object) -> str | None:
    """The canonical action of an embedded object, read leniently (a bare status is an answer,
    unknown keys dropped); None when it is not one."""
    if isinstance(obj, dict) and "tool" not in obj and "status" in obj:
        obj = {"tool": "answer", **obj}
    try:
        return _dump(_normalise(obj, drop_unknown=True))
    except (ValueError, TypeError):
        return None


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_constant=_no_constant)


def _objects(text: str) -> list[object]:
    """The complete JSON objects in ``text``, outermost only, left to right."""
    out, i = [], text.find("{")
    while i >= 0:
        try:
            obj, end = _DECODER.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        out.append(obj)
        i = text.find("{", end)
    return out


def _close_truncated(fragment: str) -> str | None:
    """``fragment`` (a JSON object cut short) closed: an open string (a dangling escape
    dropped), a trailing comma dropped, open arrays and objects closed. None when it cannot be
    completed that way (it ends after a key's colon or inside a literal)."""
    stack, in_string, escape = [], False, False
    for ch in fragment:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return None
            if not stack:
                return None  # complete: nothing to repair (it did not parse as it was)
    text = fragment
    if in_string:
        text = re.sub(r"\\(u[0-9A-Fa-f]{0,3})?$", "", text) + '"'
    text = text.rstrip()
    if text.endswith(","):
        text = text[:-1]
    if not stack or text.endswith((":", "{", "[")):
        return None
    return text + "".join(reversed(stack))
