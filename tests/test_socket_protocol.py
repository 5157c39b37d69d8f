"""Connecting and speaking the protocol: who may connect, and what bad frames get back."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from chat.models import Message, Site, Visitor
from chat.services.visitors import site_for_key
from tests.conftest import console_connect, widget_connect, widget_for

pytestmark = pytest.mark.django_db(transaction=True)


async def count_messages() -> int:
    return await database_sync_to_async(Message.objects.count)()


async def test_it_refuses_a_foreign_origin_at_connect(site):
    _, connected, _ = await widget_connect(site, origin="https://evil.example")
    assert not connected


async def test_it_accepts_the_sites_own_allowed_origin(site):
    client, connected, _ = await widget_connect(site, origin="https://shop.acme.test")
    assert connected
    assert (await client.expect("session.ready"))["protocol_version"] == 5
    await client.close()


async def test_it_refuses_a_socket_without_origin(site):
    _, connected, _ = await widget_connect(site, origin="")
    assert not connected


async def test_it_refuses_a_wrong_site_key_with_a_clear_error(site):
    client, connected, _ = await widget_connect(site, key="no-such-key")
    assert connected  # accepted only to say why, then closed
    error = await client.receive()
    assert error == {
        "type": "error",
        "code": "forbidden",
        "message": "Unknown site key.",
        "ref": None,
        "retry_after": None,
    }
    assert (await client.ws.receive_output())["code"] == 4403


async def test_a_site_changed_in_admin_reaches_the_next_socket_at_once(site):
    client, connected, _ = await widget_connect(site, origin="https://shop.acme.test")
    assert connected
    await client.close()
    site.allowed_origins = "https://elsewhere.test"
    await database_sync_to_async(site.save)()  # the process's memo forgets it on commit
    _, connected, _ = await widget_connect(site, origin="https://shop.acme.test")
    assert not connected  # the old origin no longer serves
    _, connected, _ = await widget_connect(site, origin="https://elsewhere.test")
    assert connected


async def test_a_new_key_is_found_at_once_after_an_unknown_one_was_refused(site):
    client, _, _ = await widget_connect(site, key="key-of-tomorrow")
    assert (await client.receive())["code"] == "forbidden"
    await database_sync_to_async(Site.objects.create)(
        name="Tomorrow", key="key-of-tomorrow", allowed_origins=site.allowed_origins
    )
    client, connected, _ = await widget_connect(site, key="key-of-tomorrow")
    assert connected
    assert (await client.receive())["type"] == "session.ready"
    await client.close()


def test_the_sockets_of_one_site_share_its_row(site):
    """A process holds thousands of idle sockets: one copy of their site, not one each."""
    first, second = site_for_key(site.key), site_for_key(site.key)
    assert first is second and first is not None and first.pk == site.pk
    assert site_for_key("") is None and site_for_key("no-such-key") is None


async def test_it_refuses_a_forged_token_and_asks_for_a_new_session(site):
    client, connected, _ = await widget_connect(site, token="forged:token")
    assert connected
    assert (await client.receive())["code"] == "bad_token"
    assert (await client.ws.receive_output())["code"] == 4401


async def test_it_refuses_a_token_from_another_site(site, other_site):
    stranger = await database_sync_to_async(Visitor.objects.create)(site=other_site)
    from chat.services.visitors import visitor_token

    token = await database_sync_to_async(visitor_token)(stranger)
    client, _, _ = await widget_connect(site, token=token)
    assert (await client.receive())["code"] == "bad_token"


async def test_it_refuses_an_expired_token(site, visitor_a):
    from chat.services.visitors import visitor_token

    token = await database_sync_to_async(visitor_token)(visitor_a)
    with override_settings(HELPDESK_VISITOR_TOKEN_DAYS=-1):
        client, _, _ = await widget_connect(site, token=token)
        assert (await client.receive())["code"] == "bad_token"


async def test_it_refuses_the_console_to_anonymous_users_and_foreign_pages(site, alice):
    client, connected = await console_connect(None)
    assert connected
    assert (await client.receive())["code"] == "forbidden"
    _, connected = await console_connect(alice.user, origin="https://evil.example")
    assert not connected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('"just a string"', "bad_json"),
        (json.dumps({"body": "no type"}), "invalid_frame"),
        (json.dumps({"type": "message.explode"}), "unknown_type"),
        (json.dumps({"type": "message.create", "client_id": "x"}), "invalid_frame"),
        (json.dumps({"type": "message.create", "client_id": "x", "body": 5}), "invalid_frame"),
        (json.dumps({"type": "message.create", "client_id": "", "body": "hi"}), "invalid_frame"),
        (json.dumps({"type": "message.create", "client_id": "x", "body": "   "}), "invalid_frame"),
        (json.dumps({"type": "message.create", "client_id": "x", "body": "y" * 5000}), "too_large"),
        (
            json.dumps({"type": "message.create", "client_id": "x", "body": "y" * 40000}),
            "too_large",
        ),
        (json.dumps({"type": "conversation.sync", "conversation_id": "one"}), "invalid_frame"),
        (json.dumps({"type": "conversation.sync", "conversation_id": 999999}), "not_found"),
        (json.dumps({"type": "handoff.request", "conversation_id": 999999}), "not_found"),
        (
            json.dumps(
                {
                    "type": "message.create",
                    "client_id": "x",
                    "body": "hi",
                    "conversation_id": 999999,
                }
            ),
            "not_found",
        ),
        (json.dumps({"type": "ping", "extra": True}), "invalid_frame"),
        ("[" * 5000 + "]" * 5000, "bad_json"),
    ],
)
async def test_it_answers_each_malformed_frame_with_its_error_code_and_stores_nothing(
    site, visitor_a, raw, code
):
    client = await widget_for(visitor_a)
    before = await count_messages()
    await client.send_raw(raw)
    error = await client.expect("error")
    assert error["code"] == code and error["message"]
    assert await count_messages() == before
    await client.send(type="ping")  # the socket is still open and serving
    await client.expect("pong")
    await client.close()


async def test_it_names_the_client_id_an_error_answers(site, visitor_a):
    client = await widget_for(visitor_a)
    await client.send(type="message.create", client_id="too-big", body="y" * 5000)
    assert (await client.expect("error"))["ref"] == "too-big"
    await client.close()


@override_settings(HELPDESK_MAX_MESSAGE_CHARS=10)
async def test_it_reads_the_message_limit_from_settings(site, visitor_a):
    client = await widget_for(visitor_a)
    await client.send(type="message.create", client_id="c1", body="eleven chars")
    assert (await client.expect("error"))["code"] == "too_large"
    await client.close()


async def test_it_refuses_nul_characters_in_any_text_and_stores_nothing(site):
    """PostgreSQL cannot store NUL in text: the frame is refused, typed, before any service."""
    client, _, _ = await widget_connect(site)
    await client.expect("session.ready")
    await client.send(type="message.create", client_id="nul-1", body="hello\u0000world")
    error = await client.expect("error")
    assert (error["code"], error["ref"]) == ("invalid_frame", "nul-1")
    assert await count_messages() == 0
    await client.send(type="ping")  # the socket is still open and serving
    await client.expect("pong")
    await client.close()
