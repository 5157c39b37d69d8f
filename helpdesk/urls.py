from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat import api, attachment_views, views, views_notifications

urlpatterns = [
    path("", views.home, name="home"),
    path("demo/", views.demo, name="demo"),
    path("widget/<str:key>/", views.widget, name="widget"),
    path("widget/<str:key>/files/", attachment_views.widget_upload, name="widget_upload"),
    path("files/<uuid:attachment_id>/", attachment_views.attachment_download, name="attachment"),
    path(
        "files/<uuid:attachment_id>/thumbnail/",
        attachment_views.attachment_thumbnail,
        name="attachment_thumbnail",
    ),
    path("rate/<str:token>/", views.csat_rate, name="csat_rate"),
    path(
        "widget/<str:key>/push/",
        views_notifications.widget_push_subscribe,
        name="widget_push_subscribe",
    ),
    path("sw.js", views_notifications.service_worker, name="service_worker"),
    path("r/<str:token>/", views_notifications.resume, name="resume"),
    path("api/v1/sites/<str:key>/messages", api.messages_create, name="api_messages"),
    path("console/", include("chat.urls")),
    path("api/v1/", include("chat.api_urls")),
    path("accounts/login/", views.ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
