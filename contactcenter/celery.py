import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contactcenter.settings")

app = Celery("contactcenter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def publish_on_commit(task, *args) -> None:
    """Publish `task` once the current transaction commits, never failing the caller.

    The rows are committed by then; a broker that is down must not turn the
    request into an error (the client would retry work that is done) nor
    skip the other after-commit callbacks, as Django does when one raises.
    Each task's work is also found again by a sweep (routing's safety net,
    stale messages, stale bot sessions), so a publish lost here is late,
    not lost.
    """
    from django.db import transaction

    transaction.on_commit(lambda: task.delay(*args), robust=True)
