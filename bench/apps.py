"""The apps the benchmark compares textback with, as WSGI callables gunicorn and granian import.

(a) ``bare``: a WSGI callable that parses the form and returns a fixed TwiML document, the
ceiling for Python on the machine. (b) ``tutorial``: Twilio's Flask quick-start (Flask and
``MessagingResponse``, no checks, no storage), what users start from. (c) textback itself runs
as ``textback serve``; ``textback_app()`` builds the same app in this process, for the profile.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from flask import request
from twilio.twiml.messaging_response import MessagingResponse

TWIML = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Response><Message>Thanks, your vote is in.</Message></Response>"
)
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def bare(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """(a): read and parse the form, answer with fixed TwiML."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    form = dict(parse_qsl(environ["wsgi.input"].read(length).decode()))
    status = "200 OK" if form.get("MessageSid") else "400 Bad Request"
    start_response(
        status, [("Content-Type", "application/xml"), ("Content-Length", str(len(TWIML)))]
    )
    return [TWIML]


tutorial = Flask("tutorial")


@tutorial.route("/twilio", methods=["GET", "POST"])
def incoming_sms() -> str:
    """(b): Twilio's "reply to an incoming message" example, as published."""
    body = request.values.get("Body", None)
    resp = MessagingResponse()
    if body == "hello":
        resp.message("Hi!")
    else:
        resp.message("Thanks, your vote is in.")
    return str(resp)


def textback_app() -> Flask:
    """(c) in one process, as a ``textback serve`` worker builds it (INFO logging to stderr,
    settings from the environment), for the profile."""
    from textback.app import create_app
    from textback.cli.resources import setup_logging

    setup_logging()
    return create_app()
