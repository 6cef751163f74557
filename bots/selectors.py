"""Read queries of the bots app, for the dashboard and the API."""

import datetime
from dataclasses import dataclass

from django.db.models import Avg, Count, IntegerField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from bots.models import BotSession

# The answer key that satisfaction surveys store their 1-5 score under.
SATISFACTION_KEY = "csat"
_SCORES = [str(n) for n in range(1, 6)]


@dataclass(frozen=True)
class Satisfaction:
    answers: int
    average: float | None


def satisfaction(
    *, campaign_ids: list[int], start: datetime.datetime, end: datetime.datetime
) -> dict[int, Satisfaction]:
    """Survey scores (1-5 under `csat`) per campaign, for surveys started in [start, end)."""
    score = KeyTextTransform(SATISFACTION_KEY, "answers")
    rows = (
        BotSession.objects.filter(
            interaction__campaign_id__in=campaign_ids,
            created_at__gte=start,
            created_at__lt=end,
            **{f"answers__{SATISFACTION_KEY}__in": _SCORES},
        )
        .values("interaction__campaign_id")
        .annotate(n=Count("id"), average=Avg(Cast(score, IntegerField())))
    )
    found = {
        row["interaction__campaign_id"]: Satisfaction(
            answers=row["n"], average=round(float(row["average"]), 2)
        )
        for row in rows
    }
    return {cid: found.get(cid, Satisfaction(answers=0, average=None)) for cid in campaign_ids}
