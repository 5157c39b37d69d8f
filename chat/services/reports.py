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
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from django.db import connection
from django.db.models import (
    Aggregate,
    Avg,
    Count,
    Expression,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
    Window,
)
from django.db.models.functions import (
    Coalesce,
    ExtractHour,
    ExtractIsoWeekDay,
    RowNumber,
    TruncDate,
)
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


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(f) WITHIN GROUP (ORDER BY expr)``."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=f"{float(fraction)!r}", **extra)


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
    durations: dict[str, Percentiles] = field(
        default_factory=lambda: {m.key: Percentiles() for m in MEASURES}
    )
    csat_count: int = 0
    csat_average: float | None = None
    csat_satisfied: int = 0

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

    total = Figures(key=None, label=str(_("All")))
    _fill_counts([total], scope, None)
    _fill_durations([total], scope, None)
    _fill_csat([total], ratings, None)

    field_name, label_name, rating_field, rating_label = _GROUPS[group_by]
    # Ratings keep the team and agent of the close, which the conversation may no longer have.
    labels = dict(scope.values_list(field_name, label_name).distinct().order_by())
    for key, label in ratings.values_list(rating_field, rating_label).distinct().order_by():
        labels.setdefault(key, label)
    groups = [
        Figures(key=key, label=label or str(_("None")))
        for key, label in sorted(labels.items(), key=lambda kv: (kv[0] is None, kv[1] or ""))
    ]
    if groups:
        _fill_counts(groups, scope, group_by)
        _fill_durations(groups, scope, group_by)
        _fill_csat(groups, ratings, group_by)

    distribution = dict(
        ratings.values_list("score").annotate(n=Count("id")).order_by().values_list("score", "n")
    )
    feedback = Message.objects.filter(
        conversation__in=scope.values("pk"), author=Message.Author.BOT, helpful__isnull=False
    ).aggregate(up=Count("id", filter=Q(helpful=True)), down=Count("id", filter=Q(helpful=False)))
    reasons = (
        scope.exclude(handoff_reason="")
        .values_list("handoff_reason")
        .annotate(n=Count("id"))
        .order_by("-n", "handoff_reason")
    )
    daily = scope.annotate(day=TruncDate("created_at")).values_list("day").annotate(n=Count("id"))
    hours = [[0] * 24 for _ in range(7)]
    cells = (
        scope.annotate(wd=ExtractIsoWeekDay("created_at"), hour=ExtractHour("created_at"))
        .values_list("wd", "hour")
        .annotate(n=Count("id"))
    )
    for weekday, hour, n in cells:
        hours[weekday - 1][hour] = n
    return Report(
        start=start,
        end=end,
        group_by=group_by,
        total=total,
        groups=groups,
        handoff_reasons=[(reason, n) for reason, n in reasons],
        csat_distribution=[(score, distribution.get(score, 0)) for score in range(1, 6)],
        helpful=feedback["up"],
        unhelpful=feedback["down"],
        daily=sorted((day, n) for day, n in daily.order_by()),
        hours=hours,
    )


def _index(figures: Iterable[Figures]) -> dict[int | None, Figures]:
    return {f.key: f for f in figures}


def _fill_counts(
    figures: list[Figures], scope: QuerySet[Conversation], group_by: GroupBy | None
) -> None:
    counts = {
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
    }
    by_key = _index(figures)
    for key, row in _grouped(scope, group_by, counts):
        target = by_key.get(key)
        if target is not None:
            for name in counts:
                setattr(target, name, row[name])


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
    figures: list[Figures], scope: QuerySet[Conversation], group_by: GroupBy | None
) -> None:
    by_key = _index(figures)
    if connection.vendor == "postgresql":
        aggregates = {
            f"{m.key}_{num}": PercentileCont(m.value, num / den, filter=m.where)
            for m in MEASURES
            for num, den in PERCENTILES
        }
        for key, row in _grouped(scope, group_by, aggregates):
            target = by_key.get(key)
            if target is not None:
                for m in MEASURES:
                    target.durations[m.key] = Percentiles(
                        *(row[f"{m.key}_{num}"] for num, _den in PERCENTILES)
                    )
        return
    for m in MEASURES:
        for key, values in _ranked_percentiles(scope, m, group_by).items():
            target = by_key.get(key)
            if target is not None:
                target.durations[m.key] = values


def _ranked_percentiles(
    scope: QuerySet[Conversation], measure: Measure, group_by: GroupBy | None
) -> dict[int | None, Percentiles]:
    """``percentile_cont`` without the aggregate: one window query numbers each group's values
    in order and keeps only the ranks each percentile interpolates between."""
    partition = [F(_GROUPS[group_by][0])] if group_by else None
    ranked = (
        scope.filter(measure.where)
        .annotate(v=measure.value)
        .annotate(
            rn=Window(RowNumber(), partition_by=partition, order_by=F("v").asc()),
            n=Window(Count("id"), partition_by=partition),
        )
    )
    wanted = Q()
    for num, den in PERCENTILES:
        low = (F("n") - 1) * num / den  # integer division: the lower rank, 0-based
        wanted |= Q(rn=low + 1) | Q(rn=low + 2)
    key = _GROUPS[group_by][0] if group_by else None
    columns = [key] if key else []
    picked: dict[int | None, dict[str, Any]] = {}
    for row in ranked.filter(wanted).values(*columns, "v", "rn", "n"):
        group = picked.setdefault(row[key] if key else None, {"n": row["n"], "ranks": {}})
        group["ranks"][row["rn"]] = row["v"]
    result: dict[int | None, Percentiles] = {}
    for group_key, group in picked.items():
        n, ranks = group["n"], group["ranks"]
        values = []
        for num, den in PERCENTILES:
            low, rest = divmod((n - 1) * num, den)
            below = ranks[low + 1]
            above = ranks.get(low + 2, below)
            values.append(below + (above - below) * rest / den)
        result[group_key] = Percentiles(*values)
    return result


def _fill_csat(
    figures: list[Figures], ratings: QuerySet[CsatRating], group_by: GroupBy | None
) -> None:
    aggregates = {
        "n": Count("id"),
        "average": Avg("score"),
        "satisfied": Count("id", filter=Q(score__gte=4)),
    }
    by_key = _index(figures)
    for key, row in _grouped(ratings, group_by, aggregates, rating=True):
        target = by_key.get(key)
        if target is not None:
            target.csat_count = row["n"]
            target.csat_average = row["average"]
            target.csat_satisfied = row["satisfied"]


HANDOFF_REASONS = {
    "low_confidence": _("Bot unsure"),
    "asked_for_human": _("Asked for a person"),
    "unhelpful": _("Answer not helpful"),
    "no_knowledge": _("No answer in the FAQ"),
    "llm_handoff": _("Model handed over"),
}


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
