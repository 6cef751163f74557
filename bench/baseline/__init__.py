"""The load benchmark's baseline: the application's settings plus one minimal view.

Used only by bench/webhook_load.py, which serves it from the same gunicorn
as the webhook, so the baseline runs on the same server, middleware and
PostgreSQL.
"""
