"""Group names and the one way events leave the server: after the transaction commits."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from chat.protocol import CLOSE_RESYNC, Frame, dump

# Every layer event carries a finished frame; consumers have one handler for it.
FORWARD = "frame.forward"

log = logging.getLogger(__name__)


def visitor_group(conversation_id: int) -> str:
    """Widget sockets showing this conversation."""
    return f"conv-{conversation_id}-visitor"


def agents_group(conversation_id: int) -> str:
    """Console sockets showing this conversation."""
    return f"conv-{conversation_id}-agents"


def site_agents_group(site_id: int) -> str:
    """Console sockets of agents who work on this site (queue changes)."""
    return f"site-{site_id}-agents"


def agent_group(agent_id: int) -> str:
    """Every console socket of one agent (their status, conversations taken from them)."""
    return f"agent-{agent_id}"


def send_now(groups: list[str], frame: Frame) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    event: dict[str, Any] = {"type": FORWARD, "frame": dump(frame)}
    async_to_sync(_group_send_all)(layer, groups, event)


async def _group_send_all(layer: Any, groups: list[str], event: dict[str, Any]) -> None:
    # One hop from the calling thread to the event loop for all groups, not one per group.
    for group in groups:
        await layer.group_send(group, event)


def send_after_commit(groups: list[str], frame: Frame) -> None:
    """Broadcast ``frame`` once the current transaction commits, so nobody sees a rollback."""
    transaction.on_commit(lambda: send_now(groups, frame), robust=True)


def send_many_after_commit(events: list[tuple[list[str], Frame]]) -> None:
    """``send_after_commit`` for many frames, all in one hop to the event loop."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
    prepared = [(groups, {"type": FORWARD, "frame": dump(frame)}) for groups, frame in events]

    async def send_all() -> None:
        for groups, event in prepared:
            await _group_send_all(layer, groups, event)

    def send() -> None:  # a function: robust on_commit logs failures by __qualname__
        async_to_sync(send_all)()

    transaction.on_commit(send, robust=True)


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
