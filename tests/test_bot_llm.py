"""LLM answers: grounded in the top retrieved entries, streamed, cited, and never a dead end.

Everything runs the real ``openai`` client against ``tests/openai_server.py`` on 127.0.0.1,
scripted per test: answers, hand-off tool calls, and faults (429, 500, too slow, nonsense).
Timeouts are about a second here, so the fault tests stay fast.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec

from bots import Turn
from bots.llm import LlmAnswer, LlmClient, LlmError, LlmHandoff, Passage, _MarkerFilter
from chat.models import BotDecision, Conversation, FaqEntry, Message, Site, Visitor
from chat.services import llm as llm_service
from chat.services.bot import bot_respond, knowledge_index
from chat.services.conversations import conversation_start, visitor_message_receive
from chat.services.messages import message_post
from helpdesk import celery_app
from tests.browser import browsers, wait  # noqa: F401  (fixture)
from tests.conftest import widget_for
from tests.live import CeleryWorker, child_database_env, daphne_server
from tests.openai_server import OpenAIServer, Reply
from tests.test_settings import load_settings

CONFIDENT = "How many days for delivery?"  # retrieval answers it (shipping entry, confidence 1)
UNSURE = "Can I pick up my parcel at your warehouse?"  # retrieval finds something, but too little
SHIPPING_ANSWER = "Standard shipping takes 3–5 business days."

# More entries that share words with CONFIDENT than the model may see.
DELIVERY_FAQ = [
    ("Do you deliver on weekends?", "We deliver Monday to Saturday."),
    ("Can I change my delivery address?", "Yes, until the order ships."),
    ("How much does express delivery cost?", "Express delivery costs $15."),
    ("What if I miss a delivery?", "The courier tries again the next day."),
    ("Do you offer international delivery?", "We deliver to 30 countries."),
    ("Do you deliver to PO boxes?", "No, we need a street address."),
]


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture
def llm(settings, openai_server: OpenAIServer) -> Iterator[OpenAIServer]:
    """LLM mode on for every "auto" site, against the local server."""
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = openai_server.base_url
    settings.OPENAI_MODEL = "test-model"
    settings.OPENAI_TIMEOUT = 1
    settings.OPENAI_MAX_RETRIES = 1
    yield openai_server
    llm_service._client.cache_clear()


@pytest.fixture
def big_faq(site: Site) -> Site:
    for question, answer in DELIVERY_FAQ:
        FaqEntry.objects.create(site=site, question=question, answer=answer)
    return site


def client_for(server: OpenAIServer, *, stream: bool = True, retries: int = 1) -> LlmClient:
    return LlmClient(
        base_url=server.base_url,
        api_key="test-key",
        model="test-model",
        timeout=1,
        max_retries=retries,
        stream=stream,
    )


PASSAGES = [
    Passage(entry_id=11, title="How long does shipping take?", text=SHIPPING_ANSWER),
    Passage(entry_id=12, title="What is your return policy?", text="Returns within 30 days."),
]


def compose(client: LlmClient, deltas: list[str] | None = None) -> LlmAnswer | LlmHandoff:
    return client.compose(
        question=CONFIDENT,
        history=[Turn(role="visitor", body=CONFIDENT)],
        passages=PASSAGES,
        on_delta=None if deltas is None else deltas.append,
    )


def ask(site: Site, visitor: Visitor, body: str) -> Conversation:
    """The visitor's message, stored without waking the bot: each test runs the turn itself."""
    conversation = conversation_start(site=site, visitor=visitor)
    message_post(
        conversation=conversation, author=Message.Author.VISITOR, body=body, client_id="c1"
    )
    return conversation


def bot_turn(conversation: Conversation) -> float:
    """Run the bot's turn; return how long it took, the retrieval index already built (the
    first build loads the embedding model, seconds that have nothing to do with the LLM)."""
    knowledge_index(conversation.site)
    started = time.monotonic()
    bot_respond(conversation_id=conversation.pk, seq=1)
    conversation.refresh_from_db()
    return time.monotonic() - started


async def turn_logged(visitor: Visitor, timeout: float = 10) -> BotDecision:
    """The decision row a turn writes last: once there, the turn's thread is done with the
    database (a test's teardown must not flush it from under the turn)."""
    deadline = time.monotonic() + timeout
    while True:
        row = await BotDecision.objects.filter(conversation__visitor=visitor).afirst()
        if row is not None:
            return row
        assert time.monotonic() < deadline, "the bot's turn never finished"
        await asyncio.sleep(0.02)  # polling for the row, with a deadline


def bot_messages(conversation: Conversation) -> list[Message]:
    return list(conversation.messages.filter(author=Message.Author.BOT))


# --- The client library --------------------------------------------------------------------


def test_it_answers_from_a_plain_json_reply(openai_server):
    openai_server.script(Reply.text("Standard shipping takes 3–5 business days [1]."))
    deltas: list[str] = []
    answer = compose(client_for(openai_server, stream=False), deltas)
    assert answer == LlmAnswer(text=SHIPPING_ANSWER, cited_entry_ids=(11,))
    assert deltas == [SHIPPING_ANSWER]
    assert openai_server.requests[0].body["stream"] is False


def test_it_streams_the_answer_without_its_citation_markers(openai_server):
    openai_server.script(
        Reply.text(
            "Standard shipping ", "takes 3–5 business days [", "1]. Returns: 30 days [2", "]."
        )
    )
    deltas: list[str] = []
    answer = compose(client_for(openai_server), deltas)
    assert answer == LlmAnswer(
        text="Standard shipping takes 3–5 business days. Returns: 30 days.",
        cited_entry_ids=(11, 12),
    )
    assert len(deltas) >= 3 and "".join(deltas) == answer.text
    assert openai_server.requests[0].body["stream"] is True


def test_it_sends_the_passages_the_question_and_the_handoff_tool(openai_server):
    openai_server.script(Reply.text("3–5 days [1]."))
    compose(client_for(openai_server))
    request = openai_server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body["model"] == "test-model"
    assert "[1] How long does shipping take?\n" + SHIPPING_ANSWER in request.system_prompt
    assert "[2] What is your return policy?" in request.system_prompt
    assert request.messages[-1] == {"role": "user", "content": CONFIDENT}
    assert len(request.messages) == 2  # the question is not repeated from the history
    [tool] = request.body["tools"]
    assert tool["function"]["name"] == "handoff_to_human"
    assert tool["function"]["parameters"]["required"] == ["reason"]


def test_it_returns_the_reason_when_the_model_hands_off(openai_server):
    openai_server.script(Reply.tool_call("handoff_to_human", {"reason": "Not in the FAQ"}))
    assert compose(client_for(openai_server)) == LlmHandoff(reason="Not in the FAQ")


def test_it_retries_a_rate_limit_and_then_answers(openai_server):
    openai_server.script(Reply.error(429, retry_after="0"), Reply.text("3–5 days [1]."))
    assert compose(client_for(openai_server)) == LlmAnswer(text="3–5 days.", cited_entry_ids=(11,))
    assert len(openai_server.requests) == 2


def test_it_retries_server_errors_only_so_often(openai_server):
    openai_server.script(then=Reply.error(500))
    with pytest.raises(LlmError) as raised:
        compose(client_for(openai_server, retries=2))
    assert raised.value.kind == "server_error" and not raised.value.permanent
    assert len(openai_server.requests) == 3


def test_it_does_not_retry_what_the_server_refuses(openai_server):
    openai_server.script(then=Reply.error(401))
    with pytest.raises(LlmError) as raised:
        compose(client_for(openai_server, retries=2))
    assert raised.value.kind == "refused" and raised.value.permanent
    assert len(openai_server.requests) == 1


def test_it_gives_up_at_the_deadline_however_slow_the_server(openai_server):
    openai_server.script(Reply.text("Standard ", "shipping", piece_delay=0.6))
    started = time.monotonic()
    with pytest.raises(LlmError) as raised:
        compose(client_for(openai_server), deltas := [])
    assert raised.value.kind == "timeout"
    assert 0.9 < time.monotonic() - started < 1.3
    assert deltas == ["Standard"]  # what came in time was shown


@pytest.mark.parametrize(
    "body", [b"<html>502 Bad Gateway</html>", b"data: {not json\n\n", b'data: {"choices": 7}\n\n']
)
def test_it_reports_a_reply_that_is_not_the_protocol(openai_server, body):
    openai_server.script(then=Reply.nonsense(body))
    with pytest.raises(LlmError) as raised:
        compose(client_for(openai_server))
    assert raised.value.kind == "garbage"


def test_it_holds_back_a_marker_split_across_pieces():
    markers = _MarkerFilter()
    pieces = ["Ships in 3 days ", "[", "1", ", 2", "]", ". Free [over", " $50]."]
    assert "".join(markers.feed(p) for p in pieces) == "Ships in 3 days. Free [over $50]."


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OPENAI_TIMEOUT": "soon"}, "OPENAI_TIMEOUT must be an integer"),
        ({"OPENAI_TIMEOUT": "0"}, "OPENAI_TIMEOUT must be at least 1"),
        ({"OPENAI_TIMEOUT": "60"}, "shorter than CELERY_TASK_TIME_LIMIT"),
    ],
)
def test_it_refuses_llm_settings_that_cannot_work(env, problem):
    result = load_settings(**env)
    assert result.returncode != 0 and problem in result.stderr


# --- The bot's turn -------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_answers_with_the_model_and_cites_the_entries(big_faq, visitor_a, llm):
    llm.script(Reply.text("Standard shipping takes ", "3–5 business days [1]."))
    conversation = ask(big_faq, visitor_a, CONFIDENT)
    bot_turn(conversation)

    [answer] = bot_messages(conversation)
    shipping = FaqEntry.objects.get(question="How long does shipping take?")
    assert answer.body == SHIPPING_ANSWER
    assert answer.meta["citations"] == [
        {"entry_id": shipping.pk, "title": shipping.question, "answer": shipping.answer}
    ]
    assert answer.meta["stream_id"] and answer.meta["model"] == "test-model"
    assert "entry_id" not in answer.meta  # no retrieval "Source:" line under a model answer
    decision = BotDecision.objects.get(conversation=conversation)
    assert decision.outcome == "answer" and decision.used_llm
    assert (decision.entry_id, decision.answer_seq) == (shipping.pk, answer.seq)
    assert decision.scores[0]["entry_id"] == shipping.pk and len(decision.scores) == 5


@pytest.mark.django_db
def test_it_shows_the_model_only_the_top_five_entries(big_faq, visitor_a, llm):
    llm.script(Reply.text("3–5 days [1]."))
    bot_turn(ask(big_faq, visitor_a, CONFIDENT))
    prompt = llm.requests[0].system_prompt
    numbers = re.findall(r"^\[(\d+)\] ", prompt, re.MULTILINE)
    assert numbers == [str(n) for n in range(1, len(numbers) + 1)] and 1 <= len(numbers) <= 5
    assert prompt.index("[1] How long does shipping take?") > 0
    shown = sum(question in prompt for question, _ in DELIVERY_FAQ)
    assert shown < len(DELIVERY_FAQ)
    assert "Forgot password" not in prompt  # nothing about delivery


@pytest.mark.django_db
def test_it_uses_the_sites_own_model(site, visitor_a, llm):
    Site.objects.filter(pk=site.pk).update(llm_model="site-model")
    site.refresh_from_db()
    llm.script(Reply.text("3–5 days [1]."))
    bot_turn(ask(site, visitor_a, CONFIDENT))
    assert llm.requests[0].body["model"] == "site-model"


@pytest.mark.django_db
def test_it_hands_off_when_the_model_calls_the_tool(site, visitor_a, llm):
    llm.script(Reply.tool_call("handoff_to_human", {"reason": "Free shipping is not covered"}))
    conversation = ask(site, visitor_a, UNSURE)
    bot_turn(conversation)
    assert conversation.status == "waiting" and conversation.handoff_reason == "llm_handoff"
    assert bot_messages(conversation) == []
    decision = BotDecision.objects.get(conversation=conversation)
    assert (decision.outcome, decision.reason, decision.used_llm) == (
        "handoff",
        "llm_handoff",
        True,
    )


FAULTS = {
    "rate limit": Reply.error(429),
    "server error": Reply.error(500),
    "nonsense": Reply.nonsense(),
}


@pytest.mark.django_db
@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_it_falls_back_to_the_retrieval_answer_when_the_model_fails(site, visitor_a, llm, fault):
    llm.script(then=fault)
    conversation = ask(site, visitor_a, CONFIDENT)
    bot_turn(conversation)
    [answer] = bot_messages(conversation)
    assert answer.body == SHIPPING_ANSWER
    assert answer.meta["title"] == "How long does shipping take?"  # retrieval's "Source:"
    assert answer.meta["stream_id"]  # it replaces the bubble that showed the bot typing
    assert len(llm.requests) == 2  # one retry (OPENAI_MAX_RETRIES=1), then the fallback
    decision = BotDecision.objects.get(conversation=conversation)
    assert decision.outcome == "answer" and decision.used_llm
    assert decision.reason in {"llm_rate_limited", "llm_server_error", "llm_garbage"}


@pytest.mark.django_db
@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_it_hands_off_when_the_model_fails_and_retrieval_is_unsure(site, visitor_a, llm, fault):
    llm.script(then=fault)
    conversation = ask(site, visitor_a, UNSURE)
    bot_turn(conversation)
    assert llm.requests  # the model was asked: retrieval alone would not have answered
    assert conversation.status == "waiting" and conversation.handoff_reason == "low_confidence"
    assert bot_messages(conversation) == []
    decision = BotDecision.objects.get(conversation=conversation)
    assert (decision.outcome, decision.reason, decision.used_llm) == (
        "handoff",
        "low_confidence",
        True,
    )


@pytest.mark.django_db
def test_it_falls_back_within_the_timeout_when_the_model_is_slow(site, visitor_a, llm):
    llm.script(then=Reply.slow(5))
    conversation = ask(site, visitor_a, CONFIDENT)
    elapsed = bot_turn(conversation)
    assert elapsed < 1.5  # OPENAI_TIMEOUT=1, plus retrieval and a few queries
    assert [m.body for m in bot_messages(conversation)] == [SHIPPING_ANSWER]
    assert BotDecision.objects.get(conversation=conversation).reason == "llm_timeout"


@pytest.mark.django_db(transaction=True)
def test_it_drops_a_model_answer_that_a_newer_question_overtook(site, visitor_a, llm):
    llm.script(Reply(pieces=("Standard shipping takes 3–5 business days [1].",), delay=0.5))
    conversation = ask(site, visitor_a, CONFIDENT)
    knowledge_index(site)  # built before the turn starts, so the model is what takes time
    turn = threading.Thread(target=bot_turn, args=(conversation,))
    turn.start()
    time.sleep(0.2)  # the model is thinking
    message_post(conversation=conversation, author=Message.Author.VISITOR, body="And returns?")
    turn.join()
    assert bot_messages(conversation) == []  # the newer question gets its own turn
    decision = BotDecision.objects.get(conversation=conversation)
    assert (decision.reason, decision.answer_seq) == ("superseded", None)


@pytest.mark.django_db
def test_it_does_not_ask_the_model_for_a_person_or_with_nothing_to_show(site, visitor_a, llm):
    wants_person = ask(site, visitor_a, "I want to talk to a human")
    bot_turn(wants_person)
    nothing_found = ask(site, visitor_a, "Do you sell purple elephants?")
    bot_turn(nothing_found)
    assert llm.requests == []
    assert (wants_person.handoff_reason, nothing_found.handoff_reason) == (
        "asked_for_human",
        "low_confidence",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "key", "asks_model"),
    [("auto", "test-key", True), ("auto", "", False), ("on", "", True), ("off", "test-key", False)],
)
def test_it_uses_the_model_per_site_mode(site, visitor_a, llm, settings, mode, key, asks_model):
    settings.OPENAI_API_KEY = key
    Site.objects.filter(pk=site.pk).update(llm_mode=mode)
    site.refresh_from_db()
    llm.script(Reply.text("3–5 days [1]."))
    conversation = ask(site, visitor_a, CONFIDENT)
    bot_turn(conversation)
    assert bool(llm.requests) is asks_model
    assert BotDecision.objects.get(conversation=conversation).used_llm is asks_model


@pytest.mark.django_db
def test_it_logs_retrieval_only_turns_too(site, visitor_a):
    conversation = ask(site, visitor_a, CONFIDENT)
    bot_turn(conversation)
    decision = BotDecision.objects.get(conversation=conversation)
    assert (decision.outcome, decision.used_llm, decision.question_seq) == ("answer", False, 1)
    assert decision.answer_seq == bot_messages(conversation)[0].seq
    assert decision.confidence > 0.9 and decision.latency_ms > 0


# --- What the widget sees ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_it_streams_deltas_then_the_stored_answer_with_citations(site, visitor_a, llm):
    llm.script(Reply.text("Standard shipping ", "takes 3–5 ", "business days [1]."))
    widget = await widget_for(visitor_a)
    await widget.send(type="message.create", client_id="c1", body=CONFIDENT)

    streaming = await widget.expect("message.streaming")
    stream_id = streaming["stream_id"]
    # The turn runs beside the socket: wait for its end, then look at everything before it.
    ended = await widget.expect("message.stream_ended")
    frames = [*await widget.drain(), ended]
    deltas = [f for f in frames if f["type"] == "message.delta"]
    [answer] = [f for f in frames if f["type"] == "message.created" and f["author"] == "bot"]

    assert len(deltas) >= 3 and {d["stream_id"] for d in deltas} == {stream_id}
    assert "".join(d["text"] for d in deltas) == SHIPPING_ANSWER
    assert frames.index(deltas[-1]) < frames.index(answer) < frames.index(ended)
    assert answer["body"] == SHIPPING_ANSWER and answer["stream_id"] == stream_id
    assert answer["citations"] == [
        {
            "entry_id": answer["citations"][0]["entry_id"],
            "title": "How long does shipping take?",
            "answer": SHIPPING_ANSWER,
        }
    ]
    assert answer["source"] is None and answer["ask_feedback"] is True
    assert ended["stream_id"] == stream_id
    await turn_logged(visitor_a)
    await widget.close()


@pytest.mark.django_db(transaction=True)
async def test_it_ends_the_stream_without_an_answer_when_the_model_hands_off(site, visitor_a, llm):
    llm.script(Reply.tool_call("handoff_to_human", {"reason": "Not covered"}, after="Let me "))
    widget = await widget_for(visitor_a)
    await widget.send(type="message.create", client_id="c1", body=UNSURE)
    stream_id = (await widget.expect("message.streaming"))["stream_id"]
    update = await widget.expect("conversation.updated", status="waiting")
    assert update["handoff_reason"] == "llm_handoff"
    await widget.expect("message.stream_ended", stream_id=stream_id)
    frames = await widget.drain()
    assert not [f for f in frames if f["type"] == "message.created" and f["author"] == "bot"]
    assert (await turn_logged(visitor_a)).reason == "llm_handoff"
    await widget.close()


@pytest.mark.django_db(transaction=True)
async def test_it_shows_the_first_words_long_before_the_answer_is_done(
    site, visitor_a, llm, settings
):
    settings.OPENAI_TIMEOUT = 3
    llm.script(
        Reply.text("Standard shipping ", "takes 3–5 ", "business days [1].", piece_delay=0.25)
    )
    conversation = await database_sync_to_async(ask)(site, visitor_a, CONFIDENT)
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    await widget.expect("sync.done")

    await database_sync_to_async(knowledge_index)(site)  # as the reindex task would have
    # As a Celery worker would: the turn runs beside the socket, not inside it.
    started = time.monotonic()
    turn = asyncio.ensure_future(
        sync_to_async(bot_respond, thread_sensitive=False)(conversation_id=conversation.pk, seq=1)
    )
    await widget.expect("message.streaming")
    await widget.expect("message.delta")
    first_words = time.monotonic() - started
    await widget.expect("message.created", author="bot")
    stored = time.monotonic() - started
    await turn

    # The first words were on screen while the model was still writing the rest (two more
    # pieces, 0.25 s apart). How soon they come is the benchmark's business, not a test's.
    assert stored - first_words > 0.4
    await widget.close()


@pytest.mark.django_db(transaction=True)
async def test_it_streams_to_the_widget_without_a_broker_and_keeps_answering_its_frames(
    site, visitor_a, llm, settings
):
    assert celery_app.conf.task_always_eager  # the embedded default: no worker
    settings.OPENAI_TIMEOUT = 5
    llm.script(
        Reply.text("Standard shipping ", "takes 3–5 ", "business days [1].", piece_delay=0.4)
    )
    await database_sync_to_async(knowledge_index)(site)  # built, as the warm-up does
    widget = await widget_for(visitor_a)
    started = time.monotonic()
    await widget.send(type="message.create", client_id="c1", body=CONFIDENT)
    await widget.expect("message.streaming")
    await widget.expect("message.delta")
    first_words = time.monotonic() - started
    await widget.send(type="ping")
    await widget.expect("pong")
    pong = time.monotonic() - started
    answer = await widget.expect("message.created", author="bot")
    stored = time.monotonic() - started

    # The first words were on screen while two more pieces (0.4 s apart) were being written,
    # and the socket answered the ping meanwhile.
    assert stored - first_words > 0.6
    assert first_words < pong < stored - 0.2
    assert answer["body"] == SHIPPING_ANSWER
    assert (await turn_logged(visitor_a)).used_llm
    await widget.close()


@pytest.mark.django_db(transaction=True)
def test_it_runs_model_turns_beside_the_request_without_a_broker(site, visitor_a, llm, settings):
    settings.OPENAI_TIMEOUT = 5
    llm.script(
        Reply.text("Standard shipping ", "takes 3–5 ", "business days [1].", piece_delay=0.3)
    )
    knowledge_index(site)
    conversation = conversation_start(site=site, visitor=visitor_a)
    started = time.monotonic()
    visitor_message_receive(conversation=conversation, body=CONFIDENT, client_id="c1")
    returned = time.monotonic() - started
    deadline = time.monotonic() + 10
    while not BotDecision.objects.filter(conversation=conversation).exists():
        assert time.monotonic() < deadline, "the bot never answered"
        time.sleep(0.02)  # polling for the turn's decision row, with a deadline

    assert returned < 0.5  # the model writes for ~0.6 s after this returned
    [answer] = bot_messages(conversation)
    assert answer.body == SHIPPING_ANSWER and answer.meta["model"] == "test-model"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_shows_the_cited_entries_under_the_answer_in_the_widget(site, openai_server, browsers):  # noqa: F811
    openai_server.script(Reply.text("Standard shipping ", "takes 3–5 ", "business days [1]."))
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": openai_server.base_url,
        "OPENAI_TIMEOUT": "5",
    }
    with daphne_server(env) as base:
        visitor = browsers()
        visitor.get(f"{base}/widget/{site.key}/")
        box = wait(visitor).until(ec.element_to_be_clickable((By.ID, "body")))
        box.send_keys(CONFIDENT, Keys.ENTER)
        answer = wait(visitor).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg--bot[data-seq]"))
        )
        assert answer.find_element(By.CSS_SELECTOR, ".msg__body").text == SHIPPING_ANSWER
        source = answer.find_element(By.CSS_SELECTOR, ".msg__citation summary")
        assert source.text == "How long does shipping take?"
        cited = answer.find_element(By.CSS_SELECTOR, ".msg__citation-text")
        assert not cited.is_displayed()
        source.click()
        wait(visitor).until(ec.visibility_of(cited))
        assert cited.text == SHIPPING_ANSWER
        # The streamed bubble was replaced, not left beside the stored answer.
        assert len(visitor.find_elements(By.CSS_SELECTOR, ".msg--bot")) == 1
        assert visitor.find_elements(By.CSS_SELECTOR, ".msg--streaming") == []
        errors = [e for e in visitor.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []


@pytest.fixture
def worker_with_llm(openai_server: OpenAIServer) -> Iterator[CeleryWorker]:
    """A real Celery worker whose LLM is the local server."""
    if not django_settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: the embedded defaults have no broker (Celery runs eager)")
    env = {
        **os.environ,
        **child_database_env(),
        "CELERY_EAGER": "false",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": openai_server.base_url,
        "OPENAI_TIMEOUT": "5",
    }
    worker = CeleryWorker(env)
    celery_app.conf.task_always_eager = False
    yield worker.start()
    worker.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_it_streams_from_a_real_worker_while_the_model_writes(
    site, visitor_a, openai_server, worker_with_llm
):
    openai_server.script(
        Reply.text("Standard shipping ", "takes 3–5 ", "business days [1].", piece_delay=0.3)
    )
    conversation = await database_sync_to_async(conversation_start)(site=site, visitor=visitor_a)
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    await widget.expect("sync.done")
    await database_sync_to_async(visitor_message_receive)(
        conversation=conversation, body=CONFIDENT, client_id="c1"
    )
    await widget.expect("message.streaming", timeout=30)  # the worker may still be starting
    await widget.expect("message.delta")
    first_words = time.monotonic()
    answer = await widget.expect("message.created", author="bot")
    assert time.monotonic() - first_words > 0.4  # the rest was still being written
    assert answer["body"] == SHIPPING_ANSWER and answer["citations"]
    await widget.close()


# --- Faults the tests above leave out -------------------------------------------------------


@pytest.mark.django_db
def test_it_does_not_wait_out_a_long_retry_after_past_the_timeout(site, visitor_a, llm):
    llm.script(then=Reply.error(429, retry_after="30"))
    conversation = ask(site, visitor_a, CONFIDENT)
    elapsed = bot_turn(conversation)
    assert elapsed < 1.5  # OPENAI_TIMEOUT=1, not the server's 30 s
    assert [m.body for m in bot_messages(conversation)] == [SHIPPING_ANSWER]


@pytest.mark.django_db
def test_it_hands_off_within_the_timeout_when_the_model_is_slow_and_retrieval_unsure(
    site, visitor_a, llm
):
    llm.script(then=Reply.slow(5))
    conversation = ask(site, visitor_a, UNSURE)
    elapsed = bot_turn(conversation)
    assert elapsed < 1.5
    assert conversation.status == "waiting" and conversation.handoff_reason == "low_confidence"
    assert conversation.messages.filter(author=Message.Author.SYSTEM).exists()  # they are told


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fault", [*FAULTS.values(), Reply.slow(5)], ids=[*FAULTS, "slow"])
async def test_it_never_leaves_the_widget_with_a_dangling_stream_on_a_fault(
    site, visitor_a, llm, fault
):
    llm.script(then=fault)
    conversation = await database_sync_to_async(ask)(site, visitor_a, UNSURE)
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    await widget.expect("sync.done")
    await database_sync_to_async(bot_turn)(conversation)
    started = await widget.expect("message.streaming")
    ended = await widget.expect("message.stream_ended")
    assert ended["stream_id"] == started["stream_id"]
    await widget.expect("conversation.updated", status="waiting")  # a person takes over
    await widget.close()
