"""The campaigns models' invariants: clean() and constraint messages, and database refusals."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from campaigns.models import (
    AgentProfile,
    BlacklistEntry,
    Disposition,
    Holiday,
    Member,
    OpeningHours,
)
from tests.factories import (
    AgentFactory,
    BlacklistEntryFactory,
    BlacklistFactory,
    CampaignFactory,
    DispositionFactory,
    HolidayFactory,
    MemberFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def messages_of(instance) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as excinfo:
        instance.full_clean()
    return excinfo.value.message_dict


@pytest.mark.parametrize(
    ("opens", "closes"),
    [(datetime.time(17), datetime.time(9)), (datetime.time(9), datetime.time(9))],
)
def test_opening_hours_must_close_after_opening(opens, closes):
    hours = OpeningHours(campaign=CampaignFactory(), weekday=0, opens=opens, closes=closes)

    assert messages_of(hours) == {"__all__": ["The closing time must be after the opening time."]}
    with pytest.raises(IntegrityError), transaction.atomic():
        hours.save()


def test_opening_hours_closing_at_midnight_ends_the_day():
    hours = OpeningHours(
        campaign=CampaignFactory(), weekday=5, opens=datetime.time(18), closes=datetime.time(0)
    )

    hours.full_clean()
    hours.save()
    assert (hours.opens_minutes, hours.closes_minutes) == (18 * 60, 24 * 60)
    assert str(hours) == "Saturday 18:00–24:00"


def test_opening_hours_weekday_is_monday_to_sunday():
    hours = OpeningHours(
        campaign=CampaignFactory(), weekday=7, opens=datetime.time(9), closes=datetime.time(17)
    )

    assert messages_of(hours) == {"weekday": ["Value 7 is not a valid choice."]}
    with pytest.raises(IntegrityError), transaction.atomic():
        hours.save()


def test_one_holiday_per_campaign_and_date():
    holiday = HolidayFactory(date="2026-12-25")
    again = Holiday(campaign=holiday.campaign, date=datetime.date(2026, 12, 25), name="Again")

    assert messages_of(again) == {"__all__": ["This campaign already has a holiday on that date."]}
    with pytest.raises(IntegrityError), transaction.atomic():
        again.save()
    # Another campaign may close that day too.
    HolidayFactory(date="2026-12-25").full_clean()


def test_an_agent_is_a_member_of_a_campaign_once():
    member = MemberFactory()
    again = Member(campaign=member.campaign, agent=member.agent)

    assert messages_of(again) == {"__all__": ["This agent is already a member of the campaign."]}
    with pytest.raises(IntegrityError), transaction.atomic():
        again.save()


def test_member_penalty_is_at_most_100():
    member = Member(campaign=CampaignFactory(), agent=AgentFactory(), penalty=101)

    assert messages_of(member) == {"penalty": ["Ensure this value is less than or equal to 100."]}
    with pytest.raises(IntegrityError), transaction.atomic():
        member.save()


def test_member_penalty_is_not_negative():
    member = Member(campaign=CampaignFactory(), agent=AgentFactory(), penalty=-1)

    assert messages_of(member) == {"penalty": ["Ensure this value is greater than or equal to 0."]}
    with pytest.raises(IntegrityError), transaction.atomic():
        member.save()


def test_member_must_be_in_the_agents_group():
    user = UserFactory(username="sam")
    member = Member(campaign=CampaignFactory(), agent=user)

    # limit_choices_to refuses the user, then clean() says why.
    assert messages_of(member) == {
        "agent": [
            f"user instance with id {user.pk} is not a valid choice.",
            "sam is not in the Agents group, so cannot take work.",
        ]
    }


def test_disposition_names_are_unique_per_campaign():
    disposition = DispositionFactory(name="Resolved")
    again = Disposition(campaign=disposition.campaign, name="Resolved")

    assert messages_of(again) == {
        "__all__": ["This campaign already has a disposition with that name."]
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        again.save()
    Disposition(campaign=CampaignFactory(), name="Resolved").full_clean()


def test_agent_capacity_is_at_least_one():
    profile = AgentFactory().agent_profile
    profile.capacity = 0

    assert messages_of(profile) == {
        "capacity": ["Ensure this value is greater than or equal to 1."]
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        profile.save()


def test_agent_status_is_one_of_the_three():
    profile = AgentFactory().agent_profile
    profile.status = "lunch"

    assert messages_of(profile) == {"status": ["Value 'lunch' is not a valid choice."]}
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentProfile.objects.filter(pk=profile.pk).update(status="lunch")


def test_a_number_is_on_a_list_once():
    entry = BlacklistEntryFactory(number="+14155550101")
    again = BlacklistEntry(blacklist=entry.blacklist, number="+1 (415) 555-0101")

    assert messages_of(again) == {"__all__": ["This number is already on the list."]}
    with pytest.raises(IntegrityError), transaction.atomic():
        BlacklistEntry.objects.create(blacklist=entry.blacklist, number="+14155550101")
    BlacklistEntry(blacklist=BlacklistFactory(), number="+14155550101").full_clean()


def test_blacklist_numbers_are_normalised_to_e164():
    entry = BlacklistEntry(blacklist=BlacklistFactory(), number=" +44 20 7946 0018 ")

    entry.full_clean()
    assert entry.number == "+442079460018"
    assert messages_of(BlacklistEntry(blacklist=entry.blacklist, number="4155550101")) == {
        "number": [
            "“4155550101” has no country code: write it in international format, e.g. +14155550123."
        ]
    }


def test_the_database_refuses_a_number_that_is_not_e164():
    blacklist = BlacklistFactory()

    # The model field normalises everything it saves, so go around it.
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO campaigns_blacklistentry (blacklist_id, number, reason, added_at) "
            "VALUES (%s, %s, '', %s)",
            [blacklist.pk, "4155550101", timezone.now()],
        )
