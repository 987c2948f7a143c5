"""``textback serve --bind``: what it accepts, and one clear line for what it does not."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from textback.cli import main
from textback.cli.server import Bind


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:8000", "127.0.0.1", 8000),
        ("0.0.0.0:80", "0.0.0.0", 80),
        ("localhost:65535", "localhost", 65535),
        ("[::1]:8000", "::1", 8000),
    ],
)
def test_bind_accepts_host_and_port(text: str, host: str, port: int) -> None:
    assert Bind.parse(text) == Bind(host, port)


# port 0 would give each worker its own random port: granian opens one listener per worker
@pytest.mark.parametrize("text", ["8000", "127.0.0.1", ":8000", "127.0.0.1:0", "h:65536", "h:x"])
def test_bind_refuses_what_is_not_host_and_port(text: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        Bind.parse(text)


def test_serve_names_the_bad_option_in_one_line() -> None:
    result = CliRunner().invoke(main, ["serve", "--bind", "8000"])
    assert result.exit_code == 2
    assert "Invalid value for --bind: '8000' is not HOST:PORT, like 127.0.0.1:8000" in result.output
    assert "Traceback" not in result.output
