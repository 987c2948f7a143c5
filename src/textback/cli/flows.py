"""``textback start-flow``: start a rules-file flow for contacts, from our side."""

from __future__ import annotations

import sys

import click

from textback.cli.group import main
from textback.cli.resources import configured_engine


@main.command("start-flow")
@click.argument("flow")
@click.option("--group", "groups", multiple=True, help="Every contact in this group (repeatable).")
@click.option("--to", "numbers", multiple=True, help="A contact's number (repeatable).")
@click.option("--from", "from_", default=None, help="Our number to ask from [the one they texted].")
@click.option("--replace", is_flag=True, help="End a conversation a contact is in, and start.")
def start_flow(
    flow: str, groups: tuple[str, ...], numbers: tuple[str, ...], from_: str | None, replace: bool
) -> None:
    """Start FLOW for contacts: the first question goes out through the outbox, and their
    replies go to the flow as if they had texted its trigger.

    Contacts who opted out, or are in another conversation (unless --replace), are skipped
    with the reason; when every one is, it exits with status 1.
    """
    from textback.channel.e164 import e164
    from textback.channel.rest import rest_client
    from textback.config import Settings
    from textback.core.text import terminal_safe
    from textback.outbound.start_flow import start_flow as start
    from textback.rulesfile.rules import default_rules
    from textback.rulesfile.rules import load_rules
    from textback.storage.profiles import list_profiles
    from textback.storage.store import Store

    if not groups and not numbers:
        raise click.UsageError("give --group NAME or --to NUMBER (both repeatable)")
    settings = Settings.load()
    rules = load_rules(settings.rules_path) if settings.rules_path else default_rules()
    wanted = [e164(number, settings.default_region) for number in numbers]
    if from_:
        from_ = e164(from_, settings.default_region)
    rest_client(settings)  # no credentials: said now, not by the worker for every question
    with configured_engine(create_schema=True) as engine:
        for group in groups:
            members = [person.number for person in list_profiles(engine, group=group)]
            if not members:
                click.echo(f"warning: group {group!r} has no contacts", err=True)
            wanted.extend(members)
        results = start(settings, Store(engine), rules, flow, wanted, from_=from_, replace=replace)
    for result in results:
        if result.skipped is None:
            click.echo(f"started  {result.number}  (run {result.run_id})")
        else:
            click.echo(terminal_safe(f"skipped  {result.number}: {result.skipped}"))
    started = sum(1 for result in results if result.skipped is None)
    skipped = len(results) - started
    if not started:  # nobody: a failure a script should see, the reasons printed above
        click.echo(f"{flow}: started for nobody, skipped {skipped}", err=True)
        sys.exit(1)
    click.echo(f"{flow}: started for {started} contact(s), skipped {skipped}")
