"""The load generator: per conversation, a real widget socket and a real console socket.

Both speak the documented protocol: connect, wait for ``session.ready``, send
``conversation.sync`` and wait for ``sync.done``; then the widget sends ``message.create``
frames and the console receives them as ``message.created``. A message counts once the
widget has its ``message.ack`` (sent only after the server committed it) *and* the console
has it; one that never gets both within the grace period is lost.

Plain asyncio and ``websockets``, no Django, so it runs anywhere the servers are reachable.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

now = time.perf_counter
HANDSHAKE_TIMEOUT = 15.0
# Sockets opened at once: daphne's listen backlog is small.
OPENING_AT_ONCE = 50


@dataclass(frozen=True)
class Endpoint:
    """Where one server listens, and how its two kinds of socket get in."""

    ws_base: str
    origin: str
    widget_path: str
    console_path: str
    site_key: str = ""  # the product's widget needs the site key and the visitor's token
    cookie: str = ""  # the product's console logs in with the agent's session cookie
    # Conversation id → the session cookie of the agent it is assigned to, when agents differ.
    agent_cookies: dict[int, str] = field(default_factory=dict)

    def widget_url(self, token: str) -> str:
        query = urlencode({"site": self.site_key, "token": token}) if self.site_key else ""
        return f"{self.ws_base}{self.widget_path}" + (f"?{query}" if query else "")

    def console_url(self) -> str:
        return f"{self.ws_base}{self.console_path}"


@dataclass(slots=True)
class Sent:
    """One ``message.create``: when it was meant to go, went, was acked and was delivered."""

    intended: float
    sent: float = 0.0
    acked: float = 0.0
    delivered: float = 0.0
    on_done: Callable[[], None] | None = None


@dataclass
class Batch:
    """The messages of one measured phase."""

    messages: list[Sent] = field(default_factory=list)
    open: int = 0
    # The measured window: when sending started, and for how long.
    start: float = 0.0
    duration: float = 0.0

    def add(self, message: Sent) -> None:
        self.messages.append(message)
        self.open += 1

    def finish(self, message: Sent) -> None:
        self.open -= 1
        if message.on_done is not None:
            message.on_done()

    async def drain(self, grace: float) -> None:
        """Wait until every message is acked and delivered, or ``grace`` seconds pass."""
        deadline = now() + grace
        while self.open and now() < deadline:
            await asyncio.sleep(0.01)


class Problems:
    """Error frames and sockets that closed under us, kept for the report."""

    def __init__(self) -> None:
        self.count = 0
        self.samples: list[str] = []

    def add(self, what: str) -> None:
        self.count += 1
        if len(self.samples) < 5:
            self.samples.append(what[:300])


async def open_socket(url: str, origin: str, cookie: str = "") -> ClientConnection:
    return await connect(
        url,
        origin=Origin(origin),
        additional_headers={"Cookie": cookie} if cookie else None,
        compression=None,
        ping_interval=None,
        proxy=None,
        open_timeout=HANDSHAKE_TIMEOUT,
        close_timeout=2,
        max_queue=None,
    )


async def expect(ws: ClientConnection, frame_type: str) -> dict[str, Any]:
    """Read frames until one of ``frame_type``; an error frame on the way is fatal."""
    async with asyncio.timeout(HANDSHAKE_TIMEOUT):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == frame_type:
                return frame
            if frame["type"] == "error":
                raise RuntimeError(f"server refused: {frame}")


async def open_synced(url: str, origin: str, conversation_id: int, cookie: str = "") -> Any:
    """A socket that has joined ``conversation_id`` the way the widget and console do."""
    ws = await open_socket(url, origin, cookie)
    await expect(ws, "session.ready")
    await ws.send(json.dumps({"type": "conversation.sync", "conversation_id": conversation_id}))
    await expect(ws, "sync.done")
    return ws


class Pair:
    """One conversation: its widget socket sends, its console socket receives."""

    def __init__(self, index: int, conversation_id: int, problems: Problems) -> None:
        self.index = index
        self.conversation_id = conversation_id
        self.problems = problems
        self.counter = 0
        # Client ids unique to these sockets: a later run's messages are new, not resends.
        self.prefix = f"b{secrets.token_hex(4)}-{index}"
        self.in_flight: dict[str, tuple[Sent, Batch]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self, endpoint: Endpoint, token: str) -> None:
        self.widget = await open_synced(
            endpoint.widget_url(token), endpoint.origin, self.conversation_id
        )
        self.console = await open_synced(
            endpoint.console_url(),
            endpoint.origin,
            self.conversation_id,
            endpoint.agent_cookies.get(self.conversation_id, endpoint.cookie),
        )
        self.tasks = [
            asyncio.create_task(self._read(self.widget, self._on_widget_frame)),
            asyncio.create_task(self._read(self.console, self._on_console_frame)),
        ]

    async def close(self) -> None:
        for ws in (self.widget, self.console):
            await ws.close()
        for task in self.tasks:
            task.cancel()

    async def send(
        self, batch: Batch, intended: float, on_done: Callable[[], None] | None = None
    ) -> None:
        self.counter += 1
        client_id = f"{self.prefix}-{self.counter}"
        message = Sent(intended=intended, on_done=on_done)
        batch.add(message)
        self.in_flight[client_id] = (message, batch)
        frame = {
            "type": "message.create",
            "conversation_id": self.conversation_id,
            "client_id": client_id,
            "body": f"Benchmark message {self.counter} of conversation {self.index}",
        }
        message.sent = now()
        await self.widget.send(json.dumps(frame))

    async def _read(self, ws: ClientConnection, handle: Callable[[dict[str, Any]], None]) -> None:
        try:
            async for raw in ws:
                handle(json.loads(raw))
        except ConnectionClosed as closed:
            if closed.rcvd is None or closed.rcvd.code != 1000:
                self.problems.add(f"conversation {self.conversation_id}: socket closed {closed}")

    def _on_widget_frame(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "message.ack":
            self._mark(frame["client_id"], acked=True)
        elif kind == "error":
            self.problems.add(json.dumps(frame))

    def _on_console_frame(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "message.created" and frame.get("author") == "visitor":
            self._mark(frame.get("client_id") or "", acked=False)

    def _mark(self, client_id: str, *, acked: bool) -> None:
        entry = self.in_flight.get(client_id)
        if entry is None:
            return
        message, batch = entry
        if acked:
            message.acked = message.acked or now()
        else:
            message.delivered = message.delivered or now()
        if message.acked and message.delivered:
            del self.in_flight[client_id]
            batch.finish(message)


async def limited(jobs: Iterable[Any], at_once: int = OPENING_AT_ONCE) -> list[Any]:
    gate = asyncio.Semaphore(at_once)

    async def run(job: Any) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(run(job) for job in jobs))


async def open_pairs(
    endpoint: Endpoint, seats: Sequence[tuple[int, str]], problems: Problems
) -> list[Pair]:
    pairs = [Pair(i, conversation_id, problems) for i, (conversation_id, _) in enumerate(seats)]
    await limited(pair.open(endpoint, token) for pair, (_, token) in zip(pairs, seats, strict=True))
    return pairs


async def close_all(sockets: Iterable[Any]) -> None:
    await limited((sock.close() for sock in sockets), at_once=200)


async def warm_up(pairs: Sequence[Pair], grace: float) -> Batch:
    """One message per conversation, not measured: first-use costs stay out of the figures."""
    batch = Batch()
    for pair in pairs:
        await pair.send(batch, now())
    await batch.drain(grace)
    return batch


async def open_loop(pairs: Sequence[Pair], per_conversation: float, duration: float) -> Batch:
    """Each conversation sends ``per_conversation`` msg/s on a fixed schedule.

    Latency runs from the scheduled time, not the actual send, so a server (or a generator)
    that falls behind shows up in the figures instead of slowing the offered load.
    """
    interval = 1 / per_conversation
    start = now() + 0.05
    end = start + duration
    batch = Batch(start=start, duration=duration)

    async def sender(pair: Pair, phase: float) -> None:
        k = 0
        while (intended := start + phase + k * interval) < end:
            delay = intended - now()
            if delay > 0:
                await asyncio.sleep(delay)
            await pair.send(batch, intended)
            k += 1

    # Spread the conversations over one interval instead of sending in bursts.
    await asyncio.gather(*(sender(pair, interval * i / len(pairs)) for i, pair in enumerate(pairs)))
    return batch


async def closed_loop(pairs: Sequence[Pair], inflight: int, duration: float) -> Batch:
    """Each conversation keeps ``inflight`` messages unanswered; a finished one frees a slot."""
    start = now()
    end = start + duration
    batch = Batch(start=start, duration=duration)

    async def sender(pair: Pair) -> None:
        slots = asyncio.Semaphore(inflight)
        while (remaining := end - now()) > 0:
            try:
                await asyncio.wait_for(slots.acquire(), remaining)
            except TimeoutError:
                return
            if now() >= end:
                return
            await pair.send(batch, now(), on_done=slots.release)

    await asyncio.gather(*(sender(pair) for pair in pairs))
    return batch


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(batch: Batch, *, closed: bool) -> dict[str, Any]:
    start, duration = batch.start, batch.duration
    done = [m for m in batch.messages if m.acked and m.delivered]
    latency = sorted(1000 * (m.delivered - m.intended) for m in done)
    ack = sorted(1000 * (m.acked - m.intended) for m in done)
    lag = sorted(1000 * (m.sent - m.intended) for m in batch.messages)
    if closed:
        # Throughput of the window itself; what finished after it only counts against loss.
        rate = sum(1 for m in done if m.delivered <= start + duration) / duration
    else:
        last = max((m.delivered for m in done), default=start)
        rate = len(done) / max(duration, last - start)
    return {
        "sent": len(batch.messages),
        "delivered": len(done),
        "lost": len(batch.messages) - len(done),
        "sustained_msgs_per_s": round(rate, 1),
        "p50_ms": round(percentile(latency, 50), 2),
        "p95_ms": round(percentile(latency, 95), 2),
        "p99_ms": round(percentile(latency, 99), 2),
        "max_ms": round(latency[-1] if latency else 0.0, 2),
        "ack_p50_ms": round(percentile(ack, 50), 2),
        "ack_p99_ms": round(percentile(ack, 99), 2),
        # How late the generator itself sent: large values mean it, not the server, lagged.
        "send_lag_p99_ms": round(percentile(lag, 99), 2),
    }


async def open_idle(endpoint: Endpoint, seats: Sequence[tuple[int, str]]) -> list[Any]:
    """Widget sockets that connect, sync their conversation and then say nothing."""
    return await limited(
        open_synced(endpoint.widget_url(token), endpoint.origin, conversation_id)
        for conversation_id, token in seats
    )
