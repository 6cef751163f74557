"""What each kind of step takes and how texts render: the checks a supervisor
meets when saving a bot, through the pure functions, the model and the admin form."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from bots import steps
from bots.models import Bot, BotStep
from tests.bots.test_admin import bot_form_data
from tests.factories import BotFactory, BotStepFactory, CampaignFactory

pytestmark = pytest.mark.django_db

KNOWN = (
    "Known: {customer_number}, {campaign}, {queue_position}, {estimated_wait}, {agent_name} "
    "and {answer:KEY}."
)


# Placeholders ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Hello from {campaign}",
        "{customer_number} is number {queue_position}, wait {estimated_wait}",
        "{agent_name} will help you",
        "Your order {answer:order_number} ships today",
        "Literal braces: {{campaign}} and }} and {{",
        "No placeholders at all",
        "",
    ],
)
def test_known_placeholders_and_escapes_have_no_errors(text):
    assert steps.placeholder_errors(text) == []


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        ("Hi {name}", [f"Unknown placeholder {{name}}. {KNOWN}"]),
        ("Hi {campaign:x}", [f"Unknown placeholder {{campaign:x}}. {KNOWN}"]),
        ("Total: {answer}", ["{answer} needs the answer's key, e.g. {answer:order_number}."]),
        ("A { alone", ["A lone “{”: write “{{” for a literal brace."]),
        ("A } alone", ["A lone “}”: write “}}” for a literal brace."]),
        ("{{{oops}", [f"Unknown placeholder {{oops}}. {KNOWN}"]),
        (
            "{nme} and {answer} and {",
            [
                f"Unknown placeholder {{nme}}. {KNOWN}",
                "{answer} needs the answer's key, e.g. {answer:order_number}.",
                "A lone “{”: write “{{” for a literal brace.",
            ],
        ),
    ],
)
def test_placeholder_errors_name_each_problem(text, errors):
    assert steps.placeholder_errors(text) == errors


def test_render_fills_values_answers_and_escapes():
    text = "{campaign}: {customer_number} #{queue_position}, {{literal}}, order {answer:order}"

    rendered = steps.render(
        text,
        {"campaign": "Support", "customer_number": "+15555550123", "queue_position": "2"},
        {"order": "A-17"},
    )

    assert rendered == "Support: +15555550123 #2, {literal}, order A-17"


def test_render_leaves_missing_values_and_answers_empty():
    assert steps.render("[{agent_name}][{answer:nope}]", {}, {}) == "[][]"


def test_render_keeps_an_unknown_placeholder_as_written():
    assert steps.render("{unknown} {", {"campaign": "x"}, {}) == "{unknown} {"


# Options of each kind ------------------------------------------------------------------


def test_ask_options_defaults():
    options = steps.ask_options({"key": "order_number"})

    assert options == steps.AskOptions(
        key="order_number", choices=(), retry_text="", max_retries=2, wait_seconds=0
    )
    assert options.accepts("  A-17 ") == "A-17"


def test_ask_options_with_choices_make_a_retry_text_and_match_any_case():
    options = steps.ask_options({"key": "ok", "choices": ["Yes", " No "], "max_retries": 0})

    assert options.choices == ("Yes", "No")
    assert options.retry_text == "Please answer Yes or No."
    assert options.max_retries == 0
    assert options.accepts(" yES ") == "Yes"
    assert options.accepts("no") == "No"
    assert options.accepts("maybe") is None


QUESTION_NEEDS_KEY = (
    "A question needs “key”: the name its answer is stored under (letters, digits and _), "
    'e.g. {"key": "order_number"}.'
)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, QUESTION_NEEDS_KEY),
        ({"key": ""}, QUESTION_NEEDS_KEY),
        ({"key": "order number"}, QUESTION_NEEDS_KEY),
        ({"key": 7}, QUESTION_NEEDS_KEY),
        ({"key": "k" * 65}, QUESTION_NEEDS_KEY),
        (
            {"key": "k", "choices": "yes,no"},
            '“choices” must be a list of texts, e.g. ["yes", "no"].',
        ),
        (
            {"key": "k", "choices": ["yes", ""]},
            '“choices” must be a list of texts, e.g. ["yes", "no"].',
        ),
        (
            {"key": "k", "choices": ["yes", 2]},
            '“choices” must be a list of texts, e.g. ["yes", "no"].',
        ),
        ({"key": "k", "max_retries": 11}, "“max_retries” must be a whole number from 0 to 10."),
        ({"key": "k", "max_retries": -1}, "“max_retries” must be a whole number from 0 to 10."),
        ({"key": "k", "max_retries": "2"}, "“max_retries” must be a whole number from 0 to 10."),
        ({"key": "k", "max_retries": True}, "“max_retries” must be a whole number from 0 to 10."),
        ({"key": "k", "max_retries": 1.5}, "“max_retries” must be a whole number from 0 to 10."),
        (
            {"key": "k", "wait_seconds": 7 * 24 * 3600 + 1},
            "“wait_seconds” must be a whole number from 0 to 604800.",
        ),
        ({"key": "k", "retry_text": 3}, "“retry_text” must be a text."),
        ({"key": "k", "retry_text": "Say {thing}"}, f"Unknown placeholder {{thing}}. {KNOWN}"),
        (
            {"key": "k", "timeout": 3},
            "Unknown option “timeout”; this kind of step takes “choices”, “key”, "
            "“max_retries”, “retry_text”, “wait_seconds”.",
        ),
    ],
)
def test_ask_options_refuse_bad_values_with_a_clear_message(options, message):
    with pytest.raises(ValidationError) as excinfo:
        steps.ask_options(options)

    assert excinfo.value.messages == [message]


def test_webhook_options_defaults():
    assert steps.webhook_options({"url": "https://example.com/hook"}) == steps.WebhookOptions(
        url="https://example.com/hook", timeout_seconds=5, on_failure="stop", store=()
    )


NEEDS_URL = "A webhook needs “url”: an http or https address."
ON_FAILURE = '“on_failure” must be "continue" or "stop".'
TIMEOUT_RANGE = "“timeout_seconds” must be a whole number from 1 to 30."
HOOK = "https://x.test"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, NEEDS_URL),
        ({"url": ""}, NEEDS_URL),
        ({"url": "example.com/hook"}, NEEDS_URL),
        ({"url": "ftp://example.com/hook"}, NEEDS_URL),
        ({"url": ["https://example.com"]}, NEEDS_URL),
        ({"url": HOOK, "on_failure": "retry"}, ON_FAILURE),
        ({"url": HOOK, "timeout_seconds": 0}, TIMEOUT_RANGE),
        ({"url": HOOK, "timeout_seconds": 31}, TIMEOUT_RANGE),
        ({"url": HOOK, "timeout_seconds": "5"}, TIMEOUT_RANGE),
        ({"url": HOOK, "store": "tier"}, '“store” must be a list of texts, e.g. ["yes", "no"].'),
        (
            {"url": HOOK, "headers": {}},
            "Unknown option “headers”; this kind of step takes “on_failure”, “store”, "
            "“timeout_seconds”, “url”.",
        ),
    ],
)
def test_webhook_options_refuse_bad_values_with_a_clear_message(options, message):
    with pytest.raises(ValidationError) as excinfo:
        steps.webhook_options(options)

    assert excinfo.value.messages == [message]


def test_name_option_is_optional_and_trimmed():
    assert steps.name_option({}, "disposition", {"disposition"}) == ""
    assert steps.name_option({"campaign": " Sales "}, "campaign", {"campaign"}) == "Sales"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"disposition": 3}, "“disposition” must be a name, as text."),
        (
            {"disposition": "Done", "note": "x"},
            "Unknown option “note”; this kind of step takes “disposition”.",
        ),
    ],
)
def test_name_option_refuses_bad_values(options, message):
    with pytest.raises(ValidationError) as excinfo:
        steps.name_option(options, "disposition", {"disposition"})

    assert excinfo.value.messages == [message]


# BotStep.full_clean -----------------------------------------------------------------


def _clean(kind, text="", options=None):
    step = BotStep(bot=BotFactory(), position=1, kind=kind, text=text, options=options or {})
    with pytest.raises(ValidationError) as excinfo:
        step.full_clean()
    return excinfo.value.message_dict


def test_full_clean_refuses_an_unknown_placeholder_in_the_text():
    errors = _clean(BotStep.Kind.SEND_MESSAGE, text="Hi {nmae}, welcome")

    assert errors == {"text": [f"Unknown placeholder {{nmae}}. {KNOWN}"]}


def test_full_clean_refuses_a_lone_brace_in_a_question():
    errors = _clean(BotStep.Kind.ASK, text="Rate us {1-5}", options={"key": "csat"})

    assert errors == {
        "text": [
            "A lone “{”: write “{{” for a literal brace.",
            "A lone “}”: write “}}” for a literal brace.",
        ]
    }


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        (BotStep.Kind.ASK, {}, QUESTION_NEEDS_KEY),
        (BotStep.Kind.WEBHOOK, {"url": "nope"}, NEEDS_URL),
        (
            BotStep.Kind.FINISH,
            {"campaign": "Sales"},
            "Unknown option “campaign”; this kind of step takes “disposition”.",
        ),
        (BotStep.Kind.REQUEUE, {"campaign": "Nowhere"}, "There is no campaign named “Nowhere”."),
        (
            BotStep.Kind.SEND_MESSAGE,
            {"key": "x"},
            "This kind of step takes no options; leave {}.",
        ),
    ],
)
def test_full_clean_explains_bad_options(kind, options, message):
    CampaignFactory(name="Sales")
    text = "Question?" if kind in BotStep.KINDS_WITH_TEXT else ""

    assert _clean(kind, text=text, options=options) == {"options": [message]}


def test_requeue_to_an_existing_campaign_or_its_own_is_valid():
    CampaignFactory(name="Sales")
    bot = BotFactory()
    BotStep(bot=bot, position=1, kind="requeue", options={"campaign": "Sales"}).full_clean()
    BotStep(bot=bot, position=2, kind="requeue", options={}).full_clean()


# The admin form -----------------------------------------------------------------------


def test_admin_add_form_shows_an_unknown_placeholder_and_saves_nothing(supervisor_client):
    steps_rows = [{"position": "1", "kind": "send_message", "text": "Hi {nmae}", "options": {}}]

    response = supervisor_client.post(
        reverse("admin:bots_bot_add"), bot_form_data(steps=steps_rows)
    )

    assert response.status_code == 200
    form = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert form.errors["text"] == [f"Unknown placeholder {{nmae}}. {KNOWN}"]
    assert f"Unknown placeholder {{nmae}}. {KNOWN}" in response.content.decode()
    assert not Bot.objects.exists()
    assert not BotStep.objects.exists()


def test_admin_change_form_refuses_an_unknown_placeholder_and_keeps_the_old_text(
    supervisor_client,
):
    bot = BotFactory(name="Welcome")
    step = BotStepFactory(bot=bot, position=1, text="Hello from {campaign}")
    row = {
        "id": str(step.pk),
        "bot": str(bot.pk),
        "position": "1",
        "kind": "send_message",
        "text": "Hello {customer}",
        "options": {},
    }

    response = supervisor_client.post(
        reverse("admin:bots_bot_change", args=[bot.pk]), bot_form_data(existing=[row])
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert f"Unknown placeholder {{customer}}. {KNOWN}" in page
    step.refresh_from_db()
    assert step.text == "Hello from {campaign}"


def test_admin_form_explains_bad_webhook_options(supervisor_client):
    row = {
        "position": "1",
        "kind": "webhook",
        "text": "",
        "options": {
            "url": "https://example.com/hook",
            "on_failure": "later",
            "timeout_seconds": 60,
        },
    }

    response = supervisor_client.post(reverse("admin:bots_bot_add"), bot_form_data(steps=[row]))

    assert response.status_code == 200
    form = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert form.errors["options"] == ['“on_failure” must be "continue" or "stop".']
    assert "“on_failure” must be &quot;continue&quot; or &quot;stop&quot;." in (
        response.content.decode()
    )
    assert not Bot.objects.exists()
