"""``textback simulate``: one realistic, signed webhook; prints the reply."""

from __future__ import annotations

import sys

import click

from textback.cli.group import main


@main.command()
@click.argument("body")
@click.option("--from", "from_", default=None, help="Sender number [+15550001111].")
@click.option("--to", default=None, help="Our number [+15559990000].")
@click.option("--media", multiple=True, help="A picture URL to attach (repeatable).")
@click.option("--url", default=None, help="POST to this server URL instead of in-process.")
@click.option("--raw", is_flag=True, help="Print the TwiML instead of the reply text.")
def simulate(
    body: str, from_: str | None, to: str | None, media: tuple[str, ...], url: str | None, raw: bool
) -> None:
    """Send BODY as a correctly signed Twilio webhook and print the reply."""
    from textback.cli.simulate import simulate as run_simulation

    status, twiml, text = run_simulation(body, from_=from_, to=to, media=media, url=url)
    if status != 200:
        click.echo(f"textback: the server answered {status}: {twiml.strip()}", err=True)
        sys.exit(1)
    click.echo(twiml if raw else (text if text else "(no reply)"))
