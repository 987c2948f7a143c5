"""The ``textback`` command: run, serve, check, simulate, db, messages, send, hash-password."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
from typing import TypeVar

import click
from flask import Flask
from sqlalchemy import Engine

from textback.core.text import terminal_safe
from textback.errors import TextbackError

F = TypeVar("F", bound=Callable[..., Any])


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def fail(exc: TextbackError) -> None:
    """Our users' mistakes end the command with one clear line, never a traceback."""
    click.echo(f"textback: error: {exc}", err=True)
    sys.exit(1)


@contextlib.contextmanager
def configured_engine(*, create_schema: bool = False) -> Iterator[Engine]:
    """The configured database's engine, disposed afterwards; a bad setting ends the command."""
    from textback.config import Settings
    from textback.storage.engine import ensure_schema
    from textback.storage.engine import make_engine

    try:
        engine = make_engine(Settings.load().database_url)
    except TextbackError as exc:
        fail(exc)
        raise  # unreachable: fail() exits
    try:
        if create_schema:
            ensure_schema(engine)
        yield engine
    except TextbackError as exc:
        fail(exc)
    finally:
        engine.dispose()


def build_app(**config: object) -> Flask:
    from textback.app import create_app

    try:
        return create_app(config)
    except TextbackError as exc:
        fail(exc)
        raise  # unreachable: fail() exits


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textback")
def main() -> None:
    """textback: answer SMS text messages from a rules file or Python, securely."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
def run(host: str, port: int) -> None:
    """Run the development server (creates a development token if none is set)."""
    setup_logging()
    os.environ.setdefault("TEXTBACK_MODE", "development")
    app = build_app()
    base = f"http://{host}:{port}"
    click.echo(f" * textback on {base}/ (webhook: POST /twilio)", err=True)
    click.echo(f" * browser phone: {base}/phone   admin view: {base}/admin", err=True)
    app.run(host=host, port=port, debug=False, use_reloader=False)


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="Address to listen on.")
@click.option("--workers", default=None, type=int, help="Worker processes [2 x CPUs + 1, max 8].")
def serve(bind: str, workers: int | None) -> None:
    """Run the production server (gunicorn). Refuses to start without TWILIO_AUTH_TOKEN."""
    from textback.cli.server import serve as run_gunicorn

    setup_logging()
    os.environ.setdefault("TEXTBACK_MODE", "production")
    app = build_app()  # validate configuration, rules and schema once, before forking
    app.extensions["textback"].store.engine.dispose()
    count = workers or min(2 * (os.cpu_count() or 1) + 1, 8)
    run_gunicorn(bind=bind, workers=count)


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

    try:
        settings = Settings.load()
        rules = load_rules(settings.rules_path) if settings.rules_path else default_rules()
        bot = import_bot(settings.bot_path) if settings.bot_path else None
        engine = make_engine(settings.database_url)
    except TextbackError as exc:
        fail(exc)
        return
    click.echo(f"mode: {settings.mode}")
    if bot is not None:
        click.echo(f"bot: {settings.bot_path}: {len(bot.routes)} handler(s)")
    click.echo(
        f"rules: {rules.path}: {len(rules.routes)} rule(s)"
        + (f", {len(rules.flows)} flow(s)" if rules.flows else "")
        + (", a default reply" if rules.default else "")
    )
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
        click.echo(f"textback: error: cannot open the database: {exc}", err=True)
        sys.exit(1)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    if current == head:
        click.echo(f"database: {url}: up to date ({head})")
    elif current is None:
        click.echo(f"database: {url}: empty; the schema is created on first start")
    else:
        click.echo(
            f"textback: error: database {url} is at {current}, needs {head}: "
            "run `textback db upgrade`",
            err=True,
        )
        sys.exit(1)
    click.echo("ok")


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

    try:
        status, twiml, text = run_simulation(body, from_=from_, to=to, media=media, url=url)
    except TextbackError as exc:
        fail(exc)
        return
    if status != 200:
        click.echo(f"textback: the server answered {status}: {twiml.strip()}", err=True)
        sys.exit(1)
    click.echo(twiml if raw else (text if text else "(no reply)"))


@main.group()
def db() -> None:
    """Database schema: upgrade, current."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations."""
    from textback.storage.engine import upgrade

    setup_logging()
    with configured_engine() as engine:
        upgrade(engine)
    click.echo("database schema is up to date")


@db.command("current")
def db_current() -> None:
    """Print the database's schema revision and the one this textback needs."""
    from textback.storage.engine import current_revision
    from textback.storage.engine import head_revision

    with configured_engine() as engine:
        click.echo(f"current: {current_revision(engine)}  needed: {head_revision(engine)}")


@main.command()
@click.option("--contact", default=None, help="Only messages from or to this number.")
@click.option("--limit", default=50, show_default=True, type=int, help="How many messages.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def messages(contact: str | None, limit: int, as_json: bool) -> None:
    """Print the message log, newest last."""
    from textback.storage.store import Store

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
            click.echo(terminal_safe(f"{stamp} {arrow} {other} {row.status:<10} {row.body}{media}"))


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


@main.command()
@click.argument("to")
@click.argument("body")
@click.option("--from", "from_", default=None, help="Our number to send from [the one TO texted].")
@click.option("--media", multiple=True, help="A picture URL to attach (repeatable).")
def send(to: str, body: str, from_: str | None, media: tuple[str, ...]) -> None:
    """Send BODY to TO through Twilio's REST API and record it in the message log."""
    from textback.config import Settings
    from textback.outbound.send import send_message
    from textback.storage.store import Store

    with configured_engine(create_schema=True) as engine:
        sid, status = send_message(
            Settings.load(), Store(engine), to=to, body=body, from_=from_, media=media
        )
    click.echo(f"{sid} {status}")


@main.command("hash-password")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="The admin password [asked for, not echoed].",
)
def hash_password(password: str) -> None:
    """Print a hash of the admin password, for TEXTBACK_ADMIN_PASSWORD.

    Setting the hash keeps the password itself out of the server's environment.
    """
    from werkzeug.security import generate_password_hash

    if not password.strip():
        raise click.UsageError("the password must not be empty")
    click.echo(generate_password_hash(password))


@main.command("configure-number")
@click.argument("number")
@click.option("--url", default=None, help="This server's public URL [TEXTBACK_PUBLIC_URL].")
@click.option("--tunnel", is_flag=True, help="Use the public URL of the running ngrok agent.")
def configure_number(number: str, url: str | None, tunnel: bool) -> None:
    """Point NUMBER's incoming messages and status callbacks at this server."""
    from textback.channel.numbers import configure_number as point_number
    from textback.channel.tunnel import ngrok_public_url
    from textback.config import Settings

    try:
        settings = Settings.load()
        if tunnel and url:
            raise click.UsageError("give --url or --tunnel, not both")
        base = ngrok_public_url(os.environ) if tunnel else (url or settings.public_url)
        if not base:
            raise click.UsageError(
                "no public URL: give --url https://..., --tunnel, or set TEXTBACK_PUBLIC_URL"
            )
        configured = point_number(settings, number, base)
    except TextbackError as exc:
        fail(exc)
        return
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
