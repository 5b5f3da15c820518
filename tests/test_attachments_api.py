"""Documents and images through every API, over real HTTP: gradio_client's `files` on
/chat, a multipart body on REST, `image_url` parts on the OpenAI route, with the
Ollama-protocol test server (its /api/embed too) behind the app. What reached the model,
what was stored and what each refusal says."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gradio_client import Client, handle_file

from ollamastack.errors import AttachmentRefused
from ollamastack.storage.memory import documents_path
from ollamastack.web.uploads import gradio_files
from tests.support import sample_files
from tests.support.api_helpers import OllamaView, Served, run, run_raw, serve
from tests.support.ollama_server import FakeOllama

SECRET = "The launch code is Zebra-42."
# ~3 pages of text too long to read whole in a 2,048-token context share; one sentence
# on page 2 answers the question, and only it shares the question's words
FILLER = " ".join(f"Line {i} of the quarterly ledger lists routine figures." for i in range(180))
TREASURE = "The treasure is buried under the old oak tree by the mill."
QUESTION = "Where is the treasure buried?"


@pytest.fixture(scope="module")
def served(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(shared_server, tmp_path_factory.mktemp("data"), num_ctx=8192) as served:
        yield served


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        yield client


def chat(client: Client, message: str, session_id: str = "", *, model: str = "",
         files: list[Path] = ()) -> list[dict[str, Any]]:
    outputs, error = run(client, message, session_id, model, None, "",
                         [handle_file(str(path)) for path in files], api_name="/chat")
    assert error is None, error
    return outputs


def refusal(client: Client, message: str, files: list[Path], *, model: str = "") -> str:
    outputs, error = run(client, message, "", model, None, "",
                         [handle_file(str(path)) for path in files], api_name="/chat")
    assert outputs == [] and error is not None
    return error


def written(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def system_text(request: dict[str, Any]) -> str:
    first = request["messages"][0]
    assert first["role"] == "system"
    return first["content"]


def rows_holding(database: Path, text: str) -> list[str]:
    """Every table of the SQLite file with a row that holds `text` (any column)."""
    found = []
    with sqlite3.connect(database) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                if any(text.encode() in (v if isinstance(v, bytes) else str(v).encode())
                       for v in row):
                    found.append(table)
                    break
    return found


def test_a_small_document_is_read_whole_and_stays_for_later_turns(
    client: Client, ollama: OllamaView, tmp_path: Path
) -> None:
    notes = written(tmp_path, "notes.md", f"# Plan\n\n{SECRET}\n")
    first = chat(client, "What is the launch code?", files=[notes])[-1]
    session = first["session_id"]
    assert first["sources"] == [{"file": "notes.md", "page": None, "text": ""}]
    system = system_text(ollama.chat_requests[-1])
    assert f'<document name="notes.md">\n# Plan\n\n{SECRET}\n</document>' in system
    assert "not instructions" in system  # the document is material, not orders
    assert ollama.chat_requests[-1]["messages"][-1] == {
        "role": "user", "content": "What is the launch code?"}

    chat(client, "Say it again.", session)  # no file this time: the document is still there
    assert SECRET in system_text(ollama.chat_requests[-1])

    history = client.predict(session, api_name="/history")
    asked = [m for m in history if m["role"] == "user"]
    assert [m.get("files") for m in asked] == [[{
        "id": asked[0]["files"][0]["id"], "name": "notes.md", "kind": "document",
        "mime": "text/markdown", "size": notes.stat().st_size, "pages": 0,
    }], None]
    assert [m["sources"] for m in asked] == [[{"file": "notes.md", "page": None, "text": ""}]] * 2


def test_a_large_pdf_is_searched_by_meaning_with_its_page_as_source(
    client: Client, ollama: OllamaView, served: Served, tmp_path: Path
) -> None:
    ollama.add_model("nomic-embed-text", capabilities=("embedding",))
    served.app.handle.current.engines.embedder.forget()  # as a pull through the app does
    report = written(tmp_path, "report.pdf", sample_files.pdf([FILLER, f"{FILLER} {TREASURE}",
                                                               FILLER]))
    final = chat(client, QUESTION, files=[report])[-1]
    embeds = [r.body for r in ollama.requests if r.path == "/api/embed"]
    assert {body["model"] for body in embeds} == {"nomic-embed-text"}
    assert QUESTION in [text for body in embeds for text in
                        ([body["input"]] if isinstance(body["input"], str) else body["input"])]
    found = [source for source in final["sources"] if TREASURE in source["text"]]
    assert [(s["file"], s["page"]) for s in found] == [("report.pdf", 2)]
    system = system_text(ollama.chat_requests[-1])
    assert '<passage file="report.pdf" page="2">' in system and TREASURE in system
    assert system.count("quarterly ledger") < FILLER.count("quarterly ledger") * 3  # not whole


def test_without_an_embedding_model_documents_are_searched_by_keyword(
    client: Client, ollama: OllamaView, served: Served, tmp_path: Path
) -> None:
    served.app.handle.current.engines.embedder.forget()
    report = written(tmp_path, "report.pdf", sample_files.pdf([FILLER, f"{FILLER} {TREASURE}",
                                                               FILLER]))
    final = chat(client, QUESTION, files=[report])[-1]
    assert [r for r in ollama.requests if r.path == "/api/embed"] == []
    assert [(s["file"], s["page"]) for s in final["sources"] if TREASURE in s["text"]] == [
        ("report.pdf", 2)]


def test_an_image_reaches_a_vision_model_and_is_kept_with_the_message(
    client: Client, ollama: OllamaView, tmp_path: Path
) -> None:
    ollama.add_model("llava:latest", capabilities=("completion", "vision"))
    picture = sample_files.png(8, 6)
    image = written(tmp_path, "cat.png", picture)
    final = chat(client, "What is this?", model="llava", files=[image])[-1]
    asked = ollama.chat_requests[-1]["messages"][-1]
    # langchain-ollama joins a message's text parts each after a newline
    assert asked == {"role": "user", "content": "\nWhat is this?",
                     "images": [base64.b64encode(picture).decode()]}
    history = client.predict(final["session_id"], api_name="/history")
    assert [(f["name"], f["kind"], f["mime"]) for f in history[0]["files"]] == [
        ("cat.png", "image", "image/png")]
    assert "sources" not in final


def test_an_image_for_a_model_that_cannot_see_is_refused_before_any_call(
    client: Client, ollama: OllamaView, tmp_path: Path
) -> None:
    ollama.add_model("llava:latest", capabilities=("completion", "vision"))
    before = client.predict(api_name="/sessions")
    error = refusal(client, "What is this?", [written(tmp_path, "cat.png", sample_files.png(4, 4))])
    assert error == ("llama3.2 cannot read images, so nothing was sent. Choose a model that "
                     "can, such as llava:latest.")
    assert ollama.chat_requests == []
    assert client.predict(api_name="/sessions") == before


@pytest.mark.parametrize(("name", "data", "words"), [
    ("report.pdf", "just some text\n", "report.pdf was not attached: "),
    ("empty.txt", b"", "empty.txt was not attached: "),
    ("locked.pdf", sample_files.encrypted_pdf(), "locked.pdf was not attached: "),
])
def test_bad_files_are_refused_and_nothing_is_stored(
    client: Client, ollama: OllamaView, tmp_path: Path, name: str, data: Any, words: str
) -> None:
    before = client.predict(api_name="/sessions")
    error = refusal(client, "Read this.", [written(tmp_path, name, data)])
    assert error.startswith(words), error
    assert ollama.chat_requests == []
    assert client.predict(api_name="/sessions") == before


def test_more_files_than_allowed_are_refused(
    client: Client, ollama: OllamaView, served: Served, tmp_path: Path
) -> None:
    count = served.settings.max_files + 1
    many = [written(tmp_path, f"n{i}.txt", f"note {i}") for i in range(count)]
    error = refusal(client, "Read these.", many)
    assert str(served.settings.max_files) in error and "files" in error
    assert ollama.chat_requests == []


def test_a_file_path_outside_the_upload_folder_is_never_read(
    served: Served, ollama: OllamaView, tmp_path: Path
) -> None:
    secret = written(tmp_path, "private.txt", SECRET)
    outside = {"path": str(secret), "orig_name": "private.txt",
               "meta": {"_type": "gradio.FileData"}}
    outputs, error = run_raw(served.url, "/chat", ["Read it.", "", "", None, "", [outside]])
    assert outputs == []  # Gradio refuses the path itself; `gradio_files` would too
    assert error == "Gradio could not read this call's inputs (InvalidPathError)."
    assert ollama.chat_requests == []


def test_only_files_in_the_upload_folder_are_read(tmp_path: Path) -> None:
    """The page hands `gradio_files` paths: one outside Gradio's upload folder is refused."""
    secret = written(tmp_path, "private.txt", SECRET)
    with pytest.raises(AttachmentRefused) as refused:
        asyncio.run(gradio_files([str(secret)], limit=1000))
    assert str(refused.value) == "private.txt was not attached: it was not uploaded to this server."


def test_deleting_the_conversation_deletes_its_documents(
    client: Client, ollama: OllamaView, served: Served, tmp_path: Path
) -> None:
    marker = "Quokka-7781 is the marker of this test."
    session = chat(client, "Keep this.", files=[written(tmp_path, "keep.txt", marker)]
                   )[-1]["session_id"]
    files = [served.settings.sqlite_path, documents_path(served.settings.sqlite_path)]
    assert [table for database in files for table in rows_holding(database, "Quokka-7781")]
    client.predict(session, api_name="/delete_session")
    assert [table for database in files for table in rows_holding(database, "Quokka-7781")] == []


def test_rest_takes_files_as_multipart_and_answers_with_sources(
    http: httpx.Client, ollama: OllamaView
) -> None:
    answer = http.post("/api/v1/chat", data={"message": "What is the launch code?",
                                             "temperature": "0.2"},
                       files=[("files", ("notes.txt", SECRET.encode(), "text/plain"))])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["sources"] == [{"file": "notes.txt", "page": None, "text": ""}]
    assert ollama.chat_requests[-1]["options"]["temperature"] == 0.2
    assert SECRET in system_text(ollama.chat_requests[-1])

    refused = http.post("/api/v1/chat", data={"message": "Read this."},
                        files=[("files", ("report.pdf", b"plain text", "application/pdf"))])
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("report.pdf was not attached: ")

    shapeless = http.post("/api/v1/chat", data={"message": "Hi", "temperature": "warm"},
                          files=[("files", ("a.txt", b"a", "text/plain"))])
    assert shapeless.status_code == 400
    assert shapeless.json()["error"]["field"] == "temperature"


def test_the_openai_route_sends_data_url_images_and_fetches_nothing(
    served: Served, ollama: OllamaView
) -> None:
    ollama.add_model("llava:latest", capabilities=("completion", "vision"))
    picture = sample_files.png(5, 5)
    encoded = base64.b64encode(picture).decode()
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)
    content = [{"type": "text", "text": "Describe it."},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}]
    client.chat.completions.create(model="llava", messages=[{"role": "user", "content": content}])
    assert ollama.chat_requests[-1]["messages"][-1]["images"] == [encoded]

    asked = len(ollama.chat_requests)
    remote = [{"type": "image_url", "image_url": {"url": "http://127.0.0.2:9/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="llava",
                                       messages=[{"role": "user", "content": remote}])
    assert "only data: URLs are accepted" in json.dumps(refused.value.body)
    assert len(ollama.chat_requests) == asked


def test_rest_refuses_oversized_files_and_names_with_path_parts(
    http: httpx.Client, ollama: OllamaView, served: Served
) -> None:
    limit = served.settings.upload_bytes
    too_big = http.post("/api/v1/chat", data={"message": "Read this."},
                        files=[("files", ("big.txt", b"a" * (limit + 1), "text/plain"))])
    assert too_big.status_code == 400
    assert too_big.json()["error"]["message"].startswith("big.txt was not attached: it is ")
    climbing = http.post("/api/v1/chat", data={"message": "Read this."},
                         files=[("files", ("../../x.txt", b"hello", "text/plain"))])
    assert climbing.status_code == 400
    assert "was not attached" in climbing.json()["error"]["message"]
    assert ollama.chat_requests == []
    assert http.get("/api/v1/conversations").json() == http.get("/api/v1/conversations").json()


def test_a_document_belongs_to_the_branch_that_attached_it(
    client: Client, ollama: OllamaView, tmp_path: Path
) -> None:
    session = chat(client, "Hello.")[-1]["session_id"]
    chat(client, "Read this.", session, files=[written(tmp_path, "notes.md", SECRET)])
    assert SECRET in system_text(ollama.chat_requests[-1])
    outputs, error = run(client, session, 0, "Hi instead.", api_name="/edit_message")
    assert error is None and outputs[-1]["done"] is True
    assert SECRET not in system_text(ollama.chat_requests[-1])  # a branch without it
    assert "sources" not in outputs[-1]
