"""E-mail to customers: replies they did not see within the site's minutes, in one grouped
message with a signed link back; transcripts on request and at close. Sent to a real SMTP
server on 127.0.0.1."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client as DjangoClient
from django.utils import timezone

from chat.models import Conversation, Delivery, Message, Visitor
from chat.services.conversations import agent_message_post, conversation_close
from chat.services.notifications import email_fallback_sweep
from chat.services.receipts import conversation_read
from chat.services.visitors import visitor_token
from tests.conftest import widget_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ann(visitor_a) -> Visitor:
    """Ann left her address (the offline form), chatting from the shop's order page."""
    Visitor.objects.filter(pk=visitor_a.pk).update(email="ann@example.com", user_agent="Firefox")
    visitor_a.refresh_from_db()
    return visitor_a


@pytest.fixture
def chat(site, alice, ann) -> Conversation:
    conversation = Conversation.objects.create(
        site=site,
        visitor=ann,
        status=Conversation.Status.ASSIGNED,
        assignee=alice,
        page_url="https://shop.acme.test/orders/1234",
    )
    agent_message_post(
        conversation=conversation, agent=alice, body="Hi Ann, checking now.", client_id="a1"
    )
    agent_message_post(
        conversation=conversation, agent=alice, body="It ships tomorrow.", client_id="a2"
    )
    return conversation


def minutes_later(minutes: float):
    return timezone.now() + timedelta(minutes=minutes)


def link_in(text: str) -> str:
    match = re.search(r"http://testserver(/r/[^\s]+/)", text)
    assert match, text
    return match.group(1)


@pytest.fixture(autouse=True)
def public_url(settings) -> None:
    settings.HELPDESK_PUBLIC_URL = "http://testserver"


def test_it_emails_unseen_replies_once_in_one_message_after_the_sites_minutes(smtp_server, chat):
    assert email_fallback_sweep(now=minutes_later(2)) == 0  # the site's 3 minutes are not up

    assert email_fallback_sweep(now=minutes_later(3.1)) == 1

    [mail] = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["ann@example.com"]
    assert mail.subject == "2 new replies from Acme"
    assert "Hi Ann, checking now." in mail.text and "It ships tomorrow." in mail.text
    assert mail.text.index("checking now") < mail.text.index("ships tomorrow")
    assert "Alice" in mail.text
    link_in(mail.text)
    assert email_fallback_sweep(now=minutes_later(10)) == 0  # never twice
    assert Delivery.objects.get(kind="digest").status == "sent"


def test_it_emails_only_the_replies_that_came_after_the_last_e_mail(smtp_server, chat, alice):
    email_fallback_sweep(now=minutes_later(4))
    agent_message_post(conversation=chat, agent=alice, body="Tracking: AC123.", client_id="a3")

    email_fallback_sweep(now=minutes_later(8))

    _first, second = smtp_server.wait_for(2)
    assert second.subject == "New reply from Acme"
    assert "Tracking: AC123." in second.text and "ships tomorrow" not in second.text


def test_it_sends_nothing_for_replies_the_visitor_saw(smtp_server, chat):
    chat.refresh_from_db()
    conversation_read(conversation=chat, reader="visitor", seq=chat.last_seq)

    assert email_fallback_sweep(now=minutes_later(10)) == 0
    assert smtp_server.received == []


def test_it_follows_the_sites_minutes_and_its_off_switch(smtp_server, site, chat):
    site.email_fallback_minutes = 0
    site.save()
    assert email_fallback_sweep(now=minutes_later(60)) == 0
    site.email_fallback_minutes = 10
    site.save()
    assert email_fallback_sweep(now=minutes_later(5)) == 0
    assert email_fallback_sweep(now=minutes_later(11)) == 1


def test_it_emails_nobody_who_left_no_address(smtp_server, site, alice, visitor_b):
    conversation = Conversation.objects.create(
        site=site, visitor=visitor_b, status=Conversation.Status.ASSIGNED, assignee=alice
    )
    agent_message_post(conversation=conversation, agent=alice, body="Hello?", client_id="a1")
    assert email_fallback_sweep(now=minutes_later(60)) == 0


async def test_it_takes_what_the_widget_showed_as_seen(chat):
    from channels.db import database_sync_to_async

    widget = await widget_for(chat.visitor)
    await widget.send(type="message.read", conversation_id=chat.pk, seq=2)
    await widget.send(type="ping")
    await widget.expect("pong")
    await widget.close()

    await database_sync_to_async(chat.refresh_from_db)()
    assert chat.visitor_read_seq == 2
    assert await database_sync_to_async(email_fallback_sweep)(now=minutes_later(10)) == 0


def test_its_link_reopens_the_conversation_in_the_widget_on_the_sites_page(
    smtp_server, site, chat, ann
):
    email_fallback_sweep(now=minutes_later(4))
    [mail] = smtp_server.wait_for(1)
    path = link_in(mail.text)
    browser = DjangoClient()  # another device: no visitor token of its own

    response = browser.get(path)

    assert response.status_code == 302
    target, _, fragment = response["Location"].partition("#hd-resume=")
    assert target == "https://shop.acme.test/orders/1234"
    ann.refresh_from_db()
    assert ann.email_verified  # she opened what we sent to her address
    widget = browser.get(
        f"/widget/{site.key}/", {"resume": fragment, "origin": "https://shop.acme.test"}
    )
    assert f'data-resume-token="{visitor_token(ann)}"' in widget.content.decode()
    assert f'data-resume-conversation="{chat.pk}"' in widget.content.decode()


def test_it_refuses_a_forged_or_foreign_link(site, other_site, chat):
    browser = DjangoClient()
    assert browser.get("/r/forged-token/").status_code == 404
    page = browser.get(f"/widget/{site.key}/", {"resume": "forged"}).content.decode()
    assert 'data-resume-token=""' in page
    from chat.services.links import resume_token

    foreign = browser.get(f"/widget/{other_site.key}/", {"resume": resume_token(chat)})
    assert 'data-resume-token=""' in foreign.content.decode()


def test_it_emails_the_transcript_when_an_agent_closes_the_conversation(smtp_server, chat, alice):
    Message.objects.filter(conversation=chat).update(created_at=timezone.now())
    conversation_close(conversation=chat, by=alice)

    [mail] = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["ann@example.com"]
    assert mail.subject == "Your conversation with Acme"
    assert "Hi Ann, checking now." in mail.text and "It ships tomorrow." in mail.text
    assert "This conversation was closed." not in mail.text  # system notes stay out
    link_in(mail.text)
    assert re.search(r"http://testserver/rate/[^\s]+/", mail.text)  # rate it later, too


async def test_it_emails_the_transcript_when_the_visitor_asks(smtp_server, chat):
    widget = await widget_for(chat.visitor)

    await widget.send(type="transcript.request", conversation_id=chat.pk)

    frame = await widget.expect("transcript.queued")
    assert frame == {
        "type": "transcript.queued",
        "conversation_id": chat.pk,
        "email": "ann@example.com",
    }
    [mail] = smtp_server.wait_for(1)
    assert mail.subject == "Your conversation with Acme"
    await widget.close()


async def test_it_asks_for_an_address_before_sending_a_transcript(smtp_server, site, visitor_b):
    from channels.db import database_sync_to_async

    conversation = await database_sync_to_async(Conversation.objects.create)(
        site=site, visitor=visitor_b
    )
    widget = await widget_for(visitor_b)

    await widget.send(type="transcript.request", conversation_id=conversation.pk)

    error = await widget.expect("error")
    assert error["code"] == "invalid_frame" and "e-mail" in error["message"]
    assert smtp_server.received == []
    await widget.close()


def test_it_retries_a_busy_mailbox_then_records_the_failure(smtp_server, settings, chat):
    settings.HELPDESK_DELIVERY_ATTEMPTS = 3
    smtp_server.defer.add("ann@example.com")

    email_fallback_sweep(now=minutes_later(4))

    delivery = Delivery.objects.get(kind="digest")
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert "451" in delivery.error
    assert smtp_server.attempts == 3


def test_it_does_not_retry_a_mailbox_that_does_not_exist(smtp_server, chat):
    smtp_server.refuse.add("ann@example.com")

    email_fallback_sweep(now=minutes_later(4))

    delivery = Delivery.objects.get(kind="digest")
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "550" in delivery.error


def test_its_link_opens_the_stand_alone_widget_for_a_site_without_pages(site, chat):
    site.allowed_origins = ""
    site.save()
    from chat.services.links import resume_token

    response = DjangoClient().get(f"/r/{resume_token(chat)}/")

    assert response.status_code == 302
    assert response["Location"].startswith(f"/widget/{site.key}/?resume=")
