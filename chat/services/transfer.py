"""Handing a conversation to another agent or to a team's queue, with a note for them."""

from __future__ import annotations

from django.db import transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from chat.models import Agent, Conversation, Message, Team
from chat.protocol import ConversationTransferred
from chat.realtime import (
    agent_group,
    conversation_groups,
    send_after_commit,
)
from chat.services.conversations import Conflict
from chat.services.frames import conversation_frame
from chat.services.inbox import inbox_notify
from chat.services.messages import message_post
from chat.services.notes import note_add
from chat.services.queue import agent_announce, assignment_started, queue_announce


def transfer_targets(
    *, conversation: Conversation, by: Agent | None
) -> tuple[list[Agent], list[Team]]:
    """Who the conversation may go to: the site's other agents, and the site's teams."""
    agents = Agent.objects.filter(teams__site_id=conversation.site_id)
    if by is not None:
        agents = agents.exclude(pk=by.pk)
    return list(agents.distinct().order_by("display_name")), list(
        Team.objects.filter(site_id=conversation.site_id).order_by("name")
    )


def conversation_transfer(
    *,
    conversation: Conversation,
    by: Agent | None,
    to_agent: Agent | None = None,
    to_team: Team | None = None,
    note: str = "",
) -> None:
    """Give the open conversation to ``to_agent`` (assigned to them at once) or put it in
    ``to_team``'s queue. The note goes to agents only; the transcript shows the event."""
    if (to_agent is None) == (to_team is None):
        raise Conflict(_("Choose one agent or one team to transfer to."))
    if to_team is not None and to_team.site_id != conversation.site_id:
        raise Conflict(_("That team does not work on this site."))
    target_team = to_team
    if to_agent is not None:
        if by is not None and to_agent.pk == by.pk:
            raise Conflict(_("You cannot transfer a conversation to yourself."))
        site_teams = list(to_agent.teams.filter(site_id=conversation.site_id))
        if not site_teams:
            raise Conflict(_("%(name)s does not work on this site.") % {"name": to_agent})
        # The conversation joins one of the agent's teams, so they may see it.
        if conversation.team_id not in {t.pk for t in site_teams}:
            target_team = site_teams[0]
        else:
            target_team = conversation.team
    now = timezone.now()
    with transaction.atomic():
        locked = (
            Conversation.objects.select_for_update()
            .filter(pk=conversation.pk)
            .exclude(status=Conversation.Status.CLOSED)
            .first()
        )
        if locked is None:
            raise Conflict(_("A closed conversation cannot be transferred."))
        previous = locked.assignee_id
        if to_agent is not None:
            Conversation.objects.filter(pk=conversation.pk).update(
                status=Conversation.Status.ASSIGNED,
                assignee=to_agent,
                assigned_at=now,
                team=target_team,
            )
        else:
            Conversation.objects.filter(pk=conversation.pk).update(
                status=Conversation.Status.WAITING,
                assignee=None,
                assigned_at=None,
                team=target_team,
                # The customer keeps the place they had, if they had waited already.
                queued_at=Coalesce(F("queued_at"), Value(now, output_field=DateTimeField())),
            )
        conversation.refresh_from_db()
        to_name = to_agent.display_name if to_agent else str(to_team.name if to_team else "")
        from_name = by.display_name if by else _("An administrator")
        language = conversation.site.language or conversation.visitor.language or "en"
        with translation.override(language):
            if to_agent is not None:
                body = _("%(from)s transferred the conversation to %(to)s.")
            else:
                body = _("%(from)s transferred the conversation to the %(to)s team.")
            body %= {"from": from_name, "to": to_name}
        message_post(
            conversation=conversation,
            author=Message.Author.SYSTEM,
            body=body,
            meta={
                "event": "transferred",
                "from_agent_id": by.pk if by else None,
                "to_agent_id": to_agent.pk if to_agent else None,
                "to_team_id": to_team.pk if to_team else None,
            },
        )
        note = note.replace("\x00", "").strip()  # PostgreSQL refuses NUL in text
        if note:
            note_add(conversation=conversation, agent=by, body=note, meta={"event": "transfer"})
        told = _("%(from)s transferred conversation #%(id)d to you") % {
            "from": from_name,
            "id": conversation.pk,
        }
        if to_agent is None:
            told = _("%(from)s transferred conversation #%(id)d to %(team)s") % {
                "from": from_name,
                "id": conversation.pk,
                "team": to_name,
            }
        if note:
            told += f": {note}"
        frame = ConversationTransferred(
            conversation_id=conversation.pk,
            from_name=from_name,
            to_name=to_name,
            note=note,
            message=told,
        )
        if to_agent is not None:
            send_after_commit([agent_group(to_agent.pk)], frame)
            assignment_started(conversation=conversation, agent=to_agent)
            inbox_notify(agent_id=to_agent.pk, conversation_id=conversation.pk)
        else:
            team_agents = Agent.objects.filter(teams=to_team).values_list("pk", flat=True)
            send_after_commit([agent_group(pk) for pk in team_agents], frame)
        if previous is not None:
            inbox_notify(agent_id=previous, conversation_id=conversation.pk)
            previous_agent = Agent.objects.filter(pk=previous).first()
            if previous_agent is not None:
                agent_announce(previous_agent)
        send_after_commit(
            conversation_groups(conversation.pk),
            conversation_frame(conversation),
        )
        queue_announce(conversation.site_id)
