"""What a person sees: the launched app in a real browser (Debian's Chromium via Playwright),
over the Ollama-protocol test server."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from ollamastack.settings import Settings
from ollamastack.web.app import build_app, launch
from tests.support.ollama_server import FakeOllama

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_COPY = Path("/tmp/ollamastack-ui.png")  # for a person to look at after the run

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed at /usr/bin/chromium (`make test` installs it)",
)
expect.set_options(timeout=15_000)

# Records every text the last answer showed, to see it grow while it streams.
WATCH_ANSWERS = """() => {
    window.__answers = [];
    const chat = document.querySelector('#chat');
    new MutationObserver(() => {
        const bots = chat.querySelectorAll('[data-testid="bot"] .message-content');
        const last = bots[bots.length - 1];
        if (last) window.__answers.push(last.innerText);
    }).observe(chat, {subtree: true, childList: true, characterData: true});
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app_url(ollama_server: FakeOllama, tmp_path: Path) -> Iterator[str]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        ollama_host=ollama_server.url,
        data_dir=tmp_path / "data",
        model="llama3.2",
        server_port=free_port(),
        rate_limit=1000,  # tests type faster than people; the limit has tests of its own
        embedded=False,
    )
    app = build_app(settings)
    _, url, _ = launch(app, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield url
    finally:
        app.blocks.close()


@pytest.fixture
async def page(app_url: str) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await page.goto(app_url)
            await expect(page.locator("#status")).to_contain_text("Ollama 0.12.6")
            yield page
        finally:
            await browser.close()


async def ask(page: Page, text: str) -> None:
    await page.fill("#message textarea", text)
    await page.press("#message textarea", "Enter")


def answers(page: Page):
    return page.locator('#chat [data-testid="bot"] .message-content')


def conversations(page: Page):
    return page.locator("#conversations label")


async def test_a_conversation_with_a_tool_then_a_new_chat_then_back(
    page: Page, ollama_server: FakeOllama, tmp_path: Path
):
    ollama_server.add_model("gemma3", capabilities=("completion",))
    ollama_server.token_rate = 30  # slow enough to watch the answer grow

    # a model installed since the page loaded appears on refresh, marked as without tools
    await page.get_by_role("button", name="↻ Refresh").click()
    await page.click("#model input")
    options = page.get_by_role("option")
    await expect(options).to_have_count(2)
    labels = await options.evaluate_all("options => options.map(o => o.ariaLabel)")
    assert labels == ["gemma3:latest (no tools)", "llama3.2:latest"]
    await page.get_by_role("option", name="gemma3:latest (no tools)").click()
    await expect(page.locator("#status")).to_contain_text("model gemma3:latest is not loaded")
    await page.click("#model input")
    await page.get_by_role("option", name="llama3.2:latest").click()
    await expect(page.locator("#status")).to_contain_text("model llama3.2:latest")

    answer = "The answer is 5: adding two and three gives five, as the calculator said."
    ollama_server.enqueue_tool_call("calculator", {"expression": "2+3"})
    ollama_server.enqueue_text(answer)
    await page.evaluate(WATCH_ANSWERS)
    await ask(page, "What is 2+3?")

    tool = page.locator("#chat .thought-group .title")
    await expect(tool).to_contain_text("Used tool calculator")
    await expect(answers(page).last).to_contain_text("tokens/s")  # the stats line: done
    await expect(answers(page).last).to_contain_text(answer)
    seen = [t for t in await page.evaluate("window.__answers") if t.strip()]
    growing = {t.strip() for t in seen if answer.startswith(t.strip()) and t.strip() != answer}
    assert len(growing) >= 3, seen  # it streamed: partial answers were shown before the end
    assert ollama_server.chat_requests[-1]["model"] == "llama3.2:latest"

    await tool.click()  # open the tool step: its arguments and result
    step = page.locator('#chat [data-testid="bot"]:has(.thought-group)')
    await expect(step).to_contain_text('"expression": "2+3"')
    await expect(step).to_contain_text("Result")
    await expect(conversations(page)).to_have_text(["What is 2+3?"])

    await page.click("#new-chat")
    await expect(answers(page)).to_have_count(0)
    await ask(page, "hello there")
    await expect(answers(page).last).to_contain_text("You said: hello there")
    await expect(conversations(page)).to_have_text(["hello there", "What is 2+3?"])

    # the side list survives a reload (it lives in the browser); a click reopens from memory
    await page.reload()
    await expect(conversations(page)).to_have_text(["hello there", "What is 2+3?"])
    await conversations(page).filter(has_text="What is 2+3?").click()
    await expect(page.locator('#chat [data-testid="user"]')).to_have_text(["What is 2+3?"])
    await expect(tool).to_contain_text("Used tool calculator")
    await expect(answers(page).last).to_contain_text(answer)
    await tool.click()
    await expect(step).to_contain_text('"expression": "2+3"')
    await page.wait_for_function(  # the step has finished sliding open
        "document.getAnimations().every(a => a.playState !== 'running')"
    )

    shot = tmp_path / "ollamastack-ui.png"
    await page.screenshot(path=shot)
    shutil.copyfile(shot, SCREENSHOT_COPY)

    # the conversation as a Markdown download
    await page.click("#export-md")
    link = page.locator('#export-file [data-testid="download-link"]')
    await expect(link).to_have_attribute("download", "what-is-2-3.md")
    async with page.expect_download() as download:
        await link.click()
    exported = tmp_path / "export.md"
    await (await download.value).save_as(exported)
    text = exported.read_text()
    assert text.startswith("# What is 2+3?\n") and text.endswith(f"\n{answer}\n")
    await page.click("#new-chat")  # the download belongs to the conversation it came from
    await expect(page.locator("#export-file")).to_be_hidden()


async def test_html_in_messages_is_shown_not_run(page: Page, ollama_server: FakeOllama):
    ollama_server.enqueue_text(
        "Look: <img src=x onerror=window.__xss=1> and <script>window.__xss=2</script> done."
    )
    await ask(page, "Say <img src=y onerror=window.__xss=3> and <script>window.__xss=4</script>!")
    await expect(answers(page).last).to_contain_text("tokens/s")
    await expect(answers(page).last).to_contain_text("Look:")
    await expect(answers(page).last).to_contain_text("done.")
    await expect(page.locator('#chat [data-testid="user"]')).to_contain_text("Say")
    # every image in the chat has tried to load (and failed): an onerror would have run
    await page.wait_for_function(
        "[...document.querySelectorAll('#chat img')].every(img => img.complete)"
    )
    assert await page.evaluate("typeof window.__xss") == "undefined"
    assert await page.locator("#chat script").count() == 0
    assert await page.locator("#chat [onerror]").count() == 0


async def test_stop_keeps_the_partial_answer_and_the_page_goes_on(
    page: Page, ollama_server: FakeOllama
):
    ollama_server.token_rate = 10
    ollama_server.enqueue_text("one two three four five six seven eight nine ten " * 6)
    await ask(page, "Count to sixty")
    await expect(answers(page).last).to_contain_text("one two three")
    await page.click("#stop")
    await expect(answers(page).last).to_contain_text("Stopped.")
    partial = (await answers(page).last.inner_text()).split("Stopped.")[0].strip()
    assert partial.startswith("one two three") and not partial.endswith("ten " * 6)

    # what streamed is in memory: reopening the conversation shows it, marked as stopped
    await page.click("#new-chat")
    await conversations(page).filter(has_text="Count to sixty").click()
    await expect(answers(page).last).to_contain_text(partial)
    await expect(answers(page).last).to_contain_text("Stopped.")

    ollama_server.token_rate = None
    await ask(page, "Go on")
    await expect(answers(page).last).to_contain_text("You said: Go on")
