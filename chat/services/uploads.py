"""Checking an uploaded file before anything is stored: size, real type, image dimensions.

The type comes from the file's first bytes, never from its name or the browser's claim; a
name whose extension says otherwise is refused. Images are opened by Pillow (headers only)
so a small file that claims enormous dimensions is refused before it is ever decoded.
"""

from __future__ import annotations

import io
import os
import unicodedata
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from chat.models import UPLOAD_TYPES, Site
from chat.protocol import ErrorCode

IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
PILLOW_FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
TYPE_NAMES = {
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "image/gif": "GIF image",
    "image/webp": "WebP image",
    "application/pdf": "PDF document",
    "application/zip": "ZIP archive",
    "text/plain": "text file",
}
MAX_NAME_CHARS = 120
THUMBNAIL_SIDE = 320
SNIFF_BYTES = 4096
# Text that a browser could take for a page or a script if it ever sniffed it.
MARKUP = (b"<!doctype", b"<html", b"<script", b"<svg", b"<?xml", b"<body", b"<iframe")


class UploadRefused(Exception):
    """The file is refused; ``message`` says why in words the sender understands."""

    def __init__(self, code: ErrorCode, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class Inspected:
    name: str
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None

    @property
    def decode_pixels(self) -> int:
        """What decoding costs for a thumbnail, in PNG pixels. JPEGs decode scaled down
        (``draft``) but their entropy decoding stays: ``bench_thumbnails`` measures a noisy
        JPEG at about 1/5 of a PNG's cost per pixel, so a JPEG counts 1/8."""
        pixels = (self.width or 0) * (self.height or 0)
        return pixels // 8 if self.content_type == "image/jpeg" else pixels


def sanitise_name(raw: str) -> str:
    """The last path component, without control or format characters, at most 120 chars."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        " " if ch.isspace() else ch
        for ch in unicodedata.normalize("NFC", name)
        if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn"} or ch.isspace()
    )
    name = " ".join(name.split()).strip(". ")
    if not name:
        return "file"
    stem, ext = os.path.splitext(name)
    if len(ext) > 10:
        stem, ext = name, ""
    return stem[: MAX_NAME_CHARS - len(ext)] + ext


def sniff(head: bytes, file: IO[bytes]) -> str | None:
    """The type of a file from its content, or None when it is none we accept."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    return "text/plain" if _is_plain_text(file) else None


def _is_plain_text(file: IO[bytes]) -> bool:
    file.seek(0)
    try:
        text = file.read().decode("utf-8")
    except UnicodeDecodeError:
        return False
    finally:
        file.seek(0)
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f" for ch in text):
        return False
    head = text.lstrip("\ufeff \t\r\n")[:200].lower().encode()
    return not any(head.startswith(tag) for tag in MARKUP)


def upload_inspect(*, site: Site, file: IO[bytes], name: str, size: int) -> Inspected:
    """Refuse the file (``UploadRefused``) or say what it is."""
    if site.upload_max_bytes == 0:
        raise UploadRefused(ErrorCode.FORBIDDEN, _("This chat does not accept files."), 403)
    if size > site.upload_max_bytes:
        raise UploadRefused(
            ErrorCode.TOO_LARGE,
            _("Files are limited to %(limit)s; this one is %(size)s.")
            % {"limit": filesizeformat(site.upload_max_bytes), "size": filesizeformat(size)},
            413,
        )
    if size == 0:
        raise UploadRefused(ErrorCode.INVALID_FRAME, _("The file is empty."), 400)
    clean = sanitise_name(name)
    file.seek(0)
    head = file.read(SNIFF_BYTES)
    file.seek(0)
    content_type = sniff(head, file)
    if content_type is None or content_type not in site.upload_type_set:
        allowed = ", ".join(TYPE_NAMES[t] for t in UPLOAD_TYPES if t in site.upload_type_set)
        raise UploadRefused(
            ErrorCode.UNSUPPORTED_TYPE,
            _("This type of file is not accepted here. You can send: %(allowed)s.")
            % {"allowed": allowed},
            415,
        )
    claimed = _type_of_extension(clean)
    if claimed is not None and claimed != content_type:
        raise UploadRefused(
            ErrorCode.UNSUPPORTED_TYPE,
            _("“%(name)s” is named like a %(claimed)s but contains a %(actual)s.")
            % {"name": clean, "claimed": TYPE_NAMES[claimed], "actual": TYPE_NAMES[content_type]},
            415,
        )
    if content_type not in IMAGE_TYPES:
        return Inspected(clean, content_type, size)
    width, height = _image_size(file, content_type)
    return Inspected(clean, content_type, size, width, height)


def _type_of_extension(name: str) -> str | None:
    ext = os.path.splitext(name)[1].lower()
    return next((t for t, exts in UPLOAD_TYPES.items() if ext in exts), None)


def _image_size(file: IO[bytes], content_type: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError  # ~5 MiB: only where files are checked

    limit = settings.HELPDESK_UPLOAD_MAX_PIXELS
    try:
        with _bomb_guard(), Image.open(file) as image:
            width, height = image.size
            if PILLOW_FORMATS.get(image.format or "") != content_type:
                raise UnidentifiedImageError
            if width * height > limit:
                raise Image.DecompressionBombError
            image.verify()  # checksums and structure, without decoding the pixels
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadRefused(
            ErrorCode.TOO_LARGE,
            _("Images are limited to %(mp)s megapixels.") % {"mp": f"{limit / 1e6:g}"},
            413,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise damaged() from None
    finally:
        file.seek(0)
    return width, height


def damaged() -> UploadRefused:
    return UploadRefused(
        ErrorCode.UNSUPPORTED_TYPE, _("This image is damaged and cannot be shown."), 415
    )


@contextmanager
def _bomb_guard() -> Iterator[None]:
    """Pillow's own decompression-bomb limit at ours, its warning raised as an error."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = settings.HELPDESK_UPLOAD_MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def thumbnail_bytes(file: IO[bytes]) -> bytes:
    """A WebP at most 320 px a side, upright (EXIF orientation applied).

    Raises ``UploadRefused`` when the pixels cannot be decoded (e.g. a truncated JPEG, whose
    header alone looked fine).
    """
    from PIL import Image, ImageOps

    try:
        with _bomb_guard(), Image.open(file) as image:
            image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG: decode down to 1/8
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            if upright.mode not in ("RGB", "RGBA"):
                upright = upright.convert("RGBA")
            out = io.BytesIO()
            upright.save(out, "WEBP", quality=80)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise damaged() from None
    return out.getvalue()
