"""A local OpenAI-compatible chat completions server for tests (the network boundary).

It runs stdlib ``http.server`` in a thread on 127.0.0.1 (random port), answers
``POST /v1/chat/completions`` from a script (a queue of replies, one per HTTP request), and records
every request it got. Usage:

    with FakeOpenAIServer() as server:
        server.script(error(429), answer("go forward", "The key lies straight ahead."))
        ... OpenAITeacher({"base_url": server.base_url, ...}) ...
        assert len(server.requests) == 2

Replies: ``error(status)``, ``content(text)`` (raw assistant text: invalid JSON, fenced JSON),
``answer(action, diagnosis, error_type)`` (a JSON answer), ``slow(seconds, reply)`` (sleeps
first: a timeout), ``dropped()`` (the connection closes unanswered), or a callable ``body -> Reply`` that answers from the request it got. With the script empty the server answers 500 with ``x-should-retry: false``
so a test that asks for more than it scripted fails visibly, unless it was given a ``responder``
(a callable ``body -> Reply`` that answers every unscripted request), e.g. ``StudentResponder``:
the embedded student's own generations, so the server is a real model behind a real API (with
``logprobs=True`` it also returns the answer's token logprobs when a request asks for them).
A reply's ``logprobs`` (OpenAI's ``logprobs.content`` entries) are sent as they are.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message text (status 200)
    prompt_tokens: int | None = None  # None: a rough count of the request
    completion_tokens: int | None = None  # None: a rough count of the content
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "scripted error"  # the error message (status != 200)
    drop: bool = False  # close the connection without answering
    logprobs: list[dict[str, Any]] | None = None  # choices[0].logprobs.content (None: no logprobs sent)


def error(status: int, retry_after_ms: int | None = 1, message: str = "scripted error",
          retry_after_s: int | None = None) -> Reply:  # fmt: skip
    """An HTTP error. ``retry-after-ms`` (honoured by the openai client) keeps backoff tiny;
    ``retry_after_s`` sends the standard ``Retry-After`` header (seconds) instead."""
    headers = {} if retry_after_ms is None else {"retry-after-ms": str(retry_after_ms)}
    if retry_after_s is not None:
        headers = {"retry-after": str(retry_after_s)}
    return Reply(status=status, headers=headers, message=message)


def dropped() -> Reply:
    """The server reads the request, then closes the connection without an answer."""
    return Reply(drop=True)


def content(text: str, prompt_tokens: int | None = None, completion_tokens: int | None = None) -> Reply:
    return Reply(content=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def answer(
    action: str,
    diagnosis: str,
    error_type: str = "wrong_direction",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> Reply:
    text = json.dumps(
        {"suggested_action": action, "diagnosis": diagnosis, "error_type": error_type}
    )
    return content(text, prompt_tokens, completion_tokens)


def slow(seconds: float, reply: Reply) -> Reply:
    reply.delay_s = seconds
    return reply


def _rough_tokens(text: str) -> int:
    return max(1, len(text) // 4)


Scripted = Reply | Callable[[dict[str, Any]], Reply]  # a reply, or one computed from the body


class StudentResponder:
    """Answers a student's chat request with the action a scoring student policy samples there:
    the state is read back from the messages (``teachable.policies.prompt.user_message``), checked
    by rendering it again (the scored prompt IS the prompt sent), scored by ``policy``, and one
    action is drawn from softmax(logprobs / temperature) (argmax at 0) with a generator seeded by
    the request's ``seed`` and its messages. ``wrap`` turns the action into the answer text.

    With ``logprobs`` (an ``HFPolicy``), a request that asks for them (``logprobs: true``,
    ``top_logprobs: N``) also gets the answer's token logprobs as OpenAI sends them, computed by
    the policy's model: the answer's tokens under its tokenizer (tokenized after the prompt, as
    ``HFPolicy.candidate_ids`` does) and at each position the model's top N next tokens given
    the prompt and the answer's earlier tokens, each token as its decoded text. The end-of-turn
    token after the answer is not reported (as OpenAI's ``logprobs.content`` does not)."""

    def __init__(self, policy, system: str, wrap: Callable[[str], str] = str, logprobs: bool = False) -> None:
        self.policy, self.system, self.wrap, self.logprobs = policy, system, wrap, logprobs
        self._lock = threading.Lock()  # one forward pass at a time
        self.served = 0

    def context(self, messages: list[dict[str, str]]):
        from teachable.policies.base import Context
        from teachable.policies.prompt import build_messages

        lines = messages[-1]["content"].split("\n")
        i = next(n for n, line in enumerate(lines) if line.startswith("Recent actions: "))
        hist = lines[i][len("Recent actions: "):]
        ctx = Context(
            instruction=lines[0][len("Mission: "):],
            observation="\n".join(lines[2:i]),
            history=() if hist == "none" else tuple(hist.split(", ")),
            valid_actions=tuple(lines[i + 1][len("Valid actions: "):].split(", ")),
            patch=lines[i + 2][len("Advice: "):] if lines[i + 2].startswith("Advice: ") else None,
        )
        if build_messages(ctx, system=self.system) != messages:
            raise ValueError("StudentResponder: the messages are not a student prompt it can read back")
        return ctx

    def __call__(self, body: dict[str, Any]) -> Reply:
        import hashlib

        import numpy as np

        from teachable.policies.base import Draw, sample_action

        ctx = self.context(body["messages"])
        with self._lock:
            lp = self.policy.action_logprobs([ctx])[0]
            self.served += 1
        blob = json.dumps([body.get("seed"), body["messages"]], sort_keys=True).encode()
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(blob).digest()[:8], "big"))
        action = ctx.valid_actions[sample_action(lp, float(body.get("temperature", 1.0)), Draw(rng))]
        reply = content(self.wrap(action))
        if self.logprobs and body.get("logprobs"):
            with self._lock:
                reply.logprobs = self.token_logprobs(ctx, reply.content, int(body.get("top_logprobs") or 0))
        return reply

    def token_logprobs(self, ctx, answer: str, n_top: int) -> list[dict[str, Any]]:
        """``logprobs.content`` of ``answer`` at ``ctx`` under the policy's model (class docstring)."""
        import torch

        pol, tok = self.policy, self.policy.tokenizer
        prompt = pol.render_prompt(ctx)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        full = tok(prompt + pol.candidate_text(answer), add_special_tokens=False)["input_ids"]
        if full[: len(p_ids)] != p_ids:
            raise ValueError("StudentResponder: the answer's first token merges with the prompt's last")
        cand = full[len(p_ids):]
        # the answer's tokens: the shortest run that decodes to it; the rest is the end of turn
        n = next(j for j in range(len(cand) + 1) if tok.decode(cand[:j]).endswith(answer))
        with torch.no_grad():
            logits = pol.model(torch.tensor([full], device=pol.device)).logits[0].float()
        lps = torch.log_softmax(logits, dim=-1)

        def entry(token_id: int, logprob: float) -> dict[str, Any]:
            text = tok.decode([token_id])
            return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

        out = []
        for j, token_id in enumerate(cand[:n]):
            row = lps[len(p_ids) + j - 1]  # the distribution of token j given the prompt and tokens < j
            top = torch.topk(row, n_top) if n_top else None
            alts = [entry(int(i), float(v)) for v, i in zip(top.values, top.indices)] if top is not None else []
            out.append({**entry(token_id, float(row[token_id])), "top_logprobs": alts})
        return out


class FakeOpenAIServer:
    def __init__(self, responder: Callable[[dict[str, Any]], Reply] | None = None) -> None:
        self.responder = responder  # answers what the script does not
        self._replies: deque[Scripted] = deque()
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body"} per request
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *replies: Scripted) -> None:
        with self._lock:
            self._replies.extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._replies)

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP

    def _next(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Reply | None:
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
            reply = self._replies.popleft() if self._replies else self.responder
        return reply(body) if callable(reply) else reply

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path.rstrip("/") != "/v1/chat/completions":
                    server._next(self.path, headers, body)
                    self._send(404, _error_body(404, f"no route {self.path}"), {})
                    return
                reply = server._next(self.path, headers, body)
                if reply is None:
                    msg = "test server: no scripted reply left"
                    self._send(500, _error_body(500, msg), {"x-should-retry": "false"})
                    return
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.status != 200:
                    self._send(reply.status, _error_body(reply.status, reply.message), reply.headers)
                    return
                self._send(200, _completion(body, reply), reply.headers)

        return Handler


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "test_error", "code": str(status)}}


def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    text = reply.content or ""
    prompt_text = "".join(str(m.get("content", "")) for m in body.get("messages", []))
    prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else _rough_tokens(prompt_text)
    completion_tokens = (
        reply.completion_tokens if reply.completion_tokens is not None else _rough_tokens(text)
    )
    return {
        "id": f"chatcmpl-test-{time.time_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "test-model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None if reply.logprobs is None else {"content": reply.logprobs, "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
