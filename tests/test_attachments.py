"""Files both ways: what is stored, who may fetch it, and every bad upload refused with a reason."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as HttpClient
from django.urls import reverse
from PIL import Image

from chat.models import Attachment, Conversation, Message, Visitor
from chat.services.uploads import sanitise_name
from chat.services.visitors import visitor_token
from tests.conftest import console_for, widget_for

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, fmt)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid little PNG whose header claims ``width`` × ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def upload(data: bytes, name: str) -> SimpleUploadedFile:
    # The browser's claimed type is deliberately wrong: the server must not trust it.
    return SimpleUploadedFile(name, data, content_type="image/png")


def widget_post(
    visitor: Visitor,
    data: bytes,
    name: str,
    *,
    client_id: str = "f1",
    conversation: Conversation | int | None = None,
    token: str | None = None,
) -> Any:
    fields: dict[str, Any] = {"client_id": client_id, "file": upload(data, name)}
    if conversation is not None:
        fields["conversation_id"] = str(getattr(conversation, "pk", conversation))
    auth = token if token is not None else visitor_token(visitor)
    return HttpClient().post(
        reverse("widget_upload", args=[visitor.site.key]),
        fields,
        headers={"authorization": f"Bearer {auth}"},
    )


def fetch(url: str, *, visitor: Visitor | None = None, user: Any = None) -> Any:
    client = HttpClient()
    headers = {}
    if visitor is not None:
        headers["authorization"] = f"Bearer {visitor_token(visitor)}"
    if user is not None:
        client.force_login(user)
    return client.get(url, headers=headers)


@pytest.fixture
def chat_a(site, visitor_a) -> Conversation:
    return Conversation.objects.create(site=site, visitor=visitor_a, status="waiting")


def stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def assert_refused(response: Any, status: int, code: str, media: Path) -> str:
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and body["code"] == code
    assert body["message"]
    assert Attachment.objects.count() == 0
    assert not Message.objects.filter(meta__has_key="attachment").exists()
    assert stored_files(media) == []
    return body["message"]


# --- Sending and fetching ----------------------------------------------------------------


def test_it_posts_a_visitors_image_as_a_message_with_a_thumbnail(chat_a, visitor_a, media):
    response = widget_post(visitor_a, image_bytes(), "parcel.png", conversation=chat_a)

    assert response.status_code == 201
    frame = response.json()
    assert frame["type"] == "message.created" and frame["author"] == "visitor"
    assert frame["client_id"] == "f1" and frame["body"] == "parcel.png"
    attachment = frame["attachment"]
    assert attachment["name"] == "parcel.png"
    assert attachment["content_type"] == "image/png"
    assert (attachment["width"], attachment["height"]) == (640, 480)
    assert attachment["url"] == f"/files/{attachment['id']}/"
    assert attachment["thumbnail_url"] == f"/files/{attachment['id']}/thumbnail/"
    row = Attachment.objects.get()
    assert row.conversation == chat_a and row.message.seq == frame["seq"]
    assert "parcel" not in row.file.name  # stored under its id, never the sender's name
    with Image.open(row.thumbnail.open("rb")) as thumb:
        assert thumb.format == "WEBP" and max(thumb.size) == 320


def test_it_serves_a_file_to_its_visitor_and_the_conversations_agents_only(
    chat_a, visitor_a, visitor_b, alice, bob, charlie, admin
):
    frame = widget_post(visitor_a, image_bytes(), "parcel.png", conversation=chat_a).json()
    url, thumb = frame["attachment"]["url"], frame["attachment"]["thumbnail_url"]

    mine = fetch(url, visitor=visitor_a)
    assert mine.status_code == 200
    assert b"".join(mine.streaming_content) == image_bytes()
    assert mine["Content-Type"] == "image/png"
    assert mine["Content-Disposition"] == 'inline; filename="parcel.png"'
    assert mine["X-Content-Type-Options"] == "nosniff"
    assert "private" in mine["Cache-Control"]
    assert fetch(thumb, visitor=visitor_a)["Content-Type"] == "image/webp"
    for user in (alice.user, bob.user, admin):  # the shared queue: every Acme agent
        assert fetch(url, user=user).status_code == 200
        assert fetch(thumb, user=user).status_code == 200
    for stranger in ({"visitor": visitor_b}, {"user": charlie.user}, {}):
        assert fetch(url, **stranger).status_code == 404
        assert fetch(thumb, **stranger).status_code == 404


def test_it_keeps_a_teams_files_from_other_teams(site, support, visitor_a, alice, bob):
    chat = Conversation.objects.create(site=site, visitor=visitor_a, status="waiting", team=support)
    url = widget_post(visitor_a, PDF, "invoice.pdf", conversation=chat).json()["attachment"]["url"]
    assert fetch(url, user=alice.user).status_code == 200
    assert fetch(url, user=bob.user).status_code == 404


def test_it_offers_documents_only_as_downloads(chat_a, visitor_a):
    frame = widget_post(visitor_a, PDF, "invoice.pdf", conversation=chat_a).json()
    assert frame["attachment"]["content_type"] == "application/pdf"
    assert frame["attachment"]["thumbnail_url"] is None
    response = fetch(frame["attachment"]["url"], visitor=visitor_a)
    assert response["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"


def test_it_starts_a_conversation_for_a_visitors_first_file(site, visitor_a):
    response = widget_post(visitor_a, b"order 1234 receipt\n", "receipt.txt")
    assert response.status_code == 201
    conversation = Conversation.objects.get(visitor=visitor_a)
    assert response.json()["conversation_id"] == conversation.pk
    assert response.json()["attachment"]["content_type"] == "text/plain"


def test_it_stores_a_resent_upload_once(chat_a, visitor_a, media):
    first = widget_post(visitor_a, PDF, "invoice.pdf", conversation=chat_a, client_id="same")
    again = widget_post(visitor_a, PDF, "invoice.pdf", conversation=chat_a, client_id="same")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["seq"] == first.json()["seq"]
    assert Attachment.objects.count() == 1
    assert len(stored_files(media)) == 1


def test_it_does_not_wake_the_bot_for_a_file(site, visitor_a):
    chat = Conversation.objects.create(site=site, visitor=visitor_a, status="bot")
    widget_post(visitor_a, image_bytes(), "photo.png", conversation=chat)
    assert list(chat.messages.values_list("author", flat=True)) == ["visitor"]


def test_it_lets_an_agent_send_a_file_the_visitor_can_download(chat_a, visitor_a, alice):
    client = HttpClient(enforce_csrf_checks=True)
    client.force_login(alice.user)
    client.get(reverse("console:conversation", args=[chat_a.pk]))  # sets the CSRF cookie
    url = reverse("console:upload", args=[chat_a.pk])
    fields = {"client_id": "a1", "file": upload(PDF, "label.pdf")}

    assert client.post(url, fields).status_code == 403  # no CSRF token: refused
    fields["file"] = upload(PDF, "label.pdf")
    response = client.post(url, fields, headers={"x-csrftoken": client.cookies["csrftoken"].value})

    assert response.status_code == 201
    frame = response.json()
    assert frame["author"] == "agent" and frame["author_name"] == "Alice"
    chat_a.refresh_from_db()
    assert chat_a.assignee == alice  # sending a file takes the conversation, like a reply
    download = fetch(frame["attachment"]["url"], visitor=visitor_a)
    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF


def test_it_refuses_agent_uploads_to_conversations_out_of_reach(chat_a, charlie, admin):
    url = reverse("console:upload", args=[chat_a.pk])
    client = HttpClient()
    client.force_login(charlie.user)
    response = client.post(url, {"client_id": "c1", "file": upload(PDF, "x.pdf")})
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    client.force_login(admin)  # sees it, but has no Agent profile to send as
    response = client.post(url, {"client_id": "c1", "file": upload(PDF, "x.pdf")})
    assert response.status_code == 403 and "Agent profile" in response.json()["message"]
    assert Attachment.objects.count() == 0


# --- Bad uploads -------------------------------------------------------------------------


def test_it_refuses_an_oversized_file(chat_a, visitor_a, media, site):
    site.upload_max_bytes = 1000
    site.save()
    response = widget_post(visitor_a, b"x" * 1001, "notes.txt", conversation=chat_a)
    message = assert_refused(response, 413, "too_large", media)
    assert message == "Files are limited to 1000\xa0bytes; this one is 1001\xa0bytes."


def test_it_refuses_a_body_larger_than_the_limit_before_reading_it(chat_a, visitor_a, media, site):
    site.upload_max_bytes = 1000
    site.save()
    response = widget_post(visitor_a, b"x" * 200_000, "big.txt", conversation=chat_a)
    assert_refused(response, 413, "too_large", media)


@pytest.mark.parametrize(
    ("data", "name", "words"),
    [
        (b"<!DOCTYPE html><script>alert(1)</script>", "photo.png", "not accepted"),
        (b"<svg xmlns='http://www.w3.org/2000/svg' onload='x()'/>", "logo.png", "not accepted"),
        (b"<html><body>hi</body></html>", "page.txt", "not accepted"),
        (PDF, "photo.png", "named like a PNG image but contains a PDF document"),
        (image_bytes("JPEG"), "photo.png", "named like a PNG image but contains a JPEG image"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\xff\xff", "invoice.pdf", "not accepted"),
        (b"PK\x03\x04" + b"\0" * 40, "archive.zip", "not accepted"),  # zip: not on by default
    ],
)
def test_it_refuses_a_type_by_its_content_not_its_name(chat_a, visitor_a, media, data, name, words):
    response = widget_post(visitor_a, data, name, conversation=chat_a)
    assert words in assert_refused(response, 415, "unsupported_type", media)


def test_it_accepts_only_the_types_the_site_allows(chat_a, visitor_a, media, site):
    site.upload_types = "image/png"
    site.save()
    response = widget_post(visitor_a, PDF, "invoice.pdf", conversation=chat_a)
    assert "PNG image" in assert_refused(response, 415, "unsupported_type", media)
    site.upload_max_bytes = 0
    site.save()
    response = widget_post(visitor_a, image_bytes(), "a.png", conversation=chat_a)
    assert "does not accept files" in assert_refused(response, 403, "forbidden", media)


def test_it_refuses_an_image_bomb_without_decoding_it(chat_a, visitor_a, media):
    bomb = png_claiming(100_000, 100_000)
    assert len(bomb) < 200
    response = widget_post(visitor_a, bomb, "bomb.png", conversation=chat_a)
    assert "40 megapixels" in assert_refused(response, 413, "too_large", media)


def test_it_refuses_images_over_the_configured_pixels(chat_a, visitor_a, media, settings):
    settings.HELPDESK_UPLOAD_MAX_PIXELS = 100 * 100
    response = widget_post(visitor_a, image_bytes(size=(101, 100)), "a.png", conversation=chat_a)
    assert "0.01 megapixels" in assert_refused(response, 413, "too_large", media)


def test_it_refuses_a_damaged_image(chat_a, visitor_a, media):
    broken = image_bytes()[:60] + b"\0" * 500
    response = widget_post(visitor_a, broken, "broken.png", conversation=chat_a)
    assert "damaged" in assert_refused(response, 415, "unsupported_type", media)


def test_it_refuses_an_image_whose_pixels_do_not_decode(chat_a, visitor_a, media):
    truncated = image_bytes("JPEG", (800, 600))[:2000]  # a fine header, then nothing
    response = widget_post(visitor_a, truncated, "photo.jpg", conversation=chat_a)
    assert "damaged" in assert_refused(response, 415, "unsupported_type", media)


def test_it_keeps_a_big_image_that_cannot_be_thumbnailed_as_a_download(
    chat_a, visitor_a, settings, django_capture_on_commit_callbacks
):
    settings.HELPDESK_THUMBNAIL_INLINE_PIXELS = 0  # the task's path
    truncated = image_bytes("JPEG", (800, 600))[:2000]
    with django_capture_on_commit_callbacks(execute=True):
        response = widget_post(visitor_a, truncated, "photo.jpg", conversation=chat_a)
    assert response.status_code == 201
    attachment = Attachment.objects.get()
    assert not attachment.thumbnail
    assert fetch(response.json()["attachment"]["url"], visitor=visitor_a).status_code == 200


def test_it_refuses_a_file_that_would_start_a_conversation_over_the_limit(
    site, visitor_a, settings, media
):
    settings.HELPDESK_RATE_CONVERSATIONS_PER_HOUR = 1
    Conversation.objects.create(site=site, visitor=visitor_a, status="closed")
    from chat import ratelimit

    ratelimit.conversation_start_hit(visitor_id=visitor_a.pk)  # the closed one's start
    response = widget_post(visitor_a, PDF, "x.pdf")  # no open conversation: a new one
    assert response.status_code == 429 and response.json()["code"] == "rate_limited"
    assert response.json()["ref"] == "f1"
    assert stored_files(media) == []


def test_it_refuses_an_empty_file_and_a_missing_one(chat_a, visitor_a, media):
    response = widget_post(visitor_a, b"", "empty.txt", conversation=chat_a)
    assert assert_refused(response, 400, "invalid_frame", media) == "The file is empty."
    response = HttpClient().post(
        reverse("widget_upload", args=[visitor_a.site.key]),
        {"client_id": "x"},
        headers={"authorization": f"Bearer {visitor_token(visitor_a)}"},
    )
    assert assert_refused(response, 400, "invalid_frame", media) == "No file was sent."


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\ann\\Desktop\\receipt.txt", "receipt.txt"),
        ("re\x00ce\x1bipt\n.txt", "receipt .txt"),
        ("invoice\u202etxt.exe.txt", "invoicetxt.exe.txt"),  # no right-to-left override
        ("...hidden.txt", "hidden.txt"),
        ("/", "file"),
        ("a" * 300 + ".txt", "a" * 116 + ".txt"),
    ],
)
def test_it_sanitises_file_names(raw, clean):
    assert sanitise_name(raw) == clean


def test_it_stores_a_path_as_its_last_part(chat_a, visitor_a, media):
    name = "../../../etc/cron.d/x\x07.txt"
    response = widget_post(visitor_a, b"hello\n", name, conversation=chat_a)
    assert response.json()["attachment"]["name"] == "x.txt"
    assert all(media in path.parents for path in stored_files(media))


def test_it_refuses_unknown_and_other_visitors_conversations(
    site, chat_a, visitor_a, visitor_b, media
):
    response = widget_post(visitor_b, PDF, "x.pdf", conversation=chat_a)
    assert assert_refused(response, 404, "not_found", media) == "No such conversation."
    response = widget_post(visitor_a, PDF, "x.pdf", conversation=987654)
    assert_refused(response, 404, "not_found", media)


def test_it_refuses_a_wrong_expired_or_foreign_token(visitor_a, other_site, media, settings):
    assert_refused(widget_post(visitor_a, PDF, "x.pdf", token="forged"), 401, "bad_token", media)
    stranger = Visitor.objects.create(site=other_site)
    foreign = visitor_token(stranger)
    assert_refused(widget_post(visitor_a, PDF, "x.pdf", token=foreign), 401, "bad_token", media)
    settings.HELPDESK_VISITOR_TOKEN_DAYS = -1
    assert_refused(widget_post(visitor_a, PDF, "x.pdf"), 401, "bad_token", media)
    response = HttpClient().post(
        reverse("widget_upload", args=[visitor_a.site.key]),
        {"client_id": "x", "file": upload(PDF, "x.pdf")},
    )
    assert_refused(response, 401, "bad_token", media)  # no token at all


def test_it_limits_uploads_per_visitor(chat_a, visitor_a, visitor_b, settings):
    settings.HELPDESK_RATE_UPLOADS_PER_MINUTE = 2
    for n in range(2):
        assert widget_post(visitor_a, PDF, "x.pdf", client_id=f"u{n}").status_code == 201
    refused = widget_post(visitor_a, PDF, "x.pdf", client_id="u3")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert 0 < refused.json()["retry_after"] <= 60
    assert refused["Retry-After"] == str(refused.json()["retry_after"])
    assert Attachment.objects.count() == 2
    assert widget_post(visitor_b, PDF, "x.pdf", client_id="b1").status_code == 201


def test_it_limits_the_files_an_agent_sends_per_minute(
    chat_a, site, visitor_b, alice, bob, settings
):
    settings.HELPDESK_RATE_AGENT_UPLOADS_PER_MINUTE = 2
    url = reverse("console:upload", args=[chat_a.pk])
    client = HttpClient()
    client.force_login(alice.user)
    sent = [
        client.post(url, {"client_id": f"a{n}", "file": upload(PDF, "x.pdf")}) for n in range(3)
    ]

    assert [response.status_code for response in sent] == [201, 201, 429]
    assert sent[2].json()["code"] == "rate_limited"
    assert sent[2]["Retry-After"] == str(sent[2].json()["retry_after"])
    assert Attachment.objects.count() == 2
    waiting = Conversation.objects.create(site=site, visitor=visitor_b, status="waiting")
    client.force_login(bob.user)  # each agent has their own limit
    url = reverse("console:upload", args=[waiting.pk])
    assert client.post(url, {"client_id": "b1", "file": upload(PDF, "x.pdf")}).status_code == 201


# --- Over the sockets --------------------------------------------------------------------

post_async = database_sync_to_async(widget_post)


@pytest.mark.django_db(transaction=True)
async def test_it_broadcasts_the_file_to_both_sides_after_commit(site, visitor_a, alice):
    chat = await database_sync_to_async(Conversation.objects.create)(
        site=site, visitor=visitor_a, status="waiting"
    )
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=chat.pk)
    await widget.expect("sync.done")
    console = await console_for(alice.user)
    await console.send(type="conversation.sync", conversation_id=chat.pk)
    await console.expect("sync.done")

    response = await post_async(visitor_a, image_bytes(), "parcel.png", conversation=chat)

    for client in (widget, console):
        frame = await client.expect("message.created", seq=response.json()["seq"])
        assert frame["attachment"] == response.json()["attachment"]
    await widget.close()
    await console.close()


@pytest.mark.django_db(transaction=True)
async def test_it_makes_big_thumbnails_in_a_task_and_says_when_they_are_ready(
    site, visitor_a, alice, settings
):
    settings.HELPDESK_THUMBNAIL_INLINE_PIXELS = 1000  # everything counts as big
    chat = await database_sync_to_async(Conversation.objects.create)(
        site=site, visitor=visitor_a, status="waiting"
    )
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=chat.pk)
    await widget.expect("sync.done")

    response = await post_async(visitor_a, image_bytes(), "parcel.png", conversation=chat)

    assert response.json()["attachment"]["thumbnail_url"] is None  # not made in the request
    created = await widget.expect("message.created")
    assert created["attachment"]["thumbnail_url"] is None
    ready = await widget.expect("attachment.updated")
    assert ready["seq"] == created["seq"]
    assert ready["attachment"]["thumbnail_url"].endswith("/thumbnail/")
    # A later sync shows the thumbnail straight away.
    await widget.send(type="conversation.sync", conversation_id=chat.pk, after_seq=0)
    synced = await widget.expect("message.created", seq=created["seq"])
    assert synced["attachment"]["thumbnail_url"] == ready["attachment"]["thumbnail_url"]
    await widget.close()


# --- Per-site settings -------------------------------------------------------------------


def test_it_lets_admins_set_a_sites_limits_and_refuses_unknown_types(site, admin):
    from django.core.exceptions import ValidationError

    client = HttpClient()
    client.force_login(admin)
    page = client.get(reverse("admin:chat_site_change", args=[site.pk])).content.decode()
    assert 'name="upload_max_bytes"' in page and 'name="upload_types"' in page
    site.upload_types = "image/png, text/html"
    with pytest.raises(ValidationError) as refused:
        site.full_clean()
    assert "text/html" in str(refused.value.message_dict["upload_types"])
    site.upload_types = "image/png,application/zip"
    site.upload_max_bytes = 200 * 1024 * 1024  # over the 100 MiB ceiling
    with pytest.raises(ValidationError) as refused:
        site.full_clean()
    assert set(refused.value.message_dict) == {"upload_max_bytes"}


def test_it_deletes_the_stored_files_with_their_conversation_in_the_admin(
    chat_a, visitor_a, admin, media, django_capture_on_commit_callbacks
):
    widget_post(visitor_a, image_bytes(), "parcel.png", conversation=chat_a)
    assert len(stored_files(media)) == 2  # the image and its thumbnail
    client = HttpClient()
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:chat_conversation_delete", args=[chat_a.pk]), {"post": "yes"}
        )
    assert response.status_code == 302
    assert not Conversation.objects.filter(pk=chat_a.pk).exists()
    assert Attachment.objects.count() == 0
    assert stored_files(media) == []
