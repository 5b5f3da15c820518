"""Personal API tokens over real HTTP: made, listed and revoked through the named endpoints
(gradio_client, logged in), used as `Authorization: Bearer` on the REST routes."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from playwright.async_api import async_playwright, expect

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.web.audit import AUDIT_FILE
from ollamastack.web.edge import Edge
from ollamastack.web.rest.door import rest_middleware
from ollamastack.web.ui.tokens import build_token_section
from tests.support.api_helpers import OllamaView, Served, app_settings, run, serve
from tests.support.ollama_server import FakeOllama
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

LOGINS = "ann:pw-ann,bob:pw-bob"


@pytest.fixture(scope="module")
def served(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("data")
    with serve(shared_server, data, auth=LOGINS, admin_users="ann") as served:
        yield served


def new_token(client: Client, name: str, days: float = 0) -> str:
    made = client.predict(name, days, api_name="/create_api_token")
    assert made["name"] == name and made["token"].startswith("osk_")
    return made["token"]


def rest(served: Served, token: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=served.url, headers=headers, timeout=30)


def test_rest_routes_need_a_valid_token_when_login_is_on(served: Served, ann: Client) -> None:
    with rest(served, None) as anonymous:
        for path in ("/api/v1/conversations", "/api/v1/models", "/api/v1/health"):
            refused = anonymous.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["error"]["type"] == "unauthorized"
        chat = anonymous.post("/api/v1/chat", json={"message": "hi"})
        assert chat.status_code == 401
    with rest(served, "osk_made-up") as forged:
        assert forged.get("/api/v1/conversations").json() == {"error": {
            "type": "unauthorized", "message": "The API token is unknown, revoked or expired."}}
    with rest(served, new_token(ann, "check")) as valid:
        assert valid.get("/api/v1/conversations").status_code == 200
    ann.predict("check", api_name="/revoke_api_token")


def test_a_token_acts_as_its_user_and_another_users_conversation_is_404(
    served: Served, ann: Client, bob: Client, ollama: OllamaView
) -> None:
    ann_token, bob_token = new_token(ann, "ann-laptop"), new_token(bob, "bob-laptop")
    with rest(served, ann_token) as as_ann, rest(served, bob_token) as as_bob:
        ollama.enqueue_text("Hello Ann.")
        chat = as_ann.post("/api/v1/chat", json={"message": "I am Ann."})
        conversation = chat.json()["conversation_id"]
        ids = [c["conversation_id"] for c in as_ann.get("/api/v1/conversations").json()]
        assert conversation in ids
        assert conversation in [s["session_id"] for s in ann.predict(api_name="/sessions")]
        assert conversation not in [
            c["conversation_id"] for c in as_bob.get("/api/v1/conversations").json()]
        missing = {"type": "not_found",
                   "message": f"No conversation with id {conversation} was found."}
        for method in ("GET", "DELETE"):
            answer = as_bob.request(method, f"/api/v1/conversations/{conversation}")
            assert (answer.status_code, answer.json()["error"]) == (404, missing)
        continued = as_bob.post("/api/v1/chat", json={"message": "hi",
                                                      "conversation_id": conversation})
        assert (continued.status_code, continued.json()["error"]) == (404, missing)
        assert len(as_ann.get(f"/api/v1/conversations/{conversation}").json()) == 2
    served.app.edge.audit_log.flush()  # the audit log is written by a bus subscriber
    records = [json.loads(line) for line in
               (served.settings.data_dir / AUDIT_FILE).read_text().splitlines()]
    chats = [(r["user"], r["session_id"], r["outcome"]) for r in records
             if r["endpoint"] == "/api/v1/chat"]
    assert chats[-2:] == [("ann", conversation, "ok"), ("bob", conversation, "refused")]
    ann.predict("ann-laptop", api_name="/revoke_api_token")
    bob.predict("bob-laptop", api_name="/revoke_api_token")


def test_tokens_are_listed_without_the_secret_with_last_use_and_revoked_are_refused(
    served: Served, ann: Client, bob: Client
) -> None:
    token = new_token(ann, "script", days=30)
    listed = ann.predict(api_name="/api_tokens")
    assert [(t["name"], t["last_used"]) for t in listed] == [("script", None)]
    assert 29.9 * 86400 < listed[0]["expires_at"] - listed[0]["created_at"] <= 30 * 86400
    assert token not in json.dumps(listed)
    assert bob.predict(api_name="/api_tokens") == []  # each user sees only their own

    with rest(served, token) as client:
        assert client.get("/api/v1/conversations").status_code == 200
        used = ann.predict(api_name="/api_tokens")[0]["last_used"]
        assert used is not None and abs(used - time.time()) < 30
        assert run(bob, "script", api_name="/revoke_api_token") == (
            [], "You have no token named 'script'.")  # bob cannot revoke ann's token
        assert run(ann, "script", api_name="/create_api_token") == (
            [], "You already have a token named 'script'; revoke it first.")
        assert ann.predict("script", api_name="/revoke_api_token") == {
            "name": "script", "revoked": True}
        assert client.get("/api/v1/conversations").status_code == 401
    assert ann.predict(api_name="/api_tokens") == []


def test_an_expired_token_is_refused(served: Served, ann: Client) -> None:
    token = new_token(ann, "brief", days=1.5 / 86400)  # 1.5 seconds
    with rest(served, token) as client:
        assert client.get("/api/v1/conversations").status_code == 200
        deadline = time.monotonic() + 10
        while (status := client.get("/api/v1/conversations").status_code) == 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status == 401
    ann.predict("brief", api_name="/revoke_api_token")


@pytest.mark.parametrize(("arguments", "message"), [
    (("", 0), "A token name is 1 to 64 letters, digits, spaces, '_', '.' or '-', starting "
              "with a letter or digit."),
    (("ok", -1), "The expiry must be a number of days from 0 (never) to 3650."),
])
def test_bad_token_requests_are_refused_with_a_reason(
    ann: Client, arguments: tuple, message: str
) -> None:
    assert run(ann, *arguments, api_name="/create_api_token") == ([], message)


def test_only_administrators_may_delete_models(served: Served, bob: Client) -> None:
    with rest(served, new_token(bob, "bob-models")) as as_bob:
        refused = as_bob.delete("/api/v1/models/llama3.2")
        assert refused.status_code == 403
        assert refused.json()["error"] == {"type": "forbidden", "message": (
            "Only administrators may pull or delete models here "
            "(the logins in OLLAMASTACK_ADMIN_USERS).")}
    bob.predict("bob-models", api_name="/revoke_api_token")


def test_tokens_are_in_no_log_no_audit_record_and_not_in_clear_in_the_database(
    served: Served, ann: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        token = new_token(ann, "secret-check")
        with rest(served, token) as client:
            client.get("/api/v1/conversations")
            client.get("/api/v1/conversations/not-an-id")
        ann.predict("secret-check", api_name="/revoke_api_token")
    secret = token.removeprefix("osk_")
    assert secret not in caplog.text
    served.app.edge.audit_log.flush()
    assert secret not in (served.settings.data_dir / AUDIT_FILE).read_text()
    stored = b"".join(p.read_bytes() for p in Path(served.settings.data_dir).glob("*sqlite*"))
    assert stored and secret.encode() not in stored


def test_without_login_there_are_no_token_endpoints_and_rest_is_open(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path) as app:
        endpoints = Client(app.url, verbose=False).view_api(
            print_info=False, return_format="dict")["named_endpoints"]
        assert not {"/create_api_token", "/api_tokens", "/revoke_api_token"} & set(endpoints)
        with httpx.Client(base_url=app.url) as open_api:
            assert open_api.get("/api/v1/conversations").json() == []


def test_the_named_api_lists_the_token_endpoints_with_login(ann: Client) -> None:
    endpoints = ann.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {name: [p["parameter_name"] for p in endpoints[name]["parameters"]]
            for name in ("/create_api_token", "/api_tokens", "/revoke_api_token")} == {
        "/create_api_token": ["name", "days"], "/api_tokens": [], "/revoke_api_token": ["name"]}


# -- the page's section, in a browser ---------------------------------------------------------


@contextmanager
def token_page(server: FakeOllama, data_dir: Path) -> Iterator[str]:
    """The "API tokens" section on a page of its own, with the REST routes, behind a login."""
    settings = app_settings(server, data_dir, auth="ann:pw-ann")
    handle, edge = ServiceHandle(settings), Edge(settings)
    with gr.Blocks() as blocks:
        build_token_section(blocks, settings, handle, edge)
    _, url, _ = blocks.launch(
        server_name="127.0.0.1", server_port=settings.server_port, auth=settings.logins,
        prevent_thread_lock=True, quiet=True,
        app_kwargs={"middleware": rest_middleware(settings, handle, edge)})
    try:
        yield url.rstrip("/")
    finally:
        blocks.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed")
async def test_the_page_section_makes_shows_once_and_revokes_a_token(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with token_page(ollama_server, tmp_path) as url:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(url)
                await page.get_by_label("username").fill("ann")
                await page.get_by_label("password").fill("pw-ann")
                await page.get_by_role("button", name="Login").click()
                await page.locator("#token-name textarea, #token-name input").fill("laptop")
                await page.locator("#create-token").click()
                shown = page.locator("#new-token textarea, #new-token input")
                await expect(shown).to_have_value(re.compile(r"^osk_[\w-]{43}$"))
                token = await shown.input_value()
                table = page.locator("#token-list")
                await expect(table).to_contain_text("laptop")
                await expect(table).to_contain_text("never")
                async with httpx.AsyncClient(
                    base_url=url, timeout=30, headers={"authorization": f"Bearer {token}"}
                ) as api:
                    assert (await api.get("/api/v1/conversations")).status_code == 200
                    await page.locator("#revoke-name textarea, #revoke-name input").fill(
                        "laptop")
                    await page.locator("#revoke-token").click()
                    await expect(table).not_to_contain_text("laptop")
                    assert (await api.get("/api/v1/conversations")).status_code == 401
            finally:
                await browser.close()
