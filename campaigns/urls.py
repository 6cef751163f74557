from django.urls import include, path

from campaigns import views

urlpatterns = [
    path("", views.home, name="home"),
    path("agent/", include(("campaigns.urls_agent", "agent"))),
    path("supervisor/", include(("campaigns.urls_supervisor", "supervisor"))),
    path("api/", include(("campaigns.api.urls", "api"))),
]
