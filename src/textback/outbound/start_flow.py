"""Start a flow from our side: each contact gets the first question through the outbox, and
their replies go to the flow as if they had texted its trigger.

From Python::

    results = start_flow(settings, store, rules, "survey", ["+15550001111"], from_="+15559990000")
    for result in results:
        print(result.number, result.skipped or f"run {result.run_id}")

``textback start-flow survey --group volunteers`` does the same from the command line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from textback.config import Settings
from textback.core import flows
from textback.core.body_length import sending_problem
from textback.core.message import Inbound
from textback.core.responder import Decision
from textback.core.ruleset import RuleSet
from textback.core.text import mask_number
from textback.errors import ConfigError
from textback.errors import TextbackError
from textback.outbound.outbox import Outbox
from textback.outbound.outbox import is_messaging_service
from textback.outbound.send import last_number_used
from textback.storage import flow_timers
from textback.storage.flow_starts import begin_run
from textback.storage.profiles import profile_of
from textback.storage.store import Store

log = logging.getLogger(__name__)

FLOW_START = "flow-start"  # the first question's outbox source: quiet hours hold it


@dataclass(frozen=True)
class FlowStart:
    """What became of one contact: started (``run_id``, and the first question's
    ``outbox_id``) or ``skipped``, with why."""

    number: str
    run_id: int | None = None
    outbox_id: int | None = None
    skipped: str | None = None


def start_flow(
    settings: Settings,
    store: Store,
    rules: RuleSet,
    name: str,
    numbers: Iterable[str],
    *,
    from_: str | None = None,
    replace: bool = False,
    outbox: Outbox | None = None,
) -> list[FlowStart]:
    """Start flow ``name`` for each of ``numbers`` (E.164), once each, in order.

    ``from_`` is our number the questions come from (default: the one each contact last
    texted). A contact who opted out is skipped, and so is one already in a conversation unless
    ``replace`` (that conversation then ends as "cancelled"). Each run and its first question
    are written in one transaction; after the commit the question is queued for a worker, and
    the run's timers (reminder, expiry message) for their time. The question's outbox source is
    ``flow-start``, which quiet hours hold (docs/broadcasts.md); its texts may use the contact's
    profile (``{contact.name}``). Raises TextbackError for an unknown flow or a Messaging Service
    as ``from_``.
    """
    flow = rules.flow(name)
    if flow is None:
        known = ", ".join(repr(f.name) for f in rules.flows) or "none"
        raise TextbackError(f"{rules.path or 'the rules'}: no flow named {name!r} (flows: {known})")
    if from_ and is_messaging_service(from_):
        raise ConfigError(
            f"--from {from_}: a flow needs one of our numbers, not a Messaging Service: the "
            "contact's replies come to a number, and that is where their run is kept"
        )
    box = outbox or Outbox(settings, store)
    results = []
    for number in dict.fromkeys(numbers):
        sender = from_ or last_number_used(store, number)
        if not sender or is_messaging_service(sender):
            results.append(FlowStart(number, skipped="has not texted us: give --from"))
            continue
        with store.engine.connect() as connection:
            profile = profile_of(connection, number)
        begun = flows.start(flow, Inbound(sid="", from_=number, to=sender), profile)
        problem = sending_problem(begun.reply.text, media=len(begun.reply.media))
        if problem is not None:
            results.append(FlowStart(number, skipped=f"the first question: {problem}"))
            continue
        decision = Decision(
            begun.reply,
            begun.source,
            begun.conversation,
            expire_after=flow.settings.expire_after,
            timers=begun.timers,
        )
        entry_id, timers = None, []
        with store.write_lock, store.engine.begin() as connection:
            run_id, skipped = begin_run(
                connection,
                store.insert,
                our_number=sender,
                number=number,
                decision=decision,
                stamp=store.clock(),
                replace=replace,
            )
            if run_id is not None:
                entry_id, _ = box.rows.add(
                    connection,
                    sender=sender,
                    to=number,
                    body=begun.reply.text,
                    media=begun.reply.media,
                    source=FLOW_START,
                    key=f"flow:{run_id}:start",
                )
                timers = flow_timers.waiting(connection, run_id)
        if entry_id is None:
            results.append(FlowStart(number, skipped=skipped))
            continue
        box.enqueue(entry_id)
        for timer_id, due in timers:  # on time, not at the next sweep after they are due
            box.enqueue(timer_id, due)
        log.info("flow %s started for %s (run %s)", flow.name, mask_number(number), run_id)
        results.append(FlowStart(number, run_id=run_id, outbox_id=entry_id))
    return results
