"""Settings: development token, production refusals, explicit opt-outs of safety."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from textback import create_app
from textback.config import Settings
from textback.errors import ConfigError


def test_development_token_is_created_once_and_kept(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    first = Settings.load(
        {"TEXTBACK_MODE": "development", "TEXTBACK_INSTANCE": str(instance)}, environ={}
    )
    second = Settings.load(
        {"TEXTBACK_MODE": "development", "TEXTBACK_INSTANCE": str(instance)}, environ={}
    )
    assert first.dev_token and first.auth_tokens == second.auth_tokens
    token_file = instance / "dev-token"
    assert token_file.read_text().strip() == first.auth_tokens[0]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(first.auth_tokens[0]) >= 32


def test_configured_token_wins_over_development_token(tmp_path: Path) -> None:
    settings = Settings.load(
        {
            "TEXTBACK_MODE": "development",
            "TWILIO_AUTH_TOKEN": "real",
            "TEXTBACK_INSTANCE": str(tmp_path),
        },
        environ={},
    )
    assert settings.auth_tokens == ("real",) and not settings.dev_token
    assert not (tmp_path / "dev-token").exists()


def test_production_without_token_refuses(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN is not set"):
        create_app({"TEXTBACK_INSTANCE": str(tmp_path), "TEXTBACK_MODE": "production"})


def test_flask_run_is_development(tmp_path: Path) -> None:
    settings = Settings.load(
        {"TEXTBACK_INSTANCE": str(tmp_path)}, environ={"FLASK_RUN_FROM_CLI": "true"}
    )
    assert settings.development and settings.dev_token


def test_validation_off_warns_at_every_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = {
        "TEXTBACK_INSTANCE": str(tmp_path),
        "TEXTBACK_SIGNATURE_VALIDATION": "off",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
    }
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            app = create_app(config)
            app.extensions["textback"].store.engine.dispose()
    warnings = [r for r in caplog.records if "NOT checked" in r.getMessage()]
    assert len(warnings) == 2


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("TEXTBACK_SIGNATURE_VALIDATION", "maybe", "use on or off"),
        ("TEXTBACK_TRUSTED_PROXIES", "two", "whole number"),
        ("TEXTBACK_TRUSTED_PROXIES", "-1", "negative"),
        ("TEXTBACK_MODE", "staging", "development or production"),
        ("TEXTBACK_PUBLIC_URL", "abc.ngrok.app", "scheme and host"),
        ("TEXTBACK_PUBLIC_URL", "https://abc.ngrok.app/twilio?x=1", "scheme and host"),
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, name: str, value: str, problem: str) -> None:
    config = {"TEXTBACK_INSTANCE": str(tmp_path), "TWILIO_AUTH_TOKEN": "t", name: value}
    with pytest.raises(ConfigError, match=problem):
        create_app(config)


def test_public_url_trailing_slash_is_dropped(tmp_path: Path) -> None:
    settings = Settings.load(
        {"TEXTBACK_PUBLIC_URL": "https://abc.ngrok.app/", "TEXTBACK_INSTANCE": str(tmp_path)},
        environ={},
    )
    assert settings.public_url == "https://abc.ngrok.app"


def test_default_database_is_private(tmp_path: Path) -> None:
    app = create_app({"TEXTBACK_INSTANCE": str(tmp_path / "instance"), "TWILIO_AUTH_TOKEN": "t"})
    try:
        app.test_client().get("/")
        for name in ("textback.db", "textback.db-wal", "textback.db-shm"):
            path = tmp_path / "instance" / name
            assert not path.exists() or stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, name
        assert (tmp_path / "instance" / "textback.db").exists()
    finally:
        app.extensions["textback"].store.engine.dispose()
