from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # Connects the signals that keep the process's memos (chat/memo.py) true, and
        # registers the deploy checks.
        from chat import checks  # noqa: F401
        from chat.services import notifications, visitors  # noqa: F401
