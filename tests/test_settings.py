"""Settings come from the environment and refuse combinations that cannot work."""

from __future__ import annotations

import os
import subprocess
import sys

from django.core.checks import run_checks
from django.test import override_settings

from tests.live import ROOT


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['ENGINE'], "
            "settings.CHANNEL_LAYERS['default']['BACKEND'], settings.CELERY_TASK_ALWAYS_EAGER)",
        ],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "helpdesk.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_runs_on_embedded_defaults():
    result = load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "channels.layers.InMemoryChannelLayer",
        "True",
    ]


def test_it_switches_to_postgres_and_redis_from_urls():
    result = load_settings(
        DATABASE_URL="postgres://u@db.example:5432/helpdesk", REDIS_URL="redis://cache:6379/1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "channels_redis.pubsub.RedisPubSubChannelLayer",
        "False",
    ]


def test_it_refuses_a_real_broker_with_the_in_memory_channel_layer():
    result = load_settings(CELERY_BROKER_URL="redis://cache:6379/1")
    assert result.returncode != 0
    assert "needs a shared channel layer" in result.stderr


def test_it_refuses_production_without_a_secret_key():
    result = load_settings(DEBUG="false")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_it_refuses_a_malformed_boolean():
    result = load_settings(DEBUG="maybe")
    assert result.returncode != 0 and "DEBUG must be a boolean" in result.stderr


def test_it_pools_postgres_connections_and_shards_the_layer_over_listed_redis_hosts():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['OPTIONS']['pool']['max_size'], "
            "settings.DATABASES['default']['CONN_MAX_AGE'], "
            "','.join(settings.CHANNEL_LAYERS['default']['CONFIG']['hosts']))",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
            "DATABASE_URL": "postgres://u@db.example:5432/helpdesk",
            "REDIS_URL": "redis://cache:6379/1",
            "CHANNEL_REDIS_URLS": "redis://a:6379/0,redis://b:6379/0",
            "DATABASE_POOL_SIZE": "12",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["12", "0", "redis://a:6379/0,redis://b:6379/0"]


def test_a_server_process_starts_without_the_bots_libraries_or_pillow():
    """The bot runs in workers; a web process holding sockets must not pay ~100 MiB for it,
    nor the openai client (~21 MiB) before a model is called, nor Pillow before an upload."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, helpdesk.asgi, chat.consumers, chat.admin, chat.views; "
            "print(sorted({'numpy', 'scipy', 'sklearn', 'bm25s', 'jieba', 'openai', 'PIL'} "
            "& set(sys.modules)))",
        ],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "helpdesk.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_deploy_checks_warn_while_links_in_e_mails_would_point_at_localhost():
    with override_settings(HELPDESK_PUBLIC_URL=""):
        warned = run_checks(include_deployment_checks=True)
    assert "chat.W001" in {message.id for message in warned}
    with override_settings(HELPDESK_PUBLIC_URL="https://help.example.com"):
        warned = run_checks(include_deployment_checks=True)
    assert "chat.W001" not in {message.id for message in warned}
    assert "chat.W001" not in {message.id for message in run_checks()}  # only with --deploy
