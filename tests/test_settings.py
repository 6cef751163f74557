"""Production settings, as an operator sets them, pass Django's deploy checks."""

import os
import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings


def check_deploy(tmp_path, **overrides: str) -> subprocess.CompletedProcess:
    """Run `manage.py check --deploy` in a fresh process with production env vars."""
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "cc.example.com",
        "PUBLIC_BASE_URL": "https://cc.example.com",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **overrides,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_pass_the_deploy_checks(tmp_path):
    result = check_deploy(tmp_path)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_missing_encryption_keys_are_flagged(tmp_path):
    # Set but empty, so a local .env written by `make run` cannot fill it in.
    result = check_deploy(tmp_path, FIELD_ENCRYPTION_KEYS="")

    assert result.returncode != 0
    assert "sms_channel.W001" in result.stderr
    assert "identified 1 issue" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"DEBUG": "true"}, "security.W018"),
        ({"SECRET_KEY": "django-insecure-development-only-set-SECRET_KEY"}, "security.W009"),
        ({"PUBLIC_BASE_URL": "http://cc.example.com"}, "security.W008"),
    ],
)
def test_unsafe_production_settings_are_flagged(tmp_path, overrides, check_id):
    result = check_deploy(tmp_path, **overrides)

    assert result.returncode != 0
    assert check_id in result.stderr
