"""Transfer to another agent or a team's queue with a note; close and reopen."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from chat import access
from chat.models import Conversation, Message, Note
from chat.services.conversations import (
    Conflict,
    conversation_close,
    conversation_take,
    visitor_message_receive,
)
from chat.services.transfer import conversation_transfer
from tests.conftest import console_for, widget_for
from tests.queueing import queued

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = "Wants a bulk discount, promised a call back"


def alices(site, support, visitor) -> Conversation:
    conversation = queued(site, visitor=visitor, team=support)
    visitor_message_receive(conversation=conversation, body="Do you sell in bulk?", client_id="v1")
    from chat.models import Agent

    conversation_take(conversation=conversation, agent=Agent.objects.get(display_name="Alice"))
    return conversation


async def test_it_transfers_to_an_agent_who_is_told_live_and_the_customer_never_sees_the_note(
    site, alice, bob, support, sales, visitor_a
):
    conversation = await database_sync_to_async(alices)(site, support, visitor_a)
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    await widget.expect("sync.done")
    alice_console = await console_for(alice.user)
    bob_console = await console_for(bob.user)
    await bob_console.drain()

    await database_sync_to_async(conversation_transfer)(
        conversation=conversation, by=alice, to_agent=bob, note=NOTE
    )

    told = await bob_console.expect("conversation.transferred")
    assert told["conversation_id"] == conversation.pk and told["from_name"] == "Alice"
    assert told["note"] == NOTE and NOTE in told["message"]
    await bob_console.expect("inbox.changed", conversation_id=conversation.pk)
    await alice_console.expect("inbox.changed", conversation_id=conversation.pk)
    await widget.expect(
        "message.created", author="system", body="Alice transferred the conversation to Bob."
    )
    await widget.expect("conversation.updated", assignee_name="Bob")
    assert NOTE not in json.dumps(await widget.drain())

    await database_sync_to_async(conversation.refresh_from_db)()
    assert conversation.assignee_id == bob.pk and conversation.status == "assigned"
    # Bob works in Sales: the conversation moved to his team so that he may see it.
    assert conversation.team_id == sales.pk
    visible_to_bob = await database_sync_to_async(
        lambda: access.conversations_for_user(bob.user).filter(pk=conversation.pk).exists()
    )()
    assert visible_to_bob
    note = await database_sync_to_async(Note.objects.get)(conversation=conversation)
    assert note.body == NOTE and note.meta == {"event": "transfer"}
    for client in (widget, alice_console, bob_console):
        await client.close()


def test_it_transfers_to_a_teams_queue_keeping_the_customers_place(
    site, alice, bob, support, sales, visitor_a
):
    conversation = alices(site, support, visitor_a)
    queued_at = conversation.queued_at
    conversation_transfer(conversation=conversation, by=alice, to_team=sales, note=" \x00 ")
    conversation.refresh_from_db()
    assert conversation.status == "waiting" and conversation.assignee is None
    assert conversation.team_id == sales.pk and conversation.queued_at == queued_at
    assert list(access.conversations_for_user(bob.user).waiting()) == [conversation]
    last = Message.objects.filter(conversation=conversation).order_by("-seq").first()
    assert last is not None and last.meta["event"] == "transferred"
    assert last.body == "Alice transferred the conversation to the Sales team."
    assert not Note.objects.exists()  # no note given, none stored


def test_it_refuses_transfers_that_make_no_sense(site, alice, charlie, support, visitor_a):
    conversation = alices(site, support, visitor_a)
    with pytest.raises(Conflict):
        conversation_transfer(conversation=conversation, by=alice, to_agent=alice)
    with pytest.raises(Conflict):  # Charlie works for another company
        conversation_transfer(conversation=conversation, by=alice, to_agent=charlie)
    with pytest.raises(Conflict):
        conversation_transfer(conversation=conversation, by=alice, to_team=charlie.teams.get())
    conversation_close(conversation=conversation, by=alice)
    with pytest.raises(Conflict):
        conversation_transfer(conversation=conversation, by=alice, to_team=support)
    conversation.refresh_from_db()
    assert conversation.assignee_id == alice.pk and conversation.team_id == support.pk


def test_the_transfer_form_moves_it_out_of_my_list(client, site, alice, bob, support, visitor_a):
    conversation = alices(site, support, visitor_a)
    client.force_login(alice.user)
    assert f'data-conversation-id="{conversation.pk}"' in client.get("/console/").content.decode()
    response = client.post(
        f"/console/c/{conversation.pk}/transfer/", {"target": f"agent:{bob.pk}", "note": NOTE}
    )
    assert response.status_code == 204 and response["HX-Redirect"] == "/console/"
    mine = client.get("/console/queue/").content.decode()
    assert f'data-conversation-id="{conversation.pk}"' not in mine
    conversation.refresh_from_db()
    assert conversation.assignee_id == bob.pk


def test_the_transfer_form_refuses_unknown_targets_and_outsiders(
    client, site, alice, charlie, support, visitor_a
):
    conversation = alices(site, support, visitor_a)
    client.force_login(alice.user)
    for target in ["", "agent:999", f"agent:{charlie.pk}", "team:abc", "nonsense"]:
        response = client.post(f"/console/c/{conversation.pk}/transfer/", {"target": target})
        assert response.status_code == 200 and "helpdesk:error" in response["HX-Trigger"]
    client.force_login(charlie.user)
    response = client.post(f"/console/c/{conversation.pk}/transfer/", {"target": "team:1"})
    assert response.status_code == 404
    assert client.get(f"/console/c/{conversation.pk}/transfer/").status_code == 405
    conversation.refresh_from_db()
    assert conversation.assignee_id == alice.pk


def test_it_closes_and_reopens_from_the_console(client, site, alice, support, visitor_a):
    conversation = alices(site, support, visitor_a)
    client.force_login(alice.user)
    client.post(f"/console/c/{conversation.pk}/close/")
    conversation.refresh_from_db()
    assert conversation.status == "closed"
    header = client.post(f"/console/c/{conversation.pk}/reopen/").content.decode()
    assert 'data-action="close"' in header
    conversation.refresh_from_db()
    assert conversation.status == "assigned" and conversation.assignee_id == alice.pk
    assert conversation.closed_at is None
    events = list(
        Message.objects.filter(conversation=conversation, author="system").values_list(
            "meta__event", flat=True
        )
    )
    assert events[-2:] == ["closed", "reopened"]
    again = client.post(f"/console/c/{conversation.pk}/reopen/")
    assert "already open" in again["HX-Trigger"]


def test_a_new_customer_message_reopens_a_closed_conversation(site, alice, support, visitor_a):
    conversation = alices(site, support, visitor_a)
    conversation_close(conversation=conversation, by=alice)
    visitor_message_receive(conversation=conversation, body="One more thing", client_id="v2")
    conversation.refresh_from_db()
    assert conversation.is_open and conversation.closed_at is None
    # Not back to Alice: it starts over with the bot, which hands "One more thing" to the
    # queue for lack of an answer.
    assert conversation.status == "waiting" and conversation.assignee is None
