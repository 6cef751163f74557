"""The REST API for integrators: parse, authorise, call one service or selector, respond.

Supervisors see everything; an agent sees only the conversations they hold
and sets only their own status. Lists are paginated (campaigns.api.pagination)
and run a fixed number of queries whatever their length.
"""

from collections import Counter
from dataclasses import asdict

from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.api import serializers as api
from campaigns.api.permissions import IsAgent, IsSupervisor
from campaigns.channels import get_channel
from campaigns.models import (
    Agent,
    AgentProfile,
    Blacklist,
    BlacklistEntry,
    Campaign,
    Interaction,
    InteractionEvent,
)
from campaigns.permissions import is_supervisor
from campaigns.routing import agent_set_status
from campaigns.selectors import campaign_statistics
from campaigns.services import (
    BulkRowResult,
    BulkRowStatus,
    blacklist_bulk_add,
    blacklist_bulk_remove,
)
from contactcenter.exceptions import ApplicationError


def _interactions_visible_to(user):
    """Every conversation for a supervisor; an agent's own for anyone else."""
    interactions = Interaction.objects.select_related(
        "campaign", "agent", "transfer_to", "disposition"
    ).order_by("-created_at", "-id")
    if is_supervisor(user):
        return interactions
    return interactions.filter(agent=user)


# Interactions -----------------------------------------------------------------


@extend_schema(parameters=[api.InteractionFilterSerializer])
class InteractionListView(generics.ListAPIView):
    """Conversations, newest first, filtered by the query parameters."""

    serializer_class = api.InteractionSerializer

    def get_queryset(self):
        filters = api.InteractionFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        lookups = {
            "campaign": "campaign_id",
            "status": "status",
            "agent": "agent_id",
            "created_after": "created_at__gte",
            "created_before": "created_at__lt",
        }
        return _interactions_visible_to(self.request.user).filter(
            **{lookups[name]: value for name, value in filters.validated_data.items()}
        )


class InteractionDetailView(generics.RetrieveAPIView):
    """One conversation with its messages (from its channel) and its event log."""

    serializer_class = api.InteractionDetailSerializer

    def get_queryset(self):
        return _interactions_visible_to(self.request.user).prefetch_related(
            Prefetch("events", queryset=InteractionEvent.objects.select_related("user"))
        )

    def get_object(self) -> Interaction:
        interaction = super().get_object()
        interaction.transcript = get_channel(interaction.channel_kind).transcript(
            interaction_id=interaction.pk
        )
        return interaction


# Campaigns --------------------------------------------------------------------


class CampaignListView(generics.ListAPIView):
    """Every campaign, by name."""

    permission_classes = [IsSupervisor]
    serializer_class = api.CampaignSerializer
    queryset = Campaign.objects.order_by("name")


class CampaignStatisticsView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(responses=api.CampaignStatisticsSerializer)
    def get(self, request: Request, campaign_id: int) -> Response:
        """The campaign's queue figures for today, the last hour and right now."""
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        now = timezone.now()
        statistics = campaign_statistics(campaign=campaign, now=now)
        data = {"campaign": campaign.pk, "generated_at": now, **asdict(statistics)}
        return Response(api.CampaignStatisticsSerializer(data).data)


# Blacklists -------------------------------------------------------------------


class BlacklistListView(generics.ListAPIView):
    """Every blacklist, by name, with how many numbers it holds."""

    permission_classes = [IsSupervisor]
    serializer_class = api.BlacklistSerializer
    queryset = Blacklist.objects.annotate(entry_count=Count("entries")).order_by("name")


class BlacklistEntryListView(generics.ListAPIView):
    """The numbers on one blacklist, in order."""

    permission_classes = [IsSupervisor]
    serializer_class = api.BlacklistEntrySerializer
    # Names the model for the schema generator, which has no URL kwargs to call get_queryset.
    queryset = BlacklistEntry.objects.none()

    def get_queryset(self):
        blacklist = get_object_or_404(Blacklist, pk=self.kwargs["blacklist_id"])
        return blacklist.entries.select_related("added_by").order_by("number", "id")


def _bulk_response(results: list[BulkRowResult], *counted: str) -> dict:
    counts = Counter(row.status for row in results)
    return {
        "results": [row._asdict() for row in results],
        **{status: counts[status] for status in counted},
    }


class BlacklistBulkAddView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(request=api.BulkAddSerializer, responses=api.BulkAddResultSerializer)
    def post(self, request: Request, blacklist_id: int) -> Response:
        """Add up to 1000 numbers; each row says added, duplicate or invalid (and why)."""
        blacklist = get_object_or_404(Blacklist, pk=blacklist_id)
        payload = api.BulkAddSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        entries = [(row["number"], row["reason"]) for row in payload.validated_data["entries"]]
        try:
            results = blacklist_bulk_add(
                blacklist=blacklist, entries=entries, added_by=request.user
            )
        except ApplicationError as error:
            raise serializers.ValidationError({"detail": error.message}) from None
        body = _bulk_response(
            results, BulkRowStatus.ADDED, BulkRowStatus.DUPLICATE, BulkRowStatus.INVALID
        )
        return Response(api.BulkAddResultSerializer(body).data)


class BlacklistBulkRemoveView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(request=api.BulkRemoveSerializer, responses=api.BulkRemoveResultSerializer)
    def post(self, request: Request, blacklist_id: int) -> Response:
        """Remove up to 1000 numbers; each row says removed, not_found or invalid (and why)."""
        blacklist = get_object_or_404(Blacklist, pk=blacklist_id)
        payload = api.BulkRemoveSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            results = blacklist_bulk_remove(
                blacklist=blacklist, numbers=payload.validated_data["numbers"]
            )
        except ApplicationError as error:
            raise serializers.ValidationError({"detail": error.message}) from None
        body = _bulk_response(
            results, BulkRowStatus.REMOVED, BulkRowStatus.NOT_FOUND, BulkRowStatus.INVALID
        )
        return Response(api.BulkRemoveResultSerializer(body).data)


# Agent status -----------------------------------------------------------------


class _AgentStatusView(APIView):
    """Read and change one agent's status through agent_set_status."""

    def get_agent(self):
        raise NotImplementedError

    def _respond(self, agent) -> Response:
        # An agent made outside the services may have no profile yet: offline.
        profile = AgentProfile.objects.filter(user=agent).first() or AgentProfile(
            user=agent, status_changed_at=None
        )
        return Response(api.AgentStatusSerializer(profile).data)

    def _change(self, request: Request, *, partial: bool) -> Response:
        agent = self.get_agent()
        change = api.AgentStatusSerializer(data=request.data, partial=partial)
        change.is_valid(raise_exception=True)
        # A PATCH without a status changes nothing.
        if "status" in change.validated_data:
            try:
                agent_set_status(
                    agent=agent,
                    status=change.validated_data["status"],
                    by=request.user,
                    reason=change.validated_data.get("reason", ""),
                )
            except ApplicationError as error:
                raise serializers.ValidationError({"detail": error.message}) from None
        return self._respond(agent)

    @extend_schema(responses=api.AgentStatusSerializer)
    def get(self, request: Request, **kwargs) -> Response:
        return self._respond(self.get_agent())

    @extend_schema(request=api.AgentStatusSerializer, responses=api.AgentStatusSerializer)
    def put(self, request: Request, **kwargs) -> Response:
        return self._change(request, partial=False)

    @extend_schema(request=api.AgentStatusSerializer, responses=api.AgentStatusSerializer)
    def patch(self, request: Request, **kwargs) -> Response:
        return self._change(request, partial=True)


class MyStatusView(_AgentStatusView):
    """The signed-in agent's own status (available, break, offline)."""

    permission_classes = [IsAgent]

    def get_agent(self):
        return self.request.user


class AgentStatusView(_AgentStatusView):
    """Any agent's status, for supervisors; the change records who made it."""

    permission_classes = [IsSupervisor]

    def get_agent(self):
        return get_object_or_404(Agent, pk=self.kwargs["agent_id"])
