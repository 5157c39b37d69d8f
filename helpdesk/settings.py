"""Settings for the helpdesk, read from the environment.

Every setting has an embedded default that runs anywhere: SQLite, the in-memory channel
layer and eager Celery. ``DATABASE_URL`` switches to PostgreSQL and ``REDIS_URL`` switches
the channel layer, the cache and the Celery broker to Redis.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # A fresh key per process is fine for development, but then visitor tokens signed by one
    # process are refused by another, so multi-process setups must set SECRET_KEY.
    SECRET_KEY = "dev-" + secrets.token_urlsafe(40)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "csp",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "helpdesk.urls"
ASGI_APPLICATION = "helpdesk.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "csp.context_processors.nonce",
                "chat.context_processors.notifications",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
# Connections per process that PostgreSQL serves from a psycopg pool; 0: no pool (then
# DATABASE_CONN_MAX_AGE decides how long each thread keeps its own connection).
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 10)
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=0 if DATABASE_POOL_SIZE else env_int("DATABASE_CONN_MAX_AGE", 0),
            # A kept connection is checked before its first use in each frame or request, so
            # one that died with the database (or the network) is replaced, not used.
            conn_health_checks=True,
        )
    }
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        options = DATABASES["default"].setdefault("OPTIONS", {})
        # An unreachable database fails the frame in seconds instead of hanging the socket.
        options["connect_timeout"] = env_int("DATABASE_CONNECT_TIMEOUT", 5)
        if DATABASE_POOL_SIZE:
            # A new backend per socket frame cost ~10 ms; a pooled connection costs nothing.
            # A fixed size, opened at start: growing on demand made the first burst wait for
            # new backends (tens of ms each on a busy machine). With conn_health_checks,
            # Django has the pool check a connection before lending it, so one that died with
            # the database is replaced, not used; waiting longer than a connection takes to
            # open means the database is gone.
            options["pool"] = {
                "min_size": DATABASE_POOL_SIZE,
                "max_size": DATABASE_POOL_SIZE,
                "timeout": options["connect_timeout"],
            }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # Kept open: the last connection's close checkpoints the WAL (~15 ms a frame).
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 600),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                # WAL lets readers run beside the single writer; IMMEDIATE takes the write
                # lock at BEGIN so two writers queue instead of failing with "locked".
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # A file (not :memory:) so server processes started by tests share it; one per
            # test run so parallel runs do not collide.
            "TEST": {
                "NAME": env_str(
                    "SQLITE_TEST_PATH", str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")
                )
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache, Celery broker -----------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # More than one Redis: channels and groups are spread over them by a hash of
            # their names (every process must list the same hosts in the same order).
            "CONFIG": {
                "hosts": env_list("CHANNEL_REDIS_URLS", [REDIS_URL]),
                "prefix": env_str("CHANNEL_PREFIX", "helpdesk"),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CHANNEL_PREFIX", "helpdesk"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
# Without a broker, tasks run inline; CELERY_EAGER=true forces that even with one.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 60)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# `celery -A helpdesk beat`: the sweeps behind "a closed laptop goes offline within a minute"
# and "an unanswered conversation goes back to the queue" (their countdown tasks may be lost).
CELERY_BEAT_SCHEDULE = {
    "presence-sweep": {"task": "chat.tasks.presence_sweep", "schedule": 20.0},
    "reassign-overdue": {"task": "chat.tasks.reassign_overdue", "schedule": 15.0},
    # Agent replies nobody saw for the site's N minutes go out by e-mail.
    "email-fallback-sweep": {"task": "chat.tasks.email_fallback_sweep", "schedule": 30.0},
    # Each site's "keep conversations (days)"; hourly is plenty for a limit counted in days.
    "retention-sweep": {"task": "chat.tasks.retention_sweep", "schedule": 3600.0},
}
if not CELERY_TASK_ALWAYS_EAGER and not REDIS_URL:
    # Workers would broadcast into their own in-memory layer and nobody would hear them.
    raise ImproperlyConfigured(
        "A Celery broker needs a shared channel layer: set REDIS_URL as well"
    )

# --- Auth, i18n, static -----------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
# Uploaded attachments (Django's default storage); served only through chat.views, never
# as static files.
MEDIA_ROOT = env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media"))
WHITENOISE_USE_FINDERS = True

# --- Helpdesk ----------------------------------------------------------------------------
# Load the bot's embedding model and build the busiest sites' indexes when daphne or a Celery
# worker process starts (in a background thread), so the first visitor does not wait for them.
HELPDESK_BOT_WARM_UP = env_bool("HELPDESK_BOT_WARM_UP", True)
# Longest message body accepted over a socket, in characters.
HELPDESK_MAX_MESSAGE_CHARS = env_int("HELPDESK_MAX_MESSAGE_CHARS", 4000)
# Largest raw socket frame accepted, in bytes (checked before JSON parsing).
HELPDESK_MAX_FRAME_BYTES = env_int("HELPDESK_MAX_FRAME_BYTES", 32_768)
# How long a visitor token stays valid, in days.
HELPDESK_VISITOR_TOKEN_DAYS = env_int("HELPDESK_VISITOR_TOKEN_DAYS", 365)
# How long a rating link (chat.services.csat.csat_link) stays valid, in days.
HELPDESK_CSAT_LINK_DAYS = env_int("HELPDESK_CSAT_LINK_DAYS", 14)
# Public address of the site, used in the embed snippet; empty means "the request's host".
HELPDESK_PUBLIC_URL = env_str("HELPDESK_PUBLIC_URL")
# Threads per server process that run socket frames; layer events to sockets need none.
# A thread waiting for its message's batch (group commit) holds no connection, so there are
# more threads than pooled connections: at saturation 32 delivered 44 % more than 8.
HELPDESK_FRAME_THREADS = env_int("HELPDESK_FRAME_THREADS", 32 if DATABASE_URL else 4)
# Visitors' messages from many sockets share one transaction (chat/services/group_commit.py).
HELPDESK_GROUP_COMMIT = env_bool("HELPDESK_GROUP_COMMIT", True)
if HELPDESK_FRAME_THREADS < 1:
    raise ImproperlyConfigured("HELPDESK_FRAME_THREADS must be at least 1")
# Seconds without a bot answer before the widget is told the bot is slow (``bot.delayed``)
# and offered a person; 0 never tells.
HELPDESK_BOT_SLOW_SECONDS = env_int("HELPDESK_BOT_SLOW_SECONDS", 8)
# Rate limits (chat/ratelimit.py), per site; 0 turns one off. Shared across processes only
# through the cache, so only with REDIS_URL.
HELPDESK_RATE_MESSAGES_PER_MINUTE = env_int("HELPDESK_RATE_MESSAGES_PER_MINUTE", 30)
HELPDESK_RATE_MESSAGES_PER_MINUTE_PER_IP = env_int("HELPDESK_RATE_MESSAGES_PER_MINUTE_PER_IP", 120)
HELPDESK_RATE_CONVERSATIONS_PER_HOUR = env_int("HELPDESK_RATE_CONVERSATIONS_PER_HOUR", 10)
HELPDESK_RATE_SESSIONS_PER_MINUTE_PER_IP = env_int("HELPDESK_RATE_SESSIONS_PER_MINUTE_PER_IP", 20)
HELPDESK_RATE_UPLOADS_PER_MINUTE = env_int("HELPDESK_RATE_UPLOADS_PER_MINUTE", 10)
HELPDESK_RATE_UPLOADS_PER_MINUTE_PER_IP = env_int("HELPDESK_RATE_UPLOADS_PER_MINUTE_PER_IP", 30)
# Files one agent may send per minute from the console.
HELPDESK_RATE_AGENT_UPLOADS_PER_MINUTE = env_int("HELPDESK_RATE_AGENT_UPLOADS_PER_MINUTE", 30)
# Messages a site's own servers may send per minute through its API, all its keys together.
HELPDESK_RATE_API_MESSAGES_PER_MINUTE = env_int("HELPDESK_RATE_API_MESSAGES_PER_MINUTE", 600)
# Attachments: images above this many pixels are refused (decompression bombs); Pillow's own
# bomb check is set to the same figure.
HELPDESK_UPLOAD_MAX_PIXELS = env_int("HELPDESK_UPLOAD_MAX_PIXELS", 40_000_000)
# Thumbnails costing at most this many decoded pixels are made inside the upload request;
# bigger ones by a Celery task (a JPEG, decoded scaled down, counts 1/8 of its pixels).
# `manage.py bench_thumbnails` measures the cost per pixel.
HELPDESK_THUMBNAIL_INLINE_PIXELS = env_int("HELPDESK_THUMBNAIL_INLINE_PIXELS", 4_000_000)

# --- LLM answers (any OpenAI-compatible server) -----------------------------------------
# Sites in "auto" LLM mode use the model only when a key is set; "on" uses it regardless
# (a local server may need no key).
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
# Empty means the client's default, https://api.openai.com/v1.
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
OPENAI_MODEL = env_str("OPENAI_MODEL", "gpt-4o-mini")
# Seconds one answer may take, retries included; then the bot answers without the model.
OPENAI_TIMEOUT = env_int("OPENAI_TIMEOUT", 20)
# Further tries after a rate limit (429), a server error (5xx) or an unreadable reply.
OPENAI_MAX_RETRIES = env_int("OPENAI_MAX_RETRIES", 2)
if OPENAI_TIMEOUT < 1 or OPENAI_MAX_RETRIES < 0:
    raise ImproperlyConfigured("OPENAI_TIMEOUT must be at least 1 and OPENAI_MAX_RETRIES >= 0")
if OPENAI_TIMEOUT >= CELERY_TASK_TIME_LIMIT:
    # The worker would be killed before the bot could fall back to a retrieval answer.
    raise ImproperlyConfigured("OPENAI_TIMEOUT must be shorter than CELERY_TASK_TIME_LIMIT")

# --- Notifications: Web Push and e-mail ---------------------------------------------------
# VAPID: the private key as base64url (raw 32 bytes or DER), or a file holding it. Unset in
# DEBUG, a key pair is generated into var/vapid.json at first run; unset otherwise, Web Push
# is off. The public key (for PushManager.subscribe) is derived from it.
VAPID_PRIVATE_KEY = env_str("VAPID_PRIVATE_KEY")
VAPID_SUBJECT = env_str("VAPID_SUBJECT", "mailto:helpdesk@localhost")
VAPID_KEY_FILE = env_str("VAPID_KEY_FILE", str(BASE_DIR / "var" / "vapid.json"))
if not VAPID_PRIVATE_KEY and DEBUG:
    from helpdesk.notify_settings import vapid_dev_key

    VAPID_PRIVATE_KEY = vapid_dev_key(Path(VAPID_KEY_FILE))
# Seconds a push service may hold a notification for an offline browser.
WEBPUSH_TTL = env_int("WEBPUSH_TTL", 3600)
WEBPUSH_TIMEOUT = env_int("WEBPUSH_TIMEOUT", 10)
# Accept subscriptions whose endpoint is plain http:// (a local push service in tests).
WEBPUSH_ALLOW_HTTP = env_bool("WEBPUSH_ALLOW_HTTP", DEBUG)

# E-mail: EMAIL_URL (smtp://user:pass@host:587?tls, smtps://…:465, console:) or the usual
# EMAIL_HOST/EMAIL_PORT/EMAIL_HOST_USER/EMAIL_HOST_PASSWORD/EMAIL_USE_TLS/EMAIL_USE_SSL.
# With neither, DEBUG prints mail to the console and production sends to localhost:25.
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Helpdesk <helpdesk@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
EMAIL_URL = env_str("EMAIL_URL")
if EMAIL_URL:
    from helpdesk.notify_settings import email_settings

    globals().update(email_settings(EMAIL_URL))
else:
    EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
    EMAIL_PORT = env_int("EMAIL_PORT", 25)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
    EMAIL_BACKEND = (
        "django.core.mail.backends.console.EmailBackend"
        if DEBUG and not os.environ.get("EMAIL_HOST")
        else "django.core.mail.backends.smtp.EmailBackend"
    )
# A failed push or e-mail is tried this many times in all, then recorded as failed.
HELPDESK_DELIVERY_ATTEMPTS = env_int("HELPDESK_DELIVERY_ATTEMPTS", 3)
# Days a finished delivery (sent or failed) is kept, with its e-mail text or push payload;
# 0 keeps them.
HELPDESK_DELIVERY_DAYS = env_int("HELPDESK_DELIVERY_DAYS", 30)
# How long the signed links in e-mails (back to the conversation) stay valid, in days.
HELPDESK_LINK_DAYS = env_int("HELPDESK_LINK_DAYS", 30)

# --- Security headers ---------------------------------------------------------------------
# Scripts and styles only from our own static files; a nonce for the few elements that must
# be inline (htmx's script tag, the loader's <style> on the demo page). 'self' in connect-src
# also allows ws:/wss: to our own host. The widget page replaces frame-ancestors per site.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # "preload" only permits submitting the domain to browsers' preload list; it joins the
    # list when its owner submits it by hand.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
