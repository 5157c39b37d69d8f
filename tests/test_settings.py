"""Settings come from the environment and refuse combinations that cannot work."""

from __future__ import annotations

import os
import subprocess
import sys

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
