"""A teacher behind any OpenAI-compatible chat completions API.

Two kinds of retry, kept apart:
- transport (429, 5xx, timeouts, dropped connections): the openai client's own retry loop with
  exponential backoff (``max_retries``); when it gives up, the advice is a recorded failure.
- semantic (the answer is not JSON, its action is not a valid action, its diagnosis breaks the
  rules, e.g. names or paraphrases an action by the vocabulary of ``req.env_id``'s family): the
  conversation goes on with a corrective message that says what was found, at most
  ``max_invalid_retries`` times; then the advice is a recorded failure. An invalid action is
  never replaced.

Every completion is cached on disk under sha256(model, messages, temperature), so a re-run
replays the same conversations from disk and makes no request.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import openai

from teachable import openai_api
from teachable.envs import registry
from teachable.envs.base import Advice
from teachable.openai_api import (  # noqa: F401 - re-exported: the teacher's API before the split
    CONFIG_ERRORS,
    LOCAL_DUMMY_KEY,
    LOCAL_HOSTS,
    MissingAPIKeyError,
    ResponseCache,
    TransportFailure,
    is_local,
)

from .base import AdviceRequest, Allows, Mentions, Teacher, advice_problem, failure

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are a teacher for an agent (the student) acting in a text game. You see the mission, "
    "the current observation, the student's recent actions, the valid actions and the action "
    "the student took. Answer with a single JSON object and nothing else, with exactly these "
    'keys: {"suggested_action": ..., "diagnosis": ..., "error_type": ...}.\n'
    "- suggested_action: the best action now, copied verbatim from the list of valid actions.\n"
    "- diagnosis: one or two sentences (at most 400 characters) explaining what the student is "
    "missing about the situation. It is a hint, so it must not contain the name of the suggested "
    "action or of any other valid action, nor a synonym, inflection or paraphrase of one (in a "
    "grid world: no left, right, forward, go ahead, pick up, grab, take, drop, put down, "
    "release, open, unlock, toggle or advance). Describe the state instead: directions as clock "
    "positions (12 o'clock = straight ahead, 3 o'clock = your right-hand side, 6 o'clock = "
    "behind you), distances in cells, doors as locked, shut or passable.\n"
    "- error_type: a short snake_case category of the student's mistake (for example "
    "wrong_direction, ignores_object, premature_action, no_error)."
)


@dataclass(frozen=True)
class OpenAITeacherConfig(openai_api.EndpointConfig):
    """The ``teacher.openai`` config section: the endpoint's keys and the teacher's own."""

    SECTION = "teacher.openai"
    temperature: float
    max_invalid_retries: int  # corrective follow-ups after an invalid answer
    json_mode: bool  # send response_format=json_object (dropped if the server refuses)


def resolve_api_key(cfg: OpenAITeacherConfig) -> str:
    return openai_api.resolve_api_key(cfg.api_key_env, cfg.base_url, who="the OpenAI teacher",
                                      section="teacher.openai", instead="teacher.backend: oracle")


# ---------------------------------------------------------------- prompt and answer parsing


def user_message(req: AdviceRequest) -> str:
    from teachable.policies.prompt import state_lines

    student = req.student_action if req.student_action else "(no valid action)"
    state = state_lines(req.instruction, req.observation, req.history, req.valid_actions, json_actions=True)
    return "\n".join([*state, f"Student's action: {student}", "Answer with the JSON object."])


def build_messages(req: AdviceRequest) -> list[dict[str, str]]:
    """The teacher's rules, then the game as its family tells the student (``SYSTEM_PROMPT``)."""
    from teachable.envs.registry import system_prompt

    return [
        {"role": "system", "content": f"{SYSTEM_PROMPT}\n\nThe student was told: {system_prompt(req.env_id)}"},
        {"role": "user", "content": user_message(req)},
    ]


def corrective_message(reason: str, valid_actions: Sequence[str]) -> str:
    """The follow-up after a rejected answer: the reason (with the phrase found, when the
    diagnosis named or paraphrased an action) and the rules again."""
    return (
        f"Your answer was rejected: {reason}. Answer again with only the JSON object "
        '{"suggested_action": ..., "diagnosis": ..., "error_type": ...}. suggested_action must '
        f"be exactly one of {json.dumps(list(valid_actions))}. The diagnosis (one or two "
        "sentences) must not contain any action word or a synonym of one: none of those actions, "
        "no alias, inflection or paraphrase of them; give directions as clock positions instead."
    )


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_json(text: str) -> dict[str, Any] | None:
    """The JSON object in a model's answer: bare, fenced (```json ... ```), or the outermost
    {...} span in surrounding prose. ``None`` when there is none."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def snake_case(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_") or "unspecified"


def parse_answer(
    content: str, valid_actions: Sequence[str], mentions: Mentions, allows: Allows | None = None
) -> tuple[Advice | None, str | None]:
    """(advice, None) for a valid answer, else (None, why it was rejected); ``mentions`` is the
    env family's action vocabulary check, ``allows`` the state's check of the action
    (``advice_problem``)."""
    obj = extract_json(content)
    if obj is None:
        return None, "the answer is not a valid JSON object"
    action, diagnosis = obj.get("suggested_action"), obj.get("diagnosis")
    if not isinstance(action, str):
        return None, "the JSON has no string 'suggested_action'"
    if not isinstance(diagnosis, str):
        return None, "the JSON has no string 'diagnosis'"
    error_type = obj.get("error_type")
    advice = Advice(
        suggested_action=action.strip(),
        diagnosis=diagnosis.strip(),
        error_type=snake_case(error_type if isinstance(error_type, str) else ""),
    )
    problem = advice_problem(advice, valid_actions, mentions, allows)
    return (None, problem[1]) if problem else (advice, None)


def answer_problem_kind(content: str, valid_actions: Sequence[str], mentions: Mentions,
                        allows: Allows | None = None) -> str:  # fmt: skip
    """The ``FAILURE_KINDS`` kind of a rejected answer (``parse_answer``'s reason, by kind)."""
    obj = extract_json(content)
    if obj is None:
        return "malformed_json"
    if not isinstance(obj.get("suggested_action"), str) or not isinstance(obj.get("diagnosis"), str):
        return "wrong_schema"
    advice = Advice(suggested_action=obj["suggested_action"].strip(), diagnosis=obj["diagnosis"].strip(),
                    error_type="")  # fmt: skip
    problem = advice_problem(advice, valid_actions, mentions, allows)
    if problem is None:
        raise ValueError("answer_problem_kind of an answer that is valid")
    return problem[0]


# ---------------------------------------------------------------------------- disk cache


def cache_key(model: str, messages: list[dict[str, str]], temperature: float) -> str:
    return openai_api.cache_key(model=model, messages=messages, temperature=temperature)


# ------------------------------------------------------------------------------- teacher


def _empty_usage() -> dict[str, Any]:
    return {
        "requests": 0,
        "cache_hits": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "failures": 0,
    }


class OpenAITeacher(Teacher):
    name = "openai"

    def __init__(self, cfg: OpenAITeacherConfig | dict[str, Any] | None = None, env_max_steps: int | None = None,
                 env_options: dict[str, Any] | None = None) -> None:  # fmt: skip
        """``env_max_steps`` / ``env_options``: the run's env settings, to bind the action space at
        a request's state where the family's is a state's (``registry.StateSpaces``)."""
        if not isinstance(cfg, OpenAITeacherConfig):
            cfg = OpenAITeacherConfig.from_dict(cfg)
        self.cfg = cfg
        self.client = openai_api.make_client(cfg.base_url, resolve_api_key(cfg), cfg.timeout_s, cfg.max_retries)
        self.cache = ResponseCache(cfg.cache_dir) if cfg.cache_dir else None
        self.usage = _empty_usage()
        self._lock = threading.Lock()
        self._json_mode = cfg.json_mode
        self.spaces = registry.StateSpaces(env_max_steps, env_options)
        self._spaces_lock = threading.Lock()

    def _space(self, req: AdviceRequest):
        """The action space at the request's state (its candidates and vocabulary; an unknown env
        id is an error before any request is made)."""
        with self._spaces_lock:
            return self.spaces.at(req.env_id, req.seed, req.actions, req.instruction, req.observation)

    # -- public API

    def advise(self, req: AdviceRequest) -> Advice:
        meta: dict[str, Any] = {"backend": self.name, "model": self.cfg.model, "attempts": 0}
        meta.update({k: v for k, v in _empty_usage().items() if k != "failures"})
        meta.update({"transport_retries": 0, "rejections": []})
        space = self._space(req)  # the request's menu as it is, unless the candidates are the state's
        cands = space.candidate_actions(req.valid_actions) if space.needs_state else req.valid_actions
        mentions, allows = space.mentions, space.allows
        messages = build_messages(req)
        reason = ""
        for _ in range(1 + max(0, self.cfg.max_invalid_retries)):
            meta["attempts"] += 1
            try:
                content = self._complete(messages, meta)
            except TransportFailure as exc:
                return self._failed(f"transport: {exc}", meta, exc.kind)
            advice, reason = parse_answer(content, cands, mentions, allows)
            if advice is not None:
                meta["cache_hit"] = meta["requests"] == 0
                return Advice(
                    suggested_action=advice.suggested_action,
                    diagnosis=advice.diagnosis,
                    error_type=advice.error_type,
                    meta=meta,
                )
            meta["rejections"].append({"reason": reason, "answer": content[:1000]})
            messages = messages + [
                {"role": "assistant", "content": content},
                {"role": "user", "content": corrective_message(reason, cands)},
            ]
        return self._failed(f"invalid answer after {meta['attempts']} attempt(s): {reason}", meta,
                            answer_problem_kind(content, cands, mentions, allows))

    def advise_many(self, reqs: Sequence[AdviceRequest]) -> list[Advice]:
        workers = max(1, int(self.cfg.concurrency))
        if workers == 1 or len(reqs) <= 1:
            return [self.advise(r) for r in reqs]
        with ThreadPoolExecutor(max_workers=min(workers, len(reqs))) as pool:
            return list(pool.map(self.advise, reqs))

    def close(self) -> None:
        self.client.close()
        self.spaces.close()

    # -- one completion, from the cache or the API

    def _complete(self, messages: list[dict[str, str]], meta: dict[str, Any]) -> str:
        key = cache_key(self.cfg.model, messages, self.cfg.temperature)
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            self._count(meta, cache_hits=1)
            return cached["content"]
        content, usage, retries = self._request(messages)
        cost = self.cfg.cost_usd(usage["prompt_tokens"], usage["completion_tokens"])
        meta["transport_retries"] += retries
        self._count(meta, requests=1, cost_usd=cost, **usage)
        if self.cache:
            request = {"model": self.cfg.model, "temperature": self.cfg.temperature}
            self.cache.put(
                key,
                {
                    "key": key,
                    "request": {**request, "messages": messages},
                    "content": content,
                    "usage": usage,
                    "created_unix": time.time(),
                },
            )
        return content

    def _request(self, messages: list[dict[str, str]]) -> tuple[str, dict[str, int], int]:
        """(content, token usage, transport retries taken). Transport retries and backoff are
        the openai client's; what it gives up on becomes a TransportFailure."""
        kwargs: dict[str, Any] = {
            "model": self.cfg.model,
            "messages": messages,
            "temperature": self.cfg.temperature,
        }
        if self._json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        try:
            done = openai_api.complete(self.client, **kwargs)
        except openai.BadRequestError as exc:
            if not (self._json_mode and _about_json_mode(exc)):
                raise TransportFailure(openai_api.describe(exc), openai_api.transport_kind(exc)) from exc
            log.warning("server refused response_format=json_object (%s); sending without it", exc)
            self._json_mode = False
            return self._request(messages)
        tokens = {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens}
        return done.content, tokens, done.retries

    # -- bookkeeping

    def _count(self, meta: dict[str, Any], **delta: float) -> None:
        with self._lock:
            for k, v in delta.items():
                meta[k] += v
                self.usage[k] += v

    def _failed(self, reason: str, meta: dict[str, Any], kind: str) -> Advice:
        with self._lock:
            self.usage["failures"] += 1
        meta["cache_hit"] = False
        return failure(reason, meta, kind)

    def usage_summary(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.usage, model=self.cfg.model, config=asdict(self.cfg))


def _about_json_mode(exc: openai.BadRequestError) -> bool:
    """Whether a 400 looks like a server refusing response_format (not, say, a long prompt)."""
    text = str(exc).lower()
    return "response_format" in text or "json" in text
