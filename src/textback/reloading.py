"""Live reload: answer from the rules file (and TEXTBACK_BOT) as they are now on disk.

``textback run`` watches them and reloads within a second of a change (a new user who writes
``textback.toml`` next to a running server sees it answer from it). A file that does not load
— the same checks as ``textback check`` — is refused: the error is logged in one line and the
rules already in use stay. A running app swaps its rules and bot in one assignment each, so
a message is answered wholly by the old rules or wholly by the new.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from pathlib import Path

from textback.app import import_bot
from textback.core.bot import Bot
from textback.errors import TextbackError
from textback.rulesfile.rules import default_rules
from textback.rulesfile.rules import load_rules
from textback.service import Textback

log = logging.getLogger(__name__)

DEFAULT_RULES = Path("textback.toml")
Stamp = tuple[tuple[str, int, int] | None, ...]


class Reloader:
    """Reloads one app's rules file and bot when asked (or when they change, with ``watch``)."""

    def __init__(self, service: Textback, *, bot_path: str | None) -> None:
        self.service = service
        configured = service.settings.rules_path
        # With no TEXTBACK_RULES, textback.toml in this folder is the rules file once it exists.
        self.rules_path = configured if configured is not None else DEFAULT_RULES
        self.bot_path = bot_path
        self._stamp = self.stamp()

    def _bot_file(self) -> Path | None:
        if not self.bot_path:
            return None
        module = sys.modules.get(self.bot_path.partition(":")[0])
        filename = getattr(module, "__file__", None)
        return Path(filename) if filename else None

    def stamp(self) -> Stamp:
        """What the watched files look like now: (path, mtime, size), None for a missing one."""
        stamps: list[tuple[str, int, int] | None] = []
        for path in (self.rules_path, self._bot_file()):
            try:
                info = path.stat() if path is not None else None
            except OSError:
                info = None
            stamps.append((str(path), info.st_mtime_ns, info.st_size) if info else None)
        return tuple(stamps)

    def reload(self) -> bool:
        """Load the rules and the bot again; on any problem keep the old ones. True if swapped."""
        try:
            path = self.rules_path
            rules = load_rules(path) if path.is_file() else default_rules()
            bot = self._load_bot() if self.bot_path else self.service.bot
        except TextbackError as exc:
            log.error("the rules were not reloaded, the old ones stay: %s", exc)
            return False
        except Exception as exc:  # the user's bot module failed to import
            log.error(
                "the bot was not reloaded, the old one stays: %s: %s", type(exc).__name__, exc
            )
            return False
        self.service.rules, self.service.bot = rules, bot
        log.info(
            "reloaded %s (%d rule(s), %d flow(s))%s",
            rules.path,
            len(rules.routes),
            len(rules.flows),
            f" and {self.bot_path}" if self.bot_path else "",
        )
        return True

    def _load_bot(self) -> Bot:
        assert self.bot_path is not None
        module = sys.modules.get(self.bot_path.partition(":")[0])
        if module is not None:
            importlib.reload(module)  # the module's own code, run again; not what it imports
        return import_bot(self.bot_path)

    def check(self) -> bool:
        """Reload if a watched file changed since the last look; True if the rules were swapped."""
        stamp = self.stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return self.reload()

    def watch(self, interval: float = 0.5) -> threading.Event:
        """Check every ``interval`` seconds in a daemon thread; set the returned event to stop."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                self.check()

        threading.Thread(target=loop, name="textback-reload", daemon=True).start()
        return stop
