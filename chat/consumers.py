"""WebSocket edges: authenticate, parse one frame, call one service, answer."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis.exceptions
from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer, get_handler_name
from channels.db import DatabaseSyncToAsync
from channels.generic.websocket import WebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils.translation import gettext as _

from chat import access, ratelimit
from chat.models import Agent, Conversation, Site, Visitor
from chat.protocol import (
    CLOSE_BAD_TOKEN,
    CLOSE_FORBIDDEN,
    CLOSE_RATE_LIMITED,
    CONSOLE_FRAMES,
    WIDGET_FRAMES,
    AgentOut,
    BotDelayed,
    ConversationClose,
    ConversationOut,
    ConversationSync,
    CsatCreate,
    CsatRecorded,
    ErrorCode,
    FeedbackCreate,
    FeedbackRecorded,
    Frame,
    HandoffRequest,
    MessageAck,
    MessageCreate,
    MessageRead,
    NoteCreate,
    Ping,
    Pong,
    ProtocolError,
    SessionReady,
    SyncDone,
    TranscriptQueued,
    TranscriptRequest,
    TypingStart,
    TypingStarted,
    VisitorIdentified,
    VisitorIdentify,
    VisitorOut,
    VisitorUpdate,
    VisitorUpdated,
    dump,
    parse_frame,
)
from chat.ratelimit import RateLimited
from chat.realtime import (
    FORWARD,
    Outbox,
    agent_group,
    agents_group,
    collecting,
    outbox_of,
    send_now,
    site_agents_group,
    socket_closed,
    socket_opened,
    visitor_group,
)
from chat.services import conversations, csat, identity, notifications, presence, receipts
from chat.services.frames import conversation_frame, message_frame
from chat.services.messages import messages_after
from chat.services.notes import note_add, note_frame, notes_from
from chat.services.queue import queue_place
from chat.services.visitors import (
    BadToken,
    InvalidEmail,
    site_for_key,
    visitor_contact_set,
    visitor_create,
    visitor_from_token,
    visitor_token,
)
from chat.threads import DaemonThreadPool

log = logging.getLogger(__name__)

# A backing service is down (PostgreSQL unreachable, Redis restarting): the transaction rolled
# back, so nothing was stored, and the same frame will likely work in a moment.
OUTAGES: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
RETRY_AFTER_OUTAGE = 2  # seconds, in the ``unavailable`` error
TYPING_EVERY = 1.0  # seconds; clients send every 3 s and show the indicator for 4 s


@cache
def frame_threads() -> DaemonThreadPool:
    """The threads that run socket frames, shared by every socket of the process.

    Channels runs all sync consumers in one thread, so one socket's database round trip
    held up every other socket and every delivery. Frames of one socket still run one at a
    time, in order (the consumer awaits each before reading the next).
    """
    return DaemonThreadPool(
        max_workers=settings.HELPDESK_FRAME_THREADS, thread_name_prefix="frames"
    )


def session_of(visitor: Visitor) -> tuple[VisitorOut, ConversationOut | None]:
    """Who the widget is (with a fresh token) and their latest conversation, if any."""
    latest = access.conversations_for_visitor(visitor).order_by("-created_at").first()
    visitor_out = VisitorOut(id=str(visitor.public_id), token=visitor_token(visitor))
    return visitor_out, conversation_frame(latest) if latest else None


class OutboxSend(SyncConsumer):
    """Sends made while running one of this socket's frames wait in the frame's outbox."""

    def send(self, message: dict[str, Any]) -> None:
        outbox = outbox_of(self)
        if outbox is None:
            super().send(message)
        else:
            outbox.socket(message)


class ProtocolConsumer(WebsocketConsumer, OutboxSend):
    """Shared frame loop: size limit, parsing, typed errors, group bookkeeping."""

    frames: Any
    # Frame class → the name of the method that handles it: one map per class, not a dict of
    # bound methods per socket (a process holds thousands of idle sockets).
    handlers: dict[type[Frame], str]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.raw_send: Callable[[dict[str, Any]], Awaitable[None]] = send
        await super().__call__(scope, receive, send)

    async def dispatch(self, message: dict[str, Any]) -> None:  # type: ignore[override]
        if message["type"] == FORWARD:
            # A finished frame from the layer: straight out, no thread, no database.
            # ("frame": one frame, as a process of the previous release sends it.)
            for frame in message.get("frames") or [message["frame"]]:
                self.forwarded(frame)
                text = json.dumps(frame, ensure_ascii=False)
                await self.raw_send({"type": "websocket.send", "text": text})
            return
        # The frame runs in a thread; what it sends goes out here, on the loop, in order.
        outbox = Outbox(self)
        run = DatabaseSyncToAsync(
            self.dispatch_sync, thread_sensitive=False, executor=frame_threads()
        )
        try:
            await run(message, outbox)
        finally:
            await outbox.flush(self.raw_send)

    def forwarded(self, frame: dict[str, Any]) -> None:
        """A layer frame on its way out (on the event loop: no database here)."""

    def dispatch_sync(self, message: dict[str, Any], outbox: Outbox) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        with collecting(outbox):
            handler(message)

    def websocket_connect(self, message: dict[str, Any]) -> None:
        self.groups_joined: set[str] = set()
        socket_opened(self)
        super().websocket_connect(message)

    def websocket_disconnect(self, message: dict[str, Any]) -> None:
        socket_closed(self)
        super().websocket_disconnect(message)

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        ref: str | None = None
        try:
            frame = parse_frame(text_data, self.frames, max_bytes=settings.HELPDESK_MAX_FRAME_BYTES)
            ref = getattr(frame, "client_id", None)
            getattr(self, self.handlers[type(frame)])(frame)
        except ProtocolError as error:
            self.send_json(error.frame())
        except access.NotFound:
            self.send_error(ErrorCode.NOT_FOUND, _("No such conversation."), ref)
        except (conversations.Conflict, csat.CsatError) as conflict:
            self.send_error(ErrorCode.CONFLICT, str(conflict), ref)
        except conversations.ConsentRequired:
            self.send_error(
                ErrorCode.CONSENT_REQUIRED, _("Please agree to the terms before chatting."), ref
            )
        except RateLimited as limited:
            self.send_json(rate_limited_error(limited, ref).frame())
        except OUTAGES as outage:
            log.warning("frame refused, a backing service is down: %r", outage)
            self.send_json(
                ProtocolError(
                    ErrorCode.UNAVAILABLE,
                    _("The service is briefly unavailable; nothing was stored. Try again."),
                    ref,
                    retry_after=RETRY_AFTER_OUTAGE,
                ).frame()
            )
        except Exception:
            log.exception("frame failed")
            self.send_error(
                ErrorCode.SERVER_ERROR, _("Something went wrong; nothing was stored."), ref
            )

    def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            self.leave(group)

    def send_json(self, data: dict[str, Any]) -> None:
        # WebsocketConsumer.send (mypy sees the untyped base's send as OutboxSend's).
        self.send(text_data=json.dumps(data, ensure_ascii=False))  # type: ignore[call-arg]

    def send_frame(self, frame: Frame) -> None:
        self.send_json(dump(frame))

    def send_error(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        self.send_json(ProtocolError(code, message, ref).frame())

    def refuse(self, code: ErrorCode, message: str, close_code: int) -> None:
        self.accept()
        self.send_error(code, message)
        self.close(code=close_code)

    def join(self, group: str) -> None:
        if group not in self.groups_joined:
            self.channel_layer_call("group_add", group)
            self.groups_joined.add(group)

    def leave(self, group: str) -> None:
        self.channel_layer_call("group_discard", group)

    def channel_layer_call(self, method: str, group: str) -> None:
        async_to_sync(getattr(self.channel_layer, method))(group, self.channel_name)

    def sync_history(self, conversation: Conversation, after_seq: int) -> None:
        for message in messages_after(conversation, after_seq):
            self.send_frame(message_frame(message))
        conversation.refresh_from_db(fields=["last_seq"])
        self.send_frame(SyncDone(conversation_id=conversation.pk, last_seq=conversation.last_seq))

    def check_body(self, frame: MessageCreate | NoteCreate) -> str:
        body = frame.body.strip()
        if not body:
            raise ProtocolError(
                ErrorCode.INVALID_FRAME, _("The message is empty."), frame.client_id
            )
        if len(body) > settings.HELPDESK_MAX_MESSAGE_CHARS:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                _("Messages are limited to %(n)d characters.")
                % {"n": settings.HELPDESK_MAX_MESSAGE_CHARS},
                frame.client_id,
            )
        return body

    def ping(self, frame: Ping) -> None:
        self.send_frame(Pong())

    def typing_due(self, conversation_id: int) -> bool:
        """At most one ``typing.started`` per second per socket, however fast a client sends."""
        now = time.monotonic()
        sent: dict[int, float] = self.__dict__.setdefault("typing_sent_at", {})
        if now - sent.get(conversation_id, -TYPING_EVERY) < TYPING_EVERY:
            return False
        sent[conversation_id] = now
        return True


class WidgetConsumer(ProtocolConsumer):
    """A visitor's widget: ``/ws/widget/v1/?site=KEY[&token=TOKEN]``."""

    frames = WIDGET_FRAMES

    handlers = {
        ConversationSync: "conversation_sync",
        MessageCreate: "message_create",
        HandoffRequest: "handoff_request",
        FeedbackCreate: "feedback_create",
        TypingStart: "typing_start",
        Ping: "ping",
        VisitorUpdate: "visitor_update",
        VisitorIdentify: "visitor_identify",
        MessageRead: "message_read",
        ConversationClose: "conversation_close",
        CsatCreate: "csat_create",
        TranscriptRequest: "transcript_request",
    }

    # Replaced, never changed in place: most sockets never hold one, and a process holds
    # thousands of sockets, so they share these empty ones.
    watches: frozenset[asyncio.Task[None]] = frozenset()  # bot-delay notices still to come
    streaming: frozenset[int] = frozenset()  # conversations whose bot answer is being written

    def connect(self) -> None:
        query = {k: v[-1] for k, v in parse_qs(self.scope["query_string"].decode()).items()}
        site = site_for_key(query.get("site", ""))
        if site is None:
            return self.refuse(ErrorCode.FORBIDDEN, _("Unknown site key."), CLOSE_FORBIDDEN)
        if not origin_allowed(self.scope, site):
            return self.close()  # a page we do not serve: refuse the handshake itself
        try:
            visitor = self.visitor_for(site, query.get("token", ""))
        except BadToken:
            return self.refuse(ErrorCode.BAD_TOKEN, _("Your session has expired."), CLOSE_BAD_TOKEN)
        except RateLimited as limited:
            self.accept()
            self.send_json(rate_limited_error(limited).frame())
            return self.close(code=CLOSE_RATE_LIMITED)
        self.site, self.visitor = site, visitor
        self.allowed = access.VisitorConversations(visitor)
        self.accept()
        visitor_out, latest = session_of(visitor)
        self.send_frame(SessionReady(visitor=visitor_out, conversation=latest))

    def visitor_for(self, site: Site, token: str) -> Visitor:
        if token:
            return visitor_from_token(site=site, token=token)
        ratelimit.session_start_hit(site_id=site.pk, ip=client_ip(self.scope))
        headers = dict(self.scope.get("headers", []))
        return visitor_create(
            site=site,
            accept_language=headers.get(b"accept-language", b"").decode(errors="replace"),
            user_agent=headers.get(b"user-agent", b"").decode(errors="replace"),
        )

    def conversation(self, conversation_id: int) -> Conversation:
        return self.allowed.fetch(conversation_id)

    def conversation_sync(self, frame: ConversationSync) -> None:
        conversation = self.conversation(frame.conversation_id)
        self.join(visitor_group(conversation.pk))
        self.send_frame(conversation_frame(conversation))
        self.sync_history(conversation, frame.after_seq)
        self.send_queue_place(conversation)
        if not conversation.is_open:  # closed before they answered: ask again
            pending = csat.csat_pending(conversation=conversation)
            if pending is not None:
                self.send_frame(csat.csat_requested_frame(pending))

    def message_create(self, frame: MessageCreate) -> None:
        body = self.check_body(frame)
        conversation = None
        if frame.conversation_id is not None:
            conversation = self.allowed.remembered(frame.conversation_id)
        ratelimit.message_hit(
            site_id=self.site.pk, visitor_id=self.visitor.pk, ip=client_ip(self.scope)
        )
        posted = conversations.visitor_message_send(
            visitor=self.visitor,
            conversation=conversation,
            body=body,
            client_id=frame.client_id,
            team_id=frame.team_id,
            consent=frame.consent,
            page_url=frame.page_url or "",
            on_conversation=lambda c: self.join(visitor_group(c.pk)),
        )
        message = posted.message
        self.allowed.remember(message.conversation)
        self.join(visitor_group(message.conversation_id))
        self.send_frame(
            MessageAck(
                client_id=frame.client_id, conversation_id=message.conversation_id, seq=message.seq
            )
        )
        # A new conversation straight to the queue: its first place (an assigned one has none).
        if posted.created and message.conversation.status != Conversation.Status.ASSIGNED:
            self.send_queue_place(message.conversation)
            if message.conversation.is_with_bot:
                self.watch_bot(message.conversation_id, message.seq)

    def watch_bot(self, conversation_id: int, seq: int) -> None:
        """In HELPDESK_BOT_SLOW_SECONDS, tell this visitor if the bot still owes ``seq`` an
        answer: its worker may be down, and they should know they can ask for a person."""
        delay = settings.HELPDESK_BOT_SLOW_SECONDS
        if delay > 0:
            event = {"type": "bot.watch", "conversation_id": conversation_id, "seq": seq}
            async_to_sync(self._send_to_self_later)(delay, event)

    async def _send_to_self_later(self, delay: float, event: dict[str, Any]) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            try:
                await self.channel_layer.send(self.channel_name, event)
            except Exception:  # Redis down: nobody hears the notice, nothing else breaks
                log.warning("could not schedule the bot-delay notice", exc_info=True)

        task = asyncio.get_running_loop().create_task(later())
        self.watches |= {task}
        task.add_done_callback(lambda done: setattr(self, "watches", self.watches - {done}))

    def bot_watch(self, event: dict[str, Any]) -> None:
        conversation_id, seq = event["conversation_id"], event["seq"]
        if conversation_id in self.streaming:
            return  # the bot is writing its answer
        try:
            late = conversations.bot_answer_overdue(conversation_id=conversation_id, seq=seq)
        except OUTAGES:
            return
        if late:
            self.send_frame(BotDelayed(conversation_id=conversation_id, seq=seq))

    def forwarded(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "message.streaming":
            self.streaming |= {frame["conversation_id"]}
        elif frame["type"] == "message.stream_ended":
            self.streaming -= {frame["conversation_id"]}

    def disconnect(self, code: int) -> None:
        super().disconnect(code)
        for task in self.watches:
            task.get_loop().call_soon_threadsafe(task.cancel)

    def send_queue_place(self, conversation: Conversation) -> None:
        place = queue_place(conversation)
        if place is not None:
            self.send_frame(place.frame())

    def visitor_update(self, frame: VisitorUpdate) -> None:
        try:
            visitor = visitor_contact_set(visitor=self.visitor, email=frame.email, name=frame.name)
        except InvalidEmail:
            raise ProtocolError(
                ErrorCode.INVALID_FRAME, _("Please enter a valid e-mail address.")
            ) from None
        self.send_frame(VisitorUpdated(email=visitor.email, name=visitor.name))

    def visitor_identify(self, frame: VisitorIdentify) -> None:
        try:
            claim = identity.identity_check(
                site=self.site,
                external_id=frame.external_id,
                name=frame.name,
                email=frame.email,
                hash=frame.hash,
                token=frame.jwt,
            )
        except identity.IdentityRefused as refused:
            code = ErrorCode(f"identity_{refused.reason}")
            raise ProtocolError(code, refused.message, frame.type) from None
        visitor = identity.visitor_identify(visitor=self.visitor, identity=claim)
        if visitor.pk != self.visitor.pk:  # another person now: none of the old live frames
            for group in self.groups_joined:
                self.leave(group)
            self.groups_joined.clear()
            self.visitor = visitor
            self.allowed = access.VisitorConversations(visitor)
        visitor_out, latest = session_of(visitor)
        self.send_frame(
            VisitorIdentified(visitor=visitor_out, verified=claim.verified, conversation=latest)
        )

    def transcript_request(self, frame: TranscriptRequest) -> None:
        conversation = self.conversation(frame.conversation_id)
        try:
            email = notifications.transcript_request(conversation=conversation)
        except notifications.NoAddress:
            raise ProtocolError(
                ErrorCode.INVALID_FRAME, _("Leave your e-mail address first."), "transcript"
            ) from None
        self.send_frame(TranscriptQueued(conversation_id=conversation.pk, email=email))

    def handoff_request(self, frame: HandoffRequest) -> None:
        conversation = self.conversation(frame.conversation_id)
        conversations.conversation_handoff(conversation=conversation, reason="asked_for_human")

    def feedback_create(self, frame: FeedbackCreate) -> None:
        conversation = self.conversation(frame.conversation_id)
        conversations.feedback_record(
            conversation=conversation, seq=frame.seq, helpful=frame.helpful
        )
        self.send_frame(
            FeedbackRecorded(conversation_id=conversation.pk, seq=frame.seq, helpful=frame.helpful)
        )

    def message_read(self, frame: MessageRead) -> None:
        conversation = self.conversation(frame.conversation_id)
        receipts.conversation_read(conversation=conversation, reader="visitor", seq=frame.seq)

    def conversation_close(self, frame: ConversationClose) -> None:
        conversation = self.conversation(frame.conversation_id)
        conversations.conversation_close(conversation=conversation, by=None)

    def csat_create(self, frame: CsatCreate) -> None:
        conversation = self.conversation(frame.conversation_id)
        rating = csat.csat_record(
            conversation=conversation, score=frame.score, comment=frame.comment
        )
        self.send_frame(CsatRecorded(conversation_id=conversation.pk, score=rating.score or 0))

    def typing_start(self, frame: TypingStart) -> None:
        conversation = self.conversation(frame.conversation_id)
        if not self.typing_due(conversation.pk):
            return
        send_now(
            [agents_group(conversation.pk)],
            TypingStarted(
                conversation_id=conversation.pk, author="visitor", name=str(self.visitor)
            ),
        )


class ConsoleConsumer(ProtocolConsumer):
    """An agent's console: ``/ws/console/v1/``, authenticated by the Django session."""

    frames = CONSOLE_FRAMES

    handlers = {
        ConversationSync: "conversation_sync",
        MessageCreate: "message_create",
        NoteCreate: "note_create",
        TypingStart: "typing_start",
        Ping: "ping",
        MessageRead: "message_read",
    }

    def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not access.is_console_user(user):
            return self.refuse(
                ErrorCode.FORBIDDEN, _("Please log in as an agent."), CLOSE_FORBIDDEN
            )
        self.user = user
        self.agent: Agent | None = access.agent_of(user)
        self.accept()
        for site_id in access.sites_for_user(user).values_list("id", flat=True):
            self.join(site_agents_group(site_id))
        if self.agent is not None:
            self.join(agent_group(self.agent.pk))
        agent_out = AgentOut(id=self.agent.pk, name=self.agent.display_name) if self.agent else None
        self.send_frame(SessionReady(agent=agent_out))
        if self.agent is not None:
            presence.agent_connected(agent=self.agent, channel_name=self.channel_name)

    def disconnect(self, code: int) -> None:
        super().disconnect(code)
        agent: Agent | None = getattr(self, "agent", None)  # None too when refused at connect
        if agent is not None:
            presence.agent_disconnected(agent=agent, channel_name=self.channel_name)

    def ping(self, frame: Ping) -> None:
        if self.agent is not None:  # the heartbeat that keeps the agent online
            presence.agent_heartbeat(agent=self.agent, channel_name=self.channel_name)
        super().ping(frame)

    def conversation(self, conversation_id: int) -> Conversation:
        return access.conversation_for_user(user=self.user, conversation_id=conversation_id)

    def conversation_sync(self, frame: ConversationSync) -> None:
        conversation = self.conversation(frame.conversation_id)
        self.join(agents_group(conversation.pk))
        self.send_frame(conversation_frame(conversation))
        for note in notes_from(conversation, frame.after_seq):
            self.send_frame(note_frame(note))
        self.sync_history(conversation, frame.after_seq)

    def message_create(self, frame: MessageCreate) -> None:
        body = self.check_body(frame)
        if frame.conversation_id is None:
            raise ProtocolError(
                ErrorCode.INVALID_FRAME, "conversation_id: Field required", frame.client_id
            )
        if self.agent is None:
            raise conversations.Conflict(_("Only agents can reply; add an Agent profile."))
        conversation = self.conversation(frame.conversation_id)
        posted = conversations.agent_message_post(
            conversation=conversation, agent=self.agent, body=body, client_id=frame.client_id
        )
        self.send_frame(
            MessageAck(
                client_id=frame.client_id, conversation_id=conversation.pk, seq=posted.message.seq
            )
        )

    def note_create(self, frame: NoteCreate) -> None:
        body = self.check_body(frame)
        conversation = self.conversation(frame.conversation_id)
        added = note_add(
            conversation=conversation, agent=self.agent, body=body, client_id=frame.client_id
        )
        # Consoles showing the conversation hear the broadcast (after commit); a sender not
        # among them, or resending, still hears its note back.
        if not added.created or agents_group(conversation.pk) not in self.groups_joined:
            self.send_frame(note_frame(added.note))

    def message_read(self, frame: MessageRead) -> None:
        conversation = self.conversation(frame.conversation_id)
        if self.agent is not None:  # an administrator browsing transcripts is no reader
            receipts.conversation_read(conversation=conversation, reader="agent", seq=frame.seq)

    def typing_start(self, frame: TypingStart) -> None:
        conversation = self.conversation(frame.conversation_id)
        if not self.typing_due(conversation.pk):
            return
        name = self.agent.display_name if self.agent else str(self.user)
        send_now(
            [visitor_group(conversation.pk)],
            TypingStarted(conversation_id=conversation.pk, author="agent", name=name),
        )


def origin_allowed(scope: dict[str, Any], site: Site) -> bool:
    """The widget page (our own origin) or one of the site's own pages may open a socket."""
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin", b"").decode(errors="replace")
    if not origin:
        return False
    host = headers.get(b"host", b"").decode(errors="replace").lower()
    # Compare hosts only: TLS often ends at a proxy, so the socket's own scheme says little.
    return urlsplit(origin).netloc.lower() == host or site.allows_origin(origin)


def client_ip(scope: dict[str, Any]) -> str:
    """The peer's address; behind a proxy, daphne --proxy-headers puts the real one here."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def rate_limited_error(limited: RateLimited, ref: str | None = None) -> ProtocolError:
    return ProtocolError(
        ErrorCode.RATE_LIMITED,
        _("Too many requests; try again in %(n)d seconds.") % {"n": limited.retry_after},
        ref,
        retry_after=limited.retry_after,
    )
