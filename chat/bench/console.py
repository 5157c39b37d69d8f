"""What ``bench_console`` seeds and measures: console pages over many conversations.

A realistic day's database: most conversations closed, some assigned to various agents,
a few hundred waiting; four messages each, labels on a share of them, and read markers
for the bench agent. Only the seeding lives here; the views are the product's own.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.utils import timezone

from chat.models import (
    Agent,
    AgentSocket,
    Conversation,
    ConversationView,
    Label,
    Message,
    Site,
    Team,
    Visitor,
)

WORDS = [
    "order",
    "parcel",
    "refund",
    "invoice",
    "delivery",
    "password",
    "account",
    "shipping",
    "broken",
    "size",
    "colour",
    "return",
    "exchange",
    "discount",
    "coupon",
    "address",
    "tracking",
    "payment",
    "card",
    "late",
    "missing",
]


@dataclass(frozen=True)
class Timing:
    view: str
    url: str
    rows: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    # CPU time of this process per request: what the view costs, however busy the machine.
    cpu_p50_ms: float


@transaction.atomic
def seed_console(*, conversations: int, teams: int = 4, agents_per_team: int = 5) -> Client:
    """Seed the throwaway database; return a browser logged in as the bench supervisor agent,
    who works in the first team (and supervises all)."""
    rng = random.Random(4)
    now = timezone.now()
    site = Site.objects.create(name="Bench", bot_enabled=False)
    team_rows = [Team.objects.create(site=site, name=f"Team {n}") for n in range(teams)]
    labels = [Label.objects.create(site=site, name=name) for name in ("vip", "refund", "bug")]
    user_model = get_user_model()
    agents: list[Agent] = []
    for t, team in enumerate(team_rows):
        for n in range(agents_per_team):
            user = user_model.objects.create(username=f"bench-{t}-{n}", is_staff=not (t or n))
            agent = Agent.objects.create(
                user=user, display_name=f"Agent {t}-{n}", status="online", capacity=50
            )
            agent.teams.set([team])
            AgentSocket.objects.create(agent=agent, channel_name=f"bench-{t}-{n}", last_seen_at=now)
            agents.append(agent)
    me = agents[0]
    visitors = Visitor.objects.bulk_create(
        Visitor(
            site=site,
            name=f"Customer {i}",
            email=f"customer{i}@example.com" if i % 3 else "",
            language="en",
        )
        for i in range(conversations)
    )
    rows = []
    for i, visitor in enumerate(visitors):
        created = now - timedelta(minutes=conversations - i)
        team = team_rows[i % teams]
        if i % 33 == 0:  # about 300 waiting in 10,000
            status, assignee = Conversation.Status.WAITING, None
        elif i % 500 == 1:  # 20 of them mine (an agent holds about their capacity)
            status, assignee, team = Conversation.Status.ASSIGNED, me, team_rows[0]
        elif i % 11 == 2:
            status, assignee = Conversation.Status.ASSIGNED, rng.choice(agents)
        else:
            status, assignee = Conversation.Status.CLOSED, rng.choice(agents)
        rows.append(
            Conversation(
                site=site,
                visitor=visitor,
                team=team,
                status=status,
                assignee=assignee,
                last_seq=4,
                queued_at=created,
                assigned_at=created if assignee else None,
                closed_at=created + timedelta(minutes=5) if status == "closed" else None,
            )
        )
    conversations_made = Conversation.objects.bulk_create(rows, batch_size=2000)
    messages = []
    for conversation in conversations_made:
        for seq, author in enumerate(["visitor", "bot", "visitor", "agent"], start=1):
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20)))
            messages.append(Message(conversation=conversation, seq=seq, author=author, body=body))
    Message.objects.bulk_create(messages, batch_size=5000)
    through = Conversation.labels.through
    through.objects.bulk_create(
        [
            through(conversation_id=c.pk, label_id=labels[i % len(labels)].pk)
            for i, c in enumerate(conversations_made)
            if i % 4 == 0
        ],
        batch_size=5000,
    )
    ConversationView.objects.bulk_create(
        [
            ConversationView(agent=me, conversation=c, seen_seq=rng.choice([1, 3, 4]))
            for c in conversations_made
            if c.assignee_id == me.pk
        ]
    )
    browser = Client()
    browser.force_login(me.user)
    return browser


def measure(browser: Client, url: str, *, repeat: int, count: Callable[[str], int]) -> Timing:
    """Render ``url`` ``repeat`` times (after one warm-up); milliseconds per request."""
    # secure: with DEBUG off, plain HTTP would be redirected to HTTPS.
    browser.get(url, secure=True)
    samples = []
    cpu = []
    rows = 0
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = browser.get(url, secure=True)
        samples.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        rows = count(response.content.decode())
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return Timing(
        view="",
        url=url,
        rows=rows,
        p50_ms=round(statistics.median(samples), 1),
        p95_ms=round(p95, 1),
        max_ms=round(samples[-1], 1),
        cpu_p50_ms=round(statistics.median(cpu), 1),
    )
