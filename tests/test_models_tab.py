"""The Models tab's handlers over the Ollama-protocol test server: the table with what each model
can do and its buttons, "Use in chat", Delete asked first, pull progress in sizes and time (never
a blob id), a friendly "no such model", Cancel closing the pull, and Ollama down explained.
Each outcome is said once, on the page: no handler here raises a toast (a `UserWarning` when
called without Gradio), which `no_toasts` turns into a failure.

What a browser shows of the same: tests/test_browser_models_login.py."""

from __future__ import annotations

import asyncio
import itertools
import re
import warnings
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.engines.embedded.engine import EMBEDDED_MODEL, embedded_available
from ollamastack.settings import Settings
from ollamastack.web.ui.models import ModelsHandlers
from tests.support.chat_helpers import closed_port_url
from tests.support.ollama_server import FakeOllama

SKIP = gr.skip()
MANAGING = ("/api/pull", "/api/delete")


class Parsed(HTMLParser):
    """The text of each table row's cells, and each button as (action, model, text)."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.buttons: list[tuple[str, str, str]] = []
        self.texts: list[str] = []
        self._cell: list[str] | None = None
        self._button: dict[str, str] | None = None
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self._cell = []
        elif tag == "button":
            self._button = {k: v or "" for k, v in attrs}
            self._button["text"] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "button" and self._button is not None:
            if self._cell is not None:
                self._cell.append(" ")
            b = self._button
            self.buttons.append((b.get("data-action", ""), b.get("data-model", ""), b["text"]))
            self._button = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._cell is not None:
            self._cell.append(data + (" " if self._button is None else ""))
        if self._button is not None:
            self._button["text"] += data


def words(markup: str) -> str:
    """What a person reads of a note: its text, "Details" folded in as "[Details: …]"."""
    markup = re.sub(r"<details><summary>Details</summary><p>(.*?)</p></details>",
                    r" [Details: \1]", markup)
    return " ".join("".join(Parsed(markup).texts).split())


def event(action: str, model: str) -> gr.EventData:
    """What a row's button sends (see `ROW_ACTIONS`)."""
    return gr.EventData(None, {"action": action, "model": model})


def person(user: str = "", host: str = "127.0.0.1") -> Any:
    """What Gradio hands a handler as `gr.Request`: the login and the client's address."""
    return SimpleNamespace(username=user or None, client=SimpleNamespace(host=host))


@pytest.fixture(autouse=True)
def no_toasts() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # gr.Warning outside Gradio
        yield


def tab_settings(ollama_host: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"ollama_host": ollama_host, "data_dir": data_dir,
                              "model": "llama3.2", "embedded": False}
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@pytest.fixture
async def handle(ollama_server: FakeOllama, tmp_path: Path) -> AsyncIterator[ServiceHandle]:
    handle = ServiceHandle(tab_settings(ollama_server.url, tmp_path))
    yield handle
    await handle.close()


@pytest.fixture
def tab(handle: ServiceHandle) -> ModelsHandlers:
    return ModelsHandlers(handle)


def install_four(server: FakeOllama) -> None:
    server.add_model("qwen3:8b", capabilities=("completion", "tools", "thinking"),
                     size=5_225_387_923, parameter_size="8.2B")
    server.add_model("gemma3", capabilities=("completion", "vision"), size=3_338_801_804,
                     parameter_size="4.3B")
    server.add_model("nomic-embed-text", capabilities=("embedding",), size=274_302_450,
                     parameter_size="137M", quantization="F16")
    server.load_model("llama3.2")


HEAD = ["Model", "Size", "Details", "Can do", "Actions"]


async def test_each_row_says_what_the_model_can_do_with_its_buttons(
    tab: ModelsHandlers, ollama_server: FakeOllama
) -> None:
    install_four(ollama_server)
    table, notice = await tab.table()
    parsed = Parsed(table)
    assert parsed.rows == [
        HEAD,  # as Ollama lists them: the last installed first
        ["nomic-embed-text:latest", "274.3 MB", "137M · F16", "embedding only", "Delete"],
        ["gemma3:latest", "3.3 GB", "4.3B · Q4_K_M", "prompted tools vision",
         "Use in chat Delete"],
        ["qwen3:8b", "5.2 GB", "8.2B · Q4_K_M", "tools thinking", "Use in chat Delete"],
        ["llama3.2:latest", "2.0 GB", "3.2B · Q4_K_M", "tools in memory", "Use in chat Delete"],
    ]
    assert ("use", "qwen3:8b", "Use in chat") in parsed.buttons
    assert ('aria-label="Use qwen3:8b in chat"' in table, 'aria-label="Delete qwen3:8b"' in table
            ) == (True, True)
    assert notice == ""


async def test_a_model_name_is_escaped_in_the_table(
    tab: ModelsHandlers, ollama_server: FakeOllama
) -> None:
    ollama_server.add_model('x"><img src=y>')
    table, _ = await tab.table()
    assert "<img" not in table and "&lt;img src=y&gt;" in table


async def test_delete_asks_first_then_deletes_and_says_so_once(
    tab: ModelsHandlers, ollama_server: FakeOllama
) -> None:
    install_four(ollama_server)
    table, notice = await tab.row_action(event("delete", "qwen3:8b"))
    parsed = Parsed(table)
    assert parsed.rows[3] == [
        "qwen3:8b", "5.2 GB", "8.2B · Q4_K_M", "tools thinking",
        "Really delete qwen3:8b? Its files are removed from Ollama; pull it to get it back. "
        "Yes, delete qwen3:8b Keep it",
    ]
    assert [b for b in parsed.buttons if b[1] == "qwen3:8b"] == [
        ("confirm", "qwen3:8b", "Yes, delete qwen3:8b"), ("keep", "qwen3:8b", "Keep it")]
    assert "data-focus" in table  # the page moves focus to "Yes, delete"
    assert notice == ""
    assert [r.path for r in ollama_server.requests if r.path in MANAGING] == []

    table, _ = await tab.row_action(event("keep", "qwen3:8b"))
    assert Parsed(table).rows[3][-1] == "Use in chat Delete"
    assert re.findall(r"<button[^>]*data-focus[^>]*>", table) == [  # back on its Delete
        '<button type="button" class="danger" data-action="delete" data-model="qwen3:8b" '
        'aria-label="Delete qwen3:8b" data-focus>']

    table, notice = await tab.delete(event("confirm", "qwen3:8b"))
    assert [row[0] for row in Parsed(table).rows] == [
        "Model", "nomic-embed-text:latest", "gemma3:latest", "llama3.2:latest"]
    assert words(notice) == "qwen3:8b was deleted."
    assert [(r.path, r.body) for r in ollama_server.requests if r.path in MANAGING] == [
        ("/api/delete", {"model": "qwen3:8b"})]


async def test_deleting_a_model_that_is_gone_says_why_once(
    tab: ModelsHandlers, ollama_server: FakeOllama
) -> None:
    table, notice = await tab.delete(event("confirm", "gone:1b"))
    assert words(notice) == ("Could not delete gone:1b: Model 'gone:1b' is not installed in "
                             "Ollama. Pull it with `ollama pull gone:1b` or from the Models tab.")
    assert 'role="alert"' in notice
    assert [row[0] for row in Parsed(table).rows] == ["Model", "llama3.2:latest"]


async def test_who_may_not_manage_models_gets_no_delete_and_a_refusal_in_words(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    settings = tab_settings(ollama_server.url, tmp_path, auth="ann:pw1,bob:pw2",
                            admin_users="ann")
    handle = ServiceHandle(settings)
    try:
        tab = ModelsHandlers(handle)
        bob, ann = person("bob"), person("ann")
        bobs, _ = await tab.table(bob)
        anns, _ = await tab.table(ann)
        asked = await tab.row_action(event("delete", "llama3.2:latest"), bob)
        deleted = await tab.delete(event("confirm", "llama3.2:latest"), bob)
        pulled = [update async for update in tab.pull("qwen3:8b", bob)]
    finally:
        await handle.close()
    refusal = ("Only administrators may pull or delete models here (the logins in "
               "OLLAMASTACK_ADMIN_USERS).")
    assert Parsed(bobs).buttons == [("use", "llama3.2:latest", "Use in chat")]
    assert [b[0] for b in Parsed(anns).buttons] == ["use", "delete"]
    assert (asked[0], words(asked[1])) == (SKIP, refusal)
    assert words(deleted[1]) == f"Could not delete llama3.2:latest: {refusal}"
    assert [(words(u[0]), *u[1:]) for u in pulled] == [(refusal, SKIP, SKIP, SKIP, SKIP)]
    assert [r.path for r in ollama_server.requests if r.path in MANAGING] == []


async def test_use_in_chat_chooses_a_chat_model_only(
    tab: ModelsHandlers, ollama_server: FakeOllama
) -> None:
    install_four(ollama_server)
    chosen, notice = await tab.use(event("use", "qwen3:8b"))
    assert (chosen, words(notice)) == ("qwen3:8b", "The chat now uses qwen3:8b.")

    assert tab.chose(chosen) is None  # the chain after it goes on: the chat switches

    chosen, notice = await tab.use(event("use", "nomic-embed-text:latest"))
    assert (chosen, words(notice)) == ("", "nomic-embed-text:latest only makes embeddings "
                                           "(vectors of text): it cannot chat.")
    chosen, notice = await tab.use(event("use", "gone:1b"))
    assert (chosen, words(notice)) == (
        "", "gone:1b is not installed any more: press Refresh list.")
    with pytest.raises(gr.Error) as stopped:  # the chain stops, without a toast
        tab.chose(chosen)
    assert stopped.value.visible is False


async def test_only_the_confirming_button_deletes(
    tab: ModelsHandlers, ollama_server: FakeOllama
) -> None:
    for sent in ({"action": "delete", "model": "llama3.2:latest"}, {}, None):
        assert await tab.delete(gr.EventData(None, sent)) == (SKIP, SKIP)
    assert [r.path for r in ollama_server.requests if r.path in MANAGING] == []


async def test_pull_progress_says_sizes_speed_and_time_left_never_a_blob_id(
    handle: ServiceHandle, ollama_server: FakeOllama
) -> None:
    ticks = itertools.count(0, 0.5)  # each look at the clock: half a second later
    tab = ModelsHandlers(handle, update_interval=1.0, clock=lambda: next(ticks))
    ollama_server.add_pullable("qwen3:8b", size=5_225_387_923, parameter_size="8.2B",
                               capabilities=("completion", "tools", "thinking"))
    updates = [update async for update in tab.pull("qwen3:8b")]

    assert updates[0][1:] == (SKIP, SKIP, gr.update(interactive=False), gr.update(visible=True))
    assert all(u[1:] == (SKIP,) * 4 for u in updates[1:-1])
    assert [words(u[0]) for u in updates] == [
        "qwen3:8b: starting…",
        "qwen3:8b: asking the registry…",
        "qwen3:8b: downloading 0 B of 5.2 GB",
        "qwen3:8b: downloading 1.3 GB of 5.2 GB · 1.3 GB/s · a few seconds left",
        "qwen3:8b: downloading 2.6 GB of 5.2 GB · 1.3 GB/s · a few seconds left",
        "qwen3:8b: downloading 3.9 GB of 5.2 GB · 1.3 GB/s · a few seconds left",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB · 1.0 GB/s · a few seconds left",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB · 783.8 MB/s · a few seconds left",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB · 522.5 MB/s · a few seconds left",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB · 261.3 MB/s · a few seconds left",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB · 286 B/s · a few seconds left",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB · 243 B/s · a few seconds left",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB · 200 B/s · a few seconds left",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB · 157 B/s · a few seconds left",
        "qwen3:8b: downloading 5.2 GB of 5.2 GB",
        "qwen3:8b: checking the download…",
        "qwen3:8b: finishing…",
        "qwen3:8b: installed",
        "qwen3:8b is installed: press “Use in chat” in its row to chat with it.",
    ]
    assert not any(re.search(r"[0-9a-f]{12}", u[0]) for u in updates)
    assert '<progress value="1.000" max="1"' in updates[-2][0]
    _, table, notice, pull_button, cancel_button = updates[-1]
    assert Parsed(table).rows[1] == [
        "qwen3:8b", "5.2 GB", "8.2B · Q4_K_M", "tools thinking", "Use in chat Delete"]
    assert (notice, pull_button, cancel_button) == (
        "", gr.update(interactive=True), gr.update(visible=False))


def test_the_time_left_comes_from_the_speed_over_the_last_seconds() -> None:
    from ollamastack.engines.types import PullProgress
    from ollamastack.web.ui.model_table import PullTracker

    now = [0.0]
    tracker = PullTracker("big:70b", clock=lambda: now[0])
    for second, done in enumerate(range(0, 40_000_000_001, 1_000_000_000)):
        now[0] = float(second)  # 1 GB a second, at first
        tracker.add(PullProgress("pulling 0123456789ab", done, 42_000_000_000, "sha256:x"))
    assert tracker.text() == ("big:70b: downloading 40.0 GB of 42.0 GB · 1.0 GB/s · "
                              "a few seconds left")
    for second in range(41, 51):  # then 10 MB a second: the old speed is forgotten
        now[0] = float(second)
        tracker.add(PullProgress("pulling 0123456789ab", 40_000_000_000 + (second - 40) * 10**7,
                                 42_000_000_000, "sha256:x"))
    assert tracker.text() == ("big:70b: downloading 40.1 GB of 42.0 GB · 10.0 MB/s · "
                              "about 3 min left")


@pytest.mark.parametrize(("name", "said"), [
    ("missing-model", "No model named missing-model in the registry — check the name on "
                      "ollama.com/library."),
    ("hf.co/someone/missing-GGUF", "No model named hf.co/someone/missing-GGUF in the registry "
                                   "— check the name on its registry."),
])
async def test_a_name_the_registry_does_not_have_is_said_in_words_once(
    tab: ModelsHandlers, ollama_server: FakeOllama, name: str, said: str
) -> None:
    updates = [update async for update in tab.pull(name)]
    progress, *rest = updates[-1]
    assert words(progress) == said and 'role="alert"' in progress
    assert rest == [SKIP, SKIP, gr.update(interactive=True), gr.update(visible=False)]


async def test_a_pull_with_ollama_down_says_so_with_the_address_for_admins_only(
    tmp_path: Path
) -> None:
    down = closed_port_url()
    handle = ServiceHandle(tab_settings(down, tmp_path))
    try:
        tab = ModelsHandlers(handle)
        local = [u async for u in tab.pull("qwen3:8b", person(host="127.0.0.1"))]
        remote = [u async for u in tab.pull("qwen3:8b", person(host="192.0.2.7"))]
    finally:
        await handle.close()
    words_ = "Could not pull qwen3:8b: Ollama is not reachable."
    assert words(local[-1][0]) == (
        f"{words_} [Details: Ollama is not reachable at {down}. Start it with `ollama serve` "
        "(or `docker compose up ollama`), or point OLLAMA_HOST at a running server.]")
    assert down not in remote[-1][0] and words(remote[-1][0]).startswith(f"{words_} [Details:")


async def test_cancel_closes_the_pull_so_ollama_stops_and_says_a_pull_resumes(
    tab: ModelsHandlers, ollama_server: FakeOllama
) -> None:
    ollama_server.pull_delay = 0.02  # a whole pull: under half a second
    pulling = tab.pull("qwen3:8b")
    async for update in pulling:
        if "downloading" in update[0]:
            break
    await pulling.aclose()  # what Gradio's cancel does to the running handler
    assert tab.cancel_pull("qwen3:8b") == (
        '<div class="pull-progress" role="status"><span>Stopped pulling qwen3:8b. Ollama keeps '
        "the parts already downloaded until it restarts: pull qwen3:8b again to resume."
        "</span></div>",
        gr.update(interactive=True), gr.update(visible=False),
    )
    # The test server installs the model once its last progress line is sent: a stream
    # still read to the end would have installed it by now.
    await asyncio.sleep(1.5)
    assert [m.name for m in ollama_server.models] == ["llama3.2:latest"]


async def test_with_ollama_down_the_empty_table_is_explained(tmp_path: Path) -> None:
    down = closed_port_url()
    handle = ServiceHandle(tab_settings(down, tmp_path))
    try:
        table, notice = await ModelsHandlers(handle).table(person(host="192.0.2.7"))
    finally:
        await handle.close()
    assert Parsed(table).rows == [HEAD, ["No models are listed while Ollama is not reachable."]]
    assert words(notice).startswith(
        "Ollama is not reachable, so no models are listed. Start it, then press Refresh list. "
        "[Details: ")
    assert down not in notice and 'role="alert"' in notice


@pytest.mark.skipif(not embedded_available(), reason="the embedded model is not installed")
async def test_with_ollama_down_the_embedded_model_is_listed_and_still_answers(
    tmp_path: Path
) -> None:
    handle = ServiceHandle(tab_settings(closed_port_url(), tmp_path, embedded=True))
    try:
        tab = ModelsHandlers(handle)
        table, notice = await tab.table()
        chosen, _ = await tab.use(event("use", EMBEDDED_MODEL))
        refused = [update async for update in tab.pull(EMBEDDED_MODEL)]
    finally:
        await handle.close()
    parsed = Parsed(table)
    assert [row[0] for row in parsed.rows[1:]] == [EMBEDDED_MODEL]
    assert parsed.rows[1][3:] == ["in the app prompted tools", "Use in chat"]  # no Delete
    assert words(notice).startswith(
        "Ollama is not reachable, so its models are not listed; the embedded model below still "
        "answers in the Chat tab. [Details: Ollama is not reachable at http://127.0.0.1:")
    assert chosen == EMBEDDED_MODEL
    assert "is the embedded model: it comes with the app and cannot be pulled" in words(
        refused[-1][0])
