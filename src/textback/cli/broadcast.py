"""``textback broadcast`` (send one text to groups of contacts) and ``textback broadcasts``."""

from __future__ import annotations

import io
import sys
import time
from typing import TYPE_CHECKING

import click

from textback.cli.group import main
from textback.cli.resources import SENT_BY_THE_WORKER
from textback.cli.resources import configured_engine
from textback.core.text import terminal_safe

if TYPE_CHECKING:
    from textback.storage.broadcasts import Tally
    from textback.storage.store import Store

FOLLOW_EVERY = 0.5  # seconds between looks at the counts while following the sends
STALLED_AFTER = 15.0  # seconds without a send before the bar asks whether a worker runs


@main.command()
@click.argument("text")
@click.option(
    "--group", "groups", multiple=True, required=True, help="Send to this group (repeatable)."
)
@click.option("--at", default=None, help="Send later: ISO 8601, e.g. 2026-12-24T09:00.")
@click.option("--from", "from_", default=None, help="Our number to send from.")
@click.option("--messaging-service", default=None, help="Or a Messaging Service SID (MG...).")
@click.option("--preview", is_flag=True, help="Show the text, encoding and segments; send nothing.")
@click.option("--yes", is_flag=True, help="Send without asking.")
@click.option("--again", is_flag=True, help="Send it even though the same broadcast was made.")
@click.option(
    "--wait/--no-wait", default=None, help="Follow the sends with a progress bar [on a terminal]."
)
def broadcast(
    text: str,
    groups: tuple[str, ...],
    at: str | None,
    from_: str | None,
    messaging_service: str | None,
    preview: bool,
    yes: bool,
    again: bool,
    wait: bool | None,
) -> None:
    """Send TEXT to every contact of the --group(s), once each, through the outbox.

    TEXT may use {contact.name}, {contact.name|default}, {contact.fields.X}, {contact.language}
    and {contact.phone}. Opted-out contacts are skipped; TEXTBACK_QUIET_HOURS hold messages
    due in a contact's quiet hours until they end. Running the same command again sends
    nothing twice (give --again to send the same broadcast once more).
    """
    from textback.channel.e164 import e164
    from textback.config import Settings
    from textback.outbound.broadcast import command_key
    from textback.outbound.broadcast import create_broadcast
    from textback.outbound.broadcast import plan_broadcast
    from textback.outbound.outbox import is_messaging_service
    from textback.outbound.send import parse_send_time
    from textback.storage.broadcasts import BroadcastRows
    from textback.storage.models import now
    from textback.storage.store import Store

    settings = Settings.load()
    if from_ and messaging_service:
        raise click.UsageError("give --from or --messaging-service, not both")
    if messaging_service and not is_messaging_service(messaging_service):
        raise click.BadParameter(
            "a Messaging Service SID is MG and 32 hex digits", param_hint="--messaging-service"
        )
    sender = messaging_service or (e164(from_, settings.default_region) if from_ else "")
    when = parse_send_time(at, settings.timezone, now()) if at else None
    with configured_engine(create_schema=True) as engine:
        store = Store(engine)
        plan = plan_broadcast(settings, store, text=text, groups=groups, sender=sender)
        sample = plan.sample
        measured = plan.sample_measure()
        left_out = ", ".join(f"{count} {why}" for why, count in sorted(plan.skipped.items()))
        summary = (
            f"{len(plan.sending)} of {len(plan.recipients)} contact(s) in {', '.join(plan.groups)}"
        )
        skipped = f"; skipped: {left_out}" if left_out else ""
        if preview:
            if sample is not None and measured is not None:
                click.echo(terminal_safe(f"to {sample.number}: {sample.body}"))
                click.echo(
                    f"{measured.encoding}, {measured.units} characters, "
                    f"{measured.segments} segment(s)"
                )
            click.echo(summary + skipped)
            click.echo(
                f"{plan.total_segments} segment(s) in all ({', '.join(plan.encodings) or '-'}); "
                "nothing was sent"
            )
            return
        click.echo(f"{summary}, {plan.total_segments} segment(s) in all{skipped}")
        if not yes:
            click.confirm("Send it?", abort=True)
        key = None if again else command_key(text, groups, sender, when)
        with click.progressbar(
            length=len(plan.recipients),
            label="Queueing",
            file=sys.stderr if sys.stderr.isatty() else io.StringIO(),
        ) as bar:
            created = create_broadcast(
                settings,
                store,
                text=text,
                groups=groups,
                sender=sender,
                at=when,
                key=key,
                source="cli",
                progress=bar.update,
            )
        if created.new:
            left_out = ", ".join(f"{n} {why}" for why, n in sorted(created.skipped.items()))
            later = f" for {when.isoformat()}" if when else ""
            click.echo(
                f"broadcast {created.broadcast_id}: {created.sending} message(s) queued{later}"
                + (f"; skipped: {left_out}" if left_out else "")
                + f" {SENT_BY_THE_WORKER}"
            )
        else:
            click.echo(
                f"broadcast {created.broadcast_id} was made before with this text, groups and "
                "time: nothing new queued (--again sends it once more)"
            )
            click.echo(line(BroadcastRows(store).tally(created.broadcast_id)))
        if wait is None:
            wait = sys.stdout.isatty() and when is None
        if wait and created.sending:
            follow(store, created.broadcast_id, created.sending)


def follow(store: Store, broadcast_id: int, sending: int) -> None:
    """A progress bar of the sends until none is waiting (Ctrl-C stops watching, not sending)."""
    from textback.storage.broadcasts import BroadcastRows

    rows = BroadcastRows(store)
    shown = 0
    moved = time.monotonic()
    hinted = False
    try:
        with click.progressbar(length=sending, label="Sending", file=sys.stderr) as bar:
            while True:
                tally = rows.tally(broadcast_id)
                done = tally.done - sum(tally.skipped.values())
                if done > shown:
                    bar.update(done - shown)
                    shown, moved = done, time.monotonic()
                if tally.queued + tally.sending == tally.held:
                    break
                if not hinted and time.monotonic() - moved > STALLED_AFTER:
                    bar.label = "Sending (none for a while: is `textback worker` running?)"
                    bar.render_progress()
                    hinted = True
                time.sleep(FOLLOW_EVERY)
    except KeyboardInterrupt:
        click.echo("\nstill sending in the background: `textback broadcasts` shows how far")
        return
    click.echo(line(tally))
    if tally.held:
        click.echo(f"{tally.held} wait for the end of their quiet hours")


def line(tally: Tally) -> str:
    """A broadcast's counts as one line."""
    parts = [
        f"{tally.queued + tally.sending} queued",
        f"{tally.sent} sent",
        f"{tally.delivered} delivered",
        f"{tally.failed} failed",
    ]
    if tally.review:
        parts.append(f"{tally.review} review")
    skipped = sum(tally.skipped.values())
    parts.append(f"{skipped} skipped" + (f" ({tally.skipped_text()})" if skipped else ""))
    if tally.held:
        parts.append(f"{tally.held} held by quiet hours")
    return ", ".join(parts)


@main.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def broadcasts(limit: int) -> None:
    """List the latest broadcasts with their counts (queued, sent, delivered, failed,
    skipped and why)."""
    from textback.outbound.broadcast import broadcast_tallies
    from textback.storage.store import Store

    with configured_engine(create_schema=True) as engine:
        listed = broadcast_tallies(Store(engine), limit)
    if not listed:
        click.echo("no broadcasts yet")
    for row, tally in listed:
        when = row.send_at or row.created_at
        click.echo(
            terminal_safe(
                f"{row.id:>4}  {when:%Y-%m-%d %H:%M UTC}  "
                f"{','.join(row.groups)}  from {row.sender}  "
                f"{row.text[:50]!r}"
            )
        )
        state = "" if row.state == "queued" else " (interrupted: run the command again)"
        click.echo(f"      {tally.total} recipient(s): {line(tally)}{state}")
