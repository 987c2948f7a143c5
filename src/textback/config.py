"""Settings: defaults, then the environment, then what create_app(config=...) passes.

Every setting is named after its environment variable, so ``create_app(config={"TWILIO_AUTH_TOKEN":
"..."})`` and ``export TWILIO_AUTH_TOKEN=...`` mean the same thing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from tempfile import NamedTemporaryFile
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from werkzeug.security import generate_password_hash

from textback.errors import ConfigError

log = logging.getLogger(__name__)

DEVELOPMENT = "development"
PRODUCTION = "production"
DEV_TOKEN_FILE = "dev-token"
SECRET_KEY_FILE = "secret-key"
DATABASE_LIMITER_STORAGE = "database"
MAX_BODY_BYTES = 64 * 1024
PASSWORD_HASH_METHODS = ("scrypt:", "pbkdf2:")
# Who answers STOP, START and HELP: Twilio's own opt-out handling (its default on long codes
# and toll-free numbers), or textback (a short code outside a Messaging Service, where Twilio
# answers nothing).
CARRIER_REPLIES = ("twilio", "textback")
MAX_SENDER_NAME = 40
MISSING_TOKEN = (
    "TWILIO_AUTH_TOKEN is not set: in production textback checks every webhook's signature "
    "with it. Set it (Twilio console > Account > API keys & tokens); use `textback run` for a "
    "development server with a local token; or set TEXTBACK_SIGNATURE_VALIDATION=off to accept "
    "unsigned requests (not recommended)."
)


@dataclass(frozen=True)
class Settings:
    """Everything textback reads from its environment, validated."""

    mode: str = PRODUCTION
    auth_tokens: tuple[str, ...] = ()
    dev_token: bool = False
    signature_validation: bool = True
    public_url: str | None = None
    trusted_proxies: int = 0
    rules_path: Path | None = None
    database_url: str = ""
    instance_path: Path = Path("instance")
    account_sid: str | None = None
    api_key_sid: str | None = None
    api_key_secret: str | None = None
    api_base_url: str = "https://api.twilio.com"
    queue_url: str = ""
    send_rate: float = 1.0
    timezone: str = "UTC"
    outbox_stale_after: float = 300.0
    default_region: str = "US"
    admin_password_hash: str | None = None
    admin_password_key: str | None = None
    limiter_storage: str = DATABASE_LIMITER_STORAGE
    phone_enabled: bool = False
    secret_key: str = ""
    bot_path: str | None = None
    metrics_enabled: bool = True
    metrics_token: str | None = None
    carrier_replies: str = "twilio"
    sender_name: str | None = None
    # broadcasts: quiet hours as (start, end) minutes after midnight, contacts' local time
    quiet_hours: tuple[int, int] | None = None
    # The outage journal (docs/outage.md)
    outage_reply: str = ""

    @property
    def development(self) -> bool:
        return self.mode == DEVELOPMENT

    def require_token(self) -> None:
        """Refuse to serve webhooks with nothing to check their signatures against."""
        if not self.auth_tokens and self.signature_validation:
            raise ConfigError(MISSING_TOKEN)

    @property
    def signing_token(self) -> str | None:
        """The token our own tools sign with: the primary (or development) token."""
        return self.auth_tokens[0] if self.auth_tokens else None

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, object] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Settings from the environment and ``overrides``; raises ConfigError when unusable."""
        values: dict[str, str] = dict(os.environ if environ is None else environ)
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = str(value)
        return _build(values)


def _flag(values: Mapping[str, str], name: str, default: bool) -> bool:
    raw = values.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "on", "true", "yes"):
        return True
    if lowered in ("0", "off", "false", "no"):
        return False
    raise ConfigError(f"{name}={raw!r}: use on or off")


def _mode(values: Mapping[str, str]) -> str:
    mode = values.get("TEXTBACK_MODE", "").strip().lower()
    if not mode:
        # `flask run` (and so `flask --app textback run`) is a development server.
        return DEVELOPMENT if values.get("FLASK_RUN_FROM_CLI") == "true" else PRODUCTION
    if mode not in (DEVELOPMENT, PRODUCTION):
        raise ConfigError(f"TEXTBACK_MODE={mode!r}: use development or production")
    return mode


def _public_url(values: Mapping[str, str]) -> str | None:
    url = values.get("TEXTBACK_PUBLIC_URL", "").strip()
    if not url:
        return None
    if not url.startswith(("https://", "http://")) or "?" in url or "#" in url:
        raise ConfigError(
            f"TEXTBACK_PUBLIC_URL={url!r}: give the scheme and host Twilio calls, "
            "like https://abc.ngrok.app (textback adds the path and query)"
        )
    return url.rstrip("/")


def _carrier_replies(values: Mapping[str, str]) -> str:
    raw = values.get("TEXTBACK_CARRIER_REPLIES", "").strip().lower() or CARRIER_REPLIES[0]
    if raw not in CARRIER_REPLIES:
        raise ConfigError(
            f"TEXTBACK_CARRIER_REPLIES={raw!r}: use twilio (Twilio answers STOP, START and HELP: "
            "long codes, toll-free numbers, Messaging Services) or textback (textback answers "
            "them: a short code outside a Messaging Service)"
        )
    return raw


def _sender_name(values: Mapping[str, str]) -> str | None:
    name = " ".join(values.get("TEXTBACK_SENDER_NAME", "").split())
    if not name:
        return None
    if len(name) > MAX_SENDER_NAME or not name.isprintable():
        raise ConfigError(
            f"TEXTBACK_SENDER_NAME={name!r}: your business's name as contacts know it, "
            f"at most {MAX_SENDER_NAME} printable characters"
        )
    return name


def _region(values: Mapping[str, str]) -> str:
    """TEXTBACK_DEFAULT_REGION: the country a number typed without ``+`` is read in."""
    region = values.get("TEXTBACK_DEFAULT_REGION", "").strip().upper()
    if not region:
        return "US"
    import phonenumbers  # only when set: the region list is all config needs of it

    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            f"TEXTBACK_DEFAULT_REGION={region!r}: give a two-letter region code, like US or GB"
        )
    return region


def dev_token(instance_path: Path) -> str:
    """The development token kept in the instance folder, created on first use."""
    return _instance_file(instance_path / DEV_TOKEN_FILE, lambda: secrets.token_hex(16))


def _instance_file(path: Path, make: Callable[[], str]) -> str:
    """The value kept in ``path``, made with ``make`` and written there if there is none.

    Several workers start at once, so the file appears whole or not at all: the value is
    written to a temporary file that is then linked into place, which fails if another
    process got there first (its value is then the one everybody uses). An empty file is
    refused rather than used as a key.
    """
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        with NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.") as handle:
            handle.write(make() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: theirs
                os.link(handle.name, path)
        value = path.read_text().strip()
    if not value:
        raise ConfigError(f"{path} is empty: delete it (a new one is made) or set its value")
    return value


def _build(values: Mapping[str, str]) -> Settings:
    mode = _mode(values)
    instance_path = Path(values.get("TEXTBACK_INSTANCE") or "instance").resolve()
    validation = _flag(values, "TEXTBACK_SIGNATURE_VALIDATION", True)
    tokens = tuple(
        token
        for token in (
            values.get("TWILIO_AUTH_TOKEN", "").strip(),
            values.get("TWILIO_AUTH_TOKEN_SECONDARY", "").strip(),
        )
        if token
    )
    is_dev_token = False
    if not tokens and mode == DEVELOPMENT:
        tokens = (dev_token(instance_path),)
        is_dev_token = True
    try:
        proxies = int(values.get("TEXTBACK_TRUSTED_PROXIES", "0") or 0)
    except ValueError:
        raise ConfigError("TEXTBACK_TRUSTED_PROXIES must be a whole number (default 0)") from None
    if proxies < 0:
        raise ConfigError("TEXTBACK_TRUSTED_PROXIES must not be negative")
    rules = values.get("TEXTBACK_RULES", "").strip()
    rules_path = Path(rules) if rules else None
    if rules_path is None and Path("textback.toml").is_file():
        rules_path = Path("textback.toml")
    database_url = values.get("DATABASE_URL", "").strip() or (
        f"sqlite:///{instance_path / 'textback.db'}"
    )
    secret_key = values.get("TEXTBACK_SECRET_KEY", "").strip() or _instance_file(
        instance_path / SECRET_KEY_FILE, lambda: secrets.token_hex(32)
    )
    admin_password = values.get("TEXTBACK_ADMIN_PASSWORD", "")
    return Settings(
        mode=mode,
        auth_tokens=tokens,
        dev_token=is_dev_token,
        signature_validation=validation,
        public_url=_public_url(values),
        trusted_proxies=proxies,
        rules_path=rules_path,
        database_url=database_url,
        instance_path=instance_path,
        account_sid=values.get("TWILIO_ACCOUNT_SID") or None,
        api_key_sid=values.get("TWILIO_API_KEY") or None,
        api_key_secret=values.get("TWILIO_API_SECRET") or None,
        api_base_url=(values.get("TWILIO_API_BASE_URL") or "https://api.twilio.com").rstrip("/"),
        queue_url=values.get("TEXTBACK_QUEUE_URL", "").strip()
        or f"sqlite:///{instance_path / 'queue.db'}",
        send_rate=_positive(values, "TEXTBACK_SEND_RATE", 1.0),
        timezone=_timezone(values),
        outbox_stale_after=_positive(values, "TEXTBACK_OUTBOX_STALE_AFTER", 300.0),
        default_region=_region(values),
        admin_password_hash=admin_password_hash(admin_password),
        admin_password_key=admin_password_key(admin_password, secret_key),
        limiter_storage=_limiter_storage(values),
        phone_enabled=_flag(values, "TEXTBACK_PHONE", mode == DEVELOPMENT),
        secret_key=secret_key,
        bot_path=_bot_path(values),
        metrics_enabled=_flag(values, "TEXTBACK_METRICS", True),
        metrics_token=values.get("TEXTBACK_METRICS_TOKEN", "").strip() or None,
        carrier_replies=_carrier_replies(values),
        sender_name=_sender_name(values),
        quiet_hours=_quiet_hours(values),
        # The outage journal (docs/outage.md)
        outage_reply=_outage_reply(values),
    )


def _positive(values: Mapping[str, str], name: str, default: float) -> float:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        number = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: give a number, like {default:g}") from None
    if not number > 0 or number == float("inf"):
        raise ConfigError(f"{name}={raw!r}: give a number above 0, like {default:g}")
    return number


def _timezone(values: Mapping[str, str]) -> str:
    """TEXTBACK_TIMEZONE: the IANA zone that times without an offset (``send --at``) are in."""
    name = values.get("TEXTBACK_TIMEZONE", "").strip() or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"TEXTBACK_TIMEZONE={name!r}: give an IANA time zone, like Europe/Berlin or UTC"
        ) from None
    return name


def _bot_path(values: Mapping[str, str]) -> str | None:
    """TEXTBACK_BOT, else ``bot:bot`` when ``bot.py`` is in this folder (as ``textback init``
    writes it), the way ``textback.toml`` is found and ``flask`` finds ``app.py``."""
    named = values.get("TEXTBACK_BOT", "").strip()
    if named:
        return named
    return "bot:bot" if Path("bot.py").is_file() else None


def admin_password_hash(value: str) -> str | None:
    """TEXTBACK_ADMIN_PASSWORD as a werkzeug hash: kept if already one, else hashed now.

    An already-hashed value (``scrypt:...``, ``pbkdf2:...``, from ``textback hash-password``)
    keeps the plain password out of the environment.
    """
    if not value.strip():
        return None
    if value.strip().startswith(PASSWORD_HASH_METHODS):
        return value.strip()
    return generate_password_hash(value)


def admin_password_key(value: str, secret_key: str) -> str | None:
    """What admin logins are bound to: the same on every worker and server, new with the password.

    Each worker hashes a plain password with its own random salt, so the hash cannot be it.
    An HMAC of the configured value (plain or hashed) under the session-signing key is the same
    wherever the settings are, changes when the password does, and tells nobody who reads the
    database anything about the password.
    """
    if not value.strip():
        return None
    message = b"textback admin password:" + value.strip().encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def _limiter_storage(values: Mapping[str, str]) -> str:
    storage = values.get("TEXTBACK_LIMITER_STORAGE", "").strip() or DATABASE_LIMITER_STORAGE
    if storage != DATABASE_LIMITER_STORAGE and "://" not in storage:
        raise ConfigError(
            f"TEXTBACK_LIMITER_STORAGE={storage!r}: use {DATABASE_LIMITER_STORAGE} (the default) "
            "or a storage URI such as redis://127.0.0.1:6379"
        )
    return storage


def _quiet_hours(values: Mapping[str, str]) -> tuple[int, int] | None:
    """TEXTBACK_QUIET_HOURS, like ``21:00-08:00``: when broadcasts wait (each contact's own
    time zone); empty for none."""
    raw = values.get("TEXTBACK_QUIET_HOURS", "").strip()
    if not raw:
        return None
    found = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)", raw)
    if found is None or found.group(1, 2) == found.group(3, 4):
        raise ConfigError(
            f"TEXTBACK_QUIET_HOURS={raw!r}: give a start and an end, like 21:00-08:00 "
            "(in each contact's time zone), or leave it empty for none"
        )
    hour, minute, end_hour, end_minute = (int(part) for part in found.groups())
    return hour * 60 + minute, end_hour * 60 + end_minute


# The outage journal (docs/outage.md)
MAX_OUTAGE_REPLY = 320  # two SMS segments: an acknowledgement, not a message of its own


def _outage_reply(values: Mapping[str, str]) -> str:
    """TEXTBACK_OUTAGE_REPLY: what a message is answered with while the database is down."""
    text = values.get("TEXTBACK_OUTAGE_REPLY", "").strip()
    if len(text) > MAX_OUTAGE_REPLY:
        raise ConfigError(
            f"TEXTBACK_OUTAGE_REPLY is {len(text)} characters: keep it to {MAX_OUTAGE_REPLY} "
            "(a short acknowledgement; the real reply follows when the database is back)"
        )
    return text
