"""Files in the message box as a person uses them (issue 18), in Chromium at desktop and phone
sizes: a document picked with the box's file button, its Sources before the answer and both
again after a reload; an image shown in the message and seen by a vision model; the
refusals said over the box with the message and its files still in it.

Each state is saved as a screenshot under SHOTS (test_browser_page.py) for a person to look at.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Browser, Page, expect

from tests.support.ollama_server import FakeOllama
from tests.test_browser import CHROMIUM, serve_app
from tests.test_browser_page import (
    DESKTOP,
    PHONE,
    SIZES,
    bot_messages,
    browser,
    open_page,
    serious_violations,
    shot,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed")
__all__ = ["browser"]  # the fixture, shared

NOTES = b"# Trip\n\nThe train leaves at 9:40 from platform 4.\n"
# The image in the user's message has loaded: the 64-pixel-wide picture sent.
LOADED = """() => {
  const shown = document.querySelector('#chat [data-testid="user"] img');
  return shown !== null && shown.complete && shown.naturalWidth === 64;
}"""
NOTES_BLOCK = ('<document name="trip notes.md">\n# Trip\n\nThe train leaves at 9:40 from '
               "platform 4.\n</document>")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Files on the person's computer, to pick."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "trip notes.md").write_bytes(NOTES)
    (folder / "report.pdf").write_bytes(b"Just some words, not a PDF.")
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(picture, "PNG")
    (folder / "teal.png").write_bytes(picture.getvalue())
    return folder


@pytest.fixture
def app_url(ollama_server: FakeOllama, tmp_path: Path) -> Iterator[str]:
    ollama_server.add_model("llava", capabilities=("completion", "vision"))
    with serve_app(ollama_server, tmp_path) as url:
        yield url


async def attach(page: Page, *paths: Path) -> None:
    """Pick files with the box's file button; they show in the box once uploaded."""
    thumbnails = page.locator("#message .thumbnail-item")
    before = await thumbnails.count()
    await page.locator("#message input[type=file]").set_input_files([str(p) for p in paths])
    await expect(thumbnails).to_have_count(before + len(paths))


async def send(page: Page, text: str) -> None:
    await page.fill("#message textarea", text)
    await page.press("#message textarea", "Enter")


def users(page: Page):
    return page.locator('#chat [data-testid="user"]')


async def box_on_screen(page: Page) -> None:
    size = page.viewport_size or DESKTOP
    box = await page.locator("#message").bounding_box()
    assert box is not None and box["y"] + box["height"] <= size["height"], box


@pytest.mark.parametrize("size", SIZES)
async def test_a_document_shows_its_sources_before_the_answer_and_again_after_a_reload(
    browser: Browser, app_url: str, ollama_server: FakeOllama, files: Path, size: dict
):
    page = await open_page(browser, app_url, size)
    await attach(page, files / "trip notes.md")
    await box_on_screen(page)
    await shot(page, "document-attached")
    await send(page, "When does the train leave?")
    await expect(bot_messages(page).last).to_contain_text("You said: When does the train leave?")
    await expect(page.locator("#message .thumbnail-item")).to_have_count(0)  # sent: emptied
    await expect(users(page)).to_have_text(["Attached trip notes.md",
                                            "When does the train leave?"])
    system = ollama_server.chat_requests[-1]["messages"][0]["content"]
    assert system.endswith(NOTES_BLOCK)  # the document reached the model

    sources = bot_messages(page).filter(has_text="Sources")
    await expect(sources).to_have_count(1)
    await sources.get_by_role("button", name="Sources").click()  # collapsed until opened
    await expect(sources).to_contain_text("trip notes.md: read whole")
    await expect(page.locator("#status")).to_contain_text(
        "documents: keyword search (pull nomic-embed-text to search by meaning)")
    await box_on_screen(page)
    await shot(page, "document-sources")
    assert await serious_violations(page) == []

    await page.reload()  # the conversation comes back with its file and its Sources
    await expect(page.locator("#status")).to_contain_text("Ollama 0.12.6")
    await expect(users(page)).to_have_text(["Attached trip notes.md",
                                            "When does the train leave?"])
    await expect(bot_messages(page).filter(has_text="Sources")).to_have_count(1)
    await expect(bot_messages(page).last).to_contain_text("You said: When does the train leave?")
    await shot(page, "document-reloaded")


@pytest.mark.parametrize("size", SIZES)
async def test_an_image_is_shown_in_the_message_and_reaches_a_vision_model(
    browser: Browser, app_url: str, ollama_server: FakeOllama, files: Path, size: dict
):
    page = await open_page(browser, app_url, size)
    await page.click("#open-settings")
    await page.click("#model input")
    await page.get_by_role("option").filter(has_text="llava").click()
    if size == PHONE:  # on a phone the settings cover the chat
        await page.get_by_role("button", name="Show or hide chat settings").click()
    await attach(page, files / "teal.png")
    await send(page, "What colour is this?")
    await expect(bot_messages(page).last).to_contain_text("[1 image:")
    sent = ollama_server.chat_requests[-1]
    assert sent["model"] == "llava:latest"
    assert sent["messages"][-1]["images"] == [
        base64.b64encode((files / "teal.png").read_bytes()).decode()]
    shown = users(page).locator("img")
    await expect(shown).to_have_count(1)
    await expect(users(page).last).to_have_text("What colour is this?")
    await page.wait_for_function(LOADED)  # the picture itself, served by this app
    assert (await shown.get_attribute("src") or "").startswith(app_url.rstrip("/"))
    await shot(page, "image-answered")
    assert await serious_violations(page) == []

    await page.reload()
    await expect(page.locator("#status")).to_contain_text("Ollama 0.12.6")
    await expect(users(page).locator("img")).to_have_count(1)
    await page.wait_for_function(LOADED)
    await shot(page, "image-reloaded")


async def test_an_image_for_a_model_that_cannot_see_is_refused_and_stays_in_the_box(
    browser: Browser, app_url: str, ollama_server: FakeOllama, files: Path
):
    page = await open_page(browser, app_url, DESKTOP)
    await attach(page, files / "teal.png")
    await send(page, "What colour is this?")
    await expect(page.locator("#notice")).to_have_text(
        "⚠ llama3.2:latest cannot read images, so nothing was sent. Choose a model that can, "
        "such as llava:latest.")
    await expect(page.locator("#message textarea")).to_have_value("What colour is this?")
    await expect(page.locator("#message .thumbnail-item")).to_have_count(1)  # still attached
    await expect(users(page)).to_have_count(0)
    await expect(page.locator("#conversations .empty")).to_be_visible()  # nothing stored
    assert ollama_server.chat_requests == []
    await shot(page, "image-refused")
    assert await serious_violations(page) == []


async def test_a_text_file_named_pdf_is_refused_in_plain_words(
    browser: Browser, app_url: str, ollama_server: FakeOllama, files: Path
):
    page = await open_page(browser, app_url, PHONE)
    await attach(page, files / "report.pdf")
    await send(page, "Summarise it")
    await expect(page.locator("#notice")).to_have_text(
        "⚠ report.pdf was not attached: it is not a PDF (its content is plain text)")
    await expect(page.locator("#message .thumbnail-item")).to_have_count(1)
    await expect(users(page)).to_have_count(0)
    assert ollama_server.chat_requests == []
    await box_on_screen(page)
    await shot(page, "pdf-refused")
