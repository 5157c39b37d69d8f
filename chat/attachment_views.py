"""HTTP edges for files: uploads from the widget and the console, and downloads.

The widget authenticates with its visitor token in ``Authorization: Bearer`` (a header no
other page can make the browser send, so no CSRF token is needed); the console with its
session, under Django's CSRF check. Every answer of an upload is JSON: the stored message
as a ``message.created`` frame, or an ``error`` frame with a code and a reason.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from chat import access, ratelimit
from chat.models import Attachment, Conversation, Visitor
from chat.protocol import ErrorCode, ProtocolError, dump
from chat.services import conversations
from chat.services.attachments import (
    INLINE_TYPES,
    attachment_send_from_agent,
    attachment_send_from_visitor,
)
from chat.services.frames import message_frame
from chat.services.messages import Posted
from chat.services.uploads import UploadRefused
from chat.services.visitors import BadToken, site_for_key, visitor_from_bearer
from chat.views import console_required

# Room for the multipart envelope and the form's other fields around the file itself.
MULTIPART_SLACK = 64 * 1024


def error_response(
    code: ErrorCode,
    message: str,
    status: int,
    ref: str | None = None,
    retry_after: int | None = None,
) -> JsonResponse:
    frame = ProtocolError(code, message, ref, retry_after=retry_after).frame()
    response = JsonResponse(frame, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def posted_response(posted: Posted) -> JsonResponse:
    return JsonResponse(dump(message_frame(posted.message)), status=201 if posted.created else 200)


def bearer_visitor(request: HttpRequest) -> Visitor | None:
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return visitor_from_bearer(token.strip())
    except BadToken:
        return None


class Refusal(Exception):
    def __init__(self, response: JsonResponse) -> None:
        self.response = response


def upload_fields(request: HttpRequest, max_bytes: int) -> tuple[str, UploadedFile]:
    """The upload's ``client_id`` and file, refusing an oversized body before reading it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if max_bytes and length > max_bytes + MULTIPART_SLACK:
        raise Refusal(
            error_response(ErrorCode.TOO_LARGE, _("This file is too large to send here."), 413)
        )
    client_id = request.POST.get("client_id", "")
    if not 1 <= len(client_id) <= 64:
        raise Refusal(error_response(ErrorCode.INVALID_FRAME, "client_id: 1 to 64 characters", 400))
    upload = request.FILES.get("file")
    if upload is None:
        raise Refusal(
            error_response(ErrorCode.INVALID_FRAME, _("No file was sent."), 400, client_id)
        )
    return client_id, upload


def rate_limited_response(limited: ratelimit.RateLimited, ref: str | None = None) -> JsonResponse:
    message = _("Too many requests; try again in %(n)d seconds.") % {"n": limited.retry_after}
    return error_response(ErrorCode.RATE_LIMITED, message, 429, ref, limited.retry_after)


def refused_upload(refused: UploadRefused, client_id: str) -> JsonResponse:
    return error_response(refused.code, refused.message, refused.status, client_id)


@csrf_exempt  # bearer-token authenticated: see the module docstring
@require_POST
def widget_upload(request: HttpRequest, key: str) -> JsonResponse:
    """``POST /widget/KEY/files/``: file, client_id, and optionally conversation_id."""
    site = site_for_key(key)
    if site is None:
        return error_response(ErrorCode.FORBIDDEN, _("Unknown site key."), 403)
    visitor = bearer_visitor(request)
    if visitor is None or visitor.site_id != site.pk:
        return error_response(ErrorCode.BAD_TOKEN, _("Your session has expired."), 401)
    try:
        ratelimit.upload_hit(
            site_id=site.pk, visitor_id=visitor.pk, ip=request.META.get("REMOTE_ADDR") or "unknown"
        )
    except ratelimit.RateLimited as limited:
        return rate_limited_response(limited)
    try:
        client_id, upload = upload_fields(request, site.upload_max_bytes)
        conversation = visitor_conversation(request, visitor)
    except Refusal as refusal:
        return refusal.response
    try:
        posted = attachment_send_from_visitor(
            visitor=visitor,
            conversation=conversation,
            upload=upload,
            client_id=client_id,
            consent=request.POST.get("consent") == "true",
        )
    except UploadRefused as refused:
        return refused_upload(refused, client_id)
    except conversations.ConsentRequired:
        message = _("Please agree to the terms before chatting.")
        return error_response(ErrorCode.CONSENT_REQUIRED, message, 400, client_id)
    except ratelimit.RateLimited as limited:  # a new conversation over the visitor's limit
        return rate_limited_response(limited, client_id)
    return posted_response(posted)


def visitor_conversation(request: HttpRequest, visitor: Visitor) -> Conversation | None:
    raw = request.POST.get("conversation_id", "")
    if not raw:
        return None
    try:
        return access.conversation_for_visitor(visitor=visitor, conversation_id=int(raw))
    except (ValueError, access.NotFound):
        raise Refusal(
            error_response(ErrorCode.NOT_FOUND, _("No such conversation."), 404)
        ) from None


@require_POST
@console_required
def console_upload(request: HttpRequest, conversation_id: int) -> JsonResponse:
    """``POST /console/c/ID/files/``: file and client_id, from an agent's session."""
    try:
        conversation = access.conversation_for_user(
            user=request.user, conversation_id=conversation_id
        )
    except access.NotFound:
        return error_response(ErrorCode.NOT_FOUND, _("No such conversation."), 404)
    agent = access.agent_of(request.user)
    if agent is None:
        return error_response(
            ErrorCode.FORBIDDEN, _("Only agents can send files; add an Agent profile."), 403
        )
    try:
        ratelimit.agent_upload_hit(agent_id=agent.pk)
    except ratelimit.RateLimited as limited:
        return rate_limited_response(limited)
    try:
        client_id, upload = upload_fields(request, conversation.site.upload_max_bytes)
    except Refusal as refusal:
        return refusal.response
    try:
        posted = attachment_send_from_agent(
            conversation=conversation, agent=agent, upload=upload, client_id=client_id
        )
    except UploadRefused as refused:
        return refused_upload(refused, client_id)
    except conversations.Conflict as conflict:
        return error_response(ErrorCode.CONFLICT, str(conflict), 409, client_id)
    return posted_response(posted)


def attachment_for_request(request: HttpRequest, attachment_id: str) -> Attachment:
    """The visitor of a bearer token, or the signed-in user: 404 for anybody else."""
    visitor = bearer_visitor(request)
    user: User | AnonymousUser = request.user
    try:
        if visitor is not None:
            return access.attachment_for_visitor(visitor=visitor, attachment_id=attachment_id)
        return access.attachment_for_user(user=user, attachment_id=attachment_id)
    except access.NotFound:
        raise Http404("No such file") from None


@require_GET
def attachment_download(request: HttpRequest, attachment_id: str) -> HttpResponseBase:
    attachment = attachment_for_request(request, str(attachment_id))
    inline = attachment.content_type in INLINE_TYPES
    return file_response(attachment.file, attachment.content_type, attachment.name, inline)


@require_GET
def attachment_thumbnail(request: HttpRequest, attachment_id: str) -> HttpResponseBase:
    attachment = attachment_for_request(request, str(attachment_id))
    if not attachment.thumbnail:
        raise Http404("No thumbnail (yet)")
    stem = attachment.name.rsplit(".", 1)[0]
    return file_response(attachment.thumbnail, "image/webp", f"{stem}.webp", inline=True)


def file_response(field: object, content_type: str, name: str, inline: bool) -> FileResponse:
    response = FileResponse(
        field.open("rb"),  # type: ignore[attr-defined]
        content_type=content_type,
        as_attachment=not inline,
        filename=name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    # Private: the answer depends on who asks. Files never change under their id.
    response["Cache-Control"] = "private, max-age=86400"
    response["Vary"] = "Authorization, Cookie"
    return response
