"""With a broker configured, the bot's turn runs in a real Celery worker process."""

from __future__ import annotations

import os
import time

import pytest
from django.conf import settings

from chat.models import Message
from chat.services.conversations import conversation_start, visitor_message_receive
from helpdesk import celery_app
from tests.live import CeleryWorker, child_database_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: the embedded defaults have no broker (Celery runs eager)")
    worker = CeleryWorker({**os.environ, **child_database_env(), "CELERY_EAGER": "false"})
    celery_app.conf.task_always_eager = False
    yield worker.start()
    worker.stop()


def test_it_answers_through_a_worker_when_a_broker_is_configured(site, visitor_a, worker):
    conversation = conversation_start(site=site, visitor=visitor_a)
    visitor_message_receive(
        conversation=conversation, body="How many days for delivery?", client_id="c1"
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = Message.objects.filter(conversation=conversation, author="bot").first()
        if answer is not None:
            break
        time.sleep(0.1)
    assert answer is not None, "the worker never answered"
    assert "business days" in answer.body
