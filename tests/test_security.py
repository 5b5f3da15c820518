"""Hostile users: the rate limit, who may manage models, share links without login, the audit
log and the secrets kept out of every log, security headers and Gradio's file routes, all on
the real app over HTTP where a client would meet them.

Elsewhere: login isolation per endpoint in test_api.py (API) and test_ui.py (page); HTML in
messages in test_browser.py; a long history trimmed before sending in test_agent.py.
"""

from __future__ import annotations

import html
import http.client
import json
import logging
import re
import shutil
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlsplit

import gradio as gr
import pytest
from gradio.route_utils import DEFAULT_TEMP_DIR
from gradio_client import Client

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import SettingsError
from ollamastack.settings import Settings, load_settings
from ollamastack.web.api import NamedApi
from ollamastack.web.app import build_app, launch
from ollamastack.web.audit import AUDIT_FILE
from ollamastack.web.edge import Caller, Edge
from ollamastack.web.http import CONTENT_SECURITY_POLICY
from ollamastack.web.ui.chat import ChatHandlers, TurnUpdate
from ollamastack.web.ui.composer import Composer
from ollamastack.web.ui.models import ModelsHandlers
from tests.support.api_helpers import OllamaView, Served, app_settings, run, serve
from tests.support.app_process import AppProcess
from tests.support.ollama_server import FakeOllama

NOT_ADMIN = (
    "Only administrators may pull or delete models here (the logins in OLLAMASTACK_ADMIN_USERS)."
)
SHARED = (
    "Pulling and deleting models is off: this app is shared by a public link without login. "
    "Set OLLAMASTACK_AUTH (and OLLAMASTACK_ADMIN_USERS) to allow it."
)
TOO_MANY = re.compile(r"Too many messages: the limit is 2 a minute\. Try again in (\d+) s\.")


def person(user: str = "", host: str = "127.0.0.1") -> Any:
    """What Gradio hands a handler as `gr.Request`: the login and the client's address."""
    return SimpleNamespace(username=user or None, client=SimpleNamespace(host=host))


def audit_records(data_dir: Path, count: int) -> list[dict[str, Any]]:
    """The audit log once it holds `count` records (a reply can reach the client a moment
    before its record is written), each checked for its time and latency, which are removed."""
    path = data_dir / AUDIT_FILE
    deadline = time.monotonic() + 5
    while not path.exists() or len(path.read_text().splitlines()) < count:
        assert time.monotonic() < deadline, path.read_text() if path.exists() else "no log"
        time.sleep(0.02)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record.pop("time"))
        assert 0 <= record.pop("latency_s") < 30
    return records


# -- the rate limit --------------------------------------------------------------------


def test_over_the_rate_limit_chat_says_when_to_try_again_and_stores_nothing(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path, auth="alice:pw-a,bob:pw-b", rate_limit=2) as app:
        alice = Client(app.url, auth=("alice", "pw-a"), verbose=False)
        bob = Client(app.url, auth=("bob", "pw-b"), verbose=False)
        first = alice.predict("one", api_name="/chat")["session_id"]
        alice.predict("two", first, api_name="/chat")
        chats = len(ollama_server.chat_requests)

        started = time.monotonic()
        outputs, error = run(alice, "three", first, api_name="/chat")
        assert time.monotonic() - started < 5  # refused at once, not queued
        assert outputs == [] and error is not None
        wait = TOO_MANY.fullmatch(error)
        assert wait is not None and 1 <= int(wait[1]) <= 60, error
        assert len(ollama_server.chat_requests) == chats
        assert [m["content"] for m in alice.predict(first, api_name="/history")] == [
            "one", "You said: one", "two", "You said: two"
        ]
        # the limit is per user: Bob is not slowed down by Alice
        assert bob.predict("hello", api_name="/chat")["content"] == "You said: hello"


@pytest.fixture
def clock() -> SimpleNamespace:
    return SimpleNamespace(now=1000.0)


@pytest.fixture
async def limited(
    ollama_server: FakeOllama, tmp_path: Path, clock: SimpleNamespace
) -> AsyncIterator[tuple[ChatHandlers, NamedApi, ServiceHandle]]:
    """The page's handlers and the API over one service and one edge: 2 messages a minute."""
    settings = app_settings(ollama_server, tmp_path, rate_limit=2)
    handle = ServiceHandle(settings)
    edge = Edge(settings, clock=lambda: clock.now)
    yield ChatHandlers(settings, handle, edge=edge, update_interval=0), NamedApi(
        settings, handle, edge
    ), handle
    await handle.close()


async def page_send(page: ChatHandlers, message: str, request: Any, session: str = "") -> list:
    updates = page.send(message, [], session, [], "", 0.7, "", True, request)
    return [update async for update in updates]


async def api_chat(api: NamedApi, message: str, request: Any) -> list[dict]:
    return [chunk async for chunk in api.chat(message, request=request)]


async def test_the_page_and_the_api_share_one_limit_keyed_by_user_or_address(
    limited: tuple[ChatHandlers, NamedApi, ServiceHandle], clock: SimpleNamespace,
    tmp_path: Path,
) -> None:
    page, api, handle = limited
    alice = person("alice")
    await page_send(page, "one", alice)
    clock.now += 10
    assert (await api_chat(api, "two", alice))[-1]["content"] == "You said: two"
    clock.now += 5
    refusal = "Too many messages: the limit is 2 a minute. Try again in 45 s."

    with no_toasts():  # said once, over the box; the message stays in it
        assert await page_send(page, "three", alice) == [TurnUpdate(
            box=gr.update(value={"text": "three", "files": []}, submit_btn="Send",
                          stop_btn=False),
            notice=gr.update(value=f"⚠ {refusal}", visible=True),
        )]
    with pytest.raises(gr.Error, match=re.escape(refusal)):
        await api_chat(api, "three", alice)
    core = await handle.get()
    assert [s.title for s in await core.sessions("alice")] == ["two", "one"]

    # without login each address has its own allowance; Bob's is his own
    for who in (person(host="10.0.0.1"), person(host="10.0.0.2"), person("bob")):
        assert (await api_chat(api, "hi", who))[-1]["done"] is True
    clock.now += 45  # a minute after Alice's first message
    assert (await page_send(page, "four", alice))[-1].streaming is False
    assert len(await core.sessions("alice")) == 3

    records = audit_records(tmp_path, 8)
    assert [(r["user"], r["client"], r["endpoint"], r["outcome"]) for r in records] == [
        ("alice", "127.0.0.1", "ui_send", "ok"),
        ("alice", "127.0.0.1", "/chat", "ok"),
        ("alice", "127.0.0.1", "ui_send", "rate_limited"),
        ("alice", "127.0.0.1", "/chat", "rate_limited"),
        ("", "10.0.0.1", "/chat", "ok"),
        ("", "10.0.0.2", "/chat", "ok"),
        ("bob", "127.0.0.1", "/chat", "ok"),
        ("alice", "127.0.0.1", "ui_send", "ok"),
    ]
    assert records[2]["error"] == refusal and not any("message" in r for r in records)


async def test_a_retry_over_the_limit_is_refused_before_its_turn_is_undone(
    limited: tuple[ChatHandlers, NamedApi, ServiceHandle], clock: SimpleNamespace,
    tmp_path: Path,
) -> None:
    page, _, handle = limited
    alice = person("alice")
    await page_send(page, "one", alice)
    clock.now += 10
    await page_send(page, "two", alice)
    core = await handle.get()
    session = (await core.sessions("alice"))[0].id
    refusal = "Too many messages: the limit is 2 a minute. Try again in 50 s."
    with no_toasts():
        retried = [u async for u in page.retry(session, "", 0.7, "", True, alice, Composer())]
    assert [u.notice for u in retried] == [gr.update(value=f"⚠ {refusal}", visible=True)]
    assert [m.text for m in await core.history(session, "alice")] == ["two", "You said: two"]
    assert [(r["endpoint"], r["outcome"]) for r in audit_records(tmp_path, 3)] == [
        ("ui_send", "ok"), ("ui_send", "ok"), ("ui_retry", "rate_limited")
    ]


@contextmanager
def no_toasts() -> Iterator[None]:
    """Refusals are said once, on the page: no toast (outside Gradio, a UserWarning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []


def test_a_rate_limit_of_zero_is_off(tmp_path: Path) -> None:
    edge = Edge(Settings(_env_file=None, data_dir=tmp_path, rate_limit=0))  # type: ignore[call-arg]
    for _ in range(1000):
        edge.count_message(Caller("", "127.0.0.1"))


# -- who may pull and delete models ------------------------------------------------------


def test_only_admins_pull_and_delete_models_through_the_api(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    ollama_server.add_model("mistral:7b")
    logins = {"auth": "ann:pw-ann,bob:pw-bob", "admin_users": "ann"}
    with serve(ollama_server, tmp_path, **logins) as app:
        ann = Client(app.url, auth=("ann", "pw-ann"), verbose=False)
        bob = Client(app.url, auth=("bob", "pw-bob"), verbose=False)
        assert run(bob, "qwen3:8b", api_name="/pull_model") == ([], NOT_ADMIN)
        assert run(bob, "mistral:7b", api_name="/delete_model") == ([], NOT_ADMIN)
        assert [r.path for r in ollama_server.requests if r.path in MANAGING] == []

        assert ann.predict("qwen3:8b", api_name="/pull_model")["status"] == "success"
        assert ann.predict("mistral:7b", api_name="/delete_model")["deleted"] is True
    assert [m.name for m in ollama_server.models] == ["llama3.2:latest", "qwen3:8b"]
    assert audit_records(tmp_path, 6) == [
        {"user": user, "client": "127.0.0.1", "endpoint": endpoint, "session_id": "",
         "model": model, "outcome": outcome,
         **({"error": NOT_ADMIN} if outcome == "forbidden" else {})}
        for user, endpoint, model, outcome in [
            ("ann", "login", "", "ok"),
            ("bob", "login", "", "ok"),
            ("bob", "/pull_model", "qwen3:8b", "forbidden"),
            ("bob", "/delete_model", "mistral:7b", "forbidden"),
            ("ann", "/pull_model", "qwen3:8b", "ok"),
            ("ann", "/delete_model", "mistral:7b", "ok"),
        ]
    ]  # fmt: skip


MANAGING = ("/api/pull", "/api/delete")


def test_a_share_link_without_login_warns_at_start_and_turns_model_management_off(
    ollama_server: FakeOllama, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = app_settings(ollama_server, tmp_path, share=True)
    app = build_app(settings)
    with caplog.at_level(logging.WARNING, logger="ollamastack.web.app"):
        # served on loopback only: the test makes no tunnel, the app is configured as shared
        _, url, _ = launch(app, settings, share=False, prevent_thread_lock=True, quiet=True)
    try:
        assert [r.getMessage() for r in caplog.records] == [
            "OLLAMASTACK_SHARE is on without OLLAMASTACK_AUTH: anyone with the link can chat "
            "with your models and read every conversation of this app. Pulling and deleting "
            'models is off. Set OLLAMASTACK_AUTH="user:password,..." to require a login.'
        ]
        client = Client(url, verbose=False)
        assert run(client, "qwen3:8b", api_name="/pull_model") == ([], SHARED)
        assert run(client, "llama3.2", api_name="/delete_model") == ([], SHARED)
        assert client.predict("Hi", api_name="/chat")["content"] == "You said: Hi"  # chat works
    finally:
        app.blocks.close()
    assert [r.path for r in ollama_server.requests if r.path in MANAGING] == []


@pytest.mark.parametrize(
    ("overrides", "user", "refusal"),
    [
        ({"share": True}, "", SHARED),
        ({"auth": "ann:pw1,bob:pw2", "admin_users": "ann"}, "bob", NOT_ADMIN),
    ],
    ids=["share-link-without-login", "not-an-admin"],
)
async def test_the_models_tab_refuses_pull_and_delete_with_a_clear_message(
    ollama_server: FakeOllama, tmp_path: Path, overrides: dict, user: str, refusal: str
) -> None:
    handle = ServiceHandle(app_settings(ollama_server, tmp_path, **overrides))
    ask, confirm = (gr.EventData(None, {"action": action, "model": "llama3.2:latest"})
                    for action in ("delete", "confirm"))  # what its row's buttons send
    try:
        tab = ModelsHandlers(handle)
        request = person(user)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # said once, on the page: no toast
            table, _ = await tab.table(request)
            pulled = [update async for update in tab.pull("qwen3:8b", request)]
            asked = await tab.row_action(ask, request)
            deleted = await tab.delete(confirm, request)
    finally:
        await handle.close()
    escaped = html.escape
    assert 'data-action="delete"' not in table  # no Delete button to press
    assert pulled == [(f'<div class="pull-progress" role="alert"><span>{escaped(refusal)}'
                       "</span></div>", *[gr.skip()] * 4)]
    assert asked == (gr.skip(), f'<div class="models-notice" role="alert"><span>'
                                f"{escaped(refusal)}</span></div>")
    assert html.unescape(deleted[1]) == (
        f'<div class="models-notice" role="alert"><span>Could not delete llama3.2:latest: '
        f"{refusal}</span></div>")
    assert [r.path for r in ollama_server.requests if r.path in MANAGING] == []
    assert [m.name for m in ollama_server.models] == ["llama3.2:latest"]


# -- the audit log, and secrets kept out of every log ----------------------------------


def test_the_audit_log_records_who_what_and_how_and_no_secret_reaches_any_log(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    """The app as an operator runs it, logging everything at debug level, with two logins."""
    passwords = {"alice": "Alice-pw-" + uuid.uuid4().hex, "bob": "Bob-pw-" + uuid.uuid4().hex}
    auth = ",".join(f"{user}:{password}" for user, password in passwords.items())
    data = tmp_path / "data"
    with AppProcess(ollama_server.url, data, "--log-level", "debug", auth=auth) as app:
        alice = Client(app.url, auth=("alice", passwords["alice"]), verbose=False)
        bob = Client(app.url, auth=("bob", passwords["bob"]), verbose=False)
        session = alice.predict("my private words", api_name="/chat")["session_id"]
        alice.predict(session, api_name="/history")
        alice.predict(api_name="/sessions")
        gone = f"No conversation with id {session} was found."
        assert run(bob, session, api_name="/history") == ([], gone)
        assert run(bob, "tell me", session, api_name="/chat") == ([], gone)
        assert run(bob, session, api_name="/delete_session") == ([], gone)
        with pytest.raises(ValueError, match="Could not login"):  # a wrong password: logged
            Client(app.url, auth=("bob", passwords["alice"]), verbose=False)
        tokens = [*alice.cookies.values(), *bob.cookies.values()]
        records = audit_records(data, 9)
    errors = {"refused": gone, "forbidden": "Incorrect credentials."}
    assert records == [
        {"user": user, "client": "127.0.0.1", "endpoint": endpoint, "session_id": sid,
         "model": model, "outcome": outcome,
         **({"error": errors[outcome]} if outcome in errors else {})}
        for user, endpoint, sid, model, outcome in [
            ("alice", "login", "", "", "ok"),
            ("bob", "login", "", "", "ok"),
            ("alice", "/chat", session, "llama3.2", "ok"),
            ("alice", "/history", session, "", "ok"),
            ("alice", "/sessions", "", "", "ok"),
            ("bob", "/history", session, "", "refused"),
            ("bob", "/chat", session, "llama3.2", "refused"),
            ("bob", "/delete_session", session, "", "refused"),
            ("bob", "login", "", "", "forbidden"),
        ]
    ]  # fmt: skip

    logs = {"audit log": (data / AUDIT_FILE).read_text(), "app output": app.output()}
    assert " DEBUG " in logs["app output"]  # the app did log, at every level
    assert "my private words" not in logs["audit log"]  # no content without LOG_CONTENT
    assert len(tokens) >= 2 and all(len(token) >= 16 for token in tokens), tokens
    leaks = [(where, secret[:8] + "…") for where, text in logs.items()
             for secret in [*passwords.values(), *tokens] if secret in text]
    assert leaks == []
    assert (data / AUDIT_FILE).stat().st_mode & 0o777 == 0o600


def test_message_content_is_audited_only_when_asked_for(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path, log_content=True) as app:
        Client(app.url, verbose=False).predict("note this", api_name="/chat")
        (record,) = audit_records(tmp_path, 1)
    assert (record["user"], record["client"], record["message"]) == ("", "127.0.0.1", "note this")


# -- security headers on every response -------------------------------------------------

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "SAMEORIGIN",
    "content-security-policy": CONTENT_SECURITY_POLICY,
}


def static_asset(url: str) -> str:
    """A script the page loads (its name changes with each Gradio build)."""
    page = http_get(url, "/")[2].decode()
    (script, *_) = re.findall(r'src="\.?(/assets/[^"]+\.js)"', page)
    return script


def http_get(url: str, path: str, method: str = "GET", body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent exactly as given (no client-side normalising)."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def exposed_data() -> Iterator[Path]:
    """A data directory inside Gradio's own temp folder, which its file routes serve: only
    the app's `blocked_paths` keep the database and audit log there from being downloaded."""
    folder = Path(DEFAULT_TEMP_DIR) / f"ollamastack-test-{uuid.uuid4().hex}"
    try:
        yield folder / "Data"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def served(shared_server: FakeOllama, exposed_data: Path) -> Iterator[Served]:
    with serve(shared_server, exposed_data) as served:
        client = Client(served.url, verbose=False)
        client.predict("Something to store", api_name="/chat")  # the database has content
        yield served


RESPONSES: dict[str, Callable[[Served], tuple[str, str, bytes | None]]] = {
    "page": lambda s: ("GET", "/", None),
    "config": lambda s: ("GET", "/config", None),
    "api-info": lambda s: ("GET", "/gradio_api/info", None),
    "health-route": lambda s: ("GET", "/healthz", None),
    "static-script": lambda s: ("GET", static_asset(s.url), None),
    "manifest": lambda s: ("GET", "/manifest.json", None),
    "favicon": lambda s: ("GET", "/favicon.ico", None),
    "api-call": lambda s: ("POST", "/gradio_api/call/health", b'{"data": []}'),
    "refused-file": lambda s: ("GET", "/gradio_api/file=/etc/passwd", None),
    "not-found": lambda s: ("GET", "/no/such/page", None),
}


@pytest.mark.parametrize("name", RESPONSES)
def test_every_response_carries_the_security_headers(served: Served, name: str) -> None:
    method, path, body = RESPONSES[name](served)
    status, headers, _ = http_get(served.url, path, method, body,
                                  {"content-type": "application/json"})
    assert status < 500
    assert {k: headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS


def test_the_api_stream_and_the_login_page_carry_them_too(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path, auth="ann:pw-ann") as app:
        for method, path, body in [
            ("GET", "/", None),
            ("GET", "/login", None),
            ("POST", "/login", b"username=ann&password=wrong"),
        ]:
            _, headers, _ = http_get(app.url, path, method, body,
                                     {"content-type": "application/x-www-form-urlencoded"})
            assert {k: headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, path
    with serve(ollama_server, tmp_path) as app:
        status, _, posted = http_get(app.url, "/gradio_api/call/health", "POST", b'{"data": []}',
                                     {"content-type": "application/json"})
        event = json.loads(posted)["event_id"]
        status, headers, stream = http_get(app.url, f"/gradio_api/call/health/{event}")
        assert (status, stream.startswith(b"event: complete")) == (200, True)
        assert {k: headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS


# -- Gradio's file routes serve nothing of the app's data ------------------------------


def file_requests(data: Path, ollama_url: str) -> dict[str, str]:
    database, audit = data / "ollamastack.sqlite", data / AUDIT_FILE
    swapped = str(database).swapcase()
    inside_tmp = Path(DEFAULT_TEMP_DIR)
    return {
        "etc-passwd": "/etc/passwd",
        "etc-passwd-encoded": quote("/etc/passwd", safe=""),
        "dot-dot-encoded": "..%2f" * 12 + "etc%2fpasswd",
        "dot-dot-raw": "../" * 12 + "etc/passwd",
        "dot-dot-double-encoded": "..%252f" * 12 + "etc%252fpasswd",
        "database": str(database),
        "database-upper": str(database).upper(),
        "database-swapped-case": swapped,
        "database-data-dir-lower": str(data.parent / "data" / database.name),
        "database-encoded": quote(str(database), safe=""),
        "database-doubled-slashes": str(database).replace("/", "//"),
        "database-dot-segments": f"{inside_tmp}/./x/../{database.relative_to(inside_tmp)}",
        "database-wal": f"{database}-wal",
        "audit-log": str(audit),
        "data-dir": str(data),
        "ollama-through-the-url-proxy": f"{ollama_url}/api/tags",
    }


FILE_CASES = list(file_requests(Path(DEFAULT_TEMP_DIR) / "x" / "Data", "http://x"))


@pytest.mark.parametrize("case", FILE_CASES)
@pytest.mark.parametrize("route", ["/gradio_api/file=", "/gradio_api/file/", "/file="])
def test_file_routes_refuse_system_files_and_the_apps_data(
    served: Served, exposed_data: Path, ollama: OllamaView, route: str, case: str
) -> None:
    assert (exposed_data / "ollamastack.sqlite").exists()
    target = file_requests(exposed_data, ollama.url)[case]
    if route == "/gradio_api/file/" and target.startswith("/"):
        target = target[1:]
    status, _, body = http_get(served.url, route + target)
    assert status in (400, 403, 404), (status, body[:200])
    assert b"SQLite format 3" not in body and b"root:" not in body
    assert b"\"endpoint\"" not in body  # no audit record either
    assert [r.path for r in ollama.requests] == []


def test_the_same_folder_outside_the_data_directory_is_served(
    served: Served, exposed_data: Path
) -> None:
    """The control: Gradio does serve its temp folder, so the refusals above are the app's."""
    probe = exposed_data.parent / "probe.txt"
    probe.write_text("served")
    status, _, body = http_get(served.url, f"/gradio_api/file={probe}")
    assert (status, body) == (200, b"served")


def test_the_default_relative_data_directory_is_not_served_either(
    ollama_server: FakeOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # OLLAMASTACK_DATA_DIR's default, ./data, under the cwd
    with serve(ollama_server, Path("data")) as app:
        Client(app.url, verbose=False).predict("Hello", api_name="/chat")
        assert (tmp_path / "data" / "ollamastack.sqlite").exists()
        for path in ["data/ollamastack.sqlite", "./data/ollamastack.sqlite",
                     "DATA/OLLAMASTACK.SQLITE", "data/audit.jsonl", f"{tmp_path}/data/audit.jsonl"]:
            status, _, body = http_get(app.url, f"/gradio_api/file={path}")
            assert status == 403 and b"SQLite" not in body, (path, status)


# -- the settings behind all this --------------------------------------------------------


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (defaults.rate_limit, defaults.admins, defaults.log_content) == (10, frozenset(), False)
    monkeypatch.setenv("OLLAMASTACK_RATE_LIMIT", "3")
    monkeypatch.setenv("OLLAMASTACK_ADMIN_USERS", " ann, bob ,")
    monkeypatch.setenv("OLLAMASTACK_LOG_CONTENT", "true")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.rate_limit, settings.admins, settings.log_content) == (
        3, frozenset({"ann", "bob"}), True
    )
    monkeypatch.setenv("OLLAMASTACK_RATE_LIMIT", "-1")
    with pytest.raises(SettingsError, match=r"^Invalid setting OLLAMASTACK_RATE_LIMIT: Input "
                                            r"should be greater than or equal to 0"):
        load_settings(_env_file=None)


def test_a_malformed_login_setting_is_reported_without_its_passwords(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMASTACK_AUTH", "alice:s3cret-pw,bob")  # bob has no password
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None)
    assert str(refused.value).startswith("Invalid setting OLLAMASTACK_AUTH: must look like")
    assert "s3cret-pw" not in str(refused.value)  # app.py prints it to stderr at start-up
