"""One thread per worker process that answers webhooks, a batch at a time.

A server's request threads only read requests and write responses; what answering takes
(checking the signature, the rules, the database) runs here, in one thread, and the messages that
came in while the previous batch was answered are answered together in one transaction (a group
commit: see storage/inbound.py, ``record_many``).

Why one thread: SQLite lets one transaction write at a time, and every call into the database
lets go of the GIL. With each request answered in its own thread, the thread holding the write
lock had to win the GIL back from the other request threads after every statement, so the lock
was held several times longer than the work under it took, and every other writer of every
worker waited that long (measured with ``make bench``: 1,775 requests/s with 128 threads
answering, 3,376 with one). A batch also pays for one lock, one commit and one re-read of what
another worker changed, instead of one per message. On PostgreSQL a batch commits (and syncs its
log) once. Yielding the CPU once before each batch and once after it (below) made batches
bigger and cost less CPU per message again (5,245 -> 6,557 requests/s, 293 -> 234 µs of CPU
per request, three alternating 10 s runs each).

A request thread hands its job to the loop and waits for its response; the loop thread starts
with the first job and ends when it has had none for a few seconds, so an app that is made and
dropped (a test's) leaves no thread behind.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from collections.abc import Mapping
from typing import Final

log = logging.getLogger(__name__)

HttpResponse = tuple[int, list[tuple[str, str]], bytes]
# At most this many jobs in one batch: a batch is one transaction, and its first message waits
# for the last one's answer.
MAX_BATCH: Final = 64
# The loop thread ends after this long without a job, and starts again with the next one.
IDLE_EXIT_S: Final = 5.0
FAILED: Final[HttpResponse] = (
    500,
    [("Content-Type", "text/plain; charset=utf-8")],
    b"500 Internal Server Error\n",
)


class Job:
    """One webhook request as plain values, and, once answered, its response."""

    __slots__ = ("base", "body", "done", "headers", "method", "path", "response", "url")

    def __init__(
        self,
        *,
        path: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        base: str | None = None,
    ) -> None:
        self.path = path
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.base = base  # this server's public address with its mount prefix (messages only)
        self.response: HttpResponse | None = None
        self.done = threading.Lock()
        self.done.acquire()  # released when the response is set


class AnswerLoop:
    """Runs ``process`` on batches of jobs in one thread of its own (see the module's text).

    ``process`` sets each job's response; a job it leaves without one (it raised) is answered
    500 and the error logged.
    """

    def __init__(
        self,
        process: Callable[[list[Job]], None],
        *,
        max_batch: int = MAX_BATCH,
        idle_exit_s: float = IDLE_EXIT_S,
    ) -> None:
        self.process = process
        self.max_batch = max_batch
        self.idle_exit_s = idle_exit_s
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False
        self._pid = os.getpid()

    def run(self, job: Job) -> HttpResponse:
        """Answer ``job`` in the loop thread; returns when it is answered."""
        self._jobs.put(job)
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread is not in this process
                self._pid, self._running = os.getpid(), False
            if not self._running:
                self._running = True
                threading.Thread(target=self._loop, name="textback-answers", daemon=True).start()
        job.done.acquire()
        assert job.response is not None
        return job.response

    def run_here(self, jobs: list[Job]) -> None:
        """Answer ``jobs`` in the calling thread (a server with one thread per worker, or a
        test client): the same code the loop thread runs."""
        try:
            self.process(jobs)
        except Exception:
            log.exception("answering a batch of %d webhooks failed", len(jobs))
        for job in jobs:
            if job.response is None:
                job.response = FAILED

    def _loop(self) -> None:
        try:
            self._answer_until_idle()  # sets _running back itself when it ends idle
        except BaseException:
            with self._lock:
                self._running = False  # dying: the next job starts another thread
            raise

    def _answer_until_idle(self) -> None:
        jobs = self._jobs
        while True:
            try:
                first = jobs.get(timeout=self.idle_exit_s)
            except queue.Empty:
                with self._lock:
                    if jobs.empty():
                        self._running = False
                        return
                continue
            # Let the request threads that are reading their requests right now hand them in
            # too (sched_yield lets go of the GIL and the CPU once): a bigger batch costs less
            # per message. Without other work waiting it returns at once.
            os.sched_yield()
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                self.run_here(batch)
            finally:
                for job in batch:
                    if job.response is None:
                        job.response = FAILED
                    job.done.release()
            # The request threads just woken write their responses now, rather than each
            # taking the GIL back from the next batch between two of its statements.
            os.sched_yield()
