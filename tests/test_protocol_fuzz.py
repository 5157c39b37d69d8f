"""A hostile world on the sockets: random, mutated, huge and replayed frames.

Properties, checked with hypothesis against the real widget and console sockets:
- every invalid frame gets exactly one typed ``error`` frame, and the database is unchanged;
- every valid frame gets its documented answer (replayed and out-of-order seqs included);
- the socket keeps serving: each frame is followed by a ``ping`` that must get its ``pong``.

One socket per test serves all of its examples (connecting per example would dominate the
run time); each example is one frame followed by that ping, so the answers to one frame are
exactly the frames before its pong.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from django.apps import apps
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat.models import Conversation, Message, Visitor
from chat.services.messages import message_post
from tests.conftest import Client, console_for, widget_for

pytestmark = pytest.mark.django_db(transaction=True)

fuzz = hypothesis_settings(
    max_examples=40,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ERROR_CODES = {
    "bad_json",
    "unknown_type",
    "invalid_frame",
    "too_large",
    "not_found",
    "conflict",
    "rate_limited",
}
WIDGET_TYPES = {
    "conversation.sync",
    "message.create",
    "handoff.request",
    "feedback.create",
    "typing.start",
    "ping",
    "conversation.close",
    "csat.create",
    "message.read",
    "transcript.request",
}
CONSOLE_TYPES = {"conversation.sync", "message.create", "typing.start", "ping", "message.read"}
# Frames that arrive on their own (broadcasts), as opposed to direct answers.
LIVE_TYPES = {
    "message.created",
    "conversation.updated",
    "typing.started",
    "queue.changed",
    "queue.position",
    "message.streaming",
    "message.delta",
    "message.stream_ended",
    "agent.updated",
    "conversation.returned",
    "receipt.updated",
    "attachment.updated",
    "notification.created",
}


# --- Driving one socket from a synchronous hypothesis test -------------------------------


class Socket:
    """A protocol client whose coroutines run on one event loop kept across examples."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Client) -> None:
        self.loop, self.client = loop, client

    def exchange(self, raw: str | bytes) -> list[dict[str, Any]]:
        """Send one raw frame and a ping; the frames that came back before the pong."""
        return self.loop.run_until_complete(self._exchange(raw))

    async def _exchange(self, raw: str | bytes) -> list[dict[str, Any]]:
        # send_input, not send_to: send_to refuses empty frames, which a hostile client sends.
        key = "bytes" if isinstance(raw, bytes) else "text"
        await self.client.ws.send_input({"type": "websocket.receive", key: raw})
        await self.client.send(type="ping")
        answers = []
        while (frame := await self.client.receive(timeout=10))["type"] != "pong":
            answers.append(frame)
        return answers


@contextmanager
def socket(connect: Callable[[], Any]) -> Iterator[Socket]:
    loop = asyncio.new_event_loop()
    try:
        client = loop.run_until_complete(warm(connect))
        yield Socket(loop, client)
        loop.run_until_complete(client.close())
    finally:
        loop.run_until_complete(cancel_all())
        loop.close()


async def warm(connect: Callable[[], Any]) -> Client:
    """Connected, and past the first ping (the console records presence on it)."""
    client = await connect()
    await client.send(type="ping")
    await client.expect("pong")
    return client


async def cancel_all() -> None:
    pending = asyncio.all_tasks() - {asyncio.current_task()}
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def snapshot() -> dict[str, Any]:
    """Everything a frame could change: row counts, conversation states, message ratings."""
    counts = {
        model.__name__: model.objects.count() for model in apps.get_app_config("chat").get_models()
    }
    return {
        "counts": counts,
        "conversations": list(
            Conversation.objects.order_by("pk").values_list(
                "pk", "status", "last_seq", "assignee_id", "handoff_reason"
            )
        ),
        "messages": list(Message.objects.order_by("pk").values_list("pk", "body", "helpful")),
        "visitors": list(Visitor.objects.order_by("pk").values_list("pk", "name")),
    }


def only_error(answers: list[dict[str, Any]]) -> dict[str, Any]:
    direct = [frame for frame in answers if frame["type"] not in LIVE_TYPES]
    assert len(direct) == 1, answers
    error = direct[0]
    assert error["type"] == "error" and error["message"], error
    assert error["code"] in ERROR_CODES, error
    return error


# --- The world: a visitor with a conversation, another visitor's, an agent ---------------


@pytest.fixture
def world(site, visitor_a, visitor_b, alice, charlie) -> dict[str, Any]:
    mine = Conversation.objects.create(site=site, visitor=visitor_a, status="bot")
    for author, body in [("visitor", "Where is my parcel?"), ("bot", "It ships in 3 days.")]:
        message_post(conversation=mine, author=author, body=body, client_id=f"seed-{author}")
    message_post(conversation=mine, author="visitor", body="Thanks", client_id="seed-2")
    theirs = Conversation.objects.create(site=site, visitor=visitor_b, status="bot")
    message_post(conversation=theirs, author="visitor", body="Private", client_id="b-1")
    other_company = Conversation.objects.create(
        site=charlie.teams.get().site,
        visitor=Visitor.objects.create(site=charlie.teams.get().site),
        status="waiting",
    )
    return {
        "visitor": visitor_a,
        "alice": alice,
        "mine": mine.pk,
        "bot_seq": 2,
        "last_seq": 3,
        # Conversations the widget (visitor_a) and the console (alice) must not reach.
        "widget_foreign": [theirs.pk, other_company.pk],
        "console_foreign": [other_company.pk],
    }


# --- Strategies ----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)
not_ints = (
    st.text(max_size=8)  # "15" among them: strict frames do not read strings as numbers
    | st.sampled_from(["15", "1", "0x1", "1e3"])
    | st.booleans()  # JSON true is not the integer 1
    | st.floats(allow_nan=False, allow_infinity=False)  # not even 3.0
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
not_bools = (
    st.integers()
    | st.sampled_from(["yes", "no", "true", "false", "1", "0", "on"])
    | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.none()
)
not_strings = st.integers() | st.booleans() | st.none() | st.lists(st.text(max_size=3), max_size=2)

# For each field of each client frame: values that make the frame invalid.
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "conversation_id": not_ints | st.integers(max_value=0) | st.integers(min_value=2**62 + 1),
    "after_seq": not_ints
    | st.none()
    | st.integers(max_value=-1)
    | st.integers(min_value=2**31 + 1),
    "seq": not_ints | st.none() | st.integers(max_value=0) | st.integers(min_value=2**31 + 1),
    "helpful": not_bools,
    "client_id": not_strings | st.just("") | st.text(min_size=65, max_size=80),
    "body": not_strings,
    "score": not_ints | st.integers(max_value=0) | st.integers(min_value=6),
    "comment": not_strings | st.text(min_size=1001, max_size=1010),
}
# Required fields may also be removed (optional ones, like after_seq, may not).
REQUIRED = {
    "conversation.sync": ["conversation_id"],
    "message.create": ["client_id", "body"],
    "handoff.request": ["conversation_id"],
    "feedback.create": ["conversation_id", "seq", "helpful"],
    "typing.start": ["conversation_id"],
    "ping": [],
    "conversation.close": ["conversation_id"],
    "csat.create": ["conversation_id", "score"],
    "message.read": ["conversation_id", "seq"],
    "transcript.request": ["conversation_id"],
}
CONSOLE_ONLY_VALID = CONSOLE_TYPES


def valid_frame(kind: str, conversation_id: int) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": kind}
    if kind == "conversation.sync":
        frame |= {"conversation_id": conversation_id, "after_seq": 1}
    elif kind == "message.create":
        frame |= {"client_id": "fuzz", "body": "Hello", "conversation_id": conversation_id}
    elif kind == "feedback.create":
        frame |= {"conversation_id": conversation_id, "seq": 2, "helpful": True}
    elif kind == "csat.create":
        frame |= {"conversation_id": conversation_id, "score": 4, "comment": "Fine"}
    elif kind == "message.read":
        frame |= {"conversation_id": conversation_id, "seq": 2}
    elif kind != "ping":
        frame |= {"conversation_id": conversation_id}
    return frame


@st.composite
def mutated_frames(draw: st.DrawFn, kinds: list[str]) -> dict[str, Any]:
    """A valid frame with one thing wrong: a field removed, retyped, out of range or extra."""
    kind = draw(st.sampled_from(kinds))
    frame = valid_frame(kind, conversation_id=1)  # the id is replaced or the frame is broken
    fields = [name for name in frame if name != "type"]
    mutations = ["extra", "type"]
    if fields:
        mutations.append("retype")
    if REQUIRED[kind]:
        mutations.append("remove")
    mutation = draw(st.sampled_from(mutations))
    if mutation == "extra":
        name = draw(st.text(min_size=1, max_size=12).filter(lambda n: n not in frame))
        assume(name != "team_id")  # an optional field of message.create since version 3
        frame[name] = draw(json_values)
    elif mutation == "type":
        if draw(st.booleans()):
            del frame["type"]
        else:
            frame["type"] = draw(
                st.text(max_size=20).filter(lambda t: t not in WIDGET_TYPES) | not_strings
            )
    elif mutation == "retype":
        name = draw(st.sampled_from(fields))
        frame[name] = draw(WRONG[name])
        # A missing conversation_id is allowed on the widget's message.create.
        assume(not (kind == "message.create" and name == "conversation_id" and frame[name] is None))
    else:
        del frame[draw(st.sampled_from(REQUIRED[kind]))]
    return frame


# --- Invalid frames: one typed error, nothing stored, still serving -------------------------


def test_it_answers_random_text_and_bytes_with_one_error(world):
    with socket(lambda: widget_for(world["visitor"])) as ws:
        before = snapshot()

        @fuzz
        @given(raw=st.text(max_size=200) | st.binary(max_size=50))
        def check(raw: str | bytes) -> None:
            if isinstance(raw, str):
                with suppress(ValueError):
                    assume(not isinstance(json.loads(raw), dict))  # objects: the next test
            assert only_error(ws.exchange(raw))["code"] == "bad_json"
            assert snapshot() == before

        check()


@pytest.mark.parametrize("side", ["widget", "console"])
def test_it_answers_random_json_values_with_one_error(world, side):
    connect = widget_for if side == "widget" else console_for
    who = world["visitor"] if side == "widget" else world["alice"].user
    known = WIDGET_TYPES if side == "widget" else CONSOLE_TYPES

    with socket(lambda: connect(who)) as ws:
        before = snapshot()

        @fuzz
        @given(value=json_values)
        def check(value: Any) -> None:
            assume(not (isinstance(value, dict) and value.get("type") in known))
            error = only_error(ws.exchange(json.dumps(value)))
            expected = (
                {"bad_json"} if not isinstance(value, dict) else {"invalid_frame", "unknown_type"}
            )
            assert error["code"] in expected, (value, error)
            assert snapshot() == before

        check()


@pytest.mark.parametrize("side", ["widget", "console"])
def test_it_refuses_every_mutated_frame_and_stores_nothing(world, side):
    connect = widget_for if side == "widget" else console_for
    who = world["visitor"] if side == "widget" else world["alice"].user
    kinds = sorted(WIDGET_TYPES if side == "widget" else CONSOLE_ONLY_VALID)

    with socket(lambda: connect(who)) as ws:
        before = snapshot()

        @fuzz
        @given(frame=mutated_frames(kinds))
        def check(frame: dict[str, Any]) -> None:
            error = only_error(ws.exchange(json.dumps(frame)))
            assert error["code"] in {"invalid_frame", "unknown_type"}, (frame, error)
            assert snapshot() == before

        check()


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"type": "conversation.sync", "conversation_id": "15"}, "conversation_id"),
        ({"type": "conversation.sync", "conversation_id": True}, "conversation_id"),
        ({"type": "conversation.sync", "conversation_id": 15.0}, "conversation_id"),
        ({"type": "feedback.create", "conversation_id": 1, "seq": 2, "helpful": "yes"}, "helpful"),
        ({"type": "feedback.create", "conversation_id": 1, "seq": 2, "helpful": 1}, "helpful"),
        ({"type": "feedback.create", "conversation_id": 1, "seq": "2", "helpful": True}, "seq"),
        ({"type": "message.create", "client_id": 7, "body": "hi"}, "client_id"),
    ],
)
def test_it_takes_no_lookalike_types(world, frame, field):
    with socket(lambda: widget_for(world["visitor"])) as ws:
        error = only_error(ws.exchange(json.dumps(frame)))
        assert error["code"] == "invalid_frame" and error["message"].startswith(field), error


def test_it_refuses_huge_and_deeply_nested_frames(world, settings):
    limit = settings.HELPDESK_MAX_FRAME_BYTES
    nested = {"type": "ping", "x": json.loads("[" * 500 + "]" * 500)}
    cases = [
        (
            json.dumps({"type": "message.create", "client_id": "big", "body": "y" * limit}),
            "too_large",
        ),
        ("x" * (limit + 1), "too_large"),
        (json.dumps({"type": "message.create", "client_id": "c", "body": "y" * 4001}), "too_large"),
        ("[" * 20_000 + "]" * 20_000, "too_large"),
        ("[" * 10_000 + "]" * 10_000, "bad_json"),  # deeper than Python's recursion limit
        ('{"type": "ping", "x": ' + "[" * 10_000 + "]" * 10_000 + "}", "bad_json"),
        (json.dumps(nested), "invalid_frame"),
        ('{"type": "ping", "type": "message.create"}', "invalid_frame"),
        ("NaN", "bad_json"),
        ('{"type": "conversation.sync", "conversation_id": 1' + "0" * 5000 + "}", "bad_json"),
    ]
    with socket(lambda: widget_for(world["visitor"])) as ws:
        before = snapshot()
        for raw, code in cases:
            assert only_error(ws.exchange(raw))["code"] == code, raw[:80]
        assert snapshot() == before


# --- Unknown conversations: not_found, and nothing changes ---------------------------------


@pytest.mark.parametrize("side", ["widget", "console"])
def test_it_answers_conversations_out_of_reach_with_not_found(world, side):
    connect = widget_for if side == "widget" else console_for
    who = world["visitor"] if side == "widget" else world["alice"].user
    kinds = sorted(WIDGET_TYPES - {"ping"} if side == "widget" else CONSOLE_TYPES - {"ping"})
    foreign = world[f"{side}_foreign"]
    reachable = {world["mine"], *(c for c in Conversation.objects.values_list("pk", flat=True))}
    reachable -= set(foreign)

    with socket(lambda: connect(who)) as ws:
        before = snapshot()

        @fuzz
        @given(
            kind=st.sampled_from(kinds),
            conversation_id=st.sampled_from(foreign) | st.integers(min_value=1, max_value=2**62),
        )
        def check(kind: str, conversation_id: int) -> None:
            assume(conversation_id not in reachable)
            error = only_error(ws.exchange(json.dumps(valid_frame(kind, conversation_id))))
            assert error["code"] == "not_found", (kind, conversation_id, error)
            assert snapshot() == before

        check()


# --- Valid frames: their documented answers, replays and out-of-order seqs included -----------


def test_it_replays_exactly_the_messages_after_any_seq(world):
    mine, last_seq = world["mine"], world["last_seq"]
    with socket(lambda: widget_for(world["visitor"])) as ws:

        @fuzz
        @given(after_seq=st.integers(min_value=0, max_value=5) | st.integers(0, 2**31))
        def check(after_seq: int) -> None:
            frame = {"type": "conversation.sync", "conversation_id": mine, "after_seq": after_seq}
            answers = ws.exchange(json.dumps(frame))
            done = max(i for i, f in enumerate(answers) if f["type"] == "sync.done")
            start = max(
                i for i, f in enumerate(answers[:done]) if f["type"] == "conversation.updated"
            )
            assert answers[done] == {
                "type": "sync.done",
                "conversation_id": mine,
                "last_seq": last_seq,
            }
            replayed = [f["seq"] for f in answers[start + 1 : done]]
            assert replayed == list(range(after_seq + 1, last_seq + 1))
            assert answers[start]["last_seq"] == last_seq

        check()


def test_it_records_feedback_for_bot_answers_only_however_often_it_is_sent(world):
    mine, bot_seq = world["mine"], world["bot_seq"]
    with socket(lambda: widget_for(world["visitor"])) as ws:

        @fuzz
        @given(
            seq=st.sampled_from([1, bot_seq, 3]) | st.integers(min_value=1, max_value=2**31),
            helpful=st.just(True),  # "not helpful" hands off; test_conversation_flow covers that
        )
        def check(seq: int, helpful: bool) -> None:
            before = snapshot()
            frame = {
                "type": "feedback.create",
                "conversation_id": mine,
                "seq": seq,
                "helpful": helpful,
            }
            direct = [f for f in ws.exchange(json.dumps(frame)) if f["type"] not in LIVE_TYPES]
            if seq == bot_seq:
                assert direct == [
                    {
                        "type": "feedback.recorded",
                        "conversation_id": mine,
                        "seq": seq,
                        "helpful": True,
                    }
                ]
                assert Message.objects.get(conversation_id=mine, seq=seq).helpful is True
            else:
                assert [(f["type"], f["code"]) for f in direct] == [("error", "conflict")]
                assert snapshot() == before
            assert Message.objects.filter(conversation_id=mine).count() == world["last_seq"]

        check()


def test_it_acks_valid_messages_once_per_client_id_in_any_order(world, settings):
    settings.HELPDESK_RATE_MESSAGES_PER_MINUTE = 0  # this test is about order, not volume
    settings.HELPDESK_RATE_MESSAGES_PER_MINUTE_PER_IP = 0
    alice, mine = world["alice"], world["mine"]
    Conversation.objects.filter(pk=mine).update(status="assigned", assignee=alice)
    sent: dict[str, int] = {}
    with socket(lambda: widget_for(world["visitor"])) as ws:

        @settings_for_messages
        @given(
            client_id=st.sampled_from(["a", "b", "c", "d"]), body=st.text(min_size=1, max_size=50)
        )
        @example(client_id="a", body="\x00")
        def check(client_id: str, body: str) -> None:
            assume(body.strip())
            frame = {
                "type": "message.create",
                "client_id": client_id,
                "body": body,
                "conversation_id": mine,
            }
            direct = [f for f in ws.exchange(json.dumps(frame)) if f["type"] not in LIVE_TYPES]
            if "\x00" in body:  # no database stores it: refused, whatever else the frame says
                assert [(f["type"], f.get("code")) for f in direct] == [("error", "invalid_frame")]
                return
            assert len(direct) == 1 and direct[0]["type"] == "message.ack", direct
            seq = direct[0]["seq"]
            assert sent.setdefault(client_id, seq) == seq  # a resend gets the first seq back
            assert Message.objects.filter(conversation_id=mine).count() == world["last_seq"] + len(
                sent
            )

        check()


settings_for_messages = hypothesis_settings(fuzz, max_examples=20)
