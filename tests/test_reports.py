"""Reports: figures on a small dataset whose answers are worked out by hand below."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import Client as DjangoClient
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, CsatRating, Message, Site, Team, Visitor
from chat.services.reports import report_build

pytestmark = pytest.mark.django_db

RANGE = {"start": "2026-11-02", "end": "2026-11-08"}  # Monday to Sunday


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def conversation(site: Site, visitor: Visitor, created: datetime, **fields) -> Conversation:  # type: ignore[no-untyped-def]
    row = Conversation.objects.create(site=site, visitor=visitor, **fields)
    Conversation.objects.filter(pk=row.pk).update(created_at=created)  # auto_now_add otherwise
    return row


def bot_message(row: Conversation, seq: int, helpful: bool | None) -> None:
    Message.objects.create(
        conversation=row, seq=seq, author=Message.Author.BOT, body="An answer", helpful=helpful
    )


def rating(row: Conversation, agent, team: Team, score: int | None) -> None:  # type: ignore[no-untyped-def]
    CsatRating.objects.create(
        conversation=row,
        site=row.site,
        visitor=row.visitor,
        agent=agent,
        agent_name=agent.display_name if agent else "",
        team=team,
        team_name=team.name if team else "",
        resolved_by="human" if agent else "bot",
        scale="stars",
        question="How was it?",
        requested_at=row.closed_at or at(8, 0),
        score=score,
        rated_at=at(8, 0) if score else None,
    )


@pytest.fixture
def dataset(site, other_site, visitor_a, alice, bob, support, sales, settings):  # type: ignore[no-untyped-def]
    """Five Acme conversations in the week, one after it, one of Globex.

    c1 Mon 10:00 bot only, closed 10:05                      → bot resolved, resolution 300 s
    c2 Mon 10:30 Support, unsure → queued 10:31, Alice 10:33, replied 10:34, closed 10:50
                                                             → wait 120, first reply 180, res 1200
    c3 Tue 14:00 Sales, asked for a person → queued 14:00, Bob 14:10, replied 14:12, closed 15:00
                                                             → wait 600, first reply 720, res 3600
    c4 Tue 14:20 not helpful → queued 14:21, nobody came, closed 14:40 → abandoned, res 1200
    c5 Wed 09:00 still with the bot.
    """
    settings.TIME_ZONE = "UTC"
    closed = Conversation.Status.CLOSED
    c1 = conversation(site, visitor_a, at(2, 10), status=closed, closed_at=at(2, 10, 5))
    c2 = conversation(
        site,
        visitor_a,
        at(2, 10, 30),
        team=support,
        status=closed,
        handoff_reason="low_confidence",
        queued_at=at(2, 10, 31),
        assignee=alice,
        assigned_at=at(2, 10, 33),
        first_response_at=at(2, 10, 34),
        closed_at=at(2, 10, 50),
    )
    c3 = conversation(
        site,
        visitor_a,
        at(3, 14),
        team=sales,
        status=closed,
        handoff_reason="asked_for_human",
        queued_at=at(3, 14),
        assignee=bob,
        assigned_at=at(3, 14, 10),
        first_response_at=at(3, 14, 12),
        closed_at=at(3, 15),
    )
    conversation(
        site,
        visitor_a,
        at(3, 14, 20),
        status=closed,
        handoff_reason="unhelpful",
        queued_at=at(3, 14, 21),
        closed_at=at(3, 14, 40),
    )
    c5 = conversation(site, visitor_a, at(4, 9))
    conversation(site, visitor_a, at(10, 9), status=closed, closed_at=at(10, 9, 1))  # after
    globex = Visitor.objects.create(site=other_site)
    c7 = conversation(other_site, globex, at(4, 11), status=closed, closed_at=at(4, 11, 1))
    bot_message(c1, 2, True)
    bot_message(c2, 2, False)
    bot_message(c5, 2, True)
    bot_message(c5, 4, None)  # not rated
    bot_message(c7, 2, False)  # Globex's
    rating(c1, None, None, None)  # asked, never answered: not counted
    rating(c2, alice, support, 5)
    rating(c3, bob, sales, 3)
    return {"c2": c2, "c3": c3}


def acme_by_agent(site: Site):  # type: ignore[no-untyped-def]
    return report_build(
        conversations=Conversation.objects.all(),
        start=datetime(2026, 11, 2).date(),
        end=datetime(2026, 11, 8).date(),
        site_id=site.pk,
        group_by="agent",
    )


def report_page(user, **params):  # type: ignore[no-untyped-def]
    browser = DjangoClient()
    browser.force_login(user)
    return browser.get("/console/reports/", {**RANGE, **params})


def test_it_computes_every_figure_of_the_week(dataset, admin, site):
    report = acme_by_agent(site)
    t = report.total
    assert (t.conversations, t.closed, t.bot_resolved, t.handed_off) == (5, 4, 1, 3)
    assert t.bot_resolution_rate == 0.25 and t.handoff_rate == 0.6
    # first reply 180, 720: median 450, p90 = 180 + 0.9 × 540
    assert t.duration("first_response").p50 == pytest.approx(450)
    assert t.duration("first_response").p90 == pytest.approx(666)
    # resolution 300, 1200, 1200, 3600: median 1200, p90 at rank 2.7 = 1200 + 0.7 × 2400
    assert t.duration("resolution").p50 == pytest.approx(1200)
    assert t.duration("resolution").p90 == pytest.approx(2880)
    # queue wait 120, 600: median 360, p90 = 120 + 0.9 × 480
    assert t.duration("queue_wait").p50 == pytest.approx(360)
    assert t.duration("queue_wait").p90 == pytest.approx(552)
    assert (t.queued, t.abandoned) == (3, 1)
    assert (t.csat_count, t.csat_average, t.csat_satisfied_rate) == (2, 4.0, 0.5)
    assert report.csat_distribution == [(1, 0), (2, 0), (3, 1), (4, 0), (5, 1)]
    assert (report.helpful, report.unhelpful) == (2, 1)
    assert sorted(report.handoff_reasons) == [
        ("asked_for_human", 1),
        ("low_confidence", 1),
        ("unhelpful", 1),
    ]
    busy = {(d, h): n for d, day in enumerate(report.hours) for h, n in enumerate(day) if n}
    assert busy == {(0, 10): 2, (1, 14): 2, (2, 9): 1}  # Mon 10h, Tue 14h, Wed 9h
    assert [n for _day, n in report.daily] == [2, 2, 1]

    by_agent = {g.label: g for g in report.groups}
    assert set(by_agent) == {"Alice", "Bob", "None"}
    alice_row, bob_row = by_agent["Alice"], by_agent["Bob"]
    assert (alice_row.conversations, alice_row.csat_average) == (1, 5.0)
    assert alice_row.duration("first_response").p50 == pytest.approx(180)
    assert (bob_row.conversations, bob_row.csat_average) == (1, 3.0)
    assert bob_row.duration("queue_wait").p90 == pytest.approx(600)
    assert by_agent["None"].conversations == 3 and by_agent["None"].csat_count == 0


def test_it_keeps_a_rating_with_the_agent_of_the_close_after_reassignment(dataset, bob, site):
    Conversation.objects.filter(pk=dataset["c2"].pk).update(assignee=bob)
    report = acme_by_agent(site)
    by_agent = {g.label: g for g in report.groups}
    assert by_agent["Bob"].conversations == 2  # the conversations moved...
    assert (by_agent["Alice"].csat_count, by_agent["Alice"].csat_average) == (1, 5.0)  # ...not it
    assert (by_agent["Bob"].csat_count, by_agent["Bob"].csat_average) == (1, 3.0)


def test_it_renders_the_page_with_charts_and_definitions(dataset, admin, site):
    response = report_page(admin, site=site.pk, by="team")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="fig-conversations"' in page and 'data-value="5"' in page
    assert page.count("<svg") == 4
    assert "never reached a person" in page  # a definition next to the figure
    assert "4.00 / 5" in page and "50% satisfied" in page
    assert "7 min 30 s" in page  # the median first response, 450 s
    assert "Support" in page and "Sales" in page


def test_it_lets_staff_see_every_site(dataset, admin):
    response = report_page(admin)
    assert response.context["report"].total.conversations == 6  # Acme's five and Globex's
    assert response.context["report"].unhelpful == 2


def test_it_limits_an_agent_to_their_sites_and_teams(dataset, alice):
    report = report_page(alice.user).context["report"]
    # Alice (Support) sees c1, c2, c4, c5: Sales' c3 and Globex are not hers.
    assert report.total.conversations == 4
    assert (report.total.csat_count, report.total.csat_average) == (1, 5.0)
    assert {g.label for g in report.groups} == {"Acme"}


def test_it_shows_charlie_nothing_of_acme(dataset, charlie, site, support):
    response = report_page(charlie.user)
    assert response.status_code == 200
    report = response.context["report"]
    # Only his own site's conversation (Globex's), none of Acme's five.
    assert report.total.conversations == 1 and report.total.csat_count == 0
    assert (report.helpful, report.unhelpful) == (0, 1)
    assert [g.label for g in report.groups] == ["Globex"]
    assert "Acme" not in response.content.decode()
    assert report_page(charlie.user, site=site.pk).status_code == 400  # not a choice he has
    assert report_page(charlie.user, team=support.pk).status_code == 400
    browser = DjangoClient()
    browser.force_login(charlie.user)
    exported = browser.get("/console/reports/export.csv", {**RANGE, "by": "agent"})
    assert "Alice" not in exported.content.decode() and "Acme" not in exported.content.decode()


def test_it_refuses_visitors_and_bad_ranges(dataset, admin):
    assert DjangoClient().get("/console/reports/").status_code == 302  # to the sign-in page
    backwards = report_page(admin, start="2026-11-08", end="2026-11-02")
    assert backwards.status_code == 400
    assert "start date is after the end date" in backwards.content.decode()
    assert report_page(admin, start="not a date").status_code == 400


def test_it_exports_the_table_as_csv(dataset, admin, site):
    browser = DjangoClient()
    browser.force_login(admin)
    response = browser.get("/console/reports/export.csv", {**RANGE, "site": site.pk, "by": "team"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    header = rows[1]
    table = {row[0]: dict(zip(header, row, strict=True)) for row in rows[2:6]}
    assert set(table) == {"Sales", "Support", "None", "All"}
    everything = table["All"]
    assert everything["conversations"] == "5" and everything["bot_resolution_rate"] == "0.25"
    assert everything["first_response_p50_s"] == "450.0"
    assert everything["resolution_p90_s"] == "2880.0"
    assert everything["csat_average"] == "4.0" and everything["csat_satisfied_rate"] == "0.5"
    assert table["Support"]["csat_average"] == "5.0" and table["Sales"]["abandoned"] == "0"
    assert ["bot_answers_helpful", "2"] in rows and ["handoff_unhelpful", "1"] in rows


def test_it_needs_the_same_number_of_queries_however_many_conversations(
    dataset, admin, site, visitor_a, alice, support
):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert report_page(admin, by="agent").status_code == 200
        return len(queries)

    before = count()
    for i in range(30):
        row = conversation(
            site,
            visitor_a,
            at(5, i % 24),
            team=support,
            status=Conversation.Status.CLOSED,
            queued_at=at(5, i % 24),
            assignee=alice,
            assigned_at=at(5, i % 24, 1),
            first_response_at=at(5, i % 24, 2),
            closed_at=at(5, i % 24, 30),
        )
        bot_message(row, 2, i % 2 == 0)
        rating(row, alice, support, 1 + i % 5)
    assert count() == before
