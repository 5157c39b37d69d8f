"""HTTP edges: the widget page, the demo page and the agent console."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from csp.constants import SELF
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from chat import access, charts, ratelimit
from chat.forms import CsatForm, ReportForm, ReviewEntryForm
from chat.models import (
    Agent,
    Conversation,
    CsatRating,
    Label,
    Message,
    Note,
    Site,
    normalise_origin,
)
from chat.protocol import PROTOCOL_VERSION
from chat.services import (
    canned,
    conversations,
    csat,
    inbox,
    labels,
    links,
    presence,
    reports,
    review,
    transfer,
)
from chat.services import lists as console_lists
from chat.services.visitors import visitor_token
from chat.transports import vapid_public_key
from chat.useragent import browser_summary

DEMO_SITE_KEY = "acme-demo"


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@require_GET
def demo(request: HttpRequest) -> HttpResponse:
    site = Site.objects.filter(key=DEMO_SITE_KEY).first()
    if site is None:
        raise Http404("Run `python manage.py load_demo` first.")
    return render(request, "demo.html", {"site": site})


@require_GET
@xframe_options_exempt  # framing is governed per site by CSP frame-ancestors below
def widget(request: HttpRequest, key: str) -> HttpResponse:
    site = get_object_or_404(Site, key=key)
    parent = normalise_origin(request.GET.get("origin", ""))
    own = normalise_origin(request.build_absolute_uri("/"))
    parent_origin = parent if parent and (parent == own or site.allows_origin(parent)) else ""
    language = site.language or translation.get_language()
    # A link from an e-mail or a notification: this browser becomes that conversation's visitor.
    resumed = links.conversation_from_resume(request.GET.get("resume", ""))
    resume = resumed[0] if resumed and resumed[0].site_id == site.pk else None
    with translation.override(language):
        response = render(
            request,
            "widget/widget.html",
            {
                "site": site,
                "parent_origin": parent_origin,
                "language": language,
                "protocol_version": PROTOCOL_VERSION,
                "max_chars": settings.HELPDESK_MAX_MESSAGE_CHARS,
                "resume_token": visitor_token(resume.visitor) if resume else "",
                "resume_conversation": resume.pk if resume else "",
                "vapid_public_key": vapid_public_key(),
            },
        )
    # blob: images are attachments the widget fetched with its token (no cookie to send).
    return csp_override(
        response,
        {"frame-ancestors": [SELF, *sorted(site.origins)], "img-src": [SELF, "data:", "blob:"]},
    )


def csp_override(response: HttpResponse, directives: dict[str, list[str]]) -> HttpResponse:
    """Replace some directives of the site-wide policy for this response only.

    django-csp's ``@csp_replace`` takes a fixed dict; the widget's frame-ancestors depend on
    the site, so this sets the same per-response override at run time.
    """
    response._csp_replace = directives  # type: ignore[attr-defined]
    return response


def console_required(view):  # type: ignore[no-untyped-def]
    @login_required
    def wrapped(request: HttpRequest, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not access.is_console_user(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _queue_context(request: HttpRequest) -> dict[str, object]:
    label_id = _int_or_none(request.GET.get("label"))
    lists = console_lists.queue_lists(user=request.user, label_id=label_id)
    return {
        "waiting": lists.waiting,
        "waiting_total": lists.waiting_total,
        "mine": lists.mine,
        "mine_unread": lists.mine_unread,
        "labels": lists.labels,
        "label": lists.label,
        "agent": access.agent_of(request.user),
    }


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@require_GET
@console_required
def console_home(request: HttpRequest) -> HttpResponse:
    return render(request, "console/home.html", _queue_context(request))


@require_GET
@console_required
def console_queue(request: HttpRequest) -> HttpResponse:
    return render(request, "console/home.html#queue", _queue_context(request))


def _conversation_or_404(request: HttpRequest, conversation_id: int) -> Conversation:
    try:
        return access.conversation_for_user(user=request.user, conversation_id=conversation_id)
    except access.NotFound:
        raise Http404("No such conversation") from None


def _conversation_context(request: HttpRequest, conversation: Conversation) -> dict[str, object]:
    messages = (
        Message.objects.filter(conversation=conversation).select_related("agent").order_by("seq")
    )
    agent = access.agent_of(request.user)
    agents, teams = transfer.transfer_targets(conversation=conversation, by=agent)
    return {
        "conversation": conversation,
        "transcript": _with_notes(list(messages), list(conversation.notes.select_related("agent"))),
        "agent": agent,
        "past": console_lists.past_conversations(user=request.user, conversation=conversation),
        "browser": browser_summary(conversation.visitor.user_agent),
        "canned": canned.canned_for(conversation=conversation, agent=agent),
        "labels": list(conversation.labels.order_by("name")),
        "site_labels": list(Label.objects.filter(site_id=conversation.site_id).order_by("name")),
        "transfer_agents": agents,
        "transfer_teams": teams,
    }


def _with_notes(messages: list[Message], notes: list[Note]) -> list[Message | Note]:
    """Messages in seq order, each note right after the message it was written after."""
    merged: list[Message | Note] = []
    pending = sorted(notes, key=lambda n: (n.after_seq, n.created_at, n.pk))
    for message in messages:
        while pending and pending[0].after_seq < message.seq:
            merged.append(pending.pop(0))
        merged.append(message)
    return merged + pending


@require_GET
@console_required
def console_conversation(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    template = "console/conversation.html"
    target = request.htmx.target  # type: ignore[attr-defined]
    if target in ("conv-header", "conv-labels", "conv-transfer"):
        template += "#" + target.removeprefix("conv-")  # a live refresh needs only the partial
    return render(request, template, _conversation_context(request, conversation))


@require_POST
@console_required
def console_seen(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The conversation's page was in front of the agent with everything up to now (it posts
    this on load and when new customer messages arrive, while visible)."""
    conversation = _conversation_or_404(request, conversation_id)
    agent = access.agent_of(request.user)
    if agent is not None:
        inbox.conversation_seen(conversation=conversation, agent=agent)
    return HttpResponse(status=204)


@require_POST
@console_required
def console_reopen(request: HttpRequest, conversation_id: int) -> HttpResponse:
    return _agent_action(
        request,
        conversation_id,
        conversations.conversation_reopen,
        _("Only agents can reopen conversations."),
    )


def _agent_action(
    request: HttpRequest,
    conversation_id: int,
    action: Callable[..., None],
    refusal: str,
) -> HttpResponse:
    """Run ``action(conversation=..., agent=...)`` for the agent; answer the header."""
    conversation = _conversation_or_404(request, conversation_id)
    agent = access.agent_of(request.user)
    error = refusal if agent is None else ""
    if agent is not None:
        try:
            action(conversation=conversation, agent=agent)
        except conversations.Conflict as conflict:
            error = str(conflict)
    return _conversation_header(request, conversation, error)


@require_POST
@console_required
def console_transfer(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Transfer to ``agent`` or ``team`` (ids) with an optional ``note``."""
    conversation = _conversation_or_404(request, conversation_id)
    agent = access.agent_of(request.user)
    agents, teams = transfer.transfer_targets(conversation=conversation, by=agent)
    target = request.POST.get("target", "")
    kind, _sep, raw_id = target.partition(":")
    target_id = _int_or_none(raw_id)
    to_agent = next((a for a in agents if kind == "agent" and a.pk == target_id), None)
    to_team = next((t for t in teams if kind == "team" and t.pk == target_id), None)
    error = ""
    if to_agent is None and to_team is None:
        error = _("Choose an agent or a team to transfer to.")
    else:
        try:
            transfer.conversation_transfer(
                conversation=conversation,
                by=agent,
                to_agent=to_agent,
                to_team=to_team,
                note=request.POST.get("note", "")[: settings.HELPDESK_MAX_MESSAGE_CHARS],
            )
        except conversations.Conflict as conflict:
            error = str(conflict)
    if error:
        return _conversation_header(request, conversation, error)
    response = HttpResponse(status=204)
    # Transferred away: the conversation may no longer be visible to us; go back to the list.
    response["HX-Redirect"] = reverse("console:home")
    return response


@require_POST
@console_required
def console_label(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Add (``action=add``) or remove a label of the conversation's site."""
    conversation = _conversation_or_404(request, conversation_id)
    label_id = _int_or_none(request.POST.get("label"))
    label = Label.objects.filter(pk=label_id or 0, site_id=conversation.site_id).first()
    if label is None:
        return HttpResponse(_("No such label on this site."), status=400)
    if request.POST.get("action") == "remove":
        labels.conversation_label_remove(conversation=conversation, label=label)
    else:
        labels.conversation_label_add(conversation=conversation, label=label)
    return render(
        request, "console/conversation.html#labels", _conversation_context(request, conversation)
    )


@require_GET
@console_required
def console_search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:200]
    results = console_lists.conversation_search(user=request.user, query=query)
    template = "console/search.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#results"
    context = {"q": query, "results": results, "agent": access.agent_of(request.user)}
    return render(request, template, context)


@require_GET
@console_required
def console_supervisor(request: HttpRequest) -> HttpResponse:
    if not access.may_supervise(request.user):
        raise PermissionDenied
    counts = console_lists.supervisor_counts(user=request.user)
    template = "console/supervisor.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#counts"
    context = {"counts": counts, "agent": access.agent_of(request.user)}
    return render(request, template, context)


@require_POST
@console_required
def console_take(request: HttpRequest, conversation_id: int) -> HttpResponse:
    return _agent_action(
        request,
        conversation_id,
        conversations.conversation_take,
        _("Only agents can take conversations."),
    )


@require_POST
@console_required
def console_close(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation_or_404(request, conversation_id)
    error = ""
    try:
        conversations.conversation_close(
            conversation=conversation,
            by=access.agent_of(request.user),
            survey=not request.POST.get("skip_survey"),
        )
    except conversations.Conflict as conflict:
        error = str(conflict)
    return _conversation_header(request, conversation, error)


def _conversation_header(
    request: HttpRequest, conversation: Conversation, error: str
) -> HttpResponse:
    conversation.refresh_from_db()
    context = _conversation_context(request, conversation) | {"error": error}
    response = render(request, "console/conversation.html#header", context)
    if error:
        trigger_client_event(response, "helpdesk:error", {"message": error})
    return response


@require_http_methods(["GET", "POST"])
@console_required
def console_status(request: HttpRequest) -> HttpResponse:
    """The top bar's status control: GET renders it, POST sets online / away / offline."""
    agent = access.agent_of(request.user)
    if agent is None:
        raise Http404("Only agents have a status.")
    if request.method == "POST":
        status = request.POST.get("status", "")
        if status not in Agent.Status.values:
            return HttpResponse("Unknown status.", status=400)
        presence.agent_status_set(agent=agent, status=Agent.Status(status))
        agent.refresh_from_db()
    return render(request, "console/base.html#agent_status", {"agent": agent})


# --- Review list: questions the bot handled badly, turned into FAQ entries -----------------


@require_GET
@console_required
def console_review(request: HttpRequest) -> HttpResponse:
    groups = review.review_groups(
        sites=access.sites_for_user(request.user),
        conversations=access.conversations_for_user(request.user),
    )
    return render(
        request, "console/review.html", {"groups": groups, "agent": access.agent_of(request.user)}
    )


@require_GET
@console_required
def console_review_draft(request: HttpRequest) -> HttpResponse:
    """The new-entry form, prefilled from the group of the ``item`` questions."""
    sites = access.sites_for_user(request.user)
    group = review.review_group(
        sites=sites,
        refs=request.GET.getlist("item"),
        conversations=access.conversations_for_user(request.user),
    )
    if group is None:
        raise Http404("These questions were reviewed already.")
    initial = {
        "site": group.site_id,
        "items": " ".join(group.refs),
        "question": group.typical.question.strip(),
        "phrasings": "\n".join(group.other_questions),
        "language": group.language,
    }
    form = ReviewEntryForm(sites=sites, initial=initial)
    return _review_form(request, form, group)


@require_POST
@console_required
def console_review_create(request: HttpRequest) -> HttpResponse:
    sites = access.sites_for_user(request.user)
    form = ReviewEntryForm(request.POST, sites=sites)
    if form.is_valid():
        data = form.cleaned_data
        try:
            entry = review.review_entry_create(
                site=data["site"],
                refs=form.refs,
                question=data["question"],
                phrasings=data["phrasings"],
                answer=data["answer"],
                language=data["language"],
                tags=data["tags"],
                conversations=access.conversations_for_user(request.user),
            )
        except review.ReviewError as problem:
            form.add_error("question", str(problem))
        else:
            return _review_done(request, f"Added “{entry.question}” to the FAQ of {entry.site}.")
    group = review.review_group(
        sites=sites, refs=form.refs, conversations=access.conversations_for_user(request.user)
    )
    return _review_form(request, form, group)


@require_POST
@console_required
def console_review_dismiss(request: HttpRequest) -> HttpResponse:
    sites = access.sites_for_user(request.user)
    count = review.review_dismiss(
        sites=sites,
        refs=request.POST.getlist("item"),
        conversations=access.conversations_for_user(request.user),
    )
    return _review_done(request, f"Dismissed {count} question{'s' if count != 1 else ''}.")


def _review_form(
    request: HttpRequest, form: ReviewEntryForm, group: review.ReviewGroup | None
) -> HttpResponse:
    template = "console/review.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#entry_form"
    context = {"form": form, "group": group, "agent": access.agent_of(request.user)}
    return render(request, template, context)


def _review_done(request: HttpRequest, notice: str) -> HttpResponse:
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "console/review.html#done", {"notice": notice})
    return redirect("console:review")


# --- Reports ---------------------------------------------------------------------------------


def _report(request: HttpRequest) -> tuple[ReportForm, reports.Report | None]:
    form = ReportForm(
        request.GET,
        sites=access.report_sites_for_user(request.user),
        teams=access.report_teams_for_user(request.user),
    )
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    report = reports.report_build(
        conversations=access.conversations_for_reports(request.user),
        start=data["start"],
        end=data["end"],
        group_by=data["by"],
        site_id=data["site"].pk if data.get("site") else None,
        team_id=data["team"].pk if data.get("team") else None,
        agent_id=data["agent"].pk if data.get("agent") else None,
    )
    return form, report


@require_GET
@console_required
def console_reports(request: HttpRequest) -> HttpResponse:
    form, report = _report(request)
    context: dict[str, object] = {
        "form": form,
        "report": report,
        "agent": access.agent_of(request.user),
        "definitions": reports.DEFINITIONS,
        "query": request.GET.urlencode(),
    }
    if report is not None:
        context["charts"] = {
            "daily": charts.column_chart(
                [(day.strftime("%m-%d"), n) for day, n in report.daily],
                title=_("Conversations per day"),
            ),
            "reasons": charts.bar_chart(
                [(reports.handoff_reason_label(r), n) for r, n in report.handoff_reasons],
                title=_("Hand-off reasons"),
            ),
            "csat": charts.bar_chart(
                [(str(score), n) for score, n in report.csat_distribution],
                title=_("Ratings by score"),
            ),
            "hours": charts.heat_map(report.hours, title=_("Busiest hours")),
        }
    return render(request, "console/reports.html", context, status=200 if report else 400)


@require_GET
@console_required
def console_reports_csv(request: HttpRequest) -> HttpResponse:
    form, report = _report(request)
    if report is None:
        errors = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(reports.report_csv(report), content_type="text/csv; charset=utf-8")
    name = f"helpdesk-report-{report.start}-{report.end}-by-{report.group_by}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- Rating links: customers who left before the survey rate here -------------------------


@require_http_methods(["GET", "POST"])
def csat_rate(request: HttpRequest, token: str) -> HttpResponse:
    try:
        conversation = csat.csat_conversation_from_link(token)
    except csat.BadLink as bad:
        state = "expired" if bad.expired else "invalid"
        return render(
            request, "csat/rate.html", {"state": state}, status=410 if bad.expired else 404
        )
    rating = CsatRating.objects.filter(conversation=conversation).first()
    context: dict[str, object] = {"site": conversation.site, "rating": rating}
    language = conversation.site.language or translation.get_language()
    status = 200
    form = CsatForm(request.POST if request.method == "POST" else None)
    if rating is None:
        state, status = "none", 404
    elif request.method == "POST" and form.is_valid():
        try:
            csat.csat_record(
                conversation=conversation,
                score=int(form.cleaned_data["score"]),
                comment=form.cleaned_data["comment"],
            )
            state = "done"
        except csat.CsatError:
            state, status = "already", 409
    elif rating.is_answered:
        state, status = "already", 409 if request.method == "POST" else 200
    else:
        state, status = "form", 400 if request.method == "POST" else 200
    context |= {"state": state, "form": form, "scores": csat.scale_choices(rating)}
    with translation.override(language):
        return render(request, "csat/rate.html", context, status=status)


# --- Sign-in, throttled against password guessing -----------------------------------------


class ThrottledLoginView(LoginView):
    """Django's login, refused with 429 after 5 failures for a user name from one address."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            ratelimit.login_check(**self._who(request))
        except ratelimit.RateLimited as limited:
            minutes = -(-limited.retry_after // 60)
            # An unbound form: a bound one would check the password while locked out.
            context = self.get_context_data(
                form=self.get_form_class()(request),
                throttled=f"Too many failed sign-ins. Try again in {minutes} minutes.",
            )
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(limited.retry_after)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        ratelimit.login_failed(**self._who(self.request))
        return super().form_invalid(form)

    @staticmethod
    def _who(request: HttpRequest) -> dict[str, str]:
        # REMOTE_ADDR is the peer daphne saw; with --proxy-headers, the client behind nginx.
        return {
            "username": str(request.POST.get("username", "")),
            "ip": request.META.get("REMOTE_ADDR") or "unknown",
        }
