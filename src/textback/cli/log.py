"""``textback messages`` and ``textback answers``: what is stored, for the terminal."""

from __future__ import annotations

import json
import sys

import click

from textback.cli.group import main
from textback.cli.resources import configured_engine
from textback.core.text import terminal_safe
from textback.errors import TextbackError


@main.command()
@click.option("--contact", default=None, help="Only messages from or to this number.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many messages.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def messages(contact: str | None, limit: int, as_json: bool) -> None:
    """Print the message log, newest last.

    A failed answer shows as ``[error: handler NAME]`` after the message it failed on.
    """
    from textback.channel.e164 import e164
    from textback.config import Settings
    from textback.storage.store import Store

    if contact is not None:
        # Stored as Twilio writes it (E.164): 5550001111 finds +15550001111.
        contact = e164(contact, Settings.load().default_region)
    with configured_engine(create_schema=True) as engine:
        found = Store(engine).recent_messages(contact=contact, limit=limit)
    for row in found:
        record = {
            "sid": row.sid or "",
            "direction": row.direction,
            "from": row.from_number,
            "to": row.to_number,
            "body": row.body,
            "media": [item.get("url", "") for item in row.media or []],
            "status": row.status,
            "source": row.source,
            "created_at": row.created_at.isoformat(),
        }
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            arrow = "<-" if row.direction == "inbound" else "->"
            stamp = row.created_at.strftime("%Y-%m-%d %H:%M:%S")
            other = row.from_number if row.direction == "inbound" else row.to_number
            media = f" [+{len(record['media'])} media]" if record["media"] else ""
            failed = (
                f" [{row.source}]"
                if row.direction == "inbound" and (row.source or "").startswith("error:")
                else ""
            )
            click.echo(
                terminal_safe(f"{stamp} {arrow} {other} {row.status:<10} {row.body}{media}{failed}")
            )


@main.command()
@click.argument("flow")
@click.option("--csv", "as_csv", is_flag=True, help="CSV (safe to open in a spreadsheet).")
def answers(flow: str, as_csv: bool) -> None:
    """Export the answers of FLOW: one row per completed or abandoned run."""
    from textback.config import Settings
    from textback.queries.answers import aligned_text
    from textback.queries.answers import answer_table
    from textback.queries.answers import finished_runs
    from textback.queries.answers import write_csv
    from textback.rulesfile.rules import load_rules

    keys: list[str] = []
    known = False
    try:
        settings = Settings.load()
        if settings.rules_path:
            found = load_rules(settings.rules_path).flow(flow)
            known = found is not None
            keys = [step.save for step in found.steps] if found is not None else []
    except TextbackError as exc:
        click.echo(f"warning: {exc}; columns follow the stored answers", err=True)
    with configured_engine(create_schema=True) as engine:
        runs = finished_runs(engine, flow)
    if not runs and not known:
        click.echo(f"textback: error: no flow {flow!r} in the rules and no runs of it", err=True)
        sys.exit(1)
    table = answer_table(runs, keys)
    if as_csv:
        write_csv(table, sys.stdout)
        return
    if not runs:
        click.echo(f"no completed or abandoned runs of {flow!r} yet", err=True)
        return
    click.echo(aligned_text(table))
