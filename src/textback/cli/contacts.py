"""``textback contacts``: list, import and export contacts (name, language, zone, fields)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from textback.cli.group import main
from textback.cli.resources import configured_engine
from textback.core.text import terminal_safe


@main.group(invoke_without_command=True)
@click.option("--group", default=None, help="Only the contacts in this group.")
@click.pass_context
def contacts(ctx: click.Context, group: str | None) -> None:
    """List contacts (import and export them with the subcommands)."""
    if ctx.invoked_subcommand is not None:
        return
    from textback.storage.profiles import list_profiles

    with configured_engine(create_schema=True) as engine:
        found = list_profiles(engine, group=group)
    for person in found:
        fields = " ".join(f"{key}={value}" for key, value in sorted(person.fields.items()))
        parts = [person.number, person.name or "-", person.language or "-", person.timezone or "-"]
        parts += [";".join(person.groups) or "-", fields]
        click.echo(terminal_safe("  ".join(part for part in parts if part)))
    click.echo(f"{len(found)} contact(s)" + (f" in {group!r}" if group else ""), err=True)


@contacts.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_contacts(path: Path) -> None:
    """Import (or update) contacts from a CSV file with a header row.

    Columns: phone, name, language, timezone, groups (separated by ;); any other column is a
    field. A bad row is reported with its line number and the others are still imported.
    """
    import csv

    from textback.channel.e164 import e164
    from textback.channel.timezones import guess_timezone
    from textback.config import Settings
    from textback.core.contact_csv import lines
    from textback.core.contact_csv import read_contacts
    from textback.errors import TextbackError
    from textback.storage.profiles import save_profiles

    region = Settings.load().default_region
    with path.open(newline="", encoding="utf-8-sig") as text:
        try:
            people, problems = read_contacts(
                text, normalize=lambda number: e164(number, region), guess_timezone=guess_timezone
            )
        except TextbackError as exc:
            raise TextbackError(f"{path}: {exc}") from None
        except UnicodeDecodeError:
            raise TextbackError(
                f"{path}: not UTF-8 text: save it as CSV UTF-8 (your spreadsheet's export)"
            ) from None
        except csv.Error as exc:  # a cell over the csv module's size limit, say
            raise TextbackError(f"{path}: not a CSV file: {exc}") from None
    for line in lines(problems):
        click.echo(terminal_safe(f"{path}: {line}"), err=True)
    with configured_engine(create_schema=True) as engine:
        created, updated = save_profiles(engine, people)
    skipped = f", {len(problems)} row(s) skipped" if problems else ""
    click.echo(f"{path}: {created} contact(s) added, {updated} updated{skipped}")
    if problems:
        sys.exit(1)


@contacts.command("export")
@click.option("--csv", "as_csv", is_flag=True, required=True, help="CSV (the format import reads).")
@click.option("--group", default=None, help="Only the contacts in this group.")
def export_contacts(as_csv: bool, group: str | None) -> None:
    """Write every contact as CSV to standard output (safe to open in a spreadsheet)."""
    from textback.core.contact_csv import write_contacts
    from textback.storage.profiles import list_profiles

    with configured_engine(create_schema=True) as engine:
        write_contacts(list_profiles(engine, group=group), sys.stdout)
