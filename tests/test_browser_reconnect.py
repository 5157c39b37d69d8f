"""The server dies under a live widget and a live console: both say "Reconnecting…", keep what
was typed meanwhile, and deliver it exactly once when the server is back on the same port."""

from __future__ import annotations

import pytest
from django.db import connection
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from chat.models import Conversation, Message
from tests.browser import browsers, console_login, wait  # noqa: F401  (fixture)
from tests.faults import child_env, own_redis
from tests.live import DaphneProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Both clients back off exponentially (the console up to 30 s); a restart may land late in it.
BACK_WITHIN = 45


def banner_says_reconnecting(element_id: str):
    def check(driver: WebDriver) -> bool:
        banner = driver.find_element(By.ID, element_id)
        return banner.is_displayed() and "Reconnecting" in banner.text

    return check


def texts(driver: WebDriver, selector: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]


def test_it_reconnects_and_delivers_what_was_typed_during_the_outage_once(
    site,
    alice,
    browsers,  # noqa: F811
):
    server = DaphneProcess(child_env()).start()
    try:
        visitor = browsers()
        visitor.get(f"{server.base}/widget/{site.key}/")
        box = wait(visitor).until(ec.element_to_be_clickable((By.ID, "body")))
        box.send_keys("How many days for delivery?", Keys.ENTER)
        wait(visitor, 30).until(  # the first answer builds the retrieval index
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".msg--bot[data-seq]"), "business")
        )
        conversation_id = visitor.execute_script("return window.HelpdeskWidget.conversationId")

        agent = browsers()
        console_login(agent, server.base, "alice", f"/console/c/{conversation_id}/")
        reply = wait(agent).until(ec.element_to_be_clickable((By.ID, "reply-body")))
        reply.send_keys("Hi, Alice here.", Keys.ENTER)
        wait(visitor).until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".msg--agent[data-seq]"), "Alice")
        )

        server.kill()
        wait(visitor).until(banner_says_reconnecting("banner"))
        wait(agent).until(banner_says_reconnecting("connection-banner"))
        box.send_keys("Is it shipped yet?", Keys.ENTER)
        reply.send_keys("Let me check the parcel.", Keys.ENTER)
        assert texts(visitor, ".msg--pending .msg__body") == ["Is it shipped yet?"]

        server.start()
        wait(visitor, BACK_WITHIN).until(
            lambda d: "Let me check the parcel." in texts(d, ".msg--agent[data-seq] .msg__body")
        )
        wait(visitor, BACK_WITHIN).until(ec.invisibility_of_element_located((By.ID, "banner")))
        wait(agent, BACK_WITHIN).until(
            ec.invisibility_of_element_located((By.ID, "connection-banner"))
        )
        wait(agent, BACK_WITHIN).until(
            ec.text_to_be_present_in_element((By.ID, "transcript"), "Is it shipped yet?")
        )
        wait(visitor).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".msg--pending"))
        wait(agent).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".msg--pending"))
    finally:
        server.stop()
    connection.close()

    for body in ["Is it shipped yet?", "Let me check the parcel."]:
        assert Message.objects.filter(conversation_id=conversation_id, body=body).count() == 1
        assert texts(visitor, "#messages .msg__body").count(body) == 1
        assert texts(agent, "#transcript .msg__body").count(body) == 1
    # Both hold the whole conversation, in seq order, with nothing missing.
    seqs = [
        int(s)
        for s in visitor.execute_script(
            "return [...document.querySelectorAll('#messages [data-seq]')].map(e => e.dataset.seq)"
        )
    ]
    stored = list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    assert seqs == stored


def stored_unheard(conversation_id: int, alice, body: str) -> None:
    """What a server that stopped between the commit and the broadcast leaves: a message
    stored under the next seq that no socket has heard of."""
    taken = Conversation.objects.seq_take(conversation_id)
    assert taken is not None
    Message.objects.create(
        conversation_id=conversation_id,
        seq=taken.last_seq,
        author=Message.Author.AGENT,
        agent=alice,
        body=body,
    )


def seqs_on_screen(driver: WebDriver, container: str) -> list[int]:
    script = (
        f"return [...document.querySelectorAll('{container} [data-seq]')].map(e => e.dataset.seq)"
    )
    return [int(seq) for seq in driver.execute_script(script)]


COUNT_SOCKETS = """
window.socketsOpened = 0;
const Native = window.WebSocket;
window.WebSocket = function (...args) { window.socketsOpened += 1; return new Native(...args); };
Object.assign(window.WebSocket, Native);
"""


def counting_sockets(driver: WebDriver) -> WebDriver:
    """Every page this browser opens counts the sockets it opens (``window.socketsOpened``)."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_SOCKETS})
    return driver


def test_it_fills_in_a_message_whose_broadcast_was_lost_without_a_reconnect(
    site,
    alice,
    browsers,  # noqa: F811
):
    site.bot_enabled = False  # straight to the queue: no bot in the way
    site.save(update_fields=["bot_enabled"])
    server = DaphneProcess(child_env()).start()
    try:
        visitor = counting_sockets(browsers())
        visitor.get(f"{server.base}/widget/{site.key}/")
        box = wait(visitor).until(ec.element_to_be_clickable((By.ID, "body")))
        box.send_keys("Hello?", Keys.ENTER)
        wait(visitor).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".msg--visitor[data-seq]"))
        )
        conversation_id = visitor.execute_script("return window.HelpdeskWidget.conversationId")

        agent = counting_sockets(browsers())
        console_login(agent, server.base, "alice", f"/console/c/{conversation_id}/")
        reply = wait(agent).until(ec.element_to_be_clickable((By.ID, "reply-body")))
        reply.send_keys("Hi, Alice here.", Keys.ENTER)
        wait(visitor).until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".msg--agent[data-seq]"), "Alice")
        )
        wait(agent).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".msg--pending"))

        stored_unheard(conversation_id, alice, "Your parcel left the depot today.")
        reply.send_keys("Anything else?", Keys.ENTER)  # the next seq: both sockets see the hole

        for driver, transcript in [(visitor, "#messages"), (agent, "#transcript")]:
            wait(driver, 15).until(
                lambda d, t=transcript: (
                    "Your parcel left the depot today." in d.find_element(By.CSS_SELECTOR, t).text
                )
            )
        # Filled on the sockets they had: neither page reconnected.
        assert visitor.execute_script("return window.socketsOpened") == 1
        assert agent.execute_script("return window.socketsOpened") == 1
    finally:
        server.stop()
    connection.close()

    stored = list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    assert seqs_on_screen(visitor, "#messages") == stored
    assert seqs_on_screen(agent, "#transcript") == stored


def test_it_tells_the_visitor_the_bot_is_slow_and_offers_a_person(site, browsers):  # noqa: F811
    with own_redis() as redis:
        env = child_env(REDIS_URL=redis.url, CELERY_EAGER="false", HELPDESK_BOT_SLOW_SECONDS="1")
        server = DaphneProcess(env).start()  # and no worker: the bot never answers
        try:
            visitor = browsers()
            visitor.get(f"{server.base}/widget/{site.key}/")
            box = wait(visitor).until(ec.element_to_be_clickable((By.ID, "body")))
            box.send_keys("How many days for delivery?", Keys.ENTER)
            notice = wait(visitor).until(ec.visibility_of_element_located((By.ID, "notice")))
            assert "taking longer than usual" in notice.text
            assert texts(visitor, ".msg--bot") == []
            wait(visitor).until(ec.element_to_be_clickable((By.ID, "handoff"))).click()
            wait(visitor).until(
                ec.presence_of_element_located((By.CSS_SELECTOR, ".msg--system[data-seq]"))
            )
            wait(visitor).until(ec.invisibility_of_element_located((By.ID, "notice")))
        finally:
            server.stop()
