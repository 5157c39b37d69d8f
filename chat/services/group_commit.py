"""Group commit: visitors' messages from many sockets stored in one transaction.

A commit waits for the database to flush its log to disk (~5 ms here), and that wait, not
the work, bounds how many messages one connection stores per second. So the frame threads
of a process take turns: the one whose turn it is stores every message that arrived while
the previous batch was being written, in one transaction (one UPDATE ... RETURNING for the
sequence numbers of all their conversations, one multi-row INSERT, one commit), and only
then does each sender get its answer. Every message is still committed before it is acked
and before anyone hears of it; what is shared is the wait.

On PostgreSQL the transaction is one statement in autocommit: the UPDATE and the INSERT
are parts of one query, one round trip where BEGIN, UPDATE, INSERT and COMMIT took four
(with Django's work around each: a lone message cost 1.6 ms of CPU here, now 0.6); a
message for a closed conversation is left out of it and refused.

A batch that cannot go through whole (a resend's client id, a closed conversation on SQLite,
a deadlock) is rolled back and its messages are stored one by one, each with its own answer.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from django.db import DatabaseError, connection, transaction

from chat.models import Conversation, Message, SeqTaken
from chat.realtime import conversation_groups, send_many_after_commit
from chat.services.frames import message_frame
from chat.services.messages import ConversationClosed, Posted, message_post

# At most this many messages per transaction (the INSERT's parameters stay well in bounds).
MAX_BATCH = 200


@dataclass(eq=False)
class Pending:
    conversation: Conversation
    body: str
    client_id: str
    ready: threading.Event = field(default_factory=threading.Event)
    turn: bool = False  # this thread stores the next batch
    posted: Posted | None = None
    error: BaseException | None = None


class _Incomplete(Exception):
    """The batch cannot be stored whole; store its messages one by one."""


class GroupCommit:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Pending] = []
        self._writing = False

    def visitor_post(self, *, conversation: Conversation, body: str, client_id: str) -> Posted:
        """``message_post`` of a visitor's message with ``require_open``, batched."""
        pending = Pending(conversation=conversation, body=body, client_id=client_id)
        with self._lock:
            self._queue.append(pending)
            if not self._writing:
                self._writing = pending.turn = True
        if not pending.turn:
            pending.ready.wait()  # for the answer, or for the turn to write
        if pending.turn:
            self._write_next()
        if pending.error is not None:
            raise pending.error
        assert pending.posted is not None
        return pending.posted

    def _write_next(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        try:
            batch_store(batch)
        finally:
            with self._lock:
                if self._queue:  # the first waiting thread writes the next batch
                    following = self._queue[0]
                    following.turn = True
                    following.ready.set()
                else:
                    self._writing = False
            for pending in batch:
                if not pending.turn:
                    pending.ready.set()


def batch_store(batch: list[Pending]) -> None:
    try:
        _store_whole(batch)
    except (DatabaseError, _Incomplete):
        for pending in batch:
            try:
                pending.posted = message_post(
                    conversation=pending.conversation,
                    author=Message.Author.VISITOR,
                    body=pending.body,
                    client_id=pending.client_id,
                    require_open=True,
                )
            except (ConversationClosed, DatabaseError, Conversation.DoesNotExist) as error:
                pending.error = error
    except BaseException as error:
        for pending in batch:
            pending.error = error


def _store_whole(batch: list[Pending]) -> None:
    if connection.vendor == "postgresql":
        _store_in_one_statement(batch)
        return
    counts = Counter(pending.conversation.pk for pending in batch)
    with transaction.atomic():
        taken = Conversation.objects.seq_take_many(counts)
        if len(taken) != len(counts) or any(
            row.status == Conversation.Status.CLOSED for row in taken.values()
        ):
            raise _Incomplete
        messages = _numbered(batch, taken, counts)
        Message.objects.bulk_create(messages)
        _announce(messages)
    for pending, message in zip(batch, messages, strict=True):
        pending.posted = Posted(message, created=True)


def _store_in_one_statement(batch: list[Pending]) -> None:
    counts = Counter(pending.conversation.pk for pending in batch)
    with connection.cursor() as cursor:
        cursor.execute(
            _one_statement_sql(len(counts), len(batch)), _one_statement_params(batch, counts)
        )
        rows = cursor.fetchall()
    # ("conversation", pk, last_seq, status, assignee_id, None) for each one found, and
    # ("message", pk, seq, None, conversation_id, created_at) for each message stored.
    taken = {row[1]: SeqTaken(row[2], row[3], row[4]) for row in rows if row[0] == "conversation"}
    open_ones = {pk: row for pk, row in taken.items() if row.status != Conversation.Status.CLOSED}
    storing = [pending for pending in batch if pending.conversation.pk in open_ones]
    messages = _numbered(storing, open_ones, counts)
    by_seq = {(message.conversation_id, message.seq): message for message in messages}
    for kind, pk, seq, _status, conversation_id, created_at in rows:
        if kind == "message":
            message = by_seq[(conversation_id, seq)]
            message.pk, message.created_at = pk, created_at
    _announce(messages)
    for pending, message in zip(storing, messages, strict=True):
        pending.posted = Posted(message, created=True)
    for pending in batch:
        if pending.posted is None:
            found = pending.conversation.pk in taken
            pending.error = ConversationClosed() if found else Conversation.DoesNotExist()


def _one_statement_sql(conversations: int, messages: int) -> str:
    """Take each open conversation's seqs (a closed one's row is locked and read, not
    changed) and insert the messages of the open ones, numbered in arrival order."""
    conversation, message = Conversation._meta.db_table, Message._meta.db_table
    closed, visitor = Conversation.Status.CLOSED.value, Message.Author.VISITOR.value
    return f"""
        WITH wanted (pk, n) AS (VALUES {", ".join(["(%s::bigint, %s::int)"] * conversations)}),
        taken AS (
            UPDATE {conversation} AS c
            SET last_seq = c.last_seq + CASE WHEN c.status = '{closed}' THEN 0 ELSE wanted.n END
            FROM wanted WHERE c.id = wanted.pk
            RETURNING c.id, c.last_seq, c.status, c.assignee_id, wanted.n
        ),
        arrived (position, pk, body, client_id) AS (
            VALUES {", ".join(["(%s::int, %s::bigint, %s::text, %s::text)"] * messages)}
        ),
        stored AS (
            INSERT INTO {message} (conversation_id, seq, author, body, client_id, meta, created_at)
            SELECT arrived.pk,
                taken.last_seq - taken.n
                    + row_number() OVER (PARTITION BY arrived.pk ORDER BY arrived.position),
                '{visitor}', arrived.body, arrived.client_id, '{{}}'::jsonb, now()
            FROM arrived JOIN taken ON taken.id = arrived.pk
            WHERE taken.status <> '{closed}'
            RETURNING id, seq, conversation_id, created_at
        )
        SELECT 'conversation', id, last_seq, status, assignee_id, NULL::timestamptz FROM taken
        UNION ALL
        SELECT 'message', id, seq, NULL, conversation_id, created_at FROM stored
    """


def _one_statement_params(batch: list[Pending], counts: Counter[int]) -> list[int | str]:
    params: list[int | str] = [value for pk in sorted(counts) for value in (pk, counts[pk])]
    for position, pending in enumerate(batch):
        params += [position, pending.conversation.pk, pending.body, pending.client_id]
    return params


def _numbered(
    batch: list[Pending], taken: dict[int, SeqTaken], counts: Counter[int]
) -> list[Message]:
    """The batch's messages, each conversation's new seqs in arrival order; each pending's
    conversation takes the status and assignee it has now."""
    next_seq = {pk: row.last_seq - counts[pk] + 1 for pk, row in taken.items()}
    messages = []
    for pending in batch:
        conversation = pending.conversation
        conversation.last_seq, conversation.status, conversation.assignee_id = taken[
            conversation.pk
        ]
        messages.append(
            Message(
                conversation=conversation,
                seq=next_seq[conversation.pk],
                author=Message.Author.VISITOR,
                body=pending.body,
                client_id=pending.client_id,
                meta={},
            )
        )
        next_seq[conversation.pk] += 1
    return messages


def _announce(messages: list[Message]) -> None:
    send_many_after_commit(
        [(conversation_groups(m.conversation_id), message_frame(m)) for m in messages]
    )


group_commit = GroupCommit()
