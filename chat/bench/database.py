"""The throwaway database the product is measured on, and what is seeded into it.

The user's own database is never written: on SQLite the benchmark migrates a temporary file,
on PostgreSQL a database ``helpdesk_bench`` that it creates, migrates and drops again.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections, transaction
from django.test import Client
from django.utils import timezone

from chat.models import Agent, Conversation, Site, Team, Visitor
from chat.services.visitors import visitor_token

BENCH_DB = "helpdesk_bench"


@dataclass(frozen=True)
class Seat:
    """One seeded conversation: its id and the token of the visitor it belongs to."""

    conversation_id: int
    token: str = ""


@dataclass(frozen=True)
class Seed:
    site_key: str
    seats: list[Seat]
    # ``Cookie`` header that logs a console socket in as the agent of each conversation.
    cookies: dict[int, str]


@contextmanager
def bench_database(pg_name: str = BENCH_DB) -> Iterator[dict[str, str]]:
    """Point the default connection at a fresh, migrated database; drop it afterwards.

    Yields the environment that points a server process at the same database.
    """
    connection = connections["default"]
    vendor = connection.vendor
    original_name = connection.settings_dict["NAME"]
    connection.close()
    tmpdir = ""
    if vendor == "sqlite":
        tmpdir = tempfile.mkdtemp(prefix="helpdesk-bench-")
        name = str(Path(tmpdir) / "bench.sqlite3")
        env = {"SQLITE_PATH": name}
    elif vendor == "postgresql":
        if original_name == pg_name:
            raise CommandError(f"{pg_name} is the benchmark's throwaway database; use another")
        name = pg_name
        _postgres_create(name)
        env = {"DATABASE_URL": _postgres_url(name)}
    else:
        raise CommandError(f"bench_chat knows SQLite and PostgreSQL, not {vendor}")
    # The same swap Django's test runner makes for its test database.
    connection.settings_dict["NAME"] = name
    # On PostgreSQL, an idle connection for the whole run marks the database as in use, so
    # a second run leaves it alone (see _postgres_create). Not on SQLite: there an open
    # connection would spare the server the checkpoint its own last connection's close costs.
    guard = connection.copy() if vendor == "postgresql" else None
    try:
        if guard:
            guard.ensure_connection()
        call_command("migrate", verbosity=0, interactive=False)
        yield env
    finally:
        if guard:
            guard.close()
        connection.close()
        connection.settings_dict["NAME"] = original_name
        if vendor == "postgresql":
            _postgres_drop(name)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _postgres_create(name: str) -> None:
    with connections["default"]._nodb_cursor() as cursor:
        # A database left by a killed run is ours by name: drop it. One with sessions belongs
        # to a run that is going on: leave it, and do not even try DROP DATABASE, which would
        # hold new connections to it for seconds while it waits for those sessions.
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name])
        (sessions,) = cursor.fetchone()
        if sessions:
            raise CommandError(f"{name} is in use: is another bench_chat running?")
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')


def _postgres_drop(name: str) -> None:
    # _nodb_cursor is how Django's own test runner creates and drops its database.
    with connections["default"]._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_url(name: str) -> str:
    db = connections["default"].settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{name}"


@transaction.atomic
def seed(conversations: int, agents: int) -> Seed:
    """A site, agents in its team, and conversations already assigned to them.

    Assigned, so the bot is not in the path: a visitor's message goes straight to the agent.
    The first ``agents`` conversations each have an agent of their own (with one console,
    as in life: an agent's every console hears about each of their conversations); any
    further ones (idle sockets only) belong to the first agent.
    """
    site = Site.objects.create(name="Bench", allowed_origins="http://127.0.0.1", bot_enabled=False)
    team = Team.objects.create(site=site, name="Bench")
    people = []
    for n in range(max(agents, 1)):
        user = get_user_model().objects.create(username=f"bench-agent-{n}")
        user.set_unusable_password()
        user.save()
        agent = Agent.objects.create(user=user, display_name=f"Bench Agent {n}")
        agent.teams.set([team])
        people.append((user, agent))
    visitors = Visitor.objects.bulk_create(
        Visitor(site=site, name=f"Visitor {i}", language="en") for i in range(conversations)
    )
    now = timezone.now()
    rows = Conversation.objects.bulk_create(
        Conversation(
            site=site,
            visitor=visitor,
            team=team,
            status=Conversation.Status.ASSIGNED,
            assignee=people[i if i < len(people) else 0][1],
            assigned_at=now,
        )
        for i, visitor in enumerate(visitors)
    )
    seats = [
        Seat(conversation_id=row.pk, token=visitor_token(visitor))
        for row, visitor in zip(rows, visitors, strict=True)
    ]
    by_agent = {agent.pk: _session_cookie(user) for user, agent in people}
    cookies = {row.pk: by_agent[row.assignee_id] for row in rows if row.assignee_id}
    return Seed(site_key=site.key, seats=seats, cookies=cookies)


def _session_cookie(user: Any) -> str:
    browser = Client()
    browser.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
