"""Measure what checking an image and making its thumbnail costs, by format and size.

Prints, per image, the upload check (``upload_inspect``: sniffing, Pillow's header read and
``verify``) and the thumbnail (``thumbnail_bytes``) in milliseconds (median of ``--repeat``),
the "decode pixels" the inline/Celery threshold counts, and where the thumbnail is made under
the current ``HELPDESK_THUMBNAIL_INLINE_PIXELS``. Nothing is stored; no database is needed.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from PIL import Image

from chat.models import DEFAULT_UPLOAD_TYPES, Site
from chat.services.uploads import thumbnail_bytes, upload_inspect

SIZES = [(1280, 960), (2048, 1536), (4000, 3000), (6000, 4000)]


def photo_like(width: int, height: int) -> Image.Image:
    """Gradients and noise: compresses like a photo, not like a flat colour."""
    noise = Image.effect_noise((width, height), 40).convert("RGB")
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    return Image.blend(noise, gradient, 0.6)


def median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


class Command(BaseCommand):
    help = "Time the upload check and thumbnail of PNG and JPEG images of several sizes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repeat", type=int, default=5)

    def handle(self, *args: object, repeat: int = 5, **options: object) -> None:
        site = Site(upload_max_bytes=100 * 1024 * 1024, upload_types=",".join(DEFAULT_UPLOAD_TYPES))
        inline_limit = settings.HELPDESK_THUMBNAIL_INLINE_PIXELS
        self.stdout.write(
            f"{'image':<18}{'file':>9}{'check':>9}{'thumb':>9}{'decode px':>12}  where"
        )
        for width, height in SIZES:
            image = photo_like(width, height)
            for fmt in ("JPEG", "PNG"):
                out = io.BytesIO()
                image.save(out, fmt, quality=88) if fmt == "JPEG" else image.save(out, fmt)
                data = out.getvalue()

                def check(data: bytes = data, fmt: str = fmt) -> object:
                    name = f"photo.{fmt.lower()}"
                    return upload_inspect(
                        site=site, file=io.BytesIO(data), name=name, size=len(data)
                    )

                inspected = upload_inspect(
                    site=site, file=io.BytesIO(data), name=f"p.{fmt.lower()}", size=len(data)
                )

                def thumbnail(data: bytes = data) -> object:
                    return thumbnail_bytes(io.BytesIO(data))

                check_ms = median_ms(check, repeat)
                thumb_ms = median_ms(thumbnail, repeat)
                where = "request" if inspected.decode_pixels <= inline_limit else "celery"
                self.stdout.write(
                    f"{fmt} {width}×{height:<9}{len(data) / 1e6:>7.1f}MB{check_ms:>7.1f}ms"
                    f"{thumb_ms:>7.1f}ms{inspected.decode_pixels / 1e6:>10.2f}MP  {where}"
                )
        self.stdout.write(f"HELPDESK_THUMBNAIL_INLINE_PIXELS={inline_limit}")
