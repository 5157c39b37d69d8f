"""The customer panel beside a conversation: who, where from, and their past conversations."""

from __future__ import annotations

import pytest

from chat.models import Conversation, Visitor
from chat.useragent import browser_summary
from tests.queueing import queued

pytestmark = pytest.mark.django_db

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("user_agent", "summary"),
    [
        (CHROME_WINDOWS, "Chrome 120 on Windows"),
        (CHROME_WINDOWS + " Edg/120.0.2210.91", "Edge 120 on Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "Safari 17 on iOS",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            "Firefox 121 on Linux",
        ),
        ("curl/8.4.0", "curl/8.4.0"),
        ("", ""),
    ],
)
def test_it_names_the_browser_in_a_few_words(user_agent, summary):
    assert browser_summary(user_agent) == summary


def test_it_shows_who_the_customer_is_and_where_they_came_from(client, site, alice, support):
    visitor = Visitor.objects.create(
        site=site, name="Ann", email="ann@example.com", language="de", user_agent=CHROME_WINDOWS
    )
    conversation = queued(site, visitor=visitor)
    Conversation.objects.filter(pk=conversation.pk).update(
        page_url="https://shop.acme.test/checkout"
    )
    client.force_login(alice.user)
    page = client.get(f"/console/c/{conversation.pk}/").content.decode()
    for fact in [
        "Ann",
        'href="mailto:ann@example.com"',
        'href="https://shop.acme.test/checkout"',
        "Chrome 120 on Windows",
        "<dd>de</dd>",
    ]:
        assert fact in page


def test_past_conversations_link_only_to_what_the_agent_may_see(
    client, site, alice, bob, support, sales
):
    visitor = Visitor.objects.create(site=site, name="Ann")
    shared = queued(site, visitor=visitor)  # no team: every Acme agent sees it
    support_only = queued(site, visitor=visitor, team=support)
    current = queued(site, visitor=visitor)
    client.force_login(bob.user)
    page = client.get(f"/console/c/{current.pk}/").content.decode()
    assert f'href="/console/c/{shared.pk}/"' in page
    assert f'href="/console/c/{support_only.pk}/"' not in page
    client.force_login(alice.user)
    page = client.get(f"/console/c/{current.pk}/").content.decode()
    assert f'href="/console/c/{shared.pk}/"' in page
    assert f'href="/console/c/{support_only.pk}/"' in page
    assert f'href="/console/c/{current.pk}/"' not in page.split("Past conversations")[1]
