"""The console in real browsers: routing between two agents, transfer, note privacy,
canned replies and keyboard shortcuts. Two agents and customers, each their own Chromium."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from chat.models import Agent, CannedReply, Conversation, ConversationView, Site, Visitor
from tests.browser import browsers, wait  # noqa: F401  (fixture)
from tests.live import daphne_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOTE = "Internal: this customer was refunded twice already"


def sign_in(driver: WebDriver, base: str, username: str) -> None:
    driver.get(f"{base}/accounts/login/?next=/console/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(username, Keys.ENTER)
    wait(driver).until(ec.presence_of_element_located((By.ID, "queue")))
    # The console socket is up (and the agent present) once the status control is live.
    wait(driver).until(lambda d: d.execute_script("return !!window.htmx"))


def demo_for_people() -> None:
    """The demo site with its bot off: a customer's first message goes to the queue."""
    call_command("load_demo", verbosity=0)
    Site.objects.filter(key="acme-demo").update(bot_enabled=False)


def customer_asks_for_a_person(driver: WebDriver, base: str, text: str) -> None:
    driver.get(f"{base}/demo/")
    wait(driver).until(ec.element_to_be_clickable((By.ID, "helpdesk-launcher"))).click()
    wait(driver).until(ec.frame_to_be_available_and_switch_to_it((By.ID, "helpdesk-frame")))
    box = wait(driver).until(ec.element_to_be_clickable((By.ID, "body")))
    box.send_keys(text, Keys.ENTER)
    wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".msg--visitor[data-seq]")))


def rows(driver: WebDriver, panel: str) -> list[str]:
    return [
        row.get_attribute("data-conversation-id") or ""
        for row in driver.find_elements(
            By.CSS_SELECTOR,
            f"#queue section[aria-labelledby='{panel}-title'] [data-conversation-id]",
        )
    ]


def severe_errors(*drivers: WebDriver) -> list[dict]:
    return [e for d in drivers for e in d.get_log("browser") if e["level"] == "SEVERE"]


def busy(agent: Agent, n: int) -> None:
    """Give ``agent`` ``n`` conversations already (routing weighs free capacity)."""
    site = Site.objects.get(key="acme-demo")
    for i in range(n):
        Conversation.objects.create(
            site=site,
            visitor=Visitor.objects.create(site=site, name=f"Earlier {i}"),
            status="assigned",
            assignee=agent,
        )


def test_automatic_routing_gives_the_customer_to_the_freer_agent_and_never_to_both(browsers):  # noqa: F811
    demo_for_people()
    Site.objects.filter(key="acme-demo").update(routing="automatic")
    Agent.objects.filter(display_name__in=["Alice", "Bob"]).update(status="online", capacity=3)
    busy(Agent.objects.get(display_name="Bob"), 2)  # Alice has more room: she is the one
    with daphne_server() as base:
        alice, bob = browsers(), browsers()
        sign_in(alice, base, "alice")
        sign_in(bob, base, "bob")
        bob_before = set(rows(bob, "mine"))

        customer = browsers()
        customer_asks_for_a_person(customer, base, "My parcel is lost, I need a person")

        wait(alice, 15).until(lambda d: len(rows(d, "mine")) == 1)
        (conversation_id,) = rows(alice, "mine")
        conversation = Conversation.objects.get(pk=conversation_id)
        assert conversation.assignee and conversation.assignee.display_name == "Alice"
        wait(customer).until(ec.text_to_be_present_in_element((By.ID, "messages"), "Alice joined"))
        # Bob never sees it as takeable: not in his waiting list, not in his own list, and
        # its page offers him no Take button.
        bob.refresh()
        wait(bob).until(ec.presence_of_element_located((By.ID, "queue")))
        assert conversation_id not in rows(bob, "waiting")
        assert set(rows(bob, "mine")) == bob_before
        bob.get(f"{base}/console/c/{conversation_id}/")
        header = wait(bob).until(ec.presence_of_element_located((By.ID, "conv-header")))
        assert header.get_attribute("data-assignee") == "Alice"
        assert not bob.find_elements(By.CSS_SELECTOR, '[data-action="take"]')
        assert severe_errors(alice, bob, customer) == []


def test_a_transfer_moves_the_conversation_between_two_agents_browsers(browsers):  # noqa: F811
    demo_for_people()
    with daphne_server() as base:
        customer = browsers()
        customer_asks_for_a_person(customer, base, "I want to order 500 mugs")
        conversation = Conversation.objects.get(status="waiting")
        from chat.services.conversations import conversation_take

        conversation_take(conversation=conversation, agent=Agent.objects.get(display_name="Alice"))

        alice, bob = browsers(), browsers()
        sign_in(bob, base, "bob")
        sign_in(alice, base, "alice")
        alice.get(f"{base}/console/c/{conversation.pk}/")
        wait(alice).until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, '[data-action="transfer"]'))
        ).click()
        Select(alice.find_element(By.ID, "transfer-target")).select_by_visible_text("Bob (Offline)")
        alice.find_element(By.ID, "transfer-note").send_keys("Bulk order, Sales please")
        alice.find_element(By.CSS_SELECTOR, ".transfer__form button[type=submit]").click()

        # Alice is back on her list, without it; Bob is told and has it in his, live.
        wait(alice).until(lambda d: d.current_url.rstrip("/").endswith("/console"))
        wait(alice).until(ec.presence_of_element_located((By.ID, "queue")))
        assert str(conversation.pk) not in rows(alice, "mine")
        toast = wait(bob).until(ec.visibility_of_element_located((By.ID, "toast")))
        assert "Bulk order, Sales please" in toast.text
        wait(bob).until(lambda d: str(conversation.pk) in rows(d, "mine"))
        row = f'#queue [data-conversation-id="{conversation.pk}"]'
        assert bob.find_element(By.CSS_SELECTOR, row).get_attribute("data-unread") == "1"

        bob.get(f"{base}/console/c/{conversation.pk}/")
        transcript = wait(bob).until(ec.presence_of_element_located((By.ID, "transcript")))
        assert "Alice transferred the conversation to Bob." in transcript.text
        note = bob.find_element(By.CSS_SELECTOR, ".msg--note")
        assert "Bulk order, Sales please" in note.text
        # Having it in front of him read the customer's message.
        seen_by_bob = ConversationView.objects.filter(
            agent__display_name="Bob", conversation=conversation, seen_seq__gt=0
        )
        wait(bob).until(lambda d: seen_by_bob.exists())
        bob.get(f"{base}/console/")
        badge = wait(bob).until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
        assert badge.get_attribute("data-unread") == "0"
        wait(customer).until(
            ec.text_to_be_present_in_element((By.ID, "messages"), "transferred the conversation")
        )
        assert "Bulk order" not in customer.find_element(By.ID, "messages").text
        assert severe_errors(alice, bob, customer) == []


def test_an_internal_note_never_reaches_the_widget(browsers):  # noqa: F811
    demo_for_people()
    with daphne_server() as base:
        customer = browsers()
        customer_asks_for_a_person(customer, base, "Where is my refund?")
        conversation = Conversation.objects.get(status="waiting")
        alice = browsers()
        sign_in(alice, base, "alice")
        alice.get(f"{base}/console/c/{conversation.pk}/")
        box = wait(alice).until(ec.element_to_be_clickable((By.ID, "reply-body")))
        alice.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="note"]').click()
        box.send_keys(NOTE, Keys.ENTER)
        wait(alice).until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".msg--note[data-note-id]"), NOTE)
        )
        alice.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="reply"]').click()
        box.send_keys("Your refund is on its way.", Keys.ENTER)

        messages = customer.find_element(By.ID, "messages")
        wait(customer).until(
            ec.text_to_be_present_in_element((By.ID, "messages"), "Your refund is on its way.")
        )
        assert "refunded twice" not in messages.text
        customer.refresh()  # the history sync on a reload does not bring it either
        wait(customer).until(ec.element_to_be_clickable((By.ID, "helpdesk-launcher"))).click()
        wait(customer).until(ec.frame_to_be_available_and_switch_to_it((By.ID, "helpdesk-frame")))
        wait(customer).until(
            ec.text_to_be_present_in_element((By.ID, "messages"), "Your refund is on its way.")
        )
        assert "refunded twice" not in customer.page_source
        # The note survives a reload of the console, in its place.
        alice.refresh()
        transcript = wait(alice).until(ec.presence_of_element_located((By.ID, "transcript")))
        assert transcript.text.index(NOTE) < transcript.text.index("Your refund is on its way.")
        assert severe_errors(alice, customer) == []


def test_canned_replies_and_keyboard_shortcuts(browsers):  # noqa: F811
    demo_for_people()
    site = Site.objects.get(key="acme-demo")
    CannedReply.objects.create(site=site, shortcut="hello", body="Hi {name}, {agent} here!")
    CannedReply.objects.create(site=site, shortcut="help", body="How can I help?")
    visitor = Visitor.objects.create(site=site, name="Ann")
    conversation = Conversation.objects.create(
        site=site, visitor=visitor, status="waiting", queued_at="2026-01-01T00:00:00Z"
    )
    next_in_line = Conversation.objects.create(
        site=site,
        visitor=Visitor.objects.create(site=site, name="Ben"),
        status="waiting",
        queued_at="2026-01-02T00:00:00Z",
    )
    with daphne_server() as base:
        alice = browsers()
        sign_in(alice, base, "alice")
        body = alice.find_element(By.TAG_NAME, "body")
        body.send_keys("?")
        assert (
            wait(alice).until(ec.visibility_of_element_located((By.ID, "shortcuts"))).is_displayed()
        )
        body.send_keys(Keys.ESCAPE)
        wait(alice).until(ec.invisibility_of_element_located((By.ID, "shortcuts")))
        body.send_keys("j")
        focused = alice.switch_to.active_element
        assert focused.get_attribute("href").endswith(f"/console/c/{conversation.pk}/")
        focused.send_keys(Keys.ENTER)

        box = wait(alice).until(ec.element_to_be_clickable((By.ID, "reply-body")))
        alice.find_element(By.TAG_NAME, "body").send_keys("t")  # take
        # Read in the page: htmx may be swapping the header while we look.
        wait(alice).until(
            lambda d: (
                d.execute_script("return document.getElementById('conv-header').dataset.assignee")
                == "Alice"
            )
        )
        box.click()
        box.send_keys("/he")
        options = (
            wait(alice)
            .until(ec.visibility_of_element_located((By.ID, "canned-list")))
            .find_elements(By.CSS_SELECTOR, "[role=option]")
        )
        assert [o.get_attribute("data-shortcut") for o in options] == ["hello", "help"]
        box.send_keys(Keys.TAB)
        assert box.get_property("value") == "Hi Ann, Alice here!"
        box.send_keys(Keys.CONTROL, Keys.ENTER)
        wait(alice).until(
            ec.text_to_be_present_in_element(
                (By.CSS_SELECTOR, ".msg--agent[data-seq]"), "Hi Ann, Alice here!"
            )
        )
        assert conversation.messages.filter(body="Hi Ann, Alice here!", author="agent").exists()
        box.send_keys(Keys.ESCAPE)
        alice.find_element(By.TAG_NAME, "body").send_keys("c")  # close
        wait(alice).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, '[data-action="reopen"]'))
        )
        conversation.refresh_from_db()
        assert conversation.status == "closed"
        # j on a conversation opens the next one of the list it was opened from.
        alice.find_element(By.TAG_NAME, "body").send_keys("j")
        wait(alice).until(lambda d: d.current_url.endswith(f"/console/c/{next_in_line.pk}/"))
        assert severe_errors(alice) == []
