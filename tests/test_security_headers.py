"""Security headers: a strict Content-Security-Policy everywhere, and production settings."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


@pytest.fixture
def pages(client, site, alice):
    """Every kind of page a browser opens, by name."""
    call_command("load_demo", verbosity=0)
    console = client.__class__()
    console.force_login(alice.user)
    return {
        "home": lambda: client.get("/"),
        "demo": lambda: client.get("/demo/"),
        "login": lambda: client.get(reverse("login")),
        "admin login": lambda: client.get("/admin/login/"),
        "console": lambda: console.get(reverse("console:home")),
        "review": lambda: console.get(reverse("console:review")),
        "widget": lambda: client.get(reverse("widget", args=[site.key])),
    }


@pytest.mark.parametrize(
    "name", ["home", "demo", "login", "admin login", "console", "review", "widget"]
)
def test_it_allows_only_its_own_scripts_styles_and_sockets_on_every_page(pages, name):
    response = pages[name]()
    assert response.status_code == 200
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]  # same-origin ws:/wss: included
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    for directive in ["script-src", "style-src"]:
        assert csp[directive][0] == "'self'"
        assert all(s == "'self'" or s.startswith("'nonce-") for s in csp[directive]), csp
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]


@pytest.mark.parametrize("name", ["home", "demo", "login", "console", "review", "widget"])
def test_it_puts_nothing_inline_that_the_policy_would_block(pages, name):
    response = pages[name]()
    page = response.content.decode()
    nonces = {s[len("'nonce-") : -1] for s in policy(response)["script-src"][1:]}
    for tag in re.findall(r"<(?:script|style)\b[^>]*>", page):
        if "src=" not in tag:  # inline: only with this response's nonce
            assert re.search(r'nonce="([^"]+)"', tag).group(1) in nonces, tag
    assert not re.search(r"\sstyle=", page)
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers


def test_it_forbids_framing_everywhere_but_the_widget(pages):
    for name in ["home", "demo", "login", "console"]:
        response = pages[name]()
        assert policy(response)["frame-ancestors"] == ["'none'"], name
        assert response["X-Frame-Options"] == "DENY"


def test_it_lets_only_the_sites_own_pages_frame_the_widget(client, site, other_site):
    acme = policy(client.get(reverse("widget", args=[site.key])))
    globex = policy(client.get(reverse("widget", args=[other_site.key])))
    assert acme["frame-ancestors"] == ["'self'", "https://shop.acme.test"]
    assert globex["frame-ancestors"] == ["'self'", "https://globex.test"]
    assert acme["default-src"] == ["'self'"]  # the rest of the policy still applies


def test_it_sends_nosniff_and_a_referrer_policy(client):
    response = client.get("/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


# --- Production settings (DEBUG=false), read in a fresh process ----------------------------


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "DEBUG"))}
    return (
        env
        | {
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(60),
            "ALLOWED_HOSTS": "help.example.com",
            "HELPDESK_PUBLIC_URL": "https://help.example.com",
            "DJANGO_SETTINGS_MODULE": "helpdesk.settings",
        }
        | extra
    )


def production_settings(**extra: str) -> dict[str, object]:
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({n: getattr(s, n) for n in ["
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', "
        "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_CONTENT_TYPE_NOSNIFF', "
        "'SECURE_REFERRER_POLICY']}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=production_env(**extra),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_it_passes_djangos_deployment_checks_in_production():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_secures_cookies_and_transport_in_production():
    assert production_settings() == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
    }


def test_it_reads_hsts_and_the_https_redirect_from_the_environment():
    chosen = production_settings(SECURE_HSTS_SECONDS="3600", SECURE_SSL_REDIRECT="false")
    assert chosen["SECURE_HSTS_SECONDS"] == 3600
    assert chosen["SECURE_SSL_REDIRECT"] is False
