"""A frame's outbox: what a frame sends goes out on the event loop afterwards, in order."""

from __future__ import annotations

import threading
from typing import Any

from channels.layers import get_channel_layer

from chat.protocol import InboxChanged, Pong
from chat.realtime import FORWARD, Outbox, collecting, outbox_of, send_now


async def joined(group: str) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


def in_a_frame_thread(outbox: Outbox, work: Any) -> None:
    def run() -> None:
        with collecting(outbox):
            work()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)


async def test_a_frames_broadcasts_and_socket_sends_wait_for_the_flush_and_keep_their_order():
    channel = await joined("agent-1")
    owner = object()
    outbox = Outbox(owner)
    sent: list[dict[str, Any]] = []

    def frame() -> None:
        assert outbox_of(owner) is outbox and outbox_of(object()) is None
        send_now(["agent-1"], InboxChanged(conversation_id=7))
        send_now(["agent-1"], Pong())
        outbox.socket({"type": "websocket.send", "text": "ack"})
        send_now(["agent-1"], InboxChanged(conversation_id=8))

    in_a_frame_thread(outbox, frame)
    layer = get_channel_layer()
    assert len(outbox.items) == 3  # nothing sent yet; the first two share one layer event

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await outbox.flush(send)

    first = await layer.receive(channel)
    assert first["type"] == FORWARD
    assert [f["type"] for f in first["frames"]] == ["inbox.changed", "pong"]
    assert sent == [{"type": "websocket.send", "text": "ack"}]
    second = await layer.receive(channel)
    assert [f.get("conversation_id") for f in second["frames"]] == [8]


async def test_a_socket_gone_before_the_flush_does_not_stop_the_broadcasts_after_it():
    channel = await joined("conv-9-agents")
    outbox = Outbox(object())
    outbox.socket({"type": "websocket.send", "text": "ack"})
    in_a_frame_thread(outbox, lambda: send_now(["conv-9-agents"], InboxChanged(conversation_id=9)))

    async def closed(message: dict[str, Any]) -> None:
        raise RuntimeError("the socket is closed")

    await outbox.flush(closed)

    event = await get_channel_layer().receive(channel)
    assert event["frames"][0]["conversation_id"] == 9
