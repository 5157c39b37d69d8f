"""Search over conversations by customer and message text, only among those I may see."""

from __future__ import annotations

import re

import pytest

from chat.models import Message, Visitor
from chat.services.lists import conversation_search
from chat.services.notes import note_add
from tests.queueing import queued

pytestmark = pytest.mark.django_db


def said(conversation, body: str, author: str = "visitor") -> None:
    seq = conversation.last_seq = conversation.last_seq + 1
    conversation.save(update_fields=["last_seq"])
    Message.objects.create(conversation=conversation, seq=seq, author=author, body=body)


@pytest.fixture
def conversations(site, other_site, support):
    ann = queued(
        site, visitor=Visitor.objects.create(site=site, name="Ann Lee", email="ann@x.test")
    )
    said(ann, "My parcel never arrived")
    ben = queued(site, name="Ben", team=support)  # Support only
    said(ben, "Refund for the broken parcel please")
    said(ben, "We are sorry about the lamp", author="agent")
    globex = queued(other_site, name="Ann Globex")
    said(globex, "parcel from Globex")
    return {"ann": ann, "ben": ben, "globex": globex}


def found(user, query: str) -> set[str]:
    return {c.visitor.name for c in conversation_search(user=user, query=query)}


def test_it_finds_by_customer_name_email_and_message_text(conversations, alice):
    assert found(alice.user, "ann") == {"Ann Lee"}
    assert found(alice.user, "ANN@X.TEST") == {"Ann Lee"}
    assert found(alice.user, "parcel") == {"Ann Lee", "Ben"}
    assert found(alice.user, "broken parcel") == {"Ben"}  # every word must match
    assert found(alice.user, "lamp") == {"Ben"}  # agents' replies too
    assert found(alice.user, "  ") == set()
    assert found(alice.user, "zebra") == set()
    assert found(alice.user, "par\x00cel") == {"Ann Lee", "Ben"}  # PostgreSQL refuses NUL


def test_it_only_finds_what_the_searcher_may_see(conversations, alice, bob, charlie, admin):
    assert found(bob.user, "parcel") == {"Ann Lee"}  # Ben's is Support's
    assert found(charlie.user, "parcel") == {"Ann Globex"}
    assert found(admin, "parcel") == {"Ann Lee", "Ben", "Ann Globex"}


def test_it_never_searches_internal_notes(conversations, alice):
    note_add(conversation=conversations["ann"], agent=alice, body="suspected fraudster")
    assert found(alice.user, "fraudster") == set()


def test_the_search_page_lists_matches_as_links(client, conversations, alice):
    client.force_login(alice.user)
    page = client.get("/console/search/", {"q": "parcel"}).content.decode()
    ids = {int(pk) for pk in re.findall(r'data-conversation-id="(\d+)"', page)}
    assert ids == {conversations["ann"].pk, conversations["ben"].pk}
    fragment = client.get("/console/search/", {"q": "lamp"}, headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert body.lstrip().startswith('<div id="search-results">')
    assert f'href="/console/c/{conversations["ben"].pk}/"' in body
    nothing = client.get("/console/search/", {"q": "<b>zebra</b>"}).content.decode()
    assert "No conversation matches" in nothing and "<b>zebra</b>" not in nothing


def test_search_needs_a_console_login(client, conversations):
    response = client.get("/console/search/", {"q": "parcel"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
