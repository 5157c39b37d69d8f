"""A client written only from docs/protocol.md, over a real socket to a real daphne."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from chat.models import Agent, Conversation
from tests.live import daphne_server, frames_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_it_completes_the_documented_flow_with_a_plain_websocket_client(site, alice):
    with daphne_server() as base:
        host = base.removeprefix("http://")
        url = f"ws://{host}/ws/widget/v1/?site={site.key}"
        with connect(url, origin=base) as ws:
            ready = frames_until(ws, "session.ready")[-1]
            token = ready["visitor"]["token"]
            ws.send(
                json.dumps({"type": "message.create", "client_id": "q1", "body": "shipping time"})
            )
            seen = frames_until(ws, "message.created", author="bot")
            ack = next(f for f in seen if f["type"] == "message.ack")
            conversation_id = ack["conversation_id"]
            assert "3–5 business days" in seen[-1]["body"]
            ws.send(json.dumps({"type": "handoff.request", "conversation_id": conversation_id}))
            frames_until(ws, "conversation.updated", status="waiting")

        conversation = Conversation.objects.get(pk=conversation_id)
        from chat.services.conversations import agent_message_post

        agent_message_post(
            conversation=conversation,
            agent=Agent.objects.get(pk=alice.pk),
            body="Hello from Alice",
            client_id="a1",
        )

        # Another device with the same token gets the history, then live frames.
        with connect(f"{url}&token={token}", origin=base) as ws:
            ready = frames_until(ws, "session.ready")[-1]
            assert ready["conversation"]["conversation_id"] == conversation_id
            assert ready["conversation"]["status"] == "assigned"
            ws.send(json.dumps({"type": "conversation.sync", "conversation_id": conversation_id}))
            seen = frames_until(ws, "sync.done")
            bodies = [f["body"] for f in seen if f["type"] == "message.created"]
            assert bodies[0] == "shipping time" and bodies[-1] == "Hello from Alice"
            seqs = [f["seq"] for f in seen if f["type"] == "message.created"]
            assert seqs == list(range(1, len(seqs) + 1))

        with pytest.raises(Exception, match="403"), connect(url, origin="https://evil.example"):
            pass
