from django.urls import path

from chat import api_privacy as api

app_name = "api"

urlpatterns = [
    path("customers/", api.customer_lookup, name="customer_lookup"),
    path("customers/<uuid:public_id>/export/", api.customer_export, name="customer_export"),
    path("customers/<uuid:public_id>/erase/", api.customer_erase, name="customer_erase"),
    path("sites/<str:key>/customers/", api.site_customer_lookup, name="site_customer_lookup"),
    path(
        "sites/<str:key>/customers/<uuid:public_id>/export/",
        api.site_customer_export,
        name="site_customer_export",
    ),
    path(
        "sites/<str:key>/customers/<uuid:public_id>/erase/",
        api.site_customer_erase,
        name="site_customer_erase",
    ),
]
