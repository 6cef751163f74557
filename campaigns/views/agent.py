"""The agent console: presence, my conversations, pending work, one
conversation (reply, transfer, finish) and agent-started conversations.

Every action is a plain form POST answered by a redirect, a refusal shown
as a flash message (a refused reply or first text comes back on its page
with the text kept), so the console works without JavaScript; htmx only
polls the partials and sends the heartbeat. An agent reaches only
their own conversations: the `access_*` getters answer 404 for anyone
else's, and the services check again under the row lock.
"""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns.channels import get_channel
from campaigns.forms import (
    AgentStatusForm,
    FinishForm,
    ReplyForm,
    StartConversationForm,
    TransferToAgentForm,
    TransferToCampaignForm,
)
from campaigns.models import AGENTS_GROUP, AgentProfile, Interaction, display_name
from campaigns.routing import (
    agent_heartbeat,
    agent_set_status,
    interaction_finish,
    interaction_reply,
    interaction_take,
    interaction_transfer_accept,
    interaction_transfer_decline,
    interaction_transfer_to_agent,
    interaction_transfer_to_campaign,
)
from campaigns.segments import sms_segments
from campaigns.selectors import (
    active_dispositions,
    agent_campaigns,
    agent_conversations,
    agent_offered_interactions,
    agent_own_interactions,
    agent_pending,
    agent_profile,
    agent_takeable_interactions,
    conversation_detail,
    conversation_timeline,
    last_customer_message_at,
    transfer_targets,
)
from campaigns.services import interaction_mark_read
from campaigns.views import role_required
from contactcenter.exceptions import ApplicationError

# Agents start conversations by SMS: the one channel that can open them.
OUTBOUND_CHANNEL = "sms"


agent_required = role_required(
    allowed=lambda user: user.groups.filter(name=AGENTS_GROUP).exists(),
    refusal="The agent console is for agents.",
    poll_fallback=lambda request: reverse("agent:console"),
)


# Permission-checked getters: another agent's conversation does not exist.


def access_interaction(user, interaction_id: int) -> Interaction:
    """A conversation `user` holds or held last."""
    found = (
        agent_own_interactions(agent=user)
        .select_related("campaign", "transfer_to", "disposition")
        .filter(pk=interaction_id)
        .first()
    )
    if found is None:
        raise Http404("No such conversation.")
    return found


def access_takeable(user, interaction_id: int) -> Interaction:
    """A conversation of a campaign where `user` is an active member."""
    found = agent_takeable_interactions(agent=user).filter(pk=interaction_id).first()
    if found is None:
        raise Http404("No such conversation.")
    return found


def access_offer(user, interaction_id: int) -> Interaction:
    """A conversation offered to `user`, now or before."""
    found = agent_offered_interactions(agent=user).filter(pk=interaction_id).first()
    if found is None:
        raise Http404("No such conversation.")
    return found


# The console ----------------------------------------------------------------------


@agent_required
@require_GET
def console(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    return render(
        request,
        "campaigns/agent/console.html",
        {
            "profile": agent_profile(agent=request.user),
            "status_choices": AgentProfile.Status.choices,
            "conversations": agent_conversations(agent=request.user, now=now),
            "pending": agent_pending(agent=request.user, now=now),
        },
    )


@agent_required
@require_GET
def conversations_partial(request: HttpRequest) -> HttpResponse:
    conversations = agent_conversations(agent=request.user, now=timezone.now())
    return render(request, "campaigns/agent/_conversations.html", {"conversations": conversations})


@agent_required
@require_GET
def pending_partial(request: HttpRequest) -> HttpResponse:
    pending = agent_pending(agent=request.user, now=timezone.now())
    return render(request, "campaigns/agent/_pending.html", {"pending": pending})


@agent_required
@require_POST
def set_status(request: HttpRequest) -> HttpResponse:
    form = AgentStatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose available, on break or offline.")
        return redirect("agent:console")
    try:
        profile = agent_set_status(agent=request.user, status=form.cleaned_data["status"])
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"You are {profile.get_status_display().lower()}.")
    return redirect("agent:console")


@agent_required
@require_POST
def heartbeat(request: HttpRequest) -> HttpResponse:
    agent_heartbeat(agent=request.user)
    return HttpResponse(status=204)


# Pending work -----------------------------------------------------------------------


@agent_required
@require_POST
def take(request: HttpRequest, pk: int) -> HttpResponse:
    access_takeable(request.user, pk)
    try:
        interaction_take(interaction_id=pk, agent=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("agent:console")
    return redirect("agent:conversation", pk=pk)


@agent_required
@require_POST
def accept(request: HttpRequest, pk: int) -> HttpResponse:
    access_offer(request.user, pk)
    try:
        interaction_transfer_accept(interaction_id=pk, agent=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("agent:console")
    return redirect("agent:conversation", pk=pk)


@agent_required
@require_POST
def decline(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = access_offer(request.user, pk)
    try:
        interaction_transfer_decline(interaction_id=pk, agent=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"You declined the conversation with {interaction.customer_number}."
        )
    return redirect("agent:console")


# One conversation -------------------------------------------------------------------


def _mark_read(request: HttpRequest, interaction: Interaction, timeline) -> None:
    """The agent holding it has now seen every customer message shown."""
    latest = last_customer_message_at(timeline)
    if latest is None or interaction.agent_id != request.user.pk or not interaction.is_open:
        return
    if interaction.agent_read_at is None or latest > interaction.agent_read_at:
        interaction_mark_read(interaction=interaction, now=latest)


def _conversation_page(
    request: HttpRequest, interaction: Interaction, *, reply_form: ReplyForm | None = None
) -> HttpResponse:
    """The conversation page; `reply_form` is a reply that came back with errors."""
    detail = conversation_detail(interaction=interaction, agent=request.user, now=timezone.now())
    _mark_read(request, interaction, detail.timeline)
    reply_form = reply_form or ReplyForm()
    context = {
        "detail": detail,
        "interaction": interaction,
        "reply_form": reply_form,
        "segments": sms_segments(reply_form["body"].value() or ""),
        "finish_form": FinishForm(dispositions=detail.dispositions),
    }
    if detail.targets is not None:
        context["agent_form"] = TransferToAgentForm(agents=detail.targets.agents)
        context["campaign_form"] = TransferToCampaignForm(campaigns=detail.targets.campaigns)
    return render(request, "campaigns/agent/conversation.html", context)


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


@agent_required
@require_GET
def conversation(request: HttpRequest, pk: int) -> HttpResponse:
    return _conversation_page(request, access_interaction(request.user, pk))


@agent_required
@require_GET
def thread_partial(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = access_interaction(request.user, pk)
    timeline = conversation_timeline(interaction=interaction)
    _mark_read(request, interaction, timeline)
    return render(request, "campaigns/agent/_thread.html", {"timeline": timeline})


@agent_required
@require_POST
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    """Send a reply; a refused one comes back on the page with the text kept."""
    interaction = access_interaction(request.user, pk)
    form = ReplyForm(request.POST)
    if form.is_valid():
        try:
            interaction_reply(interaction_id=pk, by=request.user, body=form.cleaned_data["body"])
        except ApplicationError as exc:
            form.add_error("body", exc.message)
        else:
            return redirect("agent:conversation", pk=pk)
    return _conversation_page(request, interaction, reply_form=form)


@agent_required
@require_POST
def transfer_to_agent(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = access_interaction(request.user, pk)
    targets = transfer_targets(interaction=interaction, agent=request.user, now=timezone.now())
    form = TransferToAgentForm(request.POST, agents=targets.agents)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("agent:conversation", pk=pk)
    to_agent = form.picked()
    try:
        interaction_transfer_to_agent(
            interaction_id=pk, by=request.user, to_agent=to_agent, note=form.cleaned_data["note"]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Offered to {display_name(to_agent)}; it stays yours until they accept.",
        )
    return redirect("agent:conversation", pk=pk)


@agent_required
@require_POST
def transfer_to_campaign(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = access_interaction(request.user, pk)
    targets = transfer_targets(interaction=interaction, agent=request.user, now=timezone.now())
    form = TransferToCampaignForm(request.POST, campaigns=targets.campaigns)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("agent:conversation", pk=pk)
    campaign = form.picked()
    try:
        interaction_transfer_to_campaign(
            interaction_id=pk, by=request.user, campaign=campaign, note=form.cleaned_data["note"]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("agent:conversation", pk=pk)
    messages.success(
        request,
        f"The conversation with {interaction.customer_number} now waits in the queue "
        f"of “{campaign}”.",
    )
    return redirect("agent:console")


@agent_required
@require_POST
def finish(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = access_interaction(request.user, pk)
    form = FinishForm(
        request.POST, dispositions=active_dispositions(campaign_id=interaction.campaign_id)
    )
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("agent:conversation", pk=pk)
    disposition = form.picked()
    try:
        interaction_finish(
            interaction_id=pk,
            by=request.user,
            disposition_id=disposition.pk if disposition else None,
            note=form.cleaned_data["note"],
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("agent:conversation", pk=pk)
    messages.success(request, f"The conversation with {interaction.customer_number} is finished.")
    return redirect("agent:console")


# Agent-started conversations ------------------------------------------------------


@agent_required
@require_http_methods(["GET", "POST"])
def start_conversation(request: HttpRequest) -> HttpResponse:
    campaigns = agent_campaigns(agent=request.user, channel_kind=OUTBOUND_CHANNEL)
    if request.method == "POST":
        form = StartConversationForm(request.POST, campaigns=campaigns)
        if form.is_valid():
            try:
                interaction = get_channel(OUTBOUND_CHANNEL).start_conversation(
                    campaign=form.picked(),
                    customer_number=form.cleaned_data["customer_number"],
                    body=form.cleaned_data["body"],
                    agent=request.user,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                return redirect("agent:conversation", pk=interaction.pk)
    else:
        form = StartConversationForm(campaigns=campaigns)
    return render(
        request,
        "campaigns/agent/start_conversation.html",
        {
            "form": form,
            "has_campaigns": bool(campaigns),
            "segments": sms_segments(form["body"].value() or ""),
        },
    )
