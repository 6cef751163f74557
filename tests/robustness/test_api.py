"""Junk into every operation of the REST API: never a 5xx, and a refusal writes nothing.

The operations come from the project's own OpenAPI schema (the one served at
/api/schema/), so an endpoint added later is fuzzed without touching this
file. Each example fills the path, the query and the JSON body from the
schema, with any part replaced by junk, and is sent as a supervisor and as
an agent (each sees a different part of the API).
"""

import functools
import json
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import event, given
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from campaigns.models import BlacklistEntry
from campaigns.services import BLACKLIST_BULK_MAX_ROWS
from tests.robustness.conftest import snapshot
from tests.robustness.strategies import (
    HUGE_INTS,
    ROBUST,
    datetimes,
    header_text,
    ids,
    junk_json,
    junk_text,
    mostly,
    numbers,
)

pytestmark = pytest.mark.django_db

JSON = "application/json"
ALLOWED = {200, 201, 204, 400, 401, 403, 404, 405, 413, 415}


@functools.cache
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations() -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in openapi()["paths"].items()
        for method in item
        if method in {"get", "put", "patch", "post", "delete"}
    ]


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = openapi()["components"]["schemas"][name]
    return node


# Field names whose plausible values are phone numbers, not any text.
_PHONE_FIELDS = {"number", "numbers"}


def from_schema(node: dict, name: str = "") -> st.SearchStrategy:
    """Values that fit `node`, each part now and then swapped for junk JSON."""
    fitting = _fitting(_resolve(node), name)
    return mostly(fitting, junk_json) if name else fitting


def _fitting(node: dict, name: str) -> st.SearchStrategy:
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        return st.fixed_dictionaries(
            {key: from_schema(value, key) for key, value in properties.items() if key in required},
            optional={
                key: from_schema(value, key)
                for key, value in properties.items()
                if key not in required
            },
        )
    if kind == "array":
        # Empty lists come with the junk.
        items = from_schema(node.get("items", {}), name.rstrip("s"))
        return st.lists(items, min_size=1, max_size=6)
    if kind == "integer":
        return st.one_of(st.integers(), st.sampled_from(HUGE_INTS))
    if kind == "boolean":
        return st.booleans()
    if name in _PHONE_FIELDS:
        return st.one_of(numbers, junk_text)
    return junk_text


def query_value(parameter: dict, world) -> st.SearchStrategy[str]:
    schema = _resolve(parameter.get("schema", {}))
    if "enum" in schema:
        plausible = st.sampled_from(schema["enum"])
    elif schema.get("type") == "integer":
        real = world.campaign_ids + world.user_ids
        plausible = st.one_of(ids(real), st.integers(max_value=0)).map(str)
    elif parameter["name"].startswith("created_"):
        plausible = datetimes
    else:
        plausible = junk_text
    return mostly(plausible, junk_text)


def path_ids(world) -> dict[str, list[int]]:
    return {
        "id": world.interaction_ids,
        "campaign_id": world.campaign_ids,
        "blacklist_id": [world.blacklist.pk],
        "agent_id": world.user_ids,
    }


@st.composite
def api_request(draw, method: str, template: str, world) -> dict:
    operation = openapi()["paths"][template][method.lower()]
    path = template
    query = []
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            real = path_ids(world).get(parameter["name"], [])
            path = path.replace(f"{{{parameter['name']}}}", str(draw(ids(real))))
        elif parameter["in"] == "query" and draw(st.booleans()):
            query.append((parameter["name"], draw(query_value(parameter, world))))
    query += draw(st.lists(st.tuples(junk_text, junk_text), max_size=2))
    body = None
    content = (operation.get("requestBody") or {}).get("content", {})
    if JSON in content:
        body = draw(
            mostly(
                from_schema(content[JSON]["schema"]).map(json.dumps),
                st.one_of(junk_json.map(json.dumps), st.binary(max_size=60), st.just("")),
            )
        )
    return {"path": path, "query": urlencode(query), "body": body}


def send(client: Client, method: str, request: dict):
    url = request["path"] + ("?" + request["query"] if request["query"] else "")
    call = getattr(client, method.lower())
    if request["body"] is None:
        return call(url)
    return call(url, data=request["body"], content_type=JSON)


@pytest.mark.parametrize("role", ["supervisor", "agent"])
@pytest.mark.parametrize(
    ("method", "template"), operations(), ids=[f"{m} {p}" for m, p in operations()]
)
def test_junk_request_is_never_5xx_and_a_refusal_writes_nothing(world, role, method, template):
    # As integrators call it: with a token, so without the session's CSRF check.
    token, _ = Token.objects.get_or_create(user=getattr(world, role))
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")

    @ROBUST
    @given(request=api_request(method, template, world))
    def run(request):
        before = snapshot()

        response = send(client, method, request)

        event(f"HTTP {response.status_code}")
        assert response.status_code in ALLOWED, (request, response.content[:300])
        if response.status_code >= 400 or method == "GET":
            assert snapshot() == before, (request, response.content[:300])

    run()


def test_the_fuzzed_operations_are_those_the_api_serves(supervisor_client):
    # The schema is where the fuzzer learns what to send: an endpoint missing
    # from it would go unfuzzed, and one whose ids it cannot fill would only
    # ever get made-up ones.
    served = supervisor_client.get("/api/schema/?format=json").json()

    assert {
        (method.upper(), path) for path, item in served["paths"].items() for method in item
    } == set(operations())
    assert {path for _, path in operations()} >= {
        "/api/interactions/",
        "/api/interactions/{id}/",
        "/api/campaigns/",
        "/api/campaigns/{campaign_id}/statistics/",
        "/api/blacklists/",
        "/api/blacklists/{blacklist_id}/entries/",
        "/api/blacklists/{blacklist_id}/entries/bulk-add/",
        "/api/blacklists/{blacklist_id}/entries/bulk-remove/",
        "/api/agents/me/status/",
        "/api/agents/{agent_id}/status/",
    }
    path_parameters = {
        parameter["name"]
        for item in openapi()["paths"].values()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    }
    assert path_parameters <= {"id", "campaign_id", "blacklist_id", "agent_id"}


# Schema, docs and credentials -------------------------------------------------------


@ROBUST
@given(
    path=st.sampled_from(["/api/schema/", "/api/docs/", "/api/interactions/"]),
    query=st.lists(st.tuples(junk_text, junk_text), max_size=3).map(urlencode),
    authorization=st.one_of(
        st.none(),
        header_text,
        st.builds(lambda key: f"Token {key}", header_text),
        st.builds(lambda key: f"Bearer {key}", header_text),
    ),
)
def test_junk_credentials_and_queries_are_never_5xx(client, path, query, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}

    response = client.get(f"{path}?{query}", **headers)

    event(f"HTTP {response.status_code}")
    assert response.status_code in {200, 302, 400, 401, 403}, response.content[:300]


# Size, content type and known cases -----------------------------------------------------


def test_oversized_json_body_is_refused_and_writes_nothing(supervisor_client, world):
    url = f"/api/blacklists/{world.blacklist.pk}/entries/bulk-add/"
    reason = "x" * django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"entries": [{"number": "+14155550123", "reason": reason}]})
    before = snapshot()

    response = supervisor_client.post(url, data=body, content_type=JSON)

    assert response.status_code in {400, 413}
    assert snapshot() == before


def test_oversized_status_change_is_refused(agent_client):
    reason = "x" * django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"status": "break", "reason": reason})
    before = snapshot()

    response = agent_client.put("/api/agents/me/status/", data=body, content_type=JSON)

    assert response.status_code in {400, 413}
    assert snapshot() == before


def test_too_many_rows_are_refused_and_write_nothing(supervisor_client, world):
    url = f"/api/blacklists/{world.blacklist.pk}/entries/bulk-add/"
    rows = [{"number": f"+1415666{n:04d}"} for n in range(BLACKLIST_BULK_MAX_ROWS + 1)]

    response = supervisor_client.post(url, data={"entries": rows}, content_type=JSON)

    assert response.status_code == 400
    assert BlacklistEntry.objects.filter(blacklist=world.blacklist).count() == 1


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/api/blacklists/{blacklist}/entries/bulk-add/", {"entries": "+14155550123"}),
        ("post", "/api/blacklists/{blacklist}/entries/bulk-remove/", {"numbers": "+14155550100"}),
        ("put", "/api/agents/{agent}/status/", {"status": "break"}),
        ("patch", "/api/agents/{agent}/status/", {"status": "break"}),
    ],
)
@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=BoUnDaRy", "text/plain"],
)
def test_a_form_body_is_refused_with_415(
    supervisor_client, world, method, path, data, content_type
):
    url = path.format(blacklist=world.blacklist.pk, agent=world.agent.pk)
    if content_type.startswith("multipart"):
        body = (
            '--BoUnDaRy\r\nContent-Disposition: form-data; name="x"\r\n\r\n'
            f"{json.dumps(data)}\r\n--BoUnDaRy--\r\n"
        )
    else:
        body = urlencode(data)
    before = snapshot()

    response = getattr(supervisor_client, method)(url, data=body, content_type=content_type)

    assert response.status_code == 415, response.content
    assert snapshot() == before


# Inputs the fuzzer found that once answered 500 (on SQLite, the embedded default).
@pytest.mark.parametrize(
    "query",
    [
        # Ids past SQLite's 64-bit INTEGER raised OverflowError in the filter.
        f"campaign={2**63}",
        f"agent={10**25}",
        # Date-times whose UTC value falls outside years 1-9999.
        "created_after=9999-12-31T23:59:59-14:00",
        "created_before=0001-01-01T00:00:00%2B14:00",
        "created_after=0001-01-01T00:00:00%2B00:01",
    ],
)
def test_out_of_range_filters_are_refused(supervisor_client, query):
    response = supervisor_client.get(f"/api/interactions/?{query}")

    assert response.status_code == 400, response.content
    assert response.json()
