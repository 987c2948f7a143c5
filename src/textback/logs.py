"""Log lines for people (plain text, the default) or for log shippers (one JSON object a line).

``TEXTBACK_LOG_FORMAT=json`` makes every line an object with ``time``, ``level``, ``logger`` and
``message``, plus the fields a call passes as ``extra=`` (``sid``, ``number`` — always masked
by the caller —, ``outcome``, ``duration_ms`` …) and ``exception`` with the traceback. What
is logged does not change with the format: never a message body or a whole phone number at
INFO.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC
from datetime import datetime

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")

# What every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def log_format(environ: dict[str, str] | None = None) -> str:
    """The format TEXTBACK_LOG_FORMAT asks for; a wrong value is named, not ignored."""
    from textback.errors import ConfigError

    value = (environ if environ is not None else os.environ).get("TEXTBACK_LOG_FORMAT", "text")
    value = value.strip().lower() or "text"
    if value not in FORMATS:
        raise ConfigError(f"TEXTBACK_LOG_FORMAT={value!r}: use text or json")
    return value


def setup_logging(level: int = logging.INFO, *, environ: dict[str, str] | None = None) -> None:
    """Log to standard error in the configured format (replacing any earlier set-up)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format(environ) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(PLAIN))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # twilio's HTTP client logs every request at INFO, with a list's query: a lookup's To and
    # From, whole numbers. Its warnings and errors still show.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
