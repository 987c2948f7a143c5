"""A take-over holds across processes: two real `textback serve --workers 2` on one database
(SQLite file or PostgreSQL); the admin of one takes a contact over, and every webhook, on any
worker of either server, is then answered with silence, until the hand-back.

Each request goes on a new connection (``Connection: close``), so the kernel may hand it to
any worker; the admin's cookie is sent by hand (it is Secure; the servers speak plain HTTP).
"""

from __future__ import annotations

import re
from pathlib import Path

import requests
from sqlalchemy import select

from tests.served import Served
from tests.served import textback_serve
from textback.channel.forms import DEFAULT_FROM
from textback.storage.engine import make_engine
from textback.storage.tables import contacts

from .test_admin_workers import fresh_database  # noqa: F401

PASSWORD = "a plain-text passphrase"


def request(
    server: Served, method: str, path: str, cookie: str | None, **form: str
) -> requests.Response:
    headers = {"Connection": "close"}
    if cookie:
        headers["Cookie"] = f"session={cookie}"
    return requests.request(
        method,
        server.public_url + path,
        data=form or None,
        headers=headers,
        allow_redirects=False,
        timeout=30,
    )


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def log_in(server: Served) -> str:
    form = request(server, "GET", "/admin/login", None)
    answer = requests.post(
        server.public_url + "/admin/login",
        data={"csrf_token": csrf_token(form.text), "password": PASSWORD},
        headers={"Connection": "close", "Cookie": f"session={form.cookies['session']}"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text
    return answer.cookies["session"]


def act(server: Served, cookie: str, contact_id: int, action: str) -> str:
    """POST one of the thread's actions as the page's form does; the page it leads back to."""
    thread = f"/admin/conversations/{contact_id}"
    token = csrf_token(request(server, "GET", thread, cookie).text)
    done = request(server, "POST", f"{thread}/{action}", cookie, csrf_token=token)
    assert done.status_code == 302, done.text
    # The flashed message travels in the session cookie the POST answered with.
    return request(server, "GET", thread, done.cookies.get("session", cookie)).text


def answered(servers: list[Served], body: str, rounds: int) -> list[bool]:
    """Send ``body`` ``rounds`` times to each server: whether each got a reply message."""
    replies = []
    for _ in range(rounds):
        for server in servers:
            status, twiml = server.post_webhook(body)
            assert status == 200 and b"<Response" in twiml, server.output()
            replies.append(b"<Message" in twiml)
    return replies


def test_a_take_over_on_one_server_silences_every_worker_of_both(
    tmp_path: Path,
    fresh_database: str,  # noqa: F811
) -> None:
    env = {"TEXTBACK_ADMIN_PASSWORD": PASSWORD}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        textback_serve(tmp_path / "a", database_url=fresh_database, env=env) as first,
        textback_serve(tmp_path / "b", database_url=fresh_database, env=env) as second,
    ):
        servers = [first, second]
        assert answered(servers, "hello", 4) == [True] * 8  # the bot answers, everywhere
        engine = make_engine(fresh_database)
        with engine.connect() as connection:
            contact_id = connection.execute(
                select(contacts.c.id).where(contacts.c.number == DEFAULT_FROM)
            ).scalar_one()
        engine.dispose()

        cookie = log_in(first)
        page = act(first, cookie, contact_id, "take-over")
        assert "Taken over: the bot no longer answers this contact" in page
        assert answered(servers, "is anyone there?", 8) == [False] * 16
        listing = request(second, "GET", "/admin", log_in(second)).text
        assert "Taken over by a person" in listing and 'class="tag warn">waiting ' in listing

        page = act(first, cookie, contact_id, "hand-back")
        assert "Handed back: the bot answers this contact again." in page
        assert answered(servers, "hello again", 8) == [True] * 16
