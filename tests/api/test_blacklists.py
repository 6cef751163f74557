"""/api/blacklists/...: lists, entries and bulk add/remove with a result per row."""

import pytest

from campaigns.models import BlacklistEntry
from campaigns.services import BLACKLIST_BULK_MAX_ROWS, blacklist_bulk_add, blacklist_bulk_remove
from contactcenter.exceptions import ApplicationError
from tests.factories import AgentFactory, BlacklistEntryFactory, BlacklistFactory

pytestmark = pytest.mark.django_db

LIST = "/api/blacklists/"
JSON = "application/json"


def entries_url(blacklist) -> str:
    return f"/api/blacklists/{blacklist.pk}/entries/"


def add_url(blacklist) -> str:
    return f"/api/blacklists/{blacklist.pk}/entries/bulk-add/"


def remove_url(blacklist) -> str:
    return f"/api/blacklists/{blacklist.pk}/entries/bulk-remove/"


def stored(blacklist) -> dict[str, str]:
    return dict(blacklist.entries.values_list("number", "reason"))


# Permissions ---------------------------------------------------------------------------


def test_anonymous_gets_401_and_writes_nothing(client):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550100")
    add = {"entries": [{"number": "+14155550101"}]}

    assert client.get(LIST).status_code == 401
    assert client.get(entries_url(blacklist)).status_code == 401
    assert client.post(add_url(blacklist), add, content_type=JSON).status_code == 401
    remove = {"numbers": ["+14155550100"]}
    assert client.post(remove_url(blacklist), remove, content_type=JSON).status_code == 401
    assert stored(blacklist) == {"+14155550100": ""}


def test_agent_gets_403_and_writes_nothing(agent_client):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550100")
    add = {"entries": [{"number": "+14155550101"}]}

    assert agent_client.get(LIST).status_code == 403
    assert agent_client.get(entries_url(blacklist)).status_code == 403
    assert agent_client.post(add_url(blacklist), add, content_type=JSON).status_code == 403
    remove = {"numbers": ["+14155550100"]}
    assert agent_client.post(remove_url(blacklist), remove, content_type=JSON).status_code == 403
    assert stored(blacklist) == {"+14155550100": ""}


def test_unknown_blacklist_is_404(supervisor_client):
    assert supervisor_client.get("/api/blacklists/999999/entries/").status_code == 404
    response = supervisor_client.post(
        "/api/blacklists/999999/entries/bulk-add/",
        {"entries": [{"number": "+14155550101"}]},
        content_type=JSON,
    )
    assert response.status_code == 404
    assert not BlacklistEntry.objects.exists()


# Lists -------------------------------------------------------------------------------------


def test_supervisor_lists_blacklists_with_counts(supervisor_client):
    spam = BlacklistFactory(name="Spam")
    BlacklistEntryFactory.create_batch(3, blacklist=spam)
    empty = BlacklistFactory(name="Empty")

    rows = supervisor_client.get(LIST).json()["results"]

    assert [(row["id"], row["name"], row["entry_count"]) for row in rows] == [
        (empty.pk, "Empty", 0),
        (spam.pk, "Spam", 3),
    ]


def test_entries_in_number_order_with_who_added_them(supervisor, supervisor_client):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550199", added_by=supervisor)
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550100", reason="abuse")
    BlacklistEntryFactory(number="+14155550150")  # another list

    rows = supervisor_client.get(entries_url(blacklist)).json()["results"]

    assert [(row["number"], row["reason"]) for row in rows] == [
        ("+14155550100", "abuse"),
        ("+14155550199", ""),
    ]
    assert rows[0]["added_by"] is None
    assert rows[1]["added_by"]["id"] == supervisor.pk


def test_entries_are_paginated(supervisor_client):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory.create_batch(60, blacklist=blacklist)

    first = supervisor_client.get(entries_url(blacklist)).json()
    small = supervisor_client.get(entries_url(blacklist), {"page_size": 25, "page": 3}).json()

    assert first["count"] == 60
    assert len(first["results"]) == 50
    assert len(small["results"]) == 10


@pytest.mark.parametrize("rows", [2, 10])
def test_lists_run_a_fixed_number_of_queries(
    supervisor, supervisor_client, django_assert_max_num_queries, rows
):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory.create_batch(rows, blacklist=blacklist, added_by=supervisor)
    BlacklistFactory.create_batch(rows)

    # Session, user, supervisor check, count, page.
    with django_assert_max_num_queries(5):
        blacklists = supervisor_client.get(LIST)
    # ... and the blacklist itself.
    with django_assert_max_num_queries(6):
        entries = supervisor_client.get(entries_url(blacklist))

    assert blacklists.json()["count"] == rows + 1
    assert entries.json()["count"] == rows


# Bulk add ----------------------------------------------------------------------------------


def test_bulk_add_reports_each_row_and_adds_the_good_ones(supervisor, supervisor_client):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550100", reason="old reason")
    other_list_entry = BlacklistEntryFactory(number="+14155550104")

    response = supervisor_client.post(
        add_url(blacklist),
        {
            "entries": [
                {"number": "+14155550101", "reason": "abuse"},
                {"number": "+1 (415) 555-0102"},
                {"number": "+14155550100", "reason": "new reason"},
                {"number": "+14155550101", "reason": "again"},
                {"number": "+not a number", "reason": "x"},
                {"number": ""},
                {"number": "4155550103"},
                {"number": "+14155550103", "reason": "r" * 256},
                {"number": other_list_entry.number, "reason": " spaces "},
            ]
        },
        content_type=JSON,
    )

    assert response.status_code == 200
    body = response.json()
    assert [(row["index"], row["number"], row["status"]) for row in body["results"]] == [
        (0, "+14155550101", "added"),
        (1, "+14155550102", "added"),
        (2, "+14155550100", "duplicate"),
        (3, "+14155550101", "duplicate"),
        (4, "+not a number", "invalid"),
        (5, "", "invalid"),
        (6, "4155550103", "invalid"),
        (7, "+14155550103", "invalid"),
        (8, "+14155550104", "added"),
    ]
    errors = [row["error"] for row in body["results"]]
    assert errors[:4] == ["", "", "", ""]
    assert "not a phone number" in errors[4]
    assert errors[5] == "Enter a phone number."
    assert "country code" in errors[6]
    assert "longer than 255" in errors[7]
    assert (body["added"], body["duplicate"], body["invalid"]) == (3, 2, 4)
    assert stored(blacklist) == {
        "+14155550100": "old reason",
        "+14155550101": "abuse",
        "+14155550102": "",
        "+14155550104": "spaces",
    }
    assert set(
        blacklist.entries.exclude(number="+14155550100").values_list("added_by", flat=True)
    ) == {supervisor.pk}


def test_bulk_add_over_the_limit_is_400_and_writes_nothing(supervisor_client):
    blacklist = BlacklistFactory()
    entries = [{"number": f"+1415555{n:04d}"} for n in range(BLACKLIST_BULK_MAX_ROWS + 1)]

    response = supervisor_client.post(add_url(blacklist), {"entries": entries}, content_type=JSON)

    assert response.status_code == 400
    assert "At most 1000 rows" in response.json()["entries"][0]
    assert not BlacklistEntry.objects.exists()


def test_bulk_add_of_exactly_the_limit_is_accepted(supervisor_client):
    blacklist = BlacklistFactory()
    entries = [{"number": f"+1415555{n:04d}"} for n in range(BLACKLIST_BULK_MAX_ROWS)]

    response = supervisor_client.post(add_url(blacklist), {"entries": entries}, content_type=JSON)

    assert response.status_code == 200
    assert response.json()["added"] == BLACKLIST_BULK_MAX_ROWS
    assert blacklist.entries.count() == BLACKLIST_BULK_MAX_ROWS


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"entries": []},
        {"entries": "+14155550101"},
        {"entries": [{"reason": "no number"}, {"number": "+14155550101"}]},
        {"entries": [{"number": None}, {"number": "+14155550101"}]},
    ],
)
def test_bulk_add_malformed_body_is_400_and_writes_nothing(supervisor_client, body):
    blacklist = BlacklistFactory()

    response = supervisor_client.post(add_url(blacklist), body, content_type=JSON)

    assert response.status_code == 400
    assert "entries" in response.json()
    assert not BlacklistEntry.objects.exists()


def test_bulk_add_service_refuses_over_the_limit_before_writing():
    blacklist = BlacklistFactory()
    entries = [(f"+1415555{n:04d}", "") for n in range(BLACKLIST_BULK_MAX_ROWS + 1)]

    with pytest.raises(ApplicationError, match="At most 1000 rows"):
        blacklist_bulk_add(blacklist=blacklist, entries=entries, added_by=None)

    assert not BlacklistEntry.objects.exists()


# Bulk remove -------------------------------------------------------------------------------


def test_bulk_remove_reports_each_row_and_removes_the_good_ones(supervisor_client):
    blacklist = BlacklistFactory()
    for number in ("+14155550100", "+14155550101", "+14155550102"):
        BlacklistEntryFactory(blacklist=blacklist, number=number)
    elsewhere = BlacklistEntryFactory(number="+14155550103")

    response = supervisor_client.post(
        remove_url(blacklist),
        {
            "numbers": [
                "+14155550100",
                "+1 415 555 0101",
                "+14155550100",
                "+14155550103",
                "12",
                "",
            ]
        },
        content_type=JSON,
    )

    assert response.status_code == 200
    body = response.json()
    assert [(row["index"], row["number"], row["status"]) for row in body["results"]] == [
        (0, "+14155550100", "removed"),
        (1, "+14155550101", "removed"),
        (2, "+14155550100", "not_found"),
        (3, "+14155550103", "not_found"),
        (4, "12", "invalid"),
        (5, "", "invalid"),
    ]
    assert body["results"][4]["error"]
    assert (body["removed"], body["not_found"], body["invalid"]) == (2, 2, 2)
    assert stored(blacklist) == {"+14155550102": ""}
    assert BlacklistEntry.objects.filter(pk=elsewhere.pk).exists()


def test_bulk_remove_over_the_limit_is_400_and_removes_nothing(supervisor_client):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550000")
    numbers = [f"+1415555{n:04d}" for n in range(BLACKLIST_BULK_MAX_ROWS + 1)]

    response = supervisor_client.post(
        remove_url(blacklist), {"numbers": numbers}, content_type=JSON
    )

    assert response.status_code == 400
    assert "At most 1000 rows" in response.json()["numbers"][0]
    assert stored(blacklist) == {"+14155550000": ""}


def test_bulk_remove_service_refuses_over_the_limit_before_writing():
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550000")
    numbers = [f"+1415555{n:04d}" for n in range(BLACKLIST_BULK_MAX_ROWS + 1)]

    with pytest.raises(ApplicationError, match="At most 1000 rows"):
        blacklist_bulk_remove(blacklist=blacklist, numbers=numbers)

    assert stored(blacklist) == {"+14155550000": ""}


def test_bulk_add_with_an_agents_token_is_refused(client):
    from rest_framework.authtoken.models import Token

    blacklist = BlacklistFactory()
    token = Token.objects.create(user=AgentFactory())

    response = client.post(
        add_url(blacklist),
        {"entries": [{"number": "+14155550101"}]},
        content_type=JSON,
        HTTP_AUTHORIZATION=f"Token {token.key}",
    )

    assert response.status_code == 403
    assert not BlacklistEntry.objects.exists()
