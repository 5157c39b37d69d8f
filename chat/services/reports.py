"""Reports: how the service did over a date range, from aggregate queries only.

Every figure is computed by the database over the conversations *started* in the range that
the reader may see (``chat.access.conversations_for_reports``); nothing loops over
conversations in Python. Percentiles are ``percentile_cont`` (linear interpolation between
the two nearest ranks): on PostgreSQL the aggregate itself, elsewhere the same formula from
the two ranks a window query picks out, so both databases give the same numbers.

The definitions shown next to each figure live in ``DEFINITIONS``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from django.contrib.postgres.fields import ArrayField
from django.db import connection
from django.db.models import (
    Aggregate,
    CharField,
    Count,
    Expression,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
    Sum,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chat.models import Conversation, CsatRating, Message

GroupBy = Literal["site", "team", "agent"]
PERCENTILES = ((50, 100), (90, 100))  # p50 and p90, as exact fractions
CLOSED = Conversation.Status.CLOSED


class Seconds(Func):
    """``end - start`` in seconds, as a float, on SQLite and PostgreSQL."""

    output_field = FloatField()
    template = "(EXTRACT(EPOCH FROM (%(expressions)s)))::double precision"
    arg_joiner = " - "

    def __init__(self, end: Any, start: Any) -> None:
        super().__init__(end, start)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )


class HourUtc(Func):
    """A timestamp's UTC hour, computed natively by the database: text ``YYYY-MM-DD HH`` on
    SQLite, a naive datetime on PostgreSQL."""

    output_field = CharField()
    # date_trunc is much cheaper than to_char; the driver hands back a naive datetime.
    template = "date_trunc('hour', %(expressions)s AT TIME ZONE 'UTC')"

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django stores aware datetimes on SQLite as UTC text: "2026-11-02 10:00:00.123456".
        return self.as_sql(compiler, connection, template="substr(%(expressions)s, 1, 13)")


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(ARRAY[f, ...]) WITHIN GROUP (ORDER BY expr)``: several
    percentiles from one sort, as a list."""

    function = "percentile_cont"
    template = "%(function)s(ARRAY[%(fractions)s]) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = ArrayField(FloatField())

    def __init__(self, expression: Any, fractions: list[float], **extra: Any) -> None:
        listed = ", ".join(f"{float(f)!r}::double precision" for f in fractions)
        super().__init__(expression, fractions=listed, **extra)


@dataclass(frozen=True)
class Measure:
    """A duration per conversation: how it is computed and which conversations have one."""

    key: str
    value: Expression
    where: Q


WAIT_START = Coalesce("queued_at", "created_at")
MEASURES = (
    Measure(
        "first_response",
        Seconds(F("first_response_at"), WAIT_START),
        Q(first_response_at__isnull=False, first_response_at__gte=WAIT_START),
    ),
    Measure(
        "resolution",
        Seconds(F("closed_at"), F("created_at")),
        Q(status=CLOSED, closed_at__isnull=False),
    ),
    Measure(
        "queue_wait",
        Seconds(F("assigned_at"), F("queued_at")),
        Q(queued_at__isnull=False, assigned_at__isnull=False, assigned_at__gte=F("queued_at")),
    ),
)

DEFINITIONS = {
    "conversations": _("Conversations started in the range."),
    "bot_resolution": _(
        "Closed conversations that never reached a person (no hand-off, never assigned, no "
        "agent reply), out of all closed conversations."
    ),
    "handoff": _(
        "Conversations the bot handed to a person (low confidence, asked for a person, answer "
        "not helpful…), out of all conversations; the reasons below."
    ),
    "first_response": _(
        "From the hand-off (or the start, without a bot) to the first agent reply. Median and "
        "90th percentile over conversations an agent replied to."
    ),
    "resolution": _("From the start to the close, over closed conversations."),
    "queue_wait": _(
        "From joining the queue to being assigned. Abandoned: queued, never assigned, closed."
    ),
    "csat": _(
        "Answers to the survey at close (1–5). Satisfied: 4 or 5. Attributed to the agent and "
        "team the conversation had when it closed."
    ),
    "feedback": _("Visitors' 👍 / 👎 on the bot's answers in these conversations."),
    "hours": _("Conversations started, by weekday and hour (server time zone)."),
}


@dataclass(frozen=True)
class Percentiles:
    p50: float | None = None
    p90: float | None = None


@dataclass
class Figures:
    """The figures of one group (or of everything: ``key`` None)."""

    key: int | None
    label: str
    conversations: int = 0
    closed: int = 0
    bot_resolved: int = 0
    handed_off: int = 0
    queued: int = 0
    abandoned: int = 0
    # How many conversations have each measure (e.g. a first response): the percentiles' n.
    measure_counts: dict[str, int] = field(default_factory=dict)
    durations: dict[str, Percentiles] = field(
        default_factory=lambda: {m.key: Percentiles() for m in MEASURES}
    )
    csat_count: int = 0
    csat_sum: int = 0
    csat_satisfied: int = 0

    @property
    def csat_average(self) -> float | None:
        return self.csat_sum / self.csat_count if self.csat_count else None

    @property
    def bot_resolution_rate(self) -> float | None:
        return _ratio(self.bot_resolved, self.closed)

    @property
    def handoff_rate(self) -> float | None:
        return _ratio(self.handed_off, self.conversations)

    @property
    def csat_satisfied_rate(self) -> float | None:
        return _ratio(self.csat_satisfied, self.csat_count)

    def duration(self, key: str) -> Percentiles:
        return self.durations.get(key, Percentiles())


@dataclass
class Report:
    start: date
    end: date
    group_by: GroupBy
    total: Figures
    groups: list[Figures]
    handoff_reasons: list[tuple[str, int]]
    csat_distribution: list[tuple[int, int]]  # (score, answers) for 1..5
    helpful: int
    unhelpful: int
    daily: list[tuple[date, int]]
    # hours[weekday 0 = Monday][hour] = conversations started
    hours: list[list[int]]

    @property
    def helpful_rate(self) -> float | None:
        return _ratio(self.helpful, self.helpful + self.unhelpful)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- Building ------------------------------------------------------------------------------

# Per grouping: the conversation field, its label, and the frozen fields of the rating.
_GROUPS: dict[str, tuple[str, str, str, str]] = {
    "site": ("site_id", "site__name", "site_id", "site__name"),
    "team": ("team_id", "team__name", "team_id", "team_name"),
    "agent": ("assignee_id", "assignee__display_name", "agent_id", "agent_name"),
}


def report_build(
    *,
    conversations: QuerySet[Conversation],
    start: date,
    end: date,
    group_by: GroupBy = "site",
    site_id: int | None = None,
    team_id: int | None = None,
    agent_id: int | None = None,
) -> Report:
    """Figures for the ``conversations`` (already limited to what the reader may see)
    started from ``start`` to ``end`` inclusive, optionally of one site, team or agent."""
    since = timezone.make_aware(datetime.combine(start, time.min))
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min))
    scope = conversations.filter(created_at__gte=since, created_at__lt=until)
    ratings = CsatRating.objects.filter(conversation__in=scope.values("pk"), score__isnull=False)
    if site_id:
        scope = scope.filter(site_id=site_id)
        ratings = ratings.filter(site_id=site_id)
    if team_id:
        scope = scope.filter(team_id=team_id)
        ratings = ratings.filter(team_id=team_id)
    if agent_id:
        scope = scope.filter(assignee_id=agent_id)
        ratings = ratings.filter(agent_id=agent_id)
    scope = scope.order_by()

    # Every figure but the percentiles adds up over groups: one grouped query each for
    # conversations and ratings gives the groups, and their sums the whole.
    field_name, label_name, rating_field, rating_label = _GROUPS[group_by]
    by_key: dict[int | None, Figures] = {}
    reasons = dict.fromkeys(KNOWN_REASONS, 0)
    for row in scope.values(field_name, label_name).annotate(**_count_aggregates()).order_by():
        figures = by_key.setdefault(row[field_name], _group(row[field_name], row[label_name]))
        for name in COUNTS:
            setattr(figures, name, row[name])
        figures.measure_counts = {m.key: row[f"n_{m.key}"] for m in MEASURES}
        for reason in KNOWN_REASONS:
            reasons[reason] += row[f"reason_{reason}"]
    distribution = dict.fromkeys(range(1, 6), 0)
    # Ratings keep the team and agent of the close, which the conversation may no longer have.
    for row in ratings.values(rating_field, rating_label).annotate(**_csat_aggregates()).order_by():
        figures = by_key.setdefault(row[rating_field], _group(row[rating_field], row[rating_label]))
        figures.csat_count = row["n"]
        figures.csat_sum = row["score_sum"]
        figures.csat_satisfied = row["satisfied"]
        for score in distribution:
            distribution[score] += row[f"score_{score}"]
    groups = sorted(by_key.values(), key=lambda g: (g.key is None, g.label))
    total = Figures(key=None, label=str(_("All")))
    for name in [*COUNTS, "csat_count", "csat_sum", "csat_satisfied"]:
        setattr(total, name, sum(getattr(g, name) for g in groups))
    total.measure_counts = {
        m.key: sum(g.measure_counts.get(m.key, 0) for g in groups) for m in MEASURES
    }
    other = total.handed_off - sum(reasons.values())
    handoff_reasons = sorted(
        [(reason, n) for reason, n in reasons.items() if n] + ([("other", other)] if other else []),
        key=lambda item: (-item[1], item[0]),
    )

    _fill_durations(total, groups, scope, group_by)
    feedback = Message.objects.filter(
        conversation__in=scope.values("pk"), author=Message.Author.BOT, helpful__isnull=False
    ).aggregate(up=Count("id", filter=Q(helpful=True)), down=Count("id", filter=Q(helpful=False)))
    # Counted per UTC hour in SQL (at most 24 rows a day), then placed in local time here:
    # SQLite's time-zone-aware extracts call Python once per row, which is what this avoids.
    hours = [[0] * 24 for _ in range(7)]
    days: dict[date, int] = {}
    buckets = scope.annotate(hour=HourUtc("created_at")).values_list("hour").annotate(n=Count("id"))
    for bucket, n in buckets:
        local = timezone.localtime(_utc_hour(bucket))
        hours[local.weekday()][local.hour] += n
        days[local.date()] = days.get(local.date(), 0) + n
    return Report(
        start=start,
        end=end,
        group_by=group_by,
        total=total,
        groups=groups,
        handoff_reasons=handoff_reasons,
        csat_distribution=sorted(distribution.items()),
        helpful=feedback["up"],
        unhelpful=feedback["down"],
        daily=sorted(days.items()),
        hours=hours,
    )


def _utc_hour(bucket: str | datetime) -> datetime:
    if isinstance(bucket, datetime):
        return bucket.replace(tzinfo=UTC)
    y, mo, d, h = int(bucket[:4]), int(bucket[5:7]), int(bucket[8:10]), int(bucket[11:13])
    return datetime(y, mo, d, h, tzinfo=UTC)


def _index(figures: Iterable[Figures]) -> dict[int | None, Figures]:
    return {f.key: f for f in figures}


COUNTS = ["conversations", "closed", "bot_resolved", "handed_off", "queued", "abandoned"]


def _group(key: int | None, label: str | None) -> Figures:
    return Figures(key=key, label=label or str(_("None")))


def _count_aggregates() -> dict[str, Any]:
    return {
        "conversations": Count("id"),
        "closed": Count("id", filter=Q(status=CLOSED)),
        "bot_resolved": Count(
            "id",
            filter=Q(
                status=CLOSED,
                handoff_reason="",
                assigned_at__isnull=True,
                first_response_at__isnull=True,
            ),
        ),
        "handed_off": Count("id", filter=~Q(handoff_reason="")),
        "queued": Count("id", filter=Q(queued_at__isnull=False)),
        "abandoned": Count(
            "id", filter=Q(status=CLOSED, queued_at__isnull=False, assigned_at__isnull=True)
        ),
        **{f"n_{m.key}": Count("id", filter=m.where) for m in MEASURES},
        **{
            f"reason_{reason}": Count("id", filter=Q(handoff_reason=reason))
            for reason in KNOWN_REASONS
        },
    }


def _csat_aggregates() -> dict[str, Any]:
    return {
        "n": Count("id"),
        "score_sum": Sum("score"),
        "satisfied": Count("id", filter=Q(score__gte=4)),
        **{f"score_{n}": Count("id", filter=Q(score=n)) for n in range(1, 6)},
    }


def _grouped(
    queryset: QuerySet[Any],
    group_by: GroupBy | None,
    aggregates: dict[str, Any],
    *,
    rating: bool = False,
) -> list[tuple[int | None, dict[str, Any]]]:
    """One aggregate query: ``[(None, row)]`` overall, or one row per group."""
    if group_by is None:
        return [(None, queryset.aggregate(**aggregates))]
    key = _GROUPS[group_by][2 if rating else 0]
    rows = queryset.values(key).annotate(**aggregates).order_by()
    return [(row[key], row) for row in rows]


def _fill_durations(
    total: Figures, groups: list[Figures], scope: QuerySet[Conversation], group_by: GroupBy
) -> None:
    """Median and p90 of every measure, overall and per group."""
    by_key = _index(groups)
    if connection.vendor == "postgresql":
        fractions = [num / den for num, den in PERCENTILES]
        aggregates = {m.key: PercentileCont(m.value, fractions, filter=m.where) for m in MEASURES}
        rows: list[tuple[Figures | None, dict[str, Any]]] = [
            (total, row) for _key, row in _grouped(scope, None, aggregates)
        ]
        rows += [(by_key.get(key), row) for key, row in _grouped(scope, group_by, aggregates)]
        for place, row in rows:
            if place is not None:
                for m in MEASURES:
                    place.durations[m.key] = Percentiles(*(row[m.key] or ()))
        return
    # Elsewhere (SQLite): per measure, one window query ranks the values overall and keeps
    # the ranks each percentile interpolates between; a second ranks them by group, then
    # value, where each group's ranks follow from the group sizes counted before.
    key = _GROUPS[group_by][0]
    for m in MEASURES:
        n = total.measure_counts.get(m.key, 0)
        if not n:
            continue
        values = scope.filter(m.where).annotate(v=m.value)
        ranked = values.annotate(rn=Window(RowNumber(), order_by=F("v").asc()))
        picked = dict(ranked.filter(rn__in=_ranks(n)).values_list("rn", "v"))
        total.durations[m.key] = _interpolate(n, picked)
        sized = [g for g in groups if g.measure_counts.get(m.key)]
        if len(sized) == 1:
            sized[0].durations[m.key] = total.durations[m.key]
        if len(sized) <= 1:
            continue
        sized.sort(key=lambda g: (g.key is not None, g.key or 0))  # NULL first, as in SQL
        wanted: dict[int, tuple[Figures, int]] = {}
        start = 0
        for g in sized:
            wanted |= {start + rank: (g, rank) for rank in _ranks(g.measure_counts[m.key])}
            start += g.measure_counts[m.key]
        order = [F(key).asc(nulls_first=True), F("v").asc()]
        ranked = values.annotate(rn=Window(RowNumber(), order_by=order))
        per_group: dict[int | None, dict[int, float]] = {g.key: {} for g in sized}
        for rn, v in ranked.filter(rn__in=list(wanted)).values_list("rn", "v"):
            g, rank = wanted[rn]
            per_group[g.key][rank] = v
        for g in sized:
            g.durations[m.key] = _interpolate(g.measure_counts[m.key], per_group[g.key])


def _ranks(n: int) -> list[int]:
    """The ranks (1-based) ``percentile_cont`` reads for each percentile of ``n`` values."""
    ranks: set[int] = set()
    for num, den in PERCENTILES:
        low = (n - 1) * num // den
        ranks |= {low + 1, min(low + 2, n)}
    return sorted(ranks)


def _interpolate(n: int, ranks: dict[int, float]) -> Percentiles:
    """``percentile_cont`` from the values at the ranks (1-based) around each percentile."""
    values = []
    for num, den in PERCENTILES:
        low, rest = divmod((n - 1) * num, den)
        below = ranks[low + 1]
        above = ranks.get(low + 2, below)
        values.append(below + (above - below) * rest / den)
    return Percentiles(*values)


HANDOFF_REASONS = {
    "low_confidence": _("Bot unsure"),
    "asked_for_human": _("Asked for a person"),
    "unhelpful": _("Answer not helpful"),
    "no_knowledge": _("No answer in the FAQ"),
    "llm_handoff": _("Model handed over"),
    "other": _("Other"),
}


# The reasons chat/services hands off for; anything else counts as "other".
KNOWN_REASONS = [reason for reason in HANDOFF_REASONS if reason != "other"]


def handoff_reason_label(reason: str) -> str:
    return str(HANDOFF_REASONS.get(reason, reason))


CSV_COLUMNS = [
    "group",
    "conversations",
    "closed",
    "bot_resolution_rate",
    "handoff_rate",
    "first_response_p50_s",
    "first_response_p90_s",
    "resolution_p50_s",
    "resolution_p90_s",
    "queue_wait_p50_s",
    "queue_wait_p90_s",
    "queued",
    "abandoned",
    "csat_count",
    "csat_average",
    "csat_satisfied_rate",
]


def report_csv(report: Report) -> str:
    """The report's table as CSV: one row per group, then the overall row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"# {report.start} to {report.end}, by {report.group_by}"])
    writer.writerow(CSV_COLUMNS)
    for figures in [*report.groups, report.total]:
        writer.writerow(
            [
                figures.label,
                figures.conversations,
                figures.closed,
                _cell(figures.bot_resolution_rate),
                _cell(figures.handoff_rate),
                *(
                    _cell(value)
                    for m in MEASURES
                    for value in (figures.duration(m.key).p50, figures.duration(m.key).p90)
                ),
                figures.queued,
                figures.abandoned,
                figures.csat_count,
                _cell(figures.csat_average),
                _cell(figures.csat_satisfied_rate),
            ]
        )
    writer.writerow([])
    writer.writerow(["bot_answers_helpful", report.helpful])
    writer.writerow(["bot_answers_not_helpful", report.unhelpful])
    for reason, n in report.handoff_reasons:
        writer.writerow([f"handoff_{reason}", n])
    return out.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"
