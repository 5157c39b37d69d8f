"""Group commit: visitors' messages from many sockets stored in one transaction.

A commit waits for the database to flush its log to disk (~5 ms here), and that wait, not
the work, bounds how many messages one connection stores per second. So the frame threads
of a process take turns: the one whose turn it is stores every message that arrived while
the previous batch was being written, in one transaction (one UPDATE ... RETURNING for the
sequence numbers of all their conversations, one multi-row INSERT, one commit), and only
then does each sender get its answer. Every message is still committed before it is acked
and before anyone hears of it; what is shared is the wait.

A batch that cannot go through whole (a resend's client id, a closed conversation, a
deadlock) is rolled back and its messages are stored one by one, each with its own answer.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from django.db import DatabaseError, transaction

from chat.models import Conversation, Message
from chat.protocol import Frame
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
    with transaction.atomic():
        counts = Counter(pending.conversation.pk for pending in batch)
        taken = Conversation.objects.seq_take_many(counts)
        if len(taken) != len(counts) or any(
            row.status == Conversation.Status.CLOSED for row in taken.values()
        ):
            raise _Incomplete
        # Each conversation's messages get its new seqs in arrival order.
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
        Message.objects.bulk_create(messages)
        events: list[tuple[list[str], Frame]] = [
            (
                conversation_groups(message.conversation_id),
                message_frame(message),
            )
            for message in messages
        ]
        send_many_after_commit(events)
    for pending, message in zip(batch, messages, strict=True):
        pending.posted = Posted(message, created=True)


group_commit = GroupCommit()
