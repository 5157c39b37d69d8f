"""Who sees what: one access helper, walked once per persona, and used by every edge."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.urls import reverse

from chat import access
from chat.models import Conversation, Visitor
from tests.conftest import console_for, widget_for


@pytest.fixture
def conversations(site, other_site, support, visitor_a, visitor_b):
    """A shared-queue chat of Ann's, a Support-only chat of Ben's, and one on another site."""
    return {
        "shared": Conversation.objects.create(site=site, visitor=visitor_a, status="waiting"),
        "support_only": Conversation.objects.create(
            site=site, visitor=visitor_b, status="waiting", team=support
        ),
        "other_site": Conversation.objects.create(
            site=other_site,
            visitor=Visitor.objects.create(site=other_site),
            status="waiting",
        ),
    }


@pytest.mark.parametrize(
    ("persona", "visible"),
    [
        ("alice", {"shared", "support_only"}),
        ("bob", {"shared"}),
        ("charlie", {"other_site"}),
        ("admin", {"shared", "support_only", "other_site"}),
        ("nobody", set()),
    ],
)
def test_it_shows_each_console_user_exactly_their_conversations(
    request, conversations, alice, bob, charlie, admin, persona, visible
):
    from django.contrib.auth.models import AnonymousUser, User

    user = {
        "alice": alice.user,
        "bob": bob.user,
        "charlie": charlie.user,
        "admin": admin,
        "nobody": AnonymousUser(),
    }[persona]
    seen = {name for name, c in conversations.items() if c in access.conversations_for_user(user)}
    assert seen == visible
    for name, conversation in conversations.items():
        if name in visible:
            assert access.conversation_for_user(user=user, conversation_id=conversation.pk)
        else:
            with pytest.raises(access.NotFound):
                access.conversation_for_user(user=user, conversation_id=conversation.pk)
    plain = User.objects.create_user("plain", password="x")  # a user without an Agent profile
    assert not access.conversations_for_user(plain).exists()


def test_it_lets_a_visitor_reach_only_their_own_conversations(conversations, visitor_a, visitor_b):
    mine = conversations["shared"]
    assert access.conversation_for_visitor(visitor=visitor_a, conversation_id=mine.pk) == mine
    with pytest.raises(access.NotFound):
        access.conversation_for_visitor(visitor=visitor_b, conversation_id=mine.pk)


def test_it_hides_other_teams_conversations_in_console_pages(client, conversations, bob):
    client.force_login(bob.user)
    hidden = conversations["support_only"]
    assert client.get(reverse("console:conversation", args=[hidden.pk])).status_code == 404
    assert client.post(reverse("console:take", args=[hidden.pk])).status_code == 404
    assert client.post(reverse("console:close", args=[hidden.pk])).status_code == 404
    queue = client.get(reverse("console:queue")).content.decode()
    assert f'data-conversation-id="{conversations["shared"].pk}"' in queue
    assert f'data-conversation-id="{hidden.pk}"' not in queue
    hidden.refresh_from_db()
    assert hidden.status == "waiting"


def test_it_keeps_console_pages_behind_login(client, conversations, visitor_a):
    response = client.get(reverse("console:home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert (
        client.post(reverse("console:take", args=[conversations["shared"].pk])).status_code == 302
    )


def test_it_refuses_take_and_close_by_get(client, conversations, alice):
    client.force_login(alice.user)
    assert client.get(reverse("console:take", args=[conversations["shared"].pk])).status_code == 405


@pytest.mark.django_db(transaction=True)
async def test_it_never_lets_a_visitor_sync_someone_elses_conversation(conversations, visitor_b):
    theirs = conversations["shared"]
    widget = await widget_for(visitor_b)
    for frame in [
        {"type": "conversation.sync", "conversation_id": theirs.pk, "after_seq": 0},
        {"type": "message.create", "conversation_id": theirs.pk, "client_id": "x", "body": "hi"},
        {"type": "handoff.request", "conversation_id": theirs.pk},
        {"type": "feedback.create", "conversation_id": theirs.pk, "seq": 1, "helpful": True},
        {"type": "typing.start", "conversation_id": theirs.pk},
    ]:
        await widget.send(**frame)
        assert (await widget.expect("error"))["code"] == "not_found"
    assert not [f for f in await widget.drain() if f["type"] == "message.created"]
    await widget.close()


@pytest.mark.django_db(transaction=True)
async def test_it_never_lets_an_agent_subscribe_to_another_teams_conversation(conversations, bob):
    console = await console_for(bob.user)
    hidden = conversations["support_only"]
    await console.send(type="conversation.sync", conversation_id=hidden.pk, after_seq=0)
    assert (await console.expect("error"))["code"] == "not_found"
    await console.send(type="message.create", conversation_id=hidden.pk, client_id="b", body="hi")
    assert (await console.expect("error"))["code"] == "not_found"
    count = await database_sync_to_async(lambda: hidden.messages.count())()
    assert count == 0
    await console.close()


@pytest.mark.parametrize(
    ("persona", "counted"),
    [
        ("alice", {"shared", "support_only"}),
        ("bob", {"shared"}),
        ("bob_supervisor", {"shared", "support_only"}),  # every team of his sites
        ("charlie_supervisor", {"other_site"}),  # never another company's
        ("admin", {"shared", "support_only", "other_site"}),
    ],
)
def test_it_lets_supervisors_count_their_sites_whole_work(
    conversations, alice, bob, charlie, admin, persona, counted
):
    from chat.models import Agent

    if persona.endswith("_supervisor"):
        Agent.objects.filter(display_name=persona.split("_")[0].title()).update(is_supervisor=True)
    user = {
        "alice": alice.user,
        "bob": bob.user,
        "bob_supervisor": bob.user,
        "charlie_supervisor": charlie.user,
        "admin": admin,
    }[persona]
    queryset = access.conversations_to_supervise(user)
    assert {name for name, c in conversations.items() if c in queryset} == counted
    assert access.may_supervise(user) == (persona.endswith("_supervisor") or persona == "admin")


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "conversation"),
        ("post", "take"),
        ("post", "close"),
        ("post", "reopen"),
        ("post", "transfer"),
        ("post", "labels"),
        ("post", "seen"),
    ],
)
def test_every_conversation_endpoint_hides_other_teams_work(
    client, conversations, bob, method, name
):
    client.force_login(bob.user)
    hidden = conversations["support_only"]
    url = f"/console/c/{hidden.pk}/" + ("" if name == "conversation" else f"{name}/")
    assert getattr(client, method)(url).status_code == 404
    hidden.refresh_from_db()
    assert hidden.status == "waiting" and hidden.assignee is None


def test_it_checks_a_sockets_conversation_once_and_still_refuses_others(
    conversations, visitor_a, visitor_b, django_assert_num_queries
):
    """A widget socket remembers what it was allowed; a conversation never changes owner."""
    allowed = access.VisitorConversations(visitor_a)
    with django_assert_num_queries(1):
        first = allowed.remembered(conversations["shared"].pk)
    with django_assert_num_queries(0):
        assert allowed.remembered(conversations["shared"].pk) is first
    assert first.visitor is visitor_a  # one object: a name set on the socket shows at once
    for theirs in ("support_only", "other_site"):
        with pytest.raises(access.NotFound):
            allowed.remembered(conversations[theirs].pk)
    # Started elsewhere by someone else: never remembered as this visitor's.
    allowed.remember(conversations["support_only"])
    with pytest.raises(access.NotFound):
        allowed.remembered(conversations["support_only"].pk)
