"""Factories shared by every app's tests."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from bots.models import Bot, BotStep
from campaigns.models import (
    AGENTS_GROUP,
    SUPERVISORS_GROUP,
    AgentProfile,
    Blacklist,
    BlacklistEntry,
    Campaign,
    Disposition,
    Holiday,
    Interaction,
    Member,
    OpeningHours,
)
from sms_channel.models import Connector, PhoneNumber, SmsChannel

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(PASSWORD)


class SupervisorFactory(UserFactory):
    username = factory.Sequence(lambda n: f"supervisor{n}")
    is_staff = True

    @factory.post_generation
    def in_group(obj, create, extracted, **kwargs):
        obj.groups.add(Group.objects.get(name=SUPERVISORS_GROUP))


class AgentFactory(UserFactory):
    username = factory.Sequence(lambda n: f"agent{n}")

    @factory.post_generation
    def in_group(obj, create, extracted, **kwargs):
        obj.groups.add(Group.objects.get(name=AGENTS_GROUP))
        AgentProfile.objects.get_or_create(user=obj)


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    time_zone = "UTC"


class OpeningHoursFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OpeningHours

    campaign = factory.SubFactory(CampaignFactory)
    weekday = 0
    opens = "09:00"
    closes = "17:00"


class HolidayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Holiday

    campaign = factory.SubFactory(CampaignFactory)
    date = "2026-12-25"
    name = "Christmas"


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    campaign = factory.SubFactory(CampaignFactory)
    agent = factory.SubFactory(AgentFactory)


class DispositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Disposition

    campaign = factory.SubFactory(CampaignFactory)
    name = factory.Sequence(lambda n: f"Resolved {n}")


class BlacklistFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Blacklist

    name = factory.Sequence(lambda n: f"Blacklist {n}")


class BlacklistEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BlacklistEntry

    blacklist = factory.SubFactory(BlacklistFactory)
    number = factory.Sequence(lambda n: f"+1415555{n:04d}")


class ConnectorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connector

    name = factory.Sequence(lambda n: f"Connector {n}")
    provider = Connector.Provider.SIMULATOR


class TwilioConnectorFactory(ConnectorFactory):
    provider = Connector.Provider.TWILIO
    account_sid = factory.Sequence(lambda n: f"AC{n:032x}")
    auth_token = factory.Sequence(lambda n: f"{n:032x}"[::-1])


class PhoneNumberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PhoneNumber

    connector = factory.SubFactory(ConnectorFactory)
    number = factory.Sequence(lambda n: f"+1212555{n:04d}")


class SmsChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SmsChannel

    campaign = factory.SubFactory(CampaignFactory)
    phone_number = factory.SubFactory(PhoneNumberFactory)
    connector = factory.SelfAttribute("phone_number.connector")
    status = SmsChannel.Status.ENABLED


class BotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bot

    name = factory.Sequence(lambda n: f"Bot {n}")


class BotStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BotStep

    bot = factory.SubFactory(BotFactory)
    position = factory.Sequence(lambda n: n)
    kind = BotStep.Kind.SEND_MESSAGE
    text = "Hello from {campaign}"


class InteractionFactory(factory.django.DjangoModelFactory):
    """A conversation row as the services would leave it, without its event rows.

    Defaults to a queued inbound SMS conversation; pass `status`, `agent`,
    `transfer_to` and the timestamps that status needs.
    """

    class Meta:
        model = Interaction

    campaign = factory.SubFactory(CampaignFactory)
    channel_kind = "sms"
    customer_number = factory.Sequence(lambda n: f"+1415666{n:04d}")
    status = Interaction.Status.QUEUED
    queued_at = factory.LazyFunction(timezone.now)
