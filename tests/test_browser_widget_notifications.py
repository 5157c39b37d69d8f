"""The customer's side in a real browser: a link from an e-mail reopens the conversation in
the widget on the shop's page, "Notify me" subscribes to Web Push, and "E-mail me this
conversation" sends the transcript to a real SMTP server."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from chat.models import Conversation, PushSubscription, Site, Visitor
from chat.services.conversations import agent_message_post
from chat.services.links import resume_token
from tests.browser import browsers, wait  # noqa: F401  (fixture)
from tests.live import daphne_server
from tests.test_browser_notifications import allow_push, poll

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_reopens_the_conversation_from_an_e_mailed_link_and_offers_push_and_transcript(
    browsers,  # noqa: F811
    push_service,
    smtp_server,
    settings,
    alice,
):
    settings.SECRET_KEY = "live-test-secret"  # the server's: the link must verify there
    call_command("load_demo", verbosity=0)
    shop = Site.objects.get(key="acme-demo")
    ann = Visitor.objects.create(site=shop, name="Ann", email="ann@example.com")
    env = {
        "VAPID_PRIVATE_KEY": settings.VAPID_PRIVATE_KEY,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(settings.EMAIL_PORT),
    }
    with daphne_server(env) as base:
        Site.objects.filter(pk=shop.pk).update(allowed_origins=base)
        conversation = Conversation.objects.create(
            site=shop,
            visitor=ann,
            status=Conversation.Status.ASSIGNED,
            assignee=alice,
            page_url=f"{base}/demo/",
        )
        agent_message_post(
            conversation=conversation, agent=alice, body="It ships tomorrow.", client_id="a1"
        )
        subscription = push_service.subscription()
        customer = browsers()  # another device: no token of Ann's
        allow_push(customer, base, subscription)

        customer.get(f"{base}/r/{resume_token(conversation, emailed=True)}/")

        assert customer.current_url == f"{base}/demo/"  # the loader took the fragment away
        wait(customer).until(ec.frame_to_be_available_and_switch_to_it((By.ID, "helpdesk-frame")))
        wait(customer).until(
            ec.text_to_be_present_in_element((By.ID, "messages"), "ships tomorrow")
        )
        ann.refresh_from_db()
        assert ann.email_verified

        customer.find_element(By.ID, "notify-me").click()
        stored = poll(lambda: PushSubscription.objects.filter(visitor=ann).first())
        assert stored.endpoint == subscription["endpoint"]

        customer.find_element(By.ID, "transcript").click()
        wait(customer).until(ec.text_to_be_present_in_element((By.ID, "notice"), "ann@example.com"))
        # Ann had never opened a widget when Alice replied: that reply was e-mailed at once.
        first, transcript = smtp_server.wait_for(2)
        assert first.subject == f"New reply from {shop.name}"
        assert transcript.rcpt_tos == ["ann@example.com"]
        assert transcript.subject == f"Your conversation with {shop.name}"
        assert "It ships tomorrow." in transcript.text
        errors = [e for e in customer.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
