"""responder.decide with flows: plain values in, a Decision out, no database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from textback import END
from textback import Bot
from textback import Conversation
from textback import Reply
from textback.core.message import Inbound
from textback.core.optout import START_REPLY
from textback.core.optout import STOP_REPLY
from textback.core.optout import Carrier
from textback.core.responder import decide
from textback.core.ruleset import RuleSet
from textback.rulesfile.rules import parse_rules

RULES: dict[str, Any] = {
    "rule": [{"keyword": "hours", "reply": "9-5"}],
    "conversations": {"expire_after": "2h", "leave": ["exit", "never mind"]},
    "flow": [
        {
            "name": "signup",
            "trigger": "join",
            "done": "Bye {name} from {zip}.",
            "step": [
                {"ask": "Name?", "save": "name"},
                {"ask": "Zip, {name}?", "save": "zip", "expect": r"^\d{5}$", "retry": "5 digits"},
            ],
        }
    ],
}


def rules(**conversations: str) -> RuleSet:
    return parse_rules({**RULES, "conversations": {**RULES["conversations"], **conversations}}, "t")


def message(body: str) -> Inbound:
    return Inbound(sid="SM1", from_="+15550001111", to="+15559990000", body=body)


def at(step: int, **values: str) -> Conversation:
    return Conversation(f"signup:{step}", dict(values), flow="signup")


def test_trigger_starts_a_run() -> None:
    decision = decide(message("Join"), opted_out=False, conversation=None, bot=Bot(), rules=rules())
    assert decision.reply == Reply("Name?")
    assert decision.conversation == at(1)
    assert decision.ended is None and decision.expire_after == timedelta(hours=2)


def test_answers_advance_retry_and_complete() -> None:
    def step(body: str, conversation: Conversation) -> Any:
        return decide(
            message(body), opted_out=False, conversation=conversation, bot=Bot(), rules=rules()
        )

    second = step("Ann", at(1))
    assert (second.reply.text, second.conversation) == ("Zip, Ann?", at(2, name="Ann"))
    retry = step("1234", at(2, name="Ann"))
    assert (retry.reply.text, retry.conversation) == ("5 digits", at(2, name="Ann"))
    done = step("94107", at(2, name="Ann"))
    assert (done.reply.text, done.conversation, done.ended) == (
        "Bye Ann from 94107.",
        None,
        "completed",
    )
    assert done.ended_values == {"name": "Ann", "zip": "94107"}


def test_the_loaded_conversation_is_not_changed() -> None:
    loaded = at(1)
    decide(message("Ann"), opted_out=False, conversation=loaded, bot=Bot(), rules=rules())
    assert loaded == at(1)


def test_stop_leave_and_keywords() -> None:
    def run(body: str, ruleset: RuleSet) -> Any:
        return decide(message(body), opted_out=False, conversation=at(1), bot=Bot(), rules=ruleset)

    stop = run("STOP", rules())
    assert (stop.ended, stop.opt_out, stop.conversation) == ("stopped", True, None)
    leave = run("Never mind!", rules())
    assert (leave.ended, leave.conversation, leave.source) == ("left", None, "leave")
    assert run("hours", rules()).conversation == at(2, name="hours")
    keyword = run("hours", rules(rule_keywords="leave"))
    assert (keyword.reply.text, keyword.ended, keyword.conversation) == ("9-5", "left", None)
    restart = run("join", rules())
    assert (restart.ended, restart.conversation) == ("left", at(1))


def test_a_run_of_a_removed_flow_is_forgotten() -> None:
    stale = Conversation("gone:1", {}, flow="gone")
    decision = decide(
        message("hours"), opted_out=False, conversation=stale, bot=Bot(), rules=rules()
    )
    assert (decision.reply.text, decision.ended, decision.conversation) == ("9-5", "expired", None)


def test_python_state_end_keeps_the_values() -> None:
    bot = Bot()

    @bot.on(state="size")
    def size(msg: Inbound, conversation: Conversation) -> Reply:
        conversation.values["size"] = msg.body
        return Reply("Thanks", state=END)

    decision = decide(
        message("M"), opted_out=False, conversation=Conversation("size"), bot=bot, rules=rules()
    )
    assert (decision.reply, decision.conversation) == (Reply("Thanks"), None)
    assert (decision.ended, decision.ended_values) == ("ended", {"size": "M"})


def test_carrier_commands_and_who_answers_them() -> None:
    def run(body: str, *, opted_out: bool = False, **carrier: Any) -> tuple[str, str, bool | None]:
        msg = message(body)
        if "optout_type" in carrier:
            msg = Inbound(msg.sid, msg.from_, msg.to, body, params={"OptOutType": "STOP"})
            del carrier["optout_type"]
        decision = decide(
            msg,
            opted_out=opted_out,
            conversation=at(1),
            bot=Bot(),
            rules=rules(),
            carrier=Carrier(**carrier),
        )
        return decision.reply.text, decision.source, decision.opt_out

    assert run("STOP") == ("", "optout stop", True)  # Twilio answers by default
    text, _, _ = run("stop", twilio_answers=False, sender_name="Acme")
    assert text == f"Acme: {STOP_REPLY}"
    assert run("halt", twilio_answers=False, optout_type=True) == (
        "",
        "optout stop (answered by Twilio)",
        True,
    )
    assert run("yes", opted_out=True, twilio_answers=False) == (START_REPLY, "optout start", False)
    assert run("yes") == ("Zip, yes?", "flow signup step 2", None)  # an answer, not a command
    assert run("help", opted_out=True, twilio_answers=False)[0].startswith("Automated replies from")
