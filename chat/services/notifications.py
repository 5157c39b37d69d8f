"""Telling people: agents (console frame + Web Push) and visitors (Web Push + e-mail).

Nothing here sends anything inline. Each push or e-mail is a ``Delivery`` row, created in
the caller's transaction and handed to the Celery task ``delivery_send`` after commit; the
task tries it a bounded number of times and records how it went. A chat never waits for a
push service or a mail server, and a failure there never undoes a message.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Greatest
from django.db.models.signals import post_delete, post_save
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from chat.memo import Memo
from chat.models import (
    Agent,
    Conversation,
    Delivery,
    Message,
    PushSubscription,
    Visitor,
)
from chat.protocol import NotificationCreated
from chat.realtime import agent_group, send_after_commit
from chat.services.deliveries import email_queue, push_queue
from chat.services.links import csat_url, resume_link, resume_token

# Beat's sweep looks at this many conversations with unseen replies per run.
SWEEP_BATCH = 200
AGENT_SCOPE = "/console/"
VISITOR_SCOPE = "/widget/"


# --- Subscriptions -----------------------------------------------------------------------


class BadSubscription(Exception):
    """Not a Web Push subscription (``PushSubscription.toJSON()``)."""


def endpoint_allowed(endpoint: str) -> bool:
    """Push services are public HTTPS hosts. Anything else would have us POST to whatever a
    browser named, an internal address included (only tests and DEBUG allow plain HTTP)."""
    parts = urlsplit(endpoint)
    if parts.scheme == "http" and settings.WEBPUSH_ALLOW_HTTP:
        return bool(parts.hostname)
    if parts.scheme != "https" or not parts.hostname or parts.hostname == "localhost":
        return False
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return True
    return False  # an IP literal: not a push service


def push_subscribe(
    *,
    subscription: Any,
    agent: Agent | None = None,
    visitor: Visitor | None = None,
    user_agent: str = "",
) -> PushSubscription:
    """Store the browser's subscription for ``agent`` or ``visitor`` (its endpoint moves to
    whoever subscribed with it last: one browser, one owner)."""
    if not isinstance(subscription, dict) or not isinstance(subscription.get("keys"), dict):
        raise BadSubscription
    endpoint = subscription.get("endpoint")
    keys = subscription["keys"]
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not (isinstance(endpoint, str) and endpoint_allowed(endpoint)):
        raise BadSubscription
    if not (isinstance(p256dh, str) and isinstance(auth, str)) or len(endpoint) > 1000:
        raise BadSubscription
    if not (0 < len(p256dh) <= 200 and 0 < len(auth) <= 100):
        raise BadSubscription
    row, _created = PushSubscription.objects.update_or_create(
        endpoint=endpoint,
        defaults={
            "agent": agent,
            "visitor": visitor,
            "p256dh": p256dh,
            "auth": auth,
            "user_agent": user_agent[:300],
        },
    )
    return row


def push_unsubscribe(
    *, endpoint: str, agent: Agent | None = None, visitor: Visitor | None = None
) -> int:
    owner = Q(agent=agent) if agent is not None else Q(visitor=visitor)
    deleted, _ = PushSubscription.objects.filter(owner, endpoint=endpoint).delete()
    return deleted


# --- Agents ------------------------------------------------------------------------------


def _agent_notify(
    *, agents: list[Agent], kind: str, conversation: Conversation, title: str, body: str
) -> None:
    url = reverse("console:conversation", args=[conversation.pk])
    tag = f"conversation-{conversation.pk}"
    for agent in agents:
        send_after_commit(
            [agent_group(agent.pk)],
            NotificationCreated(
                kind=kind,  # type: ignore[arg-type]
                conversation_id=conversation.pk,
                title=title,
                body=body,
                url=url,
                tag=tag,
                sound=agent.notify_sound,
            ),
        )
    payload = {"kind": kind, "title": title, "body": body, "url": url, "tag": tag}
    payload["scope"] = AGENT_SCOPE
    subscriptions = agent_push_subscriptions([agent.pk for agent in agents])
    push_queue(subscriptions=subscriptions, kind=kind, payload=payload, conversation=conversation)


# Each customer message asks for its agent's subscriptions: this process remembers them for
# a few seconds, so a message costs no database connection. A change in this process
# (subscribe, unsubscribe, an expired one removed, an erasure) forgets the agents it touched
# once it commits; other processes see it within AGENT_PUSH_MEMORY_SECONDS.
AGENT_PUSH_MEMORY_SECONDS = 5.0
agent_push = Memo[int, list[PushSubscription]](AGENT_PUSH_MEMORY_SECONDS)


def agent_push_subscriptions(agent_ids: list[int]) -> list[PushSubscription]:
    """The Web Push subscriptions of these agents (remembered for a few seconds)."""
    kept = agent_push.get_many(agent_ids, _push_subscriptions_of)
    return [row for agent_id in agent_ids for row in kept.get(agent_id, ())]


def _push_subscriptions_of(agent_ids: list[int]) -> dict[int, list[PushSubscription]]:
    found: dict[int, list[PushSubscription]] = {agent_id: [] for agent_id in agent_ids}
    for row in PushSubscription.objects.filter(agent_id__in=agent_ids).order_by("pk"):
        found[row.agent_id].append(row)  # type: ignore[index]
    return found


def _subscription_changed(sender: Any, instance: PushSubscription, **kwargs: Any) -> None:
    # The endpoint may have moved from another agent: forget that one too.
    owners = {instance.agent_id, getattr(instance, "loaded_agent_id", None)}
    agent_push.forget_after_commit(agent_id for agent_id in owners if agent_id is not None)


post_save.connect(_subscription_changed, sender=PushSubscription)
post_delete.connect(_subscription_changed, sender=PushSubscription)


def _preview(conversation: Conversation) -> str:
    first = conversation.messages.filter(author=Message.Author.VISITOR).order_by("-seq").first()
    return first.body[:140] if first else ""


def agents_notify_queued(*, conversation: Conversation) -> None:
    """A conversation joined the queue: tell the online agents who could take it."""
    teams = (
        Q(teams=conversation.team_id)
        if conversation.team_id
        else Q(teams__site=conversation.site_id)
    )
    agents = list(
        Agent.objects.filter(teams, status=Agent.Status.ONLINE, notify_queued=True).distinct()
    )
    if agents:
        _agent_notify(
            agents=agents,
            kind="queued",
            conversation=conversation,
            title=_("New conversation from %(name)s") % {"name": conversation.visitor},
            body=_preview(conversation),
        )


def agent_notify_assigned(*, conversation: Conversation, agent: Agent) -> None:
    """Routing gave ``agent`` a conversation (they did not take it themselves)."""
    if agent.notify_assigned:
        _agent_notify(
            agents=[agent],
            kind="assigned",
            conversation=conversation,
            title=_("Assigned to you: %(name)s") % {"name": conversation.visitor},
            body=_preview(conversation),
        )


def agent_notify_reply(*, conversation: Conversation, message: Message) -> None:
    """The customer wrote in a conversation assigned to an agent."""
    agent = conversation.assignee
    if agent is not None and agent.notify_replies:
        _agent_notify(
            agents=[agent],
            kind="reply",
            conversation=conversation,
            title=_("%(name)s replied") % {"name": conversation.visitor},
            body=message.body[:140],
        )


def agent_preferences_set(
    *, agent: Agent, queued: bool, assigned: bool, replies: bool, sound: bool
) -> Agent:
    agent.notify_queued, agent.notify_assigned = queued, assigned
    agent.notify_replies, agent.notify_sound = replies, sound
    agent.save(update_fields=["notify_queued", "notify_assigned", "notify_replies", "notify_sound"])
    return agent


# --- Visitors ----------------------------------------------------------------------------


def visitor_notify_reply(*, conversation: Conversation, message: Message) -> dict[str, Any]:
    """Someone answered the visitor: push to their browsers now; e-mail what stays unseen.

    Returns how it will reach them: ``{"push": n, "email": "now" | "if_unseen" | "none"}``.
    """
    visitor = conversation.visitor
    subscriptions = list(visitor.push_subscriptions.all())
    with translation.override(_language(conversation)):
        payload = {
            "kind": "reply",
            "title": _("New reply from %(site)s") % {"site": conversation.site.name},
            "body": message.body[:140],
            "url": reverse("resume", args=[resume_token(conversation)]),
            "tag": f"conversation-{conversation.pk}",
            "scope": VISITOR_SCOPE,
        }
    push_queue(
        subscriptions=subscriptions, kind="reply", payload=payload, conversation=conversation
    )
    email = "none"
    if visitor.email and conversation.site.email_fallback_minutes:
        # Someone who never opened the widget (only known to the API) cannot see it there.
        if not subscriptions and not visitor.user_agent:
            transaction.on_commit(
                lambda: email_unseen_send(conversation_id=conversation.pk, now=None, wait=False)
            )
            email = "now"
        else:
            _schedule_fallback(conversation)
            email = "if_unseen"
    return {"push": len(subscriptions), "email": email}


def _schedule_fallback(conversation: Conversation) -> None:
    from chat.tasks import email_fallback_check

    seconds = conversation.site.email_fallback_minutes * 60
    # Eager Celery ignores the countdown: the check then runs early and does nothing; beat's
    # sweep (email_fallback_sweep) catches it.
    transaction.on_commit(
        lambda: email_fallback_check.apply_async((conversation.pk,), countdown=seconds + 1),
        robust=True,
    )


def _unseen_replies(conversation: Conversation) -> list[Message]:
    after = max(conversation.visitor_read_seq, conversation.visitor_emailed_seq)
    return list(
        conversation.messages.filter(author=Message.Author.AGENT, seq__gt=after)
        .select_related("agent")
        .order_by("seq")
    )


def email_unseen_send(
    *, conversation_id: int, now: datetime | None, wait: bool = True
) -> Delivery | None:
    """E-mail the visitor every reply they have not seen, in one message, once the oldest
    has waited the site's N minutes (at once when ``wait`` is False)."""
    now = now or timezone.now()
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
        if conversation is None:
            return None
        conversation = Conversation.objects.select_related("site", "visitor").get(
            pk=conversation.pk
        )
        visitor, site = conversation.visitor, conversation.site
        if not visitor.email or not site.email_fallback_minutes:
            return None
        replies = _unseen_replies(conversation)
        if not replies:
            return None
        if wait and replies[0].created_at > now - timedelta(minutes=site.email_fallback_minutes):
            return None
        Conversation.objects.filter(pk=conversation.pk).update(visitor_emailed_seq=replies[-1].seq)
        with translation.override(_language(conversation)):
            from chat.services.frames import author_name

            context = {
                "site": site,
                "visitor": visitor,
                "messages": [(author_name(m), m) for m in replies],
                "link": resume_link(conversation),
            }
            subject = (
                _("New reply from %(site)s") % {"site": site.name}
                if len(replies) == 1
                else _("%(n)d new replies from %(site)s") % {"n": len(replies), "site": site.name}
            )
            text = render_to_string("email/unseen_replies.txt", context)
        return email_queue(
            to=visitor.email, kind="digest", subject=subject, text=text, conversation=conversation
        )


def email_fallback_sweep(*, now: datetime | None = None) -> int:
    """Beat: e-mail every conversation whose replies stayed unseen past the site's limit."""
    now = now or timezone.now()
    unseen = Message.objects.filter(
        conversation=OuterRef("pk"),
        author=Message.Author.AGENT,
        seq__gt=Greatest(OuterRef("visitor_read_seq"), OuterRef("visitor_emailed_seq")),
        created_at__lte=now - timedelta(minutes=1),
    )
    candidates = (
        Conversation.objects.filter(site__email_fallback_minutes__gt=0)
        .exclude(visitor__email="")
        .filter(Exists(unseen))
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    sent = 0
    for conversation_id in list(candidates):
        if email_unseen_send(conversation_id=conversation_id, now=now) is not None:
            sent += 1
    return sent


class NoAddress(Exception):
    """The visitor has left no e-mail address to send to."""


def transcript_request(*, conversation: Conversation) -> str:
    """The visitor asked for the transcript: e-mail it to the address they left (perhaps on
    another page since their socket connected). Returns the address; ``NoAddress`` if none."""
    conversation.visitor.refresh_from_db(fields=["email"])
    if not conversation.visitor.email:
        raise NoAddress
    transcript_send(conversation=conversation)
    return conversation.visitor.email


def transcript_send(*, conversation: Conversation, to: str | None = None) -> Delivery | None:
    """E-mail the whole conversation to the visitor (on request, or when it closes)."""
    address = to or conversation.visitor.email
    if not address:
        return None
    from chat.services.frames import author_name

    messages = list(
        conversation.messages.exclude(author=Message.Author.SYSTEM)
        .select_related("agent")
        .order_by("seq")
    )
    with translation.override(_language(conversation)):
        context = {
            "site": conversation.site,
            "conversation": conversation,
            "messages": [(author_name(m), m) for m in messages],
            "link": resume_link(conversation),
            "csat_link": csat_url(conversation),
        }
        subject = _("Your conversation with %(site)s") % {"site": conversation.site.name}
        text = render_to_string("email/transcript.txt", context)
    return email_queue(
        to=address, kind="transcript", subject=subject, text=text, conversation=conversation
    )


def _language(conversation: Conversation) -> str:
    return conversation.site.language or conversation.visitor.language or "en"
