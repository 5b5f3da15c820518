"""Files in the page's message box (issue 18), through the page's handlers over a real chat
service and the Ollama-protocol test server: a document read whole or searched, its Sources
shown live and again when the conversation is reopened, an image shown and sent to a vision
model, each refusal said over the box with the message and its files back in it, and what
the composer's queue, Undo, Retry and the status line make of files.

Files reach the handlers as Gradio's box hands them: paths inside Gradio's upload folder
(here one per test, under tmp_path). Fixtures and helpers are test_ui.py's."""

from __future__ import annotations

import base64
import io
import uuid
from pathlib import Path

import gradio as gr
import pytest
from gradio import ChatMessage
from gradio.utils import get_upload_folder
from PIL import Image

from ollamastack.agent.service_handle import ServiceHandle
from ollamastack.errors import NeedsVision
from ollamastack.web.ui.chat import ChatHandlers, TurnUpdate
from ollamastack.web.ui.composer import Composer, Draft
from ollamastack.web.ui.conversations import ConversationHandlers
from ollamastack.web.ui.models import ModelsHandlers
from ollamastack.web.ui.page import PageHandlers
from tests import test_ui as ui
from tests.support.ollama_server import FakeOllama, describe_images
from tests.test_ui import (
    BUSY,
    HIDDEN,
    MODEL,
    NO_OFFER,
    SKIP,
    bot,
    box,
    collect,
    listed_by_server,
    loading,
    no_toasts,
    notice,
    refill,
    send,
    session_of,
    shown,
    up,
    user,
)

settings, handle, page, chat, saved, composer = (
    ui.settings, ui.handle, ui.page, ui.chat, ui.saved, ui.composer
)
VISION = "llava:latest"
NOTES = b"# Trip\n\nThe train leaves at 9:40 from platform 4.\n"
NOTES_BLOCK = ('<document name="trip notes.md">\n# Trip\n\nThe train leaves at 9:40 from '
               "platform 4.\n</document>")
KEYWORD_NOTE = " · documents: keyword search (pull `nomic-embed-text` to search by meaning)"


@pytest.fixture(autouse=True)
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Gradio's upload folder (and cache) for this test alone."""
    folder = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))  # Gradio's own setting, not ours
    return folder


def upload(name: str, data: bytes) -> str:
    """A file as Gradio's upload route keeps it: its own folder, its name as sent."""
    folder = Path(get_upload_folder()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    (folder / name).write_bytes(data)
    return str(folder / name)


def png(colour: str = "red") -> bytes:
    data = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(data, "PNG")
    return data.getvalue()


def asked(*parts: object) -> ChatMessage:
    """A user message with its files: images as files, documents named."""
    return ChatMessage(role="user", content=list(parts))


def image(path: str, name: str) -> dict:
    return {"file": {"path": path, "mime_type": "image/png", "orig_name": name}, "alt_text": name}


def sources(text: str) -> ChatMessage:
    return bot(text, title="Sources", status="done")


def answer(text: str, tokens: int) -> ChatMessage:
    return bot(f"{text}\n\n<sub>{tokens} tokens · 100.0 tokens/s · first token T</sub>")


def stored_answer(text: str, tokens: int) -> ChatMessage:
    return bot(f"{text}\n\n<sub>{tokens} tokens · 100.0 tokens/s</sub>")


# -- documents ------------------------------------------------------------------------------


async def test_a_document_is_read_whole_with_its_sources_and_shown_again_on_reopening(
    chat: ChatHandlers, saved: ConversationHandlers, handle: ServiceHandle,
    ollama_server: FakeOllama, composer: Composer,
):
    notes = upload("trip notes.md", NOTES)
    with no_toasts():
        updates = await collect(send(chat, box("When does the train leave?", notes),
                                     composer=composer))
    session = session_of(updates)
    question = asked("Attached `trip notes.md`", "When does the train leave?")
    read_whole = sources("**trip notes\\.md**: read whole")
    said = "You said: When does the train leave?"
    assert updates[:3] == [
        TurnUpdate([question, loading()], BUSY, streaming=True, notice=HIDDEN),
        TurnUpdate(session_id=session, conversations=[
            {"id": session, "title": "When does the train leave?"}],
            listing=shown((session, "When does the train leave?"), selected=session)),
        TurnUpdate([question, read_whole, loading()]),  # the Sources, before the answer
    ]
    assert updates[-1] == TurnUpdate([question, read_whole, answer(said, 7)], streaming=False)
    messages = ollama_server.chat_requests[-1]["messages"]
    system, last = messages[0], messages[-1]
    assert system["role"] == "system" and system["content"].endswith(NOTES_BLOCK)
    assert last == {"role": "user", "content": "When does the train leave?"}

    core = await handle.get()
    (stored, _) = await core.history(session)
    file_id = stored.additional_kwargs["attachments"][0]["id"]
    assert stored.additional_kwargs == {
        "attachments": [{"id": file_id, "name": "trip notes.md", "kind": "document",
                         "mime": "text/markdown", "size": len(NOTES), "pages": 0}],
        "sources": [{"file": "trip notes.md", "page": None, "text": ""}],
    }
    # reopened (a reload opens it the same way): the file and the Sources again
    listed = await listed_by_server(handle)
    opened = await saved.open_session(session, listed, composer)
    assert opened[0] == [question, read_whole, ui.bot(f"{said}\n\n<sub>7 tokens · 100.0 "
                                                      "tokens/s</sub>")]

    # a later question, nothing attached: the document is still read, and said so
    later = await collect(send(chat, box("And the platform?"), opened[0], session,
                               composer=composer))
    assert later[-1] == TurnUpdate([*opened[0], user("And the platform?"), read_whole,
                                    answer("You said: And the platform?", 5)], streaming=False)
    assert ollama_server.chat_requests[-1]["messages"][0]["content"].endswith(NOTES_BLOCK)


async def test_a_large_document_is_searched_and_its_passages_are_the_sources(
    chat: ChatHandlers, saved: ConversationHandlers, handle: ServiceHandle,
    ollama_server: FakeOllama,
):
    """Larger than a quarter of the context (8192 tokens here): the passages found for the
    question (by keyword: no embedding model) are what the model reads and the page shows."""
    filler = "\n\n".join(f"Day {n}: we walked along the river and ate bread." for n in range(700))
    timetable = f"{filler}\n\nThe night ferry to Hydra leaves from pier 7 at 23:15.\n"
    path = upload("timetable.txt", timetable.encode())
    updates = await collect(send(chat, box("When does the ferry to Hydra leave?", path)))
    session = session_of(updates)
    shown_sources = updates[-1].chat[1]
    assert shown_sources.metadata == {"title": "Sources", "status": "done"}
    first = shown_sources.content.split("\n\n")[0]
    assert first.startswith("**timetable\\.txt**\n> ")
    assert "> The night ferry to Hydra leaves from pier 7 at 23:15." in first
    system = ollama_server.chat_requests[-1]["messages"][0]["content"]
    assert '<passage file="timetable.txt">' in system and "pier 7 at 23:15" in system
    assert "<document " not in system  # not read whole
    stored = (await (await handle.get()).history(session))[0].additional_kwargs["sources"]
    assert "pier 7 at 23:15" in stored[0]["text"] and stored[0]["page"] is None
    reopened = (await saved.open_session(session, []))[0]
    assert reopened[1] == shown_sources


async def test_files_alone_make_a_message_and_name_the_new_conversation(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    updates = await collect(send(chat, box("", upload("trip notes.md", NOTES))))
    session = session_of(updates)
    assert updates[0].chat[0] == asked("Attached `trip notes.md`")
    assert updates[1].conversations == [{"id": session, "title": "trip notes.md"}]
    assert [s.title for s in await (await handle.get()).sessions()] == ["trip notes.md"]
    assert ollama_server.chat_requests[-1]["messages"][0]["content"].endswith(NOTES_BLOCK)


# -- images ---------------------------------------------------------------------------------


async def test_an_image_reaches_a_vision_model_and_is_shown_again_from_gradios_cache(
    chat: ChatHandlers, saved: ConversationHandlers, handle: ServiceHandle,
    ollama_server: FakeOllama, uploads: Path,
):
    ollama_server.add_model("llava", capabilities=("completion", "vision"))
    picture = png()
    path = upload("cat.png", picture)
    updates = await collect(send(chat, box("What is this?", path), model=VISION))
    session = session_of(updates)
    question = asked(image(path, "cat.png"), "What is this?")
    sent = ollama_server.chat_requests[-1]["messages"][-1]
    assert (sent["content"].strip(), sent["images"]) == (
        "What is this?", [base64.b64encode(picture).decode()])
    said = f"You said: {sent['content']}{describe_images([picture])}"  # the image's hash
    assert updates[0] == TurnUpdate([question, loading(VISION)], BUSY, streaming=True,
                                    notice=HIDDEN)
    assert updates[-1] == TurnUpdate([question, answer(said, 10)], streaming=False)

    opened = (await saved.open_session(session, []))[0]
    cached = opened[0].content[0]["file"]["path"]
    assert opened == [asked(image(cached, "cat.png"), "What is this?"),
                      stored_answer(said, 10)]
    assert Path(cached).is_relative_to(uploads) and Path(cached).name == "cat.png"
    assert Path(cached).read_bytes() == picture  # noqa: ASYNC240 (what Gradio serves)
    assert cached != path  # not the upload: written again from the conversation


async def test_an_image_for_a_model_that_cannot_see_is_refused_and_goes_back_to_the_box(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, composer: Composer
):
    ollama_server.add_model("llava", capabilities=("completion", "vision"))
    path = upload("cat.png", png())
    history = [user("earlier")]
    with no_toasts():
        updates = await collect(send(chat, box("What is this?", path), history,
                                     composer=composer))
    assert updates == [
        TurnUpdate([*history, asked(image(path, "cat.png"), "What is this?"), loading()], BUSY,
                   streaming=True, notice=HIDDEN),
        TurnUpdate(history, refill("What is this?", path), streaming=False, notice=notice(
            "llama3.2:latest cannot read images, so nothing was sent. Choose a model that "
            "can, such as llava:latest.")),
    ]
    assert str(NeedsVision(MODEL, VISION)) in updates[-1].notice["value"]
    core = await handle.get()
    assert await core.sessions() == [] and ollama_server.chat_requests == []
    assert composer.failed is None  # refused, not failed: Retry has nothing to send again


@pytest.mark.parametrize(("name", "data", "why"), [
    ("report.pdf", b"Just some words, not a PDF.",
     "report.pdf was not attached: it is not a PDF (its content is plain text)"),
    ("empty.txt", b"", "empty.txt was not attached: it is empty"),
])
async def test_a_refused_file_is_said_over_the_box_and_nothing_is_stored(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, name: str,
    data: bytes, why: str,
):
    path = upload(name, data)
    with no_toasts():
        updates = await collect(send(chat, box("Summarise it", path)))
    assert updates[-1] == TurnUpdate([], refill("Summarise it", path), streaming=False,
                                     notice=notice(why))
    assert await (await handle.get()).sessions() == [] and ollama_server.chat_requests == []


async def test_a_path_outside_gradios_uploads_is_refused_unread(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama, tmp_path: Path
):
    """A crafted request naming a file of the server's: never read, never sent."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the admin password is hunter2")
    with no_toasts():
        updates = await collect(send(chat, box("read this", str(secret))))
    assert updates[-1].notice == notice(
        "secret.txt was not attached: it was not uploaded to this server.")
    assert await (await handle.get()).sessions() == [] and ollama_server.chat_requests == []


# -- the composer with files -----------------------------------------------------------------


async def test_a_message_with_files_sent_while_answering_waits_and_goes_out_with_them(
    chat: ChatHandlers, ollama_server: FakeOllama, composer: Composer
):
    turn = send(chat, box("first"), composer=composer)
    await anext(turn)
    session = (await anext(turn)).session_id
    notes = upload("trip notes.md", NOTES)
    queued = await collect(send(chat, box("", notes), composer=composer))
    assert queued == [TurnUpdate(box=gr.update(value=box("")), queued=gr.update(
        value="Queued: trip notes.md will be sent when this answer ends.", visible=True))]
    assert composer.queued == [Draft("", (notes,))]
    rest = await collect(turn)
    assert rest[-1].chat[-3:] == [
        asked("Attached `trip notes.md`"), sources("**trip notes\\.md**: read whole"),
        answer("You said: ", 2)]
    assert ollama_server.chat_requests[-1]["messages"][0]["content"].endswith(NOTES_BLOCK)
    assert [u for u in rest if u.session_id != SKIP] == []  # the same conversation
    assert rest[-1].chat[0] == user("first") and session


async def test_stop_puts_queued_files_back_into_the_box(
    chat: ChatHandlers, ollama_server: FakeOllama, composer: Composer
):
    ollama_server.token_rate = 20
    ollama_server.enqueue_text("one two three four five six seven eight nine ten " * 5)
    turn = send(chat, box("count"), composer=composer)
    await anext(turn)
    session = (await anext(turn)).session_id
    picture, notes = upload("cat.png", png()), upload("trip notes.md", NOTES)
    for message in (box("look", picture), box("and read", notes)):
        await collect(send(chat, message, composer=composer))
        assert await chat.settle("", False, [], True, None, composer) == (SKIP,) * 6
    await turn.aclose()  # Stop
    settled = await chat.settle(session, True, [], True, None, composer)
    assert settled[4] == refill("look\n\nand read", picture, notes)
    assert composer.queued == []


async def test_undo_gives_the_text_back_and_says_its_files_went_with_it(
    chat: ChatHandlers, handle: ServiceHandle
):
    updates = await collect(send(chat, box("When?", upload("trip notes.md", NOTES))))
    session = session_of(updates)
    core = await handle.get()
    with no_toasts():
        undone = await chat.undo(session, True)
    assert undone == ([], box("When?"), notice(
        "Removed with it: trip notes.md. Attach again to send it."))
    assert await core.history(session) == []
    assert await core.memory.documents.files("", session) == []


async def test_retry_sends_the_message_again_with_its_files(
    chat: ChatHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    updates = await collect(send(chat, box("When?", upload("trip notes.md", NOTES))))
    session = session_of(updates)
    core = await handle.get()
    [before] = [m for m in await core.history(session) if m.type == "human"]
    with no_toasts():
        await collect(chat.retry(session, MODEL, 0.7, "", True, None, Composer()))
    [after] = [m for m in await core.history(session) if m.type == "human"]
    assert after.additional_kwargs["attachments"] == before.additional_kwargs["attachments"]
    assert after.id != before.id  # asked anew, as a sibling branch: the first answer is kept
    assert [(b.index, b.branch, b.branches) for b in await core.branches(session)] == [(0, 2, 2)]
    assert len(await core.memory.documents.files("", session)) == 1
    assert [NOTES_BLOCK in r["messages"][0]["content"] for r in ollama_server.chat_requests] == [
        True, True]


# -- the status line -------------------------------------------------------------------------


async def test_the_status_line_says_documents_are_searched_by_keyword_without_an_embedder(
    chat: ChatHandlers, page: PageHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    plain = session_of(await collect(send(chat, box("hello"))))
    with_notes = session_of(await collect(send(chat, box("When?", upload("n.md", NOTES)))))
    assert await page.status(MODEL) == (up(ollama_server), NO_OFFER)  # no conversation open
    assert await page.status(MODEL, plain) == (up(ollama_server), NO_OFFER)  # no documents
    assert await page.status(MODEL, with_notes) == (up(ollama_server) + KEYWORD_NOTE,
                                                     NO_OFFER)
    # as the note says: the embedding model pulled (the Models tab), the note goes
    ollama_server.add_pullable("nomic-embed-text", capabilities=("embedding",))
    await collect(ModelsHandlers(handle, update_interval=0).pull("nomic-embed-text"))
    assert await page.status(MODEL, with_notes) == (up(ollama_server), NO_OFFER)


async def test_a_reload_shows_the_open_conversations_files_and_status(
    chat: ChatHandlers, page: PageHandlers, handle: ServiceHandle, ollama_server: FakeOllama
):
    session = session_of(await collect(send(chat, box("When?", upload("n.md", NOTES)))))
    listed = await listed_by_server(handle)
    loaded = await page.load_page(listed, {"session_id": session})
    assert loaded[1] == up(ollama_server) + KEYWORD_NOTE
    assert loaded[5] == [asked("Attached `n.md`", "When?"), sources("**n\\.md**: read whole"),
                         stored_answer("You said: When?", 3)]
    assert loaded[6] == session


def test_the_box_offers_the_types_the_service_accepts():
    from ollamastack.documents.files import EXTENSIONS
    from ollamastack.web.ui.composer import FILE_TYPES

    assert sorted(FILE_TYPES) == sorted(EXTENSIONS)
