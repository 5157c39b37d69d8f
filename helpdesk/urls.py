from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat import views

urlpatterns = [
    path("", views.home, name="home"),
    path("demo/", views.demo, name="demo"),
    path("widget/<str:key>/", views.widget, name="widget"),
    path("console/", include("chat.urls")),
    path("api/v1/", include("chat.api_urls")),
    path("accounts/login/", views.ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
