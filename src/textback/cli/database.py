"""``textback db upgrade`` and ``textback db current``."""

from __future__ import annotations

import click

from textback.cli.group import main
from textback.cli.resources import configured_engine
from textback.cli.resources import setup_logging


@main.group()
def db() -> None:
    """Database schema: upgrade, current."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    from textback.storage.engine import upgrade

    setup_logging()
    with configured_engine() as engine:
        upgrade(engine)
    click.echo("database schema is up to date")


@db.command("current")
def db_current() -> None:
    """Print the database's schema revision and the one this textback needs."""
    from textback.storage.engine import current_revision
    from textback.storage.engine import head_revision

    with configured_engine() as engine:
        click.echo(f"current: {current_revision(engine)}  needed: {head_revision(engine)}")
