"""Scale-out: server processes that share one PostgreSQL and one Redis serve one conversation.

A widget on one daphne process and the agent's console on another exchange messages live,
with no sticky routing between them: the channel layer (Redis pub/sub) carries the frames,
the database the sequence numbers.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack

import pytest
from django.conf import settings
from django.test import Client as DjangoClient
from django.utils import timezone
from websockets.sync.client import connect

from chat.models import Conversation, Message
from chat.services.visitors import visitor_token
from tests.live import daphne_server, frames_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
        reason="scale-out needs a shared PostgreSQL and Redis: set DATABASE_URL and REDIS_URL",
    ),
]


def test_it_carries_a_conversation_between_two_server_processes(site, visitor_a, alice):
    conversation = Conversation.objects.create(
        site=site, visitor=visitor_a, status="assigned", assignee=alice, assigned_at=timezone.now()
    )
    browser = DjangoClient()
    browser.force_login(alice.user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    # Both processes sign and check with one key, as every process behind one address must.
    shared = {"SECRET_KEY": settings.SECRET_KEY, "DEBUG": "false", "SECURE_SSL_REDIRECT": "false"}
    with ExitStack() as stack:
        one = stack.enter_context(daphne_server(shared)).removeprefix("http://")
        other = stack.enter_context(daphne_server(shared)).removeprefix("http://")
        assert one != other
        widget = stack.enter_context(
            connect(
                f"ws://{one}/ws/widget/v1/?site={site.key}&token={visitor_token(visitor_a)}",
                origin=f"http://{one}",
            )
        )
        console = stack.enter_context(
            connect(
                f"ws://{other}/ws/console/v1/",
                origin=f"http://{other}",
                additional_headers={"Cookie": cookie},
            )
        )
        frames_until(widget, "session.ready")
        frames_until(console, "session.ready")
        for ws in (widget, console):
            ws.send(json.dumps({"type": "conversation.sync", "conversation_id": conversation.pk}))
            frames_until(ws, "sync.done", conversation_id=conversation.pk)

        widget.send(
            json.dumps(
                {
                    "type": "message.create",
                    "client_id": "v1",
                    "body": "Where is my parcel?",
                    "conversation_id": conversation.pk,
                }
            )
        )
        ack = frames_until(widget, "message.ack", client_id="v1")[-1]
        heard = frames_until(console, "message.created", client_id="v1")[-1]
        assert heard["body"] == "Where is my parcel?" and heard["seq"] == ack["seq"]
        assert heard["author"] == "visitor" and heard["author_name"] == "Ann"

        console.send(
            json.dumps(
                {
                    "type": "message.create",
                    "client_id": "a1",
                    "body": "On its way, arriving Friday.",
                    "conversation_id": conversation.pk,
                }
            )
        )
        reply = frames_until(widget, "message.created", client_id="a1")[-1]
        assert reply["body"] == "On its way, arriving Friday." and reply["seq"] == ack["seq"] + 1
        assert reply["author"] == "agent" and reply["author_name"] == alice.display_name

    stored = list(
        Message.objects.filter(conversation=conversation).values_list("seq", "author", "body")
    )
    assert stored == [
        (ack["seq"], "visitor", "Where is my parcel?"),
        (ack["seq"] + 1, "agent", "On its way, arriving Friday."),
    ]
