"""``textback replay``: what another rules file or bot would answer, on the stored history."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC
from datetime import datetime
from typing import Any

import click

from textback.cli.group import main
from textback.cli.resources import configured_engine
from textback.core.replay import Change
from textback.core.replay import Difference
from textback.core.replay import Exchange
from textback.core.text import terminal_safe
from textback.errors import ConfigError


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r}: give an ISO 8601 date or time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _flow_of(source: str) -> str | None:
    parts = source.split(" ")
    return parts[1] if len(parts) > 1 and parts[0] == "flow" else None


def _record(difference: Difference) -> dict[str, Any]:
    old = difference.old
    return {
        "sid": old.msg.sid,
        "received_at": old.received_at.isoformat(),
        "from": old.msg.from_,
        "to": old.msg.to,
        "body": old.msg.body,
        "change": difference.change.value,
        "old": {"text": old.text, "media": list(old.media), "source": old.source},
        "new": {
            "text": difference.text,
            "media": list(difference.media),
            "source": difference.source,
        },
    }


def _shown(text: str, media: tuple[str, ...]) -> str:
    shown = text.replace("\n", " / ") if text else "(no reply)"
    return shown + (f" [+{len(media)} media]" if media else "")


@main.command()
@click.option("--rules", "rules_path", default=None, help="The rules file to try [TEXTBACK_RULES].")
@click.option(
    "--bot", "bot_path", default=None, help="The Bot to try, module:attribute [TEXTBACK_BOT]."
)
@click.option("--since", default=None, help="Only messages received at or after this ISO time.")
@click.option("--until", default=None, help="Only messages received before this ISO time.")
@click.option("--contact", default=None, help="Only this contact's messages (E.164).")
@click.option(
    "--flow", default=None, help="Only messages a flow of this name answered, then or now."
)
@click.option("--ignore-source", is_flag=True, help="A reply from another rule is no difference.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def replay(
    rules_path: str | None,
    bot_path: str | None,
    since: str | None,
    until: str | None,
    contact: str | None,
    flow: str | None,
    ignore_source: bool,
    as_json: bool,
) -> None:
    """Answer the stored messages again with other rules; print what would differ.

    Nothing is sent and the database is not changed. Each contact's messages are replayed in
    order from the first one stored, so conversations follow the new rules. Exit status 1 when
    any answer differs, so it can guard a deploy.
    """
    from textback.app import import_bot
    from textback.config import Settings
    from textback.core.bot import Bot
    from textback.core.replay import replay as decide_again
    from textback.queries.history import exchanges
    from textback.rulesfile.rules import default_rules
    from textback.rulesfile.rules import load_rules
    from textback.service import carrier_of
    from textback.storage.profiles import list_profiles

    settings = Settings.load()
    path = rules_path or (str(settings.rules_path) if settings.rules_path else None)
    rules = load_rules(path) if path else default_rules()
    bot_name = bot_path or settings.bot_path
    bot = import_bot(bot_name) if bot_name else Bot()
    start, end = _moment(since, "--since"), _moment(until, "--until")

    def reported(exchange: Exchange) -> bool:
        at = exchange.received_at
        return (start is None or at >= start) and (end is None or at < end)

    replayed = 0
    differences: list[Difference] = []
    with configured_engine() as engine:
        profiles = None
        if rules.wants_contact or bot.wants_contact:
            profiles = {person.number: person for person in list_profiles(engine)}
        for old, difference in decide_again(
            exchanges(engine, contact=contact),
            bot=bot,
            rules=rules,
            report=reported,
            carrier=carrier_of(settings),
            profiles=profiles,
        ):
            new_source = difference.source if difference is not None else old.source
            if flow is not None and flow not in (_flow_of(old.source), _flow_of(new_source)):
                continue
            replayed += 1
            if difference is None or (ignore_source and difference.change is Change.SOURCE):
                continue
            differences.append(difference)
    counts = Counter(difference.change.value for difference in differences)
    if as_json:
        document = {
            "rules": rules.path,
            "replayed": replayed,
            "differ": len(differences),
            "counts": dict(counts),
            "differences": [_record(difference) for difference in differences],
        }
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        for difference in differences:
            old = difference.old
            stamp = old.received_at.strftime("%Y-%m-%d %H:%M:%S")
            click.echo(
                terminal_safe(
                    f"{stamp} {old.msg.from_} -> {old.msg.body!r}: {difference.change.value}"
                )
            )
            click.echo(terminal_safe(f"  was: {_shown(old.text, old.media)}  ({old.source})"))
            click.echo(
                terminal_safe(
                    f"  now: {_shown(difference.text, difference.media)}  ({difference.source})"
                )
            )
        summary = ", ".join(f"{count} {change}" for change, count in sorted(counts.items()))
        click.echo(
            f"{replayed} message(s) replayed against {rules.path}: "
            + (
                f"{len(differences)} answered differently ({summary})"
                if differences
                else "no differences"
            )
        )
    sys.exit(1 if differences else 0)
