"""Contacts in answers, on SQLite and PostgreSQL: templates filled from the stored profile, a
flow's ``save_to`` written with the answer, the admin's contact card and its edit form, and
``textback check`` on fields no contact has (issue 14, contacts)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from textback import Bot
from textback import Inbound
from textback.cli import main
from textback.core.profile import ContactProfile
from textback.rulesfile.rules import load_rules
from textback.storage.engine import ensure_schema
from textback.storage.engine import make_engine
from textback.storage.profiles import field_names
from textback.storage.profiles import list_profiles
from textback.storage.profiles import profile_for
from textback.storage.profiles import save_changes
from textback.storage.profiles import save_profiles
from textback.testing import TEST_TOKEN
from textback.testing import Phone

from .test_admin import FAST_HASH
from .test_admin import contact_id
from .test_admin import log_in
from .test_admin import page
from .test_admin import post

ANN = "+14155550100"
BOB = "+14155550101"
STAMP = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

RULES = """
[[rule]]
keyword = "hi"
reply = "Hi {contact.name|there}! Weather in {contact.fields.city|your town} is fine."

[[rule]]
keyword = "hours"
reply = "9 to 5."

[[flow]]
name = "move"
trigger = "move"
done = "Thanks {contact.name}, {contact.fields.city} it is."

[[flow.step]]
ask = "Your name?"
save_to = "contact.name"

[[flow.step]]
ask = "Where do you live now, {contact.name}?"
save = "town"
save_to = "contact.city"
"""


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    path = tmp_path / "textback.toml"
    path.write_text(RULES)
    return path


@pytest.fixture
def textback_config(database_url: str, rules_path: Path) -> dict[str, object]:
    """The ``phone`` on both databases, answering from RULES."""
    return {"DATABASE_URL": database_url, "TEXTBACK_RULES": str(rules_path)}


def engine_of(app: Flask) -> Any:
    return app.extensions["textback"].store.engine


def test_profiles_load_and_change_in_one_statement_each(database_url: str) -> None:
    engine = make_engine(database_url)
    ensure_schema(engine)
    try:
        assert profile_for(engine, ANN) == ContactProfile(ANN)
        save_profiles(
            engine,
            [ContactProfile(ANN, "Ann", "en", "", {"city": "Oakland"}, ("b", "a"))],
        )
        assert profile_for(engine, ANN) == ContactProfile(
            ANN, "Ann", "en", "", {"city": "Oakland"}, ("a", "b")
        )
        with engine.begin() as connection:
            save_changes(connection, ANN, {"fields.zip": "94607", "name": "Ann Lee"}, STAMP)
            save_changes(connection, BOB, {"fields.city": "Berkeley"}, STAMP)  # a new profile
        assert profile_for(engine, ANN) == ContactProfile(
            ANN, "Ann Lee", "en", "", {"city": "Oakland", "zip": "94607"}, ("a", "b")
        )
        # Created by a flow: the time zone is guessed from the number, as an import does.
        assert profile_for(engine, BOB) == ContactProfile(
            BOB, "", "", "America/Los_Angeles", {"city": "Berkeley"}
        )
        assert field_names(engine) == {"city", "zip"}
    finally:
        engine.dispose()


def test_templates_use_the_stored_profile(phone: Phone, textback_app: Flask) -> None:
    assert phone.send("hi", from_=ANN).text == "Hi there! Weather in your town is fine."
    save_profiles(engine_of(textback_app), [ContactProfile(ANN, "Ann", fields={"city": "Oakland"})])
    assert phone.send("hi", from_=ANN).text == "Hi Ann! Weather in Oakland is fine."
    assert phone.send("hi", from_=BOB).text == "Hi there! Weather in your town is fine."


def test_a_flow_saves_to_the_contact_for_the_export_and_the_next_message(
    phone: Phone, textback_app: Flask, database_url: str, tmp_path: Path
) -> None:
    save_profiles(engine_of(textback_app), [ContactProfile(ANN, fields={"zip": "94607"})])
    assert phone.send("move", from_=ANN).text == "Your name?"
    assert phone.send("Ann Lee", from_=ANN).text == "Where do you live now, Ann Lee?"
    assert phone.send("Berkeley", from_=ANN).text == "Thanks Ann Lee, Berkeley it is."
    assert phone.send("hi", from_=ANN).text == "Hi Ann Lee! Weather in Berkeley is fine."
    env = {"DATABASE_URL": database_url, "TEXTBACK_INSTANCE": str(tmp_path / "instance")}
    exported = CliRunner().invoke(main, ["contacts", "export", "--csv"], env=env).stdout
    assert exported == "phone,name,language,timezone,groups,city,zip\n" + (
        f"{ANN},Ann Lee,,,,Berkeley,94607\n"
    )
    # The run's answers are kept as before, under their save names.
    assert phone.send("move", from_=BOB).text == "Your name?"
    assert phone.send("Bob", from_=BOB).text == "Where do you live now, Bob?"
    people = {p.number: p for p in list_profiles(engine_of(textback_app))}
    assert people[BOB].name == "Bob" and "city" not in people[BOB].fields


def test_handlers_get_the_contact(make_app: Callable[..., Flask]) -> None:
    bot = Bot()

    @bot.on("me")
    def me(msg: Inbound, contact: ContactProfile) -> str:
        return f"{contact.name}: {';'.join(contact.groups)} {dict(contact.fields)}"

    app = make_app(bot)
    save_profiles(engine_of(app), [ContactProfile(ANN, "Ann", fields={"a": "1"}, groups=("x",))])
    assert Phone(app, TEST_TOKEN).send("me", from_=ANN).text == "Ann: x {'a': '1'}"


def test_without_contact_names_the_profile_is_not_read(
    make_app: Callable[..., Flask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "plain.toml"
    rules.write_text('[[rule]]\nkeyword = "hours"\nreply = "9 to 5, {from}."\n')
    app = make_app(TEXTBACK_RULES=str(rules))
    asked: list[bool] = []
    store = app.extensions["textback"].store
    record = store.record_inbound_many

    def spy(
        messages: Sequence[tuple[Inbound, Any]], *, with_profile: bool = False
    ) -> list[tuple[str, bool] | Exception]:
        asked.append(with_profile)
        found: list[tuple[str, bool] | Exception] = record(messages, with_profile=with_profile)
        return found

    monkeypatch.setattr(store, "record_inbound_many", spy)
    assert Phone(app, TEST_TOKEN).send("hours", from_=ANN).text == f"9 to 5, {ANN}."
    rules.write_text('[[rule]]\nkeyword = "hours"\nreply = "9 to 5, {contact.name|you}."\n')
    app.extensions["textback"].rules = load_rules(rules)  # as a reload swaps them
    assert Phone(app, TEST_TOKEN).send("hours", from_=ANN).text == "9 to 5, you."
    assert asked == [False, True]


@pytest.fixture
def admin_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(TEXTBACK_ADMIN_PASSWORD=FAST_HASH)


@pytest.fixture
def admin(admin_app: Flask) -> FlaskClient:
    client = admin_app.test_client()
    assert log_in(client).status_code == 302
    return client


def test_admin_shows_and_edits_the_contact(admin_app: Flask, admin: FlaskClient) -> None:
    phone = Phone(admin_app, TEST_TOKEN)
    phone.send("Hello", from_=ANN)
    phone.send("Hello", from_=BOB)
    save_profiles(
        engine_of(admin_app),
        [ContactProfile(ANN, "Ann <b>Lee</b>", "en", "", {"city": "Oakland"}, ("patients",))],
    )
    listing = page(admin, "/admin")
    assert '<span class="name">Ann &lt;b&gt;Lee&lt;/b&gt;</span>' in listing
    assert "Ann" in page(admin, "/admin?q=ann+%3Cb") and BOB not in page(admin, "/admin?q=ann")
    thread = f"/admin/conversations/{contact_id(admin_app, ANN)}"
    html = page(admin, thread)
    assert '<dd class="name">Ann &lt;b&gt;Lee&lt;/b&gt;</dd>' in html
    assert '<span class="tag">patients</span>' in html and "Oakland" in html

    form: dict[str, Any] = {
        "name": "Ann Lee",
        "language": "es",
        "timezone": "America/Chicago",
        "groups": "patients; volunteers",
        "field_name": ["city", "zip"],
        "field_value": ["", "94607"],  # city emptied: removed; zip added
    }
    response = post(admin, thread + "/profile", form)
    assert "Contact saved." in response.get_data(as_text=True)
    assert profile_for(engine_of(admin_app), ANN) == ContactProfile(
        ANN, "Ann Lee", "es", "America/Chicago", {"zip": "94607"}, ("patients", "volunteers")
    )

    bad = post(admin, thread + "/profile", {**form, "timezone": "Mars/Base"})
    assert "Not saved: time zone &#39;Mars/Base&#39;" in bad.get_data(as_text=True)
    assert profile_for(engine_of(admin_app), ANN).timezone == "America/Chicago"

    # A contact with no profile gets one from the form.
    bob = f"/admin/conversations/{contact_id(admin_app, BOB)}"
    post(admin, bob + "/profile", {"name": "Bob", "field_name": "vip", "field_value": "yes"})
    assert profile_for(engine_of(admin_app), BOB) == ContactProfile(
        BOB, "Bob", fields={"vip": "yes"}
    )


def test_admin_profile_edit_needs_the_csrf_token(admin_app: Flask, admin: FlaskClient) -> None:
    Phone(admin_app, TEST_TOKEN).send("Hello", from_=ANN)
    target = f"/admin/conversations/{contact_id(admin_app, ANN)}/profile"
    response = admin.post(target, data={"name": "Mallory"}, base_url="https://localhost")
    assert response.status_code in (400, 403)
    assert profile_for(engine_of(admin_app), ANN).name == ""


def check(tmp_path: Path, database_url: str, rules: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEXTBACK_", "TWILIO_"))},
        "DATABASE_URL": database_url,
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "TEXTBACK_RULES": str(rules),
    }
    return subprocess.run(
        [sys.executable, "-m", "textback.cli", "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_knows_the_contact_names(tmp_path: Path, database_url: str) -> None:
    engine = make_engine(database_url)
    ensure_schema(engine)
    save_profiles(engine, [ContactProfile(ANN, fields={"city": "Oakland"})])
    engine.dispose()
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\nkeyword = "hi"\nreply = "{contact.name|Hi}, {contact.fields.city} '
        '{contact.fields.zip|}"\n'
    )
    done = check(tmp_path, database_url, rules)
    assert done.returncode == 0, done.stderr
    assert (
        f"warning: {rules}: rule 1 (keyword 'hi'): no contact has the field 'zip': "
        "{contact.fields.zip} stays empty (or its default) until an import or a flow's "
        "save_to gives it"
    ) in done.stdout
    assert "'city'" not in done.stdout

    rules.write_text('[[rule]]\nkeyword = "hi"\nreply = "Hi {contact.nmae}"\n')
    done = check(tmp_path, database_url, rules)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"textback: error: {rules}: rule 1 (keyword 'hi'): unknown name {{contact.nmae}} in "
        "'Hi {contact.nmae}'; a contact has {contact.name}, {contact.language}, "
        "{contact.timezone}, {contact.phone}, {contact.fields.NAME}"
    )


def test_replay_answers_with_the_profiles(
    phone: Phone, textback_app: Flask, database_url: str, rules_path: Path, tmp_path: Path
) -> None:
    save_profiles(engine_of(textback_app), [ContactProfile(ANN, "Ann")])
    assert phone.send("hi", from_=ANN).text.startswith("Hi Ann!")
    env = {
        "DATABASE_URL": database_url,
        "TEXTBACK_INSTANCE": str(tmp_path / "instance"),
        "TEXTBACK_RULES": str(rules_path),
    }
    result = CliRunner().invoke(main, ["replay"], env=env)
    assert (result.exit_code, result.stdout) == (
        0,
        f"1 message(s) replayed against {rules_path}: no differences\n",
    )


def test_check_warns_on_an_empty_database_too(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nkeyword = "hi"\nreply = "In {contact.fields.city|town}?"\n')
    done = check(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}", rules)
    assert done.returncode == 0, done.stderr
    assert ": empty; the schema is created on first start\n" in done.stdout
    assert "no contact has the field 'city'" in done.stdout
