"""Proactive messages: a site's server writes to a customer first (order shipped), through
``POST /api/v1/sites/<key>/messages`` with a secret key, and it reaches them live, by push
or by e-mail."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client as DjangoClient
from django.test import override_settings

from chat.models import Conversation, Delivery, Message, SiteApiKey, Visitor
from chat.services.notifications import push_subscribe
from chat.services.proactive import site_api_key_create
from tests.conftest import widget_for

pytestmark = pytest.mark.django_db(transaction=True)

SHIPPED = "Your order #1234 has shipped. Track it: https://shop.acme.test/t/1234"


@pytest.fixture
def api_key(site) -> str:
    _key, secret = site_api_key_create(site=site, name="shop backend")
    return secret


@pytest.fixture(autouse=True)
def public_url(settings) -> None:
    settings.HELPDESK_PUBLIC_URL = "http://testserver"


def call(site, secret: str | None, data, *, raw: str | None = None, key: str | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret is not None else {}
    return DjangoClient().post(
        f"/api/v1/sites/{key or site.key}/messages",
        raw if raw is not None else json.dumps(data),
        content_type="application/json",
        **headers,
    )


def test_it_stores_only_a_hash_of_the_key(site, api_key):
    row = SiteApiKey.objects.get()
    assert api_key not in {row.hashed, row.prefix, row.name} and len(row.hashed) == 64
    assert api_key.startswith("hdk_" + row.prefix + "_")


@pytest.mark.parametrize(
    "secret", [None, "", "hdk_nothing_here", "not-even-the-format", "Basic abc"]
)
def test_it_refuses_missing_and_wrong_keys_with_401(site, api_key, secret):
    response = call(site, secret, {"customer": {"email": "ann@example.com"}, "body": "Hi"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_key"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert Message.objects.count() == 0


def test_it_refuses_a_revoked_key_and_one_of_another_site(site, other_site, api_key):
    _row, other_secret = site_api_key_create(site=other_site)
    assert (
        call(site, other_secret, {"customer": {"email": "a@b.co"}, "body": "x"}).status_code == 401
    )
    assert (
        call(other_site, api_key, {"customer": {"email": "a@b.co"}, "body": "x"}).status_code == 401
    )

    _row, fresh = site_api_key_create(site=site, rotate=True)

    assert call(site, api_key, {"customer": {"email": "a@b.co"}, "body": "x"}).status_code == 401
    assert call(site, fresh, {"customer": {"email": "a@b.co"}, "body": "x"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        ("not json", "bad_json", "JSON"),
        ("[1, 2]", "invalid", ""),
        (json.dumps({"body": "Hi"}), "invalid", "customer"),
        (json.dumps({"customer": {}, "body": "Hi"}), "invalid", "external_id or email"),
        (json.dumps({"customer": {"email": "nope"}, "body": "Hi"}), "invalid", "e-mail"),
        (json.dumps({"customer": {"email": "a@b.co"}, "body": "   "}), "invalid", "body"),
        (json.dumps({"customer": {"email": "a@b.co"}, "body": 5}), "invalid", "body"),
        (json.dumps({"customer": {"email": "a@b.co"}, "body": "Hi", "x": 1}), "invalid", "x"),
    ],
)
def test_it_answers_bad_bodies_with_400_saying_why(site, api_key, body, code, says):
    response = call(site, api_key, None, raw=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and says in error["message"]
    assert Message.objects.count() == 0


def test_it_answers_404_for_an_unknown_customer_id_without_an_address(site, api_key):
    response = call(site, api_key, {"customer": {"external_id": "cust-9"}, "body": "Hi"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_customer"
    assert Visitor.objects.count() == 0


def test_it_limits_a_sites_api_messages_per_minute_and_says_when_to_retry(
    smtp_server, site, other_site, api_key
):
    data = {"customer": {"email": "ann@example.com"}, "body": SHIPPED}
    with override_settings(HELPDESK_RATE_API_MESSAGES_PER_MINUTE=2):
        assert [call(site, api_key, data).status_code for _ in range(2)] == [201, 201]
        refused = call(site, api_key, data)
        _key, other_secret = site_api_key_create(site=other_site, name="other backend")
        elsewhere = call(other_site, other_secret, data)

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Message.objects.filter(conversation__site=site).count() == 2  # nothing stored
    assert elsewhere.status_code == 201  # each site has its own limit


def test_it_refuses_get_with_405(site, api_key):
    response = DjangoClient().get(
        f"/api/v1/sites/{site.key}/messages", HTTP_AUTHORIZATION=f"Bearer {api_key}"
    )
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_it_emails_a_new_customer_known_only_by_address_at_once(smtp_server, site, api_key):
    response = call(
        site,
        api_key,
        {
            "customer": {"email": "ann@example.com", "external_id": "cust-1", "name": "Ann"},
            "body": SHIPPED,
            "sender": "Acme Shipping",
        },
    )

    assert response.status_code == 201
    data = response.json()
    assert data["delivery"] == {"push": 0, "email": "now"}
    assert (
        data["customer"]["external_id"] == "cust-1"
        and data["customer"]["email"] == "ann@example.com"
    )
    conversation = Conversation.objects.get(pk=data["conversation_id"])
    message = conversation.messages.get(seq=data["seq"])
    assert message.body == SHIPPED and message.author == "agent"
    [mail] = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["ann@example.com"]
    assert mail.subject == "New reply from Acme"
    assert (
        SHIPPED in mail.text
        and "Acme Shipping" in mail.text
        and "http://testserver/r/" in mail.text
    )


def test_it_continues_the_customers_conversation_by_external_id(smtp_server, site, api_key):
    first = call(
        site,
        api_key,
        {
            "customer": {"email": "ann@example.com", "external_id": "cust-1"},
            "body": "Order placed.",
        },
    )
    second = call(site, api_key, {"customer": {"external_id": "cust-1"}, "body": SHIPPED})

    assert second.status_code == 201
    assert second.json()["conversation_id"] == first.json()["conversation_id"]
    assert second.json()["seq"] == first.json()["seq"] + 1
    assert Visitor.objects.count() == 1


def test_it_does_not_trust_an_address_typed_into_the_widget(smtp_server, site, api_key, visitor_a):
    Visitor.objects.filter(pk=visitor_a.pk).update(email="ann@example.com", user_agent="Firefox")

    response = call(site, api_key, {"customer": {"email": "ann@example.com"}, "body": SHIPPED})

    assert response.json()["customer"]["id"] != str(visitor_a.public_id)
    assert not visitor_a.conversations.exists()  # whoever typed her address sees nothing


def test_it_pushes_to_a_verified_customers_subscribed_browser(
    push_service, site, api_key, visitor_a
):
    Visitor.objects.filter(pk=visitor_a.pk).update(
        email="ann@example.com", email_verified=True, user_agent="Firefox"
    )
    push_subscribe(subscription=push_service.subscription(), visitor=visitor_a)

    response = call(site, api_key, {"customer": {"email": "ann@example.com"}, "body": SHIPPED})

    assert response.json()["customer"]["id"] == str(visitor_a.public_id)
    assert response.json()["delivery"] == {"push": 1, "email": "if_unseen"}
    [push] = push_service.wait_for(1)
    assert push.payload["body"] == SHIPPED and push.payload["title"] == "New reply from Acme"
    assert Delivery.objects.get(channel="push").status == "sent"


async def test_it_delivers_live_to_the_customers_open_widget(site, api_key, visitor_a):
    await database_sync_to_async(Visitor.objects.filter(pk=visitor_a.pk).update)(
        external_id="cust-7"
    )
    conversation = await database_sync_to_async(Conversation.objects.create)(
        site=site, visitor=visitor_a
    )
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation.pk)
    await widget.expect("sync.done")

    response = await database_sync_to_async(call)(
        site, api_key, {"customer": {"external_id": "cust-7"}, "body": SHIPPED}
    )

    assert response.status_code == 201
    frame = await widget.expect("message.created")
    assert (
        frame["body"] == SHIPPED and frame["author"] == "agent" and frame["author_name"] == "Acme"
    )
    await widget.close()


def test_an_admin_rotates_a_sites_keys_and_sees_the_new_one_once(site, admin, api_key):
    browser = DjangoClient()
    browser.force_login(admin)

    response = browser.post(
        "/admin/chat/site/",
        {"action": "rotate_api_keys", "_selected_action": [site.pk]},
        follow=True,
    )

    [shown] = [str(m) for m in response.context["messages"]]
    fresh = shown.rsplit(" ", 1)[-1]
    assert fresh.startswith("hdk_") and fresh != api_key
    assert call(site, api_key, {"customer": {"email": "a@b.co"}, "body": "x"}).status_code == 401
    assert call(site, fresh, {"customer": {"email": "a@b.co"}, "body": "x"}).status_code == 201
    page = browser.get(f"/admin/chat/site/{site.pk}/change/").content.decode()
    assert fresh not in page  # only its prefix is ever shown again
