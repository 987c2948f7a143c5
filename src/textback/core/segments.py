"""What an SMS costs: its encoding (GSM-7 or UCS-2) and how many segments it is sent in.

A text that fits the GSM 03.38 alphabet is sent in GSM-7: 160 characters in one segment, 153 per
segment once it needs several (the rest of each carries the header that joins them); a character
from the extension table (``€ [ ] { } ^ ~ | \\``) takes two. Anything else, one emoji or a ``ç``
outside the alphabet, sends the whole text in UCS-2: 70 UTF-16 code units in one, 67 per segment,
an emoji outside the Basic Multilingual Plane taking two. Carriers bill per segment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textback.core.encoding import GSM_EXTENDED
from textback.core.encoding import encoding
from textback.core.encoding import segment_count

GSM7 = "GSM-7"
UCS2 = "UCS-2"
SINGLE = {GSM7: 160, UCS2: 70}
PER_PART = {GSM7: 153, UCS2: 67}


@dataclass(frozen=True, slots=True)
class Measure:
    """A text as an SMS: its encoding, its length in that encoding's units, its segments."""

    encoding: str
    units: int
    segments: int

    @property
    def per_segment(self) -> int:
        """How many units each segment holds at this length (160/153, 70/67)."""
        return SINGLE[self.encoding] if self.segments == 1 else PER_PART[self.encoding]

    @property
    def room(self) -> int:
        """Units left before the text needs another segment."""
        return self.segments * self.per_segment - self.units


def units(text: str) -> int:
    """The length of ``text`` in its encoding's units: GSM-7 septets (an extension character
    counts two) or UTF-16 code units."""
    if encoding(text) == GSM7:
        return sum(2 if char in GSM_EXTENDED else 1 for char in text)
    return len(text.encode("utf-16-le")) // 2


def measure(text: str) -> Measure:
    """The encoding, length and segments of ``text`` (an empty text is one segment)."""
    return Measure(encoding(text), units(text), segment_count(text))


def total_segments(texts: Iterable[str]) -> int:
    """The segments a broadcast costs: every recipient's own text, summed."""
    return sum(measure(text).segments for text in texts)
