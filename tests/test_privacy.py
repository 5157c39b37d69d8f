"""Privacy: a customer's data exported and erased on request (admin and API, audited),
conversations expired by each site's retention, and consent stored with the conversation."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as DjangoClient
from django.urls import reverse
from django.utils import timezone

from chat.models import (
    Attachment,
    AuditLog,
    BotDecision,
    Conversation,
    CsatRating,
    Delivery,
    Message,
    PushSubscription,
    Site,
    Visitor,
)
from chat.services.attachments import attachment_send_from_visitor
from chat.services.messages import message_post
from chat.services.privacy import retention_sweep
from chat.services.proactive import site_api_key_create
from chat.services.visitors import visitor_token
from chat.tasks import retention_sweep as retention_task
from tests.browser import browsers  # noqa: F401  (fixture)
from tests.conftest import widget_connect, widget_for


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


@pytest.fixture
def ann_history(site, visitor_a, alice):
    """Ann (identified, with an e-mail) chatted with the bot and Alice: a rated answer, a file
    she sent, and a survey she answered at close."""
    visitor_a.email = "ann@example.com"
    visitor_a.external_id = "cust-42"
    visitor_a.user_agent = "Firefox"
    visitor_a.save()
    conversation = Conversation.objects.create(
        site=site,
        visitor=visitor_a,
        status="assigned",
        assignee=alice,
        handoff_reason="asked_for_human",
        page_url="https://shop.acme.test/orders/981",
        consent_text="We keep chats for 30 days.",
        consent_at=timezone.now(),
    )
    message_post(conversation=conversation, author="visitor", body="My card ends in 4242")
    answer = message_post(conversation=conversation, author="bot", body="Refunds take 5 days.")
    Message.objects.filter(pk=answer.message.pk).update(helpful=False)
    message_post(conversation=conversation, author="agent", body="Let me check.", agent=alice)
    BotDecision.objects.create(
        conversation=conversation,
        question_seq=1,
        question="My card ends in 4242",
        outcome="handoff",
        reason="low_confidence",
        confidence=0.2,
    )
    receipt = SimpleUploadedFile("receipt.txt", b"Order 981", content_type="text/plain")
    attachment_send_from_visitor(
        visitor=visitor_a, conversation=conversation, upload=receipt, client_id="f1"
    )
    CsatRating.objects.create(
        conversation=conversation,
        site=site,
        visitor=visitor_a,
        resolved_by="human",
        scale="stars",
        question="How was it?",
        requested_at=timezone.now(),
        score=4,
        comment="Alice was great, call me on 555-0100",
        rated_at=timezone.now(),
    )
    return conversation


def staff(username: str = "dpo", *, superuser: bool = True) -> DjangoClient:
    if superuser:
        user = User.objects.create_superuser(username, f"{username}@example.com", "pw")
    else:
        user = User.objects.create_user(username, password="pw", is_staff=True)
        user.user_permissions.add(Permission.objects.get(codename="change_visitor"))
    client = DjangoClient()
    client.force_login(user)
    return client


def export_url(visitor: Visitor) -> str:
    return reverse("api:customer_export", args=[visitor.public_id])


def erase_url(visitor: Visitor) -> str:
    return reverse("api:customer_erase", args=[visitor.public_id])


# --- Export ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_exports_everything_held_about_a_customer_as_json(ann_history, visitor_a, visitor_b):
    Conversation.objects.create(site=visitor_b.site, visitor=visitor_b)  # Ben's: not in it
    response = staff().get(export_url(visitor_a))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["customer"]["email"] == "ann@example.com"
    assert data["customer"]["external_id"] == "cust-42"
    assert [c["id"] for c in data["conversations"]] == [ann_history.pk]
    (conversation,) = data["conversations"]
    assert [(m["seq"], m["author"], m["body"]) for m in conversation["messages"]][:3] == [
        (1, "visitor", "My card ends in 4242"),
        (2, "bot", "Refunds take 5 days."),
        (3, "agent", "Let me check."),
    ]
    assert conversation["messages"][2]["author_name"] == "Alice"
    bot_rating, survey = conversation["ratings"]
    assert bot_rating == {"seq": 2, "helpful": False, "kind": "bot_answer"}
    assert (survey["kind"], survey["score"], survey["comment"]) == (
        "csat",
        4,
        "Alice was great, call me on 555-0100",
    )
    assert conversation["consent"]["text"] == "We keep chats for 30 days."
    (attachment,) = conversation["attachments"]
    assert (attachment["name"], attachment["size"], attachment["content_type"]) == (
        "receipt.txt",
        9,
        "text/plain",
    )
    assert attachment["seq"] == 4
    log = AuditLog.objects.get()
    assert (log.action, log.actor_name, log.via, log.visitor_ref) == (
        "export",
        "dpo",
        "api",
        str(visitor_a.public_id),
    )


@pytest.mark.django_db
def test_it_lets_only_staff_of_the_customers_site_export_or_erase(
    ann_history, visitor_a, alice, charlie, other_site
):
    anonymous = DjangoClient()
    assert anonymous.get(export_url(visitor_a)).status_code == 403
    agent = DjangoClient()
    agent.force_login(alice.user)  # an agent, not staff
    assert agent.get(export_url(visitor_a)).status_code == 403
    assert agent.post(erase_url(visitor_a)).status_code == 403
    other = staff("globex-dpo", superuser=False)
    charlie.user.is_staff = True
    charlie.user.save()
    charlie.user.user_permissions.add(Permission.objects.get(codename="change_visitor"))
    elsewhere = DjangoClient()
    elsewhere.force_login(charlie.user)  # staff, but of another company's site
    assert elsewhere.get(export_url(visitor_a)).status_code == 404
    assert elsewhere.post(erase_url(visitor_a)).status_code == 404
    assert other.get(export_url(visitor_a)).status_code == 404  # staff of no site at all
    assert staff().get(erase_url(visitor_a)).status_code == 405  # erasing never by GET
    assert not AuditLog.objects.exists()
    assert Message.objects.filter(conversation=ann_history).count() == 4


@pytest.mark.django_db
def test_it_refuses_an_api_erase_without_the_csrf_token(ann_history, visitor_a):
    browser = DjangoClient(enforce_csrf_checks=True)
    browser.force_login(User.objects.create_superuser("dpo", "dpo@example.com", "pw"))
    assert browser.post(erase_url(visitor_a)).status_code == 403
    browser.get(reverse("admin:index"))  # sets the CSRF cookie, as a page of ours would
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    response = browser.post(erase_url(visitor_a), HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert response.json()["messages"] == 4


# --- Erase ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_erases_text_and_identity_but_keeps_anonymised_statistics(
    ann_history, visitor_a, django_capture_on_commit_callbacks
):
    started, reason = ann_history.created_at, ann_history.handoff_reason
    file_path = Path(Attachment.objects.get().file.path)
    assert file_path.exists()
    old_id = str(visitor_a.public_id)
    dpo = staff()
    with django_capture_on_commit_callbacks(execute=True):
        response = dpo.post(erase_url(visitor_a))
    assert response.status_code == 200
    assert response.json() == {
        "erased": True,
        "id": str(Visitor.objects.get(pk=visitor_a.pk).public_id),
        "conversations": 1,
        "messages": 4,
    }
    assert not Message.objects.filter(conversation=ann_history).exists()
    assert not Attachment.objects.exists()
    assert not file_path.exists()  # the file itself is gone, not only its row
    rating = CsatRating.objects.get(conversation=ann_history)
    assert (rating.score, rating.comment) == (4, "")
    visitor = Visitor.objects.get(pk=visitor_a.pk)
    assert (visitor.name, visitor.email, visitor.external_id, visitor.user_agent) == (
        "",
        "",
        "",
        "",
    )
    assert str(visitor.public_id) != old_id and visitor.erased_at is not None
    conversation = Conversation.objects.get(pk=ann_history.pk)
    assert (conversation.created_at, conversation.handoff_reason) == (started, reason)
    assert conversation.status == "closed" and conversation.closed_at is not None
    assert conversation.page_url == "" and conversation.anonymised_at is not None
    decision = BotDecision.objects.get(conversation=conversation)
    assert (decision.question, decision.outcome, decision.confidence) == ("", "handoff", 0.2)
    log = AuditLog.objects.get(action="erase")
    assert (log.visitor_ref, log.detail) == (old_id, {"conversations": 1, "messages": 4})
    exported = json.loads(staff("second").get(export_url(visitor)).content)
    assert "4242" not in json.dumps(exported) and "555-0100" not in json.dumps(exported)


def test_erasing_a_customer_forgets_what_was_sent_to_them_and_about_them(
    ann_history, visitor_a, visitor_b, alice, django_capture_on_commit_callbacks
):
    text = {"subject": "Alice replied", "text": "Your card ending 4242 is blocked."}
    Delivery.objects.create(
        channel="email",
        kind="reply",
        recipient="ann@example.com",
        visitor=visitor_a,
        conversation=ann_history,
        payload=text,
        status="sent",
    )
    Delivery.objects.create(  # proactive: to her address, in no conversation of hers yet
        channel="email",
        kind="proactive",
        recipient="ann@example.com",
        visitor=visitor_a,
        payload=text,
        status="sent",
    )
    Delivery.objects.create(  # the agent's push, with a preview of her message
        channel="push",
        kind="reply",
        agent=alice,
        conversation=ann_history,
        payload={"title": "Ann replied", "body": "card ending 4242"},
        status="sent",
    )
    other = Delivery.objects.create(
        channel="email",
        kind="reply",
        recipient="bo@example.com",
        visitor=visitor_b,
        payload={"subject": "Hi", "text": "Hello Bo"},
        status="sent",
    )
    PushSubscription.objects.create(
        visitor=visitor_a, endpoint="https://push.example/ann", p256dh="k", auth="a"
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert staff().post(erase_url(visitor_a)).status_code == 200

    assert list(Delivery.objects.all()) == [other]
    assert not PushSubscription.objects.filter(visitor=visitor_a).exists()


@pytest.mark.django_db(transaction=True)
async def test_it_shuts_an_erased_customers_old_token_out(ann_history, visitor_a):
    token = await database_sync_to_async(visitor_token)(visitor_a)
    client = await database_sync_to_async(staff)()
    response = await database_sync_to_async(client.post)(erase_url(visitor_a))
    assert response.status_code == 200
    widget, connected, _ = await widget_connect(visitor_a.site, token=token)
    assert connected
    assert (await widget.expect("error"))["code"] == "bad_token"
    await widget.close()


@pytest.mark.django_db
def test_it_exports_and_erases_from_the_admin_with_a_confirmation(ann_history, visitor_a):
    admin = staff()
    changelist = reverse("admin:chat_visitor_changelist")
    selected = {"_selected_action": [visitor_a.pk]}
    response = admin.post(changelist, {"action": "export_data", **selected})
    assert response.status_code == 200
    assert json.loads(response.content)["customer"]["email"] == "ann@example.com"

    confirm = admin.post(changelist, {"action": "erase_data", **selected})
    assert confirm.status_code == 200 and b"cannot be undone" in confirm.content
    assert Message.objects.filter(conversation=ann_history).count() == 4  # not yet
    done = admin.post(changelist, {"action": "erase_data", "confirm": "yes", **selected})
    assert done.status_code == 302
    assert not Message.objects.filter(conversation=ann_history).exists()
    assert list(AuditLog.objects.order_by("at").values_list("action", "via")) == [
        ("export", "admin"),
        ("erase", "admin"),
    ]


@pytest.mark.django_db
def test_it_shows_the_identity_secret_and_privacy_settings_in_the_site_admin(site):
    page = staff().get(reverse("admin:chat_site_change", args=[site.pk])).content.decode()
    assert site.identity_secret in page
    for field in ["identity_verification", "retention_days", "retention_action", "consent_text"]:
        assert f'name="{field}"' in page
    assert Site.objects.create(name="Other").identity_secret != site.identity_secret


# --- Retention ------------------------------------------------------------------------------


def aged(conversation: Conversation, days: int) -> Conversation:
    moment = timezone.now() - timedelta(days=days)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=moment)
    Message.objects.filter(conversation=conversation).update(created_at=moment)
    return conversation


def chat(site: Site, body: str) -> Conversation:
    visitor = Visitor.objects.create(site=site, name=body, email=f"{body}@example.com")
    conversation = Conversation.objects.create(site=site, visitor=visitor, status="closed")
    message_post(conversation=conversation, author="visitor", body=body)
    return conversation


@pytest.mark.django_db
def test_it_anonymises_conversations_past_the_sites_retention(site, other_site):
    site.retention_days = 30
    site.save()
    old = aged(chat(site, "old"), 40)
    recent = aged(chat(site, "recent"), 10)
    kept_forever = aged(chat(other_site, "forever"), 4000)  # retention 0: keep
    revived = aged(chat(site, "revived"), 40)
    message_post(conversation=revived, author="visitor", body="still here")  # activity today

    assert retention_task.delay().get() == 1
    assert not Message.objects.filter(conversation=old).exists()
    assert Conversation.objects.get(pk=old.pk).anonymised_at is not None
    for conversation in (recent, kept_forever, revived):
        assert Message.objects.filter(conversation=conversation).exists()
    log = AuditLog.objects.get(action="retention")
    assert (log.site, log.via, log.actor) == (site, "beat", None)
    assert log.detail["conversations"] == 1
    assert retention_sweep() == 0  # done once: nothing more to do, nothing logged
    assert AuditLog.objects.count() == 1


@pytest.mark.django_db
def test_it_deletes_expired_conversations_when_the_site_says_so(site):
    site.retention_days = 7
    site.retention_action = Site.RetentionAction.DELETE
    site.save()
    old = aged(chat(site, "old"), 8)
    recent = chat(site, "recent")
    assert retention_sweep() == 1
    assert not Conversation.objects.filter(pk=old.pk).exists()
    assert Conversation.objects.filter(pk=recent.pk).exists()


@pytest.mark.django_db
def test_the_sweep_forgets_finished_deliveries_after_their_days(settings):
    settings.HELPDESK_DELIVERY_DAYS = 30
    rows = {
        (status, days): Delivery.objects.create(
            channel="email",
            kind="reply",
            recipient="ann@example.com",
            status=status,
            payload={"subject": "Re", "text": "words"},
        )
        for status in ("sent", "failed", "retrying")
        for days in (40, 10)
    }
    for (_status, days), row in rows.items():
        Delivery.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=days))

    retention_task.delay().get()

    kept = set(Delivery.objects.values_list("pk", flat=True))
    assert kept == {
        row.pk for (status, days), row in rows.items() if status == "retrying" or days == 10
    }
    settings.HELPDESK_DELIVERY_DAYS = 0  # keep them all
    Delivery.objects.filter(pk__in=kept).update(created_at=timezone.now() - timedelta(days=400))
    retention_task.delay().get()
    assert set(Delivery.objects.values_list("pk", flat=True)) == kept


def test_it_runs_the_retention_sweep_from_celery_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["retention-sweep"]
    assert entry["task"] == "chat.tasks.retention_sweep"
    assert entry["schedule"] <= 24 * 3600


# --- Consent --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_it_requires_consent_before_the_first_message_and_stores_it(site, visitor_a):
    site.consent_text = "I agree that Acme stores this chat for 30 days."
    await database_sync_to_async(site.save)()
    widget = await widget_for(visitor_a)
    await widget.send(type="message.create", client_id="c1", body="hello")
    refused = await widget.expect("error")
    assert (refused["code"], refused["ref"]) == ("consent_required", "c1")
    assert not await database_sync_to_async(Conversation.objects.exists)()

    await widget.send(type="message.create", client_id="c2", body="hello", consent=True)
    ack = await widget.expect("message.ack", client_id="c2")
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=ack["conversation_id"])
    assert conversation.consent_text == site.consent_text
    assert conversation.consent_at is not None
    # Later messages of the same conversation need no new consent.
    await widget.send(
        type="message.create", client_id="c3", body="more", conversation_id=conversation.pk
    )
    await widget.expect("message.ack", client_id="c3")
    await widget.close()


@pytest.mark.django_db(transaction=True)
async def test_it_asks_nothing_when_the_site_has_no_consent_text(site, visitor_a):
    widget = await widget_for(visitor_a)
    await widget.send(type="message.create", client_id="c1", body="hello")
    ack = await widget.expect("message.ack", client_id="c1")
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=ack["conversation_id"])
    assert (conversation.consent_text, conversation.consent_at) == ("", None)
    await widget.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_makes_the_visitor_tick_the_consent_box_in_the_widget(browsers):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    from tests.browser import wait
    from tests.live import daphne_server

    site = Site.objects.create(
        name="Acme",
        bot_enabled=False,
        consent_text="I agree to the privacy policy at https://acme.test/privacy.",
    )
    with daphne_server() as base:
        browser = browsers()
        browser.get(f"{base}/widget/{site.key}/")
        consent = wait(browser).until(ec.visibility_of_element_located((By.ID, "consent")))
        link = consent.find_element(By.TAG_NAME, "a")
        assert link.get_attribute("href") == "https://acme.test/privacy"
        assert link.get_attribute("rel") == "noopener nofollow"
        box = wait(browser).until(ec.element_to_be_clickable((By.ID, "body")))
        box.send_keys("Hello there", Keys.ENTER)
        notice = wait(browser).until(ec.visibility_of_element_located((By.ID, "notice")))
        assert "tick" in notice.text
        assert not browser.find_elements(By.CSS_SELECTOR, "#messages .msg--visitor")
        browser.find_element(By.ID, "consent-box").click()
        box.send_keys(Keys.ENTER)
        wait(browser).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".msg--visitor[data-seq]"))
        )
        wait(browser).until(ec.invisibility_of_element_located((By.ID, "consent")))
        conversation = Conversation.objects.get()
        assert conversation.consent_text == site.consent_text
        assert conversation.consent_at is not None


@pytest.mark.django_db
def test_it_asks_consent_for_a_file_that_starts_a_conversation(site, visitor_a, tmp_path):
    site.consent_text = "I agree that Acme stores this chat."
    site.save()
    url = reverse("widget_upload", args=[site.key])
    auth = {"Authorization": f"Bearer {visitor_token(visitor_a)}"}

    def send(**extra: str):
        note = SimpleUploadedFile("note.txt", b"order 981", content_type="text/plain")
        return DjangoClient().post(url, {"client_id": "f1", "file": note, **extra}, headers=auth)

    refused = send()
    assert refused.status_code == 400 and refused.json()["code"] == "consent_required"
    assert not Conversation.objects.exists() and not Attachment.objects.exists()
    assert not any(path.is_file() for path in tmp_path.rglob("*"))  # the file was discarded
    assert send(consent="true").status_code == 201
    assert Conversation.objects.get().consent_text == site.consent_text


# --- The site's own servers, with its API key ----------------------------------------------


@pytest.mark.django_db
def test_it_exports_and_erases_for_the_sites_backend_with_its_api_key(
    ann_history, visitor_a, other_site
):
    _row, secret = site_api_key_create(site=visitor_a.site, name="privacy desk")
    _other, globex_secret = site_api_key_create(site=other_site)
    key = visitor_a.site.key
    backend = DjangoClient(enforce_csrf_checks=True)  # no session, no CSRF token
    auth = {"Authorization": f"Bearer {secret}"}

    found = backend.get(
        reverse("api:site_customer_lookup", args=[key]), {"external_id": "cust-42"}, headers=auth
    )
    assert found.json() == {"customers": [str(visitor_a.public_id)]}
    export = reverse("api:site_customer_export", args=[key, visitor_a.public_id])
    erase = reverse("api:site_customer_erase", args=[key, visitor_a.public_id])
    assert backend.get(export).status_code == 401
    wrong_site = {"Authorization": f"Bearer {globex_secret}"}
    assert backend.get(export, headers=wrong_site).status_code == 401
    data = json.loads(backend.get(export, headers=auth).content)
    assert data["customer"]["external_id"] == "cust-42"

    ben = Visitor.objects.create(site=other_site, name="Globex customer")
    elsewhere = reverse("api:site_customer_export", args=[key, ben.public_id])
    assert backend.get(elsewhere, headers=auth).status_code == 404  # not this site's customer

    assert backend.post(erase, headers=auth).json()["messages"] == 4
    assert not Message.objects.filter(conversation=ann_history).exists()
    assert list(AuditLog.objects.order_by("at").values_list("action", "via", "actor")) == [
        ("export", "api-key", None),
        ("erase", "api-key", None),
    ]
