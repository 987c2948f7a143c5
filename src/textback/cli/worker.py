"""``textback worker`` (sends what the outbox holds) and ``textback outbox`` (shows it)."""

from __future__ import annotations

import click

from textback.cli.group import main
from textback.cli.resources import SENT_BY_THE_WORKER
from textback.cli.resources import configured_engine
from textback.cli.resources import setup_logging
from textback.core.text import terminal_safe


@main.command()
@click.option("--workers", default=2, show_default=True, type=int, help="Sending threads.")
def worker(workers: int) -> None:
    """Send the outbox's messages and run slow handlers (huey consumer on TEXTBACK_QUEUE_URL).

    Stop with Ctrl-C; SIGTERM lets the work in hand finish.
    """
    from textback import metrics_folder
    from textback.config import Settings

    if workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    setup_logging()
    settings = Settings.load()
    # Before prometheus-client is imported: the sends count into the folder `serve` reports.
    metrics_folder.prepare(settings.instance_path / "metrics", wipe=False)
    from textback.app import import_bot
    from textback.channel.rest import rest_client
    from textback.core.bot import Bot
    from textback.outbound.outbox import Outbox
    from textback.outbound.queue import POLL_AT_LEAST_EVERY
    from textback.outbound.slow import SlowHandlers
    from textback.rulesfile.rules import default_rules
    from textback.rulesfile.rules import load_rules
    from textback.storage.store import Store

    rest_client(settings)  # no credentials: one line now, not a failure per message later
    # The slow handlers run here: the same bot and rules as the server (restart after a change).
    rules = load_rules(settings.rules_path) if settings.rules_path else default_rules()
    bot = import_bot(settings.bot_path) if settings.bot_path else Bot()
    with configured_engine(create_schema=True) as engine:
        outbox = Outbox(settings, Store(engine))
        slow = SlowHandlers(outbox, lambda: (bot, rules))
        outbox.sweep()  # what a worker that died left behind, without waiting for the minute
        slow.sweep()
        # SIGTERM (systemd, Docker) lets the sends in hand finish; Ctrl-C stops at once.
        consumer = outbox.queue.create_consumer(
            workers=workers,
            worker_type="thread",
            graceful_signal="TERM",
            max_delay=POLL_AT_LEAST_EVERY,
        )
        consumer.run()


@main.group(invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Also sent, delivered and cancelled ones.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_context
def outbox(ctx: click.Context, show_all: bool, limit: int) -> None:
    """List the messages waiting, being sent, failed or held for review, with counts."""
    if ctx.invoked_subcommand is not None:
        return
    from textback.storage import outbox as states
    from textback.storage.outbox import OutboxRows
    from textback.storage.store import Store

    with configured_engine(create_schema=True) as engine:
        rows = OutboxRows(Store(engine))
        counts = rows.counts()
        listed = rows.listing(
            states=(
                *states.OPEN,
                states.SENT,
                states.DELIVERED,
                states.UNDELIVERED,
                states.CANCELLED,
            )
            if show_all
            else states.OPEN,
            limit=limit,
        )
    order = [*states.OPEN, states.SENT, states.DELIVERED, states.UNDELIVERED, states.CANCELLED]
    summary = ", ".join(f"{counts[state]} {state}" for state in order if counts.get(state))
    click.echo(summary or "the outbox is empty")
    for row in listed:
        when = row.send_at.strftime("%Y-%m-%d %H:%M UTC") if row.send_at else "now"
        why = f"  ({row.reason})" if row.reason and row.state != states.SENT else ""
        click.echo(
            terminal_safe(
                f"{row.id:>6} {row.state:<11} {when:<20} {row.sender} -> {row.to_number}  "
                f"{row.body[:40]}{why}"
            )
        )


@outbox.command("cancel")
@click.argument("entry_id", metavar="ID", type=int)
def cancel(entry_id: int) -> None:
    """Cancel message ID (waiting, failed or held for review; not one being sent)."""
    from textback.errors import TextbackError
    from textback.storage.outbox import OutboxRows
    from textback.storage.store import Store

    with configured_engine(create_schema=True) as engine:
        rows = OutboxRows(Store(engine))
        if not rows.cancel(entry_id, "cancelled from the command line"):
            row = rows.get(entry_id)
            if row is None:
                raise TextbackError(f"outbox {entry_id}: no such message")
            raise TextbackError(f"outbox {entry_id} is {row.state}: it cannot be cancelled now")
    click.echo(f"outbox {entry_id} cancelled")


@outbox.command("resend")
@click.argument("entry_id", metavar="ID", type=int)
def resend(entry_id: int) -> None:
    """Send message ID again: one held for review (you checked it did not arrive) or failed."""
    from textback.config import Settings
    from textback.errors import TextbackError
    from textback.outbound.outbox import Outbox
    from textback.storage.store import Store

    with configured_engine(create_schema=True) as engine:
        box = Outbox(Settings.load(), Store(engine))
        if not box.rows.release(entry_id):
            row = box.rows.get(entry_id)
            if row is None:
                raise TextbackError(f"outbox {entry_id}: no such message")
            raise TextbackError(
                f"outbox {entry_id} is {row.state}: only review and failed messages are resent"
            )
        box.enqueue(entry_id)
    click.echo(f"outbox {entry_id} queued again {SENT_BY_THE_WORKER}")
