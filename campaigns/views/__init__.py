"""Pages of the core: the agent console (agent.py) and the supervisor dashboard
(supervisor.py); `home` sends each person to theirs."""

import functools
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect

from campaigns.models import AGENTS_GROUP
from campaigns.permissions import is_supervisor


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if is_supervisor(request.user):
        return redirect("supervisor:overview")
    if request.user.groups.filter(name=AGENTS_GROUP).exists():
        return redirect("agent:console")
    return redirect("admin:index")


def role_required(
    *, allowed: Callable, refusal: str, poll_fallback: Callable[[HttpRequest], str]
) -> Callable:
    """A view decorator: anonymous visitors are sent to sign in, users who are
    not `allowed` get 403 with `refusal`.

    An htmx poll after the session ended sends the whole page to sign in (the
    page it came from, else `poll_fallback`), not a sign-in form swapped into
    a fragment.
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                if request.htmx:
                    page = _current_page(request) or poll_fallback(request)
                    return HttpResponseClientRedirect(redirect_to_login(page).url)
                return redirect_to_login(request.get_full_path())
            if not allowed(request.user):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _current_page(request: HttpRequest) -> str | None:
    """The page an htmx request came from, if it is on this site."""
    try:
        return request.htmx.current_url_abs_path
    except ValueError:
        # django-htmx parses HX-Current-URL when read; urlsplit refuses some junk.
        return None
