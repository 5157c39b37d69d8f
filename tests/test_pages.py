"""Pages a person opens: home, the demo shop, the loader, the widget page, login and admin."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def test_it_serves_the_home_page_with_its_way_in(client):
    page = client.get("/").content.decode()
    for link in ["/demo/", "/console/", "/admin/"]:
        assert f'href="{link}"' in page


def test_it_embeds_the_widget_on_the_demo_page_with_only_the_script_tag(client):
    call_command("load_demo", verbosity=0)
    page = client.get("/demo/").content.decode()
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert len(scripts) == 1
    # The nonce is this page's own (its CSP); a site owner's snippet needs none.
    assert re.fullmatch(
        r'<script src="http://testserver/static/widget/loader.js" data-site="acme-demo" '
        r'nonce="[A-Za-z0-9+/=]+" async>',
        scripts[0],
    )


def test_it_loads_the_demo_again_without_duplicating_anything(client):
    call_command("load_demo", verbosity=0)
    from chat.models import FaqEntry, Site

    first = sorted(FaqEntry.objects.values_list("id", flat=True))
    call_command("load_demo", verbosity=0)
    assert sorted(FaqEntry.objects.values_list("id", flat=True)) == first
    assert Site.objects.count() == 1
    languages = list(FaqEntry.objects.values_list("language", flat=True))
    assert languages.count("en") >= 40 and languages.count("zh-hans") >= 15


def test_it_serves_the_loader_script(client):
    response = client.get("/static/widget/loader.js")
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
    assert b"postMessage" in b"".join(response.streaming_content)


def test_it_lets_only_the_sites_origins_frame_the_widget(client, site):
    response = client.get(reverse("widget", args=[site.key]), {"origin": "https://shop.acme.test"})
    assert response.status_code == 200
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert policy["frame-ancestors"] == "'self' https://shop.acme.test"
    assert "X-Frame-Options" not in response
    assert "https://shop.acme.test" in response.content.decode()


def test_it_never_posts_messages_to_a_foreign_parent(client, site):
    response = client.get(reverse("widget", args=[site.key]), {"origin": "https://evil.example"})
    assert "evil.example" not in response.content.decode()


def test_it_answers_an_unknown_site_key_with_404(client, site):
    assert client.get(reverse("widget", args=["nope"])).status_code == 404


def test_it_speaks_the_sites_language_in_the_widget(client, site):
    site.language = "zh-hans"
    site.save()
    page = client.get(reverse("widget", args=[site.key])).content.decode()
    assert 'lang="zh-hans"' in page
    assert "转人工" in page or "人工" in page


def test_it_follows_the_browser_language_when_the_site_has_none(client, site):
    page = client.get(reverse("widget", args=[site.key]), HTTP_ACCEPT_LANGUAGE="zh-CN").content
    assert 'lang="zh-hans"' in page.decode()


def test_it_shows_the_login_page(client):
    assert client.get(reverse("login")).status_code == 200


def test_it_renders_the_console_for_an_agent(client, alice, visitor_a, site):
    conversation = Conversation.objects.create(site=site, visitor=visitor_a, status="waiting")
    Message.objects.create(conversation=conversation, seq=1, author="visitor", body="Where is it?")
    client.force_login(alice.user)
    home = client.get(reverse("console:home")).content.decode()
    assert "Where is it?" in home
    page = client.get(reverse("console:conversation", args=[conversation.pk])).content.decode()
    assert "Where is it?" in page


def test_it_refuses_the_console_to_users_without_an_agent_profile(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("plain", password="x"))
    assert client.get(reverse("console:home")).status_code == 403


def test_it_renders_every_admin_list_and_a_conversation_transcript(admin_client, site, visitor_a):
    conversation = Conversation.objects.create(site=site, visitor=visitor_a)
    Message.objects.create(conversation=conversation, seq=1, author="visitor", body="Hello there")
    for model in ["site", "team", "agent", "faqentry", "visitor", "conversation"]:
        assert admin_client.get(reverse(f"admin:chat_{model}_changelist")).status_code == 200
    detail = admin_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))
    assert "Hello there" in detail.content.decode()
