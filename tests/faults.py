"""Things that break, for the fault tests: a Redis of our own, a cuttable line to PostgreSQL,
and a client that survives all of it by the book.

The client (``Peer``) is written only from docs/protocol.md: it keeps an outbox of messages
the server has not acknowledged, resends them with their ``client_id`` after every reconnect
(§2.3) and after ``server_error``/``unavailable`` (§7), and holds the conversation by seq,
re-syncing from its highest contiguous seq after each reconnect and when a gap in the seqs
it holds lasts a second (§5).
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from tests.live import ROOT, free_port

REDIS_SERVER = shutil.which("redis-server")
RETRYABLE = {"server_error", "unavailable"}
GAP_WAIT = 1.0  # seconds a hole in the seqs may last before the client syncs (§5.2)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


async def until(condition: Callable[[], bool], timeout: float, what: str, *peers: Peer) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            states = "; ".join(peer.describe() for peer in peers)
            raise AssertionError(f"timed out after {timeout} s waiting for {what}. {states}")
        await asyncio.sleep(0.02)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- Redis of our own ----------------------------------------------------------------------


class RedisServer:
    """A throwaway ``redis-server`` on a free port (never the shared one), that a test may
    kill and start again on the same port, empty, like a Redis restarted without persistence."""

    def __init__(self) -> None:
        if REDIS_SERVER is None:
            import pytest

            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(ROOT / "var"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), 10, f"redis-server on port {self.port}")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()


@contextmanager
def own_redis() -> Iterator[RedisServer]:
    redis = RedisServer().start()
    try:
        yield redis
    finally:
        redis.stop()


# --- A line to PostgreSQL that the test can cut ------------------------------------------


class TcpProxy:
    """Forwards a loopback port to ``target``. ``cut()`` closes every connection and refuses
    new ones (as a database that went away would); ``restore()`` listens again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.connections = 0  # accepted so far

    def start(self) -> TcpProxy:
        self.thread.start()
        self.restore()
        return self

    def _run(self, coroutine: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)  # type: ignore[arg-type]

    def restore(self) -> None:
        self._run(self._listen())

    def cut(self) -> None:
        self._run(self._cut())

    def stop(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()  # no goodbye: the peer sees a reset
        self.writers.clear()

    async def _handle(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter):
        self.connections += 1
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            client.transport.abort()
            return
        self.writers.update({client, upstream})

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                writer.transport.abort()
                self.writers.discard(writer)

        await asyncio.gather(pipe(client_reader, upstream), pipe(upstream_reader, client))


# --- A client that does everything docs/protocol.md asks ---------------------------------


class Peer:
    """One widget or console socket that reconnects forever (until its task is cancelled).

    ``url`` is asked again before every connection attempt, so the test may move the peer to
    another server. Everything it hears is kept for the test to check.
    """

    def __init__(
        self,
        name: str,
        *,
        url: Callable[[], str],
        origin: Callable[[], str],
        conversation_id: int,
        cookie: str = "",
    ) -> None:
        self.name = name
        self.url = url
        self.origin = origin
        self.conversation_id = conversation_id
        self.cookie = cookie
        self.messages: dict[int, dict[str, Any]] = {}  # seq → message.created
        self.conflicts: list[tuple[dict[str, Any], dict[str, Any]]] = []  # same seq, other text
        self.acks: dict[str, int] = {}  # client_id → seq, from message.ack
        self.ack_conflicts: list[tuple[str, int, int]] = []
        self.outbox: dict[str, str] = {}  # client_id → body, unacknowledged, in send order
        self.sent: list[str] = []  # every client_id this peer made, in order
        self.transmissions: dict[str, int] = {}  # client_id → times it went out
        self.errors: list[dict[str, Any]] = []
        self.other_frames: list[dict[str, Any]] = []
        self.sessions = 0
        self.ws: ClientConnection | None = None  # set while synced and live
        self.resend_tasks: set[asyncio.Task[None]] = set()
        self.gap_check: asyncio.Task[None] | None = None
        self.gap_syncs = 0  # conversation.sync frames sent to fill a gap

    # What the test does

    def say(self, body: str) -> str:
        client_id = f"{self.name}-{uuid.uuid4().hex[:12]}"
        self.sent.append(client_id)
        self.outbox[client_id] = body
        asyncio.get_running_loop().create_task(self._transmit(client_id))
        return client_id

    async def send(self, **frame: Any) -> None:
        """A frame other than a message (no outbox: the test waits for its effect)."""
        assert self.ws is not None, f"{self.name} is not connected"
        await self.ws.send(json.dumps(frame))

    def heard(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """Frames other than messages, acks and errors, of type ``kind`` matching ``match``."""
        return [
            f
            for f in self.other_frames
            if f["type"] == kind and all(f.get(k) == v for k, v in match.items())
        ]

    def by(self, author: str) -> list[dict[str, Any]]:
        return [m for _, m in sorted(self.messages.items()) if m["author"] == author]

    def contiguous_seq(self) -> int:
        seq = 0
        while seq + 1 in self.messages:
            seq += 1
        return seq

    def has_gap(self) -> bool:
        return max(self.messages, default=0) > self.contiguous_seq()

    def describe(self) -> str:
        return (
            f"{self.name}: {self.sessions} sessions, live={self.live}, "
            f"holds 1..{self.contiguous_seq()} of {sorted(self.messages)[-3:]}, "
            f"{len(self.acks)} acked, outbox {list(self.outbox.values())[:5]}, "
            f"errors {self.errors[-3:]}"
        )

    @property
    def live(self) -> bool:
        return self.ws is not None

    # The connection loop

    async def run(self) -> None:
        backoff = 0.05
        while True:
            try:
                headers = {"Cookie": self.cookie} if self.cookie else None
                async with connect(
                    self.url(),
                    origin=self.origin(),  # type: ignore[arg-type]
                    additional_headers=headers,
                    open_timeout=5,
                    close_timeout=1,
                ) as ws:
                    backoff = 0.05
                    await self._session(ws)
            except (TimeoutError, OSError, WebSocketException):
                pass
            finally:
                self.ws = None
            # Exponential backoff with jitter (§2.3), short: tests want to see it recover.
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))
            backoff = min(1.0, backoff * 2)

    async def _session(self, ws: ClientConnection) -> None:
        ready = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        if ready["type"] != "session.ready":
            self.errors.append(ready)
            await ws.close()
            return
        self.sessions += 1
        await ws.send(
            json.dumps(
                {
                    "type": "conversation.sync",
                    "conversation_id": self.conversation_id,
                    "after_seq": self.contiguous_seq(),
                }
            )
        )
        self.ws = ws
        for client_id in list(self.outbox):
            await self._transmit(client_id)
        async for raw in ws:
            self._receive(json.loads(raw))

    async def _transmit(self, client_id: str) -> None:
        ws = self.ws
        if ws is None or client_id not in self.outbox:
            return  # sent again once connected
        frame = {
            "type": "message.create",
            "conversation_id": self.conversation_id,
            "client_id": client_id,
            "body": self.outbox[client_id],
        }
        try:
            await ws.send(json.dumps(frame, ensure_ascii=False))
        except WebSocketException:
            return
        self.transmissions[client_id] = self.transmissions.get(client_id, 0) + 1

    def _receive(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "message.created":
            known = self.messages.setdefault(frame["seq"], frame)
            if (known["client_id"], known["body"]) != (frame["client_id"], frame["body"]):
                self.conflicts.append((known, frame))
            if self.has_gap() and (self.gap_check is None or self.gap_check.done()):
                self.gap_check = asyncio.get_running_loop().create_task(self._fill_gap())
        elif kind == "message.ack":
            client_id, seq = frame["client_id"], frame["seq"]
            if self.acks.setdefault(client_id, seq) != seq:
                self.ack_conflicts.append((client_id, self.acks[client_id], seq))
            self.outbox.pop(client_id, None)
        elif kind == "error":
            self.errors.append(frame)
            if frame["ref"] in self.outbox and frame["code"] in RETRYABLE:
                task = asyncio.get_running_loop().create_task(
                    self._resend_later(frame["ref"], frame.get("retry_after") or 0.5)
                )
                self.resend_tasks.add(task)
                task.add_done_callback(self.resend_tasks.discard)
            elif frame["ref"] in self.outbox:
                self.outbox.pop(frame["ref"])  # refused for good: the test will see why
        else:
            self.other_frames.append(frame)

    async def _fill_gap(self) -> None:
        await asyncio.sleep(GAP_WAIT)
        ws = self.ws
        if ws is None or not self.has_gap():
            return  # filled meanwhile, or a reconnect will sync
        after_seq = self.contiguous_seq()
        frame = {"type": "conversation.sync", "conversation_id": self.conversation_id}
        try:
            await ws.send(json.dumps({**frame, "after_seq": after_seq}))
        except WebSocketException:
            return
        self.gap_syncs += 1

    async def _resend_later(self, client_id: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._transmit(client_id)


@contextmanager
def running(loop_tasks: list[asyncio.Task[None]]) -> Iterator[None]:
    try:
        yield
    finally:
        for task in loop_tasks:
            task.cancel()


def child_env(**extra: str) -> dict[str, str]:
    """What every process of a fault test gets on top of tests/live.py's defaults: the test
    process's secret (its tokens and sessions must be valid there) and no rate limits in the
    way of a quick burst of messages."""
    from django.conf import settings

    return {
        "SECRET_KEY": settings.SECRET_KEY,
        "HELPDESK_RATE_MESSAGES_PER_MINUTE": "0",
        "HELPDESK_RATE_MESSAGES_PER_MINUTE_PER_IP": "0",
        "LOG_LEVEL": "WARNING",
        **extra,
    }
