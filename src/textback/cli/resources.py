"""What the commands share: logging, the configured database, an app built from the settings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from textback.logs import setup_logging

__all__ = ["SENT_BY_THE_WORKER", "build_app", "configured_engine", "setup_logging"]

# What a command that queues says of who sends: a worker process, or the one `textback run` embeds.
SENT_BY_THE_WORKER = "(sent by the worker: `textback worker`, or `textback run`'s own)"

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy import Engine


@contextlib.contextmanager
def configured_engine(*, create_schema: bool = False) -> Iterator[Engine]:
    """The configured database's engine, disposed afterwards."""
    from textback.config import Settings
    from textback.storage.engine import ensure_schema
    from textback.storage.engine import make_engine

    engine = make_engine(Settings.load().database_url)
    try:
        if create_schema:
            ensure_schema(engine)
        yield engine
    finally:
        engine.dispose()


def build_app(**config: object) -> Flask:
    """The app the settings describe (a TextbackError ends the command cleanly)."""
    from textback.app import create_app

    return create_app(config)
