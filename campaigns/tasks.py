"""Celery wrappers: take ids, call one service, own only the retry policy.

Services are imported inside the tasks because the services schedule these
tasks (after commit) and import this module.
"""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def route_campaign_task(campaign_id: int) -> int:
    from campaigns.routing import route_campaign

    return route_campaign(campaign_id=campaign_id).assigned


@shared_task(ignore_result=True)
def route_all_campaigns_task() -> int:
    """The safety net: route every campaign with someone waiting."""
    from campaigns.selectors import campaigns_with_queue

    campaign_ids = campaigns_with_queue()
    for campaign_id in campaign_ids:
        route_campaign_task.delay(campaign_id)
    return len(campaign_ids)


@shared_task(bind=True, acks_late=True, ignore_result=True)
def sweep_queue_timeouts_task(self) -> int:
    from campaigns.routing import SWEEP_BATCH_SIZE, sweep_queue_timeouts

    swept = sweep_queue_timeouts()
    if len(swept) == SWEEP_BATCH_SIZE:
        # More are due: carry on now rather than at the next beat.
        sweep_queue_timeouts_task.delay()
    return len(swept)


@shared_task(bind=True, acks_late=True, ignore_result=True)
def sweep_transfer_timeouts_task(self) -> int:
    from campaigns.routing import SWEEP_BATCH_SIZE, sweep_transfer_timeouts

    swept = sweep_transfer_timeouts()
    if len(swept) == SWEEP_BATCH_SIZE:
        sweep_transfer_timeouts_task.delay()
    return len(swept)
