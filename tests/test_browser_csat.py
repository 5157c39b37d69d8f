"""In a real browser: 👍 on a bot answer, the agent closes, the widget asks for a rating, the
visitor gives 5 stars and a comment, and the rating shows in the agent's reports."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from chat.models import CsatRating
from tests.browser import browsers, console_login, open_demo_widget, wait  # noqa: F401
from tests.live import daphne_server

THUMBS_UP = ".msg--bot [data-helpful='true']"


def clicked(driver: WebDriver, css: str) -> bool:
    """Click the element if nothing covers it now (it may be re-rendered or still scrolling)."""
    try:
        driver.find_element(By.CSS_SELECTOR, css).click()
    except (ElementClickInterceptedException, StaleElementReferenceException):
        return False
    return True


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_asks_for_a_rating_at_close_and_reports_it(browsers):  # noqa: F811
    call_command("load_demo", verbosity=0)
    with daphne_server() as base:
        visitor = browsers()
        open_demo_widget(visitor, base)
        box = wait(visitor).until(ec.element_to_be_clickable((By.ID, "body")))
        box.send_keys("How long does standard shipping take?", Keys.ENTER)
        # The first answer builds the site's index and loads the embedding model: slow when
        # the machine is busy.
        thumbs_up = wait(visitor, 120).until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, THUMBS_UP))
        )
        assert thumbs_up.text == "👍"
        # The list scrolls smoothly to the new answer: click once it has stopped under the footer.
        wait(visitor).until(lambda driver: clicked(driver, THUMBS_UP))
        wait(visitor).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".msg__feedback--done"))
        )
        visitor.find_element(By.ID, "handoff").click()

        agent = browsers()
        console_login(agent, base, "alice")
        wait(agent).until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, "#queue [data-conversation-id] a"))
        ).click()
        reply = wait(agent).until(ec.element_to_be_clickable((By.ID, "reply-body")))
        reply.send_keys("Three to five business days. Anything else?", Keys.ENTER)
        wait(visitor).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg--agent[data-seq]"))
        )
        # "without rating survey" stays unticked: the survey is asked. The header re-renders
        # live (htmx) when the conversation changes, so click whichever copy is current.
        wait(agent).until(ec.presence_of_element_located((By.ID, "skip-survey")))
        wait(agent).until(lambda driver: clicked(driver, "#close-conversation"))
        wait(agent).until(ec.text_to_be_present_in_element((By.ID, "conv-header"), "Closed"))

        survey = wait(visitor).until(ec.visibility_of_element_located((By.ID, "csat")))
        assert "How would you rate this conversation?" in survey.text
        stars = visitor.find_elements(By.CSS_SELECTOR, "#csat-scale .csat__choice")
        assert [s.text for s in stars] == ["★"] * 5
        send = visitor.find_element(By.ID, "csat-send")
        assert not send.is_enabled()  # nothing chosen yet
        stars[4].click()
        assert stars[4].get_attribute("aria-pressed") == "true"
        assert len(visitor.find_elements(By.CSS_SELECTOR, ".csat__choice--on")) == 5
        visitor.find_element(By.ID, "csat-comment").send_keys("Fast and friendly")
        send.click()
        wait(visitor).until(ec.text_to_be_present_in_element((By.ID, "csat-done"), "Thank you"))
        assert not visitor.find_element(By.ID, "csat").is_displayed()

        rating = CsatRating.objects.get()
        assert (rating.score, rating.comment, rating.agent_name) == (
            5,
            "Fast and friendly",
            "Alice",
        )

        agent.get(f"{base}/console/reports/")
        csat = wait(agent).until(ec.visibility_of_element_located((By.ID, "fig-csat")))
        assert "5.00 / 5" in csat.text and "1 rating" in csat.text
        assert "1 / 0" in agent.find_element(By.ID, "fig-feedback").text
        errors = [
            e
            for e in visitor.get_log("browser") + agent.get_log("browser")
            if e["level"] == "SEVERE"
        ]
        assert errors == []
