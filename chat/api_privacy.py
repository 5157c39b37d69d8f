"""``/api/v1/``: customers' data, for the site's staff or for the site's own servers.

Two doors to the same export, erase and look-up:

- ``/api/v1/customers/…``: a signed-in staff session (POSTs need Django's CSRF token);
- ``/api/v1/sites/KEY/customers/…``: the site's API key (admin → API keys) in
  ``Authorization: Bearer SECRET``, for a backend that handles its customers' requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID

from django.contrib.auth.models import AnonymousUser, User
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from chat import access
from chat.models import Site, Visitor
from chat.services import privacy, proactive

View = Callable[..., HttpResponse]


def staff_api(view: View) -> View:
    """JSON errors instead of login redirects: 403 for who may not, 404 for what is not."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not access.may_manage_customer_data(request.user):
            message = "Sign in as staff allowed to manage visitors."
            return JsonResponse({"error": message}, status=403)
        try:
            return view(request, *args, **kwargs)
        except access.NotFound:
            return JsonResponse({"error": "No such customer."}, status=404)

    return wrapped


def site_key_api(view: View) -> View:
    """The site named in the URL, if the Bearer secret is one of its live API keys."""

    @wraps(view)
    def wrapped(request: HttpRequest, key: str, *args: Any, **kwargs: Any) -> HttpResponse:
        scheme, _sep, secret = request.headers.get("Authorization", "").partition(" ")
        site = None
        if scheme.lower() == "bearer":
            site = proactive.site_for_api_key(site_key=key, secret=secret.strip())
        if site is None:
            message = "Send a live API key of this site: Authorization: Bearer KEY."
            response = JsonResponse({"error": message}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="helpdesk"'
            return response
        try:
            return view(request, site, *args, **kwargs)
        except access.NotFound:
            return JsonResponse({"error": "No such customer."}, status=404)

    return wrapped


def export_response(visitor: Visitor, *, by: User | AnonymousUser | None, via: str) -> HttpResponse:
    data = privacy.visitor_export(visitor=visitor, by=by, via=via)
    response = HttpResponse(
        json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
        content_type="application/json",
    )
    response["Content-Disposition"] = (
        f'attachment; filename="customer-{data["customer"]["id"]}.json"'
    )
    return response


def erase_response(visitor: Visitor, *, by: User | AnonymousUser | None, via: str) -> JsonResponse:
    erased = privacy.visitor_erase(visitor=visitor, by=by, via=via)
    return JsonResponse(
        {
            "erased": True,
            "id": str(visitor.public_id),
            "conversations": erased.conversations,
            "messages": erased.messages,
        }
    )


def lookup_response(request: HttpRequest, visitors: QuerySet[Visitor]) -> JsonResponse:
    """``external_id=42`` or ``email=ann@example.com``: the matching customers' ids."""
    external_id = request.GET.get("external_id", "")
    email = request.GET.get("email", "")
    if not (external_id or email):
        return JsonResponse({"error": "Give external_id or email."}, status=400)
    if external_id:
        visitors = visitors.filter(external_id=external_id)
    if email:
        visitors = visitors.filter(email__iexact=email)
    ids = [str(v) for v in visitors.order_by("pk").values_list("public_id", flat=True)[:100]]
    return JsonResponse({"customers": ids})


# --- Staff session ----------------------------------------------------------------------


@require_GET
@staff_api
def customer_lookup(request: HttpRequest) -> HttpResponse:
    """``?site=KEY&external_id=42`` (or ``&email=…``)."""
    visitors = access.visitors_for_user(request.user).filter(site__key=request.GET.get("site", ""))
    return lookup_response(request, visitors)


@require_GET
@staff_api
def customer_export(request: HttpRequest, public_id: UUID) -> HttpResponse:
    visitor = access.visitor_for_user(user=request.user, public_id=str(public_id))
    return export_response(visitor, by=request.user, via="api")


@require_POST
@staff_api
def customer_erase(request: HttpRequest, public_id: UUID) -> HttpResponse:
    visitor = access.visitor_for_user(user=request.user, public_id=str(public_id))
    return erase_response(visitor, by=request.user, via="api")


# --- The site's API key -----------------------------------------------------------------


@csrf_exempt  # authenticated by the Bearer key, never by cookies
@require_GET
@site_key_api
def site_customer_lookup(request: HttpRequest, site: Site) -> HttpResponse:
    return lookup_response(request, access.visitors_of_site(site))


@csrf_exempt
@require_GET
@site_key_api
def site_customer_export(request: HttpRequest, site: Site, public_id: UUID) -> HttpResponse:
    visitor = access.visitor_of_site(site=site, public_id=str(public_id))
    return export_response(visitor, by=None, via="api-key")


@csrf_exempt
@require_POST
@site_key_api
def site_customer_erase(request: HttpRequest, site: Site, public_id: UUID) -> HttpResponse:
    visitor = access.visitor_of_site(site=site, public_id=str(public_id))
    return erase_response(visitor, by=None, via="api-key")
