"""Celery wrappers: take ids, call one service, own only the retry policy."""

from celery import shared_task

from sms_channel.services import SendOutcome, sms_deliver, sms_redispatch_stale


# Killed inside the 60-s sending lease (services.SEND_LEASE), so no second
# attempt can claim the message while this one might still be sending it.
@shared_task(
    bind=True,
    acks_late=True,
    max_retries=None,
    ignore_result=True,
    soft_time_limit=45,
    time_limit=55,
)
def send_sms_task(self, message_id: int) -> str:
    outcome, retry_in = sms_deliver(message_id=message_id)
    if outcome is SendOutcome.RETRY_LATER:
        # Backoff on provider errors; should this retry be lost, the stale
        # sweep re-dispatches the message once its due time is well past.
        raise self.retry(countdown=retry_in)
    return outcome.value


@shared_task(ignore_result=True)
def sweep_stale_sms_task() -> int:
    message_ids = sms_redispatch_stale()
    for message_id in message_ids:
        send_sms_task.delay(message_id)
    return len(message_ids)
