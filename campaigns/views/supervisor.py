"""The supervisor dashboard: every active campaign live, one campaign's queue,
agents and conversations, and the supervisor's reassign and close actions.

Pages render from selectors; the `*_live` views render the same partials for
htmx to poll. Actions are plain POSTs that call one service and redirect back
with a flash message, so everything works without JavaScript.
"""

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from campaigns.charts import hourly_chart_svg
from campaigns.forms import CloseForm, ReassignForm
from campaigns.models import Campaign, display_name
from campaigns.permissions import is_supervisor
from campaigns.routing import interaction_close, interaction_reassign
from campaigns.selectors import CampaignDashboard, campaign_dashboard, campaigns_overview
from campaigns.views import role_required
from contactcenter.exceptions import ApplicationError

# How often the live parts of the pages refresh (htmx polling).
POLL_SECONDS = 3


supervisor_required = role_required(
    allowed=is_supervisor,
    refusal="The supervisor dashboard is for supervisors.",
    poll_fallback=lambda request: request.get_full_path(),
)


@supervisor_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    """Every active campaign at a glance."""
    context = {"overviews": campaigns_overview(now=timezone.now()), "poll_seconds": POLL_SECONDS}
    return render(request, "campaigns/supervisor/overview.html", context)


@supervisor_required
@require_GET
def overview_live(request: HttpRequest) -> HttpResponse:
    """The overview's figures, for htmx to swap in."""
    context = {"overviews": campaigns_overview(now=timezone.now())}
    return render(request, "campaigns/supervisor/_overview.html", context)


@supervisor_required
@require_GET
def campaign(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """One campaign: figures, today's chart, the queue, the agents and held conversations."""
    context = _campaign_context(campaign_id) | {"poll_seconds": POLL_SECONDS}
    return render(request, "campaigns/supervisor/campaign.html", context)


@supervisor_required
@require_GET
def campaign_live(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The campaign page's live part, for htmx to swap in."""
    return render(request, "campaigns/supervisor/_campaign.html", _campaign_context(campaign_id))


def _campaign_context(campaign_id: int) -> dict:
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    dashboard = campaign_dashboard(campaign=campaign, now=timezone.now())
    return {"campaign": campaign, "dashboard": dashboard, "chart": _chart(dashboard)}


def _chart(dashboard: CampaignDashboard) -> str:
    hours = dashboard.hours
    return hourly_chart_svg(
        labels=[f"{hour.start:%H:%M}" for hour in hours],
        volumes=[hour.entered for hour in hours],
        sl_percents=[hour.sl_percent for hour in hours],
        title=f"{dashboard.campaign.name}: entered and SL% per hour today "
        f"({dashboard.campaign.time_zone})",
    )


@supervisor_required
@require_POST
def reassign(request: HttpRequest, campaign_id: int, interaction_id: int) -> HttpResponse:
    """Give a conversation (waiting or held) to another member of the campaign."""
    # Looked up first: an id past the 64-bit range in the members query raised on SQLite.
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    form = ReassignForm(request.POST, campaign_id=campaign.pk)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("supervisor:campaign", campaign_id=campaign_id)
    agent = form.cleaned_data["agent"]
    try:
        with transaction.atomic(durable=True):
            interaction_reassign(interaction_id=interaction_id, by=request.user, to_agent=agent)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        name = display_name(agent)
        messages.success(request, f"Conversation #{interaction_id} is now with {name}.")
    return redirect("supervisor:campaign", campaign_id=campaign_id)


@supervisor_required
@require_POST
def close(request: HttpRequest, campaign_id: int, interaction_id: int) -> HttpResponse:
    """Close a conversation: a waiting one is abandoned, a held one finished."""
    form = CloseForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("supervisor:campaign", campaign_id=campaign_id)
    try:
        with transaction.atomic(durable=True):
            interaction_close(
                interaction_id=interaction_id, by=request.user, reason=form.cleaned_data["reason"]
            )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Conversation #{interaction_id} is closed.")
    return redirect("supervisor:campaign", campaign_id=campaign_id)


def _form_errors(form) -> str:
    """The form's errors as one flash message, each after its field's label."""
    return " ".join(
        f"{form[name].label}: {error}" if name in form.fields else error
        for name, errors in form.errors.items()
        for error in errors
    )
