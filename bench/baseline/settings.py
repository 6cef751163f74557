"""The application's settings with the baseline URL added (bench/webhook_load.py only)."""

from contactcenter.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline.urls"
