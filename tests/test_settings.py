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


PROBE = """
import django
django.setup()
from django.conf import settings
from django.test import Client

client = Client(SERVER_NAME="cc.example.com")
plain = client.get("/accounts/login/")
proxied = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
print(plain.status_code, plain.get("Location"))
print(proxied.status_code)
for header in ("Strict-Transport-Security", "X-Frame-Options", "X-Content-Type-Options",
               "Referrer-Policy", "Cross-Origin-Opener-Policy"):
    print(header, proxied.get(header))
print("csrftoken secure", proxied.cookies["csrftoken"]["secure"])
print("session secure", settings.SESSION_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY)
print("proxies", settings.TRUSTED_PROXY_COUNT)
"""


def test_behind_the_tls_proxy_pages_carry_the_security_headers(tmp_path):
    """With production env vars, as the proxy forwards a request: HSTS, secure cookies."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "contactcenter.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "cc.example.com",
        "PUBLIC_BASE_URL": "https://cc.example.com",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "301 https://cc.example.com/accounts/login/"
    assert lines[1] == "200"
    assert "Strict-Transport-Security max-age=31536000; includeSubDomains" in lines
    assert "X-Frame-Options DENY" in lines
    assert "X-Content-Type-Options nosniff" in lines
    assert "Referrer-Policy same-origin" in lines
    assert "Cross-Origin-Opener-Policy same-origin" in lines
    assert "csrftoken secure True" in lines
    assert "session secure True True" in lines
    assert "proxies 1" in lines
