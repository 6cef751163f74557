"""The baseline request: parse the same form, insert one row, commit, answer.

`bench_insert` is a table bench/webhook_load.py creates in its own database.
The view does what any webhook does at the least (the same middleware, a
form body, one durable transaction with one insert and its commit) and
nothing of the product's intake.
"""

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from sms_channel.webhooks import EMPTY_TWIML


@csrf_exempt
@require_POST
def insert(request: HttpRequest) -> HttpResponse:
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_insert (sid) VALUES (%s)", [request.POST["MessageSid"]])
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
