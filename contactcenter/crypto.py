"""Encryption at rest for secrets: connector auth tokens, bot webhook secrets.

Fernet (AES-128-CBC + HMAC-SHA256). In the project package because two apps
that may not import each other (sms_channel, bots) both store secrets.
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

MASK = "••••"


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.FIELD_ENCRYPTION_KEYS)
    if not keys:
        # Demo fallback: a key derived from SECRET_KEY. A deploy check warns.
        digest = hashlib.sha256(b"contactcenter-field-encryption:" + settings.SECRET_KEY.encode())
        keys = [base64.urlsafe_b64encode(digest.digest()).decode()]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64 bytes), "
            "e.g. from: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from exc


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEYS (or SECRET_KEY, "
            "if no keys are set) changed since it was saved. Put the old key back "
            "after the new one in FIELD_ENCRYPTION_KEYS."
        ) from exc


def mask(secret: str) -> str:
    """Show a secret as its last four characters only, e.g. ••••1a2b."""
    if not secret:
        return ""
    return MASK + secret[-4:]


class EncryptedTextField(models.TextField):
    """Stores a Fernet token; Python code sees the plaintext.

    The column is never readable without the key, and the value cannot be
    filtered on (each encryption is salted), which no caller needs.
    """

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)
