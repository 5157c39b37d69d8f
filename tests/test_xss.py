"""Hostile message text: a customer's markup is shown as the text it is, in the console and
the widget, server-rendered and live; only http(s)/mailto URLs become (safe) links."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from chat.models import Conversation, Site
from chat.services.messages import message_post
from chat.templatetags.helpdesk_text import linkify
from tests.browser import browsers  # noqa: F401  (fixture)

# Each would run script if it became markup: set window.__pwned or call alert.
CORPUS = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'\">",
    "<svg onload=\"window.__pwned = 'svg'\"><circle r=10 /></svg>",
    "<svg><script>window.__pwned = 'svg-script'</script></svg>",
    "<a href=\"javascript:window.__pwned = 'a'\">click me</a>",
    "javascript:alert('bare')",
    '"><img src=x onerror=alert(1)>',
    "<iframe src=\"javascript:alert('frame')\"></iframe>",
    "<details open ontoggle=\"window.__pwned = 'details'\">x</details>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(2)>",
    "&lt;img src=x onerror=alert(3)&gt; &amp; &#60;b&#62;",
    "{{ 7|add:7 }} {% now 'Y' %} ${alert(4)}",
    "[click](javascript:alert(5)) data:text/html,<script>alert(6)</script>",
    "https://evil.test/\"onmouseover=\"window.__pwned='attr'",
    "See https://acme.test/faq?q=1&x=<b>. Or mailto:help@acme.test!",
]
LINKS = {  # the payloads that hold links, and exactly the links they must give
    "https://evil.test/\"onmouseover=\"window.__pwned='attr'": ["https://evil.test/"],
    "See https://acme.test/faq?q=1&x=<b>. Or mailto:help@acme.test!": [
        "https://acme.test/faq?q=1&x=",
        "mailto:help@acme.test",
    ],
}
SCHEMES = ("http://", "https://", "mailto:")


class Bodies(HTMLParser):
    """The text and the tags inside each ``msg__body`` of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.bodies: list[dict] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += 1
            self.bodies[-1]["tags"].append((tag, dict(attrs)))
        elif ("class", "msg__body") in attrs:
            self.depth = 1
            self.bodies.append({"text": "", "tags": []})

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.bodies[-1]["text"] += data


def check_inert(bodies: list[dict]) -> None:
    """Every payload appears as its own text; the only elements are the expected safe links."""
    by_text = {body["text"]: body for body in bodies}
    for payload in CORPUS:
        assert payload in by_text, f"not shown as text: {payload!r}"
        body = by_text[payload]
        assert [tag for tag, _ in body["tags"]] == ["a"] * len(LINKS.get(payload, []))
        hrefs = [attrs["href"] for _, attrs in body["tags"]]
        assert hrefs == LINKS.get(payload, [])
        for _, attrs in body["tags"]:
            assert set(attrs) == {"href", "target", "rel"}
            assert attrs["href"].startswith(SCHEMES)
            assert (attrs["target"], attrs["rel"]) == ("_blank", "noopener nofollow")


# --- The server's filter --------------------------------------------------------------------


def test_it_escapes_every_payload_and_links_only_safe_schemes():
    parser = Bodies()
    parser.feed("".join(f'<div class="msg__body">{linkify(p)}</div>' for p in CORPUS))
    check_inert(parser.bodies)


def test_it_leaves_sentence_punctuation_and_lookalikes_out_of_links():
    assert str(linkify("Go to https://acme.test/a_(b)), now.")) == (
        'Go to <a href="https://acme.test/a_(b" target="_blank" rel="noopener nofollow">'
        "https://acme.test/a_(b</a>)), now."
    )
    for text in ["javascript://x.test/%0aalert(1)", "ftp://x.test", "https://", "http://[::1"]:
        assert "<a" not in str(linkify(text)), text


# --- Server-rendered console page -----------------------------------------------------------


@pytest.mark.django_db
def test_it_renders_the_corpus_inert_in_the_console_transcript(client, site, visitor_a, alice):
    conversation = Conversation.objects.create(site=site, visitor=visitor_a, status="waiting")
    for payload in CORPUS:
        message_post(conversation=conversation, author="visitor", body=payload)
    client.force_login(alice.user)
    page = client.get(reverse("console:conversation", args=[conversation.pk])).content.decode()
    parser = Bodies()
    parser.feed(page)
    check_inert(parser.bodies)


# --- In real browsers: server-rendered, live, and replayed after a reload ------------------

INSPECT = """
return {
  pwned: window.__pwned === undefined ? null : String(window.__pwned),
  bodies: Array.from(document.querySelectorAll(arguments[0] + " .msg__body")).map((b) => ({
    text: b.textContent,
    tags: Array.from(b.querySelectorAll("*")).map((e) => [
      e.tagName.toLowerCase(),
      Object.fromEntries(e.getAttributeNames().map((n) => [n, e.getAttribute(n)])),
    ]),
  })),
};
"""


def inspect(driver, container: str) -> list[dict]:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
        raise AssertionError(f"an alert opened: {alert.text!r}")
    except NoAlertPresentException:
        pass
    seen = driver.execute_script(INSPECT, container)
    assert seen["pwned"] is None, f"a payload ran: {seen['pwned']}"
    return seen["bodies"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_corpus_inert_in_the_widget_and_the_console(browsers, support):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    from tests.browser import console_login, wait
    from tests.conftest import make_agent
    from tests.live import daphne_server

    site: Site = support.site
    site.bot_enabled = False
    site.save()
    make_agent("agent", "Alice", [support])
    half = len(CORPUS) // 2
    with daphne_server() as base:
        visitor = browsers()
        visitor.get(f"{base}/widget/{site.key}/")
        box = wait(visitor).until(ec.element_to_be_clickable((By.ID, "body")))
        for payload in CORPUS[:half]:  # rendered by the widget as it sends them
            box.send_keys(payload, Keys.ENTER)
        wait(visitor).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg--visitor[data-seq]")) == half
        )
        conversation = Conversation.objects.get()

        agent = browsers()
        console_login(agent, base, "agent", f"/console/c/{conversation.pk}/")
        wait(agent).until(ec.presence_of_element_located((By.ID, "transcript")))
        wait(agent).until(lambda d: d.execute_script("return !!window.HelpdeskText"))
        for payload in CORPUS[half:]:  # live: the console's socket gets message.created
            box.send_keys(payload, Keys.ENTER)
        reply = wait(agent).until(ec.element_to_be_clickable((By.ID, "reply-body")))
        reply.send_keys(CORPUS[0], Keys.ENTER)  # an agent's text is not trusted either
        expected = len(CORPUS) + 1
        wait(agent, 20).until(
            lambda d: (
                len(d.find_elements(By.CSS_SELECTOR, "#transcript .msg[data-seq]")) >= expected
            )
        )
        check_inert(inspect(agent, "#transcript"))
        wait(visitor).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".msg--agent[data-seq]"))
        )
        check_inert(inspect(visitor, "#messages"))

        agent.refresh()  # the same transcript, rendered by the server
        wait(agent).until(ec.presence_of_element_located((By.ID, "transcript")))
        check_inert(inspect(agent, "#transcript"))
        visitor.refresh()  # and the widget's history replay
        wait(visitor).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages .msg[data-seq]")) >= expected
        )
        check_inert(inspect(visitor, "#messages"))

        link = visitor.find_element(By.CSS_SELECTOR, '#messages a[href^="mailto:"]')
        assert link.get_attribute("rel") == "noopener nofollow"
        violations = [
            e
            for e in visitor.get_log("browser") + agent.get_log("browser")
            if e["level"] == "SEVERE"
        ]
        assert violations == []
