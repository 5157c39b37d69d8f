from django.urls import path

from chat import views, views_notifications

app_name = "console"

urlpatterns = [
    path("", views.console_home, name="home"),
    path("queue/", views.console_queue, name="queue"),
    path("status/", views.console_status, name="status"),
    path("c/<int:conversation_id>/", views.console_conversation, name="conversation"),
    path("c/<int:conversation_id>/take/", views.console_take, name="take"),
    path("c/<int:conversation_id>/close/", views.console_close, name="close"),
    path("push/subscribe/", views_notifications.console_push_subscribe, name="push_subscribe"),
    path(
        "push/unsubscribe/", views_notifications.console_push_unsubscribe, name="push_unsubscribe"
    ),
    path("notifications/", views_notifications.console_notifications, name="notifications"),
    path("review/", views.console_review, name="review"),
    path("review/draft/", views.console_review_draft, name="review_draft"),
    path("review/create/", views.console_review_create, name="review_create"),
    path("review/dismiss/", views.console_review_dismiss, name="review_dismiss"),
]
