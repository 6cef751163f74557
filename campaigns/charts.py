"""Server-rendered SVG charts for the supervisor dashboard: no JavaScript, no CDN.

Pure functions from numbers to markup. Every piece of text is escaped, so the
result is safe to put in a page as is.
"""

import math
from collections.abc import Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

WIDTH = 720
HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 48, 30, 30
_PLOT_W = WIDTH - _LEFT - _RIGHT
_PLOT_H = HEIGHT - _TOP - _BOTTOM


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at or above `value` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5):
        if step * magnitude >= value:
            return int(step * magnitude)
    return int(10 * magnitude)


def _num(value: float) -> str:
    return f"{value:.1f}"


def hourly_chart_svg(
    *,
    labels: Sequence[str],
    volumes: Sequence[int],
    sl_percents: Sequence[float | None],
    title: str,
) -> SafeString:
    """Bars of volume (left axis) and a line of SL% (right axis, 0-100) per hour.

    `labels`, `volumes` and `sl_percents` run in parallel, one item per hour;
    an hour without an SL% (nobody left the queue yet) has no point, and the
    line breaks there.
    """
    if not len(labels) == len(volumes) == len(sl_percents):
        raise ValueError("labels, volumes and sl_percents must have one item per hour.")
    slots = max(len(labels), 1)
    slot = _PLOT_W / slots
    bar = slot * 0.7
    top = nice_ceiling(max(volumes, default=0))
    bottom = _TOP + _PLOT_H
    # Label every hour when there is room for it, else every other one.
    label_every = 1 if slot >= 28 else 2

    def x_of(index: int) -> float:
        return _LEFT + index * slot + slot / 2

    def y_of_percent(percent: float) -> float:
        return _TOP + _PLOT_H * (1 - percent / 100)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<g class="legend" font-size="11" fill="#374151">'
        f'<rect x="{_LEFT}" y="8" width="10" height="10" fill="#93c5fd"/>'
        f'<text x="{_LEFT + 14}" y="17">Entered</text>'
        f'<circle cx="{_LEFT + 80}" cy="13" r="4" fill="#15803d"/>'
        f'<text x="{_LEFT + 88}" y="17">SL%</text></g>',
        '<g class="grid" stroke="#e5e7eb" font-size="10" fill="#6b7280">',
    ]
    for fraction in (0, 0.5, 1):
        y = _num(bottom - _PLOT_H * fraction)
        volume = top * fraction
        # A half of an odd top is not a count of conversations: no label.
        volume_text = f"{volume:g}" if volume == int(volume) else ""
        parts.append(
            f'<line x1="{_LEFT}" y1="{y}" x2="{_LEFT + _PLOT_W}" y2="{y}"/>'
            f'<text x="{_LEFT - 6}" y="{y}" text-anchor="end" dy="3" stroke="none">'
            f"{volume_text}</text>"
            f'<text x="{_LEFT + _PLOT_W + 6}" y="{y}" dy="3" stroke="none">'
            f"{fraction * 100:g}%</text>"
        )
    parts.append("</g>")

    parts.append('<g class="volume" fill="#93c5fd">')
    for index, (label, volume) in enumerate(zip(labels, volumes, strict=True)):
        height = _PLOT_H * volume / top
        parts.append(
            f'<rect x="{_num(x_of(index) - bar / 2)}" y="{_num(bottom - height)}" '
            f'width="{_num(bar)}" height="{_num(height)}" data-value="{volume}">'
            f"<title>{escape(label)}: {volume} entered</title></rect>"
        )
    parts.append("</g>")

    # The SL% line, broken where an hour has no figure.
    segments: list[list[str]] = [[]]
    points = []
    for index, (label, percent) in enumerate(zip(labels, sl_percents, strict=True)):
        if percent is None:
            segments.append([])
            continue
        x, y = _num(x_of(index)), _num(y_of_percent(percent))
        segments[-1].append(f"{x},{y}")
        points.append(
            f'<circle cx="{x}" cy="{y}" r="3.5" data-value="{percent:.1f}">'
            f"<title>{escape(label)}: SL {percent:.1f}%</title></circle>"
        )
    parts.append('<g class="sl" stroke="#15803d" fill="#15803d">')
    parts.extend(
        f'<polyline points="{" ".join(segment)}" fill="none" stroke-width="2"/>'
        for segment in segments
        if len(segment) > 1
    )
    parts.extend(points)
    parts.append("</g>")

    parts.append('<g class="hours" font-size="10" fill="#6b7280" text-anchor="middle">')
    parts.extend(
        f'<text x="{_num(x_of(index))}" y="{bottom + 14}">{escape(label)}</text>'
        for index, label in enumerate(labels)
        if index % label_every == 0
    )
    parts.append("</g></svg>")
    # Safe: every value interpolated above is a number or escaped text.
    return mark_safe("".join(parts))
