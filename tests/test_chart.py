"""The server-side SVG chart: scale, one bar per direction and hour, escaped text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from textback.queries.overview import HourCount
from textback.web.chart import HEIGHT
from textback.web.chart import hourly_chart
from textback.web.chart import nice_max

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 11, 28, 22, tzinfo=UTC)


def hours(*counts: tuple[int, int]) -> list[HourCount]:
    return [
        HourCount(START + timedelta(hours=index), inbound, outbound)
        for index, (inbound, outbound) in enumerate(counts)
    ]


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (10, 10), (11, 20), (180, 200), (501, 1000)],
)
def test_axis_top_is_a_round_number(value: int, top: int) -> None:
    assert nice_max(value) == top


def bars(svg: str) -> list[ElementTree.Element]:
    return list(ElementTree.fromstring(svg).iter(f"{SVG}rect"))


def test_two_bars_per_hour_scaled_to_the_largest() -> None:
    svg = str(hourly_chart(hours((10, 5), (0, 0), (2, 10)), title="t"))
    rects = bars(svg)
    assert [r.get("class") for r in rects] == ["bar-in", "bar-out"] * 3
    heights = [float(r.get("height") or 0) for r in rects]
    tallest = max(heights)
    assert heights == pytest.approx([tallest, tallest / 2, 0, 0, tallest / 5, tallest])
    assert tallest < HEIGHT
    titles = [r.findtext(f"{SVG}title") for r in rects]
    assert titles[0] == "Sat 28 Nov 22:00 UTC: 10 in"
    assert titles[5] == "Sun 29 Nov 00:00 UTC: 10 out"


def test_empty_hours_draw_flat_bars_and_midnight_is_labelled_with_the_day() -> None:
    svg = str(hourly_chart(hours((0, 0), (0, 0), (0, 0)), title="t"))
    assert {r.get("height") for r in bars(svg)} == {"0.00"}
    labels = [t.text for t in ElementTree.fromstring(svg).iter(f"{SVG}text")]
    assert "Sun 29" in labels and "22:00" in labels


def test_a_week_is_labelled_about_eight_times() -> None:
    week = [HourCount(START + timedelta(hours=i), i % 3, 1) for i in range(168)]
    svg = str(hourly_chart(week, title="week"))
    assert len(bars(svg)) == 336
    x_labels = re.findall(r'<text class="axis" x="[\d.]+" y="\d+">', svg)
    assert 4 <= len(x_labels) <= 8


def test_the_title_is_escaped() -> None:
    svg = str(hourly_chart(hours((1, 1)), title='<script>alert(1)</script> "x"'))
    assert "<script>" not in svg
    root = ElementTree.fromstring(svg)
    assert root.findtext(f"{SVG}title") == '<script>alert(1)</script> "x"'
