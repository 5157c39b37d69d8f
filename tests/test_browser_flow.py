"""The demo page in a real browser: visitor, bot, hand-off, an agent takes over and replies."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec

from tests.browser import browsers, wait  # noqa: F401  (fixture)
from tests.live import daphne_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_carries_a_visitor_from_the_bot_to_an_agent_on_the_demo_page(browsers):  # noqa: F811
    call_command("load_demo", verbosity=0)
    with daphne_server() as base:
        visitor = browsers()
        visitor.get(f"{base}/demo/")
        wait(visitor).until(ec.element_to_be_clickable((By.ID, "helpdesk-launcher"))).click()
        wait(visitor).until(ec.frame_to_be_available_and_switch_to_it((By.ID, "helpdesk-frame")))
        box = wait(visitor).until(ec.element_to_be_clickable((By.ID, "body")))
        box.send_keys("How long does standard shipping take?", Keys.ENTER)
        answer = wait(visitor).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg--bot[data-seq]"))
        )
        assert "business days" in answer.text

        visitor.find_element(By.ID, "handoff").click()
        wait(visitor).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".msg--system[data-seq]"))
        )

        agent = browsers()
        agent.get(f"{base}/accounts/login/?next=/console/")
        agent.find_element(By.NAME, "username").send_keys("alice")
        agent.find_element(By.NAME, "password").send_keys("alice", Keys.ENTER)
        row = wait(agent).until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, "#queue [data-conversation-id] a"))
        )
        row.click()
        wait(agent).until(ec.text_to_be_present_in_element((By.ID, "transcript"), "business days"))
        reply = wait(agent).until(ec.element_to_be_clickable((By.ID, "reply-body")))
        reply.send_keys("Hi, this is Alice. Let me check that parcel for you.", Keys.ENTER)

        agent_message = wait(visitor).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg--agent[data-seq]"))
        )
        assert "Let me check that parcel" in agent_message.text

        visitor.refresh()  # history survives a reload
        wait(visitor).until(ec.element_to_be_clickable((By.ID, "helpdesk-launcher"))).click()
        wait(visitor).until(ec.frame_to_be_available_and_switch_to_it((By.ID, "helpdesk-frame")))
        wait(visitor).until(
            ec.text_to_be_present_in_element((By.ID, "messages"), "Let me check that parcel")
        )
        errors = [
            e
            for e in visitor.get_log("browser") + agent.get_log("browser")
            if e["level"] == "SEVERE"
        ]
        assert errors == []
