"""Rate limits: a counter per (limit, key) in the Django cache, over a window from its first hit.

The cache is the process's local memory by default and Redis with ``REDIS_URL``, so limits
hold across processes only with Redis. A window starts at the first hit and lasts
``seconds``; no burst at the edge of a clock-aligned window. A rate of 0 turns a limit off.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache


@dataclass(frozen=True)
class Rate:
    count: int  # hits allowed per window; 0 means no limit
    seconds: int


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Rate limited; retry after {retry_after} s")
        self.retry_after = retry_after


def _keys(name: str, key: str) -> tuple[str, str]:
    # Hashed: keys hold user names and IPv6 addresses; the cache wants short, plain keys.
    digest = hashlib.sha256(f"{name}\0{key}".encode()).hexdigest()[:40]
    return f"ratelimit:{digest}:start", f"ratelimit:{digest}:count"


def _retry_after(start_key: str, rate: Rate) -> int:
    now = time.time()
    start = cache.get(start_key, now)
    return max(1, math.ceil(start + rate.seconds - now))


def rate_count(*, name: str, key: str, rate: Rate) -> int:
    """Count one hit and return the hits in the current window, this one included."""
    start_key, count_key = _keys(name, key)
    cache.add(start_key, time.time(), timeout=rate.seconds)
    cache.add(count_key, 0, timeout=rate.seconds)
    try:
        return cache.incr(count_key)
    except ValueError:  # the window ended between add() and incr()
        cache.set(start_key, time.time(), timeout=rate.seconds)
        cache.set(count_key, 1, timeout=rate.seconds)
        return 1


def rate_hit(*, name: str, key: str, rate: Rate) -> None:
    """Count one hit; raise ``RateLimited`` when it is over the rate (refuse the action)."""
    if rate.count <= 0:
        return
    if rate_count(name=name, key=key, rate=rate) > rate.count:
        raise RateLimited(_retry_after(_keys(name, key)[0], rate))


def rate_check(*, name: str, key: str, rate: Rate) -> None:
    """Raise ``RateLimited`` when the window is already full, without counting a hit."""
    if rate.count <= 0:
        return
    start_key, count_key = _keys(name, key)
    if cache.get(count_key, 0) >= rate.count:
        raise RateLimited(_retry_after(start_key, rate))


def rate_reset(*, name: str, key: str) -> None:
    cache.delete_many(list(_keys(name, key)))


# --- The helpdesk's limits (read from settings on each call, so tests can override them) ---


def session_start_hit(*, site_id: int, ip: str) -> None:
    """A new visitor (a widget socket without a token) from ``ip``."""
    rate = Rate(settings.HELPDESK_RATE_SESSIONS_PER_MINUTE_PER_IP, 60)
    rate_hit(name="session", key=f"{site_id}:{ip}", rate=rate)


# One call for all of a hit's limits, atomic: each counter counts, the first hit of a window
# sets its expiry, and over any limit every counter takes the hit back (refused counts
# nothing). Returns 0, or the seconds until the fullest window over its limit ends.
HITS_SCRIPT = """
local wait = 0
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  local seconds = tonumber(ARGV[2 * i])
  if n == 1 then redis.call('EXPIRE', key, seconds) end
  if n > tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then
      redis.call('EXPIRE', key, seconds)
      ttl = seconds
    end
    wait = math.max(wait, ttl, 1)
  end
end
if wait > 0 then
  for _, key in ipairs(KEYS) do redis.call('DECR', key) end
end
return wait
"""


def rate_hits_redis(script: Any, limits: Sequence[tuple[str, str, Rate]]) -> None:
    """``rate_hit`` for several limits in one call of ``HITS_SCRIPT``: a counter per
    (limit, key) whose expiry, set by its first hit, ends the window."""
    if not limits:
        return
    keys = [cache.make_and_validate_key(f"{_keys(n, k)[1]}:n") for n, k, _rate in limits]
    args = [value for _n, _k, rate in limits for value in (rate.count, rate.seconds)]
    wait = int(script(keys=keys, args=args))
    if wait:
        raise RateLimited(wait)


# The cache builds a new client object for every call; one per cache object (one per
# thread), with the script registered on it, does for every hit.
_scripts: WeakKeyDictionary[RedisCache, Any] = WeakKeyDictionary()


def _hits_script() -> Any | None:
    """``HITS_SCRIPT`` on the Redis client behind the cache, or None for any other cache."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    script = _scripts.get(backend)
    if script is None:
        client = backend._cache.get_client(write=True)  # type: ignore[attr-defined]
        script = _scripts[backend] = client.register_script(HITS_SCRIPT)
    return script


def message_hit(*, site_id: int, visitor_id: int, ip: str) -> None:
    """A visitor's message, counted for the visitor and for their address."""
    per_visitor = Rate(settings.HELPDESK_RATE_MESSAGES_PER_MINUTE, 60)
    per_ip = Rate(settings.HELPDESK_RATE_MESSAGES_PER_MINUTE_PER_IP, 60)
    _visitor_and_ip_hit("message", per_visitor, per_ip, site_id, visitor_id, ip)


def upload_hit(*, site_id: int, visitor_id: int, ip: str) -> None:
    """A visitor's upload (refused ones count too), for the visitor and for their address."""
    per_visitor = Rate(settings.HELPDESK_RATE_UPLOADS_PER_MINUTE, 60)
    per_ip = Rate(settings.HELPDESK_RATE_UPLOADS_PER_MINUTE_PER_IP, 60)
    _visitor_and_ip_hit("upload", per_visitor, per_ip, site_id, visitor_id, ip)


def _visitor_and_ip_hit(
    kind: str, per_visitor: Rate, per_ip: Rate, site_id: int, visitor_id: int, ip: str
) -> None:
    script = _hits_script()
    if script is not None:
        limits = [(f"{kind}-visitor", str(visitor_id), per_visitor)]
        limits.append((f"{kind}-ip", f"{site_id}:{ip}", per_ip))
        return rate_hits_redis(script, [limit for limit in limits if limit[2].count > 0])
    # Both checked before either counts: a refused hit must not use up the other window.
    rate_check(name=f"{kind}-visitor", key=str(visitor_id), rate=per_visitor)
    rate_check(name=f"{kind}-ip", key=f"{site_id}:{ip}", rate=per_ip)
    rate_hit(name=f"{kind}-visitor", key=str(visitor_id), rate=per_visitor)
    rate_hit(name=f"{kind}-ip", key=f"{site_id}:{ip}", rate=per_ip)


def agent_upload_hit(*, agent_id: int) -> None:
    """A file an agent sends from the console (refused ones count)."""
    rate = Rate(settings.HELPDESK_RATE_AGENT_UPLOADS_PER_MINUTE, 60)
    rate_hit(name="upload-agent", key=str(agent_id), rate=rate)


def api_message_hit(*, site_id: int) -> None:
    """A message from a site's own servers through its API (all of its keys together)."""
    rate = Rate(settings.HELPDESK_RATE_API_MESSAGES_PER_MINUTE, 60)
    rate_hit(name="api-message", key=str(site_id), rate=rate)


def conversation_start_hit(*, visitor_id: int) -> None:
    """A visitor starts a new conversation (not a reopened one)."""
    rate = Rate(settings.HELPDESK_RATE_CONVERSATIONS_PER_HOUR, 3600)
    rate_hit(name="conversation", key=str(visitor_id), rate=rate)


LOGIN_FAILURES = Rate(5, 15 * 60)


def login_key(*, username: str, ip: str) -> str:
    return f"{username.strip().lower()}:{ip}"


def login_check(*, username: str, ip: str) -> None:
    """Raise ``RateLimited`` after 5 failed sign-ins for this user name from this address."""
    rate_check(name="login", key=login_key(username=username, ip=ip), rate=LOGIN_FAILURES)


def login_failed(*, username: str, ip: str) -> None:
    rate_count(name="login", key=login_key(username=username, ip=ip), rate=LOGIN_FAILURES)
