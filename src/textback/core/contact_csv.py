"""Contacts from and to CSV: ``phone,name,language,timezone,groups`` and any other column a field.

Reading never stops at a bad row: each one is reported with its line number and the reason,
and the good rows are returned. How a phone number is read (the default region) and how a
time zone is guessed from it are given by the caller (the channel layer knows phonenumbers).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import TextIO

from textback.core.profile import FIELD_NAME
from textback.core.profile import FIXED
from textback.core.profile import ContactProfile
from textback.core.profile import group_problem
from textback.core.profile import split_groups
from textback.core.profile import value_problem
from textback.errors import TextbackError

# A cell a spreadsheet would run as a formula; written with a leading ' on export.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that was not imported: its line in the file and why."""

    line: int
    reason: str


def field_name(header: str) -> str:
    """A column header as a field name: ``Date of birth`` -> ``date_of_birth``."""
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def read_contacts(
    text: TextIO,
    *,
    normalize: Callable[[str], str],
    guess_timezone: Callable[[str], str],
) -> tuple[list[ContactProfile], list[RowProblem]]:
    """The contacts of a CSV file with a header row, and the rows that could not be read.

    ``normalize`` turns a phone number as typed into E.164 (raising TextbackError when it is not
    one); ``guess_timezone`` gives the zone of a number's country when it has only one, else "".
    """
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise TextbackError("the file is empty: the first row must name the columns") from None
    names = [field_name(column) for column in header]
    if "phone" not in names:
        raise TextbackError("no 'phone' column in the header row")
    problems: list[RowProblem] = []
    for name in names:
        if name not in FIXED and not FIELD_NAME.fullmatch(name):
            raise TextbackError(f"column {name!r}: a field name starts with a letter")
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise TextbackError(f"column {sorted(duplicates)[0]!r} appears twice in the header row")
    by_number: dict[str, ContactProfile] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(names):
            problems.append(RowProblem(line, f"{len(row)} cells for {len(names)} columns"))
            continue
        cells = dict(zip(names, (_unsafe(cell.strip()) for cell in row), strict=False))
        try:
            profile = _profile(cells, normalize, guess_timezone)
        except TextbackError as exc:
            problems.append(RowProblem(line, str(exc)))
            continue
        by_number[profile.number] = profile  # a number twice: the later row wins, as on re-import
    return list(by_number.values()), problems


def _profile(
    cells: dict[str, str],
    normalize: Callable[[str], str],
    guess_timezone: Callable[[str], str],
) -> ContactProfile:
    number = normalize(cells.get("phone", ""))
    for name in ("name", "language", "timezone"):
        found = value_problem(name, cells.get(name, ""))
        if found is not None:
            raise TextbackError(found)
    language = cells.get("language", "")
    timezone = cells.get("timezone", "") or guess_timezone(number)
    groups = split_groups(cells.get("groups", ""))
    for group in groups:
        found = group_problem(group)
        if found is not None:
            raise TextbackError(found)
    fields = {key: value for key, value in cells.items() if key not in FIXED and value}
    return ContactProfile(
        number=number,
        name=cells.get("name", ""),
        language=language,
        timezone=timezone,
        fields=MappingProxyType(fields),
        groups=groups,
    )


def _safe(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA) and not _looks_numeric(cell) else cell


def _unsafe(cell: str) -> str:
    # What write_contacts protected with a leading ' reads back as it was.
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA) else cell


def _looks_numeric(cell: str) -> bool:
    return re.fullmatch(r"[+-]?\d[\d .()-]*", cell) is not None


def write_contacts(profiles: Iterable[ContactProfile], out: TextIO) -> None:
    """CSV that ``read_contacts`` reads back the same; safe to open in a spreadsheet."""
    rows = list(profiles)
    extra = sorted({key for profile in rows for key in profile.fields})
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FIXED, *extra])
    for profile in rows:
        cells = [
            profile.number,
            profile.name,
            profile.language,
            profile.timezone,
            ";".join(profile.groups),
            *(profile.fields.get(key, "") for key in extra),
        ]
        writer.writerow([_safe(cell) for cell in cells])


def lines(problems: Iterable[RowProblem]) -> Iterator[str]:
    """How problems are shown: ``line 7: time zone 'Mars/Base': give one like …``."""
    for problem in problems:
        yield f"line {problem.line}: {problem.reason}"
