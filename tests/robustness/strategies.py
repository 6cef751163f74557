"""Junk for every kind of input a public endpoint reads, and the suite's Hypothesis settings.

Strings avoid lone surrogates where they travel in a form or a URL (a
browser cannot send them: percent-encoding is UTF-8); JSON carries them, as
`\\ud800` escapes, because a client can send those.
"""

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Bounded so that the whole robustness suite runs in well under a minute in
# CI; raise ROBUSTNESS_MAX_EXAMPLES for a deeper run by hand.
settings.register_profile(
    "robustness",
    max_examples=int(os.environ.get("ROBUSTNESS_MAX_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROBUST = settings.get_profile("robustness")

# Past every integer column: SQLite's INTEGER and PostgreSQL's bigint stop at 2**63 - 1.
HUGE_INTS = [2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**25]

printable = st.characters(exclude_categories=("Cs",))
any_text = st.text(printable, max_size=40)
control_text = st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=10)
long_text = st.builds(
    lambda chunk, times: chunk * times,
    st.text(printable, min_size=1, max_size=4),
    st.integers(min_value=100, max_value=2000),
)
edge_text = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\r\n",
        "\ufeff",
        "\u202e",
        "💬" * 5,
        "%00",
        "&=&=",
        "' OR 1=1 --",
        "<script>alert(1)</script>",
        "{{ request }}",
        "null",
        "true",
        "-1",
        "0",
        "1e3",
        "1.5",
        "NaN",
        "١٢",
        "９",
        "+14155550123",
        "available",
        "queued",
        "9" * 30,
        "2026-11-25",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
    ]
)
junk_text = st.one_of(any_text, control_text, long_text, edge_text)

# What a WSGI server hands over as a header: bytes decoded as latin-1, without
# the NUL and line breaks that the server refuses.
header_text = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")),
    st.sampled_from(["", " ", "http://[", "http://]/", "http://[::1/", "//", "\xff\xfe"]),
)

datetimes = st.one_of(
    st.dates().map(str),
    st.datetimes(timezones=st.timezones()).map(lambda value: value.isoformat()),
    st.datetimes().map(lambda value: value.isoformat(sep=" ")),
)
numbers = st.one_of(
    st.sampled_from(["+14155550123", "+442071838750", "+1 (415) 555-0100", "14155550100", "+1"]),
    st.builds(lambda digits: "+" + digits, st.text("0123456789 -()", max_size=24)),
)


def mostly(usual: st.SearchStrategy, other: st.SearchStrategy) -> st.SearchStrategy:
    """`usual` three times in four, else `other`: most examples should get
    past the first check to reach the code behind it."""
    return st.integers(0, 3).flatmap(lambda pick: usual if pick < 3 else other)


def ids(real: list[int]) -> st.SearchStrategy[int]:
    """Row ids as a URL carries them: mostly real ones, else near misses and
    ones past any column."""
    other = st.one_of(
        st.integers(min_value=0, max_value=2**70), st.sampled_from([0, 1, *HUGE_INTS])
    )
    return mostly(st.sampled_from(real), other) if real else other


def id_text(real: list[int]) -> st.SearchStrategy[str]:
    """Ids as a form field carries them: any of `ids` or junk text."""
    return mostly(
        ids(real).map(str),
        st.one_of(st.integers(min_value=-(2**70), max_value=-1).map(str), junk_text),
    )


field_value = st.one_of(junk_text, st.integers().map(str))


@st.composite
def form_pairs(draw, fields: dict[str, st.SearchStrategy[str]]) -> list[tuple[str, str]]:
    """(name, value) pairs for a form: each known field mostly there once with
    a plausible value, else absent, repeated or junk; plus unknown fields."""
    pairs = []
    for name, plausible in fields.items():
        for _ in range(draw(mostly(st.just(1), st.sampled_from([0, 2])))):
            pairs.append((name, draw(mostly(plausible, field_value))))
    pairs += draw(st.lists(st.tuples(junk_text, field_value), max_size=3))
    return draw(st.permutations(pairs))


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([*HUGE_INTS, -(2**63) - 1]),
    st.floats(),
    st.text(max_size=40),
    junk_text,
)
junk_json = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=12,
)
