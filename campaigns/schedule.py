"""Is a campaign open? Opening hours and holidays, in the campaign's time zone."""

import datetime

from campaigns.models import Campaign


def campaign_is_open(campaign: Campaign, *, at: datetime.datetime) -> bool:
    """True when `at` falls in one of the campaign's intervals and is no holiday.

    A campaign with no opening hours at all is open 24/7 (holidays still
    close it). Reads `campaign.opening_hours` and `campaign.holidays`, so
    prefetch them when checking many campaigns.
    """
    local = at.astimezone(campaign.time_zone)
    if any(h.date == local.date() for h in campaign.holidays.all()):
        return False
    intervals = list(campaign.opening_hours.all())
    if not intervals:
        return True
    minute = local.hour * 60 + local.minute
    return any(
        h.weekday == local.weekday() and h.opens_minutes <= minute < h.closes_minutes
        for h in intervals
    )
