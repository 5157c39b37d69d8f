from django.urls import path

from chat import views

app_name = "console"

urlpatterns = [
    path("", views.console_home, name="home"),
    path("queue/", views.console_queue, name="queue"),
    path("c/<int:conversation_id>/", views.console_conversation, name="conversation"),
    path("c/<int:conversation_id>/take/", views.console_take, name="take"),
    path("c/<int:conversation_id>/close/", views.console_close, name="close"),
]
