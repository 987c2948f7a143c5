"""Flows that branch (issue 14): a step goes on by the answer, and `textback check` refuses a
branch to nowhere and a flow a contact can never finish."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from textback.cli import main
from textback.core import flows
from textback.core.conversation import Conversation
from textback.core.flows import DONE
from textback.core.flows import Flow
from textback.core.message import Inbound
from textback.errors import RulesError
from textback.rulesfile.rules import parse_rules
from textback.rulesfile.unreachable import unreachable
from textback.testing import TEST_TOKEN
from textback.testing import Phone

SURVEY = r"""
[[flow]]
name = "survey"
trigger = "survey"
done = "Thanks, that's all! ({rating}, {better}, {again})"

[[flow.step]]
name = "rate"
ask = "How was the event, 1-5?"
save = "rating"
retry = "Please answer with a number from 1 to 5."

[[flow.step.branch]]
between = [1, 3]
goto = "why"

[[flow.step.branch]]
between = [4, 5]
goto = "again"

[[flow.step]]
name = "why"
ask = "Sorry to hear it. What should we do better?"
save = "better"

[[flow.step]]
name = "again"
ask = "Would you come again? YES or NO"
save = "again"
branch = [
  { keywords = ["yes", "sure"], goto = "done" },
  { pattern = '^no\b', goto = "done" },
]
other = "unsure"

[[flow.step]]
name = "unsure"
ask = "No problem. Any last words?"
save = "last"
"""


def survey(text: str = SURVEY) -> Flow:
    [flow] = parse_rules(tomllib.loads(text), "textback.toml").flows
    return flow


def run(flow: Flow, *answers: str) -> list[str]:
    """The texts the contact gets: the first question, then one per answer."""
    msg = Inbound(sid="SM1", from_="+15550001111", to="+15559990000", body="survey")
    outcome = flows.start(flow, msg)
    texts = [outcome.reply.text]
    for body in answers:
        assert outcome.conversation is not None, "the flow ended before this answer"
        conversation = Conversation(outcome.conversation.state, outcome.values, flow.name)
        outcome = flows.answer(
            flow, conversation, Inbound(sid="SM2", from_=msg.from_, to=msg.to, body=body)
        )
        texts.append(outcome.reply.text)
    return texts


def test_a_low_rating_asks_why() -> None:
    assert run(survey(), "2", "More chairs", "yes") == [
        "How was the event, 1-5?",
        "Sorry to hear it. What should we do better?",
        "Would you come again? YES or NO",
        "Thanks, that's all! (2, More chairs, yes)",
    ]


def test_a_high_rating_skips_why_and_the_skipped_answer_fills_in_empty() -> None:
    assert run(survey(), "5 stars!", "Sure!")[1:] == [
        "Would you come again? YES or NO",
        "Thanks, that's all! (5 stars!, , Sure!)",
    ]


def test_an_answer_no_branch_takes_is_asked_again() -> None:
    assert run(survey(), "9", "great", "")[1:] == [
        "Please answer with a number from 1 to 5.",
        "Please answer with a number from 1 to 5.",
        "Please answer with a number from 1 to 5.",
    ]


def test_a_pattern_branch_and_the_other_fallback() -> None:
    flow = survey()
    assert run(flow, "4", "no way")[-1] == "Thanks, that's all! (4, , no way)"
    assert run(flow, "4", "maybe", "Bye")[-2:] == [
        "No problem. Any last words?",
        "Thanks, that's all! (4, , maybe)",
    ]


def test_branches_resolve_to_step_numbers() -> None:
    rate, why, again, unsure = survey().steps
    assert [branch.goto for branch in rate.branches] == [2, 3]
    assert why.next == 3 and unsure.next == DONE
    assert [branch.goto for branch in again.branches] == [DONE, DONE]
    assert again.other == 4
    assert rate.label(1) == "step 1 ('rate')"


@pytest.mark.parametrize(
    ("answer", "goes"),
    [("1", 2), ("3", 2), ("3.5", None), ("4", 3), ("about 4.5", 3), ("-2", None), ("six", None)],
)
def test_number_ranges(answer: str, goes: int | None) -> None:
    assert survey().steps[0].goes_to(answer) == goes


def test_next_jumps_and_a_loop_with_a_way_out_is_fine() -> None:
    text = """
[[flow]]
name = "quiz"
trigger = "quiz"
done = "Right!"

[[flow.step]]
name = "q"
ask = "2+2?"
save = "answer"
branch = [{ keyword = "4", goto = "done" }]
other = "hint"

[[flow.step]]
name = "hint"
ask = "Hint: it's even. Want to try again?"
save = "hint"
next = "q"
"""
    assert run(survey(text), "5", "ok", "4") == [
        "2+2?",
        "Hint: it's even. Want to try again?",
        "2+2?",
        "Right!",
    ]


def refused(text: str) -> str:
    with pytest.raises(RulesError) as caught:
        parse_rules(tomllib.loads(text), "textback.toml")
    return str(caught.value)


BASE = """
[[flow]]
name = "f"
trigger = "go"

[[flow.step]]
name = "a"
ask = "A?"
save = "a"
"""


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        (
            'branch = [{ keyword = "x", goto = "nowhere" }]',
            "textback.toml: flow 1 ('f'), step 1 ('a'), branch 1: goto = 'nowhere': the flow has "
            "no step named 'nowhere' (named steps: 'a'; 'done' ends the flow)",
        ),
        (
            'next = "b"',
            "textback.toml: flow 1 ('f'), step 1 ('a'): next = 'b': the flow has no step named 'b'",
        ),
        (
            'branch = [{ keyword = "x", goto = "done" }]\nother = "zz"',
            "step 1 ('a'): other = 'zz': the flow has no step named 'zz'",
        ),
        (
            'branch = [{ keyword = "x", pattern = "y", goto = "done" }]',
            "step 1 ('a'), branch 1: a branch needs exactly one of keyword, keywords, pattern, "
            "between (found keyword and pattern)",
        ),
        ('branch = [{ goto = "done" }]', "branch 1: a branch needs exactly one of"),
        ('branch = [{ between = [5, 1], goto = "done" }]', "between = [5, 1]: give the lowest"),
        ('branch = [{ between = [1], goto = "done" }]', "between = [1]: give the lowest"),
        ('branch = [{ pattern = "(", goto = "done" }]', "branch 1: bad pattern '('"),
        (
            'branch = [{ keyword = "x", gto = "done" }]',
            "branch 1: unknown key 'gto' (did you mean 'goto'?)",
        ),
        (
            'next = "done"\nbranch = [{ keyword = "x", goto = "done" }]',
            "next is for a step without branches; with branches, other says",
        ),
        ('other = "done"', "other is for a step with [[flow.step.branch]] tables"),
        ('remind = "Still there?"', "remind needs remind_after, the wait before it is sent"),
        ('remind_after = "2 hours"', "remind_after: bad duration '2 hours'"),
        (
            'remind_after = "2d"',
            "remind_after '2d' is not shorter than the flow's expire_after (24h): the run would "
            "expire first",
        ),
        ('nxt = "a"', "unknown key 'nxt' (did you mean 'next'?)"),
    ],
)
def test_bad_branches_are_refused(step: str, problem: str) -> None:
    assert problem in refused(BASE + step + "\n")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("done", "name = 'done' is taken: goto = 'done' ends the flow"),
        ("two words", "name = 'two words': letters, digits, - and _ only"),
    ],
)
def test_bad_step_names(name: str, problem: str) -> None:
    assert problem in refused(BASE.replace('name = "a"', f'name = "{name}"'))


def test_duplicate_step_names() -> None:
    text = BASE + '\n[[flow.step]]\nname = "a"\nask = "B?"\nsave = "b"\n'
    assert refused(text) == (
        "textback.toml: flow 1 ('f'), step 2 ('a'): name = 'a': an earlier step is named 'a'"
    )


def test_a_loop_without_a_way_out_is_refused() -> None:
    text = BASE + (
        'branch = [{ keyword = "x", goto = "b" }]\n'
        '\n[[flow.step]]\nname = "b"\nask = "B?"\nsave = "b"\nnext = "c"\n'
        '\n[[flow.step]]\nname = "c"\nask = "C?"\nsave = "c"\nnext = "b"\n'
    )
    assert refused(text) == (
        "textback.toml: flow 1 ('f'): a contact can never finish this flow: from step 1 ('a'), "
        "step 2 ('b'), step 3 ('c') every way leads back among them; give one of them a branch, "
        "next or other that goes to 'done' or to a step that ends"
    )


def test_a_step_that_goes_back_to_itself_only_is_refused() -> None:
    text = BASE + 'branch = [{ keyword = "x", goto = "a" }]\n'
    assert "can never finish this flow: from step 1 ('a') every way" in refused(text)


def test_a_step_nothing_leads_to_is_a_check_warning(tmp_path: Path) -> None:
    text = BASE + ('next = "done"\n\n[[flow.step]]\nname = "lost"\nask = "B?"\nsave = "b"\n')
    rules = parse_rules(tomllib.loads(text), "textback.toml")
    assert unreachable(rules) == [
        "textback.toml: flow 1 ('f'), step 2 ('lost'): no step leads here; this step is never asked"
    ]
    (tmp_path / "textback.toml").write_text(text)
    result = CliRunner().invoke(main, ["check"], env={"TEXTBACK_INSTANCE": str(tmp_path / "i")})
    assert result.exit_code == 0, result.output
    assert (
        "warning: textback.toml: flow 1 ('f'), step 2 ('lost'): no step leads here" in result.output
    )


def test_check_refuses_a_branch_to_nowhere(tmp_path: Path) -> None:
    (tmp_path / "textback.toml").write_text(SURVEY.replace('goto = "why"', 'goto = "whyy"'))
    result = CliRunner().invoke(main, ["check"], env={"TEXTBACK_INSTANCE": str(tmp_path / "i")})
    assert result.exit_code == 1
    assert (
        "textback: error: textback.toml: flow 1 ('survey'), step 1 ('rate'), branch 1: "
        "goto = 'whyy': the flow has no step named 'whyy' (named steps: 'rate', 'why', 'again', "
        "'unsure'; 'done' ends the flow)"
    ) in result.output


def test_check_accepts_the_survey(tmp_path: Path) -> None:
    (tmp_path / "textback.toml").write_text(SURVEY)
    result = CliRunner().invoke(main, ["check"], env={"TEXTBACK_INSTANCE": str(tmp_path / "i")})
    assert result.exit_code == 0, result.output
    assert "1 flow(s)" in result.output and "warning: textback.toml" not in result.output


def test_the_project_templates_feedback_flow(make_app: Callable[..., Flask]) -> None:
    """The branching example `textback init` writes (its `textback check` is clean: test_init)."""
    template = files("textback.project") / "textback.toml"
    phone = Phone(make_app(TEXTBACK_RULES=str(template)), TEST_TOKEN)
    assert phone.send("feedback").text == "How did we do, from 1 to 5?"
    assert phone.send("great").text == "Please reply with a number from 1 to 5."
    assert phone.send("5").text == "Thanks for your feedback!"
    phone.send("feedback")
    assert phone.send("2").text == "Sorry to hear it. What could we do better?"
    assert phone.send("Faster replies").text == "Thanks for your feedback!"


def section(title: str) -> str:
    text = (Path(__file__).parent.parent / "docs" / "conversations.md").read_text()
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_docs_branching_example_says_what_it_does(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    doc = section("Branching")
    toml = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    transcript = doc.split("```text\n", 1)[1].split("```", 1)[0]
    (tmp_path / "docs.toml").write_text(toml)
    phone = Phone(make_app(TEXTBACK_RULES=str(tmp_path / "docs.toml")), TEST_TOKEN)
    lines = [line.split("←") for line in transcript.strip().splitlines()]
    assert len(lines) == 6
    for sent, reply in lines:
        assert phone.send(sent.removeprefix("→").strip()).text == reply.strip()
