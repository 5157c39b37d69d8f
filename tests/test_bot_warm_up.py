"""Warming the bot up when a process starts: the model loads and the hot sites' indexes are
built before their first visitor, so nobody waits for them."""

from __future__ import annotations

import time

import pytest
from celery.signals import worker_process_init

import bots
import chat.tasks  # noqa: F401  (connects the worker signal)
from chat.knowledge.entries import site_knowledge_key
from chat.models import Conversation, Site
from chat.services.bot import bot_warm_up, bot_warm_up_in_background

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def cold_indexes():
    bots.clear_index_cache()
    yield
    bots.clear_index_cache()


def test_it_builds_the_indexes_of_the_sites_visitors_use_most_recently(site, other_site, visitor_a):
    Conversation.objects.create(site=site, visitor=visitor_a)
    quiet = Site.objects.create(name="Quiet", bot_enabled=False)

    built = bot_warm_up(sites=1)

    assert built == 1
    assert bots.cached_index(site_knowledge_key(site)) is not None
    assert bots.cached_index(site_knowledge_key(other_site)) is None
    assert bots.cached_index(site_knowledge_key(quiet)) is None


def test_it_warms_up_in_a_background_thread_when_allowed(settings, site):
    settings.HELPDESK_BOT_WARM_UP = True

    thread = bot_warm_up_in_background()

    assert thread is not None and thread.daemon
    thread.join(timeout=60)
    assert not thread.is_alive()
    index = bots.cached_index(site_knowledge_key(site))
    assert index is not None and len(index) == 4


def test_it_does_not_warm_up_when_turned_off(settings, site):
    settings.HELPDESK_BOT_WARM_UP = False

    assert bot_warm_up_in_background() is None
    assert bots.cached_index(site_knowledge_key(site)) is None


def test_every_celery_worker_process_warms_up_as_it_starts(settings, site):
    settings.HELPDESK_BOT_WARM_UP = True

    worker_process_init.send(sender=None)

    deadline = time.monotonic() + 60
    while bots.cached_index(site_knowledge_key(site)) is None:
        assert time.monotonic() < deadline, "the worker process never warmed the index up"
        time.sleep(0.05)
