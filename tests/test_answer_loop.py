"""The answer loop: one thread answers webhook jobs in batches, each job gets its own response."""

from __future__ import annotations

import threading
import time

from textback.web.answer_loop import FAILED
from textback.web.answer_loop import AnswerLoop
from textback.web.answer_loop import Job


def job(number: int) -> Job:
    return Job(
        path="/twilio", method="POST", url="http://x/twilio", headers={}, body=b"%d" % number
    )


def test_jobs_that_arrive_while_a_batch_runs_are_answered_together() -> None:
    batches: list[list[bytes]] = []
    threads_seen: set[int] = set()
    first_started = threading.Event()
    release_first = threading.Event()

    def process(jobs: list[Job]) -> None:
        threads_seen.add(threading.get_ident())
        batches.append([j.body for j in jobs])
        if len(batches) == 1:
            first_started.set()
            release_first.wait(5)
        for j in jobs:
            j.response = (200, [], b"answer " + j.body)

    loop = AnswerLoop(process)
    responses: dict[int, bytes] = {}

    def submit(number: int) -> None:
        responses[number] = loop.run(job(number))[2]

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    assert first_started.wait(5)
    others = [threading.Thread(target=submit, args=(n,)) for n in range(1, 11)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 5
    while loop._jobs.qsize() < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    release_first.set()
    for thread in [first, *others]:
        thread.join(5)
    assert responses == {n: b"answer %d" % n for n in range(11)}
    assert batches[0] == [b"0"]
    assert sorted(batches[1]) == sorted(b"%d" % n for n in range(1, 11))  # one batch of ten
    assert len(threads_seen) == 1 and threading.get_ident() not in threads_seen


def test_a_batch_that_raises_is_answered_500_and_the_loop_goes_on() -> None:
    def process(jobs: list[Job]) -> None:
        if jobs[0].body == b"1":
            raise RuntimeError("a bug of ours")
        for j in jobs:
            j.response = (200, [], b"ok")

    loop = AnswerLoop(process)
    assert loop.run(job(1)) == FAILED
    assert loop.run(job(2)) == (200, [], b"ok")


def test_a_batch_is_at_most_max_batch_jobs() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def process(jobs: list[Job]) -> None:
        gate.wait(5)
        sizes.append(len(jobs))
        for j in jobs:
            j.response = (200, [], b"")

    loop = AnswerLoop(process, max_batch=3)
    threads = [threading.Thread(target=loop.run, args=(job(n),)) for n in range(7)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert sum(sizes) == 7 and max(sizes) <= 3


def test_the_thread_ends_when_idle_and_a_new_one_starts_with_the_next_job() -> None:
    idents: list[int] = []

    def process(jobs: list[Job]) -> None:
        idents.append(threading.get_ident())
        for j in jobs:
            j.response = (200, [], b"")

    loop = AnswerLoop(process, idle_exit_s=0.05)
    loop.run(job(1))
    deadline = time.monotonic() + 5
    while loop._running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not loop._running
    assert not any(
        t.name == "textback-answers" and t.ident == idents[0] for t in threading.enumerate()
    )
    assert loop.run(job(2))[0] == 200
    assert len(idents) == 2


def test_run_here_answers_in_the_calling_thread() -> None:
    seen: list[int] = []

    def process(jobs: list[Job]) -> None:
        seen.append(threading.get_ident())
        jobs[0].response = (204, [], b"")

    loop = AnswerLoop(process)
    one = job(1)
    loop.run_here([one])
    assert one.response == (204, [], b"")
    assert seen == [threading.get_ident()]
