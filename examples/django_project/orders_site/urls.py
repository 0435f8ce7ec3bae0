"""The example's routes; ``security.yaml`` decides who reaches each."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("healthz", views.healthz),
    path("api/orders", views.orders),
    path("admin/", views.admin),
]
