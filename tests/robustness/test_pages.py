"""Junk into every POST of the agent console and the supervisor dashboard, and
into the sign-in page: never a 5xx, and a refusal writes nothing.

Each example builds fresh campaigns and conversations (conftest.make_world), so
an earlier example that finished or took a conversation does not leave the
later ones only refusals to test. A request counts as refused when it
answers 4xx, re-renders its form (200 to a POST), or flashes an error.
The users and one signed-in test client serve all the examples of a test:
a client's first request loads the middleware, and signing in runs a dozen
queries, more than the rest of an example.
"""

from urllib.parse import urlencode

import pytest
from django.contrib.messages import constants
from django.test import Client
from django.utils.http import url_has_allowed_host_and_scheme
from hypothesis import event, given
from hypothesis import strategies as st

from campaigns.models import AgentProfile
from tests.factories import PASSWORD, AgentFactory
from tests.robustness.conftest import make_world, snapshot
from tests.robustness.strategies import (
    ROBUST,
    form_pairs,
    header_text,
    id_text,
    ids,
    junk_text,
    mostly,
    numbers,
    printable,
)

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"
ALLOWED = {200, 204, 302, 400, 403, 404, 405, 429}


def post_form(client: Client, path: str, pairs: list[tuple[str, str]]):
    """POST as a browser does: url-encoded, with the fields in any order."""
    # A flash left by the previous example must not count for this one.
    client.cookies.pop("messages", None)
    return client.post(path, data=urlencode(pairs), content_type=FORM)


def errors_flashed(response) -> list[str]:
    storage = getattr(response.wsgi_request, "_messages", None)
    return [str(m) for m in storage or [] if m.level == constants.ERROR]


def check(response, before: tuple) -> None:
    """Never a 5xx; a refusal writes nothing, and a success leaves an event row
    for every conversation and agent status it changed."""
    event(f"HTTP {response.status_code}")
    assert response.status_code in ALLOWED, response.content[:500]
    refused = response.status_code >= 400 or response.status_code == 200 or errors_flashed(response)
    event("refused" if refused else "done")
    after = snapshot()
    if refused:
        assert after == before, (response.status_code, errors_flashed(response))
        return
    counts, rows, profiles = before[:5], set(before[5]), set(before[6])
    changed = [row for row in after[5] if row[0] in {r[0] for r in rows} and row not in rows]
    assert after[1] - counts[1] >= len(changed), "a conversation changed without an event"
    moved = set(after[6]) - profiles
    assert after[4] - counts[4] >= len(moved), "an agent's status changed without an event"


# Agent console ----------------------------------------------------------------------

statuses = st.sampled_from(AgentProfile.Status.values)

# name: (path, with {pk} for a conversation id; the conversation it is meant
# for; the form's fields as strategies, from the world)
CONSOLE_POSTS = {
    "status": ("/agent/status/", None, lambda w: {"status": statuses}),
    "heartbeat": ("/agent/heartbeat/", None, lambda w: {}),
    "reply": ("/agent/conversations/{pk}/reply/", "held", lambda w: {"body": junk_text}),
    "transfer-agent": (
        "/agent/conversations/{pk}/transfer/agent/",
        "held",
        lambda w: {"to_agent": id_text([w.colleague.pk]), "note": junk_text},
    ),
    "transfer-campaign": (
        "/agent/conversations/{pk}/transfer/campaign/",
        "held",
        lambda w: {"campaign": id_text([w.other_campaign.pk]), "note": junk_text},
    ),
    "finish": (
        "/agent/conversations/{pk}/finish/",
        "held",
        lambda w: {"disposition": id_text(w.disposition_ids), "note": junk_text},
    ),
    "take": ("/agent/conversations/{pk}/take/", "queued", lambda w: {}),
    "accept": ("/agent/conversations/{pk}/accept/", "offered", lambda w: {}),
    "decline": ("/agent/conversations/{pk}/decline/", "offered", lambda w: {}),
    "start-conversation": (
        "/agent/conversations/new/",
        None,
        lambda w: {
            "campaign": id_text(w.campaign_ids),
            "customer_number": numbers,
            "body": junk_text,
        },
    ),
}


@pytest.mark.parametrize("name", CONSOLE_POSTS)
def test_console_post_with_junk_is_never_5xx_and_a_refusal_writes_nothing(client, name):
    template, meant_for, fields = CONSOLE_POSTS[name]

    people = make_world()
    client.force_login(people.agent)

    @ROBUST
    @given(data=st.data())
    def run(data):
        world = make_world(people)
        # The conversation the action is for, else any of the agent's, a
        # colleague's, or none at all.
        if "{pk}" in template:
            meant = st.just(getattr(world, meant_for).pk)
            pk = data.draw(mostly(meant, ids(world.interaction_ids)), label="pk")
            path = template.format(pk=pk)
        else:
            path = template
        pairs = data.draw(form_pairs(fields(world)), label="form")
        before = snapshot()

        response = post_form(client, path, pairs)

        check(response, before)

    run()


# Supervisor dashboard -------------------------------------------------------------------

SUPERVISOR_POSTS = {
    "reassign": lambda w: {"agent": id_text(w.user_ids)},
    "close": lambda w: {"reason": junk_text},
}


@pytest.mark.parametrize("action", SUPERVISOR_POSTS)
def test_supervisor_post_with_junk_is_never_5xx_and_a_refusal_writes_nothing(client, action):
    people = make_world()
    client.force_login(people.supervisor)

    @ROBUST
    @given(data=st.data())
    def run(data):
        world = make_world(people)
        campaign_id = data.draw(ids(world.campaign_ids), label="campaign_id")
        interaction_id = data.draw(ids(world.interaction_ids), label="interaction_id")
        pairs = data.draw(form_pairs(SUPERVISOR_POSTS[action](world)), label="form")
        path = f"/supervisor/campaigns/{campaign_id}/conversations/{interaction_id}/{action}/"
        before = snapshot()

        response = post_form(client, path, pairs)

        check(response, before)

    run()


@pytest.mark.parametrize("campaign_id", [2**63, 10**25])
def test_reassign_with_a_campaign_id_past_64_bits_is_404(supervisor_client, campaign_id):
    # The fuzzer found it: the members query raised OverflowError on SQLite.
    world = make_world()
    path = f"/supervisor/campaigns/{campaign_id}/conversations/{world.queued.pk}/reassign/"
    before = snapshot()

    response = post_form(supervisor_client, path, [("agent", str(world.agent.pk))])

    assert response.status_code == 404
    assert snapshot() == before


def _conversation_posts(world, interaction) -> list[str]:
    # Not take: any member may try to take a conversation of their campaign.
    console = [
        f"/agent/conversations/{interaction.pk}/{action}/"
        for action in (
            "reply",
            "transfer/agent",
            "transfer/campaign",
            "finish",
            "accept",
            "decline",
        )
    ]
    dashboard = [
        f"/supervisor/campaigns/{world.campaign.pk}/conversations/{interaction.pk}/{action}/"
        for action in ("reassign", "close")
    ]
    return console + dashboard


@pytest.mark.parametrize("role", ["agent", "colleague", "outsider"])
def test_actions_on_a_conversation_that_is_not_yours_are_refused(client, role):
    world = make_world()
    client.force_login(getattr(world, role))
    # The colleague's own conversation for the agent, the agent's for the others.
    interaction = world.colleagues if role == "agent" else world.held
    form = [("body", "hi"), ("agent", str(world.colleague.pk)), ("to_agent", "1")]

    for path in _conversation_posts(world, interaction):
        before = snapshot()

        response = post_form(client, path, form)

        assert response.status_code in {403, 404}, (path, response.status_code)
        assert snapshot() == before, path


@pytest.mark.parametrize("token", [None, "", "x" * 64, "\u00e9" * 32])
def test_posts_without_a_valid_csrf_token_are_refused(token):
    world = make_world()
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.supervisor)
    paths = _conversation_posts(world, world.held)
    form = [("body", "hi"), ("agent", str(world.colleague.pk))]
    if token is not None:
        form.append(("csrfmiddlewaretoken", token))

    for path in ["/agent/status/", "/agent/conversations/new/", *paths]:
        before = snapshot()

        response = post_form(client, path, [*form, ("status", "break")])

        assert response.status_code == 403, path
        assert snapshot() == before, path


# Every page's GET and its htmx polls -----------------------------------------------------


def _pages(world) -> list[str]:
    held = world.held.pk
    return [
        "/",
        "/agent/",
        "/agent/partials/conversations/",
        "/agent/partials/pending/",
        "/agent/conversations/new/",
        f"/agent/conversations/{held}/",
        f"/agent/conversations/{held}/thread/",
        "/supervisor/",
        "/supervisor/live/",
        f"/supervisor/campaigns/{world.campaign.pk}/",
        f"/supervisor/campaigns/{world.campaign.pk}/live/",
        "/accounts/login/",
        "/simulator/",
    ]


hx_headers = st.fixed_dictionaries(
    {"HTTP_HX_REQUEST": mostly(st.just("true"), st.sampled_from(["false", ""]))},
    optional={
        "HTTP_HX_CURRENT_URL": st.one_of(
            header_text,
            st.builds(lambda rest: "http://testserver" + rest, header_text),
        ),
        "HTTP_HX_TARGET": header_text,
        "HTTP_HX_TRIGGER": header_text,
    },
)


@pytest.mark.parametrize("role", [None, "agent", "supervisor"])
def test_pages_with_junk_query_and_htmx_headers_are_never_5xx(world, role):
    client = Client()
    if role:
        client.force_login(getattr(world, role))

    @ROBUST
    @given(
        path=st.sampled_from(_pages(world)),
        query=st.lists(st.tuples(junk_text, junk_text), max_size=3),
        headers=hx_headers,
    )
    def run(path, query, headers):
        before = snapshot()

        response = client.get(f"{path}?{urlencode(query)}", **headers)

        event(f"HTTP {response.status_code}")
        assert response.status_code in {200, 302, 400, 403, 404}, response.content[:300]
        assert snapshot() == before

    run()


@pytest.mark.parametrize(
    "path", ["/agent/", "/agent/partials/pending/", "/supervisor/", "/supervisor/live/"]
)
@pytest.mark.parametrize(
    "current_url", ["http://[", "http://]/", "http://[::1/", "http://testserver:99999/"]
)
def test_a_poll_after_sign_out_with_a_broken_current_url_goes_to_sign_in(client, path, current_url):
    # The fuzzer found these: django-htmx parses HX-Current-URL on access and
    # urlsplit raises ValueError on them, which answered 500.
    response = client.get(path, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=current_url)

    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/accounts/login/?next=")


# Sign-in -----------------------------------------------------------------------------------

SIGN_IN_PAGES = ["/accounts/login/", "/admin/login/"]


@ROBUST
@given(
    path=st.sampled_from(SIGN_IN_PAGES),
    form=form_pairs(
        {
            "username": st.one_of(
                st.sampled_from(["agent-login", "nobody"]),
                # Longer than any username column.
                st.text(printable, min_size=151, max_size=400),
            ),
            "password": st.sampled_from(["wrong", PASSWORD]),
            "next": st.sampled_from(["/agent/", "//evil.example/", "http://evil.example/"]),
        }
    ),
    query=st.lists(st.tuples(st.just("next"), junk_text), max_size=2),
)
def test_sign_in_with_junk_is_never_5xx_and_writes_nothing(client, path, form, query):
    if not AgentFactory._meta.model.objects.filter(username="agent-login").exists():
        AgentFactory(username="agent-login")
    client.cookies.clear()
    before = snapshot()

    response = post_form(client, f"{path}?{urlencode(query)}", form)

    event(f"HTTP {response.status_code}")
    assert response.status_code in {200, 302, 403, 429}, response.content[:300]
    if response.status_code == 302:
        # Only ever to this site.
        location = response["Location"]
        assert url_has_allowed_host_and_scheme(location, allowed_hosts={"testserver"}), location
    assert snapshot() == before


@pytest.mark.parametrize("path", SIGN_IN_PAGES)
@pytest.mark.parametrize("length", [151, 255, 256, 5000])
def test_a_username_longer_than_any_column_is_refused_not_500(client, path, length):
    # Django's AuthenticationForm does not check the username's length, so
    # a long one reaches authenticate() and every user_login_failed receiver.
    response = post_form(client, path, [("username", "u" * length), ("password", "wrong")])

    assert response.status_code in {200, 429}, response.content[:300]
