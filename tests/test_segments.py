"""core/segments.py: the encoding and segments a text costs, as carriers bill them."""

from __future__ import annotations

import pytest

from textback.core.encoding import GSM_BASIC
from textback.core.encoding import GSM_EXTENDED
from textback.core.segments import GSM7
from textback.core.segments import UCS2
from textback.core.segments import Measure
from textback.core.segments import measure
from textback.core.segments import total_segments
from textback.core.segments import units


@pytest.mark.parametrize(
    ("text", "encoding", "length", "segments"),
    [
        ("", GSM7, 0, 1),
        ("Hi", GSM7, 2, 1),
        ("a" * 160, GSM7, 160, 1),
        ("a" * 161, GSM7, 161, 2),
        ("a" * 306, GSM7, 306, 2),
        ("a" * 307, GSM7, 307, 3),
        ("a" * 459, GSM7, 459, 3),
        ("a" * 460, GSM7, 460, 4),
        # an extension character takes two septets
        ("€" * 80, GSM7, 160, 1),
        ("€" * 80 + "a", GSM7, 161, 2),
        ("a" * 159 + "[", GSM7, 161, 2),
        ("{}[]~|^\\€", GSM7, 18, 1),
        # the GSM alphabet has accents of its own: still GSM-7
        ("Café à Zürich, señor", GSM7, 20, 1),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ", GSM7, 29, 1),
        # one character outside it sends the whole text in UCS-2
        ("ç", UCS2, 1, 1),
        ("a" * 69 + "ç", UCS2, 70, 1),
        ("a" * 70 + "ç", UCS2, 71, 2),
        ("ç" * 134, UCS2, 134, 2),
        ("ç" * 135, UCS2, 135, 3),
        ("Привет", UCS2, 6, 1),
        ("你好" * 35, UCS2, 70, 1),
        # an emoji outside the BMP is two UTF-16 code units
        ("👍", UCS2, 2, 1),
        ("👍" * 35, UCS2, 70, 1),
        ("👍" * 35 + "a", UCS2, 71, 2),
        ("€ and 👍", UCS2, 8, 1),  # in UCS-2 the euro is one unit, not two
        ("\u00a0", UCS2, 1, 1),  # a no-break space is not in the GSM alphabet
    ],
)
def test_encoding_length_and_segments(text: str, encoding: str, length: int, segments: int) -> None:
    measured = measure(text)
    assert (measured.encoding, measured.units, measured.segments) == (encoding, length, segments)
    assert units(text) == length


def test_every_gsm_character_is_gsm7_and_extended_ones_count_two() -> None:
    for char in GSM_BASIC:
        assert measure(char) == Measure(GSM7, 1, 1), repr(char)
    for char in GSM_EXTENDED:
        assert measure(char) == Measure(GSM7, 2, 1), repr(char)


@pytest.mark.parametrize(
    ("text", "per_segment", "room"),
    [
        ("", 160, 160),
        ("a" * 150, 160, 10),
        ("a" * 161, 153, 145),
        ("€" * 77, 160, 6),
        ("ç" * 10, 70, 60),
        ("ç" * 71, 67, 63),
    ],
)
def test_per_segment_and_room(text: str, per_segment: int, room: int) -> None:
    measured = measure(text)
    assert (measured.per_segment, measured.room) == (per_segment, room)


def test_the_extension_character_that_crosses_a_boundary_needs_a_new_segment() -> None:
    # 152 septets and a "€" (2 septets) is 154: over one multipart segment of 153.
    assert measure("a" * 152 + "€" + "a" * 10).segments == 2
    assert measure("a" * 305 + "€").segments == 3


def test_total_segments_adds_each_recipients_own_text() -> None:
    assert total_segments(["Hi Ann", "a" * 161, "Привет"]) == 1 + 2 + 1
    assert total_segments([]) == 0
