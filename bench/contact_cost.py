"""What naming the contact in a reply costs a webhook: CPU per message, in turn.

    .venv/bin/python -m bench.contact_cost [--messages 400] [--rounds 5]

Signed SMS webhooks go through textback's WSGI app in-process into a fresh SQLite file (as
bench.metrics_cost does), every sender with a profile (a name, a field, a group), alternating
rounds with a default reply that names no contact (the profile is not read) and one that says
``{contact.name|there}`` and ``{contact.fields.city}`` (one more statement per message). A
measurement, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from textback.core.profile import ContactProfile
from textback.rulesfile.rules import parse_rules
from textback.storage.profiles import save_profiles

from .wal_frames import app_for
from .wal_frames import requests
from .wal_frames import run

CONTACTS = 50


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    plain = parse_rules({"default": {"reply": "Thanks, we got it."}}, "plain")
    named = parse_rules(
        {"default": {"reply": "Thanks {contact.name|there}, {contact.fields.city} got it."}},
        "named",
    )
    assert named.wants_contact and not plain.wants_contact
    costs: dict[str, list[float]] = {"plain": [], "named": []}
    with tempfile.TemporaryDirectory() as folder:
        app = app_for(f"sqlite:///{Path(folder) / 'bench.db'}", Path(folder) / "instance")
        service = app.extensions["textback"]
        people = [
            ContactProfile(
                f"+1555{n:07d}", f"Person {n}", fields={"city": "Oakland"}, groups=("g",)
            )
            for n in range(CONTACTS)
        ]
        save_profiles(service.store.engine, people)
        for rules in (plain, named):  # warm up: statements compiled, caches filled
            service.rules = rules
            run(app, requests(100, CONTACTS))
        for _ in range(args.rounds):
            for name, rules in (("plain", plain), ("named", named)):
                service.rules = rules
                costs[name].append(run(app, requests(args.messages, CONTACTS)) / args.messages)
    off, on = (statistics.median(costs[name]) * 1000 for name in ("plain", "named"))
    print(f"CPU per webhook in process: {off:.3f} ms naming no contact, {on:.3f} ms naming one")
    print(f"the profile costs {(on - off) * 1000:.1f} µs per webhook = {(on - off) / off:.1%}")


if __name__ == "__main__":
    main()
