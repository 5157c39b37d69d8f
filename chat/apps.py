from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # Connects the signals that keep the agents' push subscriptions cache true.
        from chat.services import notifications  # noqa: F401
