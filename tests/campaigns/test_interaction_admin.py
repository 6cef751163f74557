"""The conversations admin: read only, events and messages inline, close action."""

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Interaction
from campaigns.services import interaction_enqueue_new
from sms_channel.models import Message
from tests.factories import SmsChannelFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting():
    channel = SmsChannelFactory(max_queue_seconds=300)
    interaction = interaction_enqueue_new(
        campaign=channel.campaign,
        channel_kind="sms",
        customer_number="+14155550111",
        max_queue_seconds=300,
        now=timezone.now(),
    )
    Message.objects.create(
        channel=channel,
        interaction=interaction,
        direction=Message.Direction.INBOUND,
        sender=Message.Sender.CUSTOMER,
        from_number="+14155550111",
        to_number=channel.phone_number.number,
        body="Where is my order 4711?",
        status=Message.Status.RECEIVED,
    )
    return interaction


def test_change_page_shows_messages_and_events_read_only(supervisor_client, waiting):
    url = reverse("admin:campaigns_interaction_change", args=[waiting.pk])
    page = supervisor_client.get(url).content.decode()

    assert "Where is my order 4711?" in page
    assert "new conversation" in page
    assert 'name="status"' not in page
    assert supervisor_client.post(url, {"status": "finished"}).status_code == 403
    waiting.refresh_from_db()
    assert waiting.status == "queued"


def test_close_action_abandons_a_waiting_conversation(supervisor_client, waiting):
    response = supervisor_client.post(
        reverse("admin:campaigns_interaction_changelist"),
        {"action": "close_selected", "_selected_action": [waiting.pk]},
        follow=True,
    )

    waiting.refresh_from_db()
    assert waiting.status == Interaction.Status.ABANDONED
    assert waiting.queue_outcome == "abandoned"
    assert waiting.events.filter(to_status="abandoned", actor="supervisor").count() == 1
    assert "Closed 1 conversation(s)." in response.content.decode()


def test_agents_cannot_open_it(agent_client, waiting):
    url = reverse("admin:campaigns_interaction_change", args=[waiting.pk])
    assert agent_client.get(url).status_code == 302
