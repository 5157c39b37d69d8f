"""The supervisor view: per team, live counts of waiting, active, agents online, longest wait."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Agent, Conversation
from chat.services.lists import supervisor_counts
from tests.queueing import at_console, queued

pytestmark = pytest.mark.django_db


def test_it_counts_per_team(site, support, sales, alice, bob):
    Agent.objects.filter(pk=alice.pk).update(is_supervisor=True)
    at_console(alice)
    at_console(bob, status="away")
    queued(site, team=support, minutes_ago=7)
    queued(site, team=support, minutes_ago=2)
    queued(site, minutes_ago=30)  # no team
    active = queued(site, team=sales)
    Conversation.objects.filter(pk=active.pk).update(status="assigned", assignee=bob)
    closed = queued(site, team=sales, minutes_ago=90)
    Conversation.objects.filter(pk=closed.pk).update(status="closed")

    counts = {(t.site_name, t.name): t for t in supervisor_counts(user=alice.user).teams}
    support_row, sales_row = counts[("Acme", "Support")], counts[("Acme", "Sales")]
    assert (support_row.waiting, support_row.active, support_row.agents_online) == (2, 0, 1)
    assert timedelta(minutes=7) <= support_row.longest_wait < timedelta(minutes=8)
    assert (sales_row.waiting, sales_row.active, sales_row.agents_online) == (0, 1, 0)
    assert sales_row.longest_wait is None  # the closed one does not wait
    no_team = counts[("Acme", "")]
    assert no_team.team_id is None and no_team.waiting == 1
    assert no_team.longest_wait_display.startswith("30 min")


def test_an_agent_without_the_flag_counts_only_what_they_may_see(site, support, sales, bob):
    active = queued(site, team=support)
    Conversation.objects.filter(pk=active.pk).update(status="waiting")
    rows = {t.name: t for t in supervisor_counts(user=bob.user).teams}
    assert rows["Support"].waiting == 0  # Support's own work is hidden from Bob (Sales)


def test_an_agent_whose_console_went_silent_is_not_online(site, support, alice):
    at_console(alice, seen=timezone.now() - timedelta(minutes=5))
    (support_row,) = [t for t in supervisor_counts(user=alice.user).teams if t.team_id]
    assert support_row.agents_online == 0


def test_only_staff_and_supervisors_open_it_and_each_sees_their_own_sites(
    client, site, other_site, support, alice, charlie, admin
):
    queued(site, team=support)
    client.force_login(alice.user)
    assert client.get("/console/supervisor/").status_code == 403
    Agent.objects.filter(pk=alice.pk).update(is_supervisor=True)
    page = client.get("/console/supervisor/").content.decode()
    assert "Supervisor" in page and "Support" in page and "Globex" not in page
    assert re.search(r'data-count="waiting">1<', page)

    Agent.objects.filter(pk=charlie.pk).update(is_supervisor=True)
    client.force_login(charlie.user)
    page = client.get("/console/supervisor/").content.decode()
    assert "Globex" in page and "Acme" not in page

    client.force_login(admin)
    fragment = client.get("/console/supervisor/", headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="supervisor"')
    assert "Acme" in fragment and "Globex" in fragment
