"""The helpdesk's data: sites, their people, conversations and the knowledge base."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import connections, models
from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext_lazy as _

import bots


def new_site_key() -> str:
    """A random URL-safe key that never starts with ``-``, so commands take it as an argument."""
    while (key := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return key


def new_identity_secret() -> str:
    return secrets.token_urlsafe(32)


def normalise_origin(origin: str) -> str:
    """``https://Shop.example:443/`` → ``https://shop.example``: the form browsers send."""
    parts = urlsplit(origin.strip())
    if not parts.scheme or not parts.hostname:
        return ""
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    netloc = parts.hostname.lower()
    if parts.port and parts.port != default_port:
        netloc = f"{netloc}:{parts.port}"
    return f"{parts.scheme.lower()}://{netloc}"


# Attachment types we recognise by their content (chat/services/uploads.py), with the
# extensions a file of that type may have. HTML and SVG are deliberately absent.
UPLOAD_TYPES: dict[str, tuple[str, ...]] = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg", ".jfif"),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "application/pdf": (".pdf",),
    "application/zip": (".zip",),
    "text/plain": (".txt", ".log", ".csv"),
}
DEFAULT_UPLOAD_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)


def validate_upload_types(value: str) -> None:
    unknown = sorted({t.strip() for t in value.split(",") if t.strip()} - set(UPLOAD_TYPES))
    if unknown:
        raise ValidationError(
            _("Unknown types: %(types)s.") % {"types": ", ".join(unknown)}, code="unknown_type"
        )


class Site(models.Model):
    """A business's website where the widget is embedded."""

    name = models.CharField(_("name"), max_length=120)
    key = models.CharField(_("public key"), max_length=64, unique=True, default=new_site_key)
    allowed_origins = models.TextField(
        _("allowed origins"),
        blank=True,
        help_text=_("One origin per line, e.g. https://shop.example. The widget works only there."),
    )
    greeting = models.CharField(
        _("greeting"), max_length=300, default="Hi! Ask me anything about your order."
    )
    color = models.CharField(_("colour"), max_length=7, default="#2563eb")
    language = models.CharField(
        _("language"),
        max_length=10,
        blank=True,
        choices=[("", _("Visitor's browser")), *settings.LANGUAGES],
        help_text=_("Widget language; empty follows the visitor's browser."),
    )
    bot_enabled = models.BooleanField(_("bot answers first"), default=True)
    bot_threshold = models.FloatField(
        _("bot confidence threshold"),
        default=bots.DEFAULT_THRESHOLD,
        help_text=_("The bot answers at or above this confidence (0–1) and hands off below it."),
    )

    class LlmMode(models.TextChoices):
        AUTO = "auto", _("When OPENAI_API_KEY is configured")
        ON = "on", _("On")
        OFF = "off", _("Off (retrieval only)")

    llm_mode = models.CharField(
        _("LLM answers"),
        max_length=4,
        choices=LlmMode.choices,
        default=LlmMode.AUTO,
        help_text=_("Write grounded answers with an OpenAI-compatible model."),
    )
    llm_model = models.CharField(
        _("LLM model"), max_length=100, blank=True, help_text=_("Empty uses OPENAI_MODEL.")
    )

    class Routing(models.TextChoices):
        MANUAL = "manual", _("Manual: agents take conversations from the queue")
        AUTOMATIC = "automatic", _("Automatic: assign to the available agent with most room")

    routing = models.CharField(
        _("routing"), max_length=10, choices=Routing.choices, default=Routing.MANUAL
    )
    reassign_after_seconds = models.PositiveIntegerField(
        _("reassign after (seconds)"),
        default=0,
        help_text=_(
            "An assigned conversation with no agent reply for this long goes back to the "
            "queue. 0 turns this off."
        ),
    )

    class IdentityVerification(models.TextChoices):
        OFF = "off", _("Off: identities are contact details only, never linked")
        OPTIONAL = "optional", _("Optional: signed identities link devices, unsigned do not")
        REQUIRED = "required", _("Required: an identity without a valid signature is refused")

    identity_verification = models.CharField(
        _("identity verification"),
        max_length=10,
        choices=IdentityVerification.choices,
        default=IdentityVerification.OFF,
        help_text=_(
            "Your backend signs the customer's id with the identity secret (HMAC-SHA256, or "
            "an HS256 JWT); a verified customer sees their history on any device."
        ),
    )
    identity_secret = models.CharField(
        _("identity secret"),
        max_length=100,
        default=new_identity_secret,
        help_text=_("Keep it on your server: whoever has it can sign in as any customer."),
    )

    class RetentionAction(models.TextChoices):
        DELETE = "delete", _("Delete the conversation")
        ANONYMISE = "anonymise", _("Anonymise: drop text and personal data, keep statistics")

    retention_days = models.PositiveIntegerField(
        _("keep conversations (days)"),
        default=0,
        help_text=_("Conversations without activity for longer are removed. 0 keeps them."),
    )
    retention_action = models.CharField(
        _("after that"),
        max_length=10,
        choices=RetentionAction.choices,
        default=RetentionAction.ANONYMISE,
    )
    consent_text = models.TextField(
        _("consent text"),
        blank=True,
        help_text=_(
            "Shown above the first message with a checkbox the customer must tick; stored "
            "with each conversation. Empty asks for nothing."
        ),
    )
    upload_max_bytes = models.PositiveIntegerField(
        _("largest attachment (bytes)"),
        default=10 * 1024 * 1024,
        validators=[MaxValueValidator(100 * 1024 * 1024)],
        help_text=_("Largest file a visitor or an agent may send; 0 turns attachments off."),
    )
    upload_types = models.CharField(
        _("allowed attachment types"),
        max_length=300,
        default=",".join(DEFAULT_UPLOAD_TYPES),
        validators=[validate_upload_types],
        help_text=_("Comma-separated, from: %(types)s. Checked against the file's content.")
        % {"types": ", ".join(UPLOAD_TYPES)},
    )
    email_fallback_minutes = models.PositiveIntegerField(
        _("e-mail unseen replies after (minutes)"),
        default=3,
        help_text=_(
            "An agent's reply the customer has not seen for this long is e-mailed to them, "
            "if they left an address. 0 turns this off."
        ),
    )

    class CsatScale(models.TextChoices):
        STARS = "stars", _("Stars (1–5)")
        EMOJI = "emoji", _("Faces (1–5)")

    csat_enabled = models.BooleanField(
        _("ask for a rating at close"),
        default=True,
        help_text=_("When a conversation closes, the widget asks for a 1–5 rating."),
    )
    csat_scale = models.CharField(
        _("rating scale"), max_length=5, choices=CsatScale.choices, default=CsatScale.STARS
    )
    csat_question = models.CharField(
        _("rating question"), max_length=200, default="How would you rate this conversation?"
    )
    csat_only_if_human = models.BooleanField(
        _("only after a person replied"),
        default=True,
        help_text=_("Skip the survey for conversations the bot handled alone."),
    )
    csat_cooldown_days = models.PositiveSmallIntegerField(
        _("ask the same customer at most every (days)"),
        default=0,
        help_text=_("No new survey for a customer asked within this many days. 0: no limit."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def origins(self) -> set[str]:
        return {o for o in map(normalise_origin, self.allowed_origins.splitlines()) if o}

    def allows_origin(self, origin: str) -> bool:
        return normalise_origin(origin) in self.origins

    @property
    def upload_type_set(self) -> set[str]:
        return {t.strip() for t in self.upload_types.split(",") if t.strip()}


class Team(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(_("name"), max_length=80)

    class Meta:
        ordering = ["site", "name"]
        constraints = [models.UniqueConstraint(fields=["site", "name"], name="team_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.site})"


# An agent whose console has not sent a heartbeat for this long counts as gone.
PRESENCE_TIMEOUT = timedelta(seconds=60)


class AgentQuerySet(models.QuerySet["Agent"]):
    def live(self, now: datetime) -> AgentQuerySet:
        """Online by choice, with a console socket whose heartbeat is under a minute old."""
        fresh = AgentSocket.objects.filter(
            agent=OuterRef("pk"), last_seen_at__gte=now - PRESENCE_TIMEOUT
        )
        return self.filter(status=Agent.Status.ONLINE).filter(Exists(fresh))


class Agent(models.Model):
    """A user who answers customers in the console."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent"
    )

    class Status(models.TextChoices):
        ONLINE = "online", _("Online")
        AWAY = "away", _("Away")
        OFFLINE = "offline", _("Offline")

    display_name = models.CharField(_("display name"), max_length=80)
    teams = models.ManyToManyField(Team, related_name="agents", blank=True)
    # What the agent chose in the console; routing also needs a live console socket.
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.OFFLINE
    )
    capacity = models.PositiveSmallIntegerField(
        _("capacity"), default=3, help_text=_("Most conversations assigned at once.")
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Fairness: of two equally free agents, the one who waited longest gets the next chat.
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    # Notification preferences, set in the console.
    notify_queued = models.BooleanField(_("new conversations in the queue"), default=True)
    notify_assigned = models.BooleanField(_("conversations assigned to me"), default=True)
    notify_replies = models.BooleanField(_("customer replies to my conversations"), default=True)
    notify_sound = models.BooleanField(_("play a sound"), default=True)
    is_supervisor = models.BooleanField(
        _("supervisor"), default=False, help_text=_("May open the console's supervisor view.")
    )

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def assigned_count(self) -> int:
        return self.conversations.filter(status=Conversation.Status.ASSIGNED).count()


class AgentSocket(models.Model):
    """One open console socket of an agent, refreshed by its heartbeat (``ping``)."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="sockets")
    channel_name = models.CharField(max_length=200, unique=True)
    connected_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.agent} {self.channel_name}"


class Visitor(models.Model):
    """A customer of a site, known by the token kept in their browser.

    A customer the site's backend vouched for (a verified identity) has an ``external_id``,
    the site's own id for them; every browser that proves it is given this visitor's token.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="visitors")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120, blank=True)
    email = models.EmailField(blank=True)
    language = models.CharField(max_length=10, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    # The site's own id for this customer (proactive messages name customers by it; a
    # verified identity links browsers to it). Empty: none.
    external_id = models.CharField(max_length=200, blank=True, db_index=True)
    # They opened a link we e-mailed to ``email``: the address is theirs.
    email_verified = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    # Set when the customer's data was erased: the row stays for anonymised statistics.
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["site", "external_id"],
                condition=~Q(external_id=""),
                name="visitor_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        if self.erased_at:
            return f"Erased visitor {self.pk}"
        return self.name or self.email or f"Visitor {str(self.public_id)[:8]}"


class Label(models.Model):
    """A tag agents put on conversations, managed per site in the admin."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(_("name"), max_length=40)
    color = models.CharField(_("colour"), max_length=7, default="#64748b")

    class Meta:
        ordering = ["site", "name"]
        constraints = [models.UniqueConstraint(fields=["site", "name"], name="label_unique_name")]

    def __str__(self) -> str:
        return self.name


class SeqTaken(NamedTuple):
    last_seq: int
    status: str
    assignee_id: int | None


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def waiting(self) -> ConversationQuerySet:
        """The queue in the order routing serves it: highest priority, then longest wait."""
        return self.filter(status=Conversation.Status.WAITING).order_by(
            "-priority", "queued_at", "id"
        )

    def open(self) -> ConversationQuerySet:
        return self.exclude(status=Conversation.Status.CLOSED)

    def seq_take(self, pk: int) -> SeqTaken | None:
        """Hand out conversation ``pk``'s next ``seq`` and return it with the status and
        assignee it has now, in one round trip (None: no such conversation).

        The UPDATE takes the row lock (the write lock on SQLite) that orders the sequence.
        The ORM has no UPDATE ... RETURNING, hence the SQL (both databases speak it).
        """
        quote = connections[self.db].ops.quote_name
        sql = (
            f"UPDATE {quote(Conversation._meta.db_table)} SET {quote('last_seq')} = "
            f"{quote('last_seq')} + 1 WHERE {quote('id')} = %s "
            f"RETURNING {quote('last_seq')}, {quote('status')}, {quote('assignee_id')}"
        )
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, [pk])
            row = cursor.fetchone()
        return SeqTaken(int(row[0]), str(row[1]), row[2]) if row else None

    def seq_take_many(self, counts: dict[int, int]) -> dict[int, SeqTaken]:
        """``seq_take`` for several conversations at once: ``counts[pk]`` seqs each, in one
        statement. Returns each found conversation's new ``last_seq`` and its status."""
        quote = connections[self.db].ops.quote_name
        table, last_seq = quote(Conversation._meta.db_table), quote("last_seq")
        ids = sorted(counts)  # one order for everybody's row locks
        values = ", ".join(["(%s, %s)"] * len(ids))
        sql = (
            f"WITH taken(pk, n) AS (VALUES {values}) "
            f"UPDATE {table} SET {last_seq} = {last_seq} + taken.n FROM taken "
            f"WHERE {table}.{quote('id')} = taken.pk "
            f"RETURNING {table}.{quote('id')}, {table}.{last_seq}, {table}.{quote('status')}, "
            f"{table}.{quote('assignee_id')}"
        )
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, [value for pk in ids for value in (pk, counts[pk])])
            rows = cursor.fetchall()
        return {int(row[0]): SeqTaken(int(row[1]), str(row[2]), row[3]) for row in rows}


# Why the bot handed a conversation to a person, in words for the console.
HANDOFF_REASONS = {
    "low_confidence": _("Bot unsure"),
    "asked_for_human": _("Asked for a person"),
    "unhelpful": _("Answer not helpful"),
    "no_knowledge": _("No answer in the FAQ"),
}


class Conversation(models.Model):
    class Status(models.TextChoices):
        BOT = "bot", _("With the bot")
        WAITING = "waiting", _("Waiting for a person")
        ASSIGNED = "assigned", _("With an agent")
        CLOSED = "closed", _("Closed")

    class Priority(models.IntegerChoices):
        NORMAL = 0, _("Normal")
        HIGH = 1, _("High")

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="conversations")
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, related_name="conversations")
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOT)
    assignee = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    handoff_reason = models.CharField(max_length=40, blank=True)
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    # The highest sequence number handed out to a message of this conversation.
    last_seq = models.PositiveIntegerField(default=0)
    # Read receipts: the highest seq each side has seen (``message.read``).
    visitor_read_seq = models.PositiveIntegerField(default=0)
    agent_read_seq = models.PositiveIntegerField(default=0)
    # Messages up to this seq were e-mailed to the visitor (unseen-reply fallback).
    visitor_emailed_seq = models.PositiveIntegerField(default=0)
    page_url = models.URLField(max_length=500, blank=True)
    # What the customer agreed to before their first message (the site's text then).
    consent_text = models.TextField(blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    # Text and personal data removed (erasure or retention); timestamps and outcomes remain.
    anonymised_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    # The first reply an agent stored: the end of the first response time in reports.
    first_response_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    labels = models.ManyToManyField(Label, related_name="conversations", blank=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["site", "status", "queued_at"], name="conv_queue_idx"),
            models.Index(fields=["visitor", "-created_at"], name="conv_visitor_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.visitor}"

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.CLOSED

    @property
    def is_with_bot(self) -> bool:
        return self.status == self.Status.BOT

    @property
    def handoff_label(self) -> str:
        """The hand-off reason in words (the console's lists show one per row)."""
        return str(HANDOFF_REASONS.get(self.handoff_reason, self.handoff_reason or "—"))


class Message(models.Model):
    class Author(models.TextChoices):
        VISITOR = "visitor", _("Visitor")
        BOT = "bot", _("Bot")
        AGENT = "agent", _("Agent")
        SYSTEM = "system", _("System")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveIntegerField()
    author = models.CharField(max_length=10, choices=Author.choices)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL)
    body = models.TextField()
    # The sender's own id for the message, so a resend after a lost ack stores nothing new.
    client_id = models.CharField(max_length=64, null=True, blank=True)
    # Bot answers: {"entry_id", "title", "confidence"}; system notes: {"event": ...}.
    meta = models.JSONField(default=dict, blank=True)
    helpful = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_unique_seq"),
            # Client ids are the sender's own: a visitor's and an agent's never collide.
            models.UniqueConstraint(
                fields=["conversation", "author", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_unique_author_client_id",
            ),
        ]
        # Reports count the rated bot answers of many conversations; most answers are unrated.
        indexes = [
            models.Index(
                fields=["conversation"],
                condition=Q(helpful__isnull=False),
                name="message_rated_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq} {self.author}: {self.body[:40]}"


class Note(models.Model):
    """An agent's internal note on a conversation. Agents only: never a ``Message``, so no
    path that serves customers (sync, history, bot, transcripts) can ever carry one."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="notes")
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL)
    body = models.TextField()
    # The writer's own id for the note, so a resend after a lost ack stores nothing new.
    client_id = models.CharField(max_length=64, null=True, blank=True)
    # Shown after the message with this seq (the conversation's last one when written).
    after_seq = models.PositiveIntegerField(default=0)
    # Transfers: {"event": "transfer", "to": "..."}.
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation", "after_seq", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=Q(client_id__isnull=False),
                name="note_unique_client_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id} note: {self.body[:40]}"


class ConversationView(models.Model):
    """How far an agent has read a conversation: visitor messages after ``seen_seq`` are
    unread for them."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="views")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="views")
    seen_seq = models.PositiveIntegerField(default=0)
    seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["agent", "conversation"], name="view_unique_agent")
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} saw {self.conversation_id}#{self.seen_seq}"


class CannedReply(models.Model):
    """A prepared answer an agent inserts by typing ``/shortcut`` in the reply box.

    The text may use ``{name}``, ``{email}``, ``{agent}``, ``{site}`` or the longer
    ``{{ customer.name }}``, ``{{ customer.email }}``, ``{{ agent.name }}``, ``{{ site.name }}``.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="canned_replies")
    shortcut = models.SlugField(
        _("shortcut"), max_length=40, help_text=_("Typed after a slash, e.g. refund for /refund.")
    )
    title = models.CharField(_("title"), max_length=120, blank=True)
    body = models.TextField(_("text"))

    class Meta:
        ordering = ["site", "shortcut"]
        verbose_name = _("canned reply")
        verbose_name_plural = _("canned replies")
        constraints = [
            models.UniqueConstraint(fields=["site", "shortcut"], name="canned_unique_shortcut")
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


def attachment_path(attachment: Attachment, filename: str) -> str:
    # Never the sender's file name: that lives in ``name`` and only in Content-Disposition.
    return f"attachments/{attachment.public_id.hex[:2]}/{attachment.public_id.hex}"


class Attachment(models.Model):
    """A file sent in a conversation; its message's ``meta["attachment"]`` describes it."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="attachments"
    )
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="attachment")
    file = models.FileField(upload_to=attachment_path, max_length=200)
    thumbnail = models.FileField(blank=True, max_length=200)
    name = models.CharField(max_length=150)  # sanitised
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=100)  # from the content, not the name
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def is_image(self) -> bool:
        return self.width is not None


class KnowledgeItem(models.Model):
    """What FAQ entries and articles share: a language, tags, a switch and a change time."""

    language = models.CharField(
        _("language"), max_length=10, choices=settings.LANGUAGES, default="en"
    )
    tags = models.CharField(_("tags"), max_length=200, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class FaqEntry(KnowledgeItem):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="faq_entries")
    question = models.CharField(_("question"), max_length=300)
    phrasings = models.TextField(
        _("other phrasings"), blank=True, help_text=_("One way a customer might ask, per line.")
    )
    answer = models.TextField(_("answer"))

    class Meta:
        ordering = ["site", "question"]
        verbose_name = _("FAQ entry")
        verbose_name_plural = _("FAQ entries")

    def __str__(self) -> str:
        return self.question

    @property
    def phrasing_list(self) -> list[str]:
        return [line.strip() for line in self.phrasings.splitlines() if line.strip()]


class Article(KnowledgeItem):
    """A longer knowledge-base page; the bot retrieves from its passages."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="articles")
    title = models.CharField(_("title"), max_length=300)
    body = models.TextField(_("body (Markdown)"))

    class Meta:
        ordering = ["site", "title"]

    def __str__(self) -> str:
        return self.title


class BotDecision(models.Model):
    """What the bot decided about one visitor message, with the scores it decided on."""

    class Outcome(models.TextChoices):
        ANSWER = "answer", _("Answered")
        CLARIFY = "clarify", _("Asked to clarify")
        HANDOFF = "handoff", _("Handed off")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="bot_decisions"
    )
    question_seq = models.PositiveIntegerField()
    question = models.TextField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=40, blank=True)
    confidence = models.FloatField(default=0)
    # Top candidates: [{"entry_id", "title", "score"}, ...], best first.
    scores = models.JSONField(default=list, blank=True)
    entry_id = models.PositiveBigIntegerField(null=True, blank=True)
    answer_seq = models.PositiveIntegerField(null=True, blank=True)
    used_llm = models.BooleanField(default=False)
    latency_ms = models.FloatField(default=0)
    reviewed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["outcome", "reviewed"], name="decision_review_idx")]

    def __str__(self) -> str:
        return f"{self.outcome} {self.question[:40]}"


class CsatRating(models.Model):
    """The survey of one closed conversation: asked at close, answered (once) by the visitor.

    Who it is attributed to is copied at close time, so reassigning the conversation, renaming
    the agent or deleting the team later does not move the rating.
    """

    class ResolvedBy(models.TextChoices):
        BOT = "bot", _("Bot")
        HUMAN = "human", _("Person")

    conversation = models.OneToOneField(Conversation, on_delete=models.CASCADE, related_name="csat")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="csat_ratings")
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, related_name="csat_ratings")
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="csat_ratings"
    )
    agent_name = models.CharField(max_length=80, blank=True)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="csat_ratings"
    )
    team_name = models.CharField(max_length=80, blank=True)
    resolved_by = models.CharField(max_length=5, choices=ResolvedBy.choices)
    scale = models.CharField(max_length=5, choices=Site.CsatScale.choices)
    question = models.CharField(max_length=200)
    requested_at = models.DateTimeField()
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    rated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["visitor", "requested_at"], name="csat_visitor_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=1, score__lte=5),
                name="csat_score_1_to_5",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.conversation_id} {self.score or '-'}"

    @property
    def is_answered(self) -> bool:
        return self.score is not None


class AuditLog(models.Model):
    """Who exported, erased or expired which customer's data, and when."""

    class Action(models.TextChoices):
        EXPORT = "export", _("Export")
        ERASE = "erase", _("Erase")
        RETENTION = "retention", _("Retention")

    at = models.DateTimeField(auto_now_add=True)
    # None: the system (the retention sweep). The name stays if the user is deleted.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.SET_NULL)
    visitor = models.ForeignKey(Visitor, null=True, blank=True, on_delete=models.SET_NULL)
    # The customer's public id at the time (erasure gives them a new one).
    visitor_ref = models.CharField(max_length=64, blank=True)
    via = models.CharField(max_length=10, blank=True)  # "admin", "api", "beat"
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or 'system'} {self.action}"


# --- Notifications ---------------------------------------------------------------------


class PushSubscription(models.Model):
    """A browser's Web Push subscription, of an agent or of a visitor."""

    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    visitor = models.ForeignKey(
        Visitor,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="push_subscriptions",
    )
    endpoint = models.URLField(max_length=1000, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    loaded_agent_id: int | None = None  # the owner when read from the database

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(agent__isnull=False, visitor__isnull=True)
                | Q(agent__isnull=True, visitor__isnull=False),
                name="push_subscription_one_owner",
            )
        ]

    def __str__(self) -> str:
        return f"{self.agent or self.visitor}: {urlsplit(self.endpoint).netloc}"

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> PushSubscription:
        row = super().from_db(db, field_names, values)
        row.loaded_agent_id = row.agent_id  # whose it was, should a save move it
        return row

    def info(self) -> dict[str, object]:
        """The ``subscription_info`` pywebpush takes."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


class SiteApiKey(models.Model):
    """A secret for the site's REST API. Only its SHA-256 is stored; it is shown once."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("name"), max_length=80, blank=True)
    # The first characters of the key, to find it (and to tell keys apart in the admin).
    prefix = models.CharField(max_length=16, unique=True)
    hashed = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API key")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.site})"


class Delivery(models.Model):
    """One push or e-mail we tried to send, with how it went."""

    class Channel(models.TextChoices):
        PUSH = "push", _("Web Push")
        EMAIL = "email", _("E-mail")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RETRYING = "retrying", _("Retrying")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    channel = models.CharField(max_length=10, choices=Channel.choices)
    # What it tells: queued, assigned, reply (agents); reply, digest, transcript, proactive.
    kind = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    recipient = models.CharField(max_length=300, blank=True)
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL)
    visitor = models.ForeignKey(Visitor, null=True, blank=True, on_delete=models.SET_NULL)
    subscription = models.ForeignKey(
        PushSubscription, null=True, blank=True, on_delete=models.SET_NULL
    )
    # Push: the JSON the service worker gets. E-mail: {"subject", "text"}.
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = _("deliveries")
        indexes = [models.Index(fields=["status", "created_at"], name="delivery_status_idx")]

    def __str__(self) -> str:
        return f"{self.channel} {self.kind} → {self.recipient}: {self.status}"
