from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from chat.consumers import ConsoleConsumer, WidgetConsumer

websocket_urlpatterns = [
    # The widget checks Origin itself, against each site's allowed origins.
    path("ws/widget/v1/", WidgetConsumer.as_asgi()),
    # The console rides on the session cookie, so only our own pages may open it.
    path(
        "ws/console/v1/",
        AllowedHostsOriginValidator(AuthMiddlewareStack(ConsoleConsumer.as_asgi())),
    ),
]
