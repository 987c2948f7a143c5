"""What the Prometheus metrics cost a webhook: CPU per message with them and without, in turn.

    .venv/bin/python -m bench.metrics_cost [--messages 400] [--rounds 5]

Signed SMS webhooks go through textback's WSGI app in-process into a fresh SQLite file (as
bench.wal_frames does), alternating rounds with the real counters and with the counters
replaced by ones that do nothing. The figure is the extra CPU per webhook, the median of the
rounds, as a share of the CPU a served webhook costs in `make bench` (given by --served-ms, the
latest run's per-request CPU) and of this in-process cost. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from textback import metrics

from .wal_frames import app_for
from .wal_frames import requests
from .wal_frames import run


class _Nothing:
    def labels(self, *_values: str) -> _Nothing:
        return self

    def inc(self, _amount: float = 1) -> None:
        return None

    def observe(self, _value: float) -> None:
        return None


NAMES = ("WEBHOOKS", "REFUSALS", "ANSWER_SECONDS", "REPLIES", "SENDS")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--served-ms", type=float, default=None)
    args = parser.parse_args(argv)
    real: dict[str, Any] = {name: getattr(metrics, name) for name in NAMES}
    with_metrics: list[float] = []
    without: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        app = app_for(f"sqlite:///{Path(folder) / 'bench.db'}", Path(folder) / "instance")
        run(app, requests(100, 20))  # warm up: statements compiled, caches filled
        for _ in range(args.rounds):
            for name in NAMES:
                setattr(metrics, name, _Nothing())
            without.append(run(app, requests(args.messages, 50)) / args.messages)
            for name, value in real.items():
                setattr(metrics, name, value)
            with_metrics.append(run(app, requests(args.messages, 50)) / args.messages)
    on, off = statistics.median(with_metrics) * 1000, statistics.median(without) * 1000
    extra = on - off
    print(f"CPU per webhook in process: {off:.3f} ms without metrics, {on:.3f} ms with")
    print(
        f"metrics cost {extra * 1000:.1f} µs per webhook = {extra / off:.1%} of the in-process cost"
    )
    if args.served_ms:
        print(f"= {extra / args.served_ms:.1%} of a served webhook's {args.served_ms:.2f} ms CPU")


if __name__ == "__main__":
    main()
