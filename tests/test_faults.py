"""Faults: real processes die, restart and lose their backing services; nothing acked is lost.

Each test starts its own daphne (tests/live.py), and where it needs them its own Redis, a
Celery worker, or a cuttable line to PostgreSQL (tests/faults.py); the shared Redis and
PostgreSQL are never stopped. The clients are plain ``websockets`` clients that follow
docs/protocol.md (``tests.faults.Peer``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from chat.models import Agent, Conversation, Message, Site, Visitor
from chat.services.conversations import conversation_start, conversation_take
from chat.services.visitors import visitor_token
from tests.conftest import session_cookie
from tests.faults import Peer, TcpProxy, child_env, own_redis, until
from tests.live import CeleryWorker, DaphneProcess

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUESTION = "How many days for delivery?"  # the bot answers it: "… 3–5 business days."


def assigned_conversation(site: Site, visitor: Visitor, agent: Agent) -> Conversation:
    """A conversation Alice already has, so the bot stays out of the way."""
    conversation = conversation_start(site=site, visitor=visitor)
    conversation_take(conversation=conversation, agent=agent)
    return conversation


Where = Callable[[], DaphneProcess]  # asked before every connection: servers may change


def widget_peer(server: Where, site: Site, visitor: Visitor, conversation_id: int) -> Peer:
    token = visitor_token(visitor)
    return Peer(
        "visitor",
        url=lambda: f"{server().ws_base}/ws/widget/v1/?site={site.key}&token={token}",
        origin=lambda: server().base,
        conversation_id=conversation_id,
    )


def console_peer(server: Where, agent: Agent, conversation_id: int) -> Peer:
    return Peer(
        "agent",
        url=lambda: f"{server().ws_base}/ws/console/v1/",
        origin=lambda: server().base,
        conversation_id=conversation_id,
        cookie=session_cookie(agent.user),
    )


def stored(conversation: Conversation) -> list[tuple[int, str | None, str]]:
    return list(
        Message.objects.filter(conversation=conversation)
        .order_by("seq")
        .values_list("seq", "client_id", "body")
    )


def held(peer: Peer) -> list[tuple[int, str | None, str]]:
    return [(m["seq"], m["client_id"], m["body"]) for _, m in sorted(peer.messages.items())]


def all_settled(peers: list[Peer]) -> bool:
    """Every outbox empty and every peer holding the same gap-free history."""
    if any(peer.outbox for peer in peers):
        return False
    acked = max((seq for peer in peers for seq in peer.acks.values()), default=0)
    return all(peer.contiguous_seq() >= acked for peer in peers) and (
        len({peer.contiguous_seq() for peer in peers}) == 1
    )


def assert_exactly_the_acked_messages(conversation: Conversation, peers: list[Peer]) -> None:
    rows = stored(conversation)
    assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))  # no gap
    client_ids = [cid for _, cid, _ in rows if cid is not None]
    assert len(client_ids) == len(set(client_ids))  # nothing stored twice
    by_client_id = {cid: seq for seq, cid, _ in rows if cid is not None}
    for peer in peers:
        assert (peer.errors, peer.conflicts, peer.ack_conflicts) == ([], [], [])
        assert peer.outbox == {}
        # Everything this peer wrote was stored once, under the seq it was acked with ...
        assert {cid: by_client_id.get(cid) for cid in peer.sent} == {
            cid: peer.acks[cid] for cid in peer.sent
        }
        # ... in the order it was written ...
        assert [peer.acks[cid] for cid in peer.sent] == sorted(peer.acks.values())
        # ... and every peer ends with exactly what is stored, in seq order.
        assert held(peer) == rows


@pytest.mark.parametrize("recovery", ["restarted", "second process"])
def test_it_loses_and_duplicates_nothing_when_the_server_is_killed_mid_conversation(
    site, alice, visitor_a, recovery
):
    if recovery == "second process" and not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: two server processes share only a Redis channel layer")
    conversation = assigned_conversation(site, visitor_a, alice)
    doomed = DaphneProcess(child_env()).start()
    # The visitor is on the server that dies; the agent on the other one, when there are two.
    survivor = DaphneProcess(child_env()).start() if recovery == "second process" else doomed
    visitor_server = [doomed]
    visitor = widget_peer(lambda: visitor_server[0], site, visitor_a, conversation.pk)
    agent = console_peer(lambda: survivor, alice, conversation.pk)
    peers = [visitor, agent]
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        tasks = [asyncio.create_task(peer.run()) for peer in peers]
        try:
            await until(lambda: visitor.live and agent.live, 20, "both sockets")
            for n in range(3):
                visitor.say(f"Visitor says {n}")
                agent.say(f"Alice says {n}")
            await until(lambda: all_settled(peers), 20, "the first exchange")

            # A burst both ways, and the server dies while it is being stored.
            before = len(visitor.acks) + len(agent.acks)
            for n in range(20):
                visitor.say(f"Visitor burst {n}")
                agent.say(f"Alice burst {n}")
            await until(lambda: len(visitor.acks) + len(agent.acks) > before, 20, "a burst ack")
            doomed.kill()
            outcome["unacked_at_kill"] = len(visitor.outbox) + len(agent.outbox)
            await until(lambda: not visitor.live, 10, "the visitor's socket to drop")
            # Both sides keep writing while it is down.
            for n in range(3):
                visitor.say(f"Visitor offline {n}")
                agent.say(f"Alice offline {n}")
            if recovery == "restarted":
                await asyncio.to_thread(doomed.start)
            else:
                visitor_server[0] = survivor
            await until(lambda: all_settled(peers), 40, "the resends", *peers)
        finally:
            for task in tasks:
                task.cancel()
            doomed.stop()
            survivor.stop()

    asyncio.run(scenario())
    connection.close()  # the child processes wrote; read afresh

    assert outcome["unacked_at_kill"] > 0  # the kill really caught messages in flight
    assert visitor.sessions >= 2
    assert any(n > 1 for peer in peers for n in peer.transmissions.values())  # resends happened
    assert_exactly_the_acked_messages(conversation, peers)
    assert len(stored(conversation)) == 1 + 2 * (3 + 20 + 3)  # "Alice joined" + every message


def test_it_tells_the_visitor_the_bot_is_slow_and_answers_once_the_worker_is_back(
    site, visitor_a, visitor_b
):
    waits_for_bot = conversation_start(site=site, visitor=visitor_a)
    wants_person = conversation_start(site=site, visitor=visitor_b)
    with own_redis() as redis:
        env = child_env(REDIS_URL=redis.url, CELERY_EAGER="false", HELPDESK_BOT_SLOW_SECONDS="2")
        server = DaphneProcess(env).start()
        worker = CeleryWorker(server.env)  # not started: the worker is down
        ann = widget_peer(lambda: server, site, visitor_a, waits_for_bot.pk)
        ben = widget_peer(lambda: server, site, visitor_b, wants_person.pk)
        peers = [ann, ben]
        seen: dict[str, Any] = {}

        async def scenario() -> None:
            tasks = [asyncio.create_task(peer.run()) for peer in peers]
            try:
                await until(lambda: ann.live and ben.live, 20, "both sockets")
                # Both ask (Ben first: one queue, in order); nobody answers; both are told.
                ben.say(QUESTION)
                ann.say(QUESTION)
                await until(
                    lambda: ben.heard("bot.delayed") and ann.heard("bot.delayed"),
                    10,
                    "the notices",
                    ann,
                    ben,
                )
                assert ann.by("bot") == ben.by("bot") == []
                # Ben asks for a person instead, and gets one in line without any worker.
                await ben.send(type="handoff.request", conversation_id=wants_person.pk)
                await until(
                    lambda: ben.heard("conversation.updated", status="waiting"), 10, "hand-off"
                )
                assert ben.by("system")  # "Connecting you with a person…"
                seen["ben_places_before"] = len(ben.heard("queue.position"))
                # The worker comes back: Ben's turn finds him with a person, Ann is answered.
                await asyncio.to_thread(worker.start)
                await until(lambda: ann.by("bot"), 45, "the bot's answer", ann)
                # ... and the queue update Ben's hand-off queued runs too: he learns his place.
                await until(lambda: ben.heard("queue.position"), 10, "Ben's place", ben)
            finally:
                for task in tasks:
                    task.cancel()
                worker.stop()
                server.stop()

        asyncio.run(scenario())
    connection.close()

    [answer] = ann.by("bot")
    assert "business days" in answer["body"]
    assert ann.outbox == ben.outbox == {} and ann.errors == ben.errors == []
    # Ben's queued turn ran before Ann's (one queue, in order) and found him with a person.
    assert ben.by("bot") == []
    assert not Message.objects.filter(conversation=wants_person, author="bot").exists()
    assert seen["ben_places_before"] == 0  # his place came from the worker


def test_it_resumes_and_loses_no_acked_message_when_redis_restarts(site, alice, visitor_a):
    conversation = assigned_conversation(site, visitor_a, alice)
    with own_redis() as redis:
        server = DaphneProcess(child_env(REDIS_URL=redis.url)).start()
        visitor = widget_peer(lambda: server, site, visitor_a, conversation.pk)
        agent = console_peer(lambda: server, alice, conversation.pk)
        peers = [visitor, agent]

        async def scenario() -> None:
            tasks = [asyncio.create_task(peer.run()) for peer in peers]
            try:
                await until(lambda: visitor.live and agent.live, 20, "both sockets")
                for n in range(3):
                    visitor.say(f"Visitor says {n}")
                    agent.say(f"Alice says {n}")
                await until(lambda: all_settled(peers), 20, "the first exchange", *peers)
                redis.kill()
                for n in range(3):
                    visitor.say(f"Visitor during the restart {n}")
                    agent.say(f"Alice during the restart {n}")
                await asyncio.to_thread(redis.start)
                for n in range(3):
                    visitor.say(f"Visitor after the restart {n}")
                    agent.say(f"Alice after the restart {n}")
                await until(lambda: all_settled(peers), 40, "service to resume", *peers)
            finally:
                for task in tasks:
                    task.cancel()
                server.stop()

        asyncio.run(scenario())
    connection.close()

    for peer in peers:  # refusals while Redis was away are fine, as long as they were retried
        peer.errors = [e for e in peer.errors if e["code"] != "unavailable"]
    assert_exactly_the_acked_messages(conversation, peers)
    assert len(stored(conversation)) == 1 + 2 * 9


@pytest.mark.parametrize("pool_size", ["10", "0"], ids=["pooled", "kept per thread"])
def test_it_refuses_sends_while_postgresql_is_unreachable_and_stores_each_retry_once(
    site, alice, visitor_a, pool_size
):
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL on PostgreSQL: the test cuts the line to it")
    db = connection.settings_dict
    proxy = TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)).start()
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    through_proxy = f"postgres://{user}{password}@127.0.0.1:{proxy.port}/{db['NAME']}"
    conversation = assigned_conversation(site, visitor_a, alice)
    # Connections kept (pooled, or for a minute without a pool): the ones the server holds go
    # stale when the line is cut. A refusal may take DATABASE_CONNECT_TIMEOUT, no longer.
    env = child_env(
        DATABASE_URL=through_proxy,
        DATABASE_POOL_SIZE=pool_size,
        DATABASE_CONN_MAX_AGE="60",
        DATABASE_CONNECT_TIMEOUT="2",
    )
    server = DaphneProcess(env).start()
    visitor = widget_peer(lambda: server, site, visitor_a, conversation.pk)
    agent = console_peer(lambda: server, alice, conversation.pk)
    peers = [visitor, agent]
    seen: dict[str, Any] = {}

    def refused(peer: Peer, client_id: str) -> bool:
        return any(e["code"] == "unavailable" and e["ref"] == client_id for e in peer.errors)

    async def scenario() -> None:
        tasks = [asyncio.create_task(peer.run()) for peer in peers]
        try:
            await until(lambda: visitor.live and agent.live, 20, "both sockets")
            for n in range(2):
                visitor.say(f"Visitor says {n}")
                agent.say(f"Alice says {n}")
            await until(lambda: all_settled(peers), 20, "the first exchange", *peers)

            # A blip while nobody writes: the kept connection is dead, and must not be used.
            proxy.cut()
            proxy.restore()
            first = [visitor.say("Visitor after the blip"), agent.say("Alice after the blip")]
            await until(lambda: all_settled(peers), 20, "sends after the blip", *peers)
            seen["after_blip"] = [
                peer.transmissions[cid] for peer, cid in zip(peers, first, strict=True)
            ]

            # Down for longer: every send is refused at once, not acked, and retried.
            proxy.cut()
            seen["rows_before"] = await asyncio.to_thread(count_rows, conversation)
            during = [visitor.say("Visitor during the outage"), agent.say("Alice during it")]
            await until(
                lambda: all(refused(p, cid) for p, cid in zip(peers, during, strict=True)),
                10,
                "refusals",
            )
            seen["acked_while_down"] = [
                cid for p, cid in zip(peers, during, strict=True) if cid in p.acks
            ]
            seen["rows_during"] = await asyncio.to_thread(count_rows, conversation)
            proxy.restore()
            await until(lambda: all_settled(peers), 30, "the retries", *peers)
        finally:
            for task in tasks:
                task.cancel()
            server.stop()
            proxy.stop()

    asyncio.run(scenario())
    connection.close()

    # A connection that died in the blip may be tried once: that send is refused
    # (`unavailable`, checked below), and its one retry is stored once.
    assert all(1 <= sent <= 2 for sent in seen["after_blip"])
    assert seen["acked_while_down"] == []
    assert seen["rows_during"] == seen["rows_before"]  # nothing half-stored
    for peer in peers:
        assert {e["code"] for e in peer.errors} == {"unavailable"}
        assert all(e["retry_after"] and e["ref"] in peer.sent for e in peer.errors)
        peer.errors = []
    assert_exactly_the_acked_messages(conversation, peers)
    assert len(stored(conversation)) == 1 + 2 * 4


def count_rows(conversation: Conversation) -> int:
    try:
        return Message.objects.filter(conversation=conversation).count()
    finally:
        connection.close()  # this ran in a thread of its own
