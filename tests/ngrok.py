"""A stand-in for a running ngrok agent's local API, for the tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from http.server import HTTPServer
from typing import Any
from typing import ClassVar

import pytest


class NgrokAgent(BaseHTTPRequestHandler):
    """Answers GET /api/tunnels like a running ngrok agent."""

    tunnels: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        if self.path != "/api/tunnels":
            self.send_error(404)
            return
        body = json.dumps({"tunnels": self.tunnels, "uri": "/api/tunnels"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ngrok_agent() -> Iterator[Callable[[list[dict[str, Any]]], str]]:
    """Start agents answering with the given tunnels: ``api_url = ngrok_agent([...])``."""
    servers: list[HTTPServer] = []

    def start(tunnels: list[dict[str, Any]]) -> str:
        handler = type("Agent", (NgrokAgent,), {"tunnels": tunnels})
        server = HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def tunnel(public_url: str, proto: str) -> dict[str, Any]:
    return {
        "name": f"command_line ({proto})",
        "uri": "/api/tunnels/command_line",
        "public_url": public_url,
        "proto": proto,
        "config": {"addr": "http://localhost:5000", "inspect": True},
        "metrics": {},
    }
