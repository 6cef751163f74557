"""Celery wrappers: take ids, call one service, own only the retry policy.

Services are imported inside the tasks because they schedule these tasks.
"""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def run_bot_step_task(session_id: int, position: int) -> str:
    from bots.services import bot_run_step

    return bot_run_step(session_id=session_id, position=position)


@shared_task(acks_late=True, ignore_result=True)
def sweep_bot_waits_task() -> int:
    from bots.services import SWEEP_BATCH_SIZE, bot_redispatch_stale, sweep_bot_waits

    bot_redispatch_stale()
    swept = sweep_bot_waits()
    if len(swept) == SWEEP_BATCH_SIZE:
        sweep_bot_waits_task.delay()
    return len(swept)
