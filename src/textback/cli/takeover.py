"""``textback contacts takeover`` and ``handback``: a person answers a contact, or the bot again.

The same as the admin's "Take over" and "Hand back" (storage/takeover.py, docs/admin.md).
"""

from __future__ import annotations

import click

from textback.cli.contacts import contacts
from textback.cli.resources import configured_engine
from textback.errors import TextbackError

OUR_NUMBER = click.option(
    "--our-number",
    default=None,
    help="Which of our numbers, when the contact has texted more than one.",
)


def _contact(number: str, our_number: str | None) -> tuple[int, str, str]:
    """(contact id, their number, our number), or a one-line error."""
    from textback.channel.e164 import e164
    from textback.config import Settings
    from textback.storage.store import Store
    from textback.storage.takeover import Takeovers

    region = Settings.load().default_region
    number = e164(number, region)
    ours = e164(our_number, region) if our_number else None
    with configured_engine(create_schema=True) as engine:
        found = Takeovers(Store(engine)).contacts_of(number, ours)
    if not found:
        with_ours = f" {ours}" if ours else " any of our numbers"
        raise TextbackError(f"{number} has never texted{with_ours}")
    if len(found) > 1:
        listed = ", ".join(sorted(our for _, our in found))
        raise TextbackError(f"{number} has texted {listed}: give --our-number")
    contact_id, ours = found[0]
    return contact_id, number, ours


@contacts.command("takeover")
@click.argument("number")
@OUR_NUMBER
def takeover(number: str, our_number: str | None) -> None:
    """Answer NUMBER yourself: the bot then only handles STOP, START and HELP."""
    from textback.storage.store import Store
    from textback.storage.takeover import Takeovers

    contact_id, number, ours = _contact(number, our_number)
    with configured_engine() as engine:
        changed = Takeovers(Store(engine)).take_over(contact_id, by="cli")
    if changed:
        click.echo(f"{number} (with {ours}) is taken over: the bot no longer answers them.")
    else:
        click.echo(f"{number} (with {ours}) was taken over already.")


@contacts.command("handback")
@click.argument("number")
@OUR_NUMBER
def handback(number: str, our_number: str | None) -> None:
    """Let the bot answer NUMBER again (their open flow, if any, ends)."""
    from textback.storage.store import Store
    from textback.storage.takeover import Takeovers

    contact_id, number, ours = _contact(number, our_number)
    with configured_engine() as engine:
        handed = Takeovers(Store(engine)).hand_back(contact_id)
    if not handed.was_taken_over:
        click.echo(f"{number} (with {ours}) was not taken over: the bot answers them.")
        return
    ended = " Their open flow was ended." if handed.flow_ended else ""
    click.echo(f"{number} (with {ours}) is handed back: the bot answers them again.{ended}")
