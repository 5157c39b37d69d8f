"""Shared fixtures: the people every test talks about, and socket clients for them.

Personas (all on the "Acme" site unless said otherwise):
- ``alice``: agent in Acme's Support team; the one who usually answers.
- ``bob``: agent in Acme's Sales team; sees Acme's shared queue but not Support-only work.
- ``charlie``: agent of another company's site; must see nothing of Acme.
- ``admin``: superuser; sees everything.
- ``visitor_a`` / ``visitor_b``: two customers of Acme who must never see each other's chats.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client as DjangoClient

# Importing the ASGI app warms the bot up in a thread; here each test builds the indexes it
# needs, and a warm-up racing them would only cost time (tests/test_bot_warm_up.py runs it).
settings.HELPDESK_BOT_WARM_UP = False
os.environ["HELPDESK_BOT_WARM_UP"] = "false"  # and in the servers the tests start

import bots  # noqa: E402
from chat.memo import Memo  # noqa: E402
from chat.models import Agent, FaqEntry, Site, Team, Visitor  # noqa: E402
from chat.services.visitors import visitor_token  # noqa: E402
from helpdesk import celery_app  # noqa: E402
from helpdesk.asgi import application  # noqa: E402

# Local protocol peers as fixtures: ``push_service`` (Web Push) and ``smtp_server`` (mail).
pytest_plugins = ["tests.push_service", "tests.smtp_server"]

# The SQLite test database and server logs live here.
(Path(__file__).resolve().parent.parent / "var").mkdir(exist_ok=True)

HOST = "testserver"
OWN_ORIGIN = f"http://{HOST}"

ACME_FAQ = [
    (
        "How long does shipping take?",
        ["When will my order arrive?", "How many days for delivery?", "shipping time"],
        "Standard shipping takes 3–5 business days.",
        "en",
    ),
    (
        "What is your return policy?",
        ["Can I return an item?", "How do I send something back?", "return window"],
        "You can return any item within 30 days of delivery.",
        "en",
    ),
    (
        "How do I reset my password?",
        ["I forgot my password", "can't log in to my account", "change my password"],
        "Use 'Forgot password' on the sign-in page; we e-mail you a reset link.",
        "en",
    ),
    (
        "运费是多少？",
        ["包邮吗", "邮费多少钱", "配送费用"],
        "订单满 $50 包邮，否则运费 $4.95。",
        "zh-hans",
    ),
]


@pytest.fixture(autouse=True, scope="session")
def bot_libraries_loaded() -> None:
    """Load ``bots`` (numpy, scikit-learn: web processes never need them), the embedding models
    and jieba once, before any test waits for a bot answer.

    A production process does the same at start (``bot_warm_up``); the one process-wide
    embedder then remembers the texts of every test site, which all share the Acme FAQ.
    """
    bots.KnowledgeIndex.build(
        [
            bots.KnowledgeEntry(i, question, tuple(phrasings), answer, language)
            for i, (question, phrasings, answer, language) in enumerate(ACME_FAQ, start=1)
        ]
    )


@pytest.fixture(autouse=True)
def eager_celery() -> Iterator[None]:
    """Run tasks inline in tests; the real worker has its own test."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    """Rate-limit counters live in the cache; each test starts with none spent."""
    cache.clear()


@pytest.fixture(autouse=True)
def fresh_process_memos() -> None:
    """Each test's database is new: forget the rows a test before remembered."""
    Memo.forget_everything()


@pytest.fixture(autouse=True)
def no_llm_unless_asked(settings: Any) -> None:
    """A developer's OPENAI_API_KEY must not send the suite's questions to a real model."""
    settings.OPENAI_API_KEY = ""


@pytest.fixture
def site(db: None) -> Site:
    acme = Site.objects.create(name="Acme", allowed_origins="https://shop.acme.test")
    for question, phrasings, answer, language in ACME_FAQ:
        FaqEntry.objects.create(
            site=acme,
            question=question,
            phrasings="\n".join(phrasings),
            answer=answer,
            language=language,
        )
    return acme


@pytest.fixture
def other_site(db: None) -> Site:
    return Site.objects.create(name="Globex", allowed_origins="https://globex.test")


def make_agent(username: str, name: str, teams: list[Team]) -> Agent:
    user = User.objects.create_user(username=username, password=username)
    agent = Agent.objects.create(user=user, display_name=name)
    agent.teams.set(teams)
    return agent


@pytest.fixture
def support(site: Site) -> Team:
    return Team.objects.create(site=site, name="Support")


@pytest.fixture
def sales(site: Site) -> Team:
    return Team.objects.create(site=site, name="Sales")


@pytest.fixture
def alice(support: Team) -> Agent:
    return make_agent("alice", "Alice", [support])


@pytest.fixture
def bob(sales: Team) -> Agent:
    return make_agent("bob", "Bob", [sales])


@pytest.fixture
def charlie(other_site: Site) -> Agent:
    return make_agent("charlie", "Charlie", [Team.objects.create(site=other_site, name="Support")])


@pytest.fixture
def admin(db: None) -> User:
    return User.objects.create_superuser("admin", "admin@example.com", "admin")


@pytest.fixture
def visitor_a(site: Site) -> Visitor:
    return Visitor.objects.create(site=site, name="Ann")


@pytest.fixture
def visitor_b(site: Site) -> Visitor:
    return Visitor.objects.create(site=site, name="Ben")


# --- Socket clients ----------------------------------------------------------------------


class Client:
    """A protocol client over ``WebsocketCommunicator`` that reads frames by type."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.backlog: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_to(text_data=text)

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        if self.backlog:
            return self.backlog.pop(0)
        return json.loads(await self.ws.receive_from(timeout=timeout))

    async def expect(self, frame_type: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        """Next frame of ``frame_type`` (matching ``match``); others stay in the backlog."""
        skipped: list[dict[str, Any]] = []
        try:
            while True:
                frame = await self.receive(timeout)
                if frame["type"] == frame_type and all(frame.get(k) == v for k, v in match.items()):
                    return frame
                skipped.append(frame)
        finally:
            self.backlog = skipped + self.backlog

    async def drain(self, timeout: float = 0.3) -> list[dict[str, Any]]:
        frames = list(self.backlog)
        self.backlog = []
        # receive_nothing() waits without cancelling the app, unlike a receive_from() timeout.
        while not await self.ws.receive_nothing(timeout=timeout):
            frames.append(json.loads(await self.ws.receive_from()))
        return frames

    async def close(self) -> None:
        await self.ws.disconnect()


async def widget_connect(
    site: Site, *, token: str = "", origin: str = OWN_ORIGIN, key: str | None = None
) -> tuple[Client, bool, Any]:
    path = f"/ws/widget/v1/?site={key if key is not None else site.key}"
    if token:
        path += f"&token={token}"
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"origin", origin.encode()), (b"host", HOST.encode())]
    )
    connected, detail = await communicator.connect()
    return Client(communicator), connected, detail


async def widget_for(visitor: Visitor) -> Client:
    token = await database_sync_to_async(visitor_token)(visitor)
    site = await database_sync_to_async(lambda: visitor.site)()
    client, connected, _ = await widget_connect(site, token=token)
    assert connected
    await client.expect("session.ready")
    return client


def session_cookie(user: User) -> str:
    browser = DjangoClient()
    browser.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"


async def console_connect(user: User | None, origin: str = OWN_ORIGIN) -> tuple[Client, bool]:
    headers = [(b"origin", origin.encode()), (b"host", HOST.encode())]
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", cookie.encode()))
    communicator = WebsocketCommunicator(application, "/ws/console/v1/", headers=headers)
    connected, _ = await communicator.connect()
    return Client(communicator), connected


async def console_for(user: User) -> Client:
    client, connected = await console_connect(user)
    assert connected
    await client.expect("session.ready")
    return client
