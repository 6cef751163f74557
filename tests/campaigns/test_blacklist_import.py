import io

import pytest

from campaigns import services
from campaigns.models import BlacklistEntry
from campaigns.services import ImportResult, InvalidRow, blacklist_import_csv
from contactcenter.exceptions import ApplicationError
from tests.factories import BlacklistEntryFactory, BlacklistFactory, SupervisorFactory

pytestmark = pytest.mark.django_db


def stored(blacklist) -> list[tuple[str, str]]:
    return list(blacklist.entries.order_by("number").values_list("number", "reason"))


def import_text(blacklist, text: str | bytes, added_by=None) -> ImportResult:
    data = text.encode() if isinstance(text, str) else text
    return blacklist_import_csv(blacklist=blacklist, file=io.BytesIO(data), added_by=added_by)


def test_import_adds_good_rows_and_reports_duplicates_and_invalid_rows():
    supervisor = SupervisorFactory()
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550100", reason="old")
    other_list = BlacklistEntryFactory(number="+14155550101").blacklist
    csv_text = (
        "Number,Reason\n"  # 1: header
        "+14155550101,fraud\n"  # 2: on another list only, so added here
        "\n"  # 3: blank
        "+1 (415) 555-0102, abusive \n"  # 4: normalised, reason stripped
        "+14155550100,again\n"  # 5: already on the list
        "4155550103,no country code\n"  # 6: invalid
        "+1415555010,\n"  # 7: too short
        "+14155550102,twice in the file\n"  # 8: repeated in the file
        "+abc\n"  # 9: invalid
        ",,\n"  # 10: blank cells only
        "+442079460018\n"  # 11: no reason column
        ",reason without number\n"  # 12: invalid
    )

    result = import_text(blacklist, csv_text, added_by=supervisor)

    assert result == ImportResult(
        added=3,
        duplicates=2,
        invalid=[
            InvalidRow(
                6,
                "4155550103",
                "“4155550103” has no country code: write it in international format, "
                "e.g. +14155550123.",
            ),
            InvalidRow(
                7, "+1415555010", "“+1415555010” has the wrong number of digits for its country."
            ),
            InvalidRow(9, "+abc", "“+abc” is not a phone number."),
            InvalidRow(12, "", "Enter a phone number."),
        ],
    )
    assert stored(blacklist) == [
        ("+14155550100", "old"),
        ("+14155550101", "fraud"),
        ("+14155550102", "abusive"),
        ("+442079460018", ""),
    ]
    new = blacklist.entries.exclude(number="+14155550100")
    assert {entry.added_by for entry in new} == {supervisor}
    assert all(entry.added_at for entry in new)
    assert stored(other_list) == [("+14155550101", "")]


def test_line_numbers_count_physical_lines_of_multiline_cells():
    blacklist = BlacklistFactory()
    csv_text = '+14155550101,"a reason\nover two lines"\r\nbad,x\r\n'

    result = import_text(blacklist, csv_text)

    assert result.added == 1
    assert [(row.line_number, row.raw_value) for row in result.invalid] == [(3, "bad")]
    assert stored(blacklist) == [("+14155550101", "a reason\nover two lines")]


def test_without_a_header_the_first_row_is_data_and_extra_columns_are_ignored():
    blacklist = BlacklistFactory()

    result = import_text(
        blacklist, "+14155550101,spam,someone,2026-01-01T00:00:00+00:00\n+14155550102"
    )

    assert (result.added, result.duplicates, result.invalid) == (2, 0, [])
    assert stored(blacklist) == [("+14155550101", "spam"), ("+14155550102", "")]


def test_a_byte_order_mark_is_not_part_of_the_header():
    blacklist = BlacklistFactory()

    result = import_text(blacklist, "\ufeffnumber,reason\r\n+14155550101,ok\r\n".encode())

    assert (result.added, result.invalid) == (1, [])


def test_a_reason_longer_than_the_column_is_an_invalid_row():
    blacklist = BlacklistFactory()

    result = import_text(blacklist, f"+14155550101,{'x' * 256}\n+14155550102,{'y' * 255}\n")

    assert result.added == 1
    assert result.invalid == [
        InvalidRow(1, "+14155550101", "The reason is longer than 255 characters.")
    ]
    assert stored(blacklist) == [("+14155550102", "y" * 255)]


def test_numbers_without_country_code_use_the_default_region(settings):
    settings.PHONE_DEFAULT_REGION = "US"
    blacklist = BlacklistFactory()

    result = import_text(blacklist, "(415) 555-0101\n")

    assert (result.added, result.invalid) == (1, [])
    assert stored(blacklist) == [("+14155550101", "")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "The file has no numbers in it.", id="empty"),
        pytest.param(b"number,reason\n\n\n", "The file has no numbers in it.", id="header-only"),
        pytest.param(
            "+14155550101,caf\xe9\n".encode("latin-1"),
            "The file is not UTF-8 text. Save it as “CSV UTF-8” and import it again.",
            id="latin-1",
        ),
        pytest.param(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8",
            "The file is not UTF-8 text. Save it as “CSV UTF-8” and import it again.",
            id="binary",
        ),
        pytest.param(b"+14155550101\x00\n", "The file is not a CSV text file.", id="nul"),
        pytest.param(
            b'+14155550101,ok\n+14155550102,"unfinished\n',
            "The file is not valid CSV (line 2: unexpected end of data).",
            id="unclosed-quote",
        ),
        pytest.param(
            b'+14155550101,"quoted"trailing\n',
            "The file is not valid CSV (line 1: ',' expected after '\"').",
            id="text-after-quote",
        ),
    ],
)
def test_a_file_that_cannot_be_read_writes_nothing(content, message):
    blacklist = BlacklistFactory()
    BlacklistEntryFactory(blacklist=blacklist, number="+14155550199")

    with pytest.raises(ApplicationError) as excinfo:
        import_text(blacklist, content)

    assert excinfo.value.message == message
    assert stored(blacklist) == [("+14155550199", "")]


def test_too_many_rows_writes_nothing(monkeypatch):
    monkeypatch.setattr(services, "CSV_IMPORT_MAX_ROWS", 3)
    blacklist = BlacklistFactory()

    import_text(blacklist, "number\n+14155550101\n\n+14155550102\n+14155550103\n")
    with pytest.raises(ApplicationError) as excinfo:
        import_text(blacklist, "+14155550104\n+14155550105\n+14155550106\n+14155550107\n")

    assert excinfo.value.message == "The file has more than 3 rows: split it and import the parts."
    assert BlacklistEntry.objects.count() == 3


def test_too_large_a_file_writes_nothing(monkeypatch):
    monkeypatch.setattr(services, "CSV_IMPORT_MAX_BYTES", 1024 * 1024)
    blacklist = BlacklistFactory()
    content = b"+14155550101," + b"x" * (1024 * 1024)

    with pytest.raises(ApplicationError) as excinfo:
        import_text(blacklist, content)

    assert excinfo.value.message == "The file is larger than 1 MB: split it and import the parts."
    assert not BlacklistEntry.objects.exists()


def test_importing_the_same_file_twice_adds_nothing_the_second_time():
    blacklist = BlacklistFactory()
    csv_text = "+14155550101\n+14155550102\n"

    first = import_text(blacklist, csv_text)
    second = import_text(blacklist, csv_text)

    assert (first.added, first.duplicates) == (2, 0)
    assert (second.added, second.duplicates) == (0, 2)
    assert BlacklistEntry.objects.count() == 2
