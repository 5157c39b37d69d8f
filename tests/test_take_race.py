"""Taking a conversation is atomic: under any race, one conversation has one assignee."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from chat.models import Conversation, Message
from chat.services.conversations import Conflict, conversation_take
from tests.conftest import make_agent

TAKERS = 6


@pytest.mark.django_db(transaction=True)
def test_it_gives_a_conversation_to_exactly_one_of_many_concurrent_takers(site, support, visitor_a):
    agents = [make_agent(f"agent{i}", f"Agent {i}", [support]) for i in range(TAKERS)]
    conversation = Conversation.objects.create(site=site, visitor=visitor_a, status="waiting")
    start = threading.Barrier(TAKERS)

    def take(agent) -> bool:
        try:
            start.wait()
            conversation_take(
                conversation=Conversation.objects.get(pk=conversation.pk), agent=agent
            )
            return True
        except Conflict:
            return False
        finally:
            connection.close()

    with ThreadPoolExecutor(TAKERS) as pool:
        won = list(pool.map(take, agents))

    assert won.count(True) == 1
    conversation.refresh_from_db()
    assert conversation.assignee == agents[won.index(True)]
    joined = Message.objects.filter(conversation=conversation, meta__event="assigned")
    assert joined.count() == 1
