"""Feedback: 👍/👎 on bot answers, the rating survey at close, and the signed rating link."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core import signing
from django.test import Client as DjangoClient
from django.utils import timezone

from chat.models import Conversation, CsatRating, Message, Site
from chat.services import csat
from chat.services.conversations import (
    agent_message_post,
    conversation_close,
    conversation_handoff,
    conversation_take,
    feedback_record,
)
from chat.services.messages import message_post
from chat.services.review import review_items
from tests.conftest import console_for, widget_for

pytestmark = pytest.mark.django_db


def started(site: Site, visitor) -> Conversation:  # type: ignore[no-untyped-def]
    return Conversation.objects.create(site=site, visitor=visitor)


def bot_answer(conversation: Conversation, body: str = "3–5 business days.") -> Message:
    message_post(
        conversation=conversation, author=Message.Author.VISITOR, body="When will it arrive?"
    )
    return message_post(
        conversation=conversation,
        author=Message.Author.BOT,
        body=body,
        meta={"entry_id": 1, "title": "Shipping", "confidence": 0.8},
    ).message


def agent_replied(conversation: Conversation, agent) -> Conversation:  # type: ignore[no-untyped-def]
    agent_message_post(conversation=conversation, agent=agent, body="Hi!", client_id="a-hi")
    conversation.refresh_from_db()
    return conversation


# --- 👍 / 👎 on bot answers -------------------------------------------------------------------


def test_it_stores_feedback_on_each_bot_answer_and_offers_a_person_on_thumbs_down(site, visitor_a):
    conversation = started(site, visitor_a)
    first = bot_answer(conversation, "First answer.")
    second = bot_answer(conversation, "Second answer.")
    third = bot_answer(conversation, "Third answer.")

    feedback_record(conversation=conversation, seq=first.seq, helpful=True)
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.BOT  # 👍 keeps the bot

    feedback_record(conversation=conversation, seq=second.seq, helpful=False)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.helpful, second.helpful) == (True, False)
    offer = Message.objects.filter(conversation=conversation).order_by("-seq").first()
    assert offer is not None and offer.meta.get("event") == "unhelpful"
    assert "Talk to a person" in offer.body  # 👎 offers a person...
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.BOT

    feedback_record(conversation=conversation, seq=third.seq, helpful=False)
    conversation.refresh_from_db()  # ...and the next 👎 hands over
    assert conversation.status == Conversation.Status.WAITING
    assert conversation.handoff_reason == "unhelpful"
    unhelpful = [i for i in review_items(sites=Site.objects.all()) if i.kind == "unhelpful"]
    assert sorted(item.answer_seq for item in unhelpful) == [second.seq, third.seq]


def test_it_refuses_feedback_on_anything_but_a_bot_answer(site, visitor_a):
    conversation = started(site, visitor_a)
    bot_answer(conversation)
    with pytest.raises(Exception, match="assistant"):
        feedback_record(conversation=conversation, seq=1, helpful=True)  # the visitor's own


# --- Who is asked -------------------------------------------------------------------------------


def test_it_asks_for_a_rating_when_an_agent_closes_after_replying(site, visitor_a, alice):
    conversation = agent_replied(started(site, visitor_a), alice)
    conversation_close(conversation=conversation, by=alice)
    rating = CsatRating.objects.get(conversation=conversation)
    assert rating.score is None and rating.resolved_by == "human"
    assert rating.question == site.csat_question and rating.scale == "stars"


def test_it_skips_the_survey_when_only_the_bot_talked_if_the_site_says_so(site, visitor_a):
    conversation = started(site, visitor_a)
    bot_answer(conversation)
    conversation_close(conversation=conversation, by=None)
    assert not CsatRating.objects.exists()

    Site.objects.filter(pk=site.pk).update(csat_only_if_human=False)
    other = started(Site.objects.get(pk=site.pk), visitor_a)
    conversation_close(conversation=other, by=None)
    assert CsatRating.objects.get(conversation=other).resolved_by == "bot"


def test_it_asks_once_per_conversation_even_when_it_closes_twice(site, visitor_a, alice):
    conversation = agent_replied(started(site, visitor_a), alice)
    conversation_close(conversation=conversation, by=alice)
    agent_message_post(conversation=conversation, agent=alice, body="One more thing", client_id="x")
    conversation.refresh_from_db()
    assert conversation.is_open  # the reply reopened it
    conversation_close(conversation=conversation, by=alice)
    assert CsatRating.objects.filter(conversation=conversation).count() == 1


def test_it_does_not_ask_the_same_visitor_again_within_the_cooldown(site, visitor_a, alice):
    Site.objects.filter(pk=site.pk).update(csat_cooldown_days=7)
    first = agent_replied(started(Site.objects.get(pk=site.pk), visitor_a), alice)
    conversation_close(conversation=first, by=alice)
    second = agent_replied(started(Site.objects.get(pk=site.pk), visitor_a), alice)
    conversation_close(conversation=second, by=alice)
    assert list(CsatRating.objects.values_list("conversation_id", flat=True)) == [first.pk]

    CsatRating.objects.update(requested_at=timezone.now() - timedelta(days=8))
    third = agent_replied(started(Site.objects.get(pk=site.pk), visitor_a), alice)
    conversation_close(conversation=third, by=alice)
    assert CsatRating.objects.filter(conversation=third).exists()


def test_it_does_not_ask_when_the_site_turned_ratings_off(site, visitor_a, alice):
    Site.objects.filter(pk=site.pk).update(csat_enabled=False)
    conversation = agent_replied(started(Site.objects.get(pk=site.pk), visitor_a), alice)
    conversation_close(conversation=conversation, by=alice)
    assert not CsatRating.objects.exists()


def test_it_lets_an_agent_close_without_a_survey_from_the_console(site, visitor_a, alice):
    conversation = agent_replied(started(site, visitor_a), alice)
    browser = DjangoClient()
    browser.force_login(alice.user)
    page = browser.get(f"/console/c/{conversation.pk}/")
    assert b'name="skip_survey"' in page.content
    response = browser.post(f"/console/c/{conversation.pk}/close/", {"skip_survey": "1"})
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.CLOSED
    assert not CsatRating.objects.exists()


def test_it_asks_when_the_agent_closes_from_the_console_with_the_box_unticked(
    site, visitor_a, alice
):
    conversation = agent_replied(started(site, visitor_a), alice)
    browser = DjangoClient()
    browser.force_login(alice.user)
    browser.post(f"/console/c/{conversation.pk}/close/")
    assert CsatRating.objects.filter(conversation=conversation, agent=alice).exists()


# --- Attribution -------------------------------------------------------------------------------


def test_it_freezes_the_agent_and_team_of_the_close(site, visitor_a, alice, bob, support, sales):
    conversation = agent_replied(started(site, visitor_a), alice)
    conversation_close(conversation=conversation, by=alice)
    rating = csat.csat_record(conversation=conversation, score=4, comment="Quick, thanks")

    # Later the conversation is reopened by Bob of Sales, and Alice is renamed.
    agent_message_post(conversation=conversation, agent=bob, body="Bob here", client_id="b1")
    Conversation.objects.filter(pk=conversation.pk).update(team=sales)
    alice.display_name = "Alice Renamed"
    alice.save()

    rating.refresh_from_db()
    assert (rating.agent_id, rating.agent_name) == (alice.pk, "Alice")
    assert (rating.team_id, rating.team_name) == (support.pk, "Support")
    assert (rating.score, rating.comment) == (4, "Quick, thanks")


def test_it_records_whether_a_person_or_the_bot_resolved_it(site, visitor_a, alice):
    Site.objects.filter(pk=site.pk).update(csat_only_if_human=False)
    site.refresh_from_db()
    by_bot = started(site, visitor_a)
    conversation_close(conversation=by_bot, by=None)
    by_human = started(site, visitor_a)
    conversation_handoff(conversation=by_human, reason="asked_for_human")
    conversation_take(conversation=by_human, agent=alice)
    by_human = agent_replied(by_human, alice)
    conversation_close(conversation=by_human, by=alice)
    resolved = dict(CsatRating.objects.values_list("conversation_id", "resolved_by"))
    assert resolved == {by_bot.pk: "bot", by_human.pk: "human"}


def test_it_sets_first_response_at_on_the_first_agent_reply_only(site, visitor_a, alice):
    conversation = started(site, visitor_a)
    message_post(conversation=conversation, author=Message.Author.VISITOR, body="Hello")
    conversation.refresh_from_db()
    assert conversation.first_response_at is None
    first = agent_message_post(conversation=conversation, agent=alice, body="Hi", client_id="1")
    agent_message_post(conversation=conversation, agent=alice, body="Again", client_id="2")
    conversation.refresh_from_db()
    assert conversation.first_response_at == first.message.created_at


def test_it_stores_a_rating_once(site, visitor_a, alice):
    conversation = agent_replied(started(site, visitor_a), alice)
    with pytest.raises(csat.CsatError, match="No rating was asked"):
        csat.csat_record(conversation=conversation, score=5)
    conversation_close(conversation=conversation, by=alice)
    csat.csat_record(conversation=conversation, score=5)
    with pytest.raises(csat.CsatError, match="rated already"):
        csat.csat_record(conversation=conversation, score=1)
    with pytest.raises(csat.CsatError, match="1 to 5"):
        csat.csat_record(conversation=conversation, score=6)
    assert CsatRating.objects.get().score == 5


# --- Over the widget socket ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_it_asks_the_widget_at_close_and_records_the_answer(site, visitor_a, alice):
    conversation = await database_sync_to_async(started)(site, visitor_a)
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    await widget.expect("sync.done")
    await database_sync_to_async(agent_replied)(conversation, alice)
    console = await console_for(alice.user)  # the agent closes from the console
    await database_sync_to_async(conversation_close)(conversation=conversation, by=alice)

    await widget.expect("conversation.updated", status="closed")
    asked = await widget.expect("csat.requested")
    assert asked == {
        "type": "csat.requested",
        "conversation_id": conversation.pk,
        "scale": "stars",
        "question": "How would you rate this conversation?",
    }
    await widget.send(type="csat.create", conversation_id=conversation.pk, score=9, comment="")
    assert (await widget.expect("error"))["code"] == "invalid_frame"
    await widget.send(
        type="csat.create", conversation_id=conversation.pk, score=5, comment="x" * 1001
    )
    assert (await widget.expect("error"))["code"] == "invalid_frame"
    await widget.send(
        type="csat.create", conversation_id=conversation.pk, score="5", comment="Great"
    )
    assert (await widget.expect("error"))["code"] == "invalid_frame"

    await widget.send(type="csat.create", conversation_id=conversation.pk, score=5, comment="Great")
    recorded = await widget.expect("csat.recorded")
    assert recorded == {"type": "csat.recorded", "conversation_id": conversation.pk, "score": 5}
    await widget.send(type="csat.create", conversation_id=conversation.pk, score=1)
    assert (await widget.expect("error"))["code"] == "conflict"

    rating = await database_sync_to_async(CsatRating.objects.get)(conversation=conversation)
    assert (rating.score, rating.comment, rating.agent_name) == (5, "Great", "Alice")
    await widget.close()
    await console.close()


@pytest.mark.django_db(transaction=True)
async def test_it_lets_the_visitor_end_the_chat_and_asks_again_after_a_reconnect(
    site, visitor_a, visitor_b, alice
):
    conversation = await database_sync_to_async(started)(site, visitor_a)
    await database_sync_to_async(agent_replied)(conversation, alice)
    intruder = await widget_for(visitor_b)
    await intruder.send(type="conversation.close", conversation_id=conversation.pk)
    assert (await intruder.expect("error"))["code"] == "not_found"

    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    await widget.expect("sync.done")
    await widget.send(type="conversation.close", conversation_id=conversation.pk)
    await widget.expect("conversation.updated", status="closed")
    await widget.expect("csat.requested", conversation_id=conversation.pk)
    await widget.send(type="conversation.close", conversation_id=conversation.pk)
    assert (await widget.expect("error"))["code"] == "conflict"
    await widget.close()

    again = await widget_for(visitor_a)  # left without answering, came back
    await again.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    await again.expect("csat.requested", conversation_id=conversation.pk)
    await intruder.send(type="csat.create", conversation_id=conversation.pk, score=1)
    assert (await intruder.expect("error"))["code"] == "not_found"
    rating = await database_sync_to_async(CsatRating.objects.get)(conversation=conversation)
    assert rating.agent_name == "Alice" and rating.score is None
    await again.close()
    await intruder.close()


# --- The signed link ------------------------------------------------------------------------


def closed_with_survey(site: Site, visitor, agent) -> Conversation:  # type: ignore[no-untyped-def]
    conversation = agent_replied(started(site, visitor), agent)
    conversation_close(conversation=conversation, by=agent)
    return conversation


def test_it_lets_a_visitor_rate_from_the_link_once(site, visitor_a, alice):
    conversation = closed_with_survey(site, visitor_a, alice)
    link = csat.csat_link(conversation)
    assert link.startswith("/rate/") and link.endswith("/")
    browser = DjangoClient(enforce_csrf_checks=True)
    page = browser.get(link)
    assert page.status_code == 200
    assert "How would you rate this conversation?" in page.content.decode()
    token = page.cookies["csrftoken"].value

    missing = browser.post(link, {"comment": "no score", "csrfmiddlewaretoken": token})
    assert missing.status_code == 400 and "choose a rating" in missing.content.decode()
    done = browser.post(link, {"score": "2", "comment": "Slow", "csrfmiddlewaretoken": token})
    assert done.status_code == 200 and "Thank you" in done.content.decode()
    twice = browser.post(link, {"score": "5", "csrfmiddlewaretoken": token})
    assert twice.status_code == 409 and "rated already" in twice.content.decode()
    assert "rated already" in browser.get(link).content.decode()
    rating = CsatRating.objects.get()
    assert (rating.score, rating.comment) == (2, "Slow")


def test_it_shows_a_clear_page_for_an_expired_link(site, visitor_a, alice, settings):
    conversation = closed_with_survey(site, visitor_a, alice)

    class LongAgo(signing.TimestampSigner):
        def timestamp(self) -> str:
            days = settings.HELPDESK_CSAT_LINK_DAYS + 1
            return signing.b62_encode(int(time.time()) - days * 86400)

    payload = {"c": conversation.pk, "v": str(visitor_a.public_id)}
    old = LongAgo(salt=csat.LINK_SALT).sign_object(payload)
    response = DjangoClient().get(f"/rate/{old}/")
    assert response.status_code == 410 and "expired" in response.content.decode()
    fresh = csat.csat_link(conversation)
    assert DjangoClient().get(fresh).status_code == 200
    assert DjangoClient().post(f"/rate/{old}/", {"score": "5"}).status_code == 410
    assert CsatRating.objects.get().score is None


def test_it_refuses_forged_links(site, visitor_a, visitor_b, alice):
    conversation = closed_with_survey(site, visitor_a, alice)
    token = csat.csat_link(conversation).split("/")[2]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    unsigned = signing.dumps({"c": conversation.pk, "v": str(visitor_a.public_id)}, salt="other")
    # Correctly signed, but the conversation is not the named visitor's.
    not_theirs = signing.dumps(
        {"c": conversation.pk, "v": str(visitor_b.public_id)}, salt=csat.LINK_SALT
    )
    for bad in [forged, unsigned, not_theirs, "nonsense"]:
        response = DjangoClient().post(f"/rate/{bad}/", {"score": "5"})
        assert response.status_code == 404
        assert "not valid" in response.content.decode()
    assert CsatRating.objects.get().score is None


def test_it_says_so_when_a_link_names_a_conversation_without_a_survey(site, visitor_a, alice):
    conversation = agent_replied(started(site, visitor_a), alice)  # still open: nothing asked
    response = DjangoClient().get(csat.csat_link(conversation))
    assert response.status_code == 404 and "no survey" in response.content.decode()
