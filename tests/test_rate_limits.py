"""Rate limits: messages, new conversations and new visitors per site, and sign-in attempts.

Over a limit, a socket frame gets ``error`` ``rate_limited`` with ``retry_after`` seconds and
nothing is stored; the socket keeps serving. Sign-in answers 429 after 5 failures.
"""

from __future__ import annotations

import secrets

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import reverse

from chat.models import Conversation, Message, Visitor
from chat.ratelimit import Rate, RateLimited, message_hit, rate_hit
from chat.services import conversations
from chat.services.visitors import visitor_token
from helpdesk.asgi import application
from tests.conftest import HOST, OWN_ORIGIN, Client

pytestmark = pytest.mark.django_db(transaction=True)


async def widget_from(site, ip: str, token: str = "") -> tuple[Client, dict]:
    """A widget socket from ``ip`` (daphne puts the peer, or the proxied client, in scope)."""
    path = f"/ws/widget/v1/?site={site.key}" + (f"&token={token}" if token else "")
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"origin", OWN_ORIGIN.encode()), (b"host", HOST.encode())]
    )
    communicator.scope["client"] = (ip, 50000)
    connected, _ = await communicator.connect()
    assert connected
    client = Client(communicator)
    return client, await client.receive()


async def count(model) -> int:
    return await database_sync_to_async(model.objects.count)()


async def assigned_conversation(visitor, agent) -> int:
    def create() -> int:
        return Conversation.objects.create(
            site=visitor.site, visitor=visitor, status="assigned", assignee=agent
        ).pk

    return await database_sync_to_async(create)()


def assert_rate_limited(error: dict, ref: str | None = None, within: int = 60) -> None:
    assert error["type"] == "error" and error["code"] == "rate_limited"
    assert 1 <= error["retry_after"] <= within
    assert str(error["retry_after"]) in error["message"]
    assert error["ref"] == ref


# --- Messages -----------------------------------------------------------------------------


@override_settings(HELPDESK_RATE_MESSAGES_PER_MINUTE=3)
async def test_it_refuses_a_visitors_messages_over_the_limit_and_stores_none(
    site, visitor_a, alice
):
    conversation_id = await assigned_conversation(visitor_a, alice)
    token = await database_sync_to_async(visitor_token)(visitor_a)
    widget, _ = await widget_from(site, "198.51.100.7", token)
    for n in range(3):
        await widget.send(
            type="message.create", client_id=f"c{n}", body="hi", conversation_id=conversation_id
        )
        await widget.expect("message.ack", client_id=f"c{n}")
    await widget.send(
        type="message.create", client_id="c3", body="hi", conversation_id=conversation_id
    )
    assert_rate_limited(await widget.expect("error"), ref="c3")
    assert await count(Message) == 3
    await widget.send(type="ping")  # still serving
    await widget.expect("pong")
    await widget.close()


@override_settings(
    HELPDESK_RATE_MESSAGES_PER_MINUTE=100, HELPDESK_RATE_MESSAGES_PER_MINUTE_PER_IP=3
)
async def test_it_limits_messages_per_address_across_visitors(site, visitor_a, visitor_b, alice):
    sockets = []
    for visitor in [visitor_a, visitor_b]:
        conversation_id = await assigned_conversation(visitor, alice)
        token = await database_sync_to_async(visitor_token)(visitor)
        widget, _ = await widget_from(site, "198.51.100.7", token)
        sockets.append((widget, conversation_id))
    for sent, (widget, conversation_id) in enumerate(sockets * 2, start=1):
        await widget.send(
            type="message.create", client_id=f"m{sent}", body="hi", conversation_id=conversation_id
        )
        if sent <= 3:
            await widget.expect("message.ack", client_id=f"m{sent}")
        else:
            assert_rate_limited(await widget.expect("error"), ref=f"m{sent}")
    assert await count(Message) == 3
    for widget, _ in sockets:
        await widget.close()


@override_settings(HELPDESK_RATE_CONVERSATIONS_PER_HOUR=2)
async def test_it_limits_how_many_conversations_a_visitor_starts(site, visitor_a, alice):
    token = await database_sync_to_async(visitor_token)(visitor_a)
    widget, _ = await widget_from(site, "198.51.100.7", token)
    for n in range(2):
        await widget.send(type="message.create", client_id=f"new{n}", body="Hello")
        ack = await widget.expect("message.ack", client_id=f"new{n}")
        conversation = await database_sync_to_async(Conversation.objects.get)(
            pk=ack["conversation_id"]
        )
        await database_sync_to_async(conversations.conversation_close)(
            conversation=conversation, by=alice
        )
    messages = await count(Message)
    await widget.send(type="message.create", client_id="new2", body="Hello again")
    assert_rate_limited(await widget.expect("error"), ref="new2", within=3600)
    assert await count(Conversation) == 2
    assert await count(Message) == messages
    await widget.close()


# --- New visitors ----------------------------------------------------------------------------


@override_settings(HELPDESK_RATE_SESSIONS_PER_MINUTE_PER_IP=2)
async def test_it_limits_new_visitors_per_address_and_site(site, other_site):
    for _ in range(2):
        widget, ready = await widget_from(site, "203.0.113.9")
        assert ready["type"] == "session.ready"
        await widget.close()
    widget, error = await widget_from(site, "203.0.113.9")
    assert_rate_limited(error)
    assert (await widget.ws.receive_output())["code"] == 4429
    assert await count(Visitor) == 2

    others = [await widget_from(site, "203.0.113.10"), await widget_from(other_site, "203.0.113.9")]
    for widget, ready in others:  # another address, or another site, has its own allowance
        assert ready["type"] == "session.ready"
        await widget.close()


@override_settings(HELPDESK_RATE_SESSIONS_PER_MINUTE_PER_IP=1)
async def test_it_lets_returning_visitors_reconnect_whatever_the_limit(site, visitor_a):
    token = await database_sync_to_async(visitor_token)(visitor_a)
    for _ in range(3):
        widget, ready = await widget_from(site, "203.0.113.9", token)
        assert ready["type"] == "session.ready"
        await widget.close()


# --- The helper -------------------------------------------------------------------------------


def test_it_turns_a_limit_off_with_zero():
    for _ in range(100):
        rate_hit(name="test", key="k", rate=Rate(0, 60))


@override_settings(HELPDESK_RATE_MESSAGES_PER_MINUTE=2, HELPDESK_RATE_MESSAGES_PER_MINUTE_PER_IP=3)
def test_a_refused_message_counts_in_neither_of_its_windows():
    first, second = secrets.randbits(48), secrets.randbits(48)  # visitors no run used before
    address = f"2001:db8::{secrets.token_hex(2)}"
    message_hit(site_id=1, visitor_id=first, ip=address)
    message_hit(site_id=1, visitor_id=first, ip=address)
    with pytest.raises(RateLimited) as refused:
        message_hit(site_id=1, visitor_id=first, ip=address)  # over the visitor's limit
    assert 59 <= refused.value.retry_after <= 60

    # The refused hit did not count for the address either: this is its third, and the last.
    message_hit(site_id=1, visitor_id=second, ip=address)
    with pytest.raises(RateLimited):
        message_hit(site_id=1, visitor_id=second, ip=address)
    with pytest.raises(RateLimited):
        message_hit(site_id=1, visitor_id=first, ip=address)


def test_it_says_when_to_retry():
    rate_hit(name="test", key="k", rate=Rate(1, 60))
    with pytest.raises(RateLimited) as refused:
        rate_hit(name="test", key="k", rate=Rate(1, 60))
    assert 59 <= refused.value.retry_after <= 60


# --- Sign-in ----------------------------------------------------------------------------------


def sign_in(password: str, ip: str = "192.0.2.1", username: str = "alice"):
    browser = DjangoClient(REMOTE_ADDR=ip)
    return browser.post(reverse("login"), {"username": username, "password": password})


def test_it_refuses_sign_in_after_five_failures_for_a_name_from_an_address(alice):
    for _ in range(5):
        assert sign_in("wrong").status_code == 200
    refused = sign_in("alice")  # even the right password, while locked
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 15 * 60
    assert "Too many failed sign-ins" in refused.content.decode()
    assert "_auth_user_id" not in refused.client.session


def test_it_locks_only_that_name_from_that_address(alice, bob):
    for _ in range(5):
        sign_in("wrong")
    assert sign_in("alice", ip="192.0.2.2").status_code == 302  # alice elsewhere
    assert sign_in("bob", username="bob").status_code == 302  # bob from the same address


def test_it_lets_people_who_mistype_once_sign_in(alice):
    for _ in range(4):
        sign_in("wrong")
    assert sign_in("alice").status_code == 302
