"""The baseline task of bench/routing_latency.py; the worker imports it with -I.

It records when it ran in `bench_noop`, a table the benchmark creates in its
own database, so the round trip publish → executed can be measured exactly
as the routing one is.
"""

import time

from celery import shared_task
from django.db import connection


@shared_task(acks_late=True, ignore_result=True)
def bench_noop_task(n: int) -> None:
    ran_at = time.time()
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_noop (n, ran_at) VALUES (%s, %s)", [n, ran_at])
