import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from bots.models import BotStep
from tests.factories import BotFactory, BotStepFactory, CampaignFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("kind", [BotStep.Kind.SEND_MESSAGE, BotStep.Kind.ASK])
@pytest.mark.parametrize("text", ["", "   \n"])
def test_steps_that_talk_to_the_customer_need_a_text(kind, text):
    step = BotStep(bot=BotFactory(), position=1, kind=kind, text=text, options={})

    with pytest.raises(ValidationError) as excinfo:
        step.full_clean()

    assert "needs a text" in excinfo.value.message_dict["text"][0]


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        (BotStep.Kind.WEBHOOK, {"url": "https://example.com/hook", "on_failure": "continue"}),
        (BotStep.Kind.FINISH, {"disposition": "Resolved"}),
        (BotStep.Kind.REQUEUE, {"campaign": "Sales"}),
    ],
)
def test_steps_that_send_nothing_need_no_text(kind, options):
    CampaignFactory(name="Sales")
    BotStep(bot=BotFactory(), position=1, kind=kind, text="", options=options).full_clean()


def test_ask_step_with_text_and_options_is_valid():
    BotStep(
        bot=BotFactory(),
        position=1,
        kind=BotStep.Kind.ASK,
        text="What is your order number?",
        options={"key": "order_number", "max_retries": 2},
    ).full_clean()


@pytest.mark.parametrize("options", [[], ["key"], "key", 3, None])
def test_options_must_be_a_json_object(options):
    step = BotStep(
        bot=BotFactory(), position=1, kind=BotStep.Kind.WEBHOOK, text="", options=options
    )

    with pytest.raises(ValidationError) as excinfo:
        step.clean()

    assert excinfo.value.message_dict["options"] == ["Options must be a JSON object, e.g. {}."]


def test_two_steps_of_one_bot_cannot_share_a_position():
    step = BotStepFactory(position=1)
    duplicate = BotStep(bot=step.bot, position=1, kind=BotStep.Kind.SEND_MESSAGE, text="Hi")

    with pytest.raises(ValidationError) as excinfo:
        duplicate.validate_constraints()
    assert excinfo.value.messages == ["Two steps of this bot have the same position."]

    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()


def test_steps_of_different_bots_may_share_a_position():
    BotStepFactory(position=1)
    other = BotStep(bot=BotFactory(), position=1, kind=BotStep.Kind.SEND_MESSAGE, text="Hi")

    other.validate_constraints()
    other.save()


def test_steps_come_in_position_order():
    bot = BotFactory()
    for position in (30, 10, 20):
        BotStepFactory(bot=bot, position=position)

    assert [step.position for step in bot.steps.all()] == [10, 20, 30]
