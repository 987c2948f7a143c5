"""``{contact.…}`` in templates, ``save_to`` in flows, and what ``textback check`` says about
them: without a database (issue 14, contacts)."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

import pytest

from textback import Bot
from textback import Inbound
from textback.core.conversation import Conversation
from textback.core.profile import ContactProfile
from textback.core.profile import edited
from textback.core.profile import target
from textback.core.responder import decide
from textback.core.templates import CONTACT
from textback.core.templates import MESSAGE_FIELDS
from textback.core.templates import Template
from textback.core.templates import TemplateError
from textback.errors import RulesError
from textback.errors import TextbackError
from textback.rulesfile.contact_names import missing_fields
from textback.rulesfile.rules import parse_rules

ANN = ContactProfile(
    "+14155550100",
    name="Ann",
    language="es",
    timezone="America/Los_Angeles",
    fields=MappingProxyType({"city": "Oakland"}),
    groups=("patients",),
)
AVAILABLE = MESSAGE_FIELDS | {CONTACT}


def inbound(body: str, from_: str = ANN.number) -> Inbound:
    return Inbound(sid="SM" + "0" * 32, from_=from_, to="+15005550006", body=body)


@pytest.mark.parametrize(
    ("text", "contact", "filled"),
    [
        ("Hi {contact.name}!", ANN, "Hi Ann!"),
        ("Hi {contact.name|there}!", ANN, "Hi Ann!"),
        ("Hi {contact.name|there}!", ContactProfile("+1"), "Hi there!"),
        ("Hi {contact.name|there}!", None, "Hi there!"),
        ("{contact.fields.city|your town}, {body}", ANN, "Oakland, yes"),
        ("{contact.fields.zip|no zip}", ANN, "no zip"),
        (
            "{contact.language} {contact.timezone} {contact.phone}",
            ANN,
            "es America/Los_Angeles +14155550100",
        ),
        ("{{contact.name}} is {contact.name|my friend}", ANN, "{contact.name} is Ann"),
        ("{contact.name|}", ContactProfile("+1"), ""),
        ("{contact.name} [{body:>5}] {body!r}", ANN, "Ann [  yes] 'yes'"),
    ],
)
def test_contact_names_fill_in(text: str, contact: ContactProfile | None, filled: str) -> None:
    template = Template(text, AVAILABLE)
    assert template.uses_contact
    assert template.fill({"body": "yes"}, contact) == filled


def test_a_template_without_contact_names_does_not_use_the_contact() -> None:
    template = Template("Order {body} is on its way.", AVAILABLE)
    assert not template.uses_contact and template.contact_fields == frozenset()
    assert template.fill({"body": "5"}) == "Order 5 is on its way."
    assert Template("{contact.fields.city}{contact.name}", AVAILABLE).contact_fields == {"city"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "{contact.nmae}",
            "unknown name {contact.nmae} in '{contact.nmae}'; a contact has "
            "{contact.name}, {contact.language}, {contact.timezone}, {contact.phone}, "
            "{contact.fields.NAME}",
        ),
        ("{contact}", "name one of the contact's values, like {contact.name}"),
        ("{contact.fields}", "a field is named like {contact.fields.city}"),
        ("{contact.fields.City}", "a field is named like {contact.fields.city}"),
        ("{contact.fields.a.b}", "a field is named like {contact.fields.city}"),
        ("{body|nothing}", "a default after | is for the contact's names only"),
        ("{contact.name!r}", "a contact's name takes no ! or :"),
        ("{contact.name:>9}", "a contact's name takes no ! or :"),
        ("{contact.name} {body:{to}}", "nested fields are not supported"),
        ("{contact.name|Dear: friend}", "a contact's name takes no ! or :"),
        (
            "{nme}",
            "unknown name {nme} in '{nme}'; available: {body}, {from}, {to}, "
            "{contact.name}, {contact.language}",
        ),
    ],
)
def test_contact_names_are_checked_when_loaded(text: str, error: str) -> None:
    with pytest.raises(TemplateError) as caught:
        Template(text, AVAILABLE)
    assert error in str(caught.value)


def test_contact_names_only_where_the_contact_is_available() -> None:
    with pytest.raises(TemplateError, match=r"unknown name \{contact.name\}"):
        Template("{contact.name}", MESSAGE_FIELDS)
    # A pattern's group called "contact" is a plain name there.
    assert Template("{contact}", MESSAGE_FIELDS | {"contact"}).fill({"contact": "x"}) == "x"


RULES: dict[str, Any] = {
    "rule": [
        {"keyword": "hi", "reply": "Hi {contact.name|there}, still in {contact.fields.city}?"},
        {"keyword": "hours", "reply": "9 to 5."},
    ],
    "default": {"reply": "Sorry {contact.name|friend}."},
    "flow": [
        {
            "name": "move",
            "trigger": "move",
            "done": "Thanks {contact.name}, {contact.fields.city} it is.",
            "step": [
                {"ask": "Your name, {contact.name|stranger}?", "save_to": "contact.name"},
                {"ask": "New city, {name}?", "save": "town", "save_to": "contact.city"},
                {"ask": "Language code?", "save_to": "contact.language"},
                {"ask": "Zip for {contact.fields.zip|you}?", "save": "zip"},
            ],
        }
    ],
}


def test_rules_answer_with_the_contact() -> None:
    rules = parse_rules(RULES, "t.toml")
    assert rules.wants_contact
    bot = Bot()

    def answer(body: str, contact: ContactProfile | None) -> str:
        return decide(
            inbound(body), opted_out=False, conversation=None, bot=bot, rules=rules, contact=contact
        ).reply.text

    assert answer("hi", ANN) == "Hi Ann, still in Oakland?"
    assert answer("hi", None) == "Hi there, still in ?"
    assert answer("what", ANN) == "Sorry Ann."
    assert answer("move", ContactProfile(ANN.number)) == "Your name, stranger?"
    assert not parse_rules({"rule": RULES["rule"][1:]}, "t.toml").wants_contact


def test_a_flow_saves_answers_to_the_contact_and_asks_with_them() -> None:
    rules = parse_rules(RULES, "t.toml")
    (flow,) = rules.flows
    assert [(s.save, s.save_to) for s in flow.steps] == [
        ("name", "name"),
        ("town", "fields.city"),
        ("language", "language"),
        ("zip", None),
    ]
    bot, contact = Bot(), ContactProfile(ANN.number)
    conversation: Conversation | None = None
    changes: dict[str, str] = {}
    replies = []
    for body in ("move", "Bea", "Berkeley", "Spanish", "es", "94701"):
        decision = decide(
            inbound(body),
            opted_out=False,
            conversation=conversation,
            bot=bot,
            rules=rules,
            contact=contact,
        )
        replies.append(decision.reply.text)
        changes.update(decision.contact_changes or {})
        contact = contact.changed(decision.contact_changes or {})  # as the store keeps them
        conversation = decision.conversation
    assert replies == [
        "Your name, stranger?",
        "New city, Bea?",
        "Language code?",
        "Language code?",  # "Spanish" is not a language code: asked again
        "Zip for you?",
        "Thanks Bea, Berkeley it is.",
    ]
    assert changes == {"name": "Bea", "fields.city": "Berkeley", "language": "es"}
    assert contact.fields == {"city": "Berkeley"} and contact.name == "Bea"


@pytest.mark.parametrize(
    ("step", "error"),
    [
        ({"ask": "?", "save_to": "city"}, "save_to = 'city': write contact.NAME"),
        ({"ask": "?", "save_to": "contact.phone"}, "a flow cannot change the contact's phone"),
        ({"ask": "?", "save_to": "contact.groups"}, "cannot change the contact's groups"),
        ({"ask": "?", "save_to": "contact.City"}, "a field name is lowercase letters"),
        ({"ask": "?"}, "missing key 'save'"),
        ({"ask": "{contact.nmae}?", "save": "x"}, "unknown name {contact.nmae}"),
        ({"ask": "?", "save_to": "contact.from"}, "save = 'from' is taken by the message's own"),
    ],
)
def test_bad_save_to_is_refused_naming_the_step(step: dict[str, str], error: str) -> None:
    data = {"flow": [{"name": "f", "trigger": "go", "step": [step]}]}
    with pytest.raises(RulesError) as caught:
        parse_rules(data, "t.toml")
    assert str(caught.value).startswith("t.toml: flow 1 ('f'), step 1: ")
    assert error in str(caught.value)


def test_save_to_names() -> None:
    assert target("contact.fields.city") == target("contact.city") == "fields.city"
    assert target("contact.timezone") == "timezone"
    # A custom field that shares a name with the profile's own is written in full.
    assert target("contact.fields.name") == "fields.name"


def test_check_warns_about_fields_no_contact_has() -> None:
    rules = parse_rules(RULES, "t.toml")
    assert missing_fields(rules, {"city"}) == [
        "t.toml: flow 1 ('move'), step 4: no contact has the field 'zip': "
        "{contact.fields.zip} stays empty (or its default) until an import or a flow's "
        "save_to gives it"
    ]
    # A field the flow saves is one contacts will have: no warning for city, even unimported.
    assert [w.split(":")[1] for w in missing_fields(rules, set())] == [" flow 1 ('move'), step 4"]


def test_handlers_may_ask_for_the_contact() -> None:
    bot = Bot()

    @bot.on("who")
    def who(msg: Inbound, contact: ContactProfile) -> str:
        return f"{contact.name or contact.number} in {', '.join(contact.groups)}"

    assert bot.wants_contact
    assert bot.dispatch(inbound("who"), contact=ANN).reply.text == "Ann in patients"
    # Without a loaded profile (a unit test calling dispatch): the number alone.
    assert bot.dispatch(inbound("who")).reply.text == f"{ANN.number} in "
    assert not Bot().wants_contact


def test_an_edited_profile_is_checked() -> None:
    person = edited(
        ANN.number,
        name=" Ann Lee ",
        language="en",
        timezone="",
        groups="patients; volunteers;patients",
        fields=[("city", "Oakland"), ("zip", ""), ("", "")],
    )
    assert person == ContactProfile(
        ANN.number, "Ann Lee", "en", "", {"city": "Oakland"}, ("patients", "volunteers")
    )
    bads: list[tuple[dict[str, Any], str]] = [
        ({"language": "english!"}, "language 'english!'"),
        ({"timezone": "Mars/Base"}, "time zone 'Mars/Base'"),
        ({"groups": "a/b"}, "group 'a/b'"),
        ({"name": "x" * 201}, "at most 200 characters"),
        ({"fields": [("City", "x")]}, "field 'City'"),
    ]
    for bad, error in bads:
        values: dict[str, Any] = {
            "name": "",
            "language": "",
            "timezone": "",
            "groups": "",
            "fields": [],
            **bad,
        }
        with pytest.raises(TextbackError, match=re.escape(error)):
            edited(ANN.number, **values)
