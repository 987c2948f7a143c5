"""Statements compiled once and run on the driver's cursor, failing exactly as SQLAlchemy fails.

For the few statements that run per message. SQLAlchemy builds the SQL and the driver-specific
type conversions (JSON, SQLite's DateTime strings, psycopg's Json wrapper) once, from the same
Core statements and column types as everywhere else, through the compiler's documented
attributes (``positiontup``, ``binds``) and the types' ``bind_processor``/``result_processor``.
Per message only the driver runs: no cache-key lookup, no execution context, no result object,
about a fifth of the CPU of ``Connection.execute``. The statement runs on the connection's own
DB-API connection, so it is part of the transaction the caller began.

What going around ``Connection.execute`` would lose is kept: a driver error becomes the
``sqlalchemy.exc.DBAPIError`` subclass SQLAlchemy raises (``IntegrityError``,
``OperationalError``...), made by SQLAlchemy's own ``DBAPIError.instance``; and a lost
connection (the dialect's ``is_disconnect``) is invalidated through ``Connection.invalidate``, so
the pool replaces it and the next request gets a working one. tests/test_store_errors.py checks
both.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import NoReturn
from typing import cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Convert = Callable[[Any], Any] | None


class Prepared:
    """One statement for one dialect: its SQL text and how to turn parameters into driver values."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        columns = getattr(statement, "exported_columns", ())  # what a SELECT or RETURNING gives
        self._results: list[Convert] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self._converts = any(convert is not None for convert in self._results)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        # (name, parameter key, conversion, constant): a constant of the statement (a value
        # given to .values()) is converted once, here.
        self._binds: list[tuple[str, str, Convert, Any]] = []
        self._constant = object()
        for name in names:
            bind = compiled.binds[name]
            convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                self._binds.append((name, bind.key, convert, self._constant))
            else:
                value = bind.effective_value
                fixed = convert(value) if convert is not None and value is not None else value
                self._binds.append((name, bind.key, None, fixed))

    def values(
        self, params: Mapping[str, Any], *, later: frozenset[str] = frozenset()
    ) -> list[Any]:
        """``params`` (by bind key) converted for the driver, in the statement's order; the keys
        in ``later`` are left out, to be given to ``parameters``."""
        values = []
        for _name, key, convert, constant in self._binds:
            if constant is not self._constant:
                values.append(constant)
            elif key in later:
                values.append(None)
            else:
                value = params[key]
                values.append(
                    convert(value) if convert is not None and value is not None else value
                )
        return values

    def parameters(
        self, values: list[Any], late: Mapping[str, Any] | None = None
    ) -> tuple[Any, ...] | dict[str, Any]:
        """What the driver is given: ``values`` (from ``values()``) with ``late`` put in."""
        if late:
            values = list(values)
            for index, (_name, key, convert, _constant) in enumerate(self._binds):
                if key in late:
                    value = late[key]
                    values[index] = (
                        convert(value) if convert is not None and value is not None else value
                    )
        if self.positional:
            return tuple(values)
        return {name: value for (name, *_), value in zip(self._binds, values, strict=True)}

    def first_row(
        self,
        connection: Connection,
        params: Mapping[str, Any],
        *,
        converted: list[Any] | None = None,
    ) -> tuple[Any, ...] | None:
        """Run in ``connection``'s transaction; its first row (converted), if any.

        ``converted`` are values from ``values()`` made earlier (outside a lock, say); then
        ``params`` holds only the keys that were left for later.
        """
        if converted is None:
            parameters = self.parameters(self.values(params))
        else:
            parameters = self.parameters(converted, params)
        dbapi_connection = connection.connection
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(self.sql, parameters)
            row = cursor.fetchone() if cursor.description is not None else None
        except connection.dialect.loaded_dbapi.Error as exc:
            self._raise(connection, exc, parameters, cursor)
        finally:
            cursor.close()
        return self.row(row)

    def scalar(
        self,
        connection: Connection,
        params: Mapping[str, Any],
        *,
        converted: list[Any] | None = None,
    ) -> Any:
        """Run in ``connection``'s transaction; the first column of the first row, if any."""
        row = self.first_row(connection, params, converted=converted)
        return None if row is None else row[0]

    def row(self, raw: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        """A row the driver returned, with SQLAlchemy's result conversions applied."""
        if raw is None:
            return None
        if not self._converts or len(self._results) != len(raw):
            return tuple(raw)  # nothing to convert, or an INSERT's implicit RETURNING of its key
        return tuple(
            value if convert is None or value is None else convert(value)
            for convert, value in zip(self._results, raw, strict=True)
        )

    def _raise(
        self, connection: Connection, exc: Exception, parameters: Any, cursor: Any
    ) -> NoReturn:
        """What Connection.execute does with a driver error: SQLAlchemy's exception, and a lost
        connection invalidated."""
        dialect = connection.dialect
        lost = dialect.is_disconnect(cast(Any, exc), connection.connection.dbapi_connection, cursor)
        if lost:
            connection.invalidate(exc)
        translated = DBAPIError.instance(
            self.sql,
            parameters,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=connection.engine.hide_parameters,
            connection_invalidated=lost,
            dialect=dialect,
        )
        raise translated.with_traceback(exc.__traceback__) from exc
