"""The WebSocket protocol, both ways: every frame a client or the server may send.

Documented for people who write their own client in ``docs/protocol.md``; bump
``PROTOCOL_VERSION`` and add a changelog entry there for every change to these models.
Frames are JSON objects whose ``type`` is ``resource.verb``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# 1: the first version.
# 2: streaming LLM answers: ``message.streaming``, ``message.delta``, ``message.stream_ended``;
#    ``message.created`` gains ``citations`` and ``stream_id``.
# 3: ``rate_limited`` errors with ``retry_after``; strictly typed client frames.
# 4: routing and the visible queue: ``queue.position``, ``visitor.update``/``visitor.updated``
#    (widget), ``conversation.returned`` and ``agent.updated`` (console); ``message.create``
#    gains ``team_id``.
# 5: console: ``note.create`` → ``note.created`` (internal notes, agents only),
#    ``conversation.transferred`` and ``inbox.changed``.
#    attachments: ``message.created`` gains ``attachment`` (files are sent over HTTP),
#    ``attachment.updated``, error code ``unsupported_type``; read receipts: ``message.read``
#    (both sockets), ``receipt.updated``, ``conversation.updated`` gains ``visitor_read_seq``
#    and ``agent_read_seq``; ratings at close: ``conversation.close``, ``csat.create``
#    (widget) and ``csat.requested``, ``csat.recorded`` (server → widget).
#    notifications: ``transcript.request``/``transcript.queued`` (widget),
#    ``notification.created`` (console); ``message.create`` gains ``page_url``.
#    faults: ``unavailable`` errors (a backing service is down; resend after ``retry_after``
#    s); ``bot.delayed`` (widget: no bot answer yet after a few seconds); close code 4503
#    (frames may have been lost: reconnect and sync).
#    identity verification: ``visitor.identify`` / ``visitor.identified`` (widget) and the
#    errors ``identity_required``, ``identity_invalid``, ``identity_expired``; consent:
#    ``message.create`` gains ``consent``, error ``consent_required``.
#    bot: ``message.created`` gains ``clarify`` (the "Did you mean …?" quick replies).
PROTOCOL_VERSION = 5

ClientId = Annotated[str, Field(min_length=1, max_length=64)]
ConversationId = Annotated[int, Field(ge=1, le=2**62)]
Seq = Annotated[int, Field(ge=0, le=2**31)]


class ErrorCode(StrEnum):
    BAD_JSON = "bad_json"  # the frame is not a JSON object
    UNKNOWN_TYPE = "unknown_type"  # no frame has this type on this socket
    INVALID_FRAME = "invalid_frame"  # fields missing or of the wrong type
    TOO_LARGE = "too_large"  # the frame or the message body is over the limit
    NOT_FOUND = "not_found"  # no such conversation (or not yours)
    CONFLICT = "conflict"  # the action lost a race or does not fit the state
    SERVER_ERROR = "server_error"  # nothing was stored; try again
    FORBIDDEN = "forbidden"  # unknown site key, or not allowed (sent before closing)
    BAD_TOKEN = "bad_token"  # the visitor token is forged, expired or for another site
    RATE_LIMITED = "rate_limited"  # too many frames or sessions; retry after ``retry_after`` s
    IDENTITY_REQUIRED = "identity_required"  # the site accepts only signed identities
    IDENTITY_INVALID = "identity_invalid"  # the signature does not match (forged or malformed)
    IDENTITY_EXPIRED = "identity_expired"  # the identity JWT is past its ``exp``
    CONSENT_REQUIRED = "consent_required"  # the site asks for consent before the first message
    UNSUPPORTED_TYPE = "unsupported_type"  # an upload of a refused or disguised type
    UNAVAILABLE = "unavailable"  # the database or Redis is down: nothing stored; resend later


# Close codes sent after an error frame at connect time.
CLOSE_BAD_TOKEN = 4401  # drop the stored token and connect again without one
CLOSE_FORBIDDEN = 4403  # do not retry
CLOSE_RATE_LIMITED = 4429  # too many new sessions: connect again after ``retry_after`` s
# Sent to open sockets: frames may have been lost (Redis restarted): reconnect and sync.
CLOSE_RESYNC = 4503


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientFrame(Frame):
    # Strict types: without them pydantic reads the JSON "15" and true as the integers 15 and
    # 1, and "yes" as a boolean. JSON numbers still validate (json.loads gives Python ints).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- Client → server ---------------------------------------------------------------------


class ConversationSync(ClientFrame):
    """Ask for every message after ``after_seq``, then live ones."""

    type: Literal["conversation.sync"]
    conversation_id: ConversationId
    after_seq: Seq = 0


class MessageCreate(ClientFrame):
    """Send a message. The widget may omit ``conversation_id`` to start a conversation."""

    type: Literal["message.create"]
    client_id: ClientId
    body: str
    conversation_id: ConversationId | None = None
    # Widget, first message only: the team the visitor chose before chatting (pre-chat).
    team_id: Annotated[int, Field(ge=1, le=2**62)] | None = None
    # Widget, first message only: the page the visitor chats from (links in e-mails lead back).
    page_url: Annotated[str, Field(max_length=500)] | None = None
    # Widget, first message only: the visitor ticked the site's consent text.
    consent: bool = False


class HandoffRequest(ClientFrame):
    """The visitor asks for a person ("Talk to a person")."""

    type: Literal["handoff.request"]
    conversation_id: ConversationId


class FeedbackCreate(ClientFrame):
    """The visitor answers "Was this helpful?" for the bot message ``seq``."""

    type: Literal["feedback.create"]
    conversation_id: ConversationId
    seq: Annotated[int, Field(ge=1, le=2**31)]
    helpful: bool


class ConversationClose(ClientFrame):
    """The visitor ends the conversation ("End chat")."""

    type: Literal["conversation.close"]
    conversation_id: ConversationId


class CsatCreate(ClientFrame):
    """The visitor answers the survey ``csat.requested`` asked for this conversation."""

    type: Literal["csat.create"]
    conversation_id: ConversationId
    score: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, Field(max_length=1000)] = ""


class TypingStart(ClientFrame):
    type: Literal["typing.start"]
    conversation_id: ConversationId


class MessageRead(ClientFrame):
    """Every message up to ``seq`` is on the reader's screen (a read receipt)."""

    type: Literal["message.read"]
    conversation_id: ConversationId
    seq: Annotated[int, Field(ge=1, le=2**31)]


class Ping(ClientFrame):
    type: Literal["ping"]


class VisitorUpdate(ClientFrame):
    """The visitor leaves an e-mail address (and a name) to be answered offline."""

    type: Literal["visitor.update"]
    email: Annotated[str, Field(min_length=3, max_length=254)]
    name: Annotated[str, Field(max_length=120)] = ""


class VisitorIdentify(ClientFrame):
    """The embedding page says who the customer is, signed by the site's backend.

    ``hash`` is HMAC-SHA256 of ``external_id`` with the site's identity secret (hex); ``jwt``
    is an HS256 token with that secret whose ``sub`` is the external id and ``exp`` is set.
    """

    type: Literal["visitor.identify"]
    external_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    name: Annotated[str, Field(max_length=120)] = ""
    email: Annotated[str, Field(max_length=254)] = ""
    hash: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    jwt: Annotated[str, Field(min_length=1, max_length=4096)] | None = None


class TranscriptRequest(ClientFrame):
    """E-mail me this conversation (to the address the visitor left)."""

    type: Literal["transcript.request"]
    conversation_id: ConversationId


WidgetFrame = Annotated[
    ConversationSync
    | MessageCreate
    | HandoffRequest
    | FeedbackCreate
    | TypingStart
    | Ping
    | VisitorUpdate
    | MessageRead
    | ConversationClose
    | CsatCreate
    | VisitorIdentify
    | TranscriptRequest,
    Field(discriminator="type"),
]


class NoteCreate(ClientFrame):
    """Console only: an internal note on the conversation, for agents' eyes only."""

    type: Literal["note.create"]
    conversation_id: ConversationId
    client_id: ClientId
    body: str


ConsoleFrame = Annotated[
    ConversationSync | MessageCreate | NoteCreate | TypingStart | Ping | MessageRead,
    Field(discriminator="type"),
]

WIDGET_FRAMES: TypeAdapter[Any] = TypeAdapter(WidgetFrame)
CONSOLE_FRAMES: TypeAdapter[Any] = TypeAdapter(ConsoleFrame)


# --- Server → client ---------------------------------------------------------------------


class Source(Frame):
    entry_id: int
    title: str


class Citation(Frame):
    """An entry an LLM answer was written from, with its text as it was when cited."""

    entry_id: int
    title: str
    answer: str


class AttachmentOut(Frame):
    """A file sent with a message. ``url`` and ``thumbnail_url`` answer only the
    conversation's visitor (``Authorization: Bearer TOKEN``) and its agents (session)."""

    id: str
    name: str
    size: int
    content_type: str
    url: str
    # Images: None while the thumbnail is being made (``attachment.updated`` follows).
    thumbnail_url: str | None = None
    width: int | None = None
    height: int | None = None


class ClarifyOption(Frame):
    """One "Did you mean …?" button: sending ``title`` as the visitor's message gets its answer."""

    entry_id: int
    title: str


class MessageOut(Frame):
    type: Literal["message.created"] = "message.created"
    conversation_id: int
    seq: int
    author: Literal["visitor", "bot", "agent", "system"]
    author_name: str
    body: str
    client_id: str | None = None
    created_at: str
    # Bot answers: where the answer came from, how sure the bot was, and whether to ask
    # "Was this helpful?".
    source: Source | None = None
    confidence: float | None = None
    ask_feedback: bool = False
    # LLM answers: the entries cited. Bot answers that followed a ``message.streaming``: the
    # stream whose bubble this message replaces.
    citations: list[Citation] = Field(default_factory=list)
    stream_id: str | None = None
    # A file message; ``body`` then holds the file's name.
    attachment: AttachmentOut | None = None
    # Bot questions "Did you mean …?": the entries to offer as quick-reply buttons.
    clarify: list[ClarifyOption] = Field(default_factory=list)


class AttachmentUpdated(Frame):
    """An image's thumbnail is ready: show it in the message ``seq``."""

    type: Literal["attachment.updated"] = "attachment.updated"
    conversation_id: int
    seq: int
    attachment: AttachmentOut


class ReceiptUpdated(Frame):
    """``reader`` has seen every message of the conversation up to ``seq``."""

    type: Literal["receipt.updated"] = "receipt.updated"
    conversation_id: int
    reader: Literal["visitor", "agent"]
    seq: int


class MessageStreaming(Frame):
    """The bot started writing an answer: show it typing. Not stored, no ``seq``."""

    type: Literal["message.streaming"] = "message.streaming"
    conversation_id: int
    stream_id: str


class MessageDelta(Frame):
    """The next piece of the answer ``stream_id``: append ``text`` to what came before."""

    type: Literal["message.delta"] = "message.delta"
    conversation_id: int
    stream_id: str
    text: str


class MessageStreamEnded(Frame):
    """The stream is over: drop its bubble, unless a ``message.created`` replaced it already.

    Answers carry the ``stream_id`` they replace; a hand-off (or a superseded answer) does not.
    """

    type: Literal["message.stream_ended"] = "message.stream_ended"
    conversation_id: int
    stream_id: str


class ConversationOut(Frame):
    type: Literal["conversation.updated"] = "conversation.updated"
    conversation_id: int
    status: Literal["bot", "waiting", "assigned", "closed"]
    assignee_name: str | None = None
    handoff_reason: str = ""
    last_seq: int = 0
    visitor_read_seq: int = 0
    agent_read_seq: int = 0


class VisitorOut(Frame):
    id: str
    token: str


class AgentOut(Frame):
    id: int
    name: str


class SessionReady(Frame):
    type: Literal["session.ready"] = "session.ready"
    protocol_version: int = PROTOCOL_VERSION
    visitor: VisitorOut | None = None
    agent: AgentOut | None = None
    conversation: ConversationOut | None = None


class MessageAck(Frame):
    type: Literal["message.ack"] = "message.ack"
    client_id: str
    conversation_id: int
    seq: int


class SyncDone(Frame):
    type: Literal["sync.done"] = "sync.done"
    conversation_id: int
    last_seq: int


class FeedbackRecorded(Frame):
    type: Literal["feedback.recorded"] = "feedback.recorded"
    conversation_id: int
    seq: int
    helpful: bool


class CsatRequested(Frame):
    """The conversation closed: ask the visitor for a 1–5 rating and an optional comment."""

    type: Literal["csat.requested"] = "csat.requested"
    conversation_id: int
    scale: Literal["stars", "emoji"]
    question: str


class CsatRecorded(Frame):
    type: Literal["csat.recorded"] = "csat.recorded"
    conversation_id: int
    score: int


class TypingStarted(Frame):
    type: Literal["typing.started"] = "typing.started"
    conversation_id: int
    author: Literal["visitor", "agent"]
    name: str


class QueueChanged(Frame):
    type: Literal["queue.changed"] = "queue.changed"
    site_id: int


class QueuePosition(Frame):
    """Where a waiting conversation stands: sent to its visitor whenever the queue moves."""

    type: Literal["queue.position"] = "queue.position"
    conversation_id: int
    position: int  # 1: next in line
    # None when nobody is online to answer: offer to leave an e-mail address instead.
    estimated_wait_seconds: int | None
    agents_online: bool


class BotDelayed(Frame):
    """Widget: the bot has not answered the visitor's message ``seq`` within a few seconds
    (its worker may be down). Say so, and offer a person. Not stored, never replayed."""

    type: Literal["bot.delayed"] = "bot.delayed"
    conversation_id: int
    seq: int


class VisitorUpdated(Frame):
    type: Literal["visitor.updated"] = "visitor.updated"
    email: str
    name: str


class VisitorIdentified(Frame):
    """The answer to ``visitor.identify``: the visitor this socket now speaks for.

    A verified identity may be a visitor first seen on another device: store its ``token``,
    and show its latest ``conversation`` (the history of every device).
    """

    type: Literal["visitor.identified"] = "visitor.identified"
    visitor: VisitorOut
    verified: bool
    conversation: ConversationOut | None = None


class ConversationReturned(Frame):
    """Console, to the agent it was taken from: a conversation went back to the queue."""

    type: Literal["conversation.returned"] = "conversation.returned"
    conversation_id: int
    reason: Literal["no_reply", "agent_offline"]
    message: str


class AgentUpdated(Frame):
    """Console, to the agent: their status or load changed."""

    type: Literal["agent.updated"] = "agent.updated"
    agent_id: int
    status: Literal["online", "away", "offline"]
    capacity: int
    assigned: int


class NoteOut(Frame):
    """Console only: an internal note, shown after the message ``after_seq``."""

    type: Literal["note.created"] = "note.created"
    conversation_id: int
    note_id: int
    after_seq: int
    author_name: str
    body: str
    client_id: str | None = None
    created_at: str


class ConversationTransferred(Frame):
    """Console, to the agent (or the team's agents) a conversation was transferred to."""

    type: Literal["conversation.transferred"] = "conversation.transferred"
    conversation_id: int
    from_name: str
    to_name: str
    note: str
    message: str


class InboxChanged(Frame):
    """Console, to one agent: their "mine" list changed (a new customer message, a
    conversation transferred in or out, read, closed or reopened)."""

    type: Literal["inbox.changed"] = "inbox.changed"
    conversation_id: int


class TranscriptQueued(Frame):
    """Widget: the transcript is on its way to ``email``."""

    type: Literal["transcript.queued"] = "transcript.queued"
    conversation_id: int
    email: str


class NotificationCreated(Frame):
    """Console, to one agent: something they asked to hear about (a new conversation in
    the queue, one assigned to them, a customer's reply). The console plays a sound, badges
    its title and shows a browser notification when its tab is hidden."""

    type: Literal["notification.created"] = "notification.created"
    kind: Literal["queued", "assigned", "reply"]
    conversation_id: int
    title: str
    body: str
    url: str
    # Notifications with one tag replace each other (the page's and the service worker's).
    tag: str
    sound: bool


class Pong(Frame):
    type: Literal["pong"] = "pong"


class ErrorOut(Frame):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    # The ``client_id`` (or frame type) the error answers, when known.
    ref: str | None = None
    # ``rate_limited`` and ``unavailable``: seconds to wait before trying again.
    retry_after: int | None = None


# --- Parsing -----------------------------------------------------------------------------


class ProtocolError(Exception):
    def __init__(
        self,
        code: ErrorCode,
        message: str,
        ref: str | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.retry_after = retry_after

    def frame(self) -> dict[str, Any]:
        error = ErrorOut(
            code=self.code, message=self.message, ref=self.ref, retry_after=self.retry_after
        )
        return error.model_dump(mode="json")


def parse_frame(raw: str | bytes | None, adapter: TypeAdapter[Any], *, max_bytes: int) -> Any:
    """Turn one raw frame into its model, or raise ``ProtocolError`` saying why not."""
    if raw is None:
        raise ProtocolError(ErrorCode.BAD_JSON, "Frames must be JSON text.")
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"Frames are limited to {max_bytes} bytes.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError(ErrorCode.BAD_JSON, "The frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, "A frame must be a JSON object.")
    ref = data.get("client_id") if isinstance(data.get("client_id"), str) else None
    if _has_nul(data):  # PostgreSQL cannot store it in text; no client needs it
        raise ProtocolError(ErrorCode.INVALID_FRAME, "Text may not contain NUL characters.", ref)
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise _error_from_validation(exc, data, ref) from None


def _has_nul(data: Any) -> bool:
    stack = [data]  # a loop, not recursion: frames may nest as deep as the JSON parser allows
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _error_from_validation(
    exc: ValidationError, data: dict[str, Any], ref: str | None
) -> ProtocolError:
    first = exc.errors()[0]
    if first["type"] == "union_tag_not_found":
        return ProtocolError(ErrorCode.INVALID_FRAME, "type: Field required", ref)
    if first["type"] == "union_tag_invalid":
        kind = data.get("type")
        return ProtocolError(ErrorCode.UNKNOWN_TYPE, f"Unknown frame type {kind!r}.", ref)
    where = ".".join(str(part) for part in first["loc"][1:]) or "frame"
    return ProtocolError(ErrorCode.INVALID_FRAME, f"{where}: {first['msg']}", ref)


def dump(frame: Frame) -> dict[str, Any]:
    return frame.model_dump(mode="json")
