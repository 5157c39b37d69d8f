"""The whole path: visitor → bot answer → "talk to a person" → queue → agent → reply → close."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Message
from tests.conftest import console_for, widget_connect

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_runs_the_whole_conversation_from_bot_to_agent_and_back(site, alice):
    widget, connected, _ = await widget_connect(site)
    assert connected
    ready = await widget.expect("session.ready")
    assert ready["visitor"]["token"] and ready["conversation"] is None

    await widget.send(type="message.create", client_id="c1", body="How many days for delivery?")
    ack = await widget.expect("message.ack", client_id="c1")
    conversation_id = ack["conversation_id"]
    answer = await widget.expect("message.created", author="bot")
    assert "3–5 business days" in answer["body"]
    assert answer["source"]["title"] == "How long does shipping take?"
    assert answer["confidence"] > 0.4 and answer["ask_feedback"] is True

    await widget.send(type="handoff.request", conversation_id=conversation_id)
    update = await widget.expect("conversation.updated")
    assert update["status"] == "waiting" and update["handoff_reason"] == "asked_for_human"

    console = await console_for(alice.user)
    await console.send(type="conversation.sync", conversation_id=conversation_id, after_seq=0)
    transcript = [f["author"] for f in await console.drain() if f["type"] == "message.created"]
    assert transcript == ["visitor", "bot", "system"]

    await console.send(
        type="message.create",
        conversation_id=conversation_id,
        client_id="a1",
        body="Hi, Alice here!",
    )
    assert (await console.expect("message.ack", client_id="a1"))["seq"] == 5  # 4 = "joined"
    joined = await widget.expect("conversation.updated", status="assigned")
    assert joined["assignee_name"] == "Alice"
    reply = await widget.expect("message.created", author="agent")
    assert reply["body"] == "Hi, Alice here!" and reply["author_name"] == "Alice"

    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation_id)
    from chat.services.conversations import conversation_close

    await database_sync_to_async(conversation_close)(conversation=conversation, by=alice)
    closed = await widget.expect("conversation.updated", status="closed")
    assert closed["conversation_id"] == conversation_id
    await widget.close()
    await console.close()


async def test_it_hands_off_when_the_visitor_asks_for_a_human_in_words(site):
    widget, _, _ = await widget_connect(site)
    await widget.expect("session.ready")
    await widget.send(type="message.create", client_id="c1", body="I want to talk to a human")
    update = await widget.expect("conversation.updated", status="waiting")
    assert update["handoff_reason"] == "asked_for_human"
    await widget.close()


async def test_it_hands_off_when_the_bot_is_not_confident(site):
    widget, _, _ = await widget_connect(site)
    await widget.expect("session.ready")
    await widget.send(type="message.create", client_id="c1", body="Do you sell purple elephants?")
    update = await widget.expect("conversation.updated", status="waiting")
    assert update["handoff_reason"] == "low_confidence"
    frames = await widget.drain()
    assert not [f for f in frames if f["type"] == "message.created" and f["author"] == "bot"]
    await widget.close()


async def test_it_answers_chinese_questions_from_chinese_entries(site):
    widget, _, _ = await widget_connect(site)
    await widget.expect("session.ready")
    await widget.send(type="message.create", client_id="c1", body="请问邮费多少钱？")
    answer = await widget.expect("message.created", author="bot")
    assert "包邮" in answer["body"]
    await widget.close()


async def ask_bot(widget, body, client_id, conversation_id=None):
    """Send a visitor message and return the bot's answer to it."""
    frame = {"type": "message.create", "client_id": client_id, "body": body}
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    await widget.send(**frame)
    return await widget.expect("message.created", author="bot")


async def rate_unhelpful(widget, answer):
    await widget.send(
        type="feedback.create",
        conversation_id=answer["conversation_id"],
        seq=answer["seq"],
        helpful=False,
    )
    await widget.expect("feedback.recorded", helpful=False)


async def test_it_lets_the_visitor_rephrase_after_one_unhelpful_answer(site):
    widget, _, _ = await widget_connect(site)
    await widget.expect("session.ready")
    answer = await ask_bot(widget, "I forgot my password", "c1")
    conversation_id = answer["conversation_id"]

    await rate_unhelpful(widget, answer)

    sorry = await widget.expect("message.created", author="bot")
    assert "other words" in sorry["body"] and "Talk to a person" in sorry["body"]
    assert sorry["ask_feedback"] is False and sorry["source"] is None
    frames = await widget.drain()
    assert not [f for f in frames if f["type"] == "conversation.updated"]
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert conversation.status == Conversation.Status.BOT
    second = await ask_bot(widget, "How many days for delivery?", "c2", conversation_id)
    assert "3–5 business days" in second["body"]
    await widget.close()


async def test_it_hands_off_when_a_second_answer_did_not_help(site):
    widget, _, _ = await widget_connect(site)
    await widget.expect("session.ready")
    first = await ask_bot(widget, "I forgot my password", "c1")
    conversation_id = first["conversation_id"]
    await rate_unhelpful(widget, first)
    await widget.expect("message.created", author="bot")  # "Sorry that did not help…"
    second = await ask_bot(widget, "How many days for delivery?", "c2", conversation_id)

    await rate_unhelpful(widget, second)

    update = await widget.expect("conversation.updated", status="waiting")
    assert update["handoff_reason"] == "unhelpful"
    stored = await database_sync_to_async(list)(
        Message.objects.filter(conversation_id=conversation_id, helpful=False).values_list(
            "seq", flat=True
        )
    )
    assert sorted(stored) == [first["seq"], second["seq"]]
    await widget.close()


async def test_it_counts_one_answer_rated_unhelpful_twice_once(site):
    widget, _, _ = await widget_connect(site)
    await widget.expect("session.ready")
    answer = await ask_bot(widget, "I forgot my password", "c1")

    await rate_unhelpful(widget, answer)
    await rate_unhelpful(widget, answer)

    frames = await widget.drain()
    assert not [f for f in frames if f["type"] == "conversation.updated"]
    bot_messages = await database_sync_to_async(
        Message.objects.filter(conversation_id=answer["conversation_id"], author="bot").count
    )()
    assert bot_messages == 2  # the answer and one "Sorry that did not help"
    conversation = await database_sync_to_async(Conversation.objects.get)(
        pk=answer["conversation_id"]
    )
    assert conversation.status == Conversation.Status.BOT
    await widget.close()


async def test_it_lets_exactly_one_of_two_racing_agents_take_a_conversation(site, alice, support):
    from tests.conftest import make_agent

    dave = await database_sync_to_async(make_agent)("dave", "Dave", [support])
    widget, _, _ = await widget_connect(site)
    await widget.expect("session.ready")
    await widget.send(type="message.create", client_id="c1", body="human please")
    update = await widget.expect("conversation.updated", status="waiting")
    conversation_id = update["conversation_id"]

    consoles = [await console_for(alice.user), await console_for(dave.user)]
    for index, console in enumerate(consoles):
        await console.send(
            type="message.create",
            conversation_id=conversation_id,
            client_id=f"r{index}",
            body="Mine!",
        )
    results = await asyncio.gather(*(c.receive() for c in consoles))
    outcomes = []
    for first, console in zip(results, consoles, strict=True):
        frames = [first, *await console.drain()]
        outcomes.append(next(f["type"] for f in frames if f["type"] in {"message.ack", "error"}))
    outcomes.sort()
    assert outcomes == ["error", "message.ack"]
    conversation = await database_sync_to_async(
        Conversation.objects.select_related("assignee").get
    )(pk=conversation_id)
    replies = await database_sync_to_async(
        lambda: list(Message.objects.filter(conversation_id=conversation_id, author="agent"))
    )()
    assert len(replies) == 1 and replies[0].agent_id == conversation.assignee_id
    for client in [widget, *consoles]:
        await client.close()


async def test_it_speaks_to_a_chinese_browser_in_chinese(site):
    from channels.testing import WebsocketCommunicator

    from helpdesk.asgi import application
    from tests.conftest import HOST, OWN_ORIGIN, Client

    communicator = WebsocketCommunicator(
        application,
        f"/ws/widget/v1/?site={site.key}",
        headers=[
            (b"origin", OWN_ORIGIN.encode()),
            (b"host", HOST.encode()),
            (b"accept-language", b"zh-CN,zh;q=0.9,en;q=0.8"),
        ],
    )
    assert (await communicator.connect())[0]
    widget = Client(communicator)
    await widget.expect("session.ready")
    await widget.send(type="message.create", client_id="c1", body="转人工")
    notice = await widget.expect("message.created", author="system")
    assert "人工" in notice["body"]
    await widget.close()
