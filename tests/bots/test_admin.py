import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bots.models import Bot, BotStep
from tests.factories import BotFactory, BotStepFactory, SmsChannelFactory

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:bots_bot_add")
CHANGELIST_URL = reverse("admin:bots_bot_changelist")


def bot_form_data(*, name="Welcome", steps=(), existing=()):
    """POST data of the bot change form: `existing` steps first, then new `steps`."""
    rows = [*existing, *steps]
    data = {
        "name": name,
        "active": "on",
        "description": "",
        "steps-TOTAL_FORMS": str(len(rows)),
        "steps-INITIAL_FORMS": str(len(existing)),
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        for field, value in row.items():
            if field == "options":
                value = json.dumps(value)
            data[f"steps-{index}-{field}"] = value
    return data


def test_changelist_shows_each_bots_step_count(supervisor_client):
    bot = BotFactory(name="Survey")
    BotStepFactory.create_batch(3, bot=bot)
    BotFactory(name="Empty")

    response = supervisor_client.get(CHANGELIST_URL)

    assert response.status_code == 200
    rows = {bot.name: bot._step_count for bot in response.context["cl"].result_list}
    assert rows == {"Survey": 3, "Empty": 0}
    assert b'<td class="field-step_count">3</td>' in response.content


def test_changelist_query_count_does_not_grow_with_bots(supervisor_client):
    BotStepFactory()

    with CaptureQueriesContext(connection) as one_bot:
        supervisor_client.get(CHANGELIST_URL)
    for _ in range(5):
        BotStepFactory.create_batch(2, bot=BotFactory())
    with CaptureQueriesContext(connection) as six_bots:
        response = supervisor_client.get(CHANGELIST_URL)

    assert len(response.context["cl"].result_list) == 6
    assert len(six_bots) == len(one_bot)


def test_add_form_explains_every_step_kind(supervisor_client):
    response = supervisor_client.get(ADD_URL)

    assert response.status_code == 200
    content = response.content.decode()
    for label in BotStep.Kind.labels:
        assert f"<b>{label}</b>" in content
    for key in ('"key"', '"retry_text"', '"max_retries"', '"wait_seconds"', '"url"'):
        assert key in content
    for key in ('"timeout_seconds"', '"on_failure"', '"store"', '"disposition"', '"campaign"'):
        assert key in content


def test_saving_a_bot_stores_its_steps_in_position_order(supervisor_client):
    steps = [
        {"position": "30", "kind": "finish", "text": "", "options": {"disposition": "Resolved"}},
        {"position": "10", "kind": "send_message", "text": "Hi from {campaign}", "options": {}},
        {
            "position": "20",
            "kind": "ask",
            "text": "Your order number?",
            "options": {"key": "order_number", "max_retries": 2},
        },
    ]

    response = supervisor_client.post(ADD_URL, bot_form_data(steps=steps))

    assert response.status_code == 302, response.context["errors"]
    bot = Bot.objects.get(name="Welcome")
    stored = [(s.position, s.kind, s.text, s.options) for s in bot.steps.all()]
    assert stored == [
        (10, "send_message", "Hi from {campaign}", {}),
        (20, "ask", "Your order number?", {"key": "order_number", "max_retries": 2}),
        (30, "finish", "", {"disposition": "Resolved"}),
    ]


def step_row(step, **changes):
    row = {
        "id": str(step.pk),
        "bot": str(step.bot_id),
        "position": str(step.position),
        "kind": step.kind,
        "text": step.text,
        "options": step.options,
    }
    return {**row, **changes}


def test_change_form_lists_steps_in_position_order(supervisor_client):
    bot = BotFactory()
    BotStepFactory(bot=bot, position=20, text="second")
    BotStepFactory(bot=bot, position=10, text="first")

    response = supervisor_client.get(reverse("admin:bots_bot_change", args=[bot.pk]))

    formset = response.context["inline_admin_formsets"][0].formset
    assert [form.instance.text for form in formset.initial_forms] == ["first", "second"]


def test_swapping_two_steps_positions_saves(supervisor_client):
    bot = BotFactory(name="Welcome")
    hello = BotStepFactory(bot=bot, position=10, text="hello")
    question = BotStepFactory(
        bot=bot, position=20, kind="ask", text="order?", options={"key": "order"}
    )
    bye = BotStepFactory(bot=bot, position=30, text="bye")
    existing = [
        step_row(hello, position="20"),
        step_row(question, position="10"),
        step_row(bye),
    ]

    response = supervisor_client.post(
        reverse("admin:bots_bot_change", args=[bot.pk]), bot_form_data(existing=existing)
    )

    assert response.status_code == 302, response.context["errors"]
    assert [(s.position, s.text) for s in bot.steps.all()] == [
        (10, "order?"),
        (20, "hello"),
        (30, "bye"),
    ]


def test_a_deleted_steps_position_can_be_reused_in_the_same_save(supervisor_client):
    bot = BotFactory(name="Welcome")
    old = BotStepFactory(bot=bot, position=1, text="old")
    moved = BotStepFactory(bot=bot, position=2, text="moved")
    existing = [step_row(moved, position="1"), step_row(old, DELETE="on")]
    new = [{"position": "2", "kind": "send_message", "text": "new", "options": {}}]

    response = supervisor_client.post(
        reverse("admin:bots_bot_change", args=[bot.pk]),
        bot_form_data(existing=existing, steps=new),
    )

    assert response.status_code == 302, response.context["errors"]
    assert [(s.position, s.text) for s in bot.steps.all()] == [(1, "moved"), (2, "new")]


def test_a_cleared_options_box_is_stored_as_no_options(supervisor_client):
    data = bot_form_data(steps=[{"position": "1", "kind": "send_message", "text": "Hi"}])
    data["steps-0-options"] = ""

    response = supervisor_client.post(ADD_URL, data)

    assert response.status_code == 302, response.context["errors"]
    assert BotStep.objects.get().options == {}


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        (
            {"position": "1", "kind": "ask", "text": " ", "options": {"key": "k"}},
            "text",
            "A “Ask a question and store the answer” step needs a text.",
        ),
        (
            {"position": "1", "kind": "webhook", "text": "", "options": ["https://x.test"]},
            "options",
            "Options must be a JSON object, e.g. {}.",
        ),
    ],
)
def test_invalid_step_is_explained_and_nothing_is_saved(supervisor_client, step, field, message):
    response = supervisor_client.post(ADD_URL, bot_form_data(steps=[step]))

    assert response.status_code == 200
    form = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert form.errors[field] == [message]
    assert not Bot.objects.exists()


def test_duplicate_positions_are_refused(supervisor_client):
    steps = [
        {"position": "1", "kind": "send_message", "text": "Hi", "options": {}},
        {"position": "1", "kind": "send_message", "text": "Bye", "options": {}},
    ]

    response = supervisor_client.post(ADD_URL, bot_form_data(steps=steps))

    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert "duplicate data for position" in str(formset.non_form_errors())
    assert not Bot.objects.exists()


def test_deleting_a_bot_used_by_a_channel_shows_the_protected_page(supervisor_client):
    bot = BotFactory(name="Survey")
    channel = SmsChannelFactory(bot_on_finish=bot)
    url = reverse("admin:bots_bot_delete", args=[bot.pk])

    response = supervisor_client.get(url)

    assert response.status_code == 200
    assert response.context["protected"]
    content = response.content.decode()
    assert "would require deleting the following protected related objects" in content
    assert str(channel) in content

    response = supervisor_client.post(url, {"post": "yes"})

    assert response.status_code == 200
    assert response.context["protected"]
    assert Bot.objects.filter(pk=bot.pk).exists()


def test_bulk_delete_of_a_bot_used_by_a_channel_is_refused(supervisor_client):
    used = BotFactory()
    unused = BotFactory()
    SmsChannelFactory(bot_on_start=used)

    response = supervisor_client.post(
        CHANGELIST_URL,
        {"action": "delete_selected", "_selected_action": [used.pk, unused.pk], "post": "yes"},
    )

    assert response.status_code == 200
    assert "protected related objects" in response.content.decode()
    assert set(Bot.objects.values_list("pk", flat=True)) == {used.pk, unused.pk}


def test_deleting_an_unused_bot_deletes_its_steps(supervisor_client):
    bot = BotFactory()
    BotStepFactory.create_batch(2, bot=bot)

    response = supervisor_client.post(
        reverse("admin:bots_bot_delete", args=[bot.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Bot.objects.exists()
    assert not BotStep.objects.exists()
