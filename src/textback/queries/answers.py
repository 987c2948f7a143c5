"""The answers a flow collected, one row per finished run, for ``textback answers FLOW``.

A run is listed once it is no longer open: completed, or abandoned (expired, stopped, left,
ended, cancelled). A run whose expiry passed but whose contact never wrote again is listed as
"expired" too.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import and_
from sqlalchemy import or_
from sqlalchemy import select

from textback.core.text import terminal_safe
from textback.storage.models import now
from textback.storage.runs import flow_runs
from textback.storage.tables import contacts

FIXED_COLUMNS = ("run_id", "our_number", "contact", "status", "started_at", "ended_at")
# Spreadsheets run a cell starting with these as a formula (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:[ .]\d+)*")


@dataclass(frozen=True)
class AnswerTable:
    """The header and the rows of an export, every cell a string."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _stamp(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def finished_runs(engine: Engine, flow: str) -> list[Any]:
    """The runs of ``flow`` that are no longer open, oldest first, with the contact's numbers."""
    stamp = now()
    query = (
        select(
            flow_runs.c.id,
            flow_runs.c.status,
            flow_runs.c["values"],
            flow_runs.c.started_at,
            flow_runs.c.ended_at,
            flow_runs.c.expires_at,
            contacts.c.our_number,
            contacts.c.number,
        )
        .join(contacts, contacts.c.id == flow_runs.c.contact_id)
        .where(
            and_(
                flow_runs.c.flow == flow,
                or_(flow_runs.c.ended_at.is_not(None), flow_runs.c.expires_at <= stamp),
            )
        )
        .order_by(flow_runs.c.id)
    )
    with engine.connect() as connection:
        return list(connection.execute(query))


def answer_table(runs: Sequence[Any], keys: Sequence[str] = ()) -> AnswerTable:
    """One row per run: the fixed columns, then ``keys`` in order, then keys seen only in data."""
    columns = list(keys)
    for run in runs:
        for key in run.values or {}:
            if key not in columns:
                columns.append(key)
    rows = []
    for run in runs:
        values = run.values or {}
        open_expired = run.ended_at is None
        rows.append(
            (
                str(run.id),
                run.our_number,
                run.number,
                "expired" if open_expired else run.status,
                _stamp(run.started_at),
                _stamp(run.expires_at if open_expired else run.ended_at),
                *(str(values.get(key, "")) for key in columns),
            )
        )
    return AnswerTable((*FIXED_COLUMNS, *columns), tuple(rows))


def csv_safe(cell: str) -> str:
    """A cell a spreadsheet cannot run: a leading ``= + - @``, tab or CR gets a ``'``.

    A plain number such as a phone number (``+15550001111``, ``-3``) is left alone: a
    spreadsheet can only read it as a number, and escaping it would change the data.
    """
    if cell.startswith(_FORMULA_STARTS) and _PLAIN_NUMBER.fullmatch(cell) is None:
        return "'" + cell
    return cell


def write_csv(table: AnswerTable, out: IO[str]) -> None:
    """The table as CSV, every cell made safe against formula injection."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_safe(cell) for cell in table.header])
    for row in table.rows:
        writer.writerow([csv_safe(cell) for cell in row])


def aligned_text(table: AnswerTable) -> str:
    """The table as aligned columns for a terminal; control characters are made visible."""
    cells = [table.header, *(tuple(terminal_safe(c) for c in row) for row in table.rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.header))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(line.rstrip() for line in lines)
