from django.urls import path

from chat import attachment_views, views, views_notifications

app_name = "console"

urlpatterns = [
    path("", views.console_home, name="home"),
    path("queue/", views.console_queue, name="queue"),
    path("status/", views.console_status, name="status"),
    path("search/", views.console_search, name="search"),
    path("supervisor/", views.console_supervisor, name="supervisor"),
    path("c/<int:conversation_id>/", views.console_conversation, name="conversation"),
    path("c/<int:conversation_id>/take/", views.console_take, name="take"),
    path("c/<int:conversation_id>/close/", views.console_close, name="close"),
    path("c/<int:conversation_id>/reopen/", views.console_reopen, name="reopen"),
    path("c/<int:conversation_id>/transfer/", views.console_transfer, name="transfer"),
    path("c/<int:conversation_id>/labels/", views.console_label, name="label"),
    path("c/<int:conversation_id>/seen/", views.console_seen, name="seen"),
    path("c/<int:conversation_id>/files/", attachment_views.console_upload, name="upload"),
    path("reports/", views.console_reports, name="reports"),
    path("reports/export.csv", views.console_reports_csv, name="reports_csv"),
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
