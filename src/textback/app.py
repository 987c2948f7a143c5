"""create_app: the application factory. Nothing in textback builds an app at import time."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from textback.channel.signature import SignatureChecker
from textback.config import MAX_BODY_BYTES
from textback.config import Settings
from textback.core.bot import Bot
from textback.errors import ConfigError
from textback.errors import TextbackError
from textback.rulesfile.rules import default_rules
from textback.rulesfile.rules import load_rules
from textback.service import Textback
from textback.storage.engine import ensure_schema
from textback.storage.engine import make_engine
from textback.storage.store import Store

log = logging.getLogger(__name__)


def create_app(
    config: Mapping[str, object] | None = None,
    *,
    bot: Bot | None = None,
    check_schema: bool = True,
) -> Flask:
    """Build a textback server.

    ``config`` takes the same names as the environment (``TWILIO_AUTH_TOKEN``, ``DATABASE_URL``,
    ``TEXTBACK_RULES``…) and wins over it. ``bot`` adds Python handlers; they are tried before
    the rules file. Raises TextbackError (ConfigError, RulesError, SchemaError) with a message
    fit for the person starting the server.

    ``check_schema=False`` builds the app without touching the database, for the workers of a
    server that checked the schema once before forking: a worker restarted while the database
    is down then boots, and its pool reconnects when the database is back.
    """
    settings = Settings.load(config)
    settings.require_token()
    rules = load_rules(settings.rules_path) if settings.rules_path else default_rules()
    if bot is None and settings.bot_path:
        bot = import_bot(settings.bot_path)
    engine = make_engine(settings.database_url)
    if check_schema:
        try:
            ensure_schema(engine)
        except BaseException:
            engine.dispose()
            raise

    app = Flask("textback", instance_path=str(settings.instance_path))
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,  # the pages' forms; the webhook has its own limit
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not settings.development,
    )
    checker = SignatureChecker(settings.auth_tokens) if settings.signature_validation else None
    service = Textback(settings, bot or Bot(), rules, Store(engine), checker)
    app.extensions["textback"] = service

    from textback.web import admin
    from textback.web import broadcasts
    from textback.web import errors
    from textback.web import health
    from textback.web import metrics
    from textback.web import phone
    from textback.web.journaling import JOURNALING_KEY
    from textback.web.journaling import Journaling
    from textback.web.outage import DatabaseOutage
    from textback.web.webhook import WEBHOOK_KEY
    from textback.web.webhook import WebhookApp

    outage = DatabaseOutage()
    app.extensions[health.OUTAGE_KEY] = outage
    # During a database outage webhooks are kept in a journal and replayed (docs/outage.md).
    journaling = Journaling.for_service(service, app.app_context, outage)
    app.extensions[JOURNALING_KEY] = journaling
    # The webhooks are served without Flask; every other path goes on to Flask's pages.
    webhook = WebhookApp(
        service,
        app.wsgi_app,
        max_body=MAX_BODY_BYTES,
        outage=outage,
        context=app.app_context,
        journaling=journaling,
    )
    app.extensions[WEBHOOK_KEY] = webhook
    app.wsgi_app = webhook  # type: ignore[method-assign]
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )

    errors.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(phone.bp)
    app.register_blueprint(metrics.bp)
    admin.init_app(app)
    app.register_blueprint(broadcasts.bp)
    _announce(settings)
    return app


def import_bot(path: str) -> Bot:
    """The Bot named by ``TEXTBACK_BOT`` (``module:attribute``, like ``mybot:bot``)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"TEXTBACK_BOT={path!r}: write module:attribute, like mybot:bot")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `flask --app`, find modules in this folder
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"TEXTBACK_BOT={path!r}: cannot import {module_name!r}: {exc}") from exc
    except TextbackError as exc:  # a handler registered wrongly says which and why itself
        raise ConfigError(f"TEXTBACK_BOT={path!r}: {exc}") from exc
    except Exception as exc:
        # The user's module failed while importing: one line with where, not a traceback.
        raise ConfigError(
            f"TEXTBACK_BOT={path!r}: importing {module_name!r} failed: {failure(exc)}"
        ) from exc
    if not hasattr(module, attribute):
        raise ConfigError(f"TEXTBACK_BOT={path!r}: {module_name!r} has no {attribute!r}")
    bot = getattr(module, attribute)
    if not isinstance(bot, Bot):
        raise ConfigError(
            f"TEXTBACK_BOT={path!r}: {attribute!r} in {module_name!r} is not a Bot but "
            f"{type(bot).__name__} (make one with {attribute} = Bot())"
        )
    return bot


def failure(exc: Exception) -> str:
    """An exception as one line: its type, message and the line of code that raised it."""
    if isinstance(exc, SyntaxError):  # its message names the file and line already
        return f"SyntaxError: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return f"{type(exc).__name__}: {exc}"
    path = Path(frames[-1].filename)
    with contextlib.suppress(ValueError):  # shown as the user wrote it, relative to here
        path = path.relative_to(Path.cwd())
    where = f" ({path}:{frames[-1].lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def _announce(settings: Settings) -> None:
    if settings.dev_token:
        log.warning(
            "DEVELOPMENT TOKEN: no TWILIO_AUTH_TOKEN is set, so webhooks are checked against a "
            "random local token kept in %s. Only textback's own tools can sign with it; set "
            "TWILIO_AUTH_TOKEN before pointing a real Twilio number here.",
            settings.instance_path / "dev-token",
        )
    if not settings.signature_validation:
        log.warning(
            "TEXTBACK_SIGNATURE_VALIDATION=off: webhook signatures are NOT checked; anyone who "
            "can reach this server can post fake messages."
        )
