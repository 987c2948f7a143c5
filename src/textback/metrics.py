"""Prometheus metrics (prometheus-client), summed over every process of one machine.

``textback serve`` and ``textback worker`` point ``PROMETHEUS_MULTIPROC_DIR`` at a folder of the
instance before any worker starts (``metrics_folder.prepare``), so each process writes its
counts to files there and ``GET /metrics`` adds them up, as prometheus-client's multiprocess
mode does. A single process (``textback run``, tests) uses the library's default registry.

What is counted is cheap on the hot path (an increment each); what needs the database (the
outbox's depth) is read when Prometheus scrapes, not when a message arrives.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import REGISTRY
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from textback.metrics_folder import MULTIPROC_ENV

WEBHOOKS = Counter(
    "textback_webhooks",
    "Webhooks by outcome: answered, duplicate (a stored answer replayed), refused.",
    ["outcome"],
)
REFUSALS = Counter(
    "textback_webhook_refusals", "Refused webhooks by reason (the HTTP status's cause).", ["reason"]
)
ANSWER_SECONDS = Histogram(
    "textback_answer_seconds",
    "Time to answer a signed message webhook, storage included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0),
)
REPLIES = Counter(
    "textback_replies",
    "Answers by what gave them: carrier, flow, handler, rule, default, silent, error.",
    ["source"],
)
SENDS = Counter(
    "textback_sends", "REST API sends by result and Twilio error code.", ["result", "error_code"]
)
# The outage journal (docs/outage.md); the entries waiting are a gauge read at scrape time.
JOURNALED = Counter(
    "textback_journal_appended",
    "Webhooks kept in the outage journal while the database was down, by kind (message, status).",
    ["kind"],
)
REPLAYED = Counter(
    "textback_journal_replayed",
    "Journal entries replayed: stored, duplicate (stored before), rejected (kept for a person).",
    ["outcome"],
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def source_kind(source: str) -> str:
    """The kind of a decision's source, a label with few values (never a rule's own name)."""
    head = source.split(" ", 1)[0]
    kinds = {
        "optout": "carrier",
        "flow": "flow",
        "handler": "handler",
        "rule": "rule",
        "default": "default",
        "opted": "silent",
        "taken": "person",
        "error": "error",
    }
    return kinds.get(head.rstrip(":"), "other")


class _ScrapeTimeGauges(Collector):
    """Gauges read when Prometheus scrapes: ``read()`` gives (name, help, {label: value})."""

    def __init__(self, read: Callable[[], Iterable[tuple[str, str, str, dict[str, float]]]]):
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, documentation, label, values in self.read():
            family = GaugeMetricFamily(name, documentation, labels=[label])
            for value_label, value in sorted(values.items()):
                family.add_metric([value_label], value)
            yield family


def exposition(
    read_gauges: Callable[[], Iterable[tuple[str, str, str, dict[str, float]]]] | None = None,
) -> bytes:
    """The text Prometheus scrapes: this machine's counters (all processes) and the gauges."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    text = generate_latest(counted)
    if read_gauges is not None:
        gauges = CollectorRegistry()
        gauges.register(_ScrapeTimeGauges(read_gauges))
        text += generate_latest(gauges)
    return text
