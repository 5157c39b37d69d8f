"""Benchmark the reports page on a throwaway database seeded with many conversations.

Seeds (bulk_create) three sites with two teams each, six agents, and ``--conversations``
conversations over the last 90 days, each with a visitor message and a bot answer, about a
third handed off, most of those answered by an agent, and a rating for a quarter; then renders
``/console/reports/`` for those 90 days ``--runs`` times as staff and as one agent and prints
the render times (p50 / p95) and the number of SQL queries. The tables are ANALYZEd after
seeding, as a live PostgreSQL database's would be by autovacuum. See "Reports" in README.md.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.db.models import Model
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat.bench.database import bench_database
from chat.models import Agent, Conversation, CsatRating, Message, Site, Team, Visitor

REASONS = ["low_confidence", "asked_for_human", "unhelpful", "no_knowledge"]
DAYS = 90
BATCH = 5000


class Command(BaseCommand):
    help = "Seed a throwaway database and time the reports page (p50 / p95)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--conversations", type=int, default=100_000)
        parser.add_argument("--runs", type=int, default=20)
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        with bench_database(pg_name="helpdesk_bench_reports"):
            started = time.perf_counter()
            staff, agent = seed(options["conversations"])
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")  # what autovacuum would do on a live database
            seeded_s = time.perf_counter() - started
            end = timezone.localdate()
            query = {"start": str(end - timedelta(days=DAYS - 1)), "end": str(end)}
            results = {
                "database": connection.vendor,
                "conversations": options["conversations"],
                "seed_s": round(seeded_s, 1),
                "staff": measure(staff, query, options["runs"]),
                "agent": measure(agent, query, options["runs"]),
                "staff_by_agent": measure(staff, query | {"by": "agent"}, options["runs"]),
            }
        if options["json"]:
            self.stdout.write(json.dumps(results))
            return
        self.stdout.write(
            f"{results['database']}: {results['conversations']:,} conversations "
            f"(seeded in {results['seed_s']} s), /console/reports/ over {DAYS} days"
        )
        for name in ["staff", "agent", "staff_by_agent"]:
            r = results[name]
            self.stdout.write(
                f"  {name:<15} p50 {r['p50_ms']:>7.1f} ms   p95 {r['p95_ms']:>7.1f} ms   "
                f"{r['queries']} queries   ({r['runs']} runs)"
            )


def measure(user: Any, query: dict[str, str], runs: int) -> dict[str, Any]:
    browser = Client()
    browser.force_login(user)
    browser.get("/console/reports/", query)  # warm-up: templates, connection
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = browser.get("/console/reports/", query)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as queries:
        browser.get("/console/reports/", query)
    times.sort()
    return {
        "runs": runs,
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
        "queries": len(queries),
    }


@contextmanager
def explicit_timestamps(*models: type[Model]) -> Iterator[None]:
    """Let bulk_create keep the seeded ``created_at`` instead of stamping "now"."""
    fields: list[Any] = [m._meta.get_field("created_at") for m in models]
    for f in fields:
        f.auto_now_add = False
    try:
        yield
    finally:
        for f in fields:
            f.auto_now_add = True


@transaction.atomic
def seed(count: int) -> tuple[Any, Any]:
    rng = random.Random(5)
    users = get_user_model().objects
    staff = users.create_superuser("bench-staff", "staff@example.com", None)
    sites = [Site.objects.create(name=f"Bench {i}") for i in range(3)]
    teams = [Team.objects.create(site=s, name=name) for s in sites for name in ("Support", "Sales")]
    agents = []
    for i, team in enumerate(teams):
        user = users.create_user(f"bench-agent-{i}", password=None)
        agent = Agent.objects.create(user=user, display_name=f"Agent {i}")
        agent.teams.set([team])
        agents.append(agent)
    visitors_by_site = {
        site.pk: Visitor.objects.bulk_create(Visitor(site=site) for _ in range(max(1, count // 15)))
        for site in sites
    }
    now = timezone.now()
    with explicit_timestamps(Conversation, Message):
        for offset in range(0, count, BATCH):
            rows = [
                _conversation(rng, now, sites, teams, agents, visitors_by_site)
                for _ in range(min(BATCH, count - offset))
            ]
            conversations = Conversation.objects.bulk_create(rows)
            Message.objects.bulk_create(m for c in conversations for m in _messages(rng, c))
            CsatRating.objects.bulk_create(
                _rating(rng, c) for c in conversations if c.first_response_at and rng.random() < 0.6
            )
    return staff, agents[0].user


def _conversation(
    rng: random.Random,
    now: Any,
    sites: list[Site],
    teams: list[Team],
    agents: list[Agent],
    visitors_by_site: dict[int, list[Visitor]],
) -> Conversation:
    site = rng.choice(sites)
    created = now - timedelta(seconds=rng.randrange(DAYS * 86400))
    conversation = Conversation(
        site=site,
        visitor=rng.choice(visitors_by_site[site.pk]),
        created_at=created,
        last_seq=2,
        status=Conversation.Status.CLOSED,
        closed_at=created + timedelta(seconds=rng.randrange(60, 900)),
    )
    if rng.random() < 0.35:
        index = rng.randrange(len(teams))
        team, agent = teams[index], agents[index]
        if team.site_id != site.pk:
            team = next(t for t in teams if t.site_id == site.pk)
            agent = agents[teams.index(team)]
        queued = created + timedelta(seconds=rng.randrange(20, 120))
        conversation.team = team
        conversation.handoff_reason = rng.choice(REASONS)
        conversation.queued_at = queued
        if rng.random() < 0.9:
            conversation.assignee = agent
            conversation.assigned_at = queued + timedelta(seconds=rng.randrange(5, 600))
            conversation.first_response_at = conversation.assigned_at + timedelta(seconds=20)
            conversation.closed_at = conversation.first_response_at + timedelta(
                seconds=rng.randrange(60, 3600)
            )
        else:
            conversation.closed_at = queued + timedelta(seconds=rng.randrange(60, 1200))
    return conversation


def _messages(rng: random.Random, conversation: Conversation) -> list[Message]:
    helpful = rng.choice([True, False, None, None])
    return [
        Message(
            conversation=conversation,
            seq=1,
            author=Message.Author.VISITOR,
            body="Where is my parcel?",
            created_at=conversation.created_at,
        ),
        Message(
            conversation=conversation,
            seq=2,
            author=Message.Author.BOT,
            body="Standard shipping takes 3–5 business days.",
            helpful=helpful,
            created_at=conversation.created_at,
        ),
    ]


def _rating(rng: random.Random, conversation: Conversation) -> CsatRating:
    agent = conversation.assignee
    return CsatRating(
        conversation=conversation,
        site_id=conversation.site_id,
        visitor_id=conversation.visitor_id,
        agent=agent,
        agent_name=agent.display_name if agent else "",
        team=conversation.team,
        team_name=conversation.team.name if conversation.team else "",
        resolved_by=CsatRating.ResolvedBy.HUMAN,
        scale="stars",
        question="How would you rate this conversation?",
        requested_at=conversation.closed_at or conversation.created_at,
        score=rng.choice([1, 2, 3, 4, 4, 5, 5, 5]),
        rated_at=conversation.closed_at,
    )
