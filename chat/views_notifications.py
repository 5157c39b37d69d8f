"""HTTP edges of notifications: the service worker, push subscriptions (agents and
visitors), agents' preferences, and the signed link back to a conversation."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import access
from chat.models import Agent, Site, Visitor
from chat.services import links, notifications
from chat.services.visitors import BadToken, visitor_from_token
from chat.views import console_required

MAX_SUBSCRIPTION_BYTES = 4096


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    """``/sw.js``: served from the root so its scope covers ``/console/`` and ``/widget/``."""
    path = finders.find("sw.js")
    if not path:
        raise Http404("sw.js is missing")
    with open(str(path), encoding="utf-8") as handle:
        response = HttpResponse(handle.read(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"  # browsers check for a new worker on each visit
    return response


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    if len(request.body) > MAX_SUBSCRIPTION_BYTES:
        return None
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _bad(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _subscribe(
    request: HttpRequest,
    subscription: Any,
    *,
    agent: Agent | None = None,
    visitor: Visitor | None = None,
) -> JsonResponse:
    try:
        notifications.push_subscribe(
            subscription=subscription,
            agent=agent,
            visitor=visitor,
            user_agent=request.headers.get("User-Agent", ""),
        )
    except notifications.BadSubscription:
        return _bad("Send the PushSubscription's JSON: {endpoint, keys: {p256dh, auth}}.")
    return JsonResponse({"subscribed": True}, status=201)


@require_POST
@console_required
def console_push_subscribe(request: HttpRequest) -> JsonResponse:
    agent = access.agent_of(request.user)
    if agent is None:
        return _bad("Only agents get notifications.", 403)
    return _subscribe(request, _json_body(request), agent=agent)


@require_POST
@console_required
def console_push_unsubscribe(request: HttpRequest) -> JsonResponse:
    agent = access.agent_of(request.user)
    data = _json_body(request) or {}
    endpoint = data.get("endpoint")
    if agent is None or not isinstance(endpoint, str):
        return _bad("Send {endpoint}.")
    notifications.push_unsubscribe(endpoint=endpoint, agent=agent)
    return JsonResponse({"subscribed": False})


@require_http_methods(["GET", "POST"])
@console_required
def console_notifications(request: HttpRequest) -> HttpResponse:
    """The agent's notification preferences (an htmx form in the top bar's menu)."""
    agent = access.agent_of(request.user)
    if agent is None:
        raise Http404("Only agents have notification preferences.")
    saved = False
    if request.method == "POST":
        notifications.agent_preferences_set(
            agent=agent,
            queued=request.POST.get("queued") == "on",
            assigned=request.POST.get("assigned") == "on",
            replies=request.POST.get("replies") == "on",
            sound=request.POST.get("sound") == "on",
        )
        saved = True
    return render(request, "console/base.html#notify_prefs", {"agent": agent, "prefs_saved": saved})


@csrf_exempt  # authenticated by the visitor token in the body, never by cookies
@require_POST
def widget_push_subscribe(request: HttpRequest, key: str) -> JsonResponse:
    """``{"token": VISITOR_TOKEN, "subscription": PushSubscription.toJSON()}``."""
    site = get_object_or_404(Site, key=key)
    data = _json_body(request)
    if data is None or not isinstance(data.get("token"), str):
        return _bad("Send {token, subscription}.")
    try:
        visitor = visitor_from_token(site=site, token=data["token"])
    except BadToken:
        return _bad("Your session has expired.", 403)
    return _subscribe(request, data.get("subscription"), visitor=visitor)


@require_GET
def resume(request: HttpRequest, token: str) -> HttpResponse:
    """A link from an e-mail or a notification: open the conversation in the widget on the
    site's page (where it started), else on the site's first origin, else our own page."""
    found = links.conversation_from_resume(token)
    if found is None:
        return render(request, "widget/link_expired.html", status=404)
    conversation, emailed = found
    visitor: Visitor = conversation.visitor
    if emailed and visitor.email and not visitor.email_verified:
        Visitor.objects.filter(pk=visitor.pk).update(email_verified=True)
    site = conversation.site
    target = conversation.page_url if site.allows_origin(conversation.page_url) else ""
    if not target and site.origins:
        target = sorted(site.origins)[0] + "/"
    if target:
        # A fragment: the site's own server never sees it; the loader hands it to the widget.
        location = f"{target.split('#')[0]}#hd-resume={token}"
    else:  # a site without pages of its own: our stand-alone widget page
        location = f"{reverse('widget', args=[site.key])}?{urlencode({'resume': token})}"
    response = HttpResponseRedirect(location)
    response["Referrer-Policy"] = "no-referrer"
    return response
