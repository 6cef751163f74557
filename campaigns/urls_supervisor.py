from django.urls import path

from campaigns.views import supervisor

urlpatterns = [
    path("", supervisor.overview, name="overview"),
    path("live/", supervisor.overview_live, name="overview_live"),
    path("campaigns/<int:campaign_id>/", supervisor.campaign, name="campaign"),
    path("campaigns/<int:campaign_id>/live/", supervisor.campaign_live, name="campaign_live"),
    path(
        "campaigns/<int:campaign_id>/conversations/<int:interaction_id>/reassign/",
        supervisor.reassign,
        name="reassign",
    ),
    path(
        "campaigns/<int:campaign_id>/conversations/<int:interaction_id>/close/",
        supervisor.close,
        name="close",
    ),
]
