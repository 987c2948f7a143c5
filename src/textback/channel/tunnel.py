"""The public URL of a running ngrok agent, read from its local API.

``ngrok http 5000`` serves a local API at ``http://127.0.0.1:4040``; ``GET /api/tunnels``
lists the tunnels with their public URLs. ``TEXTBACK_NGROK_API`` names another address.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import requests

from textback.errors import ConfigError

NGROK_API = "http://127.0.0.1:4040"
TUNNELS_PATH = "/api/tunnels"


def tunnels_url(api: str | None) -> str:
    """The tunnels endpoint of the agent API at ``api`` (a base URL or the endpoint itself)."""
    base = (api or NGROK_API).strip().rstrip("/")
    return base if urlsplit(base).path.endswith(TUNNELS_PATH) else base + TUNNELS_PATH


def ngrok_public_url(environ: Mapping[str, str], *, timeout: float = 5.0) -> str:
    """The https public URL of the running ngrok agent; ConfigError when there is none."""
    url = tunnels_url(environ.get("TEXTBACK_NGROK_API"))
    try:
        answer = requests.get(url, timeout=timeout)
        answer.raise_for_status()
        tunnels = answer.json().get("tunnels") or []
    except requests.RequestException as exc:
        raise ConfigError(
            f"no ngrok agent answers at {url} ({type(exc).__name__}): start one with "
            "`ngrok http 5000`, or give --url"
        ) from None
    except (ValueError, AttributeError):
        raise ConfigError(f"{url} did not answer like an ngrok agent") from None
    for tunnel in tunnels:
        if not isinstance(tunnel, dict):
            continue
        public = str(tunnel.get("public_url") or "")
        if tunnel.get("proto") == "https" or public.startswith("https://"):
            return public.rstrip("/")
    raise ConfigError(
        f"the ngrok agent at {url} has no https tunnel: start one with `ngrok http 5000`"
    )
