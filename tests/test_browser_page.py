"""The page as a person meets it (issue 16), in Chromium at desktop and phone sizes: one
composer, errors said once, the conversation list and its menu, per-chat settings kept
across a reload, the phone layout, and axe-core's accessibility checks.

Each state is saved as a screenshot under SHOTS for a person to look at after the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from ollamastack.web.ui import conversations as conversations_module
from tests.support.ollama_server import FakeOllama
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, serve_app

AXE = Path(__file__).parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = Path("/tmp/ollamastack-shots")  # screenshots of each state, for a person to look at
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
OPEN = re.compile(r"\bopen\b")  # an open sidebar
SIZES = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed"),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (make test runs npm)"),
]
expect.set_options(timeout=15_000)


@pytest.fixture
def app_url(ollama_server: FakeOllama, tmp_path: Path) -> Iterator[str]:
    with serve_app(ollama_server, tmp_path) as url:
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Browser, url: str, size: dict, **options: object) -> Page:
    page = await browser.new_page(viewport=size, accept_downloads=True, **options)  # type: ignore[arg-type]
    await page.goto(url)
    await expect(page.locator("#status")).to_contain_text("Ollama 0.12.6")  # the page loaded
    return page


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)  # noqa: ASYNC240 (a test's folder, once)
    size = page.viewport_size or DESKTOP
    await page.screenshot(path=SHOTS / f"{name}-{size['width']}.png")


async def ask(page: Page, text: str) -> None:
    await page.fill("#message textarea", text)
    await page.press("#message textarea", "Enter")


def bot_messages(page: Page):
    return page.locator('#chat [data-testid="bot"]')


def titles(page: Page):
    return page.locator("#conversations li .open")


async def show_conversations(page: Page) -> None:
    """On a phone the list starts closed: open it (closing the settings panel first)."""
    settings = page.locator(".sidebar.right")  # on a phone it would cover the list's toggle
    if "open" in (await settings.get_attribute("class") or "") and (
            (page.viewport_size or DESKTOP)["width"] < 768):
        await page.get_by_role("button", name="Show or hide chat settings").click()
        await expect(settings).not_to_have_class(OPEN)
    sidebar = page.locator(".sidebar:not(.right)")
    toggle = page.get_by_role("button", name="Show or hide the conversations")
    await expect(toggle).to_be_visible()  # named once the page has laid itself out
    if "open" not in (await sidebar.get_attribute("class") or ""):
        await toggle.click()
    await expect(sidebar).to_have_class(OPEN)


async def serious_violations(page: Page) -> list[dict]:
    """axe-core's serious and critical findings on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


# -- the composer ------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_one_composer_send_then_stop_then_a_queued_message(
    browser: Browser, app_url: str, ollama_server: FakeOllama, size: dict
):
    page = await open_page(browser, app_url, size)
    send = page.locator("#message .submit-button")
    stop = page.locator("#message .stop-button")
    await expect(send).to_be_visible()
    await expect(stop).to_have_count(0)  # nothing to stop while idle
    await shot(page, "idle")
    assert await serious_violations(page) == []

    ollama_server.token_rate = 6
    ollama_server.enqueue_text("one two three four five six seven eight nine ten")
    await ask(page, "count for me")
    await expect(stop).to_be_visible()
    await expect(send).to_have_count(0)
    await expect(bot_messages(page).last).to_contain_text("one two")
    await ask(page, "and then say hi")  # typed while answering: queued, and said so
    await expect(page.locator("#queued")).to_contain_text(
        "Queued: “and then say hi” will be sent when this answer ends.")
    await shot(page, "answering-queued")
    assert await serious_violations(page) == []

    # the answer ends; the queued message goes out by itself and is answered
    await expect(bot_messages(page).last).to_contain_text("You said: and then say hi",
                                                          timeout=20_000)
    await expect(page.locator("#queued-bar")).to_be_hidden()
    await expect(send).to_be_visible()
    users = page.locator('#chat [data-testid="user"]')
    await expect(users).to_have_text(["count for me", "and then say hi"])

    # Esc stops an answer: what streamed is kept, marked; Send is back
    ollama_server.enqueue_text("alpha beta gamma delta epsilon zeta eta theta iota kappa")
    await ask(page, "greek letters")
    await expect(bot_messages(page).last).to_contain_text("alpha")
    await page.keyboard.press("Escape")
    await expect(bot_messages(page).last).to_contain_text("Stopped.")
    await expect(send).to_be_visible()
    await expect(stop).to_have_count(0)
    await shot(page, "stopped")


async def test_leaving_a_conversation_mid_answer_asks_first(
    browser: Browser, app_url: str, ollama_server: FakeOllama
):
    page = await open_page(browser, app_url, DESKTOP)
    await ask(page, "first conversation")
    await expect(bot_messages(page).last).to_contain_text("You said: first conversation")
    await page.click("#new-chat")
    await expect(page.locator("#message textarea")).to_be_focused()  # ready to type
    await expect(bot_messages(page)).to_have_count(0)

    ollama_server.token_rate = 5
    ollama_server.enqueue_text("a slow answer that takes a while to finish streaming out")
    await ask(page, "second conversation")
    await expect(bot_messages(page).last).to_contain_text("a slow")
    await titles(page).filter(has_text="first conversation").click()
    bar = page.locator("#leave-bar")
    await expect(bar).to_contain_text("still answering")
    await shot(page, "leave-asks")
    await page.click("#stay")  # staying: the answer goes on, nothing else changes
    await expect(bar).to_be_hidden()
    await expect(bot_messages(page).last).to_contain_text("finish streaming out",
                                                          timeout=20_000)

    ollama_server.enqueue_text("another slow answer that we will leave behind us now")
    await ask(page, "more please")
    await expect(bot_messages(page).last).to_contain_text("another")
    await titles(page).filter(has_text="first conversation").click()
    await page.click("#leave")  # stop it and go
    await expect(page.locator('#chat [data-testid="user"]')).to_have_text(
        ["first conversation"])
    await expect(bar).to_be_hidden()
    await titles(page).filter(has_text="second conversation").click()
    await expect(bot_messages(page).last).to_contain_text("Stopped.")  # kept, marked


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_a_failed_turn_is_said_once_in_plain_words_with_retry(
    browser: Browser, app_url: str, ollama_server: FakeOllama, size: dict
):
    page = await open_page(browser, app_url, size)
    ollama_server.stop()
    await ask(page, "are you there?")
    failure = bot_messages(page).filter(has_text="Ollama is not answering")
    await expect(failure).to_have_count(1)
    await expect(failure).to_contain_text("Press Retry to ask again.")
    await expect(page.locator("#status")).to_contain_text("Ollama at")
    await expect(page.locator("#status")).to_contain_text("is not answering")
    body = await page.locator("body").inner_text()
    # the operator's instructions only behind "Details", and said nowhere else
    assert body.count("ollama serve") == 0, body
    assert await page.locator(".toast-body").count() == 0  # no toast
    details = bot_messages(page).filter(has_text="Details")
    await details.get_by_role("button", name="Details").click()
    await expect(details).to_contain_text("ollama serve")
    await shot(page, "failed")
    assert await serious_violations(page) == []

    ollama_server.start()  # back: Retry asks the same question again, once
    await page.click("#retry")
    await expect(bot_messages(page).last).to_contain_text("You said: are you there?")
    await expect(page.locator('#chat [data-testid="user"]')).to_have_text(["are you there?"])


async def test_when_ollama_drops_the_status_line_offers_the_built_in_model(
    browser: Browser, ollama_server: FakeOllama, tmp_path: Path
):
    with serve_app(ollama_server, tmp_path, embedded=True, embedded_max_tokens=16) as url:
        page = await open_page(browser, url, DESKTOP)
        await expect(page.locator("#status")).to_contain_text("llama3.2")
        ollama_server.stop()
        await ask(page, "Are you there?")
        await expect(bot_messages(page).filter(has_text="Ollama is not answering")).to_have_count(1)
        offer = page.locator("#use-embedded")
        await expect(offer).to_contain_text("Use the built-in model")
        await offer.click()
        await expect(page.locator("#status")).to_contain_text("small built-in model")
        await expect(offer).to_be_hidden()
        await shot(page, "built-in-model")
        await ask(page, "Say hi")
        await expect(bot_messages(page).last).to_contain_text("tokens", timeout=60_000)
        await page.click("#open-settings")
        await expect(page.locator("#model input")).to_have_value(re.compile("^embedded/"))


# -- the conversation list -------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_the_list_groups_by_day_and_its_menu_renames_exports_and_deletes_with_undo(
    browser: Browser, app_url: str, ollama_server: FakeOllama, size: dict, tmp_path: Path
):
    page = await open_page(browser, app_url, size)
    long = "Plan a three day walking trip through the hills around Florence in late spring"
    await ask(page, long)
    await expect(bot_messages(page).last).to_contain_text("You said:")
    await show_conversations(page)
    await page.click("#new-chat")
    await expect(bot_messages(page)).to_have_count(0)
    await ask(page, "short one")
    await expect(bot_messages(page).last).to_contain_text("You said: short one")
    await show_conversations(page)
    await expect(page.locator("#conversations .group")).to_have_text(["Today"])
    await expect(titles(page)).to_have_text(["short one", long[:60]])
    title = titles(page).nth(1)
    box = await title.evaluate(
        "e => ({nowrap: getComputedStyle(e).whiteSpace, cut: e.scrollWidth > e.clientWidth,"
        " overflow: getComputedStyle(e).textOverflow, height: e.clientHeight})")
    assert box["nowrap"] == "nowrap" and box["overflow"] == "ellipsis" and box["cut"], box
    await shot(page, "list")

    item = page.locator("#conversations li").nth(1)
    await item.get_by_role("button", name=f"Actions for {long[:60]}").click()
    await expect(item.get_by_role("menuitem")).to_have_text(
        ["Rename", "Export Markdown", "Export JSON", "Delete"])
    await shot(page, "menu")
    async with page.expect_download() as download:
        await item.get_by_role("menuitem", name="Export Markdown").click()
    saved = tmp_path / "export.md"
    await (await download.value).save_as(saved)
    assert (await download.value).suggested_filename.endswith(".md")
    assert saved.read_text().startswith(f"# {long[:60]}\n")

    await item.get_by_role("button", name=f"Actions for {long[:60]}").click()
    await item.get_by_role("menuitem", name="Rename").click()
    await page.fill("#conversations input.rename", "Florence walk")
    await page.press("#conversations input.rename", "Enter")
    await expect(titles(page)).to_have_text(["short one", "Florence walk"])

    await page.locator("#conversations li").nth(1).get_by_role(
        "button", name="Actions for Florence walk").click()
    await page.get_by_role("menuitem", name="Delete").click()
    undo = page.locator("#conversations .undo")
    await expect(undo).to_contain_text("Deleted “Florence walk”.")
    await expect(titles(page)).to_have_text(["short one"])
    await shot(page, "deleted-undo")
    await undo.get_by_role("button", name="Undo").click()
    await expect(titles(page)).to_have_text(["short one", "Florence walk"])
    await page.reload()  # renamed and restored, on the server
    await expect(page.locator("#status")).to_contain_text("Ollama 0.12.6")  # loaded
    await show_conversations(page)
    await expect(titles(page)).to_have_text(["short one", "Florence walk"])


async def test_a_deleted_conversation_is_gone_for_good_once_its_undo_expires(
    browser: Browser, app_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(conversations_module, "UNDO_SECONDS", 0.5)
    page = await open_page(browser, app_url, DESKTOP)
    await ask(page, "delete me")
    await expect(bot_messages(page).last).to_contain_text("You said: delete me")
    await page.get_by_role("button", name="Actions for delete me").click()
    await page.get_by_role("menuitem", name="Delete").click()
    await expect(titles(page)).to_have_count(0)
    await expect(page.locator("#conversations .empty")).to_be_visible()
    await page.wait_for_timeout(2500)  # the purge runs UNDO_SECONDS + 1 s after the delete
    await page.reload()
    await expect(page.locator("#conversations .empty")).to_contain_text("No conversations yet")


# -- per-chat settings -------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_each_chat_keeps_its_settings_across_a_reload(
    browser: Browser, app_url: str, ollama_server: FakeOllama, size: dict
):
    ollama_server.add_model("gemma3", capabilities=("completion",))
    page = await open_page(browser, app_url, size)
    await page.click("#open-settings")
    await expect(page.locator("#model input")).to_be_focused()
    await page.fill("#system-prompt textarea", "You are a pirate.")
    await page.locator("#system-prompt textarea").blur()
    await ask(page, "pirate chat")
    await expect(bot_messages(page).last).to_contain_text("You said: pirate chat")
    assert ollama_server.chat_requests[-1]["messages"][0]["content"] == "You are a pirate."

    await show_conversations(page)
    await page.click("#new-chat")  # a new chat starts from the settings on screen...
    await expect(bot_messages(page)).to_have_count(0)
    await expect(page.locator("#system-prompt textarea")).to_have_value("You are a pirate.")
    await page.click("#open-settings")
    await page.fill("#system-prompt textarea", "You are a poet.")
    await page.locator("#system-prompt textarea").blur()
    await page.click("#model input")
    await page.get_by_role("option").filter(has_text="gemma3").click()
    await ask(page, "poet chat")
    await expect(bot_messages(page).last).to_contain_text("You said: poet chat")
    assert ollama_server.chat_requests[-1]["model"] == "gemma3:latest"
    await shot(page, "settings")

    await page.reload()  # ...and each chat comes back with its own
    await expect(page.locator("#system-prompt textarea")).to_have_value("You are a poet.")
    await expect(page.locator("#model input")).to_have_value(re.compile("^gemma3:latest · "),
                                                             timeout=15_000)
    await show_conversations(page)
    await titles(page).filter(has_text="pirate chat").click()
    await expect(page.locator("#system-prompt textarea")).to_have_value("You are a pirate.")
    await expect(page.locator("#model input")).to_have_value(re.compile("^llama3.2:latest · "))
    await ask(page, "still a pirate?")
    await expect(bot_messages(page).last).to_contain_text("You said: still a pirate?")
    sent = ollama_server.chat_requests[-1]
    assert (sent["model"], sent["messages"][0]["content"]) == ("llama3.2:latest",
                                                               "You are a pirate.")


# -- phone layout ----------------------------------------------------------------------------


async def test_on_a_phone_the_chat_comes_first_and_the_box_is_on_screen(
    browser: Browser, app_url: str
):
    page = await open_page(browser, app_url, PHONE)
    sidebar = page.locator(".sidebar:not(.right)")
    await expect(sidebar).not_to_have_class(OPEN)
    box = await page.locator("#message textarea").bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"], box
    for action in ("#retry", "#undo", "#export-md", "#export-json", "#open-settings"):
        where = await page.locator(action).bounding_box()
        assert where is not None and where["x"] + where["width"] <= PHONE["width"], action
        assert where["y"] + where["height"] <= PHONE["height"], action
        assert where["height"] < 48, (action, where)  # compact, not a full-width row
    await show_conversations(page)
    await expect(page.locator("#new-chat")).to_be_visible()
    await shot(page, "phone-list")


# -- login -----------------------------------------------------------------------------------


async def test_logged_in_the_page_names_the_user_and_logs_out(
    browser: Browser, ollama_server: FakeOllama, tmp_path: Path
):
    with serve_app(ollama_server, tmp_path, auth="ann:secret-one") as url:
        page = await browser.new_page(viewport=DESKTOP)
        await page.goto(url)
        await page.get_by_label("Username").fill("ann")
        await page.get_by_label("Password").fill("secret-one")
        await page.get_by_label("Password").press("Enter")
        await expect(page.locator("#who")).to_contain_text("Signed in as ann")
        await shot(page, "signed-in")
        assert await serious_violations(page) == []
        await page.get_by_role("link", name="Log out").click()
        await expect(page.get_by_label("Username")).to_be_visible()
        cookies = {c["name"] for c in await page.context.cookies()}
        assert not any(name.startswith("access-token") for name in cookies), cookies


def test_the_axe_script_is_the_one_the_lockfile_names() -> None:
    lock = json.loads((AXE.parents[2] / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/axe-core"]["version"]
    assert f"axe v{version}" in AXE.read_text()[:200]


async def test_the_whole_turn_cycle_works_from_the_keyboard(
    browser: Browser, app_url: str, ollama_server: FakeOllama
):
    page = await open_page(browser, app_url, DESKTOP)
    await expect(page.locator("#message textarea")).to_be_focused()  # ready on arrival
    await page.keyboard.type("first question")
    await page.keyboard.press("Enter")
    await expect(bot_messages(page).last).to_contain_text("You said: first question")

    ollama_server.token_rate = 5
    ollama_server.enqueue_text("a long answer that the keyboard will stop before it ends")
    await page.keyboard.type("second question")
    await page.keyboard.press("Enter")
    await expect(bot_messages(page).last).to_contain_text("a long")
    await page.keyboard.press("Escape")
    await expect(bot_messages(page).last).to_contain_text("Stopped.")
    ollama_server.token_rate = None

    # Tab from the box reaches Retry; Enter on it asks the last message again
    await page.locator("#message textarea").focus()
    for _ in range(6):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "retry":
            break
    assert await page.evaluate("document.activeElement.id") == "retry"
    await page.keyboard.press("Enter")
    await expect(bot_messages(page).last).to_contain_text("You said: second question")
    await expect(page.locator('#chat [data-testid="user"]')).to_have_text(
        ["first question", "second question"])


async def test_search_finds_words_in_any_message_and_opens_the_conversation_there(
    browser: Browser, app_url: str, ollama_server: FakeOllama
):
    page = await open_page(browser, app_url, DESKTOP)
    ollama_server.enqueue_text("Take the path past the old olive press to Fiesole.")
    await ask(page, "Plan a walk near Florence")
    await expect(bot_messages(page).last).to_contain_text("olive press")
    for n in range(6):  # a long conversation: the match is far above its end
        await ask(page, f"filler message number {n}")
        await expect(bot_messages(page).last).to_contain_text(f"filler message number {n}")
    await page.click("#new-chat")
    await expect(bot_messages(page)).to_have_count(0)
    await ask(page, "something else entirely")
    await expect(bot_messages(page).last).to_contain_text("You said: something else")

    await page.fill("#search input, #search textarea", "olive")
    await page.press("#search input, #search textarea", "Enter")
    await expect(page.locator("#conversations .group")).to_have_text(["Found for “olive”"])
    result = titles(page)
    await expect(result).to_have_count(1)
    await expect(result.locator(".snippet")).to_contain_text("olive press")
    await shot(page, "search")
    await result.click()
    await expect(page.locator('#chat [data-testid="user"]').first).to_have_text(
        "Plan a walk near Florence")
    matched = bot_messages(page).filter(has_text="olive press")
    await expect(matched).to_be_in_viewport()  # scrolled to the message that matched
    await expect(page.locator("#conversations .group")).to_have_text(["Found for “olive”"])

    search = page.locator("#search input, #search textarea")
    await search.press("Control+a")
    await search.press("Backspace")  # emptied: the list again
    await expect(page.locator("#conversations .group")).to_have_text(["Today"])
    await expect(titles(page)).to_have_count(2)


async def test_with_login_the_list_follows_the_user_to_another_browser(
    browser: Browser, ollama_server: FakeOllama, tmp_path: Path
):
    async def logged_in(url: str, user: str, password: str) -> Page:
        context = await browser.new_context(viewport=DESKTOP)  # its own storage and cookies
        page = await context.new_page()
        await page.goto(url)
        await page.get_by_label("Username").fill(user)
        await page.get_by_label("Password").fill(password)
        await page.get_by_label("Password").press("Enter")
        await expect(page.locator("#who")).to_contain_text(f"Signed in as {user}")
        return page

    with serve_app(ollama_server, tmp_path, auth="ann:secret-one,bob:secret-two") as url:
        first = await logged_in(url, "ann", "secret-one")
        await ask(first, "written on my laptop")
        await expect(bot_messages(first).last).to_contain_text("You said: written on my")
        second = await logged_in(url, "ann", "secret-one")  # another browser, same user
        await expect(titles(second)).to_have_text(["written on my laptop"])
        await titles(second).click()
        await expect(bot_messages(second).last).to_contain_text("You said: written on my")
        other = await logged_in(url, "bob", "secret-two")  # another user sees none of it
        await expect(other.locator("#conversations .empty")).to_contain_text(
            "No conversations yet")
