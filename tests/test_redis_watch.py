"""The per-process Redis watch must end with its event loop, wherever it is cancelled."""

from __future__ import annotations

import asyncio

import pytest
from django.conf import settings

from chat import realtime

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs REDIS_URL: the watch only runs against a real Redis"
)


async def test_it_stops_when_cancelled_at_any_point_of_a_check():
    # Cancelling at staggered moments lands inside redis-py's connect and read, which may
    # swallow the cancellation or turn it into an error; the watch must still end.
    for step in range(25):
        watch = asyncio.get_running_loop().create_task(realtime._redis_watch(settings.REDIS_URL))
        await asyncio.sleep(step * 0.0002)
        watch.cancel()
        done, _ = await asyncio.wait({watch}, timeout=realtime.REDIS_CHECK_SECONDS * 3)
        assert watch in done, f"the watch outlived its cancellation (step {step})"
