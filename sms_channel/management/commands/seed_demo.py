from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from sms_channel.demo import demo_seed

# The runserver address of `make run` (Procfile.dev).
LOCAL_BASE_URL = "http://127.0.0.1:8000"

# Where each demo role works after signing in.
ROLE_PAGES = {"supervisor": "/supervisor/", "agent": "/agent/"}


class Command(BaseCommand):
    help = (
        "Create the demo campaign, its agents and supervisor and its Simulator SMS channel. "
        "Safe to run again: it only adds what is missing and never resets a password."
    )

    def handle(self, *args, **options) -> None:
        try:
            result = demo_seed()
        except ValidationError as exc:
            raise CommandError(
                f"The demo data cannot be created: {'; '.join(exc.messages)}"
            ) from exc

        if result.created:
            self.stdout.write(self.style.SUCCESS("Created: " + ", ".join(result.created) + "."))
        else:
            self.stdout.write(self.style.SUCCESS("The demo data was already there."))

        channel = result.channel
        number = channel.phone_number.number if channel.phone_number else "no number"
        members = ", ".join(
            m.agent.username for m in channel.campaign.members.select_related("agent")
        )
        self.stdout.write(
            f"\nCampaign “{channel.campaign}”: SMS channel {channel.get_status_display().lower()}"
            f" on {number} (connector “{channel.connector}”), strategy {channel.strategy},"
            f" service level {channel.service_level_seconds} s, agents: {members or 'none'}."
        )

        base_url = settings.PUBLIC_BASE_URL or LOCAL_BASE_URL
        self.stdout.write("\nLogins:")
        for login in result.logins:
            page = ROLE_PAGES[login.role]
            where = base_url + page
            line = f"  {login.role:<10} {login.username:<12} password {login.password:<17} {where}"
            if not login.created:
                line += "  (existed before: password not reset)"
            self.stdout.write(line)

        channel_path = reverse("admin:sms_channel_smschannel_change", args=[channel.pk])
        self.stdout.write("\nPages:")
        self.stdout.write(f"  Admin                 {base_url}{reverse('admin:index')}")
        self.stdout.write(f"  Demo SMS channel      {base_url}{channel_path}")
        simulator_path = reverse("sms_channel:simulator")
        self.stdout.write(
            f"  Phone simulator       {base_url}{simulator_path}  (text the Demo campaign)"
        )
        self.stdout.write(f"  Sign in               {base_url}{reverse('login')}")
        self.stdout.write(f"  Agent console         {base_url}{reverse('agent:console')}")
        self.stdout.write(f"  Supervisor dashboard  {base_url}{reverse('supervisor:overview')}")
