"""The ``textback`` command: one module per group of commands, registered on ``main``."""

from __future__ import annotations

from textback.cli import admin
from textback.cli import broadcast
from textback.cli import check
from textback.cli import contacts
from textback.cli import database
from textback.cli import flows
from textback.cli import init
from textback.cli import log
from textback.cli import replay
from textback.cli import serving
from textback.cli import simulate_command
from textback.cli import takeover
from textback.cli import twilio
from textback.cli import worker
from textback.cli.group import main

__all__ = [
    "admin",
    "broadcast",
    "check",
    "contacts",
    "database",
    "flows",
    "init",
    "log",
    "main",
    "replay",
    "serving",
    "simulate_command",
    "takeover",
    "twilio",
    "worker",
]
