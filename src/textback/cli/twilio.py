"""``textback send`` and ``textback configure-number``: Twilio's REST API."""

from __future__ import annotations

import os

import click

from textback.cli.group import main
from textback.cli.resources import SENT_BY_THE_WORKER
from textback.cli.resources import configured_engine


@main.command()
@click.argument("to")
@click.argument("body")
@click.option(
    "--from",
    "from_",
    default=None,
    help="Our number or Messaging Service (MG...) [the one TO texted].",
)
@click.option("--media", multiple=True, help="A picture URL to attach (repeatable).")
@click.option(
    "--at",
    "at",
    default=None,
    help="Send later: ISO 8601, e.g. 2026-12-24T09:00 [TEXTBACK_TIMEZONE].",
)
def send(to: str, body: str, from_: str | None, media: tuple[str, ...], at: str | None) -> None:
    """Send BODY to TO through Twilio's REST API (now, or --at a time) and log it.

    Numbers may be written in national format, read in TEXTBACK_DEFAULT_REGION.
    """
    from textback.channel.e164 import e164
    from textback.channel.rest import rest_client
    from textback.config import Settings
    from textback.outbound.outbox import is_messaging_service
    from textback.outbound.send import parse_send_time
    from textback.outbound.send import schedule_message
    from textback.outbound.send import send_message
    from textback.storage.models import now
    from textback.storage.store import Store

    settings = Settings.load()
    to = e164(to, settings.default_region)
    if from_ and not is_messaging_service(from_):
        from_ = e164(from_, settings.default_region)
    with configured_engine(create_schema=True) as engine:
        store = Store(engine)
        if at is None:
            sid, status = send_message(settings, store, to=to, body=body, from_=from_, media=media)
            click.echo(f"{sid} {status}")
            return
        when = parse_send_time(at, settings.timezone, now())
        rest_client(settings)  # missing credentials: said now, not when the worker tries
        entry_id = schedule_message(
            settings, store, to=to, body=body, from_=from_, media=media, at=when
        )
    click.echo(f"outbox {entry_id} scheduled for {when.isoformat()} {SENT_BY_THE_WORKER}")


@main.command("configure-number")
@click.argument("number")
@click.option("--url", default=None, help="This server's public URL [TEXTBACK_PUBLIC_URL].")
@click.option("--tunnel", is_flag=True, help="Use the public URL of the running ngrok agent.")
def configure_number(number: str, url: str | None, tunnel: bool) -> None:
    """Point NUMBER's incoming messages and status callbacks at this server."""
    from textback.channel.numbers import configure_number as point_number
    from textback.channel.tunnel import ngrok_public_url
    from textback.config import Settings

    settings = Settings.load()
    if tunnel and url:
        raise click.UsageError("give --url or --tunnel, not both")
    base = ngrok_public_url(os.environ) if tunnel else (url or settings.public_url)
    if not base:
        raise click.UsageError(
            "no public URL: give --url https://..., --tunnel, or set TEXTBACK_PUBLIC_URL"
        )
    configured = point_number(settings, number, base)
    click.echo(f"{configured.number}: messages now go to {configured.sms_url}")
    for change in configured.changes:
        if change.changed:
            click.echo(f"  {change.name}: {change.after}  (was: {change.before or '(empty)'})")
        else:
            click.echo(f"  {change.name}: {change.after}  (unchanged)")
    if not configured.can_sms:
        click.echo(f"warning: Twilio lists {configured.number} as unable to receive SMS")
    public = configured.sms_url.removesuffix("/twilio")
    if settings.public_url != public:
        click.echo(
            f"Start the server with TEXTBACK_PUBLIC_URL={public} (and TWILIO_AUTH_TOKEN), so "
            "it checks signatures against the URL Twilio calls."
        )
