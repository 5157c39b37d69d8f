"""Console list views cost a fixed number of queries, however long the lists are."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, Label, Message, Team, Visitor
from chat.services.notes import note_add

pytestmark = pytest.mark.django_db

# Per page: session + user, the agent (looked up by each helper), the access helper's teams
# and sites, the site's labels, each list and its labels (prefetched), the status control's
# load. None of them depends on the number of rows.
QUERIES = {
    "/console/": 15,
    "/console/queue/": 14,
    "/console/search/?q=parcel": 11,
    "/console/supervisor/": 12,
}


def seed(site, support: Team, alice, n: int, labels: list[Label]) -> None:
    for i in range(n):
        visitor = Visitor.objects.create(site=site, name=f"Customer {i}", email=f"c{i}@x.test")
        status = ["waiting", "assigned"][i % 2]
        conversation = Conversation.objects.create(
            site=site,
            visitor=visitor,
            team=support,
            status=status,
            assignee=alice if status == "assigned" else None,
            last_seq=2,
        )
        Message.objects.create(conversation=conversation, seq=1, author="visitor", body="parcel?")
        Message.objects.create(conversation=conversation, seq=2, author="bot", body="parcel!")
        conversation.labels.set(labels)
        note_add(conversation=conversation, agent=alice, body="note")


@pytest.mark.parametrize("url", list(QUERIES))
def test_it_keeps_the_query_count_of_a_list_fixed(
    url, client, site, support, alice, django_assert_num_queries
):
    alice.user.is_staff = True  # the supervisor view too
    alice.user.save()
    labels = [Label.objects.create(site=site, name=n) for n in ("vip", "refund")]
    client.force_login(alice.user)
    seed(site, support, alice, 2, labels)
    with django_assert_num_queries(QUERIES[url]):
        small = client.get(url)
    seed(site, support, alice, 20, labels)
    with django_assert_num_queries(QUERIES[url]):
        large = client.get(url)
    assert small.status_code == large.status_code == 200
    if "supervisor" not in url:
        assert large.content.decode().count("data-conversation-id=") > small.content.decode().count(
            "data-conversation-id="
        )


def test_the_conversation_page_does_not_grow_with_its_transcript(client, site, support, alice):
    labels = [Label.objects.create(site=site, name=n) for n in ("vip", "refund")]
    seed(site, support, alice, 1, labels)
    conversation = Conversation.objects.get()
    client.force_login(alice.user)
    url = f"/console/c/{conversation.pk}/"
    with CaptureQueriesContext(connection) as short:
        client.get(url)
    for seq in range(3, 40):
        Message.objects.create(conversation=conversation, seq=seq, author="agent", body="more")
        note_add(conversation=conversation, agent=alice, body=f"note {seq}")
    with CaptureQueriesContext(connection) as long:
        client.get(url)
    assert len(long) == len(short)
