"""How many SMS segments a text takes, as the agent console shows it.

`static/js/console.js` repeats this computation live in the browser; keep
the two in step.
"""

from dataclasses import dataclass

# The GSM 03.38 default alphabet (one septet each) and its extension table
# (an escape septet plus one: two each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
# The longest text a provider takes in one message (Twilio: 1,600 characters).
MAX_SMS_BODY = 1600


@dataclass(frozen=True)
class SegmentCount:
    encoding: str  # "GSM-7" or "UCS-2"
    characters: int  # what the text counts: septets in GSM-7, UTF-16 units in UCS-2
    segments: int
    per_segment: int  # the limit of one segment at this length
    remaining: int  # how many more fit in the segments used so far


def sms_segments(text: str) -> SegmentCount:
    """Count `text` the way carriers split it.

    GSM-7 when every character is in the default alphabet or its extension
    (which counts two): 160 in one segment, 153 in each when split. Otherwise
    UCS-2, counted in UTF-16 units (an emoji counts two): 70 in one, 67 each
    when split.
    """
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        encoding, single, part = "GSM-7", GSM7_SINGLE, GSM7_PART
        characters = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
    else:
        encoding, single, part = "UCS-2", UCS2_SINGLE, UCS2_PART
        characters = len(text.encode("utf-16-le")) // 2
    if characters <= single:
        segments, per_segment = (1 if characters else 0), single
    else:
        segments, per_segment = -(-characters // part), part
    return SegmentCount(
        encoding=encoding,
        characters=characters,
        segments=segments,
        per_segment=per_segment,
        remaining=max(segments, 1) * per_segment - characters,
    )
