from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from contactcenter.exceptions import ApplicationError
from sms_channel.services import twilio_connect


class Command(BaseCommand):
    help = (
        "Create or update a Twilio connector with one number and enable a campaign's "
        "SMS channel on it; prints the webhook URLs to paste into Twilio's console."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True, help="Campaign name, e.g. Demo")
        parser.add_argument("--account-sid", required=True, help="Twilio Account SID (AC...)")
        parser.add_argument("--auth-token", required=True, help="Twilio Auth Token")
        parser.add_argument("--number", required=True, help="The Twilio number, E.164")

    def handle(self, *args, **options):
        try:
            with transaction.atomic(durable=True):
                channel = twilio_connect(
                    campaign_name=options["campaign"],
                    account_sid=options["account_sid"],
                    auth_token=options["auth_token"],
                    number=options["number"],
                )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        base = _public_base_url()
        connector = channel.connector
        self.stdout.write(
            self.style.SUCCESS(
                f"Campaign “{channel.campaign}” now receives SMS on {channel.phone_number.number} "
                f"through connector “{connector}” (token {connector.masked_auth_token})."
            )
        )
        self.stdout.write("In Twilio's console, for this number, set:")
        self.stdout.write(
            f"  A message comes in (HTTP POST): {base}{reverse('sms_channel:twilio-inbound')}"
        )
        self.stdout.write(
            f"  Status callback URL:            {base}{reverse('sms_channel:twilio-status')}"
        )
        # Checked on the setting, not on `base`: the placeholder is https too.
        if not settings.PUBLIC_BASE_URL.startswith("https://"):
            self.stdout.write(
                self.style.WARNING(
                    "PUBLIC_BASE_URL is not an https URL: set it to the public address Twilio "
                    "calls (it is also what webhook signatures are checked against)."
                )
            )


def _public_base_url() -> str:
    return settings.PUBLIC_BASE_URL or "https://YOUR-PUBLIC-HOST"
