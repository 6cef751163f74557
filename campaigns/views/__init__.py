"""Pages of the core: the agent console (agent.py) and the supervisor dashboard
(supervisor.py); `home` sends each person to theirs."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from campaigns.models import AGENTS_GROUP
from campaigns.permissions import is_supervisor


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if is_supervisor(request.user):
        return redirect("supervisor:overview")
    if request.user.groups.filter(name=AGENTS_GROUP).exists():
        return redirect("agent:console")
    return redirect("admin:index")
