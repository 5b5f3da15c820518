"""What a person sees of the Models tab and the login page, in Chromium at a desktop (1280×900)
and a phone (390×844) size: rows with "Use in chat" and Delete (asked first), pull progress in
sizes and time with Cancel, Ollama down explained; the login page's name, focus, kept username,
contrast, login and logout. Each state is saved as a screenshot in `SHOTS` for a person to look
at after the run."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from ollamastack.engines.embedded.engine import EMBEDDED_MODEL, embedded_available
from tests.support.api_helpers import serve
from tests.support.ollama_server import FakeOllama
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

SHOTS = Path("/tmp/ollamastack-shots")  # for a person to look at after the run (made below)
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed at /usr/bin/chromium (`make test` installs it)",
)
expect.set_options(timeout=15_000)

# The contrast ratio (WCAG 2) of an element's text, or of its border with `border: true`,
# against the first opaque background behind it.
CONTRAST = """(element, border) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let back = element.parentElement;
  let fill = getComputedStyle(element).backgroundColor;
  while ((rgb(fill)[3] ?? 1) === 0 && back) {
    fill = getComputedStyle(back).backgroundColor; back = back.parentElement;
  }
  const style = getComputedStyle(element);
  const front = border ? style.borderTopColor : style.color;
  const [a, b] = [lum(rgb(front)), lum(rgb(fill))].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    SHOTS.mkdir(exist_ok=True)  # noqa: ASYNC240 (once, before the browser starts)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def shot(page: Page, name: str, *, settled: bool = True) -> None:
    if settled:  # transitions done: colours are final
        await page.wait_for_function(
            "document.getAnimations().every(a => a.playState !== 'running')")
    await page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


async def open_models_tab(browser: Browser, url: str, size: str) -> Page:
    page = await browser.new_page(viewport=SIZES[size])
    await page.goto(url)
    await page.get_by_role("tab", name="Models").click()
    return page


def table(page: Page):
    return page.locator("#models-table table")


async def fits(page: Page, selector: str) -> bool:
    """Whether the element is no wider than the window: nothing to scroll sideways."""
    return await page.locator(selector).evaluate(
        "e => e.getBoundingClientRect().right <= window.innerWidth + 1")


@pytest.mark.parametrize("size", SIZES)
async def test_rows_delete_asked_first_and_use_in_chat(
    browser: Browser, ollama_server: FakeOllama, tmp_path: Path, size: str
) -> None:
    ollama_server.add_model("qwen3:8b", capabilities=("completion", "tools", "thinking"),
                            size=5_225_387_923, parameter_size="8.2B")
    ollama_server.add_model("nomic-embed-text", capabilities=("embedding",), size=274_302_450)
    with serve(ollama_server, tmp_path) as app:
        page = await open_models_tab(browser, app.url, size)
        rows = table(page).locator("tbody tr")
        await expect(rows).to_have_count(3)
        await expect(page.get_by_role("table", name="Installed models").get_by_role(
            "rowheader")).to_have_text(["nomic-embed-text:latest", "qwen3:8b", "llama3.2:latest"])
        await expect(rows.nth(1)).to_contain_text("qwen3:8b5.2 GB8.2B · Q4_K_Mtoolsthinking")
        await expect(rows.nth(0)).to_contain_text("embedding only")
        await expect(rows.nth(0).get_by_role("button")).to_have_text(["Delete"])  # no chat
        assert await fits(page, "#models-table table")
        await shot(page, f"models-rows-{size}")

        await page.get_by_role("button", name="Delete qwen3:8b").click()
        confirm = page.get_by_role("button", name="Yes, delete qwen3:8b")
        await expect(rows.nth(1)).to_contain_text("Really delete qwen3:8b?")
        await expect(confirm).to_be_focused()  # Enter confirms, Tab reaches "Keep it"
        await shot(page, f"models-confirm-{size}")
        await page.get_by_role("button", name="Keep it").click()
        await expect(page.get_by_role("button", name="Delete qwen3:8b")).to_be_focused()
        assert "qwen3:8b" in [m.name for m in ollama_server.models]

        await page.get_by_role("button", name="Delete qwen3:8b").click()
        await confirm.click()
        await expect(page.locator("#models-notice")).to_have_text("qwen3:8b was deleted.")
        await expect(rows).to_have_count(2)
        assert "qwen3:8b" not in [m.name for m in ollama_server.models]
        await shot(page, f"models-deleted-{size}")

        ollama_server.add_model("gemma3", capabilities=("completion", "vision"))
        await page.get_by_role("button", name="↻ Refresh list").click()
        await expect(rows).to_have_count(3)
        ollama_server.remove_model("gemma3")  # gone since the table was drawn
        await page.get_by_role("button", name="Use gemma3:latest in chat").click()
        await expect(page.locator("#models-notice")).to_have_text(
            "gemma3:latest is not installed any more: press Refresh list.")
        await expect(page.locator(".toast-body")).to_have_count(0)  # said once
        await shot(page, f"models-use-gone-{size}")

        await page.get_by_role("button", name="Use llama3.2:latest in chat").click()
        # the handler chose it (the page switches the chat to it: the lead's wiring)
        await expect(page.locator("#models-notice")).to_have_text(
            "The chat now uses llama3.2:latest.")
        await shot(page, f"models-use-in-chat-{size}")


@pytest.mark.parametrize("size", SIZES)
async def test_pull_progress_in_sizes_and_time_then_cancel(
    browser: Browser, ollama_server: FakeOllama, tmp_path: Path, size: str
) -> None:
    ollama_server.add_pullable("phi4", size=9_053_116_391)
    ollama_server.pull_delay = 0.8  # a whole pull: about 16 s, so Cancel lands mid-pull
    # even when a loaded machine takes seconds over the screenshot before it
    with serve(ollama_server, tmp_path) as app:
        page = await open_models_tab(browser, app.url, size)
        await page.get_by_label("Model to pull").fill("phi4")
        started = time.monotonic()
        await page.get_by_role("button", name="Pull", exact=True).click()
        progress = page.locator("#pull-progress")
        await expect(progress).to_contain_text(re.compile(
            r"phi4: downloading [\d.]+ GB of 9\.1 GB · [\d.]+ [kMG]?B/s · (a few seconds|about .*) "
            r"left"))
        assert not re.search(r"[0-9a-f]{12}", await progress.inner_text())  # no blob id
        await expect(page.get_by_role("button", name="Pull", exact=True)).to_be_disabled()
        assert await fits(page, "#pull-progress")
        await shot(page, f"models-pull-{size}", settled=False)  # while it says the speed

        await page.get_by_role("button", name="Cancel pull").click()
        await expect(progress.get_by_role("status")).to_have_text(
            "Stopped pulling phi4. Ollama keeps the parts already downloaded until it "
            "restarts: pull phi4 again to resume.")
        await expect(page.get_by_role("button", name="Cancel pull")).to_be_hidden()
        await expect(page.get_by_role("button", name="Pull", exact=True)).to_be_enabled()
        await shot(page, f"models-pull-cancelled-{size}")
        # the test server installs the model after its last line: a pull still read would
        # have installed it by now
        await page.wait_for_timeout(max(0, 17.0 - (time.monotonic() - started)) * 1000)
        assert "phi4:latest" not in [m.name for m in ollama_server.models]


@pytest.mark.parametrize("size", SIZES)
async def test_a_name_the_registry_lacks_is_said_once_in_words(
    browser: Browser, ollama_server: FakeOllama, tmp_path: Path, size: str
) -> None:
    with serve(ollama_server, tmp_path) as app:
        page = await open_models_tab(browser, app.url, size)
        await page.get_by_label("Model to pull").fill("missing-model")
        await page.get_by_label("Model to pull").press("Enter")
        said = ("No model named missing-model in the registry — check the name on "
                "ollama.com/library.")
        await expect(page.get_by_role("alert").filter(has_text=said)).to_have_count(1)
        await expect(page.get_by_text("missing-model in the registry")).to_have_count(1)
        await expect(page.locator(".toast-body")).to_have_count(0)  # no toast besides
        await shot(page, f"models-no-such-model-{size}")


@pytest.mark.parametrize("size", SIZES)
async def test_with_ollama_down_the_empty_table_is_explained(
    browser: Browser, ollama_server: FakeOllama, tmp_path: Path, size: str
) -> None:
    with serve(ollama_server, tmp_path) as app:
        ollama_server.stop()
        try:
            page = await open_models_tab(browser, app.url, size)
            await expect(table(page).locator("tbody")).to_have_text(
                "No models are listed while Ollama is not reachable.")
            notice = page.locator("#models-notice")
            await expect(notice).to_contain_text(
                "Ollama is not reachable, so no models are listed. Start it, then press "
                "Refresh list.")
            await notice.get_by_text("Details").click()
            await expect(notice).to_contain_text(f"Ollama is not reachable at {ollama_server.url}")
            await shot(page, f"models-ollama-down-{size}")
        finally:
            ollama_server.start()


@pytest.mark.skipif(not embedded_available(), reason="the embedded model is not installed")
async def test_with_ollama_down_the_embedded_model_is_listed(
    browser: Browser, ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with serve(ollama_server, tmp_path, embedded=True) as app:
        ollama_server.stop()
        try:
            page = await open_models_tab(browser, app.url, "desktop")
            await expect(table(page).locator("tbody th")).to_have_text([EMBEDDED_MODEL])
            await expect(page.locator("#models-notice")).to_contain_text(
                "Ollama is not reachable, so its models are not listed; the embedded model "
                "below still answers in the Chat tab.")
            await shot(page, "models-ollama-down-embedded-desktop")
        finally:
            ollama_server.start()


# -- the login page ------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_login_page_name_focus_kept_username_contrast_then_login_and_logout(
    browser: Browser, ollama_server: FakeOllama, tmp_path: Path, size: str
) -> None:
    with serve(ollama_server, tmp_path, auth="ann:pw-ann,bob:pw-bob") as app:
        context = await browser.new_context(viewport=SIZES[size])
        page = await context.new_page()
        await page.goto(app.url)
        await expect(page.get_by_role("heading", level=1)).to_have_text("OllamaStack")
        await expect(page.get_by_text("A private assistant on your own Ollama models.")
                     ).to_be_visible()
        await expect(page.get_by_label("Username")).to_be_focused()
        texts = ["h1", ".tagline", "h2", "label[for=username]", "button"]
        for selector in texts:
            ratio = await page.locator(selector).evaluate(CONTRAST, False)
            assert ratio >= 4.5, (selector, ratio)  # WCAG AA for text
        for selector in ("#username", "#password"):  # AA for a control's outline: 3:1
            assert await page.locator(selector).evaluate(CONTRAST, True) >= 3, selector
        await shot(page, f"login-{size}")

        await page.keyboard.type("ann")  # focus is in Username
        await page.get_by_label("Password").fill("wrong")
        await page.get_by_label("Password").press("Enter")
        alert = page.get_by_role("alert")
        await expect(alert).to_have_text("Wrong username or password. Check both and try again.")
        await expect(page.get_by_label("Username")).to_have_value("ann")
        await expect(page.get_by_label("Password")).to_be_focused()
        assert await alert.evaluate(CONTRAST, False) >= 4.5
        await shot(page, f"login-wrong-password-{size}")

        await page.keyboard.type("pw-ann")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("tab", name="Models")).to_be_visible()  # the app
        assert (await page.request.get(f"{app.url}/config")).status == 200
        await shot(page, f"login-logged-in-{size}")

        await page.goto(f"{app.url}/logout")  # what a Logout link does: GET /logout
        await expect(page.get_by_role("heading", level=1)).to_have_text("OllamaStack")
        assert page.url.rstrip("/") == app.url
        assert (await page.request.get(f"{app.url}/config")).status == 401
        await shot(page, f"login-after-logout-{size}")
        await context.close()
