import dataclasses
import datetime
import itertools

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from campaigns.models import (
    AgentProfile,
    AgentStatusEvent,
    Blacklist,
    BlacklistEntry,
    Campaign,
    Interaction,
    InteractionEvent,
)
from sms_channel.models import Message, SmsChannel
from tests.factories import (
    AgentFactory,
    BlacklistEntryFactory,
    BlacklistFactory,
    DispositionFactory,
    InteractionFactory,
    MemberFactory,
    SmsChannelFactory,
    SupervisorFactory,
)

# The webhook tests reuse the SMS channel's Twilio set-up as it is.
from tests.sms_channel.conftest import twilio_channel  # noqa: F401

S = Interaction.Status


@dataclasses.dataclass
class World:
    """A small contact center with something in every state an endpoint acts on."""

    supervisor: User
    agent: User
    colleague: User
    outsider: User
    campaign: Campaign
    other_campaign: Campaign
    held: Interaction
    offered: Interaction
    queued: Interaction
    colleagues: Interaction
    finished: Interaction
    blacklist: Blacklist

    @property
    def interaction_ids(self) -> list[int]:
        return [
            self.held.pk,
            self.offered.pk,
            self.queued.pk,
            self.colleagues.pk,
            self.finished.pk,
        ]

    @property
    def campaign_ids(self) -> list[int]:
        return [self.campaign.pk, self.other_campaign.pk]

    @property
    def user_ids(self) -> list[int]:
        return [u.pk for u in (self.supervisor, self.agent, self.colleague, self.outsider)]

    @property
    def disposition_ids(self) -> list[int]:
        return list(self.campaign.dispositions.values_list("pk", flat=True))


def _ago(minutes: float) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(minutes=minutes)


# The factories' own sequences run out of 4-digit numbers after 10,000 rows
# in one session, which a deep run here gets past.
_numbers = itertools.count()


def _customer() -> str:
    return f"+1415{next(_numbers):07d}"


def _channel() -> SmsChannel:
    return SmsChannelFactory(
        strategy=SmsChannel.Strategy.RINGALL, phone_number__number=f"+1212{next(_numbers):07d}"
    )


def _held(agent, campaign, **kwargs) -> Interaction:
    kwargs.setdefault("status", S.ASSIGNED)
    return InteractionFactory(
        campaign=campaign,
        customer_number=_customer(),
        agent=agent,
        queued_at=_ago(11),
        assigned_at=_ago(10),
        left_queue_at=_ago(10),
        last_message_at=_ago(5),
        queue_outcome=Interaction.QueueOutcome.ATTENDED,
        **kwargs,
    )


def make_world(people: World | None = None) -> World:
    """Two ring-all SMS campaigns; the agent and a colleague available in both.

    The agent holds one conversation, is offered another by the colleague,
    can take a queued one and finished one earlier; the colleague holds one
    the agent must not reach. The users of `people` come back in new
    campaigns, so that a signed-in test client stays signed in.
    """
    campaign = _channel().campaign
    other_campaign = _channel().campaign
    DispositionFactory(campaign=campaign)
    if people is None:
        supervisor, agent, colleague, outsider = (
            SupervisorFactory(),
            AgentFactory(),
            AgentFactory(),
            AgentFactory(),
        )
    else:
        # Earlier worlds' conversations would count against the agents' capacity.
        Interaction.objects.filter(status__in=Interaction.OPEN_STATUSES).update(
            status=S.FINISHED, finished_at=timezone.now()
        )
        supervisor, agent, colleague, outsider = (
            people.supervisor,
            people.agent,
            people.colleague,
            people.outsider,
        )
    for member in (agent, colleague):
        for each in (campaign, other_campaign):
            MemberFactory(campaign=each, agent=member)
    AgentProfile.objects.filter(user__in=[agent, colleague]).update(
        status=AgentProfile.Status.AVAILABLE, last_seen_at=timezone.now()
    )
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550100")
    return World(
        supervisor=supervisor,
        agent=agent,
        colleague=colleague,
        outsider=outsider,
        campaign=campaign,
        other_campaign=other_campaign,
        held=_held(agent, campaign),
        offered=_held(colleague, campaign, status=S.TRANSFERRING, transfer_to=agent),
        queued=InteractionFactory(
            campaign=campaign, customer_number=_customer(), queued_at=_ago(1)
        ),
        colleagues=_held(colleague, campaign),
        finished=_held(
            agent, campaign, status=S.FINISHED, finished_at=_ago(2), close_reason="finished"
        ),
        blacklist=blacklist,
    )


@pytest.fixture
def world(db) -> World:
    return make_world()


def snapshot() -> tuple:
    """What a refused request must leave as it was: row counts of the tables
    requests write, and who holds which conversation in which state."""
    return (
        Interaction.objects.count(),
        InteractionEvent.objects.count(),
        Message.objects.count(),
        BlacklistEntry.objects.count(),
        AgentStatusEvent.objects.count(),
        sorted(
            Interaction.objects.values_list(
                "pk", "status", "agent_id", "transfer_to_id", "campaign_id", "disposition_id"
            )
        ),
        sorted(AgentProfile.objects.values_list("user_id", "status")),
    )
