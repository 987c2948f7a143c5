"""Finding the public URL of a running ngrok agent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from textback.channel.tunnel import ngrok_public_url
from textback.channel.tunnel import tunnels_url
from textback.errors import ConfigError

from .ngrok import ngrok_agent  # noqa: F401
from .ngrok import tunnel
from .prism import free_port


def test_ngrok_https_tunnel_is_found(ngrok_agent: Callable[[list[dict[str, Any]]], str]) -> None:  # noqa: F811
    api = ngrok_agent(
        [tunnel("http://ab12.ngrok.app", "http"), tunnel("https://ab12.ngrok.app", "https")]
    )
    assert ngrok_public_url({"TEXTBACK_NGROK_API": api}) == "https://ab12.ngrok.app"


@pytest.mark.parametrize(
    ("tunnels", "problem"),
    [
        ([], "has no https tunnel"),
        ([tunnel("tcp://0.tcp.ngrok.io:1234", "tcp")], "has no https tunnel"),
    ],
)
def test_ngrok_without_https_tunnel_says_so(
    ngrok_agent: Callable[[list[dict[str, Any]]], str],  # noqa: F811
    tunnels: list[dict[str, Any]],
    problem: str,
) -> None:
    with pytest.raises(ConfigError, match=problem):
        ngrok_public_url({"TEXTBACK_NGROK_API": ngrok_agent(tunnels)})


def test_no_ngrok_agent_says_how_to_start_one() -> None:
    api = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError, match="ngrok http 5000"):
        ngrok_public_url({"TEXTBACK_NGROK_API": api})


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        (None, "http://127.0.0.1:4040/api/tunnels"),
        ("http://127.0.0.1:4041", "http://127.0.0.1:4041/api/tunnels"),
        ("http://127.0.0.1:4041/api/tunnels", "http://127.0.0.1:4041/api/tunnels"),
    ],
)
def test_tunnels_url(api: str | None, expected: str) -> None:
    assert tunnels_url(api) == expected
