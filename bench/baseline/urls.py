from django.urls import include, path

from bench.baseline import views

urlpatterns = [
    path("bench/insert/", views.insert, name="bench-insert"),
    path("", include("contactcenter.urls")),
]
