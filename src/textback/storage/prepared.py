"""Statements compiled once and run on the driver's cursor, for the few that run per message.

SQLAlchemy builds the SQL (and the driver-specific type conversions: JSON, SQLite's DateTime
strings, psycopg's Json wrapper) once, from the same Core statements and column types as
everywhere else. Per message only the driver runs: no cache-key lookup, no execution context,
no result object. The statement runs on the connection's own DB-API connection, so it is part of
the transaction the caller began.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


class Prepared:
    """One statement for one dialect: its SQL text and how to turn parameters into driver values."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        columns = getattr(statement, "exported_columns", ())  # what a SELECT or RETURNING gives
        self._results = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        names = {name: bind for bind, name in compiled.bind_names.items()}
        order = list(compiled.positiontup or []) if self.positional else list(names)
        self._names = order
        self._binds: list[tuple[str, str, Callable[[Any], Any] | None, bool, Any]] = []
        for name in order:
            bind = names[name]
            convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                self._binds.append((name, bind.key, convert, False, None))
            else:  # a constant of the statement: converted once
                value = bind.effective_value
                fixed = convert(value) if convert is not None and value is not None else value
                self._binds.append((name, bind.key, None, True, fixed))

    def parameters(self, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """``params`` (by bind name) as the driver takes them, in the statement's order."""
        values = []
        for _name, key, convert, fixed, constant in self._binds:
            if fixed:
                values.append(constant)
            else:
                value = params[key]
                values.append(
                    convert(value) if convert is not None and value is not None else value
                )
        if self.positional:
            return tuple(values)
        return {name: value for (name, *_), value in zip(self._binds, values, strict=True)}

    def bind(self, params: Mapping[str, Any]) -> Bound:
        """This statement with ``params`` converted now, to run later (outside a lock, say)."""
        return Bound(self, self.parameters(params))

    def first_row(
        self, connection: Connection, params: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """Run on ``connection``'s DB-API connection; its first row (converted), if any."""
        return self.bind(params).first_row(connection)

    def execute(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        """Run on ``connection``'s DB-API connection; the first column of the first row, if any."""
        return self.bind(params).execute(connection)

    def row(self, raw: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        """A row the driver returned, with SQLAlchemy's result conversions applied."""
        if raw is None:
            return None
        if len(self._results) != len(raw):  # an INSERT's implicit RETURNING of its key
            return tuple(raw)
        return tuple(
            value if convert is None or value is None else convert(value)
            for convert, value in zip(self._results, raw, strict=True)
        )


class Bound:
    """A prepared statement and its parameters, already converted for the driver."""

    __slots__ = ("parameters", "prepared")

    def __init__(self, prepared: Prepared, parameters: tuple[Any, ...] | dict[str, Any]) -> None:
        self.prepared = prepared
        self.parameters = parameters

    def first_row(self, connection: Connection) -> tuple[Any, ...] | None:
        """Run on ``connection``'s DB-API connection; its first row (converted), if any."""
        cursor = connection.connection.cursor()
        try:
            cursor.execute(self.prepared.sql, self.parameters)
            row = cursor.fetchone() if cursor.description is not None else None
        finally:
            cursor.close()
        return self.prepared.row(row)

    def execute(self, connection: Connection) -> Any:
        """Run on ``connection``'s DB-API connection; the first column of the first row, if any."""
        row = self.first_row(connection)
        return None if row is None else row[0]
