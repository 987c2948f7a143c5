"""``/admin``: conversations, one thread with its actions, and an overview. Reading needs no
JavaScript; every action is a plain form POST with the session's CSRF token (see auth.py for
who gets in)."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import TYPE_CHECKING

from flask import Blueprint
from flask import Flask
from flask import abort
from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from textback.config import DATABASE_LIMITER_STORAGE
from textback.core.profile import edited
from textback.core.text import mask_number
from textback.errors import ConfigError
from textback.errors import TextbackError
from textback.queries import contact_history
from textback.queries import inbox
from textback.queries.overview import overview as overview_of
from textback.queries.slow_jobs import slow_job_counts
from textback.storage import outbox as states
from textback.storage.outbox import OutboxRows
from textback.storage.profiles import profile_for
from textback.storage.profiles import save_profiles
from textback.storage.takeover import Takeovers
from textback.web import auth
from textback.web import textback
from textback.web.chart import hourly_chart

if TYPE_CHECKING:
    from textback.outbound.outbox import Outbox

log = logging.getLogger(__name__)

bp = Blueprint(
    "admin",
    __name__,
    template_folder="templates",
    static_folder="static/admin",
    static_url_path="/admin/static",
)
bp.before_request(auth.guard)
bp.after_request(auth.secure_headers)

MAX_BODY_CHARS = 1600
MAX_ID = 2**31 - 1  # row ids are 32-bit integers; a larger one is not found (404)


def init_app(app: Flask) -> None:
    """Register the admin pages, the login and its lockout on ``app``."""
    app.register_blueprint(auth.bp)
    app.register_blueprint(bp)
    service = app.extensions["textback"]
    if service.settings.limiter_storage != DATABASE_LIMITER_STORAGE:
        from textback.web import lockout  # limits: a storage URI is checked now, at start

        lockout.init_app(app, service.settings.limiter_storage, service.store.engine)


@bp.context_processor
def page_context() -> dict[str, object]:
    settings = textback().settings
    return {"csrf_token": auth.csrf_token(), "can_log_out": settings.admin_password_hash}


@bp.app_template_filter("when")
def when(stamp: datetime | None) -> str:
    """A stored time as the pages show it."""
    return stamp.strftime("%Y-%m-%d %H:%M UTC") if stamp else ""


def cursor(name: str) -> int | None:
    """A paging position from the query string; anything but a row id is ignored."""
    return row_id(request.args.get(name, ""))


def row_id(value: str) -> int | None:
    """A row id given as text (a paging position, a form field); anything else is None."""
    if value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID)):
        number = int(value)
        return number if number <= MAX_ID else None
    return None


@bp.get("/admin")
def conversations() -> str:
    """Conversations, latest first, with search and paging."""
    search = request.args.get("q", "")[:200]
    page = inbox.conversations(
        textback().store.engine, search=search, before=cursor("before"), limit=inbox.PAGE_SIZE
    )
    return render_template(
        "admin/conversations.html",
        page=page,
        search=search,
        paged=cursor("before") is not None,
        # Contacts a person has taken over, waiting longest first: listed above the rest.
        taken_over={row.contact_id: row for row in Takeovers(textback().store).listed()},
    )


def sending_problem() -> str | None:
    """Why a message cannot be sent from this server, or None when it can."""
    # The twilio client and the outbox (requests, huey) load when a page first needs them, not
    # at every start.
    from textback.channel.rest import rest_client

    try:
        rest_client(textback().settings)
    except ConfigError as exc:
        return str(exc)
    return None


def outbox() -> Outbox:
    """This app's outbox (one queue connection per app, made on first use)."""
    from textback.outbound.outbox import Outbox

    found = current_app.extensions.get("textback_outbox")
    if found is None:
        service = textback()
        found = current_app.extensions["textback_outbox"] = Outbox(service.settings, service.store)
    assert isinstance(found, Outbox)
    return found


@bp.get(f"/admin/conversations/<int(max={MAX_ID}):contact_id>")
def conversation(contact_id: int) -> str:
    """A thread as bubbles, the contact's flows, the outbox's messages to them, and the
    actions. While a message of theirs is on its way the page reloads itself."""
    engine = textback().store.engine
    contact = contact_history.contact(engine, contact_id)
    if contact is None:
        abort(404)
    outgoing = OutboxRows(textback().store).of_contact(contact.our_number, contact.number)
    return render_template(
        "admin/conversation.html",
        outgoing=outgoing,
        refresh=any(row.state in (states.QUEUED, states.SENDING) for row in outgoing),
        send_key=secrets.token_urlsafe(16),
        contact=contact,
        thread=contact_history.thread(
            engine, contact_id, before=cursor("before"), limit=contact_history.THREAD_SIZE
        ),
        runs=contact_history.flow_runs_of(engine, contact_id),
        sending_problem=sending_problem(),
        max_body=MAX_BODY_CHARS,
        profile=profile_for(engine, contact.number),
        takeover=Takeovers(textback().store).of(contact_id),
    )


def _contact_or_404(contact_id: int) -> contact_history.ContactInfo:
    contact = contact_history.contact(textback().store.engine, contact_id)
    if contact is None:
        abort(404)
    return contact


def _back(contact_id: int) -> ResponseReturnValue:
    return redirect(url_for("admin.conversation", contact_id=contact_id))


@bp.post(f"/admin/conversations/<int(max={MAX_ID}):contact_id>/opt-out")
def set_opt_out(contact_id: int) -> ResponseReturnValue:
    """Opt the contact out (``opted_out=1``) or back in (``opted_out=0``)."""
    contact = _contact_or_404(contact_id)
    opted_out = request.form.get("opted_out") == "1"
    textback().store.set_opted_out(contact.our_number, contact.number, opted_out)
    log.info("admin opted %s %s", mask_number(contact.number), "out" if opted_out else "in")
    flash("Opted out: no more messages to this contact." if opted_out else "Opted back in.")
    return _back(contact_id)


@bp.post(f"/admin/conversations/<int(max={MAX_ID}):contact_id>/end-flow")
def end_flow(contact_id: int) -> ResponseReturnValue:
    """End the contact's open flow (status ``cancelled``)."""
    contact = _contact_or_404(contact_id)
    if textback().store.end_flow(contact.our_number, contact.number):
        flash("Flow ended.")
    else:
        flash("There was no open flow to end.", "error")
    return _back(contact_id)


@bp.post(f"/admin/conversations/<int(max={MAX_ID}):contact_id>/send")
def send(contact_id: int) -> ResponseReturnValue:
    """Send a message to the contact through Twilio's REST API."""
    from textback.outbound.send import schedule_message

    contact = _contact_or_404(contact_id)
    body = request.form.get("body", "").strip()
    if not body or len(body) > MAX_BODY_CHARS:
        flash(f"Type a message of 1 to {MAX_BODY_CHARS} characters.", "error")
    elif (problem := sending_problem()) is not None:
        flash(f"Not sent: {problem}", "error")
    else:  # an opted-out contact is refused by schedule_message itself, like every other path
        service = textback()
        # The form's one-time key: a double click or a resubmitted form queues nothing twice.
        key = request.form.get("send_key", "")[:64]
        try:
            entry_id = schedule_message(
                service.settings,
                service.store,
                to=contact.number,
                body=body,
                from_=contact.our_number,
                source="admin",
                key=f"admin:{key}" if key else None,
                outbox=outbox(),
            )
        except TextbackError as exc:
            flash(f"Not sent: {exc}", "error")
        else:
            Takeovers(service.store).replied(contact_id, seen=row_id(request.form.get("seen", "")))
            flash(f"Queued as outbox {entry_id}: the worker sends it; its state shows below.")
    return _back(contact_id)


@bp.post(f"/admin/conversations/<int(max={MAX_ID}):contact_id>/profile")
def edit_profile(contact_id: int) -> ResponseReturnValue:
    """Save the contact's name, language, time zone, groups (``a; b``) and fields (pairs of
    ``field_name`` and ``field_value``; an empty value removes the field)."""
    contact = _contact_or_404(contact_id)
    form = request.form
    typed = list(zip(form.getlist("field_name"), form.getlist("field_value"), strict=False))
    # A field the form did not show (a flow saved it since the page was loaded) is kept.
    on_form = {name.strip() for name, _ in typed}
    current = profile_for(textback().store.engine, contact.number).fields
    kept = [(name, value) for name, value in current.items() if name not in on_form]
    try:
        person = edited(
            contact.number,
            name=form.get("name", ""),
            language=form.get("language", ""),
            timezone=form.get("timezone", ""),
            groups=form.get("groups", ""),
            fields=[*kept, *typed],
        )
    except TextbackError as exc:
        flash(f"Not saved: {exc}", "error")
    else:
        save_profiles(textback().store.engine, [person])
        log.info("admin edited the profile of %s", mask_number(contact.number))
        flash("Contact saved.")
    return _back(contact_id)


@bp.get("/admin/overview")
def overview() -> str:
    """Messages per hour, rules hit, opt-outs, failed deliveries and refused webhooks."""
    stats = overview_of(textback().store.engine)
    return render_template(
        "admin/overview.html",
        stats=stats,
        day_chart=hourly_chart(stats.last_day, title="Messages per hour, last 24 hours (UTC)"),
        week_chart=hourly_chart(stats.last_week, title="Messages per hour, last 7 days (UTC)"),
        slow_jobs=slow_job_counts(textback().store.engine),
    )


# --- a person takes over (docs/admin.md, storage/takeover.py) ------------------------------


@bp.app_template_filter("waited")
def waited(since: datetime | None) -> str:
    """How long ago ``since`` was, roughly: ``under a minute``, ``12 min``, ``2 h 5 min``."""
    if since is None:
        return ""
    minutes = max(0, int((textback().store.clock() - since).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "under a minute"


@bp.post(f"/admin/conversations/<int(max={MAX_ID}):contact_id>/take-over")
def take_over(contact_id: int) -> ResponseReturnValue:
    """Pause the bot for the contact: their messages wait for a person's reply."""
    contact = _contact_or_404(contact_id)
    if Takeovers(textback().store).take_over(contact_id, by="admin"):
        log.info("admin took over %s", mask_number(contact.number))
        flash(
            "Taken over: the bot no longer answers this contact (STOP, START and HELP still "
            "work). Their messages wait for your reply here."
        )
    else:
        flash("This contact is taken over already.", "error")
    return _back(contact_id)


@bp.post(f"/admin/conversations/<int(max={MAX_ID}):contact_id>/hand-back")
def hand_back(contact_id: int) -> ResponseReturnValue:
    """Resume the bot for the contact; their open flow, if any, ends."""
    contact = _contact_or_404(contact_id)
    handed = Takeovers(textback().store).hand_back(contact_id)
    if not handed.was_taken_over:
        flash("The bot answers this contact already.", "error")
    else:
        log.info("admin handed %s back to the bot", mask_number(contact.number))
        ended = " Their open flow was ended." if handed.flow_ended else ""
        flash(f"Handed back: the bot answers this contact again.{ended}")
    return _back(contact_id)
