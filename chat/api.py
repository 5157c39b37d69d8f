"""The REST API for a site's own servers: ``/api/v1/sites/<key>/…``, Bearer secret keys.

Errors are JSON: ``{"error": {"code": "...", "message": "..."}}`` with 400 (bad body), 401
(missing, wrong or revoked key), 404 (unknown customer), 405, 413 and 429 (over the site's
``HELPDESK_RATE_API_MESSAGES_PER_MINUTE``, with ``Retry-After``).
"""

from __future__ import annotations

import json
from typing import Annotated

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chat import ratelimit
from chat.services import proactive

MAX_BODY_BYTES = 64 * 1024


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    external_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    email: Annotated[str, Field(max_length=254)] | None = None
    name: Annotated[str, Field(max_length=120)] = ""

    @model_validator(mode="after")
    def named(self) -> Customer:
        if not self.external_id and not self.email:
            raise ValueError("give external_id or email")
        if self.email:
            try:
                validate_email(self.email)
            except DjangoValidationError:
                raise ValueError("email is not an e-mail address") from None
        return self


class ProactiveMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    customer: Customer
    body: Annotated[str, Field(min_length=1)]
    # Shown as the message's author; the site's name when empty.
    sender: Annotated[str, Field(max_length=80)] = ""


def error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="helpdesk"'
    return response


@csrf_exempt  # authenticated by the Bearer key, never by cookies
def messages_create(request: HttpRequest, key: str) -> JsonResponse:
    if request.method != "POST":
        response = error(405, "method_not_allowed", "Use POST.")
        response["Allow"] = "POST"
        return response
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    site = (
        proactive.site_for_api_key(site_key=key, secret=secret.strip())
        if scheme.lower() == "bearer"
        else None
    )
    if site is None:
        return error(401, "bad_key", "Send a live API key of this site: Authorization: Bearer KEY.")
    try:
        ratelimit.api_message_hit(site_id=site.pk)
    except ratelimit.RateLimited as limited:
        response = error(
            429,
            "rate_limited",
            f"At most {settings.HELPDESK_RATE_API_MESSAGES_PER_MINUTE} messages a minute per "
            f"site; retry in {limited.retry_after} s.",
        )
        response["Retry-After"] = str(limited.retry_after)
        return response
    if len(request.body) > MAX_BODY_BYTES:
        return error(413, "too_large", f"Bodies are limited to {MAX_BODY_BYTES} bytes.")
    try:
        data = ProactiveMessage.model_validate(json.loads(request.body))
    except (ValueError, UnicodeDecodeError) as problem:
        if isinstance(problem, ValidationError):
            first = problem.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            return error(400, "invalid", f"{where}: {first['msg']}")
        return error(400, "bad_json", "The body must be a JSON object.")
    body = data.body.strip()
    if not body or len(body) > settings.HELPDESK_MAX_MESSAGE_CHARS:
        return error(
            400,
            "invalid",
            f"body: 1 to {settings.HELPDESK_MAX_MESSAGE_CHARS} characters, not only spaces",
        )
    try:
        visitor = proactive.customer_find(
            site=site,
            external_id=data.customer.external_id or "",
            email=str(data.customer.email or ""),
            name=data.customer.name,
        )
    except proactive.UnknownCustomer:
        return error(
            404,
            "unknown_customer",
            "No customer has this external_id; give an email to reach them.",
        )
    sent = proactive.proactive_message_send(
        site=site, visitor=visitor, body=body, sender=data.sender
    )
    return JsonResponse(
        {
            "conversation_id": sent.message.conversation_id,
            "seq": sent.message.seq,
            "customer": {
                "id": str(visitor.public_id),
                "external_id": visitor.external_id or None,
                "email": visitor.email or None,
            },
            "delivery": sent.delivery,
        },
        status=201,
    )
