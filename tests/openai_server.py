"""A small OpenAI-compatible chat server on 127.0.0.1, for tests of the real ``openai`` client.

It speaks ``POST /v1/chat/completions``: JSON replies, or server-sent events when the request
asks for ``stream`` (``data: {chunk}`` … ``data: [DONE]``), text and tool calls alike. Tests
script what it says next (``server.script(Reply.text("…"), Reply.status(429))``), including
faults: an HTTP error, a reply slower than the client waits, a body that is not the protocol.
It records every request it received, so tests can read the prompt the model was given.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMPLETIONS_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Reply:
    """One scripted reply. Build them with the class methods."""

    pieces: tuple[str, ...] = ()  # text content, streamed one piece per chunk
    tool_name: str = ""
    tool_arguments: tuple[str, ...] = ()  # the arguments' JSON, streamed one piece per chunk
    status: int = 200
    delay: float = 0.0  # seconds before answering at all
    piece_delay: float = 0.0  # seconds between streamed chunks
    garbage: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, *pieces: str, piece_delay: float = 0.0) -> Reply:
        """The assistant says ``"".join(pieces)``; streamed, each piece is one chunk."""
        return cls(pieces=pieces, piece_delay=piece_delay)

    @classmethod
    def tool_call(cls, name: str, arguments: dict[str, Any], *, after: str = "") -> Reply:
        """The assistant calls ``name``, optionally after saying ``after``."""
        encoded = json.dumps(arguments)
        half = len(encoded) // 2
        return cls(
            pieces=(after,) if after else (),
            tool_name=name,
            tool_arguments=(encoded[:half], encoded[half:]),
        )

    @classmethod
    def error(cls, status: int, *, retry_after: str | None = None) -> Reply:
        headers = (("Retry-After", retry_after),) if retry_after is not None else ()
        return cls(status=status, headers=headers)

    @classmethod
    def slow(cls, seconds: float) -> Reply:
        """Says nothing for ``seconds``, then a normal answer (if anyone is still listening)."""
        return cls(pieces=("Too late.",), delay=seconds)

    @classmethod
    def nonsense(cls, body: bytes = b"<html>502 Bad Gateway</html>\n") -> Reply:
        """A 200 whose body is not the protocol (a proxy's error page, say)."""
        return cls(garbage=body)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def system_prompt(self) -> str:
        return next((m["content"] for m in self.messages if m["role"] == "system"), "")


@dataclass
class OpenAIServer:
    """Start with ``start()``; ``base_url`` is what the client needs."""

    replies: deque[Reply] = field(default_factory=deque)
    fallback: Reply | None = None  # said when the script has run out; None answers 500
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *replies: Reply, then: Reply | None = None) -> None:
        """Answer the next requests with ``replies`` in turn, and every later one with ``then``."""
        with self._lock:
            self.replies = deque(replies)
            self.fallback = then

    def start(self) -> OpenAIServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a slow reply
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def _next(self, received: Received) -> Reply | None:
        with self._lock:
            self.requests.append(received)
            return self.replies.popleft() if self.replies else self.fallback


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        received = Received(
            path=self.path, headers={k.lower(): v for k, v in self.headers.items()}, body=body
        )
        reply = self.owner._next(received)
        try:
            if self.path != COMPLETIONS_PATH:
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "x"}})
            elif reply is None:
                self._json(500, {"error": {"message": "no scripted reply", "type": "test"}})
            else:
                self._answer(reply, stream=bool(body.get("stream")), model=body.get("model", ""))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped listening (it timed out): that is the point of some tests

    def _answer(self, reply: Reply, *, stream: bool, model: str) -> None:
        if reply.delay and self.owner._stopping.wait(reply.delay):
            return
        if reply.status != 200:
            error = {"message": f"scripted {reply.status}", "type": "test", "code": None}
            self._json(reply.status, {"error": error}, headers=reply.headers)
        elif reply.garbage:
            kind = "text/event-stream" if stream else "application/json"
            self._send(200, reply.garbage, kind)
        elif stream:
            self._stream(reply, model)
        else:
            self._json(200, _completion(reply, model))

    def _stream(self, reply: Reply, model: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for delta in _deltas(reply):
            self._event(_chunk(model, delta, finish=None))
            if reply.piece_delay and self.owner._stopping.wait(reply.piece_delay):
                return
        self._event(_chunk(model, {}, finish="tool_calls" if reply.tool_name else "stop"))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    def _json(
        self, status: int, data: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _send(
        self, status: int, body: bytes, kind: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


def _deltas(reply: Reply) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece} for piece in reply.pieces]
    if reply.tool_name:
        call = {"index": 0, "id": "call_1", "type": "function"}
        deltas.append({"tool_calls": [{**call, "function": {"name": reply.tool_name}}]})
        deltas += [
            {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            for piece in reply.tool_arguments
        ]
    return deltas


def _chunk(model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _completion(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.pieces) or None}
    if reply.tool_name:
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": "".join(reply.tool_arguments)},
            }
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_name else "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
