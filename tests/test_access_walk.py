"""Who may see what, walked exhaustively: every URL pattern, htmx partial and socket frame
that names a conversation, as every persona. A new view or frame without an entry here
fails ``test_it_has_an_entry_for_every_*``: decide who may use it, then add the row."""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as DjangoClient
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from chat import protocol
from chat.models import Attachment, BotDecision, Conversation, CsatRating, Label, Site, Visitor
from chat.services.attachments import attachment_send_from_visitor
from chat.services.csat import csat_link
from chat.services.messages import message_post
from chat.services.notifications import resume_token
from chat.services.visitors import visitor_token
from tests.conftest import Client, console_connect, console_for, widget_for

# Visitors reach HTTP with their token in ``Authorization: Bearer`` (files); for every other
# route they are anonymous, and a row that does not name them expects the anonymous answer.
PERSONAS = ["anonymous", "visitor_a", "visitor_b", "alice", "bob", "charlie", "admin"]
CONSOLE = {"anonymous": 302, "alice": 200, "bob": 200, "charlie": 200, "admin": 200}
EVERYONE = dict.fromkeys(PERSONAS, 200)
STAFF_API = {"anonymous": 403, "alice": 403, "bob": 403, "charlie": 403, "admin": 200}
# The Support-only conversation: Alice's team and the admin; Bob (Sales) and Charlie (another
# company) get the same 404 as for a conversation that does not exist.
SUPPORT_ONLY = {"anonymous": 302, "alice": 200, "bob": 404, "charlie": 404, "admin": 200}


@dataclass
class World:
    site: Site
    shared: Conversation  # Ann's, in Acme's shared queue
    support_only: Conversation  # Ben's, for Acme's Support team only
    other_site: Conversation  # a Globex customer's
    decision: BotDecision  # an Acme question waiting for review
    customer: Visitor  # Ann, as the privacy API names her
    label: Label  # one of Acme's labels
    attachment: Attachment  # a file Ben sent in his Support-only conversation
    rating_link: str  # the signed link to rate Ben's conversation
    resume_token: str  # the signed link back to Ben's conversation


def text_file() -> SimpleUploadedFile:
    return SimpleUploadedFile("note.txt", b"order 981, see attached", content_type="text/plain")


def upload(world: World) -> dict[str, Any]:
    return {"client_id": "u1", "conversation_id": world.support_only.pk, "file": text_file()}


# The file of Ben's Support-only conversation: Ben, Alice's team and the admin.
BENS_FILE = {
    "anonymous": 404,
    "visitor_a": 404,
    "visitor_b": 200,
    "alice": 200,
    "bob": 404,
    "charlie": 404,
    "admin": 200,
}


@dataclass
class Route:
    name: str
    expect: dict[str, int]
    method: str = "GET"
    args: Callable[[World], list[Any]] = lambda world: []
    data: Callable[[World], dict[str, Any]] = lambda world: {}
    headers: dict[str, str] = field(default_factory=dict)
    label: str = ""
    redirect: str = "/login/"  # where a 302 must lead

    def __post_init__(self) -> None:
        for visitor in ("visitor_a", "visitor_b"):
            self.expect = {visitor: self.expect["anonymous"]} | self.expect

    @property
    def id(self) -> str:
        return self.label or self.name


def conversation_arg(world: World) -> list[Any]:
    return [world.support_only.pk]


ROUTES = [
    Route("home", EVERYONE),
    Route("demo", EVERYONE),
    Route("widget", EVERYONE, args=lambda w: [w.site.key]),
    Route("login", EVERYONE),
    Route("logout", dict.fromkeys(PERSONAS, 405)),  # only POST signs out
    Route("console:home", CONSOLE),
    Route("console:queue", CONSOLE, headers={"HX-Request": "true"}),
    # Only agents have a status; the admin of the fixtures has no Agent profile.
    Route("console:status", CONSOLE | {"admin": 404}, headers={"HX-Request": "true"}),
    Route("console:conversation", SUPPORT_ONLY, args=conversation_arg),
    Route(
        "console:conversation",
        SUPPORT_ONLY,
        args=conversation_arg,
        headers={"HX-Request": "true", "HX-Target": "conv-header"},
        label="console:conversation#header",
    ),
    Route("console:search", CONSOLE, data=lambda w: {"q": "Ben"}, headers={"HX-Request": "true"}),
    # Staff and supervising agents; the fixtures' agents are neither.
    Route("console:supervisor", CONSOLE | {"alice": 403, "bob": 403, "charlie": 403}),
    Route("console:take", SUPPORT_ONLY, method="POST", args=conversation_arg),
    Route("console:reopen", SUPPORT_ONLY, method="POST", args=conversation_arg),
    Route("console:transfer", SUPPORT_ONLY, method="POST", args=conversation_arg),
    Route(
        "console:label",
        SUPPORT_ONLY,
        method="POST",
        args=conversation_arg,
        data=lambda w: {"label": w.label.pk, "action": "add"},
    ),
    Route(
        "console:seen",
        SUPPORT_ONLY | {"alice": 204, "admin": 204},
        method="POST",
        args=conversation_arg,
    ),
    Route("console:close", SUPPORT_ONLY, method="POST", args=conversation_arg),
    Route("console:review", CONSOLE),
    Route("console:reports", CONSOLE),
    Route("console:reports_csv", CONSOLE),
    Route(
        "console:upload",
        SUPPORT_ONLY | {"alice": 201, "admin": 403},  # only agents send files
        method="POST",
        args=conversation_arg,
        data=lambda w: {"client_id": "a1", "file": text_file()},
    ),
    Route(
        "widget_upload",
        {"anonymous": 401, "visitor_a": 404, "visitor_b": 201}
        | dict.fromkeys(["alice", "bob", "charlie", "admin"], 401),
        method="POST",
        args=lambda w: [w.site.key],
        data=upload,
    ),
    Route("attachment", BENS_FILE, args=lambda w: [w.attachment.public_id]),
    Route("attachment_thumbnail", BENS_FILE, args=lambda w: [w.attachment.public_id]),
    # The signed link itself is the customer's key: whoever holds it may rate, or resume.
    Route("csat_rate", EVERYONE, args=lambda w: [w.rating_link]),
    Route(
        "resume",
        dict.fromkeys(PERSONAS, 302),
        args=lambda w: [w.resume_token],
        redirect="https://shop.acme.test/#hd-resume=",  # the site's page, the widget opened
    ),
    Route("service_worker", EVERYONE),
    # The visitor's token travels in the JSON body; without one nobody subscribes.
    Route("widget_push_subscribe", dict.fromkeys(PERSONAS, 400), "POST", lambda w: [w.site.key]),
    Route(
        "console:push_subscribe",
        CONSOLE | {"alice": 400, "bob": 400, "charlie": 400, "admin": 403},
        "POST",
    ),
    Route(
        "console:push_unsubscribe",
        CONSOLE | {"alice": 400, "bob": 400, "charlie": 400, "admin": 400},
        "POST",
    ),
    Route("console:notifications", CONSOLE | {"admin": 404}),  # only agents have preferences
    # A site's server with its API key (tests/test_proactive*.py); no key, no entry.
    Route("api_messages", dict.fromkeys(PERSONAS, 401), "POST", lambda w: [w.site.key]),
    Route(
        "console:review_draft",
        CONSOLE | {"charlie": 404},
        data=lambda w: {"item": f"d{w.decision.pk}"},
        headers={"HX-Request": "true"},
    ),
    Route("console:review_create", CONSOLE, method="POST", headers={"HX-Request": "true"}),
    Route(
        "console:review_dismiss",
        CONSOLE,
        method="POST",
        data=lambda w: {"item": f"d{w.decision.pk}"},
        headers={"HX-Request": "true"},
    ),
    Route(
        "api:customer_lookup",
        STAFF_API,
        data=lambda w: {"site": w.site.key, "external_id": "cust-1"},
    ),
    Route("api:customer_export", STAFF_API, args=lambda w: [w.customer.public_id]),
    Route("api:customer_erase", STAFF_API, method="POST", args=lambda w: [w.customer.public_id]),
    # The site's servers, with its API key (tests/test_privacy.py): a browser's session is none.
    Route("api:site_customer_lookup", dict.fromkeys(PERSONAS, 401), args=lambda w: [w.site.key]),
    Route(
        "api:site_customer_export",
        dict.fromkeys(PERSONAS, 401),
        args=lambda w: [w.site.key, w.customer.public_id],
    ),
    Route(
        "api:site_customer_erase",
        dict.fromkeys(PERSONAS, 401),
        "POST",
        lambda w: [w.site.key, w.customer.public_id],
    ),
]
# Django's admin has its own permission system (staff + model permissions): one row for it.
ADMIN_SITE = Route("admin:index", CONSOLE | {"alice": 302, "bob": 302, "charlie": 302})


def url_names(patterns: list[Any] | None = None, namespace: str = "") -> set[str]:
    names: set[str] = set()
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            if pattern.namespace == "admin":
                names.add("admin:*")
                continue
            names |= url_names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            assert pattern.name, f"unnamed URL pattern {pattern.pattern}: name it, then walk it"
            names.add(f"{namespace}{pattern.name}")
    return names


def test_it_has_an_entry_for_every_url_pattern():
    assert url_names() == {route.name for route in ROUTES} | {"admin:*"}


@pytest.fixture
def world(site, other_site, support, visitor_a, visitor_b) -> World:
    Site.objects.create(name="Acme Shop", key="acme-demo")
    visitor_a.external_id = "cust-1"
    visitor_a.save()
    shared = Conversation.objects.create(site=site, visitor=visitor_a, status="waiting")
    message_post(conversation=shared, author="bot", body="An answer", meta={"confidence": 0.9})
    support_only = Conversation.objects.create(
        site=site, visitor=visitor_b, status="waiting", team=support
    )
    other = Conversation.objects.create(
        site=other_site, visitor=Visitor.objects.create(site=other_site), status="waiting"
    )
    decision = BotDecision.objects.create(
        conversation=shared,
        question_seq=1,
        question="Do you ship to Mars?",
        outcome="handoff",
        reason="low_confidence",
    )
    label = Label.objects.create(site=site, name="refund")
    posted = attachment_send_from_visitor(
        visitor=visitor_b, conversation=support_only, upload=text_file(), client_id="f1"
    )
    attachment = Attachment.objects.get(message=posted.message)
    attachment.thumbnail.save("note-thumb.webp", ContentFile(b"RIFF0000WEBP"))
    CsatRating.objects.create(
        conversation=support_only,
        site=site,
        visitor=visitor_b,
        resolved_by="human",
        scale="stars",
        question="How was it?",
        requested_at=timezone.now(),
    )
    link = csat_link(support_only).rstrip("/").rsplit("/", 1)[-1]
    resume = resume_token(support_only)
    return World(
        site, shared, support_only, other, decision, visitor_a, label, attachment, link, resume
    )


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


@pytest.fixture
def people(alice, bob, charlie, admin) -> dict[str, User | None]:
    return {
        "anonymous": None,
        "visitor_a": None,
        "visitor_b": None,
        "alice": alice.user,
        "bob": bob.user,
        "charlie": charlie.user,
        "admin": admin,
    }


@pytest.fixture(autouse=True)
def quick_passwords(settings):
    """Every walk signs in five people; hashing their passwords properly is not the point."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.django_db
@pytest.mark.parametrize("route", [*ROUTES, ADMIN_SITE], ids=lambda r: r.id)
def test_it_answers_each_persona_as_the_table_says(world, people, route):
    bearer = {
        "visitor_a": visitor_token(world.customer),
        "visitor_b": visitor_token(world.support_only.visitor),
    }
    answered = {}
    for persona in PERSONAS:  # in this order: the admin's erase comes last
        client = DjangoClient()
        headers = dict(route.headers)
        if people[persona] is not None:
            client.force_login(people[persona])
        if persona in bearer:
            headers["Authorization"] = f"Bearer {bearer[persona]}"
        url = reverse(route.name, args=route.args(world))
        send = client.get if route.method == "GET" else client.post
        response = send(url, route.data(world), headers=headers)
        answered[persona] = response.status_code
        if response.status_code == 302:
            assert route.redirect in response["Location"], persona
    assert answered == route.expect


@pytest.mark.django_db
def test_it_lists_only_past_conversations_the_agent_may_see(client, world, bob, support):
    hidden = Conversation.objects.create(site=world.site, visitor=world.customer, team=support)
    client.force_login(bob.user)
    page = client.get(reverse("console:conversation", args=[world.shared.pk])).content.decode()
    assert f"#{hidden.pk}<" not in page
    hidden.team = None
    hidden.save()
    page = client.get(reverse("console:conversation", args=[world.shared.pk])).content.decode()
    assert f"#{hidden.pk}<" in page


# --- Sockets: every frame that names a conversation ----------------------------------------


def frame_types(union: Any) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0] for m in members}


def widget_frame(kind: str, conversation_id: int) -> dict[str, Any] | None:
    """The frame of ``kind`` aimed at ``conversation_id``; None if it names no conversation."""
    return {
        "conversation.sync": {"conversation_id": conversation_id, "after_seq": 0},
        "message.create": {"conversation_id": conversation_id, "client_id": "w", "body": "hi"},
        "handoff.request": {"conversation_id": conversation_id},
        "feedback.create": {"conversation_id": conversation_id, "seq": 1, "helpful": True},
        "typing.start": {"conversation_id": conversation_id},
        "message.read": {"conversation_id": conversation_id, "seq": 1},
        "conversation.close": {"conversation_id": conversation_id},
        "csat.create": {"conversation_id": conversation_id, "score": 5},
        "transcript.request": {"conversation_id": conversation_id},
        "ping": None,
        "visitor.update": None,  # the visitor's own contact details
        "visitor.identify": None,  # who the visitor is: see test_identity.py
    }[kind]


CONSOLE_FRAMES = {
    "conversation.sync",
    "message.create",
    "note.create",
    "typing.start",
    "message.read",
    "ping",
}


def test_it_has_an_entry_for_every_socket_frame():
    for kind in frame_types(protocol.WidgetFrame):
        widget_frame(kind, 1)  # a KeyError names the frame without an entry
    assert frame_types(protocol.ConsoleFrame) == CONSOLE_FRAMES


async def answers(client: Client, kind: str, fields: dict[str, Any]) -> list[dict[str, Any]]:
    await client.send(type=kind, **fields)
    await client.send(type="ping")
    frames = []
    while (frame := await client.receive())["type"] != "pong":
        frames.append(frame)
    return frames


def not_found(frames: list[dict[str, Any]]) -> bool:
    return any(f["type"] == "error" and f["code"] == "not_found" for f in frames)


@pytest.mark.django_db(transaction=True)
async def test_it_lets_only_the_owner_reach_a_conversation_over_the_widget(world):
    everyone = await database_sync_to_async(
        lambda: {
            "visitor_a": world.customer,
            "visitor_b": world.support_only.visitor,
            "globex_visitor": world.other_site.visitor,
        }
    )()
    for persona, visitor in everyone.items():
        client = await widget_for(visitor)
        for kind in sorted(frame_types(protocol.WidgetFrame)):
            fields = widget_frame(kind, world.shared.pk)
            if fields is None:
                continue
            frames = await answers(client, kind, fields)
            allowed = persona == "visitor_a"
            assert not_found(frames) is not allowed, (persona, kind, frames)
            if not allowed:
                assert not [f for f in frames if f["type"] == "message.created"]
        await client.close()
    mine = world.shared.messages.filter(author="visitor")
    assert await database_sync_to_async(mine.count)() == 1  # Ann's; the others stored nothing


@pytest.mark.django_db(transaction=True)
async def test_it_lets_only_the_right_agents_reach_a_conversation_over_the_console(world, people):
    for persona, user in people.items():
        if user is None:
            client, connected = await console_connect(None)
            assert connected
            refused = await client.expect("error")
            assert refused["code"] == "forbidden"
            await client.close()
            continue
        client = await console_for(user)
        for kind in sorted(CONSOLE_FRAMES - {"ping"}):
            fields = {"conversation_id": world.support_only.pk}
            if kind in {"message.create", "note.create"}:
                fields |= {"client_id": f"{persona}-1", "body": "hello"}
            if kind == "message.read":
                fields |= {"seq": 1}
            frames = await answers(client, kind, fields)
            allowed = SUPPORT_ONLY[persona] == 200
            assert not_found(frames) is not allowed, (persona, kind, frames)
        await client.close()
    bodies = await database_sync_to_async(
        lambda: list(world.support_only.messages.filter(author="agent").values_list("body"))
    )()
    assert bodies == [("hello",)]  # Alice's; the admin has no Agent profile to reply with
