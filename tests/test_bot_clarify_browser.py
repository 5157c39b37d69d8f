""" "Did you mean …?" in a real browser: the bot offers two entries as buttons, the visitor
clicks one, and the bot answers with that entry."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec

from chat.models import FaqEntry, Site
from tests.browser import browsers, wait  # noqa: F401  (fixture)
from tests.live import daphne_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CANCELLING = [
    ("How do I cancel my order?", "Cancel an order", "Open Orders and choose Cancel."),
    (
        "How do I cancel my subscription?",
        "Cancel a subscription\nStop my subscription",
        "Open Account, then Subscription, and choose Cancel.",
    ),
    (
        "How long does shipping take?",
        "When will my order arrive?\nDelivery time",
        "Standard delivery takes 3-5 business days.",
    ),
    (
        "How do I reset my password?",
        "I forgot my password\nChange password",
        "Use 'Forgot password' on the sign-in page.",
    ),
    (
        "What payment methods do you accept?",
        "Can I pay with PayPal?\nHow can I pay?",
        "We accept Visa, Mastercard and PayPal.",
    ),
]


def test_it_answers_the_entry_the_visitor_picks_from_did_you_mean(browsers):  # noqa: F811
    with daphne_server() as base:
        site = Site.objects.create(name="Shop", allowed_origins=base)
        for question, phrasings, answer in CANCELLING:
            FaqEntry.objects.create(
                site=site, question=question, phrasings=phrasings, answer=answer
            )
        visitor = browsers()
        visitor.get(f"{base}/widget/{site.key}/")
        box = wait(visitor, 30).until(ec.element_to_be_clickable((By.ID, "body")))
        box.send_keys("cancellation", Keys.ENTER)

        buttons = wait(visitor, 30).until(
            ec.visibility_of_all_elements_located((By.CSS_SELECTOR, ".msg__clarify-button"))
        )
        assert {b.text for b in buttons} == {
            "How do I cancel my order?",
            "How do I cancel my subscription?",
        }
        next(b for b in buttons if b.text == "How do I cancel my subscription?").click()

        wait(visitor, 30).until(
            ec.text_to_be_present_in_element((By.ID, "messages"), "Open Account, then Subscription")
        )
        sent = visitor.find_elements(By.CSS_SELECTOR, ".msg--visitor .msg__body")
        assert [m.text for m in sent] == ["cancellation", "How do I cancel my subscription?"]
        assert not visitor.find_elements(By.CSS_SELECTOR, ".msg__clarify-button")
        errors = [e for e in visitor.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
