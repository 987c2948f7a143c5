"""The fake phone the ``phone`` fixture gives: signed webhooks through the real route.

Slow handlers' replies are delivered as a worker would, synchronously and offline: after each
message the phone runs the jobs it queued through the real SlowHandlers code on a queue in
memory, and "sends" their replies from the outbox to itself (no Twilio API call). Nothing else
the outbox holds (a flow's reminder, a broadcast) is sent by the phone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask
from huey import MemoryHuey
from sqlalchemy import and_
from sqlalchemy import select

from textback.channel.forms import DEFAULT_FROM
from textback.channel.forms import DEFAULT_TO
from textback.channel.forms import inbound_form
from textback.channel.forms import new_sid
from textback.channel.forms import signed_request
from textback.channel.forms import status_form
from textback.channel.twiml import parse_twiml
from textback.outbound.outbox import Outbox
from textback.outbound.outbox import Outcome
from textback.outbound.outbox import is_messaging_service
from textback.outbound.slow import SlowHandlers
from textback.storage import outbox as outbox_states
from textback.storage.slow_jobs import outbox_key
from textback.storage.tables import contacts


@dataclass(frozen=True)
class Followup:
    """A message the phone got after the webhook's answer: a slow handler's reply."""

    text: str
    media: tuple[str, ...]
    sid: str


@dataclass(frozen=True)
class PhoneReply:
    """What the server answered: HTTP status, the TwiML, and the messages in it.

    ``followups`` are the replies of the slow handlers the message started (its TwiML holds
    only their ack), sent to the phone as a worker would send them.
    """

    status: int
    twiml: str
    messages: tuple[tuple[str, tuple[str, ...]], ...]
    sid: str
    followups: tuple[Followup, ...] = ()

    @property
    def text(self) -> str:
        """The text of the reply (of all its messages, one per line); "" for no reply."""
        return "\n".join(text for text, _ in self.messages)

    @property
    def media(self) -> tuple[str, ...]:
        """The picture URLs in the reply."""
        return tuple(url for _, urls in self.messages for url in urls)


class Phone:
    """A fake phone that texts an app through its real webhook route, signing every request.

    ``number`` is who the phone is (``from_`` of every message unless given); ``to`` is the
    number it texts.
    """

    def __init__(
        self,
        app: Flask,
        token: str,
        *,
        public_url: str | None = None,
        number: str = DEFAULT_FROM,
        to: str = DEFAULT_TO,
    ) -> None:
        self.app = app
        self.client = app.test_client()
        self.token = token
        self.base = public_url or "http://localhost"
        self.number = number
        self.to = to
        self.last_form: list[tuple[str, str]] = []
        self.sent: dict[str, list[tuple[str, str]]] = {}
        self.worker = OfflineWorker(app)

    def post(self, path: str, pairs: Sequence[tuple[str, str]], *, token: str | None = None) -> Any:
        """POST a signed form to ``path`` (signed with ``token``, the app's token by default)."""
        body, headers = signed_request(token or self.token, self.base + path, pairs)
        return self.client.post(path, data=body, headers=headers)

    def send(
        self,
        body: str,
        *,
        from_: str | None = None,
        to: str | None = None,
        media: Sequence[tuple[str, str] | str] = (),
        sid: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> PhoneReply:
        """Text ``body`` to the app and return its reply.

        ``media`` are picture URLs (or (URL, content type) pairs); ``sid`` fixes the
        MessageSid (shaped like Twilio's, ``"SM"`` and 32 hex digits, or the webhook is refused
        with 400); ``extra`` adds form parameters (a WhatsApp ``ProfileName``, say).
        """
        pictures = [(m, "image/jpeg") if isinstance(m, str) else m for m in media]
        form = inbound_form(
            body,
            from_=from_ or self.number,
            to=to or self.to,
            media=pictures,
            sid=sid,
            extra=extra,
        )
        return self._deliver(form)

    def mms(
        self,
        *urls: str,
        body: str = "",
        content_type: str = "image/jpeg",
        from_: str | None = None,
    ) -> PhoneReply:
        """Send pictures (an MMS, MessageSid ``MM...``) with an optional ``body``."""
        if not urls:
            raise ValueError("mms() needs at least one picture URL")
        return self.send(body, from_=from_, media=[(url, content_type) for url in urls])

    def stop(self, *, from_: str | None = None, word: str = "STOP") -> PhoneReply:
        """Opt out, as a person texting STOP (or another opt-out ``word``) does.

        The reply is empty unless the app answers carrier commands itself
        (``TEXTBACK_CARRIER_REPLIES=textback``): on a real number Twilio confirms a STOP.
        """
        return self.send(word, from_=from_)

    def start(self, *, from_: str | None = None, word: str = "START") -> PhoneReply:
        """Opt back in with START (or another opt-in ``word``); from a phone that has not opted
        out, START is an ordinary message that the rules and handlers answer."""
        return self.send(word, from_=from_)

    def replay(self, sid: str | None = None) -> PhoneReply:
        """Deliver a message again, as Twilio does when it retries a webhook.

        Without ``sid`` the last message is replayed; with one, that earlier message.
        """
        if sid is None:
            if not self.last_form:
                raise ValueError("nothing to replay: send a message first")
            return self._deliver(self.last_form)
        try:
            return self._deliver(self.sent[sid])
        except KeyError:
            raise ValueError(f"this phone never sent {sid}") from None

    def status(
        self, sid: str, status: str, *, reply_to: str | None = None, error_code: str | None = None
    ) -> int:
        """Post a delivery status callback for message ``sid``; returns the HTTP status.

        ``reply_to`` is the inbound MessageSid a TwiML reply answered (Twilio learns the reply's
        own SID only when it is sent).
        """
        path = "/twilio/status" + (f"?for={reply_to}" if reply_to else "")
        response = self.post(path, status_form(sid, status, error_code=error_code))
        return int(response.status_code)

    def report(
        self, reply: PhoneReply, status: str = "delivered", *, error_code: str | None = None
    ) -> str:
        """Report the delivery of ``reply`` as Twilio would; returns the reply's new SID.

        Post later statuses of the same reply with ``phone.status(sid, ...)``.
        """
        sid = new_sid()
        code = self.status(sid, status, reply_to=reply.sid, error_code=error_code)
        if code >= 300:
            raise AssertionError(f"the status callback was answered {code}")
        return sid

    def messages(self, number: str | None = None) -> list[Any]:
        """The stored messages from and to ``number`` (this phone's by default), oldest first.

        Each row has ``direction``, ``body``, ``media``, ``status``, ``sid``, ``source``...
        """
        store = self.app.extensions["textback"].store
        return list(store.recent_messages(contact=number or self.number, limit=1000))

    def is_opted_out(self, number: str | None = None) -> bool:
        """Whether ``number`` (this phone's by default) has opted out of messages from us."""
        engine = self.app.extensions["textback"].store.engine
        with engine.connect() as connection:
            opted_out = connection.execute(
                select(contacts.c.opted_out).where(
                    and_(
                        contacts.c.number == (number or self.number),
                        contacts.c.our_number == self.to,
                    )
                )
            ).scalar()
        return bool(opted_out)

    def _deliver(self, form: list[tuple[str, str]]) -> PhoneReply:
        self.last_form = form
        sid = dict(form).get("MessageSid", "")
        self.sent[sid] = form
        response = self.post("/twilio", form)
        text = response.get_data(as_text=True)
        ok = response.status_code == 200
        followups = self.worker.drain()
        return PhoneReply(
            response.status_code, text, parse_twiml(text) if ok else (), sid, followups
        )


class OfflineOutbox(Outbox):
    """The outbox of the phone's worker: a send is recorded as sent (in the outbox and the
    message log, with a made-up SID) and kept for the phone instead of calling Twilio. The
    opt-out is checked as the real outbox checks it. Only slow handlers' replies are sent:
    any other row (a flow's reminder, a broadcast) stays in the outbox, as it was."""

    def __init__(self, app: Flask, queue: MemoryHuey) -> None:
        service = app.extensions["textback"]
        super().__init__(service.settings, service.store, queue)
        self.delivered: list[Followup] = []

    def deliver(self, entry_id: int) -> Outcome | None:
        row = self.rows.get(entry_id)
        if row is None or not (row.key or "").startswith(outbox_key("")):
            return None
        entry = self.rows.claim(entry_id, self.settings.outbox_stale_after)
        if entry is None:
            return None
        sender = None if is_messaging_service(entry.sender) else entry.sender
        if self.store.opt_out_of(sender, entry.to_number) is not None:
            self.rows.finish(entry.id, outbox_states.CANCELLED, "opted out")
            return Outcome(outbox_states.CANCELLED)
        sid = new_sid()
        self.rows.sent(entry, sid, "sent", self.settings.account_sid or "")
        self.delivered.append(Followup(entry.body, tuple(entry.media), sid))
        return Outcome(outbox_states.SENT, sid=sid, status="sent")


class OfflineWorker:
    """The app's slow handlers on a queue in memory, run when the phone asks (``drain``)."""

    def __init__(self, app: Flask) -> None:
        service = app.extensions["textback"]
        self.queue = MemoryHuey(name="textback-phone", results=False)
        self.outbox = OfflineOutbox(app, self.queue)
        # The service's cached ``slow``, set before the first message uses it.
        service.__dict__["slow"] = SlowHandlers(self.outbox, lambda: (service.bot, service.rules))

    def drain(self) -> tuple[Followup, ...]:
        """Run the queued slow jobs and the sends they queued; returns what was sent."""
        while (task := self.queue.dequeue()) is not None:
            self.queue.execute(task)
        sent = tuple(self.outbox.delivered)
        self.outbox.delivered.clear()
        return sent
