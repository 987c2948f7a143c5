"""The Flask side of textback: one blueprint per concern."""

from __future__ import annotations

from flask import current_app

from textback.service import Textback


def textback() -> Textback:
    """The Textback object of the current app."""
    service = current_app.extensions["textback"]
    assert isinstance(service, Textback)
    return service
