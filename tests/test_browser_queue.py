"""What a waiting customer sees in a real browser: their place in line, moving up live."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from chat.models import Agent, Conversation
from tests.browser import browsers, wait  # noqa: F401  (fixture)
from tests.live import daphne_server
from tests.test_browser_console import (
    customer_asks_for_a_person,
    demo_for_people,
    severe_errors,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def place_line(driver: WebDriver) -> str:
    return driver.find_element(By.ID, "status").text


def test_a_second_waiting_customer_sees_their_place_move_up_when_the_first_is_taken(
    browsers,  # noqa: F811
):
    demo_for_people()
    Agent.objects.filter(display_name="Alice").update(status=Agent.Status.ONLINE)
    with daphne_server() as base:
        alice = browsers()
        sign_in(alice, base, "alice")  # someone is online: the widget shows places, not e-mail

        first, second = browsers(), browsers()
        customer_asks_for_a_person(first, base, "Where is my parcel?")
        wait(first).until(lambda d: "number 1 in line" in place_line(d))
        customer_asks_for_a_person(second, base, "Can I change my delivery address?")
        wait(second).until(lambda d: "number 2 in line" in place_line(d))

        # Alice takes the first customer's conversation in her console.
        taken = Conversation.objects.filter(status="waiting").order_by("queued_at").first()
        assert taken is not None
        alice.get(f"{base}/console/c/{taken.pk}/")
        wait(alice).until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, '[data-action="take"]'))
        ).click()

        # The second customer moves up without reloading; the first is with Alice.
        wait(second).until(lambda d: "number 1 in line" in place_line(d))
        wait(first).until(lambda d: "number" not in place_line(d))
        assert "in line" not in place_line(first)
        assert severe_errors(alice, first, second) == []
