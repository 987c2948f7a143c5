"""``/admin/broadcasts``: write a broadcast, preview it for a sample contact (its text, encoding
and segments, and what the whole group costs), send or schedule it, and the list with counts.
Plain forms with the session's CSRF token, like the rest of the admin; no JavaScript."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from dataclasses import field

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from textback.channel.e164 import e164
from textback.errors import TextbackError
from textback.outbound.broadcast import Plan
from textback.outbound.broadcast import broadcast_tallies
from textback.outbound.broadcast import create_broadcast
from textback.outbound.broadcast import plan_broadcast
from textback.outbound.outbox import is_messaging_service
from textback.outbound.send import parse_send_time
from textback.storage.broadcasts import BroadcastRows
from textback.storage.broadcasts import group_sizes
from textback.storage.broadcasts import our_numbers
from textback.storage.models import now
from textback.web import auth
from textback.web import textback
from textback.web.admin import MAX_BODY_CHARS
from textback.web.admin import outbox
from textback.web.admin import page_context
from textback.web.admin import sending_problem

log = logging.getLogger(__name__)

bp = Blueprint("admin_broadcasts", __name__, template_folder="templates")
bp.before_request(auth.guard)
bp.after_request(auth.secure_headers)
bp.context_processor(page_context)


@dataclass
class Draft:
    """What the form holds: the text, the groups, the sender, when, and its one-time key."""

    text: str = ""
    groups: list[str] = field(default_factory=list)
    sender: str = ""
    at: str = ""
    send_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @classmethod
    def from_form(cls) -> Draft:
        form = request.form
        return cls(
            text=form.get("text", "")[:MAX_BODY_CHARS],
            groups=[name[:100] for name in form.getlist("group")][:100],
            sender=form.get("sender", "").strip()[:64],
            at=form.get("at", "").strip()[:40],
            send_key=form.get("send_key", "")[:64] or secrets.token_urlsafe(16),
        )


@bp.get("/admin/broadcasts")
def listing() -> str:
    """The latest broadcasts with their counts; while one is being sent the page reloads."""
    listed = broadcast_tallies(textback().store, limit=100)
    stamp = now()
    sending = any(
        tally.queued + tally.sending > tally.held and (row.send_at is None or row.send_at <= stamp)
        for row, tally in listed
    )
    return render_template("admin/broadcasts.html", listed=listed, refresh=sending)


def _form(draft: Draft, plan: Plan | None = None, problem: str | None = None) -> str:
    store = textback().store
    numbers = our_numbers(store)
    if not draft.sender:
        latest = BroadcastRows(store).listing(1)
        draft.sender = latest[0].sender if latest else (numbers[0] if len(numbers) == 1 else "")
    return render_template(
        "admin/broadcast_new.html",
        draft=draft,
        groups=group_sizes(store),
        numbers=numbers,
        plan=plan,
        problem=problem,
        sending_problem=sending_problem(),
        timezone=textback().settings.timezone,
        max_body=MAX_BODY_CHARS,
    )


@bp.get("/admin/broadcasts/new")
def new() -> str:
    """The form to write a broadcast."""
    return _form(Draft())


def _sender(value: str) -> str:
    if not value or is_messaging_service(value):
        return value
    return e164(value, textback().settings.default_region)


@bp.post("/admin/broadcasts/new")
def submit() -> ResponseReturnValue:
    """Preview (``action=preview``) or send/schedule (``action=send``) the broadcast."""
    draft = Draft.from_form()
    service = textback()
    try:
        sender = _sender(draft.sender)
        at = parse_send_time(draft.at, service.settings.timezone, now()) if draft.at else None
        plan = plan_broadcast(
            service.settings, service.store, text=draft.text, groups=draft.groups, sender=sender
        )
    except TextbackError as exc:
        return _form(draft, problem=str(exc))
    if request.form.get("action") != "send":
        return _form(draft, plan=plan)
    try:
        created = create_broadcast(
            service.settings,
            service.store,
            text=draft.text,
            groups=draft.groups,
            sender=sender,
            at=at,
            key=f"admin:{draft.send_key}",
            source="admin",
            outbox=outbox(),
        )
    except TextbackError as exc:
        return _form(draft, plan=plan, problem=f"Not sent: {exc}")
    when = f" for {at:%Y-%m-%d %H:%M %Z}" if at else ""
    skipped = sum(created.skipped.values())
    flash(
        f"Broadcast {created.broadcast_id}: {created.sending} message(s) queued{when}"
        + (f", {skipped} skipped" if skipped else "")
        + "; the worker sends them."
    )
    log.info("admin queued broadcast %d", created.broadcast_id)
    return redirect(url_for("admin_broadcasts.listing"))
