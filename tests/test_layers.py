"""The public API stays light: importing it loads none of the web or database stack."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("flask", "werkzeug", "sqlalchemy", "alembic", "twilio")


@pytest.mark.parametrize(
    "statement",
    [
        "import textback",
        "from textback import Bot, Reply, Inbound, END",
        "import textback.core.bot",
        "import textback.testing",
    ],
)
def test_public_api_loads_no_web_or_database_stack(statement: str) -> None:
    code = f"{statement}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_create_app_is_still_importable_from_the_package() -> None:
    from textback import create_app
    from textback.app import create_app as real

    assert create_app is real
