"""How many slow-handler jobs (storage/slow_jobs.py) wait, run and failed, for the admin."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy import func
from sqlalchemy import select

from textback.storage.inbound import slow_jobs
from textback.storage.slow_jobs import FAILED
from textback.storage.slow_jobs import RUNNING
from textback.storage.slow_jobs import WAITING

SHOWN = (WAITING, RUNNING, FAILED)  # done jobs need nobody's eye


def slow_job_counts(engine: Engine) -> dict[str, int]:
    """Jobs per state, for the states in SHOWN (0 where there are none), in that order."""
    query = (
        select(slow_jobs.c.state, func.count())
        .where(slow_jobs.c.state.in_(SHOWN))
        .group_by(slow_jobs.c.state)
    )
    with engine.connect() as connection:
        found = {state: count for state, count in connection.execute(query)}
    return {state: int(found.get(state, 0)) for state in SHOWN}
