"""Satisfaction answers counted per campaign, as the dashboard shows them."""

import datetime

import pytest
from django.utils import timezone

from bots.models import BotSession
from bots.selectors import Satisfaction, satisfaction
from tests.factories import BotFactory, CampaignFactory, InteractionFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def survey(campaign, answers, *, hours_ago=1, trigger="finish"):
    return BotSession.objects.create(
        interaction=InteractionFactory(campaign=campaign),
        bot=BotFactory(),
        trigger=trigger,
        status="done",
        answers=answers,
        created_at=NOW - datetime.timedelta(hours=hours_ago),
    )


def test_scores_are_averaged_per_campaign_and_junk_is_ignored():
    campaign, other, quiet = CampaignFactory(), CampaignFactory(), CampaignFactory()
    survey(campaign, {"csat": "5"})
    survey(campaign, {"csat": "4", "order_number": "17"})
    survey(campaign, {"csat": "great"})  # not a score
    survey(campaign, {"csat": "2"}, hours_ago=30)  # outside the period
    survey(campaign, {"order_number": "9"}, trigger="start")
    survey(other, {"csat": "1"})

    result = satisfaction(
        campaign_ids=[campaign.pk, other.pk, quiet.pk],
        start=NOW - datetime.timedelta(hours=24),
        end=NOW,
    )

    assert result == {
        campaign.pk: Satisfaction(answers=2, average=4.5),
        other.pk: Satisfaction(answers=1, average=1.0),
        quiet.pk: Satisfaction(answers=0, average=None),
    }
