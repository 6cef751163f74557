"""The REST API, mounted at /api/ with the namespace "api"."""

from django.contrib.auth.decorators import login_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from campaigns.api import views

urlpatterns = [
    path("interactions/", views.InteractionListView.as_view(), name="interaction-list"),
    path(
        "interactions/<int:pk>/",
        views.InteractionDetailView.as_view(),
        name="interaction-detail",
    ),
    path("campaigns/", views.CampaignListView.as_view(), name="campaign-list"),
    path(
        "campaigns/<int:campaign_id>/statistics/",
        views.CampaignStatisticsView.as_view(),
        name="campaign-statistics",
    ),
    path("blacklists/", views.BlacklistListView.as_view(), name="blacklist-list"),
    path(
        "blacklists/<int:blacklist_id>/entries/",
        views.BlacklistEntryListView.as_view(),
        name="blacklist-entries",
    ),
    path(
        "blacklists/<int:blacklist_id>/entries/bulk-add/",
        views.BlacklistBulkAddView.as_view(),
        name="blacklist-bulk-add",
    ),
    path(
        "blacklists/<int:blacklist_id>/entries/bulk-remove/",
        views.BlacklistBulkRemoveView.as_view(),
        name="blacklist-bulk-remove",
    ),
    path("agents/me/status/", views.MyStatusView.as_view(), name="my-status"),
    path("agents/<int:agent_id>/status/", views.AgentStatusView.as_view(), name="agent-status"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # A person reading the docs signs in first; the page then loads the
    # schema with their session. Swagger UI is served from our static files.
    path(
        "docs/",
        login_required(SpectacularSwaggerView.as_view(url_name="api:schema")),
        name="docs",
    ),
]
