"""A near miss of STOP or HELP is found as by comparing the message with every word."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from textback.core.matchers import allowed_typos
from textback.core.matchers import typos
from textback.core.optout import Command
from textback.core.optout import OptOutPolicy
from textback.core.text import normalize_command

POLICY = OptOutPolicy.from_lists(stop_words=["arrêt", "desinscrire"], help_words=["aide"])


def every_word(body: str) -> Command | None:
    """near_miss as defined: the distance to every STOP, then every HELP word."""
    word = normalize_command(body)
    if not word or POLICY.command(body) is not None:
        return None
    for command, words in ((Command.STOP, POLICY.stop_words), (Command.HELP, POLICY.help_words)):
        if any(typos(word, known) <= allowed_typos(known) for known in words):
            return command
    return None


def near(words: frozenset[str]) -> st.SearchStrategy[str]:
    """A word of the policy with up to three letters dropped, doubled or changed."""
    edits = st.lists(st.tuples(st.sampled_from("dix"), st.integers(0, 12)), max_size=3)

    def edit(word: str, changes: list[tuple[str, int]]) -> str:
        for kind, at in changes:
            at %= len(word) + 1
            word = {"d": word[:at] + word[at + 1 :], "i": word[:at] + "x" + word[at:]}.get(
                kind, word[:at] + "q" + word[at + 1 :]
            )
        return word

    return st.builds(edit, st.sampled_from(sorted(words)), edits)


@given(st.one_of(near(POLICY.stop_words | POLICY.help_words), st.text(max_size=20)))
def test_near_miss_is_the_comparison_with_every_word(body: str) -> None:
    assert POLICY.near_miss(body) == every_word(body)


def test_near_misses_are_found() -> None:
    assert POLICY.near_miss("stpo") is Command.STOP
    assert POLICY.near_miss("unsubscibe") is Command.STOP
    assert POLICY.near_miss("hepl") is Command.HELP
    assert POLICY.near_miss("Arrêt!") is None  # the word itself: a command, not a miss
    assert POLICY.near_miss("arret") is Command.STOP
    assert POLICY.near_miss("VOTE 3") is None
