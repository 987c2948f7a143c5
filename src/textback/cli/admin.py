"""``textback hash-password``: a hash to set as TEXTBACK_ADMIN_PASSWORD."""

from __future__ import annotations

import click

from textback.cli.group import main


@main.command("hash-password")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="The admin password [asked for, not echoed].",
)
def hash_password(password: str) -> None:
    """Print a hash of the admin password, for TEXTBACK_ADMIN_PASSWORD.

    Setting the hash keeps the password itself out of the server's environment.
    """
    from werkzeug.security import generate_password_hash

    if not password.strip():
        raise click.UsageError("the password must not be empty")
    click.echo(generate_password_hash(password))
