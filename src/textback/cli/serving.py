"""``textback run`` (development) and ``textback serve`` (production)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import click

from textback.cli.group import main
from textback.cli.resources import build_app
from textback.cli.resources import setup_logging
from textback.logs import log_format


def _banner(line: str) -> None:
    # A person reads the banner; a log shipper reads JSON lines only.
    if log_format() == "json":
        logging.getLogger(__name__).info(line.removeprefix(" * "))
    else:
        click.echo(line, err=True)


if TYPE_CHECKING:
    from flask import Flask

    from textback.outbound.queue import EmbeddedConsumer


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
def run(host: str, port: int) -> None:
    """Run the development server (creates a development token if none is set)."""
    setup_logging()
    os.environ.setdefault("TEXTBACK_MODE", "development")
    app = build_app()
    from textback.reloading import Reloader

    service = app.extensions["textback"]
    Reloader(service, bot_path=service.settings.bot_path).watch()
    base = f"http://{host}:{port}"
    _banner(f" * textback on {base}/ (webhook: POST /twilio)")
    _banner(f" * browser phone: {base}/phone   admin view: {base}/admin")
    consumer = embedded_worker(app)
    from textback.web.journaling import JOURNALING_KEY

    app.extensions[JOURNALING_KEY].start_if_waiting()  # left by an outage: replayed when it can
    try:
        app.run(host=host, port=port, debug=False, use_reloader=False)
    finally:
        if consumer is not None:
            consumer.stop()


def embedded_worker(app: Flask) -> EmbeddedConsumer | None:
    """A worker in this process, so `textback run` alone also sends the outbox's messages and
    runs slow handlers (those of the reloaded bot); None (with a note why) when there are no
    credentials to send with."""
    from textback.channel.credentials import rest_credentials
    from textback.errors import ConfigError

    service = app.extensions["textback"]
    try:
        rest_credentials(service.settings)  # before loading the twilio client (and requests)
        from textback.channel.rest import rest_client

        rest_client(service.settings)
    except ConfigError as exc:
        _banner(f" * not sending the outbox (nor running slow handlers): {exc}")
        return None
    from textback.outbound.queue import POLL_AT_LEAST_EVERY
    from textback.outbound.queue import EmbeddedConsumer

    slow = service.slow  # the webhook's queue: one huey, its tasks and the sweeps registered
    outbox = slow.outbox
    outbox.sweep()
    slow.sweep()
    consumer = EmbeddedConsumer(
        outbox.queue, workers=1, worker_type="thread", max_delay=POLL_AT_LEAST_EVERY
    )
    consumer.start()
    _banner(" * sending the outbox in this process (textback serve needs textback worker)")
    return consumer


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="HOST:PORT to listen on.")
@click.option("--workers", default=None, type=click.IntRange(1), help="Worker processes [CPUs].")
def serve(bind: str, workers: int | None) -> None:
    """Run the production server (granian). Refuses to start without TWILIO_AUTH_TOKEN.

    SIGHUP replaces the workers one at a time without dropping requests; SIGTERM stops
    gracefully.
    """
    from textback import metrics_folder
    from textback.cli.server import Bind
    from textback.cli.server import serve as run_granian
    from textback.config import Settings

    try:
        address = Bind.parse(bind)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bind") from None
    setup_logging()
    os.environ.setdefault("TEXTBACK_MODE", "production")
    # Before anything imports prometheus-client, so every worker counts into one folder.
    metrics_folder.prepare(Settings.load().instance_path / "metrics", wipe=True)
    app = build_app()  # validate configuration, rules and schema once, before forking
    app.extensions["textback"].store.engine.dispose()
    run_granian(bind=address, workers=workers or default_workers())


def default_workers() -> int:
    """One worker per CPU this process may run on: a worker runs Python on one core at a time
    and keeps up to 128 requests in flight on its threads."""
    return max(1, len(os.sched_getaffinity(0)))
