"""Internal notes: agents see them in the transcript; the customer never gets one, anywhere."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client as DjangoClient

from chat.models import Conversation, Message, Note
from chat.services.conversations import conversation_take, visitor_message_receive
from chat.services.messages import messages_after
from chat.services.notes import note_add
from tests.conftest import console_for, widget_for
from tests.queueing import queued

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "Customer is on the fraud watch list, do not refund"


def _conversation(site, visitor, alice) -> Conversation:
    conversation = queued(site, visitor=visitor)
    visitor_message_receive(conversation=conversation, body="Where is my parcel?", client_id="v1")
    conversation_take(conversation=conversation, agent=alice)
    return conversation


async def test_it_shows_a_note_to_agents_and_never_to_the_visitor(site, alice, support, visitor_a):
    conversation = await database_sync_to_async(_conversation)(site, visitor_a, alice)
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    await widget.expect("sync.done")
    console = await console_for(alice.user)
    await console.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    await console.expect("sync.done")

    await console.send(
        type="note.create", conversation_id=conversation.pk, client_id="n1", body=SECRET
    )
    note = await console.expect("note.created", client_id="n1")
    assert note["body"] == SECRET and note["author_name"] == "Alice"
    assert note["after_seq"] == conversation.last_seq

    # The customer's socket hears nothing of it, live...
    live = await widget.drain()
    assert SECRET not in json.dumps(live)
    # ...nor on a history sync from the start, on a fresh socket...
    fresh = await widget_for(visitor_a)
    await fresh.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    await fresh.expect("sync.done")
    replayed = await fresh.drain()
    assert SECRET not in json.dumps(replayed)
    assert [f["seq"] for f in replayed if f["type"] == "message.created"] == [1, 2]
    # ...while a console syncing from the start gets it back.
    other = await console_for(alice.user)
    await other.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    assert (await other.expect("note.created"))["body"] == SECRET
    for client in (widget, fresh, console, other):
        await client.close()


def test_it_keeps_notes_out_of_every_customer_transcript(site, alice, support, visitor_a):
    conversation = _conversation(site, visitor_a, alice)
    note_add(conversation=conversation, agent=alice, body=SECRET)
    visitor_message_receive(conversation=conversation, body="Hello?", client_id="v2")

    assert all(SECRET not in m.body for m in messages_after(conversation, 0))
    assert not Message.objects.filter(body__contains=SECRET).exists()
    # The widget page and the admin's read-only transcript do not carry it either.
    admin_client = DjangoClient()
    from django.contrib.auth.models import User

    admin_client.force_login(User.objects.create_superuser("root", "r@x.test", "root"))
    admin_page = admin_client.get(f"/admin/chat/conversation/{conversation.pk}/change/")
    assert admin_page.status_code == 200 and SECRET not in admin_page.content.decode()
    widget_page = DjangoClient().get(f"/widget/{site.key}/")
    assert SECRET not in widget_page.content.decode()


def test_it_places_a_note_in_the_console_transcript_after_the_message_it_followed(
    client, site, alice, support, visitor_a
):
    conversation = _conversation(site, visitor_a, alice)
    note_add(conversation=conversation, agent=alice, body=SECRET)
    visitor_message_receive(conversation=conversation, body="Still there?", client_id="v2")
    client.force_login(alice.user)
    page = client.get(f"/console/c/{conversation.pk}/").content.decode()
    assert page.index("Where is my parcel?") < page.index(SECRET) < page.index("Still there?")
    assert "Internal note" in page


async def test_it_stores_a_resent_note_once(site, alice, support, visitor_a):
    conversation = await database_sync_to_async(_conversation)(site, visitor_a, alice)
    console = await console_for(alice.user)
    for _ in range(2):
        await console.send(
            type="note.create", conversation_id=conversation.pk, client_id="n1", body="Once"
        )
        await console.expect("note.created", client_id="n1")
    assert await database_sync_to_async(Note.objects.filter(body="Once").count)() == 1
    await console.close()


async def test_it_refuses_notes_out_of_reach_or_empty(site, alice, charlie, support, visitor_a):
    conversation = await database_sync_to_async(_conversation)(site, visitor_a, alice)
    outsider = await console_for(charlie.user)
    await outsider.send(
        type="note.create", conversation_id=conversation.pk, client_id="n1", body="peek"
    )
    assert (await outsider.expect("error"))["code"] == "not_found"
    console = await console_for(alice.user)
    await console.send(
        type="note.create", conversation_id=conversation.pk, client_id="n2", body="   "
    )
    error = await console.expect("error")
    assert error["code"] == "invalid_frame" and error["ref"] == "n2"
    await console.send(
        type="note.create", conversation_id=conversation.pk, client_id="n3", body="\x00"
    )
    assert (await console.expect("error"))["ref"] == "n3"  # no crash, on any database
    assert await database_sync_to_async(Note.objects.count)() == 0
    await outsider.close()
    await console.close()


async def test_the_widget_socket_does_not_accept_notes(site, visitor_a):
    widget = await widget_for(visitor_a)
    await widget.send(type="note.create", conversation_id=1, client_id="n1", body="hi")
    assert (await widget.expect("error"))["code"] == "unknown_type"
    await widget.close()
