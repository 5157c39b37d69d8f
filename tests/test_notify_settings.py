"""Notification settings from the environment: EMAIL_URL and the development VAPID key."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from py_vapid import Vapid

from helpdesk.notify_settings import email_settings, vapid_dev_key


def test_it_reads_an_smtp_url_with_credentials_and_starttls():
    assert email_settings("smtp://mailer:p%40ss@mail.example.com:587?tls") == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "mailer",
        "EMAIL_HOST_PASSWORD": "p@ss",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
    }


def test_it_defaults_the_port_from_the_scheme():
    assert email_settings("smtps://mail.example.com")["EMAIL_PORT"] == 465
    assert email_settings("smtps://mail.example.com")["EMAIL_USE_SSL"] is True
    assert email_settings("smtp://localhost")["EMAIL_PORT"] == 25


def test_it_prints_mail_with_console():
    assert email_settings("console:") == {
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"
    }


@pytest.mark.parametrize("url", ["http://mail.example.com", "mail.example.com", "smtp://h:port"])
def test_it_refuses_what_is_not_a_mail_url(url):
    with pytest.raises(ImproperlyConfigured):
        email_settings(url)


def test_it_makes_one_development_vapid_key_and_keeps_it(tmp_path):
    path = tmp_path / "var" / "vapid.json"

    key = vapid_dev_key(path)

    assert vapid_dev_key(path) == key
    assert Vapid.from_string(private_key=key).public_key is not None  # pywebpush can use it
