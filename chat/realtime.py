"""Group names and the one way events leave the server: after the transaction commits."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat.protocol import Frame, dump

# Every layer event carries a finished frame; consumers have one handler for it.
FORWARD = "frame.forward"


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

    transaction.on_commit(async_to_sync(send_all), robust=True)
