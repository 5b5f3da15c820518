"""Logins and who a request comes from, over real HTTP to the launched app: failed logins
limited per username and per client address and recorded in the audit log, our login page (in
place of Gradio's) showing why a try was refused, logout, session cookies kept to this site,
X-Forwarded-For believed only from the configured proxies, and settings the app refuses to
start with. What the login page looks like and where focus goes: test_browser_models_login.py.

MCP calls attributed to their real caller: test_mcp.py. Uploads: test_uploads.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from ollamastack.errors import SettingsError
from ollamastack.web.app import build_app, launch
from ollamastack.web.audit import AUDIT_FILE
from tests.support.api_helpers import Served, app_settings, serve
from tests.support.ollama_server import FakeOllama
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

LOGINS = "ann:pw-ann,bob:pw-bob"
WRONG = {"status": 400, "detail": "Incorrect credentials."}


def waiting(seconds: int) -> dict[str, Any]:
    return {"status": 429, "detail": f"Too many failed logins. Try again in {seconds} s.",
            "retry_after": str(seconds)}


def http(app: Served, source: str = "127.0.0.1") -> httpx.Client:
    """A client of the app whose requests leave from the loopback address `source` (all of
    127.0.0.0/8 is this machine: a second client address without a second machine)."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=app.url, transport=transport, timeout=30)


def log_in(client: httpx.Client, user: str, password: str) -> dict[str, Any]:
    """Gradio's login form as its page posts it (multipart), and what came back."""
    reply = client.post("/login", files={"username": (None, user), "password": (None, password)})
    outcome = {"status": reply.status_code, "detail": reply.json().get("detail")}
    if "retry-after" in reply.headers:
        outcome["retry_after"] = reply.headers["retry-after"]
    return outcome


def audit(app: Served, count: int) -> list[tuple[str, str, str, str, str]]:
    """(endpoint, user, client, outcome, error) of the audit log once it has `count` records."""
    path = app.settings.data_dir / AUDIT_FILE
    # a reply can arrive a moment before its entry is written (off the request's path)
    assert app.app.edge.audit_log.wait_for(count), path.read_text() if path.exists() else ""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["endpoint"], r["user"], r["client"], r["outcome"], r.get("error", ""))
            for r in records]


@pytest.fixture
def app(ollama_server: FakeOllama, tmp_path: Path) -> Iterator[Served]:
    with serve(ollama_server, tmp_path / "data", auth=LOGINS, login_attempts=3) as served:
        yield served


# -- the limit on failed logins ----------------------------------------------------------------


def test_failed_logins_make_a_username_and_an_address_wait(app: Served) -> None:
    with http(app) as here, http(app, "127.0.0.5") as other, http(app, "127.0.0.6") as third:
        assert [log_in(here, "ann", f"guess-{n}") for n in range(3)] == [WRONG] * 3
        # the 4th try waits, even with the right password, and so does another name from here
        assert log_in(here, "ann", "pw-ann") == waiting(1)
        assert log_in(here, "bob", "pw-bob") == waiting(1)
        # from elsewhere: bob logs in; ann's name still waits
        assert log_in(other, "bob", "pw-bob") == {"status": 200, "detail": None}
        assert log_in(third, "ann", "pw-ann") == waiting(1)

        time.sleep(1.1)  # the wait is a clock: nothing to await
        assert log_in(here, "ann", "guess-3") == WRONG  # one more failure: now 2 s
        assert log_in(here, "ann", "pw-ann") == waiting(2)
        time.sleep(2.1)
        assert log_in(here, "ann", "pw-ann") == {"status": 200, "detail": None}
        assert here.get("/config").status_code == 200  # logged in: the cookie works

    failed = ("login", "ann", "127.0.0.1", "forbidden", "Incorrect credentials.")
    assert audit(app, 10) == [
        failed, failed, failed,
        ("login", "ann", "127.0.0.1", "rate_limited", waiting(1)["detail"]),
        ("login", "bob", "127.0.0.1", "rate_limited", waiting(1)["detail"]),
        ("login", "bob", "127.0.0.5", "ok", ""),
        ("login", "ann", "127.0.0.6", "rate_limited", waiting(1)["detail"]),
        failed,
        ("login", "ann", "127.0.0.1", "rate_limited", waiting(2)["detail"]),
        ("login", "ann", "127.0.0.1", "ok", ""),
    ]
    log = (app.settings.data_dir / AUDIT_FILE).read_text()
    assert "guess-" not in log and "pw-ann" not in log  # no password, wrong or right


def test_a_burst_of_guesses_gets_only_the_allowed_failures(app: Served) -> None:
    """Tries sent all at once are counted before Gradio answers any of them."""

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            replies = await asyncio.gather(*(
                client.post("/login", data={"username": f"user{n}", "password": "guess"})
                for n in range(40)))
        return sorted(r.status_code for r in replies)

    assert asyncio.run(burst()) == [400] * 3 + [429] * 37
    # names that are not logins are not written (people type passwords there)
    records = audit(app, 40)
    assert {(user, outcome) for _, user, _, outcome, _ in records} == {
        ("", "forbidden"), ("", "rate_limited")}


def test_session_cookies_stay_on_this_site_until_the_browser_closes(app: Served) -> None:
    with http(app) as client:
        reply = client.post("/login", data={"username": "bob", "password": "pw-bob"})
    assert reply.status_code == 200
    cookies = reply.headers.get_list("set-cookie")
    shapes = [re.sub(r"^access-token-(unsecure-)?[\w-]+=[\w-]+;", r"access-token-\1ID=TOKEN;", c)
              for c in cookies]
    assert shapes == [  # Gradio's own: SameSite=none on the first (for cross-site iframes)
        "access-token-ID=TOKEN; HttpOnly; Path=/; SameSite=Lax; Secure",
        "access-token-unsecure-ID=TOKEN; HttpOnly; Path=/; SameSite=lax",
    ]
    assert not any(re.search("max-age|expires", c, re.I) for c in cookies)  # session cookies


pytest_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed at /usr/bin/chromium (`make test` installs it)",
)


@pytest_chromium
async def test_the_login_page_says_why_a_try_is_refused(app: Served) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(app.url)
            notice = page.get_by_role("alert")
            await page.get_by_label("Username").fill("ann")
            for attempt in range(4):
                await page.get_by_label("Password").fill(f"guess-{attempt}")
                async with page.expect_response(re.compile(r"/login$")) as reply:
                    await page.get_by_role("button", name="Log in").click()
                assert (await reply.value).status == (400 if attempt < 3 else 429)
                if attempt < 3:
                    await expect(notice).to_have_text(
                        "Wrong username or password. Check both and try again.")
                    await expect(page.get_by_label("Username")).to_have_value("ann")
            await expect(notice).to_have_text("Too many failed logins. Try again in 1 s.")

            await page.wait_for_timeout(1100)
            await page.get_by_label("Password").fill("pw-ann")
            await page.get_by_role("button", name="Log in").click()
            await expect(page.locator("#status")).to_contain_text("Ollama 0.12.6")  # the app
        finally:
            await browser.close()


def test_without_a_login_the_page_is_ours_and_posts_to_gradios_login(app: Served) -> None:
    """Gradio's page asking for a login is swapped for ours; logged in, Gradio's app page
    comes as it is; `GET /logout` forgets the login and sends the browser back to `/`."""
    with http(app) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert int(page.headers["content-length"]) == len(page.content)
        assert "window.gradio_config" not in page.text
        assert "<h1>OllamaStack</h1>" in page.text
        assert f'action="{app.url}/login"' in page.text
        assert client.get("/config").status_code == 401

        assert log_in(client, "ann", "pw-ann") == {"status": 200, "detail": None}
        page = client.get("/")
        assert "window.gradio_config" in page.text and "<h1>OllamaStack</h1>" not in page.text
        assert client.get("/config").status_code == 200

        out = client.get("/logout")
        assert (out.status_code, out.headers["location"].rstrip("/")) == (302, app.url)
        assert client.get("/config").status_code == 401  # the login is forgotten
        assert "<h1>OllamaStack</h1>" in client.get("/").text


# -- whose X-Forwarded-For is believed -------------------------------------------------------


def client_seen(app: Served, source: str, forwarded_for: str, **headers: str) -> str:
    """The client address the audit log records for one REST call sent from `source` with
    this X-Forwarded-For."""
    path = app.settings.data_dir / AUDIT_FILE
    before = len(path.read_text().splitlines()) if path.exists() else 0
    with http(app, source) as client:
        posted = client.post("/gradio_api/call/sessions", json={"data": []},
                             headers={"X-Forwarded-For": forwarded_for, **headers})
        assert posted.status_code == 200, posted.text
        stream = client.get(f"/gradio_api/call/sessions/{posted.json()['event_id']}").text
    assert stream.startswith("event: complete"), stream
    return audit(app, before + 1)[before][2]


def test_forwarded_for_is_believed_from_the_trusted_proxies_only(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path / "a") as app:  # no proxy: not even a loopback sender
        assert client_seen(app, "127.0.0.1", "203.0.113.9") == "127.0.0.1"
        assert client_seen(app, "127.0.0.5", "203.0.113.9") == "127.0.0.5"
    with serve(ollama_server, tmp_path / "b", trusted_proxies="127.0.0.5") as app:
        assert client_seen(app, "127.0.0.5", "203.0.113.9") == "203.0.113.9"  # nginx
        assert client_seen(app, "127.0.0.1", "203.0.113.9") == "127.0.0.1"
    with serve(ollama_server, tmp_path / "c", trusted_proxies="127.0.0.0/24") as app:
        assert client_seen(app, "127.0.0.6", "198.51.100.4") == "198.51.100.4"


# -- settings refused at start-up -----------------------------------------------------------


@pytest.mark.parametrize(("overrides", "error"), [
    ({"mcp": True, "auth": LOGINS},
     "OLLAMASTACK_MCP cannot be used with OLLAMASTACK_AUTH: Gradio's MCP server runs tools "
     "without the caller's login, so every tool call would be refused. Turn one of them off."),
    ({"trusted_proxies": "10.0.0.5,nginx"},
     "Invalid setting OLLAMASTACK_TRUSTED_PROXIES: 'nginx' is not an IP address or a network "
     "(write 172.18.0.5 or 172.18.0.0/16; * believes any sender)"),
])
def test_settings_the_app_cannot_serve_stop_the_launch(
    ollama_server: FakeOllama, tmp_path: Path, overrides: dict[str, Any], error: str
) -> None:
    settings = app_settings(ollama_server, tmp_path, **overrides)
    app = build_app(settings)
    with pytest.raises(SettingsError) as raised:
        launch(app, settings, prevent_thread_lock=True, quiet=True)
    assert str(raised.value) == error
    with pytest.raises(httpx.ConnectError):  # nothing was started
        httpx.get(f"http://127.0.0.1:{settings.server_port}/healthz")
