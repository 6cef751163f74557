"""The phone simulator page: a supervisor texts a Simulator number as a customer."""

from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.models import Interaction
from sms_channel.models import Message
from sms_channel.services import sms_send
from tests.factories import (
    CampaignFactory,
    PhoneNumberFactory,
    SmsChannelFactory,
    TwilioConnectorFactory,
)

pytestmark = pytest.mark.django_db

URL = reverse("sms_channel:simulator")
NUMBER = "+12125550100"
CUSTOMER = "+15555550177"


@pytest.fixture(autouse=True)
def _not_debug(settings):
    settings.DEBUG = False


@pytest.fixture
def channel(db):
    return SmsChannelFactory(campaign=CampaignFactory(name="Support"), phone_number__number=NUMBER)


def thread_url(number: str = NUMBER, customer: str = CUSTOMER) -> str:
    return f"{URL}?" + urlencode({"part": "thread", "number": number, "customer": customer})


def text(client, body: str = "Hi, where is my order?", number: str = NUMBER, **data):
    return client.post(URL, {"number": number, "customer": CUSTOMER, "body": body, **data})


def test_supervisor_sees_the_simulator_numbers_with_their_campaigns(supervisor_client, channel):
    other = SmsChannelFactory(campaign=CampaignFactory(name="Sales"))
    twilio_number = PhoneNumberFactory(connector=TwilioConnectorFactory(), number="+14155550100")

    response = supervisor_client.get(URL)

    assert response.status_code == 200
    assert [n.number for n in response.context["numbers"]] == sorted(
        [NUMBER, other.phone_number.number]
    )
    page = response.content.decode()
    assert f"{NUMBER} · Support" in page
    assert f"{other.phone_number.number} · Sales" in page
    assert twilio_number.number not in page


def test_page_explains_when_there_is_no_simulator_number(supervisor_client):
    response = supervisor_client.get(URL)

    assert response.status_code == 200
    assert b"No Simulator connector has a phone number yet" in response.content


def test_supervisor_texts_a_number_and_the_message_goes_through_the_intake(
    supervisor_client, channel
):
    response = text(supervisor_client)

    assert response.status_code == 302
    assert response["Location"] == f"{URL}?" + urlencode({"number": NUMBER, "customer": CUSTOMER})
    message = Message.objects.get()
    assert (message.direction, message.sender, message.status) == (
        "inbound",
        "customer",
        "received",
    )
    assert (message.from_number, message.to_number) == (CUSTOMER, NUMBER)
    assert message.body == "Hi, where is my order?"
    assert message.channel == channel
    assert message.provider_sid.startswith("SM")
    interaction = Interaction.objects.get()
    assert message.interaction == interaction
    assert interaction.status == Interaction.Status.QUEUED
    assert (interaction.campaign, interaction.customer_number) == (channel.campaign, CUSTOMER)


def test_thread_shows_the_customer_messages_and_the_delivered_replies(
    supervisor_client, channel, django_capture_on_commit_callbacks
):
    text(supervisor_client, "Hi, where is my order?")
    interaction = Interaction.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        reply = sms_send(
            interaction=interaction, body="It ships today.", sender=Message.Sender.AGENT
        )
    reply.refresh_from_db()
    assert reply.status == Message.Status.DELIVERED
    other_customer = "+15555550999"
    supervisor_client.post(
        URL, {"number": NUMBER, "customer": other_customer, "body": "A stranger's text"}
    )

    response = supervisor_client.get(thread_url())

    assert response.status_code == 200
    assert [t.name for t in response.templates] == ["sms_channel/_simulator_thread.html"]
    assert [m.body for m in response.context["thread"]] == [
        "Hi, where is my order?",
        "It ships today.",
    ]
    page = response.content.decode()
    assert "Hi, where is my order?" in page
    assert "It ships today." in page
    assert "Agent · Delivered" in page
    assert "A stranger" not in page
    assert "<html" not in page

    full_page = supervisor_client.get(
        f"{URL}?" + urlencode({"number": NUMBER, "customer": CUSTOMER})
    )
    assert b"It ships today." in full_page.content


def test_agent_is_forbidden(agent_client, channel):
    assert agent_client.get(URL).status_code == 403
    assert text(agent_client).status_code == 403
    assert not Message.objects.exists()


def test_anonymous_user_is_sent_to_the_login(client, channel):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={URL}"
    assert text(client).status_code == 302
    assert not Message.objects.exists()


def test_with_debug_anyone_may_use_it(client, channel, settings):
    settings.DEBUG = True

    assert client.get(URL).status_code == 200
    assert text(client).status_code == 302
    assert Message.objects.get().from_number == CUSTOMER


def test_a_number_that_is_not_a_simulator_number_is_refused(supervisor_client, channel):
    twilio_channel = SmsChannelFactory(
        phone_number=PhoneNumberFactory(connector=TwilioConnectorFactory(), number="+14155550100")
    )

    response = text(supervisor_client, number=twilio_channel.phone_number.number)

    assert response.status_code == 200
    assert "+14155550100 is not a Simulator number." in response.content.decode()
    assert not Message.objects.exists()
    assert not Interaction.objects.exists()


def test_a_simulator_number_without_a_channel_is_refused(supervisor_client, channel):
    spare = PhoneNumberFactory(connector=channel.connector, number="+12125550199")

    response = text(supervisor_client, number=spare.number)

    assert response.status_code == 200
    assert f"No SMS channel uses {spare.number}" in response.content.decode()
    assert not Message.objects.exists()


def test_an_invalid_customer_number_shows_the_form_error(supervisor_client, channel):
    response = text(supervisor_client, customer="not a number")

    assert response.status_code == 200
    assert response.context["form"].errors["customer"] == [
        "“not a number” has no country code: write it in international format, e.g. +14155550123."
    ]
    assert "You are: “not a number” has no country code" in response.content.decode()
    assert not Message.objects.exists()
    assert not Interaction.objects.exists()


def test_an_empty_message_shows_the_form_error(supervisor_client, channel):
    response = text(supervisor_client, body="")

    assert response.status_code == 200
    assert "body" in response.context["form"].errors
    assert not Message.objects.exists()


def test_page_queries_do_not_grow_with_the_numbers(
    supervisor_client, channel, django_assert_num_queries
):
    text(supervisor_client)
    with CaptureQueriesContext(connection) as few:
        supervisor_client.get(URL)
    for _ in range(3):
        SmsChannelFactory()
    with django_assert_num_queries(len(few.captured_queries)):
        supervisor_client.get(URL)
