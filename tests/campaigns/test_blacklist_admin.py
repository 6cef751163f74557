import csv
import io

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns import admin as campaigns_admin
from campaigns.models import Blacklist, BlacklistEntry
from tests.campaigns.formdata import changeform_data, set_rows
from tests.factories import BlacklistEntryFactory, BlacklistFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST_URL = reverse("admin:campaigns_blacklist_changelist")
ENTRIES_URL = reverse("admin:campaigns_blacklistentry_changelist")


def change_url(blacklist: Blacklist) -> str:
    return reverse("admin:campaigns_blacklist_change", args=[blacklist.pk])


def import_url(blacklist: Blacklist) -> str:
    return reverse("admin:campaigns_blacklist_import_csv", args=[blacklist.pk])


def export_url(blacklist: Blacklist) -> str:
    return reverse("admin:campaigns_blacklist_export_csv", args=[blacklist.pk])


def upload(content: bytes, name: str = "numbers.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def test_change_page_links_to_import_and_export(supervisor_client):
    blacklist = BlacklistFactory()

    html = supervisor_client.get(change_url(blacklist)).content.decode()

    assert f'href="{import_url(blacklist)}"' in html
    assert f'href="{export_url(blacklist)}"' in html


def test_import_with_only_good_rows_returns_to_the_list_with_the_summary(
    supervisor_client, supervisor
):
    blacklist = BlacklistFactory(name="Fraud")
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550100")

    response = supervisor_client.post(
        import_url(blacklist),
        {"file": upload(b"number,reason\n+14155550100,x\n+14155550101,chargeback\n")},
        follow=True,
    )

    assert response.redirect_chain == [(change_url(blacklist), 302)]
    assert "Fraud: 1 added, 1 duplicates skipped, 0 invalid." in response.content.decode()
    entry = blacklist.entries.get(number="+14155550101")
    assert (entry.reason, entry.added_by) == ("chargeback", supervisor)
    log = LogEntry.objects.get(object_id=str(blacklist.pk))
    assert log.change_message == "Imported a CSV file: 1 added, 1 duplicates skipped, 0 invalid."


def test_import_with_invalid_rows_lists_them_with_their_line_numbers(supervisor_client):
    blacklist = BlacklistFactory()

    response = supervisor_client.post(
        import_url(blacklist),
        {"file": upload(b"+14155550101\n+14155550101\n\n<b>bad</b>,oops\n+1415\n")},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "1 added, 1 duplicates skipped, 2 invalid." in html
    assert "<tr><td>4</td><td>&lt;b&gt;bad&lt;/b&gt;</td><td>" in html
    assert "<tr><td>5</td><td>+1415</td><td>“+1415” has the wrong number" in html
    assert list(blacklist.entries.values_list("number", flat=True)) == ["+14155550101"]


def test_a_fatal_import_error_is_shown_on_the_form_and_writes_nothing(supervisor_client):
    blacklist = BlacklistFactory()

    response = supervisor_client.post(
        import_url(blacklist), {"file": upload(b"\xff\xfe+\x001\x004\x00", name="numbers.xlsx")}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "Nothing was imported." in html
    assert "The file is not UTF-8 text. Save it as “CSV UTF-8” and import it again." in html
    assert not BlacklistEntry.objects.exists()


def test_import_needs_a_file(supervisor_client):
    blacklist = BlacklistFactory()

    response = supervisor_client.post(import_url(blacklist), {})

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()


def test_import_needs_change_permission(client):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_blacklist"))
    client.force_login(viewer)
    blacklist = BlacklistFactory()

    page = client.get(change_url(blacklist)).content.decode()
    response = client.post(import_url(blacklist), {"file": upload(b"+14155550101\n")})

    assert "Import CSV" not in page
    assert f'href="{export_url(blacklist)}"' in page
    assert response.status_code == 403
    assert not BlacklistEntry.objects.exists()


def test_export_writes_every_entry_with_formulas_defused(supervisor_client):
    blacklist = BlacklistFactory(name="VIP Opt-outs / 2026")
    who = UserFactory(username="=cmd|calc")
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550102", reason="-1+1", added_by=who)
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550101", reason='=HYPERLINK("x")')
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550103", reason="@SUM(A1)")
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550104", reason="plain, with comma")
    BlacklistEntryFactory(number="+14155550109")  # another list

    response = supervisor_client.get(export_url(blacklist))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="vip-opt-outs-2026.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    added_at = {e.number: e.added_at.isoformat(timespec="seconds") for e in blacklist.entries.all()}
    assert rows == [
        ["number", "reason", "added_by", "added_at"],
        ["+14155550101", '\'=HYPERLINK("x")', "", added_at["+14155550101"]],
        ["+14155550102", "'-1+1", "'=cmd|calc", added_at["+14155550102"]],
        ["+14155550103", "'@SUM(A1)", "", added_at["+14155550103"]],
        ["+14155550104", "plain, with comma", "", added_at["+14155550104"]],
    ]


def test_an_export_imports_back(supervisor_client):
    source = BlacklistFactory()
    BlacklistEntryFactory(blacklist=source, number="+14155550101", reason="spam")
    BlacklistEntryFactory(blacklist=source, number="+14155550102", reason="")
    exported = b"".join(supervisor_client.get(export_url(source)).streaming_content)
    target = BlacklistFactory()

    supervisor_client.post(import_url(target), {"file": upload(exported)})

    assert list(target.entries.values_list("number", "reason")) == [
        ("+14155550101", "spam"),
        ("+14155550102", ""),
    ]


def test_export_of_a_list_the_user_cannot_see_is_refused(client):
    client.force_login(UserFactory(is_staff=True))

    response = client.get(export_url(BlacklistFactory()))

    assert response.status_code == 403


@pytest.mark.parametrize(
    "term", ["+14155550101", "+1 (415) 555-0101", "(415) 555-0101", "555-0101", "5550101"]
)
def test_search_lists_by_number_written_any_way(supervisor_client, term):
    wanted = BlacklistFactory(name="Wanted")
    BlacklistEntryFactory(blacklist=wanted, number="+14155550101")
    BlacklistEntryFactory(blacklist=wanted, number="+14155550102")
    other = BlacklistFactory(name="Other")
    BlacklistEntryFactory(blacklist=other, number="+14155550199")

    response = supervisor_client.get(CHANGELIST_URL, {"q": term})

    results = list(response.context["cl"].result_list)
    assert results == [wanted]
    assert results[0]._entry_count == 2


def test_search_with_several_matching_entries_lists_the_list_once(supervisor_client):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory.create_batch(3, blacklist=blacklist)

    response = supervisor_client.get(CHANGELIST_URL, {"q": "+1415555"})

    assert [(b, b._entry_count) for b in response.context["cl"].result_list] == [(blacklist, 3)]


def test_search_by_name_still_works(supervisor_client):
    wanted = BlacklistFactory(name="Chargebacks 2026")
    BlacklistFactory(name="Other")

    response = supervisor_client.get(CHANGELIST_URL, {"q": "chargebacks"})

    assert list(response.context["cl"].result_list) == [wanted]


def test_changelist_counts_entries_without_a_query_per_list(
    supervisor_client, django_assert_num_queries
):
    BlacklistEntryFactory()
    supervisor_client.get(CHANGELIST_URL)
    with CaptureQueriesContext(connection) as one:
        supervisor_client.get(CHANGELIST_URL)
    for _ in range(4):
        BlacklistEntryFactory.create_batch(2, blacklist=BlacklistFactory())

    with django_assert_num_queries(len(one)):
        response = supervisor_client.get(CHANGELIST_URL)

    assert sorted(b._entry_count for b in response.context["cl"].result_list) == [1, 2, 2, 2, 2]
    assert '<td class="field-entry_count">2</td>' in response.content.decode()


def test_entries_added_inline_record_who_added_them(supervisor_client, supervisor):
    blacklist = BlacklistFactory()
    old = BlacklistEntryFactory(blacklist=blacklist, number="+14155550100")
    data = changeform_data(supervisor_client.get(change_url(blacklist)))
    data["entries-1-number"] = "+1 415 555 0101"
    data["entries-1-reason"] = "asked us to stop"

    response = supervisor_client.post(change_url(blacklist), data)

    assert response.status_code == 302
    new = blacklist.entries.get(number="+14155550101")
    assert (new.reason, new.added_by) == ("asked us to stop", supervisor)
    old.refresh_from_db()
    assert old.added_by is None


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("+14155550100", "This number is already on the list."),
        ("4155550100", "“4155550100” has no country code"),
        ("+1415", "“+1415” has the wrong number of digits for its country."),
    ],
)
def test_a_bad_inline_entry_is_explained_and_nothing_saved(supervisor_client, number, message):
    blacklist = BlacklistFactory(name="Before")
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550100")
    data = changeform_data(supervisor_client.get(change_url(blacklist)))
    data["name"] = "After"
    data["entries-1-number"] = number

    response = supervisor_client.post(change_url(blacklist), data)

    assert response.status_code == 200
    assert message in response.content.decode()
    blacklist.refresh_from_db()
    assert blacklist.name == "Before"
    assert list(blacklist.entries.values_list("number", flat=True)) == ["+14155550100"]


def test_numbers_repeated_in_one_post_are_refused(supervisor_client):
    blacklist = BlacklistFactory()
    data = changeform_data(supervisor_client.get(change_url(blacklist)))
    set_rows(data, "entries", [{"number": "+14155550101"}, {"number": "+1 415 555 0101"}])

    response = supervisor_client.post(change_url(blacklist), data)

    assert "This number is already on the list." in response.content.decode()
    assert not BlacklistEntry.objects.exists()


def test_a_long_list_shows_no_entries_inline_but_still_refuses_duplicates(
    supervisor_client, monkeypatch
):
    monkeypatch.setattr(campaigns_admin, "BLACKLIST_INLINE_MAX_ENTRIES", 2)
    blacklist = BlacklistFactory()
    for number in ("+14155550101", "+14155550102", "+14155550103"):
        BlacklistEntryFactory(blacklist=blacklist, number=number)

    page = supervisor_client.get(change_url(blacklist))
    data = changeform_data(page)
    data["entries-0-number"] = "+14155550102"
    duplicate = supervisor_client.post(change_url(blacklist), data)
    data["entries-0-number"] = "+14155550104"
    added = supervisor_client.post(change_url(blacklist), data)

    html = page.content.decode()
    assert "This list has 3 numbers, too many to show here." in html
    assert f"{ENTRIES_URL}?blacklist__id__exact={blacklist.pk}" in html
    assert "+14155550101" not in html
    assert data["entries-INITIAL_FORMS"] == "0"
    assert "This number is already on the list." in duplicate.content.decode()
    assert added.status_code == 302
    assert blacklist.entries.count() == 4


def test_the_opt_out_flag_is_not_editable(supervisor_client):
    blacklist = BlacklistFactory(name="Opt-outs", is_opt_out_list=True)
    data = changeform_data(supervisor_client.get(change_url(blacklist)))
    assert "is_opt_out_list" not in data

    supervisor_client.post(change_url(blacklist), data)

    blacklist.refresh_from_db()
    assert blacklist.is_opt_out_list


@pytest.mark.parametrize("term", ["+14155550101", "(415) 555-0101", "0101"])
def test_entry_admin_finds_entries_by_number(supervisor_client, term):
    wanted = BlacklistEntryFactory(number="+14155550101")
    BlacklistEntryFactory(number="+14155550202")

    response = supervisor_client.get(ENTRIES_URL, {"q": term})

    assert list(response.context["cl"].result_list) == [wanted]
    assert wanted.blacklist.name in response.content.decode()


def test_search_normalises_a_national_number_with_a_trunk_prefix(supervisor_client, settings):
    settings.PHONE_DEFAULT_REGION = "GB"
    wanted = BlacklistEntryFactory(number="+442079460018")
    BlacklistEntryFactory(number="+442079460019")

    response = supervisor_client.get(ENTRIES_URL, {"q": "020 7946 0018"})

    assert list(response.context["cl"].result_list) == [wanted]


def test_entry_admin_filters_by_list_and_records_who_added(supervisor_client, supervisor):
    wanted = BlacklistFactory()
    entry = BlacklistEntryFactory(blacklist=wanted)
    BlacklistEntryFactory()

    listed = supervisor_client.get(ENTRIES_URL, {"blacklist__id__exact": wanted.pk})
    added = supervisor_client.post(
        reverse("admin:campaigns_blacklistentry_add"),
        {"blacklist": wanted.pk, "number": "+44 20 7946 0018", "reason": ""},
    )

    assert list(listed.context["cl"].result_list) == [entry]
    assert added.status_code == 302
    assert wanted.entries.get(number="+442079460018").added_by == supervisor
