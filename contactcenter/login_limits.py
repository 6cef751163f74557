"""django-axes hooks for the sign-in limit: who is signing in, and what they see when paused."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

# AccessAttempt.username's length. The sign-in forms do not enforce the
# username's length; no real username is longer than the user model's 150.
_STORED_USERNAME_LENGTH = 255


def client_ip(request: HttpRequest) -> str | None:
    """Return the caller's address, read through TRUSTED_PROXY_COUNT proxies.

    Each proxy appends the address it was called from to X-Forwarded-For, so
    the entry that many places from the right is the last one a trusted proxy
    wrote; anything to its left came from the caller and could be forged. An
    entry that is not an IP address is ignored (axes stores an address).
    """
    count = settings.TRUSTED_PROXY_COUNT
    if count:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [hop for hop in hops if hop]
        if hops:
            hop = hops[-min(count, len(hops))]
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                pass
    return request.META.get("REMOTE_ADDR")


def attempted_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """Return the username tried, cut to the length django-axes can store."""
    field = settings.AXES_USERNAME_FORM_FIELD
    if credentials:
        username = credentials.get(field)
    else:
        username = getattr(request, "data", request.POST).get(field)
    if isinstance(username, str):
        return username[:_STORED_USERNAME_LENGTH]
    return username


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """Say why signing in is refused and for how long (HTTP 429)."""
    return render(
        request,
        "registration/locked_out.html",
        {
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
        },
        status=429,
    )
