"""The admin's "Try this bot" page, and how the bot pages treat the webhook secret."""

import pytest
from django.db import connection
from django.urls import reverse

from bots.models import Bot, BotSession, BotStep
from bots.trial import Line
from campaigns.models import Interaction, InteractionEvent
from contactcenter.crypto import decrypt
from sms_channel.models import Message
from tests.bots.test_admin import bot_form_data
from tests.factories import BotFactory, BotStepFactory, CampaignFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET = "whsec-0123456789abcdefghijklmnopqrstuvwxyzWXYZ"


def try_url(bot: Bot) -> str:
    return reverse("admin:bots_bot_try", args=[bot.pk])


def step(bot, position, kind, text="", **options):
    return BotStepFactory(bot=bot, position=position, kind=kind, text=text, options=options)


@pytest.fixture
def bot(webhook_receiver) -> Bot:
    """A bot using every kind of step that talks, plus a webhook."""
    bot = BotFactory(name="Helper", webhook_secret=SECRET)
    step(bot, 10, BotStep.Kind.SEND_MESSAGE, "Hi from {campaign}, {customer_number}.")
    step(bot, 20, BotStep.Kind.ASK, "Your order number?", key="order")
    step(
        bot,
        30,
        BotStep.Kind.ASK,
        "Shall we call you? Yes or No",
        key="call",
        choices=["Yes", "No"],
        max_retries=1,
    )
    step(bot, 40, BotStep.Kind.WEBHOOK, url=webhook_receiver.url, store=["tier"])
    step(bot, 50, BotStep.Kind.SEND_MESSAGE, "Thanks, {answer:order} ({answer:call}).")
    return bot


def test_typed_replies_give_a_transcript_and_nothing_is_sent_or_stored(
    supervisor_client, bot, webhook_receiver
):
    sales = CampaignFactory(name="Sales")

    response = supervisor_client.post(
        try_url(bot), {"replies": "A-17\n\n  maybe \nno\n", "campaign": sales.pk}
    )

    assert response.status_code == 200
    url = webhook_receiver.url
    assert response.context["transcript"] == [
        Line("bot", "Hi from Sales, +15555550123."),
        Line("bot", "Your order number?"),
        Line("customer", "A-17"),
        Line("bot", "Shall we call you? Yes or No"),
        Line("customer", "maybe"),
        Line("bot", "Please answer Yes or No."),
        Line("customer", "no"),
        Line("note", f"Would POST the conversation to {url} (not called in a trial)."),
        Line("bot", "Thanks, A-17 (No)."),
        Line("note", "Answers stored: order = 'A-17', call = 'No'."),
        Line("note", "The bot is done."),
    ]
    page = response.content.decode()
    assert '<li class="bot">Hi from Sales, +15555550123.</li>' in page
    assert '<li class="customer">maybe</li>' in page
    note = f"Would POST the conversation to {url} (not called in a trial)."
    assert f'<li class="note">{note}</li>' in page
    assert webhook_receiver.calls == []
    assert not Message.objects.exists()
    assert not BotSession.objects.exists()
    assert not Interaction.objects.exists()
    assert not InteractionEvent.objects.exists()


def test_without_enough_replies_the_bot_waits_and_the_campaign_defaults_to_demo(
    supervisor_client, bot
):
    response = supervisor_client.post(try_url(bot), {"replies": ""})

    assert response.context["transcript"] == [
        Line("bot", "Hi from Demo, +15555550123."),
        Line("bot", "Your order number?"),
        Line("note", "The bot waits for the customer's reply."),
    ]


def test_wrong_answers_past_the_limit_move_the_bot_on(supervisor_client):
    bot = BotFactory()
    step(bot, 1, BotStep.Kind.ASK, "1 or 2?", key="pick", choices=["1", "2"], max_retries=0)
    step(bot, 2, BotStep.Kind.FINISH, disposition="Resolved")
    step(bot, 3, BotStep.Kind.SEND_MESSAGE, "never")

    response = supervisor_client.post(try_url(bot), {"replies": "3"})

    assert response.context["transcript"] == [
        Line("bot", "1 or 2?"),
        Line("customer", "3"),
        Line("note", "No acceptable answer; the bot moves on."),
        Line("note", "The conversation is finished with disposition “Resolved”."),
    ]


def test_the_transcript_escapes_what_was_typed(supervisor_client, bot):
    response = supervisor_client.post(try_url(bot), {"replies": "<script>alert(1)</script>"})

    page = response.content.decode()
    assert "<script>alert(1)</script>" not in page
    assert '<li class="customer">&lt;script&gt;alert(1)&lt;/script&gt;</li>' in page


def test_get_shows_the_form_without_a_transcript(supervisor_client, bot):
    response = supervisor_client.get(try_url(bot))

    assert response.status_code == 200
    assert response.context["transcript"] is None
    page = response.content.decode()
    assert 'id="bot_try_form"' in page
    assert 'id="transcript"' not in page
    assert "Try Helper" in page


def test_the_change_page_links_to_the_try_page(supervisor_client, bot):
    response = supervisor_client.get(reverse("admin:bots_bot_change", args=[bot.pk]))

    assert f'<a href="{try_url(bot)}">Try this bot</a>' in response.content.decode()


def test_agents_cannot_open_the_try_page(agent_client, bot):
    response = agent_client.post(try_url(bot), {"replies": "A-17"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert not Message.objects.exists()


def test_staff_without_bot_permissions_are_refused(client, bot):
    client.force_login(UserFactory(is_staff=True))

    assert client.get(try_url(bot)).status_code == 403
    assert client.post(try_url(bot), {"replies": "A-17"}).status_code == 403


def test_an_unknown_bot_is_not_found(supervisor_client):
    assert supervisor_client.get(reverse("admin:bots_bot_try", args=[999999])).status_code == 404


# The webhook secret ---------------------------------------------------------------------


def test_change_page_shows_only_the_masked_secret(supervisor_client, bot):
    change = supervisor_client.get(reverse("admin:bots_bot_change", args=[bot.pk]))
    trial = supervisor_client.post(try_url(bot), {"replies": "A-17"})

    page = change.content.decode()
    assert "••••WXYZ" in page
    for response in (change, trial):
        content = response.content.decode()
        assert SECRET not in content
        assert SECRET[:-4] not in content


def test_a_bot_saved_in_the_admin_gets_a_secret_stored_encrypted(supervisor_client):
    steps = [{"position": "1", "kind": "send_message", "text": "Hi", "options": {}}]

    response = supervisor_client.post(reverse("admin:bots_bot_add"), bot_form_data(steps=steps))

    assert response.status_code == 302
    bot = Bot.objects.get(name="Welcome")
    secret = bot.webhook_secret
    assert len(secret) >= 32
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM bots_bot WHERE id = %s", [bot.pk])
        (raw,) = cursor.fetchone()
    assert raw
    assert secret not in raw
    assert decrypt(raw) == secret

    # Shown in full once, in the message on the page after saving, for the
    # receiving server; masked ever after.
    change_url = reverse("admin:bots_bot_change", args=[bot.pk])
    first = supervisor_client.get(change_url).content.decode()
    assert f"Webhook secret of “Welcome”: {secret}" in first
    later = supervisor_client.get(change_url).content.decode()
    assert f"••••{secret[-4:]}" in later
    assert secret not in later


def test_rotating_the_secret_shows_the_new_one_once(supervisor_client):
    bot = BotFactory(name="Welcome", webhook_secret=SECRET)

    response = supervisor_client.post(
        reverse("admin:bots_bot_changelist"),
        {"action": "rotate_webhook_secret", "_selected_action": [bot.pk]},
        follow=True,
    )

    bot.refresh_from_db()
    assert bot.webhook_secret != SECRET
    assert len(bot.webhook_secret) >= 32
    assert bot.webhook_secret in response.content.decode()
    later = supervisor_client.get(reverse("admin:bots_bot_change", args=[bot.pk]))
    assert bot.webhook_secret not in later.content.decode()


def test_saving_a_bot_again_keeps_its_secret(supervisor_client):
    bot = BotFactory(name="Welcome", webhook_secret=SECRET)

    response = supervisor_client.post(
        reverse("admin:bots_bot_change", args=[bot.pk]), bot_form_data(name="Welcome back")
    )

    assert response.status_code == 302
    bot.refresh_from_db()
    assert (bot.name, bot.webhook_secret) == ("Welcome back", SECRET)
