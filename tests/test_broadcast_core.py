"""The pure parts of broadcasts: a text filled in per contact, and quiet hours on a fixed clock."""

from __future__ import annotations

import re
from datetime import UTC
from datetime import datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest

from textback.config import Settings
from textback.core.broadcast_text import BroadcastTextError
from textback.core.broadcast_text import check_fields
from textback.core.broadcast_text import placeholders
from textback.core.broadcast_text import render_for_contact
from textback.core.profile import ContactProfile
from textback.core.quiet_hours import QuietHours
from textback.core.quiet_hours import is_held
from textback.errors import ConfigError

ANN = ContactProfile(
    "+15550001111",
    name="Ann",
    language="en",
    timezone="America/New_York",
    fields=MappingProxyType({"city": "Boston", "plan": ""}),
)
NOBODY = ContactProfile("+447700900123")


@pytest.mark.parametrize(
    ("text", "ann", "nobody"),
    [
        ("Hi {contact.name}, see you.", "Hi Ann, see you.", "Hi , see you."),
        ("Hi {contact.name|there}!", "Hi Ann!", "Hi there!"),
        ("{contact.fields.city|your town}", "Boston", "your town"),
        ("{contact.fields.plan|basic}", "basic", "basic"),  # an empty value takes the default
        ("{contact.language} {contact.phone}", "en +15550001111", " +447700900123"),
        ("{contact.timezone|UTC}", "America/New_York", "UTC"),
        ("{{literal}} {contact.name|a|b}", "{literal} Ann", "{literal} a|b"),
        ("No names at all.", "No names at all.", "No names at all."),
        ("{ contact.name | friend }", "Ann", " friend "),
    ],
)
def test_render_for_contact(text: str, ann: str, nobody: str) -> None:
    assert render_for_contact(text, ANN) == ann
    assert render_for_contact(text, NOBODY) == nobody


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Hi {name}", "unknown name {name}"),
        ("Hi {contact.nickname}", "unknown name {contact.nickname}"),
        ("Hi {contact.fields.}", "{contact.fields.} in 'Hi {contact.fields.}': a field is"),
        ("Hi {contact.fields.a b}", "{contact.fields.a b} in 'Hi {contact.fields.a b}': a"),
        ("Hi {from}", "unknown name {from}"),
        ("Hi {contact.name", "expected '}' before end of string"),
        ("Hi contact.name}", "Single '}' encountered"),
    ],
)
def test_unknown_names_and_stray_braces_are_refused(text: str, problem: str) -> None:
    with pytest.raises(BroadcastTextError, match="^" + re.escape(problem)) as caught:
        render_for_contact(text, ANN)
    assert "\n" not in str(caught.value)
    with pytest.raises(BroadcastTextError):
        placeholders(text)


def test_a_field_no_recipient_has_is_refused_unless_it_has_a_default() -> None:
    check_fields("{contact.fields.city}", {"city"})
    check_fields("{contact.fields.town|there}", {"city"})
    with pytest.raises(BroadcastTextError, match=r"no recipient has a field 'town'.*city"):
        check_fields("{contact.fields.town}", {"city"})


# --- quiet hours -----------------------------------------------------------------------------

NIGHT = QuietHours(21 * 60, 8 * 60)  # 21:00-08:00, over midnight
LUNCH = QuietHours(12 * 60, 13 * 60 + 30)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(text: str, zone: ZoneInfo) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


@pytest.mark.parametrize(
    ("quiet", "when", "zone", "ends"),
    [
        (NIGHT, "2026-12-01T20:59", BERLIN, None),
        (NIGHT, "2026-12-01T21:00", BERLIN, "2026-12-02T08:00"),
        (NIGHT, "2026-12-01T23:30", BERLIN, "2026-12-02T08:00"),
        (NIGHT, "2026-12-02T00:00", BERLIN, "2026-12-02T08:00"),
        (NIGHT, "2026-12-02T07:59", BERLIN, "2026-12-02T08:00"),
        (NIGHT, "2026-12-02T08:00", BERLIN, None),
        (NIGHT, "2026-12-02T12:00", NEW_YORK, None),
        (NIGHT, "2026-12-01T22:15", NEW_YORK, "2026-12-02T08:00"),
        (LUNCH, "2026-12-01T11:59", BERLIN, None),
        (LUNCH, "2026-12-01T12:00", BERLIN, "2026-12-01T13:30"),
        (LUNCH, "2026-12-01T13:29", BERLIN, "2026-12-01T13:30"),
        (LUNCH, "2026-12-01T13:30", BERLIN, None),
        # the night the clocks go forward (Berlin, 29 March 2026, 02:00 -> 03:00)
        (NIGHT, "2026-03-28T23:00", BERLIN, "2026-03-29T08:00"),
    ],
)
def test_quiet_hours_end_in_the_contacts_own_zone(
    quiet: QuietHours, when: str, zone: ZoneInfo, ends: str | None
) -> None:
    found = quiet.ends(local(when, zone), zone)
    assert found == (local(ends, zone).astimezone(UTC) if ends else None)
    assert found is None or found.tzinfo == UTC


def test_one_moment_is_quiet_in_one_zone_and_not_in_another() -> None:
    moment = datetime(2026, 12, 1, 21, 30, tzinfo=UTC)  # 22:30 in Berlin, 16:30 in New York
    assert NIGHT.ends(moment, BERLIN) == datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    assert NIGHT.ends(moment, NEW_YORK) is None


@pytest.mark.parametrize(
    ("raw", "span"),
    [("", None), ("21:00-08:00", (1260, 480)), ("9:30 - 17:05", (570, 1025))],
)
def test_quiet_hours_setting(raw: str, span: tuple[int, int] | None) -> None:
    settings = Settings.load({"TEXTBACK_QUIET_HOURS": raw, "TEXTBACK_SECRET_KEY": "k"}, environ={})
    assert settings.quiet_hours == span
    if span:
        assert str(QuietHours(*span)) == raw.replace(" ", "").rjust(11, "0")


@pytest.mark.parametrize("raw", ["21:00", "24:00-08:00", "21:00-21:00", "9pm-8am", "21:0-08:00"])
def test_bad_quiet_hours_are_one_line(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^TEXTBACK_QUIET_HOURS=.*like 21:00-08:00"):
        Settings.load({"TEXTBACK_QUIET_HOURS": raw, "TEXTBACK_SECRET_KEY": "k"}, environ={})


@pytest.mark.parametrize(
    ("source", "held"),
    [
        ("broadcast", True),
        ("flow-start", True),
        ("flow survey step 2 remind", True),
        ("flow survey expired", True),
        ("flow survey step 2", False),  # the answer to the contact's own message
        ("flow survey step 2 retry", False),
        ("admin", False),
        ("handler report", False),
        ("api", False),
    ],
)
def test_quiet_hours_hold_what_we_start_never_a_reply(source: str, held: bool) -> None:
    assert is_held(source) is held
