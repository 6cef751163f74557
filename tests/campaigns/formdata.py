"""Build admin POST data the way a browser would, from the page the admin rendered.

Tests then change only the fields they are about. Reading the rendered forms
keeps them working when another app adds an inline (the SMS channel does).
"""

import datetime

from django.forms import BoundField


def changeform_data(response) -> dict:
    """Return the POST data of an admin add/change page as rendered, unchanged."""
    data: dict = {}
    for field in response.context["adminform"].form:
        _put(data, field)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for field in formset.management_form:
            _put(data, field)
        for form in formset.forms:
            for field in form:
                _put(data, field)
    return data


def set_rows(data: dict, prefix: str, rows: list[dict]) -> dict:
    """Replace the rows of inline `prefix` in `data`; rows with an "id" (stored ones) first."""
    for key in [key for key in data if key.startswith(f"{prefix}-")]:
        if not key.endswith(("MIN_NUM_FORMS", "MAX_NUM_FORMS")):
            del data[key]
    data[f"{prefix}-TOTAL_FORMS"] = str(len(rows))
    data[f"{prefix}-INITIAL_FORMS"] = str(sum("id" in row for row in rows))
    for index, row in enumerate(rows):
        for name, value in row.items():
            data[f"{prefix}-{index}-{name}"] = str(value)
    return data


def _put(data: dict, field: BoundField) -> None:
    value = field.value()
    if isinstance(value, bool):
        if value:
            data[field.html_name] = "on"
        return
    if value is None:
        value = ""
    elif isinstance(value, datetime.time):
        value = value.strftime("%H:%M")
    elif isinstance(value, datetime.date):
        value = value.isoformat()
    elif isinstance(value, list | tuple):
        value = [str(item) for item in value]
    else:
        value = str(value)
    data[field.html_name] = value
