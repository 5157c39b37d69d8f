"""Canned replies: per site, typed as /shortcut, with the customer's and agent's details."""

from __future__ import annotations

import json
import re

import pytest

from chat.models import CannedReply, Conversation, Visitor
from chat.services.canned import canned_for, canned_render
from tests.queueing import queued

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(site) -> Conversation:
    visitor = Visitor.objects.create(site=site, name="Ann", email="ann@example.com")
    return queued(site, visitor=visitor)


def test_it_fills_both_spellings_of_a_variable_the_same_way(conversation, alice):
    text = "Hi {name} ({{ customer.email }}), {{agent.name}} from {site} here. {agent}: {nope}"
    assert canned_render(text=text, conversation=conversation, agent=alice) == (
        "Hi Ann (ann@example.com), Alice from Acme here. Alice: {nope}"
    )
    assert canned_render(
        text="Dear {{ customer.name }}", conversation=conversation, agent=alice
    ) == canned_render(text="Dear {name}", conversation=conversation, agent=alice)


def test_it_says_there_when_the_customer_gave_no_name(site, alice):
    anonymous = queued(site, name="")
    assert canned_render(text="Hi {name}!", conversation=anonymous, agent=alice) == "Hi there!"


def test_it_offers_only_the_conversations_sites_replies(conversation, other_site, alice):
    CannedReply.objects.create(site=conversation.site, shortcut="thanks", body="Thanks {name}!")
    CannedReply.objects.create(site=conversation.site, shortcut="refund", body="Refunds: 30 days")
    CannedReply.objects.create(site=other_site, shortcut="globex", body="Globex only")
    replies = canned_for(conversation=conversation, agent=alice)
    assert [(r["shortcut"], r["body"]) for r in replies] == [
        ("refund", "Refunds: 30 days"),
        ("thanks", "Thanks Ann!"),
    ]


def test_the_conversation_page_carries_them_filled_in_for_the_reply_box(
    client, conversation, alice
):
    CannedReply.objects.create(
        site=conversation.site,
        shortcut="hello",
        title="Greeting",
        body="Hello {name}, {agent} here",
    )
    client.force_login(alice.user)
    page = client.get(f"/console/c/{conversation.pk}/").content.decode()
    data = re.search(r'<script id="canned-replies" type="application/json">(.*?)</script>', page)
    assert data is not None
    assert json.loads(data.group(1)) == [
        {"shortcut": "hello", "title": "Greeting", "body": "Hello Ann, Alice here"}
    ]


def test_it_keeps_markup_in_a_reply_inert(client, conversation, alice):
    CannedReply.objects.create(
        site=conversation.site, shortcut="x", body="</script><script>alert(1)</script>"
    )
    client.force_login(alice.user)
    page = client.get(f"/console/c/{conversation.pk}/").content.decode()
    assert "<script>alert(1)" not in page


def test_admins_manage_them_per_site(client, admin, site):
    client.force_login(admin)
    response = client.post(
        "/admin/chat/cannedreply/add/",
        {"site": site.pk, "shortcut": "ship", "title": "", "body": "3–5 days, {name}."},
    )
    assert response.status_code == 302
    assert CannedReply.objects.get().shortcut == "ship"
    duplicate = client.post(
        "/admin/chat/cannedreply/add/", {"site": site.pk, "shortcut": "ship", "body": "again"}
    )
    assert duplicate.status_code == 200 and CannedReply.objects.count() == 1
    bad = client.post(
        "/admin/chat/cannedreply/add/", {"site": site.pk, "shortcut": "two words", "body": "x"}
    )
    assert bad.status_code == 200 and CannedReply.objects.count() == 1
