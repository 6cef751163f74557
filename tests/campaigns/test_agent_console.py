"""The agent console through its HTTP interface: who may open it, presence,
my conversations and pending work, one conversation (history, reply,
transfers, finish), agent-started conversations, the segment counter, and
the query counts of every page and partial.

Assertions read the rendered HTML and the stored rows.
"""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from bots.models import BotSession
from campaigns.models import (
    AgentProfile,
    AgentStatusEvent,
    Interaction,
    InteractionEvent,
)
from campaigns.segments import sms_segments
from campaigns.services import blacklist_add_number
from sms_channel.models import Message, SmsChannel
from sms_channel.services import connector_opt_out_list
from tests.factories import (
    AgentFactory,
    BotFactory,
    DispositionFactory,
    InteractionFactory,
    MemberFactory,
    SmsChannelFactory,
)

pytestmark = pytest.mark.django_db

S = Interaction.Status
Strategy = SmsChannel.Strategy
AVAILABLE = AgentProfile.Status.AVAILABLE


# Helpers ------------------------------------------------------------------------


def ago(seconds: float) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(seconds=seconds)


def make_campaign(*, strategy: str = Strategy.RINGALL, **kwargs):
    """A campaign with an enabled SMS channel on a Simulator number."""
    return SmsChannelFactory(strategy=strategy, **kwargs).campaign


def join(agent, campaign, *, status: str = AVAILABLE) -> None:
    """Make `agent` an active member of `campaign`, with that status, seen just now."""
    MemberFactory(campaign=campaign, agent=agent)
    AgentProfile.objects.filter(user=agent).update(status=status, last_seen_at=timezone.now())


def held_by(agent, campaign, **kwargs) -> Interaction:
    kwargs.setdefault("status", S.ASSIGNED)
    kwargs.setdefault("assigned_at", ago(600))
    kwargs.setdefault("queued_at", ago(660))
    kwargs.setdefault("left_queue_at", kwargs["assigned_at"])
    kwargs.setdefault("last_message_at", ago(300))
    return InteractionFactory(
        campaign=campaign,
        agent=agent,
        queue_outcome=Interaction.QueueOutcome.ATTENDED,
        **kwargs,
    )


def offered(from_agent, to_agent, campaign, **kwargs) -> Interaction:
    return held_by(from_agent, campaign, status=S.TRANSFERRING, transfer_to=to_agent, **kwargs)


def customer_says(interaction: Interaction, body: str, *, at=None) -> Message:
    channel = interaction.campaign.sms_channel
    return Message.objects.create(
        channel=channel,
        interaction=interaction,
        direction=Message.Direction.INBOUND,
        sender=Message.Sender.CUSTOMER,
        from_number=interaction.customer_number,
        to_number=channel.phone_number.number,
        body=body,
        status=Message.Status.RECEIVED,
        created_at=at or timezone.now(),
    )


def we_said(interaction: Interaction, body: str, *, sender=Message.Sender.AGENT, **kwargs):
    channel = interaction.campaign.sms_channel
    kwargs.setdefault("status", Message.Status.DELIVERED)
    return Message.objects.create(
        channel=channel,
        interaction=interaction,
        direction=Message.Direction.OUTBOUND,
        sender=sender,
        from_number=channel.phone_number.number,
        to_number=interaction.customer_number,
        body=body,
        **kwargs,
    )


def fresh(interaction: Interaction) -> Interaction:
    return Interaction.objects.get(pk=interaction.pk)


def html(response) -> str:
    return response.content.decode()


def flashes(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def url(name: str, *args) -> str:
    return reverse(f"agent:{name}", args=args)


# Access -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name", "args"),
    [
        ("get", "console", ()),
        ("get", "conversations-partial", ()),
        ("get", "conversation", (1,)),
        ("post", "status", ()),
        ("post", "heartbeat", ()),
        ("post", "reply", (1,)),
        ("get", "start-conversation", ()),
    ],
)
def test_anonymous_visitors_are_sent_to_sign_in(client, method, name, args):
    path = url(name, *args)

    response = getattr(client, method)(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_a_poll_after_the_session_ended_sends_the_page_to_sign_in(client):
    response = client.get(
        url("conversations-partial"),
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/agent/"},
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/agent/"
    assert response.content == b""


def test_a_supervisor_is_not_an_agent(supervisor_client):
    assert supervisor_client.get(url("console")).status_code == 403
    assert supervisor_client.post(url("heartbeat")).status_code == 403


def test_another_agents_conversation_does_not_exist_for_me(
    agent_client, agent, django_capture_on_commit_callbacks
):
    campaign = make_campaign()
    other = AgentFactory()
    join(other, campaign)
    theirs = held_by(other, campaign, customer_number="+14155550111")
    customer_says(theirs, "My secret order number")
    events_before = InteractionEvent.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        responses = {
            "page": agent_client.get(url("conversation", theirs.pk)),
            "thread": agent_client.get(url("thread-partial", theirs.pk)),
            "reply": agent_client.post(url("reply", theirs.pk), {"body": "Hi"}),
            "transfer to agent": agent_client.post(
                url("transfer-agent", theirs.pk), {"to_agent": agent.pk}
            ),
            "transfer to campaign": agent_client.post(
                url("transfer-campaign", theirs.pk), {"campaign": make_campaign().pk}
            ),
            "finish": agent_client.post(url("finish", theirs.pk)),
            "take": agent_client.post(url("take", theirs.pk)),
            "accept": agent_client.post(url("accept", theirs.pk)),
            "decline": agent_client.post(url("decline", theirs.pk)),
        }

    assert {what: r.status_code for what, r in responses.items()} == dict.fromkeys(responses, 404)
    assert "secret" not in html(responses["page"])
    stored = fresh(theirs)
    assert (stored.status, stored.agent_id, stored.agent_read_at) == (S.ASSIGNED, other.pk, None)
    assert not Message.objects.filter(direction=Message.Direction.OUTBOUND).exists()
    assert InteractionEvent.objects.count() == events_before


# Presence -----------------------------------------------------------------------


def test_the_console_shows_my_status_and_polls_and_beats(agent_client, agent):
    page = html(agent_client.get(url("console")))

    assert 'aria-pressed="true">Offline</button>' in page
    assert f'hx-post="{url("heartbeat")}" hx-trigger="every 20s"' in page
    assert f'hx-get="{url("conversations-partial")}" hx-trigger="every 2s"' in page
    assert f'hx-get="{url("pending-partial")}" hx-trigger="every 2s"' in page
    assert 'id="sound-toggle"' in page
    assert "/static/js/console.js" in page


def test_changing_my_status_is_stored_with_an_event(agent_client, agent):
    response = agent_client.post(url("status"), {"status": "available"}, follow=True)

    assert response.redirect_chain == [(url("console"), 302)]
    assert "You are available." in flashes(response)
    assert 'aria-pressed="true">Available</button>' in html(response)
    profile = AgentProfile.objects.get(user=agent)
    assert profile.status == AVAILABLE
    assert profile.last_seen_at is not None
    assert list(
        AgentStatusEvent.objects.values_list("agent", "from_status", "to_status", "changed_by")
    ) == [(agent.pk, "offline", "available", agent.pk)]


def test_an_unknown_status_changes_nothing(agent_client, agent):
    response = agent_client.post(url("status"), {"status": "asleep"}, follow=True)

    assert "Choose available, on break or offline." in flashes(response)
    assert AgentProfile.objects.get(user=agent).status == AgentProfile.Status.OFFLINE
    assert not AgentStatusEvent.objects.exists()


def test_the_heartbeat_marks_me_seen(agent_client, agent):
    AgentProfile.objects.filter(user=agent).update(last_seen_at=ago(3600))
    before = timezone.now()

    response = agent_client.post(url("heartbeat"))

    assert response.status_code == 204
    assert AgentProfile.objects.get(user=agent).last_seen_at >= before


# My conversations -----------------------------------------------------------------


def test_my_conversations_lists_only_mine_with_unread_counts(agent_client, agent):
    campaign = make_campaign(campaign__name="Billing")
    other = AgentFactory(first_name="Olga", last_name="Other")
    join(other, campaign)
    read = held_by(agent, campaign, customer_number="+14155550101", agent_read_at=ago(100))
    customer_says(read, "seen", at=ago(200))
    customer_says(read, "new one", at=ago(50))
    customer_says(read, "and another", at=ago(40))
    we_said(read, "our reply does not count")
    unread_never_opened = held_by(
        agent, campaign, customer_number="+14155550102", assigned_at=ago(5)
    )
    customer_says(unread_never_opened, "hello?")
    away = offered(agent, other, campaign, customer_number="+14155550103")
    held_by(other, campaign, customer_number="+14155550199")
    finished = held_by(agent, campaign, customer_number="+14155550198", status=S.FINISHED)

    page = html(agent_client.get(url("conversations-partial")))

    rows = re.findall(r'<li class="work[^"]*" data-alert-id="mine-(\d+)">(.*?)</li>', page, re.S)
    assert [int(pk) for pk, _ in rows] == [unread_never_opened.pk, away.pk, read.pk]
    by_pk = {int(pk): row for pk, row in rows}
    assert "2 unread" in by_pk[read.pk]
    assert "1 unread" in by_pk[unread_never_opened.pk]
    assert "unread" not in by_pk[away.pk]
    assert "Billing" in by_pk[read.pk]
    # Assigned 5 s ago: flagged new; ten minutes ago: not.
    assert "badge-new" in by_pk[unread_never_opened.pk]
    assert "badge-new" not in by_pk[read.pk]
    assert "offered to Olga Other" in by_pk[away.pk]
    assert "+14155550199" not in page
    assert finished.customer_number not in page


# Pending work -----------------------------------------------------------------------


def test_i_take_a_waiting_conversation_and_a_colleague_finds_it_taken(client, agent):
    campaign = make_campaign(strategy=Strategy.RINGALL)
    colleague = AgentFactory()
    join(agent, campaign)
    join(colleague, campaign)
    waiting = InteractionFactory(campaign=campaign, customer_number="+14155550120")

    client.force_login(agent)
    pending = html(client.get(url("pending-partial")))
    assert "+14155550120" in pending
    assert f'action="{url("take", waiting.pk)}"' in pending

    response = client.post(url("take", waiting.pk))

    assert response["Location"] == url("conversation", waiting.pk)
    stored = fresh(waiting)
    assert (stored.status, stored.agent_id) == (S.ASSIGNED, agent.pk)
    assert InteractionEvent.objects.filter(
        interaction=waiting, to_status=S.ASSIGNED, user=agent
    ).exists()

    client.force_login(colleague)
    response = client.post(url("take", waiting.pk), follow=True)

    assert response.redirect_chain == [(url("console"), 302)]
    assert "This conversation has already been taken." in html(response)
    assert fresh(waiting).agent_id == agent.pk
    assert "+14155550120" not in html(client.get(url("pending-partial")))


def test_pending_lists_only_queues_i_may_take_from(agent_client, agent):
    ringall = make_campaign(strategy=Strategy.RINGALL)
    routed = make_campaign(strategy=Strategy.LINEAR)
    picking = make_campaign(strategy=Strategy.LINEAR, agents_may_pick=True)
    not_mine = make_campaign(strategy=Strategy.RINGALL)
    for campaign in (ringall, routed, picking):
        join(agent, campaign)
    InteractionFactory(campaign=ringall, customer_number="+14155550131")
    InteractionFactory(campaign=routed, customer_number="+14155550132")
    InteractionFactory(campaign=picking, customer_number="+14155550133")
    InteractionFactory(campaign=not_mine, customer_number="+14155550134")

    page = html(agent_client.get(url("pending-partial")))

    assert "+14155550131" in page
    assert "+14155550133" in page
    assert "+14155550132" not in page
    assert "+14155550134" not in page
    # Ring all rings: only those items make the console beep.
    assert page.count("data-alert-id=") == 1


def test_i_accept_a_transfer_offered_to_me(agent_client, agent):
    campaign = make_campaign()
    colleague = AgentFactory(first_name="Carl", last_name="Colleague")
    join(colleague, campaign)
    join(agent, campaign)
    offer = offered(
        colleague,
        agent,
        campaign,
        customer_number="+14155550140",
        transfer_note="Wants a refund",
        transfer_deadline_at=timezone.now() + datetime.timedelta(seconds=45),
    )

    pending = html(agent_client.get(url("pending-partial")))
    assert "from Carl Colleague" in pending
    assert "“Wants a refund”" in pending
    left = int(re.search(r'data-seconds-left="(\d+)"', pending).group(1))
    assert 40 <= left <= 45
    assert f'action="{url("accept", offer.pk)}"' in pending
    assert f'action="{url("decline", offer.pk)}"' in pending

    response = agent_client.post(url("accept", offer.pk))

    assert response["Location"] == url("conversation", offer.pk)
    stored = fresh(offer)
    assert (stored.status, stored.agent_id, stored.transfer_to_id) == (S.ASSIGNED, agent.pk, None)
    event = InteractionEvent.objects.filter(interaction=offer).latest("id")
    assert (event.reason, event.user_id) == ("transfer accepted", agent.pk)


def test_i_decline_a_transfer_and_it_goes_back(agent_client, agent):
    campaign = make_campaign()
    colleague = AgentFactory()
    join(colleague, campaign)
    join(agent, campaign)
    offer = offered(colleague, agent, campaign, customer_number="+14155550141")

    response = agent_client.post(url("decline", offer.pk), follow=True)

    assert "You declined the conversation with +14155550141." in flashes(response)
    stored = fresh(offer)
    assert (stored.status, stored.agent_id, stored.transfer_to_id) == (
        S.ASSIGNED,
        colleague.pk,
        None,
    )


def test_answering_an_offer_that_lapsed_says_so(agent_client, agent):
    campaign = make_campaign()
    colleague = AgentFactory()
    join(colleague, campaign)
    lapsed = held_by(colleague, campaign)
    InteractionEvent.objects.create(
        interaction=lapsed,
        from_status=S.TRANSFERRING,
        to_status=S.ASSIGNED,
        reason="transfer not accepted in time; returned",
        data={"from_agent": colleague.pk, "to_agent": agent.pk},
    )

    response = agent_client.post(url("accept", lapsed.pk), follow=True)

    assert "This transfer is no longer offered to you." in flashes(response)
    assert fresh(lapsed).agent_id == colleague.pk


# One conversation -------------------------------------------------------------------


def test_the_conversation_page_shows_header_answers_and_history(agent_client, agent):
    campaign = make_campaign(campaign__name="Support")
    conversation = held_by(
        agent,
        campaign,
        customer_number="+14155550150",
        queued_at=ago(700),
        assigned_at=ago(610),
        left_queue_at=ago(610),
    )
    InteractionEvent.objects.create(
        interaction=conversation,
        from_status="",
        to_status=S.QUEUED,
        actor=InteractionEvent.Actor.CUSTOMER,
        reason="new conversation",
        created_at=ago(700),
    )
    InteractionEvent.objects.create(
        interaction=conversation,
        from_status=S.QUEUED,
        to_status=S.ASSIGNED,
        reason="routed (linear)",
        data={"agent": agent.pk},
        created_at=ago(610),
    )
    BotSession.objects.create(
        interaction=conversation,
        bot=BotFactory(),
        trigger=BotSession.Trigger.START,
        status=BotSession.Status.STOPPED,
        answers={"name": "Ann", "order": "A-1001", "_errors": ["webhook timed out"]},
    )
    customer_says(conversation, "Where is my parcel?", at=ago(700))
    we_said(conversation, "What is your name?", sender=Message.Sender.BOT, created_at=ago(690))
    last_question = customer_says(conversation, "Still there?", at=ago(30))
    we_said(
        conversation,
        "Looking now",
        status=Message.Status.FAILED,
        error_code="30003",
        error_message="Unreachable destination handset",
        sender_user=agent,
        created_at=ago(20),
    )

    response = agent_client.get(url("conversation", conversation.pk))

    page = html(response)
    assert "<h1>+14155550150</h1>" in page
    assert "Support" in page
    assert ">Assigned</span>" in page
    assert "waited 1 min in the queue" in page
    assert "<dt>name</dt><dd>Ann</dd>" in page
    assert "<dt>order</dt><dd>A-1001</dd>" in page
    assert "_errors" not in page
    thread = page[page.index('id="thread"') :]
    order = [
        thread.index(text)
        for text in (
            "Queued: new conversation",
            "Where is my parcel?",
            "What is your name?",
            f"Assigned: routed (linear) · to {agent.get_full_name()}",
            "Still there?",
            "Looking now",
        )
    ]
    assert order == sorted(order)
    assert 'Failed · <span class="delivery-error">30003 Unreachable destination handset' in page
    assert f'hx-get="{url("thread-partial", conversation.pk)}" hx-trigger="every 2s"' in page
    assert "0 characters · 0 SMS segments · GSM-7, 160 left in this segment" in page
    # Opening it marks every customer message shown as read.
    assert fresh(conversation).agent_read_at == last_question.created_at


def test_the_thread_partial_brings_new_messages(agent_client, agent):
    conversation = held_by(agent, make_campaign())
    customer_says(conversation, "First")
    agent_client.get(url("conversation", conversation.pk))
    later = customer_says(conversation, "Second", at=timezone.now() + datetime.timedelta(seconds=1))

    part = html(agent_client.get(url("thread-partial", conversation.pk)))

    assert "First" in part and "Second" in part
    assert "<html" not in part
    assert fresh(conversation).agent_read_at == later.created_at


def test_my_reply_is_sent_as_me(agent_client, agent, django_capture_on_commit_callbacks):
    conversation = held_by(agent, make_campaign(), customer_number="+14155550160")

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(url("reply", conversation.pk), {"body": "  On its way!  "})

    assert response["Location"] == url("conversation", conversation.pk)
    message = Message.objects.get(interaction=conversation)
    assert (message.direction, message.sender, message.sender_user_id, message.body) == (
        Message.Direction.OUTBOUND,
        Message.Sender.AGENT,
        agent.pk,
        "On its way!",
    )
    assert message.to_number == "+14155550160"
    # The Simulator connector took it.
    assert message.status != Message.Status.QUEUED
    assert message.provider_sid
    assert fresh(conversation).first_response_at is not None


def test_a_reply_to_an_opted_out_customer_is_refused_and_kept(agent_client, agent):
    campaign = make_campaign()
    conversation = held_by(agent, campaign, customer_number="+14155550161")
    blacklist_add_number(
        blacklist=connector_opt_out_list(connector=campaign.sms_channel.connector),
        number="+14155550161",
    )

    response = agent_client.post(url("reply", conversation.pk), {"body": "Hello again €"})

    assert response.status_code == 200
    page = html(response)
    assert "+14155550161 has opted out (texted STOP); they must text START first." in page
    assert ">Hello again €</textarea>" in page
    assert "14 characters · 1 SMS segment · GSM-7, 146 left in this segment" in page
    assert not Message.objects.exists()


def test_a_reply_to_a_finished_conversation_is_refused(agent_client, agent):
    conversation = held_by(agent, make_campaign(), status=S.FINISHED)

    response = agent_client.post(url("reply", conversation.pk), {"body": "Anything else?"})

    assert "This conversation is finished; it takes no more replies." in html(response)
    assert not Message.objects.exists()


def test_finishing_needs_a_disposition_when_the_campaign_has_some(agent_client, agent):
    campaign = make_campaign()
    solved = DispositionFactory(campaign=campaign, name="Solved")
    DispositionFactory(campaign=campaign, name="Retired", active=False)
    conversation = held_by(agent, campaign, customer_number="+14155550170")

    page = html(agent_client.get(url("conversation", conversation.pk)))
    assert f'<option value="{solved.pk}">Solved</option>' in page
    assert "Retired" not in page

    response = agent_client.post(url("finish", conversation.pk), {"note": ""}, follow=True)

    assert response.redirect_chain == [(url("conversation", conversation.pk), 302)]
    assert "Pick a disposition to finish this conversation." in flashes(response)
    assert fresh(conversation).status == S.ASSIGNED

    response = agent_client.post(
        url("finish", conversation.pk), {"disposition": solved.pk, "note": "Refunded"}, follow=True
    )

    assert response.redirect_chain == [(url("console"), 302)]
    assert "The conversation with +14155550170 is finished." in flashes(response)
    stored = fresh(conversation)
    assert (stored.status, stored.disposition_id) == (S.FINISHED, solved.pk)
    event = InteractionEvent.objects.filter(interaction=conversation).latest("id")
    assert (event.to_status, event.user_id, event.data) == (
        S.FINISHED,
        agent.pk,
        {"note": "Refunded"},
    )


def test_finishing_without_dispositions_needs_none(agent_client, agent):
    conversation = held_by(agent, make_campaign())

    agent_client.post(url("finish", conversation.pk), {"note": ""})

    assert fresh(conversation).status == S.FINISHED


def test_i_offer_a_conversation_to_an_eligible_colleague(agent_client, agent):
    campaign = make_campaign()
    join(agent, campaign)
    colleague = AgentFactory(first_name="Bea", last_name="Bright")
    join(colleague, campaign)
    on_break = AgentFactory(first_name="Ben", last_name="Break")
    join(on_break, campaign, status=AgentProfile.Status.BREAK)
    conversation = held_by(agent, campaign)

    page = html(agent_client.get(url("conversation", conversation.pk)))
    options = re.search(r'<select name="to_agent".*?</select>', page, re.S).group(0)
    assert f'<option value="{colleague.pk}">Bea Bright</option>' in options
    assert "Ben Break" not in options
    assert f'value="{agent.pk}"' not in options

    response = agent_client.post(
        url("transfer-agent", conversation.pk),
        {"to_agent": colleague.pk, "note": "Speaks Spanish"},
        follow=True,
    )

    assert "Offered to Bea Bright; it stays yours until they accept." in flashes(response)
    stored = fresh(conversation)
    assert (stored.status, stored.agent_id, stored.transfer_to_id, stored.transfer_note) == (
        S.TRANSFERRING,
        agent.pk,
        colleague.pk,
        "Speaks Spanish",
    )
    assert "Offered to Bea Bright" in html(response)


def test_offering_to_an_agent_who_cannot_take_it_is_refused(agent_client, agent):
    campaign = make_campaign()
    on_break = AgentFactory()
    join(on_break, campaign, status=AgentProfile.Status.BREAK)
    conversation = held_by(agent, campaign)

    response = agent_client.post(
        url("transfer-agent", conversation.pk), {"to_agent": on_break.pk}, follow=True
    )

    assert "That agent cannot take conversations now; choose another." in flashes(response)
    assert fresh(conversation).status == S.ASSIGNED


def test_i_move_a_conversation_to_another_campaign(agent_client, agent):
    campaign = make_campaign()
    sales = make_campaign(campaign__name="Sales")
    make_campaign(campaign__name="Closed shop", status=SmsChannel.Status.DISABLED)
    conversation = held_by(agent, campaign, customer_number="+14155550180")

    page = html(agent_client.get(url("conversation", conversation.pk)))
    options = re.search(r'<select name="campaign".*?</select>', page, re.S).group(0)
    assert f'<option value="{sales.pk}">Sales</option>' in options
    assert "Closed shop" not in options

    response = agent_client.post(
        url("transfer-campaign", conversation.pk),
        {"campaign": sales.pk, "note": "Wants to buy"},
        follow=True,
    )

    assert response.redirect_chain == [(url("console"), 302)]
    assert "The conversation with +14155550180 now waits in the queue of “Sales”." in flashes(
        response
    )
    stored = fresh(conversation)
    assert (stored.status, stored.campaign_id, stored.agent_id) == (S.QUEUED, sales.pk, None)
    # No longer mine: its page is gone for me.
    assert agent_client.get(url("conversation", conversation.pk)).status_code == 404


# Agent-started conversations ------------------------------------------------------


def test_i_start_a_conversation(agent_client, agent, django_capture_on_commit_callbacks):
    campaign = make_campaign(campaign__name="Outreach")
    join(agent, campaign)
    make_campaign(campaign__name="Not a member")

    page = html(agent_client.get(url("start-conversation")))
    # The only campaign I may text from is already chosen.
    assert f'<option value="{campaign.pk}" selected>Outreach</option>' in page
    assert "Not a member" not in page

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            url("start-conversation"),
            {"campaign": campaign.pk, "customer_number": "+1 415 555 0190", "body": "Hi!"},
        )

    conversation = Interaction.objects.get(customer_number="+14155550190")
    assert response["Location"] == url("conversation", conversation.pk)
    assert (conversation.status, conversation.agent_id, conversation.direction) == (
        S.ASSIGNED,
        agent.pk,
        Interaction.Direction.OUTBOUND,
    )
    message = Message.objects.get(interaction=conversation)
    assert (message.sender, message.sender_user_id, message.body) == ("agent", agent.pk, "Hi!")


def test_starting_a_conversation_with_an_opted_out_number_is_refused(agent_client, agent):
    campaign = make_campaign()
    join(agent, campaign)
    blacklist_add_number(
        blacklist=connector_opt_out_list(connector=campaign.sms_channel.connector),
        number="+14155550191",
    )

    response = agent_client.post(
        url("start-conversation"),
        {"campaign": campaign.pk, "customer_number": "+14155550191", "body": "Special offer"},
    )

    assert response.status_code == 200
    page = html(response)
    assert "+14155550191 has opted out (texted STOP); they must text START first." in page
    assert ">Special offer</textarea>" in page
    assert not Interaction.objects.exists()


def test_starting_a_conversation_with_a_bad_number_says_why(agent_client, agent):
    campaign = make_campaign()
    join(agent, campaign)

    response = agent_client.post(
        url("start-conversation"),
        {"campaign": campaign.pk, "customer_number": "12", "body": "Hi"},
    )

    assert "“12” has no country code" in html(response)
    assert not Interaction.objects.exists()


# Segments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "segments", "remaining"),
    [
        ("", "GSM-7", 0, 0, 160),
        ("a" * 160, "GSM-7", 160, 1, 0),
        ("a" * 161, "GSM-7", 161, 2, 145),
        ("a" * 306, "GSM-7", 306, 2, 0),
        ("a" * 307, "GSM-7", 307, 3, 152),
        ("€" * 80, "GSM-7", 160, 1, 0),
        ("€" * 81, "GSM-7", 162, 2, 144),
        ("[]{}^~|\\", "GSM-7", 16, 1, 144),
        ("Ça coûte 5 £", "UCS-2", 12, 1, 58),  # û is not GSM-7
        ("Très bien, ¿sì? à ñ Ü", "GSM-7", 21, 1, 139),
        ("Très bien, ¿sí?", "UCS-2", 15, 1, 55),  # í is not GSM-7
        ("👍", "UCS-2", 2, 1, 68),
        ("a" * 69 + "👍", "UCS-2", 71, 2, 63),
        ("ç" * 70, "UCS-2", 70, 1, 0),
        ("ç" * 135, "UCS-2", 135, 3, 66),
    ],
)
def test_sms_segments(text, encoding, characters, segments, remaining):
    count = sms_segments(text)

    assert (count.encoding, count.characters, count.segments, count.remaining) == (
        encoding,
        characters,
        segments,
        remaining,
    )


# Query counts -------------------------------------------------------------------------


def _busy_agent(agent, n: int) -> Interaction:
    """`n` of everything: held conversations with messages, offers, waiting ones."""
    campaign = make_campaign(strategy=Strategy.RINGALL)
    join(agent, campaign)
    colleague = AgentFactory()
    join(colleague, campaign)
    # Room for more, so the transfer form lists them whatever `n`.
    AgentProfile.objects.filter(user=colleague).update(capacity=50)
    make_campaign()  # somewhere to transfer to
    for _ in range(n):
        conversation = held_by(agent, campaign, agent_read_at=ago(100))
        customer_says(conversation, "Hello")
        offered(colleague, agent, campaign, transfer_deadline_at=ago(-60))
        InteractionFactory(campaign=campaign)
    page = held_by(agent, campaign)
    for i in range(n):
        customer_says(page, f"Message {i}", at=ago(100 - i))
        we_said(page, f"Reply {i}", sender_user=agent, created_at=ago(99 - i))
        InteractionEvent.objects.create(
            interaction=page,
            from_status=S.QUEUED,
            to_status=S.ASSIGNED,
            reason="routed",
            user=colleague,
            data={"from_agent": colleague.pk, "to_agent": agent.pk},
        )
    return page


# Session, user and the Agents group check come first on every page.
PINNED = {
    "console": 10,
    "conversations-partial": 5,
    "pending-partial": 7,
    "conversation": 14,
    "thread-partial": 8,
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_query_counts_do_not_grow_with_the_work(client, django_assert_num_queries, name):
    for n in (2, 6):
        agent = AgentFactory()
        page = _busy_agent(agent, n)
        client.force_login(agent)
        args = (page.pk,) if name in ("conversation", "thread-partial") else ()
        # Unread messages each time, so opening the page writes the read mark each time.
        Interaction.objects.filter(pk=page.pk).update(agent_read_at=ago(1000))

        with django_assert_num_queries(PINNED[name]):
            response = client.get(url(name, *args))

        assert response.status_code == 200
