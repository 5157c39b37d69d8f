"""Web Push: agents hear about new queued conversations, assignments and customer replies,
visitors about replies; through a real local push service that checks VAPID and decrypts."""

from __future__ import annotations

import json

import pytest
from django.test import Client as DjangoClient

from chat.models import Agent, Conversation, Delivery, Message, PushSubscription
from chat.services.conversations import (
    agent_message_post,
    conversation_handoff,
    visitor_message_receive,
)
from chat.services.messages import message_post
from chat.services.notifications import agent_push_subscriptions, push_subscribe, push_unsubscribe
from chat.services.visitors import visitor_token
from tests.conftest import console_for, make_agent, widget_for
from tests.queueing import at_console, automatic

pytestmark = pytest.mark.django_db(transaction=True)


def with_bot(site, visitor, *, team=None) -> Conversation:
    conversation = Conversation.objects.create(site=site, visitor=visitor, team=team)
    message_post(
        conversation=conversation, author=Message.Author.VISITOR, body="Where is my parcel?"
    )
    return conversation


def assigned_to(agent, site, visitor) -> Conversation:
    return Conversation.objects.create(
        site=site, visitor=visitor, status=Conversation.Status.ASSIGNED, assignee=agent
    )


def subscribe(service, *, agent=None, visitor=None, status=201) -> PushSubscription:
    return push_subscribe(subscription=service.subscription(status), agent=agent, visitor=visitor)


def token_of(subscription: PushSubscription) -> str:
    return subscription.endpoint.rsplit("/", 1)[-1]


def test_it_pushes_a_new_queued_conversation_to_the_online_agents_of_its_team(
    push_service, site, support, alice, bob, visitor_a
):
    at_console(alice)
    at_console(bob)  # Sales: not the conversation's team
    alices = subscribe(push_service, agent=alice)
    subscribe(push_service, agent=bob)
    conversation = with_bot(site, visitor_a, team=support)

    conversation_handoff(conversation=conversation, reason="asked_for_human")

    [push] = push_service.wait_for(1)
    assert push.token == token_of(alices) and push.status == 201
    assert push.payload == {
        "kind": "queued",
        "title": "New conversation from Ann",
        "body": "Where is my parcel?",
        "url": f"/console/c/{conversation.pk}/",
        "tag": f"conversation-{conversation.pk}",
        "scope": "/console/",
    }
    assert push.claims["sub"].startswith("mailto:")
    delivery = Delivery.objects.get(agent=alice)
    assert (delivery.status, delivery.attempts, delivery.kind) == ("sent", 1, "queued")
    assert not Delivery.objects.filter(agent=bob).exists()


def test_it_tells_offline_agents_and_those_who_opted_out_nothing(
    push_service, site, support, alice, visitor_a
):
    dave = at_console(make_agent("dave", "Dave", [support]))
    Agent.objects.filter(pk=dave.pk).update(notify_queued=False)
    subscribe(push_service, agent=alice)  # alice is offline
    subscribe(push_service, agent=dave)

    conversation_handoff(
        conversation=with_bot(site, visitor_a, team=support), reason="low_confidence"
    )

    assert Delivery.objects.count() == 0 and push_service.received == []


def test_it_pushes_an_assignment_by_routing_to_the_agent_who_got_it(
    push_service, site, support, alice, visitor_a
):
    automatic(site)
    at_console(alice)
    Agent.objects.filter(pk=alice.pk).update(notify_queued=False)
    subscribe(push_service, agent=alice)
    conversation = with_bot(site, visitor_a, team=support)

    conversation_handoff(conversation=conversation, reason="asked_for_human")

    [push] = push_service.wait_for(1)
    assert push.payload["kind"] == "assigned"
    assert push.payload["title"] == "Assigned to you: Ann"
    conversation.refresh_from_db()
    assert conversation.assignee == alice


def test_it_pushes_a_customer_reply_to_the_assigned_agent_only(
    push_service, site, alice, bob, visitor_a
):
    subscribe(push_service, agent=alice)
    subscribe(push_service, agent=bob)
    conversation = assigned_to(alice, site, visitor_a)

    visitor_message_receive(
        conversation=conversation, body="It says delivered, but no box", client_id="c1"
    )

    [push] = push_service.wait_for(1)
    assert push.payload["kind"] == "reply"
    assert push.payload["title"] == "Ann replied"
    assert push.payload["body"] == "It says delivered, but no box"
    assert Delivery.objects.get().agent == alice


def test_it_removes_a_subscription_the_push_service_says_is_gone(
    push_service, site, alice, visitor_a
):
    gone = subscribe(push_service, agent=alice, status=410)
    conversation = assigned_to(alice, site, visitor_a)

    visitor_message_receive(conversation=conversation, body="Hello?", client_id="c1")

    assert [p.status for p in push_service.wait_for(1)] == [410]
    assert not PushSubscription.objects.filter(pk=gone.pk).exists()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "410" in delivery.error

    visitor_message_receive(conversation=conversation, body="Anyone?", client_id="c2")
    assert Delivery.objects.count() == 1  # the next reply knows it is gone


def test_replies_find_the_agents_subscriptions_without_the_database_and_see_every_change(
    push_service, alice, bob, django_assert_num_queries
):
    assert agent_push_subscriptions([alice.pk]) == []
    first = subscribe(push_service, agent=alice)
    assert agent_push_subscriptions([alice.pk]) == [first]
    with django_assert_num_queries(0):
        assert agent_push_subscriptions([alice.pk]) == [first]

    theirs = subscribe(push_service, agent=bob)
    keys = {"p256dh": first.p256dh, "auth": first.auth}
    push_subscribe(subscription={"endpoint": first.endpoint, "keys": keys}, agent=bob)
    assert agent_push_subscriptions([alice.pk]) == []  # one browser, one owner: now Bob's
    assert {s.pk for s in agent_push_subscriptions([alice.pk, bob.pk])} == {first.pk, theirs.pk}

    push_unsubscribe(endpoint=first.endpoint, agent=bob)
    assert agent_push_subscriptions([bob.pk]) == [theirs]
    bob.delete()
    assert agent_push_subscriptions([bob.pk]) == []


def test_it_retries_a_failing_push_service_a_bounded_number_of_times(
    push_service, settings, site, alice, visitor_a
):
    settings.HELPDESK_DELIVERY_ATTEMPTS = 3
    failing = subscribe(push_service, agent=alice, status=500)
    conversation = assigned_to(alice, site, visitor_a)

    posted = visitor_message_receive(conversation=conversation, body="Hello?", client_id="c1")

    assert [p.status for p in push_service.wait_for(3)] == [500, 500, 500]
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert "500" in delivery.error
    assert PushSubscription.objects.filter(pk=failing.pk).exists()  # maybe back tomorrow
    assert posted.created and Message.objects.filter(body="Hello?").exists()  # chat unharmed


def test_it_records_an_unreachable_push_service_and_keeps_the_chat(
    settings, site, alice, visitor_a
):
    settings.HELPDESK_DELIVERY_ATTEMPTS = 2
    push_subscribe(
        subscription={
            "endpoint": "http://127.0.0.1:9/push/x",
            "keys": {"p256dh": "BA", "auth": "AA"},
        },
        agent=alice,
    )
    conversation = assigned_to(alice, site, visitor_a)

    posted = visitor_message_receive(conversation=conversation, body="Anyone?", client_id="c1")

    assert posted.created
    delivery = Delivery.objects.get()
    assert delivery.status == "failed" and delivery.error


def test_it_pushes_an_agent_reply_to_the_visitors_subscribed_browser(
    push_service, site, alice, visitor_a
):
    conversation = assigned_to(alice, site, visitor_a)
    browser = DjangoClient()
    response = browser.post(
        f"/widget/{site.key}/push/",
        json.dumps(
            {"token": visitor_token(visitor_a), "subscription": push_service.subscription()}
        ),
        content_type="application/json",
    )
    assert response.status_code == 201

    agent_message_post(
        conversation=conversation,
        agent=alice,
        body="Found it: it is at the post office.",
        client_id="a1",
    )

    [push] = push_service.wait_for(1)
    assert push.payload["kind"] == "reply"
    assert push.payload["title"] == "New reply from Acme"
    assert push.payload["body"] == "Found it: it is at the post office."
    assert push.payload["url"].startswith("/r/") and push.payload["scope"] == "/widget/"
    assert Delivery.objects.get().visitor == visitor_a


def test_it_refuses_widget_subscriptions_without_a_valid_token_or_subscription(
    push_service, site, visitor_a, other_site
):
    browser = DjangoClient()
    url = f"/widget/{site.key}/push/"
    good = push_service.subscription()

    def post(data) -> int:
        return browser.post(url, json.dumps(data), content_type="application/json").status_code

    assert post({"token": "forged", "subscription": good}) == 403
    other = other_site.visitors.create()
    assert post({"token": visitor_token(other), "subscription": good}) == 403
    assert post({"token": visitor_token(visitor_a), "subscription": {"endpoint": "ftp://x"}}) == 400
    assert post({"token": visitor_token(visitor_a)}) == 400
    assert browser.post(url, "not json", content_type="application/json").status_code == 400
    assert PushSubscription.objects.count() == 0


def test_it_stores_an_agents_subscription_from_the_console_and_moves_an_endpoint_to_its_new_owner(
    push_service, alice, bob, admin
):
    subscription = push_service.subscription()
    for user in [alice.user, bob.user]:
        browser = DjangoClient()
        browser.force_login(user)
        response = browser.post(
            "/console/push/subscribe/", json.dumps(subscription), content_type="application/json"
        )
        assert response.status_code == 201
    assert PushSubscription.objects.get().agent == bob  # one browser, one owner: the last

    superuser = DjangoClient()
    superuser.force_login(admin)
    response = superuser.post(
        "/console/push/subscribe/", json.dumps(subscription), content_type="application/json"
    )
    assert response.status_code == 403  # an admin without an agent profile gets nothing
    anonymous = DjangoClient().post(
        "/console/push/subscribe/", json.dumps(subscription), content_type="application/json"
    )
    assert anonymous.status_code == 302

    browser = DjangoClient()
    browser.force_login(bob.user)
    browser.post(
        "/console/push/unsubscribe/",
        json.dumps({"endpoint": subscription["endpoint"]}),
        content_type="application/json",
    )
    assert PushSubscription.objects.count() == 0


def test_it_saves_an_agents_notification_preferences(alice):
    browser = DjangoClient()
    browser.force_login(alice.user)

    response = browser.post("/console/notifications/", {"queued": "on", "sound": "on"})

    assert response.status_code == 200 and b"Saved." in response.content
    alice.refresh_from_db()
    assert (
        alice.notify_queued,
        alice.notify_assigned,
        alice.notify_replies,
        alice.notify_sound,
    ) == (
        True,
        False,
        False,
        True,
    )


async def test_it_tells_the_agents_console_about_a_customer_reply(site, alice, visitor_a):
    from channels.db import database_sync_to_async

    conversation = await database_sync_to_async(assigned_to)(alice, site, visitor_a)
    console = await console_for(alice.user)
    widget = await widget_for(visitor_a)

    await widget.send(
        type="message.create", client_id="v1", body="Still there?", conversation_id=conversation.pk
    )

    frame = await console.expect("notification.created")
    assert frame == {
        "type": "notification.created",
        "kind": "reply",
        "conversation_id": conversation.pk,
        "title": "Ann replied",
        "body": "Still there?",
        "url": f"/console/c/{conversation.pk}/",
        "tag": f"conversation-{conversation.pk}",
        "sound": True,
    }
    await console.close()
    await widget.close()


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://push.example.com/x",
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://10.0.0.5/x",
        "https://localhost/x",
        "ftp://push.example.com/x",
    ],
)
def test_it_refuses_endpoints_that_are_not_public_https_hosts(settings, alice, endpoint):
    from chat.services.notifications import BadSubscription

    settings.WEBPUSH_ALLOW_HTTP = False
    with pytest.raises(BadSubscription):
        push_subscribe(
            subscription={"endpoint": endpoint, "keys": {"p256dh": "BA", "auth": "AA"}},
            agent=alice,
        )
    push_subscribe(
        subscription={
            "endpoint": "https://fcm.googleapis.com/fcm/send/abc",
            "keys": {"p256dh": "BA", "auth": "AA"},
        },
        agent=alice,
    )
    assert PushSubscription.objects.get().agent == alice
