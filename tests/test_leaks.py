"""What leaks to whom (issue 13, point 5), on the real app over HTTP: exports reach only their
owner, go with their conversation and leave no file behind; the database is this user's only;
Ollama's address is shown to administrators and this machine only; a malformed call puts no
message text in any log.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio.utils import get_upload_folder
from gradio_client import Client

from ollamastack.web.app import build_app, launch
from ollamastack.web.audit import AUDIT_FILE
from ollamastack.web.ui.status import GREEN_DOT, RED_DOT
from tests.support.api_helpers import Served, app_settings, serve
from tests.support.ollama_server import FakeOllama

LOGINS = "ann:pw1,bob:pw2"
DOWN = ("Ollama is not reachable at the address in OLLAMA_HOST. Start it with `ollama serve` "
        "(or `docker compose up ollama`), or point OLLAMA_HOST at a running server.")
COLD = "is not loaded yet: its first answer waits while it loads"
SECRET = "my-pin-is-4711"  # a message's text: no log may hold it


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def launched(server: FakeOllama, data_dir: Path, **overrides: Any) -> Iterator[Served]:
    """The whole app as `serve` launches it, but never opening a share link: settings with
    `share=True` give the app the rules of a shared one, while it listens on loopback only."""
    settings = app_settings(server, data_dir, **overrides)
    app = build_app(settings, update_interval=0)
    _, url, _ = launch(app, settings, prevent_thread_lock=True, quiet=True, share=False)
    try:
        yield Served(app, settings, url.rstrip("/"))
    finally:
        app.blocks.close()


@contextmanager
def login(url: str, user: str = "", password: str = "") -> Iterator[httpx.Client]:
    """A browser's HTTP client: logged in as `user` (its cookie), or anonymous."""
    with httpx.Client(base_url=url, timeout=30) as http:
        if user:
            answer = http.post("/login", data={"username": user, "password": password})
            assert answer.status_code == 200, answer.text
        yield http


class EventFailed(Exception):
    """A page event ended in an error; `error` is what Gradio showed its client."""

    def __init__(self, output: dict[str, Any]) -> None:
        super().__init__(output)
        self.error = output.get("error")


class PageSession:
    """One browser tab: the page's own (private) events, called as its script calls them,
    through Gradio's queue, with this tab's session state."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.session_hash = uuid.uuid4().hex[:11]
        config = http.get("/config").json()
        self.ids = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}

    def call(self, api_name: str, *data: Any, event_data: Any = None) -> list[Any]:
        """The event's outputs, or `EventFailed`; `event_data`: what a custom component's
        script sends with its event (the side list's `select` and `submit`)."""
        joined = self.http.post("/gradio_api/queue/join", json={
            "data": list(data), "event_data": event_data, "fn_index": self.ids[api_name],
            "trigger_id": None, "session_hash": self.session_hash,
        })
        assert joined.status_code == 200, joined.text
        event_id = joined.json()["event_id"]
        stream = f"/gradio_api/queue/data?session_hash={self.session_hash}"
        with self.http.stream("GET", stream) as messages:
            for line in messages.iter_lines():
                message = json.loads(line.removeprefix("data: ")) if line else {}
                if message.get("msg") == "process_completed" and message["event_id"] == event_id:
                    if not message["success"]:
                        raise EventFailed(message["output"])
                    return message["output"]["data"]
        raise AssertionError(f"{api_name}: the stream ended before the event completed")


def chat(url: str, message: str, auth: tuple[str, str] | None = None) -> str:
    """One turn through the named API; the new conversation's id."""
    reply = Client(url, auth=auth, verbose=False).predict(message, api_name="/chat")
    assert reply["done"] is True
    return reply["session_id"]


# -- exports: their owner's only, gone with their conversation, no file left -------------


def files_holding(marker: str) -> list[Path]:
    """Files in Gradio's cache (where files the page returns are kept) that hold `marker`."""
    root = Path(get_upload_folder())
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_size < 1_000_000
            and marker.encode() in p.read_bytes()]


def test_an_export_is_a_direct_download_for_its_owner_only_and_goes_with_its_conversation(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex[:12]
    question = f"What is 2+3? {marker}"
    with (
        serve(ollama_server, tmp_path, auth=LOGINS) as app,
        login(app.url, "ann", "pw1") as ann,
        login(app.url, "bob", "pw2") as bob,
    ):
        session = chat(app.url, question, auth=("ann", "pw1"))
        tab = PageSession(ann)
        listed = tab.call("ui_load", [], {})[3]  # with login: the server's list of hers
        assert [(c["id"], c["title"]) for c in listed] == [(session, question)]
        tab.call("ui_open", listed, None, event_data={"id": session})  # a click in the list
        [update] = tab.call("ui_export_md", None)
        file = update["props"]["saving"]  # the side list's prop the browser saves from
        assert (file["name"], file["type"]) == (f"what-is-2-3-{marker}.md", "text/markdown")
        assert file["text"].startswith(f"# {question}\n")
        assert files_holding(marker) == []  # sent in the answer: no file to fetch or leave

        def export(tab: PageSession, target: str) -> str:
            with pytest.raises(EventFailed) as refused:
                tab.call("ui_conversation_action", None, listed,
                         event_data={"action": "export-md", "id": target})
            return str(refused.value.error).replace(target, "<id>")

        unknown = str(uuid.uuid4())
        bobs = PageSession(bob)
        assert export(bobs, session) == export(bobs, unknown) == (
            "No conversation with id <id> was found."
        )
        # deleted (its undo pending): nobody exports it any more, its owner neither
        tab.call("ui_conversation_action", None, listed,
                 event_data={"action": "delete", "id": session})
        assert export(tab, session) == export(tab, unknown)
        assert files_holding(marker) == []


# -- the database: this user's only --------------------------------------------------------


@pytest.mark.parametrize("earlier", [False, True], ids=["new", "left-by-an-older-version"])
def test_the_data_directory_and_database_files_are_the_app_users_only(
    ollama_server: FakeOllama, tmp_path: Path, earlier: bool
) -> None:
    data = tmp_path / "data"
    umask = os.umask(0o022)  # the usual umask: files 0644, folders 0755 unless the app says
    try:
        if earlier:  # what an older version left: readable by everyone
            data.mkdir(mode=0o755)
            (data / "ollamastack.sqlite").touch(mode=0o644)
        with serve(ollama_server, data) as app:
            chat(app.url, "Remember this")
            files = ["ollamastack.sqlite", "ollamastack.sqlite-wal", "ollamastack.sqlite-shm",
                     AUDIT_FILE]
            assert {name: oct(mode(data / name)) for name in files} == dict.fromkeys(
                files, oct(0o600))
            assert oct(mode(data)) == oct(0o700)
    finally:
        os.umask(umask)


# -- Ollama's address: administrators and this machine only ------------------------------


def test_healthz_gives_status_and_reason_only(ollama_server: FakeOllama, tmp_path: Path) -> None:
    with serve(ollama_server, tmp_path) as app:
        assert httpx.get(f"{app.url}/healthz").json() == {"status": "ok"}
        ollama_server.stop()
        try:
            down = httpx.get(f"{app.url}/healthz").json()
        finally:
            ollama_server.start()
    assert down == {"status": "unavailable", "reason": DOWN}


def test_through_a_share_link_only_administrators_see_where_ollama_runs(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    """A share link's visitors arrive from loopback (the tunnel's local end): there loopback
    shows nothing; with login, an administrator still sees the address and version."""
    with launched(ollama_server, tmp_path, share=True) as app:
        health = Client(app.url, verbose=False).predict(api_name="/health")
        with login(app.url) as anyone:
            status = PageSession(anyone).call("ui_load", [], {})[1]
    assert health == {"status": "ok", "ollama_url": "", "ollama_version": "", "models": 1,
                      "default_model": "llama3.2", "embedded_model": ""}
    assert status == f"{GREEN_DOT} Ollama is up · model `llama3.2:latest` {COLD}"

    with launched(ollama_server, tmp_path, share=True, auth=LOGINS, admin_users="ann") as app:
        seen = {}
        for user, password in (("ann", "pw1"), ("bob", "pw2")):
            health = Client(app.url, auth=(user, password), verbose=False).predict(
                api_name="/health")
            with login(app.url, user, password) as http:
                status, offer = PageSession(http).call("ui_status", "llama3.2", "")
                assert offer == {"__type__": "update", "visible": False}
            seen[user] = (health["ollama_url"], health["ollama_version"], status)
    assert seen == {
        "ann": (ollama_server.url, "0.12.6",
                f"{GREEN_DOT} Ollama 0.12.6 at `{ollama_server.url}` · model `llama3.2` {COLD}"),
        "bob": ("", "", f"{GREEN_DOT} Ollama is up · model `llama3.2` {COLD}"),
    }


def test_the_status_line_says_ollama_is_down_without_its_address(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    """Said briefly (why a turn failed is the chat's to say), and where Ollama runs only to
    those who may see it."""
    with launched(ollama_server, tmp_path, share=True) as app, login(app.url) as anyone:
        tab = PageSession(anyone)
        ollama_server.stop()
        try:
            status, _ = tab.call("ui_status", "llama3.2", "")
        finally:
            ollama_server.start()
    assert status == f"{RED_DOT} Ollama is not answering"


# -- malformed calls: no message text in any log ------------------------------------------


MALFORMED = [
    [],  # too few inputs (the message is required; later ones default when left off)
    [SECRET, 5],
    [SECRET, "", "", "hot", ""],  # a temperature that is no number
    [[SECRET], "", "", None, ""],  # a message that is no text
    [{"text": SECRET}, "", "", None, ""],
    [SECRET, "", "", None, "", SECRET],  # files that are no list of files
]
# The page's send button as a crafted request: too few inputs, then a chat history whose
# messages Gradio cannot read, a temperature slider's value that is no number.
MALFORMED_PAGE = [  # the last None: the tab's composer (server-side state)
    [SECRET],
    ["hi", [{"role": "user", "content": {"x": SECRET}}], None, [], "llama3.2", 0.7, "", True,
     None],
    ["hi", [{"role": "user", "content": SECRET, "extra": 1}], None, [], "llama3.2", 0.7, "",
     True, None],
    ["hi", [], None, [], "llama3.2", SECRET, "", True, None],
]


def test_malformed_calls_put_no_message_text_in_any_log(
    ollama_server: FakeOllama, tmp_path: Path, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Gradio's queue prints the traceback of an error reading a call's inputs, and those
    errors quote the inputs. Each call fails with an error its client can read."""
    caplog.set_level("DEBUG")
    with serve(ollama_server, tmp_path) as app, login(app.url) as http:
        for data in MALFORMED:
            posted = http.post("/gradio_api/call/chat", json={"data": data})
            answer = http.get(f"/gradio_api/call/chat/{posted.json()['event_id']}").text
            kind, _, payload = answer.strip().split("\n\n")[-1].partition("\n")
            assert kind == "event: error", (data, answer)
            assert json.loads(payload.removeprefix("data: "))["error"], answer  # says why
        tab = PageSession(http)
        for data in MALFORMED_PAGE:
            with pytest.raises(EventFailed) as failed:
                tab.call("ui_send", *data)
            assert failed.value.error, data  # says why
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    audit = (tmp_path / AUDIT_FILE).read_text()
    assert SECRET not in out + err + logged + audit
