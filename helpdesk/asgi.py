"""ASGI entry point: HTTP through Django, WebSockets through the chat routes."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.services.bot import bot_warm_up_in_background  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": URLRouter(websocket_urlpatterns)}
)

# With eager Celery the bot answers inside this process: have its models and indexes ready.
# Otherwise workers answer, and this process never loads them.
if settings.CELERY_TASK_ALWAYS_EAGER:
    bot_warm_up_in_background()

# What is loaded by now lives as long as the process. Frozen, the collector's full passes no
# longer walk it: each such pass stalled every socket of the process for ~150 ms.
gc.collect()
gc.freeze()
