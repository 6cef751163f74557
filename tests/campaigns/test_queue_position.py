"""Queue position and estimated wait, as templates and bots show them."""

import datetime

import pytest
from django.utils import timezone

from campaigns.models import Interaction
from campaigns.selectors import (
    describe_wait,
    estimated_wait_seconds,
    queue_placeholders,
    queue_position,
)
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def make(campaign, *, seconds_ago: float, status="queued", waited: float | None = None):
    queued_at = NOW - datetime.timedelta(seconds=seconds_ago)
    extra = {}
    if waited is not None:
        extra = {
            "queue_outcome": "attended",
            "left_queue_at": queued_at + datetime.timedelta(seconds=waited),
        }
    return Interaction.objects.create(
        campaign=campaign,
        customer_number=f"+1415555{Interaction.objects.count():04d}",
        status=status,
        queued_at=queued_at,
        **extra,
    )


def test_position_counts_those_waiting_longer_in_the_same_campaign():
    campaign, other = CampaignFactory(), CampaignFactory()
    first = make(campaign, seconds_ago=30)
    make(other, seconds_ago=60)
    make(campaign, seconds_ago=50, status="finished")
    second = make(campaign, seconds_ago=10)
    tie = Interaction.objects.create(
        campaign=campaign,
        customer_number="+14155559999",
        status="queued",
        queued_at=second.queued_at,
    )

    assert queue_position(interaction=first) == 1
    assert queue_position(interaction=second) == 2
    assert queue_position(interaction=tie) == 3


def test_no_position_when_not_waiting():
    assert (
        queue_position(interaction=make(CampaignFactory(), seconds_ago=5, status="finished"))
        is None
    )


def test_estimate_averages_recent_waits_only():
    campaign = CampaignFactory()
    make(campaign, seconds_ago=600, status="finished", waited=30)
    make(campaign, seconds_ago=300, status="finished", waited=90)
    make(campaign, seconds_ago=3 * 3600, status="finished", waited=1000)  # too old
    make(CampaignFactory(), seconds_ago=60, status="finished", waited=500)  # other campaign

    assert estimated_wait_seconds(campaign_id=campaign.pk, now=NOW) == 60.0
    assert estimated_wait_seconds(campaign_id=CampaignFactory().pk, now=NOW) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "a few minutes"),
        (12, "less than a minute"),
        (75, "about 1 minute"),
        (100, "about 2 minutes"),
        (600, "about 10 minutes"),
    ],
)
def test_waits_read_as_a_customer_would(seconds, text):
    assert describe_wait(seconds) == text


def test_placeholders():
    campaign = CampaignFactory()
    make(campaign, seconds_ago=400, status="finished", waited=180)
    make(campaign, seconds_ago=40)
    waiting = make(campaign, seconds_ago=20)

    assert queue_placeholders(interaction=waiting, now=NOW) == {
        "queue_position": "2",
        "estimated_wait": "about 3 minutes",
    }
