"""The benchmark's pieces, cheaply: signed bodies, the exactly-once check, the report."""

from __future__ import annotations

import itertools
from collections import Counter
from urllib.parse import parse_qsl

import pytest
from bench import bodies
from bench import check
from bench import report
from bench.burst import schedule
from bench.load import WrkResult

from textback.channel.signature import FormParams
from textback.channel.signature import SignatureChecker


def test_signed_bodies_verify_with_textbacks_checker() -> None:
    checker = SignatureChecker([bodies.TOKEN])
    made = list(bodies.signed_bodies("0123abcd", 20))
    assert len({sid for sid, _, _ in made}) == 20
    for sid, signature, body in made:
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        assert len(pairs) == 19
        assert dict(pairs)["MessageSid"] == sid
        assert sid.startswith("SM0123abcd") and len(sid) == 34
        assert checker.is_valid(bodies.WEBHOOK_URL, FormParams.from_pairs(pairs), signature)
        assert not checker.is_valid(
            bodies.WEBHOOK_URL + "x", FormParams.from_pairs(pairs), signature
        )


def test_sent_sids_follow_wrks_threads() -> None:
    sids = [f"s{i}" for i in range(10)]
    assert bodies.sent_sids(sids, 2, [2, 3]) == {"s0", "s2", "s1", "s3", "s5"}


def stored(*sids: str, replies: int = 1) -> list[check.Stored]:
    return [check.Stored(sid, True, replies) for sid in sids]


def test_exactly_once_passes_when_all_is_stored_once() -> None:
    sent = {"a", "b", "c"}
    assert check.problems(sent=sent, stored=stored("a", "b", "c"), completed=3, in_flight=0) == []
    # a request in flight when wrk stopped may be missing
    assert check.problems(sent=sent, stored=stored("a", "b"), completed=2, in_flight=1) == []


@pytest.mark.parametrize(
    ("rows", "completed", "expected"),
    [
        (stored("a", "a", "b", "c"), 3, "stored more than once"),
        (stored("a", "b"), 3, "answered requests were not stored"),
        (stored("a", "b", "c", "z"), 3, "never sent"),
        (stored("a", "b", "c", replies=2), 3, "no reply or more than one"),
        (stored("a", "b", "c", replies=0), 3, "no reply or more than one"),
        ([check.Stored("a", False, 1), *stored("b", "c")], 3, "no TwiML"),
    ],
)
def test_exactly_once_catches(rows: list[check.Stored], completed: int, expected: str) -> None:
    found = check.problems(sent={"a", "b", "c"}, stored=rows, completed=completed, in_flight=0)
    assert any(expected in problem for problem in found), found


def test_report_ratios_to_the_better_of_each_baseline_and_table() -> None:
    def server(name: str, requests: int) -> report.Summary:
        rounds = [report.Round(requests, 10.0, 2.0, 9.0, 0, requests / 1000)]
        return report.summarize(name, rounds)

    made = [("a", 9000), ("b-sync", 5000), ("b-gthread", 6000), ("c", 4200)]
    summaries = {name: server(name, n) for name, n in made}
    baselines = {"of (a)": ["a"], "of (b)": ["b-sync", "b-gthread"], "of (x)": ["x"]}
    ratios = report.ratios(summaries, baselines)
    assert ratios == {"c": pytest.approx({"of (a)": 4200 / 9000, "of (b)": 0.7})}
    table = report.markdown(summaries, ratios)
    assert (
        "| server | requests/s | p50 ms | p99 ms | errors | CPU ms/request | of (a) | of (b) |"
        in table
    )
    assert "| c | 420 | 2.0 | 9.0 | 0 | 1.00 | 47% | 70% |" in table
    assert "| b-sync | 500 | 2.0 | 9.0 | 0 | 1.00 |  |  |" in table


def test_burst_repeats_ten_messages_once_each_half_of_them_at_once() -> None:
    unique = [(f"SM{i}", "sig", b"") for i in range(100)]
    order = schedule(unique, 10)
    counts = Counter(request[0] for request in order)
    assert len(order) == 110
    assert set(counts) == {request[0] for request in unique}
    assert sorted(counts.values())[-11:] == [1] + [2] * 10
    assert sum(1 for a, b in itertools.pairwise(order) if a == b) >= 5


def test_wrk_result_is_read_from_the_scripts_line() -> None:
    output = (
        'Running 5s test\nBENCH {"requests": 100, "duration_us": 2000000, "p50_us": 1500, '
        '"p99_us": 9000, "max_us": 12000, "errors": {"connect": 0, "read": 1, "write": 0, '
        '"status": 2, "timeout": 0}, "issued": [51, 52]}\n'
    )
    result = WrkResult.parse(output)
    assert (result.requests, result.seconds, result.p50_ms, result.p99_ms) == (100, 2.0, 1.5, 9.0)
    assert result.errors == 3
    assert result.issued == [51, 52]
