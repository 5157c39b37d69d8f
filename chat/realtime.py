"""Group names and the one way events leave the server: after the transaction commits."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from chat.protocol import CLOSE_RESYNC, Frame, dump

# Every layer event carries finished frames (``frames``: one or more, in order); consumers
# have one handler for it.
FORWARD = "frame.forward"

log = logging.getLogger(__name__)


def visitor_group(conversation_id: int) -> str:
    """Widget sockets showing this conversation."""
    return f"conv-{conversation_id}-visitor"


def agents_group(conversation_id: int) -> str:
    """Console sockets showing this conversation."""
    return f"conv-{conversation_id}-agents"


def conversation_groups(conversation_id: int) -> list[str]:
    """Every socket showing this conversation: its widgets and its consoles."""
    return [visitor_group(conversation_id), agents_group(conversation_id)]


def site_agents_group(site_id: int) -> str:
    """Console sockets of agents who work on this site (queue changes)."""
    return f"site-{site_id}-agents"


def agent_group(agent_id: int) -> str:
    """Every console socket of one agent (their status, conversations taken from them)."""
    return f"agent-{agent_id}"


# --- What a socket frame sends goes out once the frame is done --------------------------
# A sync consumer's frame runs in a thread, and each send from there (the ack, a broadcast,
# an error) would be a hop to the event loop and back. Instead the frame's sends are kept,
# in order, in its outbox, and the consumer sends them all on the event loop afterwards.
_frame = threading.local()


class Outbox:
    """A frame's socket messages (for its own socket) and group events, in the order made."""

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.items: list[tuple[list[str] | None, dict[str, Any]]] = []

    def socket(self, message: dict[str, Any]) -> None:
        self.items.append((None, message))

    def groups(self, groups: list[str], event: dict[str, Any]) -> None:
        """Frames for the same groups one after the other travel as one layer event."""
        if self.items and self.items[-1][0] == groups:
            self.items[-1][1]["frames"].extend(event["frames"])
        else:
            self.items.append((groups, event))

    async def flush(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Send everything, in order. A lost broadcast (Redis down) never stops the rest, nor
        does a socket that went away: the others still hear what was stored."""
        items, self.items = self.items, []
        layer = get_channel_layer()
        socket_open = True
        for groups, message in items:
            try:
                if groups is None:
                    if socket_open:
                        await send(message)
                else:
                    await _group_send_all(layer, groups, message)
            except Exception:
                if groups is None:
                    socket_open = False
                    log.debug("socket closed before its frames went out", exc_info=True)
                else:
                    log.warning("broadcast to %s lost", groups, exc_info=True)


@contextmanager
def collecting(outbox: Outbox) -> Iterator[Outbox]:
    """Within the block, this thread's sends go to ``outbox``."""
    previous = getattr(_frame, "outbox", None)
    _frame.outbox = outbox
    try:
        yield outbox
    finally:
        _frame.outbox = previous


def current_outbox() -> Outbox | None:
    """The outbox of the frame this thread is running, if it is running one."""
    outbox: Outbox | None = getattr(_frame, "outbox", None)
    return outbox


def outbox_of(owner: object) -> Outbox | None:
    """The outbox of the frame of ``owner`` this thread is running, if it is running one."""
    outbox = current_outbox()
    return outbox if outbox is not None and outbox.owner is owner else None


def send_now(groups: list[str], frame: Frame) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    event: dict[str, Any] = {"type": FORWARD, "frames": [dump(frame)]}
    outbox = current_outbox()
    if outbox is not None:
        outbox.groups(groups, event)
    else:
        async_to_sync(_group_send_all)(layer, groups, event)


async def _group_send_all(layer: Any, groups: list[str], event: dict[str, Any]) -> None:
    # One hop from the calling thread to the event loop for all groups, not one per group.
    for group in groups:
        await layer.group_send(group, event)


def after_commit(callback: Callable[[], object]) -> None:
    """``transaction.on_commit(callback, robust=True)``, except that outside a transaction it
    runs now without taking a database connection (Django's checks autocommit on one)."""
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(callback, robust=True)
        return
    try:
        callback()
    except Exception:
        log.exception("after-commit callback %s failed", getattr(callback, "__qualname__", "?"))


def send_after_commit(groups: list[str], frame: Frame) -> None:
    """Broadcast ``frame`` once the current transaction commits, so nobody sees a rollback."""
    after_commit(lambda: send_now(groups, frame))


def send_many_after_commit(events: list[tuple[list[str], Frame]]) -> None:
    """``send_after_commit`` for many frames, all in one hop to the event loop."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
    prepared = [(groups, {"type": FORWARD, "frames": [dump(frame)]}) for groups, frame in events]

    async def send_all() -> None:
        for groups, event in prepared:
            await _group_send_all(layer, groups, event)

    def send() -> None:  # a function: failures are logged by __qualname__
        async_to_sync(send_all)()

    after_commit(send)


# --- Redis went away: sockets that stayed open missed frames ---------------------------------
# While Redis is down or restarting, broadcasts are lost (their senders still got acks: the
# messages are stored), and the layer's subscriptions do not reliably come back: sockets that
# stayed open would go deaf, and never learn what they missed. So each process watches Redis
# (a restart shows as a new ``run_id``), and once it answers again after failing or
# restarting, closes its sockets with 4503 (``CLOSE_RESYNC``): clients reconnect, subscribe
# afresh and sync from their last seq (docs/protocol.md §5).
REDIS_CHECK_SECONDS = 2.0

_open_sockets: set[Any] = set()  # this process's consumers with an open socket
_watch: asyncio.Task[None] | None = None


def socket_opened(consumer: Any) -> None:
    """Count the socket in; start the Redis watch if this process has none running yet."""
    _open_sockets.add(consumer)
    if settings.REDIS_URL and (_watch is None or _watch.done()):
        async_to_sync(redis_watch_ensure)()


def socket_closed(consumer: Any) -> None:
    _open_sockets.discard(consumer)


async def redis_watch_ensure() -> None:
    """Start this process's Redis watch (once per event loop), when there is a Redis."""
    global _watch
    loop = asyncio.get_running_loop()
    if not settings.REDIS_URL:
        return  # the in-memory layer loses nothing without losing the process
    if _watch is None or _watch.done() or _watch.get_loop() is not loop:
        _watch = loop.create_task(_redis_watch(settings.REDIS_URL))


async def _redis_watch(url: str) -> None:
    client = aioredis.Redis.from_url(
        url, socket_timeout=REDIS_CHECK_SECONDS, socket_connect_timeout=REDIS_CHECK_SECONDS
    )
    run_id: str | None = None
    failing = False
    task = asyncio.current_task()
    while True:
        # redis-py may swallow a cancellation (the loop shutting down), or turn it into a
        # connection error: without this check the task, and the loop, would live for ever.
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        try:
            now = str((await client.info("server"))["run_id"])
        except Exception:
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None
            if not failing:
                log.warning("Redis is not answering; sockets will be reset once it is back")
            failing = True
        else:
            if failing or now != (run_id or now):
                log.warning("Redis is back: closing %d sockets to resync", len(_open_sockets))
                await _close_open_sockets()
            run_id, failing = now, False
        await asyncio.sleep(REDIS_CHECK_SECONDS)


async def _close_open_sockets() -> None:
    for consumer in list(_open_sockets):
        close = consumer.close  # async on async consumers, sync (async_to_sync inside) on others
        if not asyncio.iscoroutinefunction(close):
            close = sync_to_async(close, thread_sensitive=False)
        try:
            await close(code=CLOSE_RESYNC)
        except Exception:  # closed meanwhile
            log.debug("socket was closed already", exc_info=True)
