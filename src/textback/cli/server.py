"""``textback serve``: gunicorn, each worker building its own app (and database pool)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class TextbackServer(BaseApplication):  # type: ignore[misc]
    """Gunicorn, configured in code; the app is created in each worker after the fork."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from textback.app import create_app

        return create_app()


def serve(*, bind: str, workers: int) -> None:
    """Serve until stopped."""
    TextbackServer(
        {
            "bind": bind,
            "workers": workers,
            "worker_class": "sync",
            "timeout": 30,
            "graceful_timeout": 10,
        }
    ).run()
