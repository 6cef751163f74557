from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from campaigns.models import SUPERVISORS_GROUP
from campaigns.phone import E164FormField, normalize_e164
from contactcenter.exceptions import ApplicationError
from sms_channel.selectors import simulator_numbers, simulator_thread
from sms_channel.services import MAX_BODY_LENGTH, sms_simulate_inbound

DEFAULT_CUSTOMER = "+15555550123"


class SimulatorForm(forms.Form):
    number = E164FormField()
    customer = E164FormField(label="You are")
    body = forms.CharField(label="Message", max_length=MAX_BODY_LENGTH)


def _may_use_simulator(request: HttpRequest) -> bool:
    user = request.user
    if settings.DEBUG:
        return True
    return user.is_superuser or user.groups.filter(name=SUPERVISORS_GROUP).exists()


@require_http_methods(["GET", "POST"])
def simulator(request: HttpRequest) -> HttpResponse:
    """Play a customer: text a Simulator number and watch the replies."""
    if not _may_use_simulator(request):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        raise PermissionDenied("The phone simulator is for supervisors.")
    numbers = simulator_numbers()
    form = SimulatorForm()
    params = request.POST if request.method == "POST" else request.GET
    selected = params.get("number") or (numbers[0].number if numbers else "")
    try:
        customer = normalize_e164(params.get("customer") or DEFAULT_CUSTOMER)
    except forms.ValidationError:
        customer = DEFAULT_CUSTOMER
    if request.method == "POST":
        form = SimulatorForm(request.POST)
        if form.is_valid():
            try:
                with transaction.atomic(durable=True):
                    sms_simulate_inbound(
                        to_number=form.cleaned_data["number"],
                        from_number=form.cleaned_data["customer"],
                        body=form.cleaned_data["body"],
                    )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                query = urlencode({"number": form.cleaned_data["number"], "customer": customer})
                return redirect(f"{reverse('sms_channel:simulator')}?{query}")
    context = {
        "numbers": numbers,
        "selected_number": selected,
        "customer": customer,
        "form": form,
        "thread": simulator_thread(number=selected, customer=customer),
        "thread_url": "?" + urlencode({"number": selected, "customer": customer, "part": "thread"}),
    }
    if request.GET.get("part") == "thread":
        return render(request, "sms_channel/_simulator_thread.html", context)
    return render(request, "sms_channel/simulator.html", context)
