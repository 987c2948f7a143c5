"""Bar charts drawn on the server as SVG: no JavaScript, no charting library, no CDN.

``hourly_chart`` draws inbound and outbound counts per hour side by side. Colours come from
CSS classes (``bar-in``, ``bar-out``) so the page's stylesheet decides them; every bar carries
a ``<title>`` so hovering shows its count without a script.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from markupsafe import Markup
from markupsafe import escape

WIDTH = 840
HEIGHT = 220
LEFT = 40  # room for the y-axis labels
BOTTOM = 24  # room for the x-axis labels
TOP = 10


class HourValues(Protocol):
    """One hour's counts (overview.HourCount)."""

    @property
    def hour(self) -> datetime: ...

    @property
    def inbound(self) -> int: ...

    @property
    def outbound(self) -> int: ...


def nice_max(value: int) -> int:
    """The top of the y-axis: ``value`` rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _label_every(count: int) -> int:
    """How many hours between x-axis labels, so about eight fit."""
    for every in (1, 2, 3, 4, 6, 12, 24):
        if count / every <= 8:
            return every
    return 24 * ((count // (24 * 8)) + 1)


def hourly_chart(hours: Sequence[HourValues], *, title: str) -> Markup:
    """An SVG bar chart of ``hours``: an inbound and an outbound bar per hour (UTC)."""
    top = nice_max(max([max(h.inbound, h.outbound) for h in hours] or [0]))
    plot_width = WIDTH - LEFT - 4
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(hours), 1)
    bar = max(slot * 0.4, 0.5)
    every = _label_every(len(hours))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_height * (1 - fraction)
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - 4}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{top * fraction:g}</text>"
        )
    for index, item in enumerate(hours):
        x = LEFT + index * slot + slot * 0.1
        label = item.hour.strftime("%a %d %b %H:00")
        for offset, count, css, word in (
            (0.0, item.inbound, "bar-in", "in"),
            (bar, item.outbound, "bar-out", "out"),
        ):
            height = plot_height * count / top
            parts.append(
                f'<rect class="{css}" x="{x + offset:.2f}" y="{TOP + plot_height - height:.2f}" '
                f'width="{bar:.2f}" height="{height:.2f}">'
                f"<title>{escape(label)} UTC: {count} {word}</title></rect>"
            )
        if index % every == 0:
            text = item.hour.strftime("%H:00" if every < 24 else "%a %d")
            if every < 24 and item.hour.hour == 0:
                text = item.hour.strftime("%a %d")
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}">{escape(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
