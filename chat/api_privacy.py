"""``/api/v1/``: customers' data for the site's staff (a staff session; POSTs need CSRF)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from chat import access
from chat.services import privacy

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


@require_GET
@staff_api
def customer_export(request: HttpRequest, public_id: str) -> HttpResponse:
    visitor = access.visitor_for_user(user=request.user, public_id=public_id)
    data = privacy.visitor_export(visitor=visitor, by=request.user, via="api")
    response = HttpResponse(
        json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
        content_type="application/json",
    )
    response["Content-Disposition"] = f'attachment; filename="customer-{public_id}.json"'
    return response


@require_POST
@staff_api
def customer_erase(request: HttpRequest, public_id: str) -> HttpResponse:
    visitor = access.visitor_for_user(user=request.user, public_id=public_id)
    erased = privacy.visitor_erase(visitor=visitor, by=request.user, via="api")
    return JsonResponse(
        {
            "erased": True,
            "id": str(visitor.public_id),
            "conversations": erased.conversations,
            "messages": erased.messages,
        }
    )


@require_GET
@staff_api
def customer_lookup(request: HttpRequest) -> HttpResponse:
    """``?site=KEY&external_id=42`` or ``?site=KEY&email=ann@example.com``: the customers' ids."""
    visitors = access.visitors_for_user(request.user).filter(site__key=request.GET.get("site", ""))
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
