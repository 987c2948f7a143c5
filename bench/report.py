"""Round results -> per-server summary, the ratios, JSON and a Markdown table."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Round:
    """One wrk run against one server."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Summary:
    """A server over all its rounds: medians of rate and latency, totals of errors and CPU."""

    name: str
    rounds: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms_per_request: float
    rates: list[float]


def summarize(name: str, rounds: list[Round]) -> Summary:
    requests = sum(r.requests for r in rounds)
    return Summary(
        name=name,
        rounds=len(rounds),
        requests_per_s=statistics.median(r.rate for r in rounds),
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        errors=sum(r.errors for r in rounds),
        cpu_ms_per_request=1000 * sum(r.cpu_seconds for r in rounds) / requests if requests else 0,
        rates=[round(r.rate, 1) for r in rounds],
    )


def ratios(
    summaries: dict[str, Summary], baselines: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    """Each other server's requests/s as a fraction of each baseline.

    A baseline is the better of the servers it names (as in "the tutorial on gunicorn, the
    better of sync and gthread"); one none of whose servers ran is left out.
    """
    compared = {name for names in baselines.values() for name in names}
    best = {
        label: max(summaries[name].requests_per_s for name in names if name in summaries)
        for label, names in baselines.items()
        if any(name in summaries for name in names)
    }
    return {
        name: {label: summary.requests_per_s / rate for label, rate in best.items() if rate}
        for name, summary in summaries.items()
        if name not in compared and best
    }


def markdown(summaries: dict[str, Summary], ratio: dict[str, dict[str, float]]) -> str:
    labels = list(dict.fromkeys(label for values in ratio.values() for label in values))
    lines = [
        "| server | requests/s | p50 ms | p99 ms | errors | CPU ms/request |"
        + "".join(f" {label} |" for label in labels),
        "| --- | ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(labels),
    ]
    for name, s in summaries.items():
        of = ratio.get(name, {})
        cells = "".join(f" {of[label]:.0%} |" if label in of else "  |" for label in labels)
        lines.append(
            f"| {name} | {s.requests_per_s:,.0f} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | {s.errors} "
            f"| {s.cpu_ms_per_request:.2f} |{cells}"
        )
    return "\n".join(lines) + "\n"


def write(path: Path, data: dict[str, Any], table: str) -> None:
    """``path``.json with everything, ``path``.md with the table and the run's conditions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(data, indent=2, default=_plain) + "\n")
    notes = "\n".join(f"- {key}: {value}" for key, value in data.get("conditions", {}).items())
    path.with_suffix(".md").write_text(table + ("\n" + notes + "\n" if notes else ""))


def _plain(value: Any) -> Any:
    if isinstance(value, Summary | Round):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
