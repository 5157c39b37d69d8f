"""The bare relay: the framework's own limit, to measure the product against.

Served by daphne as ``chat.bench.relay:application``, on the same channel layer as the product
(``settings.CHANNEL_LAYERS``), and speaking the same frames the load generator uses:
``conversation.sync`` joins the conversation's group and answers ``sync.done``;
``message.create`` sends a ``message.created`` frame to the conversation's two groups (widget
and console, like the product) and acks it. No auth, no database, no validation beyond JSON.

Two flavours of the same pair: ``/relay/async/...`` (async consumers: the least the framework
can do) and ``/relay/sync/...`` (sync consumers like the product's, so every frame and every
layer event takes the same hop to the sync thread and back, without the database).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

FORWARD = "frame.forward"
READY = json.dumps({"type": "session.ready", "protocol_version": 1})


def group_name(conversation_id: int, role: str) -> str:
    return f"relay-{conversation_id}-{role}"


def sync_done(conversation_id: int) -> str:
    return json.dumps({"type": "sync.done", "conversation_id": conversation_id, "last_seq": 0})


def relayed(frame: dict[str, Any], seq: int) -> tuple[list[str], dict[str, Any], str]:
    """The groups to tell, the layer event for them, and the ack for the sender."""
    conversation_id = int(frame["conversation_id"])
    created = {
        "type": "message.created",
        "conversation_id": conversation_id,
        "seq": seq,
        "author": "visitor",
        "author_name": "Visitor",
        "body": frame["body"],
        "client_id": frame["client_id"],
        "created_at": datetime.now(UTC).isoformat(),
    }
    ack = {
        "type": "message.ack",
        "client_id": frame["client_id"],
        "conversation_id": conversation_id,
        "seq": seq,
    }
    groups = [group_name(conversation_id, "visitor"), group_name(conversation_id, "agents")]
    return groups, {"type": FORWARD, "frame": created}, json.dumps(ack)


class AsyncRelay(AsyncWebsocketConsumer):
    role = "visitor"

    async def connect(self) -> None:
        self.joined: list[str] = []
        self.seq = 0
        self.handlers = {"conversation.sync": self.sync, "message.create": self.create}
        await self.accept()
        await self.send(text_data=READY)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "{}")
        await self.handlers[frame["type"]](frame)

    async def sync(self, frame: dict[str, Any]) -> None:
        conversation_id = int(frame["conversation_id"])
        group = group_name(conversation_id, self.role)
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(group)
        await self.send(text_data=sync_done(conversation_id))

    async def create(self, frame: dict[str, Any]) -> None:
        self.seq += 1
        groups, event, ack = relayed(frame, self.seq)
        for group in groups:
            await self.channel_layer.group_send(group, event)
        await self.send(text_data=ack)

    async def frame_forward(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event["frame"], ensure_ascii=False))

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)


class AsyncRelayConsole(AsyncRelay):
    role = "agents"


class SyncRelay(WebsocketConsumer):
    role = "visitor"

    def connect(self) -> None:
        self.joined: list[str] = []
        self.seq = 0
        self.handlers = {"conversation.sync": self.sync, "message.create": self.create}
        self.accept()
        self.send(text_data=READY)

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "{}")
        self.handlers[frame["type"]](frame)

    def sync(self, frame: dict[str, Any]) -> None:
        conversation_id = int(frame["conversation_id"])
        group = group_name(conversation_id, self.role)
        async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
        self.joined.append(group)
        self.send(text_data=sync_done(conversation_id))

    def create(self, frame: dict[str, Any]) -> None:
        self.seq += 1
        groups, event, ack = relayed(frame, self.seq)
        for group in groups:
            async_to_sync(self.channel_layer.group_send)(group, event)
        self.send(text_data=ack)

    def frame_forward(self, event: dict[str, Any]) -> None:
        self.send(text_data=json.dumps(event["frame"], ensure_ascii=False))

    def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            async_to_sync(self.channel_layer.group_discard)(group, self.channel_name)


class SyncRelayConsole(SyncRelay):
    role = "agents"


# Paths of each flavour's widget and console sockets.
PATHS = {
    "async": ("/relay/async/widget/", "/relay/async/console/"),
    "sync": ("/relay/sync/widget/", "/relay/sync/console/"),
}

application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path(PATHS["async"][0].lstrip("/"), AsyncRelay.as_asgi()),
                path(PATHS["async"][1].lstrip("/"), AsyncRelayConsole.as_asgi()),
                path(PATHS["sync"][0].lstrip("/"), SyncRelay.as_asgi()),
                path(PATHS["sync"][1].lstrip("/"), SyncRelayConsole.as_asgi()),
            ]
        )
    }
)
