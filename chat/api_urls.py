from django.urls import path

from chat import api_privacy as api

app_name = "api"

urlpatterns = [
    path("customers/", api.customer_lookup, name="customer_lookup"),
    path("customers/<uuid:public_id>/export/", api.customer_export, name="customer_export"),
    path("customers/<uuid:public_id>/erase/", api.customer_erase, name="customer_erase"),
]
