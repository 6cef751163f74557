"""The Twilio webhooks through HTTP: authentication, validation, exactly-once."""

import datetime
import logging

import pytest
from django.utils import timezone

from campaigns.models import Interaction, InteractionEvent
from sms_channel.models import Message
from tests.sms_channel.twilio_helpers import (
    CUSTOMER,
    INBOUND_PATH,
    STATUS_PATH,
    TWILIO_NUMBER,
    form_post,
    inbound,
    new_sid,
    payload,
    post_signed,
    sign,
)

pytestmark = pytest.mark.django_db

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


def test_inbound_sms_is_stored_and_queued(client, twilio_channel):
    before = timezone.now()
    response = inbound(client, sid="SM1f0e8ae6ade43cb3c0ce4525424e404f")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    assert response.content == EMPTY_TWIML
    message = Message.objects.get()
    assert message.provider_sid == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert (message.direction, message.sender, message.status) == (
        "inbound",
        "customer",
        "received",
    )
    assert (message.from_number, message.to_number) == (CUSTOMER, TWILIO_NUMBER)
    assert message.body == "Hi, I need help with my order"
    interaction = message.interaction
    assert interaction.status == Interaction.Status.QUEUED
    assert interaction.campaign == twilio_channel.campaign
    assert interaction.customer_number == CUSTOMER
    assert interaction.queued_at >= before
    assert interaction.queue_deadline_at == interaction.queued_at + datetime.timedelta(seconds=300)
    event = InteractionEvent.objects.get(interaction=interaction)
    assert (event.from_status, event.to_status, event.actor) == ("", "queued", "customer")


def test_mms_without_body_stores_its_media(client, twilio_channel):
    params = payload("twilio_inbound_mms")
    response = post_signed(client, INBOUND_PATH, params)

    assert response.status_code == 200
    message = Message.objects.get()
    assert message.body == ""
    assert message.media == [{"url": params["MediaUrl0"], "content_type": "image/jpeg"}]


@pytest.mark.parametrize("signature", [None, "", "bm90IGEgc2lnbmF0dXJl", "wrong-token"], ids=str)
def test_bad_signature_is_403_and_stores_nothing(client, twilio_channel, signature, caplog):
    params = payload("twilio_inbound_sms")
    headers = {}
    if signature == "wrong-token":
        headers["HTTP_X_TWILIO_SIGNATURE"] = sign(
            f"http://testserver{INBOUND_PATH}", params, "f" * 32
        )
    elif signature is not None:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    with caplog.at_level(logging.WARNING, logger="sms_channel.webhooks"):
        response = form_post(client, INBOUND_PATH, params, **headers)

    assert response.status_code == 403
    assert Message.objects.count() == 0
    assert Interaction.objects.count() == 0
    assert len([r for r in caplog.records if r.name == "sms_channel.webhooks"]) == 1
    assert twilio_channel.connector.auth_token not in caplog.text


def test_signature_is_checked_against_public_base_url_behind_a_proxy(
    client, twilio_channel, settings
):
    settings.PUBLIC_BASE_URL = "https://cc.example.com"
    params = payload("twilio_inbound_sms", MessageSid=new_sid())

    # Signed for the internal URL the proxy forwarded to: refused.
    assert post_signed(client, INBOUND_PATH, params).status_code == 403
    # Signed for the public URL Twilio called: accepted.
    response = post_signed(
        client, INBOUND_PATH, params, signed_url=f"https://cc.example.com{INBOUND_PATH}"
    )
    assert response.status_code == 200
    assert Message.objects.filter(provider_sid=params["MessageSid"]).exists()


def test_signature_covers_the_query_string(client, twilio_channel):
    params = payload("twilio_inbound_sms", MessageSid=new_sid())
    path = f"{INBOUND_PATH}?campaign=support&v=2"

    response = form_post(
        client,
        path,
        params,
        HTTP_X_TWILIO_SIGNATURE=sign(f"http://testserver{INBOUND_PATH}", params),
    )
    assert response.status_code == 403

    response = form_post(
        client, path, params, HTTP_X_TWILIO_SIGNATURE=sign(f"http://testserver{path}", params)
    )
    assert response.status_code == 200
    assert Message.objects.count() == 1


def test_parameter_altered_after_signing_is_refused(client, twilio_channel):
    params = payload("twilio_inbound_sms")
    signature = sign(f"http://testserver{INBOUND_PATH}", params)
    params["Body"] = "Send me a refund"

    response = form_post(client, INBOUND_PATH, params, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 403
    assert Message.objects.count() == 0


def test_account_sid_must_match_the_connector(client, twilio_channel):
    params = payload("twilio_inbound_sms", AccountSid="AC" + "0" * 32)
    response = post_signed(client, INBOUND_PATH, params)

    assert response.status_code == 403
    assert b"AccountSid" in response.content
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("MessageSid", None),
        ("MessageSid", "12345"),
        ("AccountSid", None),
        ("From", None),
        ("From", "not-a-number"),
        ("Body", ""),
        ("NumMedia", "many"),
        ("Body", "x" * 1601),
        ("Body", "null\x00byte"),
    ],
)
def test_malformed_fields_are_400_naming_the_field(client, twilio_channel, field, value):
    params = payload("twilio_inbound_sms", **{field: value})
    if field == "AccountSid" and value is None:
        # The signature is fine, but without AccountSid it cannot match the connector.
        assert post_signed(client, INBOUND_PATH, params).status_code == 403
        return
    response = post_signed(client, INBOUND_PATH, params)

    assert response.status_code == 400
    assert field.encode() in response.content
    assert Message.objects.count() == 0


def test_missing_to_is_400(client, twilio_channel):
    params = payload("twilio_inbound_sms", To=None)
    response = post_signed(client, INBOUND_PATH, params)
    assert response.status_code == 400
    assert b"To" in response.content


def test_unknown_number_is_404_and_logged(client, twilio_channel, caplog):
    params = payload("twilio_inbound_sms", To="+14155550111")
    with caplog.at_level(logging.WARNING, logger="sms_channel.webhooks"):
        response = post_signed(client, INBOUND_PATH, params)

    assert response.status_code == 404
    assert "+14155550111" in caplog.text
    assert Message.objects.count() == 0


def test_number_without_any_channel_is_404(client, twilio_channel):
    twilio_channel.delete()
    response = inbound(client)
    assert response.status_code == 404
    assert Message.objects.count() == 0


def test_wrong_content_type_and_method_are_refused(client, twilio_channel):
    params = payload("twilio_inbound_sms")
    url = f"http://testserver{INBOUND_PATH}"
    response = client.post(
        INBOUND_PATH,
        data="{}",
        content_type="application/json",
        HTTP_X_TWILIO_SIGNATURE=sign(url, params),
    )
    assert response.status_code == 415
    assert client.get(INBOUND_PATH).status_code == 405
    assert Message.objects.count() == 0


def test_retried_webhook_is_stored_once(client, twilio_channel):
    sid = new_sid()
    first = inbound(client, sid=sid)
    second = inbound(client, sid=sid)

    assert first.status_code == second.status_code == 200
    assert second.content == EMPTY_TWIML
    assert Message.objects.count() == 1
    assert Interaction.objects.count() == 1
    assert InteractionEvent.objects.count() == 1


def test_webhook_urls_need_no_redirect(client, twilio_channel):
    response = inbound(client)
    assert response.status_code == 200  # not a 301 to a slash-appended URL


# Status callbacks -------------------------------------------------------------


def _outbound(channel, *, sid: str, status: str = "queued") -> Message:
    return Message.objects.create(
        channel=channel,
        direction=Message.Direction.OUTBOUND,
        sender=Message.Sender.AGENT,
        from_number=TWILIO_NUMBER,
        to_number=CUSTOMER,
        body="On its way",
        provider_sid=sid,
        status=status,
    )


def _status(client, sid: str, status: str, **extra):
    params = payload("twilio_status_delivered", MessageSid=sid, MessageStatus=status, **extra)
    params["SmsSid"] = sid
    params["SmsStatus"] = status
    return post_signed(client, STATUS_PATH, params)


def test_status_callbacks_only_move_forward(client, twilio_channel):
    sid = new_sid()
    message = _outbound(twilio_channel, sid=sid)

    assert _status(client, sid, "sent").status_code == 200
    message.refresh_from_db()
    assert message.status == "sent"

    assert _status(client, sid, "delivered").status_code == 200
    # Out of order: a late "sending" and "sent" arrive after "delivered".
    assert _status(client, sid, "sending").status_code == 200
    assert _status(client, sid, "sent").status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered"


def test_failed_status_stores_the_error_code(client, twilio_channel):
    sid = new_sid()
    message = _outbound(twilio_channel, sid=sid, status="sent")

    assert _status(client, sid, "undelivered", ErrorCode="30007").status_code == 200
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("undelivered", "30007")


def test_status_21610_puts_the_number_on_the_opt_out_list(client, twilio_channel):
    sid = new_sid()
    _outbound(twilio_channel, sid=sid, status="sent")

    assert _status(client, sid, "failed", ErrorCode="21610").status_code == 200
    twilio_channel.connector.refresh_from_db()
    assert twilio_channel.connector.opt_out_list.entries.filter(number=CUSTOMER).exists()


def test_status_for_unknown_sid_is_200_and_logged(client, twilio_channel, caplog):
    with caplog.at_level(logging.INFO, logger="sms_channel.webhooks"):
        response = _status(client, new_sid(), "delivered")
    assert response.status_code == 200
    assert "unknown message" in caplog.text


def test_status_callback_needs_a_valid_signature(client, twilio_channel):
    sid = new_sid()
    message = _outbound(twilio_channel, sid=sid)
    params = payload("twilio_status_delivered", MessageSid=sid)

    response = form_post(client, STATUS_PATH, params, HTTP_X_TWILIO_SIGNATURE="forged")
    assert response.status_code == 403
    response = post_signed(client, STATUS_PATH, dict(params, AccountSid="AC" + "1" * 32))
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.status == "queued"


def test_status_callback_with_unknown_status_is_400(client, twilio_channel):
    sid = new_sid()
    _outbound(twilio_channel, sid=sid)
    response = _status(client, sid, "teleported")
    assert response.status_code == 400
    assert b"MessageStatus" in response.content
