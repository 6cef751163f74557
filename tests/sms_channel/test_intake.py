"""The intake rules, in their order, through signed webhooks."""

import datetime

import pytest
from django.utils import timezone

from campaigns.models import BlacklistEntry, Interaction
from sms_channel.models import Message, SmsChannel
from sms_channel.services import InboundSms, sms_receive
from tests.factories import (
    BlacklistEntryFactory,
    BlacklistFactory,
    HolidayFactory,
    OpeningHoursFactory,
)
from tests.sms_channel.twilio_helpers import CUSTOMER, TWILIO_NUMBER, inbound, new_sid

pytestmark = pytest.mark.django_db


def _receive(body: str, *, at: datetime.datetime, customer: str = CUSTOMER) -> Message:
    """Run the intake service at a chosen moment (opening hours depend on it)."""
    return sms_receive(
        inbound=InboundSms(
            provider_sid=new_sid(), from_number=customer, to_number=TWILIO_NUMBER, body=body
        ),
        now=at,
    )


def _outbound(purpose: str):
    return Message.objects.filter(direction="outbound", purpose=purpose)


@pytest.mark.parametrize("keyword", ["STOP", "stop", "  Unsubscribe ", "QUIT", "optout"])
def test_opt_out_keyword_lists_the_sender_and_closes_the_queued_conversation(
    client, twilio_channel, keyword
):
    inbound(client, body="Hello")
    queued = Interaction.objects.get()

    response = inbound(client, body=keyword)

    assert response.status_code == 200
    twilio_channel.connector.refresh_from_db()
    opt_outs = twilio_channel.connector.opt_out_list
    assert list(opt_outs.entries.values_list("number", flat=True)) == [CUSTOMER]
    queued.refresh_from_db()
    assert queued.status == Interaction.Status.ABANDONED
    assert queued.close_reason == "opted_out"
    stop = Message.objects.get(body=keyword)
    assert stop.purpose == Message.Purpose.OPT_OUT
    assert stop.interaction == queued
    assert queued.events.last().to_status == "abandoned"


def test_opt_out_while_assigned_finishes_the_conversation(client, twilio_channel, agent):
    inbound(client, body="Hello")
    interaction = Interaction.objects.get()
    Interaction.objects.filter(pk=interaction.pk).update(status="assigned", agent=agent)

    inbound(client, body="STOP")

    interaction.refresh_from_db()
    assert interaction.status == Interaction.Status.FINISHED
    assert interaction.close_reason == "opted_out"


def test_stop_is_matched_on_the_whole_body_only(client, twilio_channel):
    inbound(client, body="please stop texting me about the sale")

    assert Interaction.objects.get().status == Interaction.Status.QUEUED
    assert not BlacklistEntry.objects.exists()


def test_start_removes_the_sender_from_the_opt_out_list(client, twilio_channel):
    inbound(client, body="STOP")
    inbound(client, body="start")

    twilio_channel.connector.refresh_from_db()
    assert not twilio_channel.connector.opt_out_list.entries.exists()
    assert Message.objects.get(body="start").purpose == Message.Purpose.OPT_IN
    assert Interaction.objects.count() == 0


def test_yes_opts_back_in_a_customer_who_opted_out(client, twilio_channel):
    inbound(client, body="STOP")
    inbound(client, body="Yes")

    twilio_channel.connector.refresh_from_db()
    assert not twilio_channel.connector.opt_out_list.entries.exists()
    assert Message.objects.get(body="Yes").purpose == Message.Purpose.OPT_IN
    assert Interaction.objects.count() == 0


def test_yes_from_anyone_else_is_an_ordinary_message(client, twilio_channel):
    inbound(client, body="yes")

    message = Message.objects.get(body="yes")
    assert message.purpose == Message.Purpose.CONVERSATION
    assert message.interaction.status == Interaction.Status.QUEUED


def test_help_is_stored_and_left_to_the_provider(client, twilio_channel):
    inbound(client, body="HELP")

    message = Message.objects.get()
    assert message.purpose == Message.Purpose.HELP
    assert message.interaction is None
    assert Message.objects.filter(direction="outbound").count() == 0


def test_disabled_channel_stores_and_rejects(client, twilio_channel):
    SmsChannel.objects.filter(pk=twilio_channel.pk).update(status="disabled")

    assert inbound(client).status_code == 200

    message = Message.objects.get()
    assert message.interaction.status == Interaction.Status.REJECTED
    assert message.interaction.reject_reason == "channel_disabled"


def test_blacklisted_sender_is_rejected_without_any_reply(client, twilio_channel):
    listed = BlacklistFactory(name="Abusive")
    BlacklistEntryFactory(blacklist=listed, number=CUSTOMER)
    twilio_channel.inbound_blacklist_enabled = True
    twilio_channel.out_of_hours_message = "We are closed"
    twilio_channel.save()
    twilio_channel.inbound_blacklists.add(listed)

    inbound(client, body="let me in")

    message = Message.objects.get()
    assert message.interaction.reject_reason == "blacklisted"
    assert Message.objects.filter(direction="outbound").count() == 0


def test_blacklist_is_ignored_when_the_toggle_is_off(client, twilio_channel):
    listed = BlacklistFactory()
    BlacklistEntryFactory(blacklist=listed, number=CUSTOMER)
    twilio_channel.inbound_blacklists.add(listed)

    inbound(client)

    assert Interaction.objects.get().status == Interaction.Status.QUEUED


def test_blacklist_only_counts_the_chosen_lists(client, twilio_channel):
    other = BlacklistFactory()
    BlacklistEntryFactory(blacklist=other, number=CUSTOMER)
    twilio_channel.inbound_blacklist_enabled = True
    twilio_channel.save()
    twilio_channel.inbound_blacklists.add(BlacklistFactory())

    inbound(client)

    assert Interaction.objects.get().status == Interaction.Status.QUEUED


def test_next_message_joins_the_open_conversation(client, twilio_channel):
    inbound(client, body="Hello")
    inbound(client, body="Are you there?")

    interaction = Interaction.objects.get()
    assert list(interaction.sms_messages.values_list("body", flat=True)) == [
        "Hello",
        "Are you there?",
    ]
    assert interaction.events.count() == 1


def test_a_finished_conversation_does_not_take_new_messages(client, twilio_channel):
    inbound(client, body="Hello")
    Interaction.objects.update(status="finished")

    inbound(client, body="Me again")

    assert Interaction.objects.count() == 2
    assert Interaction.objects.filter(status="queued").count() == 1


def test_out_of_hours_rejects_and_replies_once_per_period(twilio_channel):
    twilio_channel.out_of_hours_message = "We open at 9:00."
    twilio_channel.save()
    campaign = twilio_channel.campaign
    campaign.time_zone = "America/New_York"
    campaign.save()
    # Monday 09:00-17:00 in New York; 2026-11-23 is a Monday.
    OpeningHoursFactory(campaign=campaign, weekday=0, opens="09:00", closes="17:00")
    evening = datetime.datetime(2026, 11, 23, 23, 30, tzinfo=datetime.UTC)  # 18:30 in New York

    first = _receive("Hello?", at=evening)
    second = _receive("Anyone?", at=evening + datetime.timedelta(hours=1))
    next_day = _receive("Hello again", at=evening + datetime.timedelta(hours=13))

    assert first.interaction.reject_reason == "out_of_hours"
    assert second.interaction.reject_reason == "out_of_hours"
    replies = _outbound(Message.Purpose.OUT_OF_HOURS)
    assert replies.count() == 2  # the first and, 13 h later, once more
    assert set(replies.values_list("to_number", "body")) == {(CUSTOMER, "We open at 9:00.")}
    assert next_day.interaction.reject_reason == "out_of_hours"


def test_within_opening_hours_in_the_campaign_time_zone_is_queued(twilio_channel):
    campaign = twilio_channel.campaign
    campaign.time_zone = "America/New_York"
    campaign.save()
    OpeningHoursFactory(campaign=campaign, weekday=0, opens="09:00", closes="17:00")
    # 14:30 UTC is 09:30 in New York (EST, UTC-5).
    message = _receive("Hi", at=datetime.datetime(2026, 11, 23, 14, 30, tzinfo=datetime.UTC))

    assert message.interaction.status == Interaction.Status.QUEUED


def test_a_holiday_closes_the_campaign_all_day(twilio_channel):
    HolidayFactory(campaign=twilio_channel.campaign, date=datetime.date(2026, 12, 25))

    message = _receive("Hi", at=datetime.datetime(2026, 12, 25, 12, 0, tzinfo=datetime.UTC))

    assert message.interaction.reject_reason == "out_of_hours"
    assert not _outbound(Message.Purpose.OUT_OF_HOURS).exists()  # no message configured


def test_no_out_of_hours_reply_to_an_opted_out_customer(twilio_channel):
    twilio_channel.out_of_hours_message = "Closed."
    twilio_channel.save()
    HolidayFactory(campaign=twilio_channel.campaign, date=datetime.date(2026, 12, 25))
    at = datetime.datetime(2026, 12, 25, 12, 0, tzinfo=datetime.UTC)
    _receive("STOP", at=at)

    _receive("Hi", at=at)

    assert not _outbound(Message.Purpose.OUT_OF_HOURS).exists()


def test_full_queue_rejects_and_sends_the_queue_full_message(twilio_channel):
    twilio_channel.max_interactions = 2
    twilio_channel.queue_full_message = "All agents are busy, try later."
    twilio_channel.save()
    now = timezone.now()

    results = [_receive("Hi", at=now, customer=f"+1415555{n:04d}") for n in range(3)]

    assert [m.interaction.status for m in results] == ["queued", "queued", "rejected"]
    assert results[2].interaction.reject_reason == "queue_full"
    reply = _outbound(Message.Purpose.QUEUE_FULL).get()
    assert (reply.to_number, reply.body) == ("+14155550002", "All agents are busy, try later.")


def test_cap_of_zero_means_no_cap(twilio_channel):
    now = timezone.now()
    results = [_receive("Hi", at=now, customer=f"+1415555{n:04d}") for n in range(5)]
    assert {m.interaction.status for m in results} == {"queued"}


def test_rules_apply_in_order_disabled_before_blacklist(client, twilio_channel):
    listed = BlacklistFactory()
    BlacklistEntryFactory(blacklist=listed, number=CUSTOMER)
    twilio_channel.inbound_blacklist_enabled = True
    twilio_channel.status = SmsChannel.Status.DISABLED
    twilio_channel.save()
    twilio_channel.inbound_blacklists.add(listed)

    inbound(client)

    assert Message.objects.get().interaction.reject_reason == "channel_disabled"


def test_queue_deadline_is_unset_without_a_maximum_time(client, twilio_channel):
    SmsChannel.objects.filter(pk=twilio_channel.pk).update(max_queue_seconds=0)
    inbound(client)
    assert Interaction.objects.get().queue_deadline_at is None
