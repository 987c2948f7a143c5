"""``textback check``: configuration, rules file and schema, without starting anything."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from textback.cli.group import main

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from textback.config import Settings
    from textback.core.bot import Bot
    from textback.core.ruleset import RuleSet


@main.command()
def check() -> None:
    """Validate the configuration, the rules file and the database schema."""
    from textback.app import import_bot
    from textback.config import MISSING_TOKEN
    from textback.config import Settings
    from textback.rulesfile.rules import default_rules
    from textback.rulesfile.rules import load_rules
    from textback.storage.engine import current_revision
    from textback.storage.engine import head_revision
    from textback.storage.engine import make_engine
    from textback.storage.health import describe

    settings = Settings.load()
    rules = load_rules(settings.rules_path) if settings.rules_path else default_rules()
    bot = import_bot(settings.bot_path) if settings.bot_path else None
    engine = make_engine(settings.database_url)
    click.echo(f"mode: {settings.mode}")
    if bot is not None:
        slow = sum(route.slow for _, route in bot.sources())
        click.echo(
            f"bot: {settings.bot_path}: {len(bot.routes)} handler(s)"
            + (f", {slow} slow (run by `textback worker`)" if slow else "")
        )
    click.echo(
        f"rules: {rules.path}: {len(rules.routes)} rule(s)"
        + (f", {len(rules.flows)} flow(s)" if rules.flows else "")
        + (", a default reply" if rules.default else "")
    )
    for line in carrier_lines(settings, rules, bot):
        click.echo(line)
    if not settings.signature_validation:
        click.echo("warning: TEXTBACK_SIGNATURE_VALIDATION=off: signatures are not checked")
    elif not settings.auth_tokens:
        if os.environ.get("TEXTBACK_MODE", "").lower() == "production":
            click.echo(f"textback: error: {MISSING_TOKEN}", err=True)
            sys.exit(1)
        click.echo(
            "warning: TWILIO_AUTH_TOKEN is not set: `textback run` will use a development "
            "token; `textback serve` will refuse to start"
        )
    elif settings.dev_token:
        click.echo("signatures: checked with the development token (no TWILIO_AUTH_TOKEN set)")
    else:
        click.echo(f"signatures: checked with {len(settings.auth_tokens)} token(s)")
    click.echo(f"public URL: {settings.public_url or '(not set: the request URL is used)'}")
    try:
        current, head = current_revision(engine), head_revision(engine)
    except Exception as exc:
        click.echo(f"textback: error: cannot open the database: {describe(exc)}", err=True)
        sys.exit(1)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    if current == head:
        click.echo(f"database: {url}: up to date ({head})")
        for line in contact_field_lines(rules, engine):
            click.echo(line)
    elif current is None:
        click.echo(f"database: {url}: empty; the schema is created on first start")
        for line in contact_field_lines(rules, None):
            click.echo(line)
    else:
        click.echo(
            f"textback: error: database {url} is at {current}, needs {head}: "
            "run `textback db upgrade`",
            err=True,
        )
        sys.exit(1)
    click.echo("ok")


def contact_field_lines(rules: RuleSet, engine: Engine | None) -> list[str]:
    """Warnings for ``{contact.fields.X}`` no contact has (only when the rules use fields);
    ``engine`` None: the database is empty, so no contact has any."""
    from textback.rulesfile.contact_names import missing_fields
    from textback.storage.profiles import field_names

    if not any(name.startswith("fields.") for _, name in rules.contact_names):
        return []
    known: set[str] = set()
    if engine is not None:
        try:
            known = field_names(engine)
        finally:
            engine.dispose()
    return [f"warning: {text}" for text in missing_fields(rules, known)]


def carrier_lines(settings: Settings, rules: RuleSet, bot: Bot | None) -> list[str]:
    """Who answers STOP, START and HELP, and warnings about texts never sent and keywords that
    never answer (each naming the file and the rule, handler or flow)."""
    from textback.config import PRODUCTION
    from textback.core.ruleset import RuleSet
    from textback.rulesfile.unreachable import unreachable

    lines = []
    optout = rules.optout
    texts = {
        "stop_reply": optout.stop_reply,
        "start_reply": optout.start_reply,
        "help_reply": optout.help_reply,
    }
    if settings.carrier_replies == "twilio":
        lines.append(
            "carrier commands: answered by Twilio, recorded by textback "
            "(TEXTBACK_CARRIER_REPLIES=twilio)"
        )
        unsent = [key for key, text in texts.items() if text is not None]
        if unsent:
            lines.append(
                f"warning: {rules.path}: [optout]: {', '.join(unsent)} never sent: Twilio "
                "answers carrier commands; set its texts in the Messaging Service's Advanced "
                "Opt-Out, or set TEXTBACK_CARRIER_REPLIES=textback"
            )
    else:
        lines.append("carrier commands: answered by textback (TEXTBACK_CARRIER_REPLIES=textback)")
        if settings.mode == PRODUCTION and not settings.sender_name and optout.help_reply is None:
            lines.append(
                "warning: TEXTBACK_SENDER_NAME is not set: the HELP reply names the number, "
                "not who is texting; set it to your business's name"
            )
    # Without a rules file the built-in rules apply; a handler may well replace their "hello".
    analysed = rules if settings.rules_path else RuleSet(optout=optout)
    bot_name = settings.bot_path or "the bot"
    lines.extend(f"warning: {text}" for text in unreachable(analysed, bot, bot_name=bot_name))
    return lines
