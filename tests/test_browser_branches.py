"""Edit and branch on the page, in Chromium: a user message edited with the chat's pencil is
answered as a new branch; the versions strip moves between that message's versions, and
the conversation shown (and sent to the model) follows; a reload shows the same."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.support.ollama_server import FakeOllama
from tests.test_browser_page import (
    AXE,
    CHROMIUM,
    DESKTOP,
    SIZES,
    app_url,  # noqa: F401 (a fixture)
    ask,
    bot_messages,
    browser,  # noqa: F401 (a fixture)
    open_page,
    shot,
)

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed"),
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (make test runs npm)"),
]


def user_messages(page):
    return page.locator('#chat [data-testid="user"]')


@pytest.mark.parametrize("size", SIZES)
async def test_edit_a_message_then_move_between_its_versions(
    browser: Browser, app_url: str, ollama_server: FakeOllama, size: dict  # noqa: F811
) -> None:
    page = await open_page(browser, app_url, size)
    for text in ("First.", "Second."):
        await ask(page, text)
        await expect(bot_messages(page).last).to_contain_text(f"You said: {text}")
    await expect(page.locator("#versions .version")).to_have_count(0)

    await user_messages(page).first.hover()
    await page.get_by_role("button", name="Edit").first.click()
    await page.locator("#chat textarea").first.fill("First, edited.")
    await page.get_by_role("button", name="Submit").click()
    await expect(bot_messages(page)).to_have_count(1)
    await expect(bot_messages(page)).to_contain_text("You said: First, edited.")
    versions = page.locator("#versions .version")
    await expect(versions.locator(".said")).to_have_text(["“First, edited.”"])
    await expect(versions.locator(".count")).to_have_text(["2 of 2"])
    sent = ollama_server.chat_requests[-1]["messages"]
    assert [m["content"] for m in sent[1:]] == ["First, edited."]  # the new branch alone
    await shot(page, "branch-edited")

    await page.get_by_role("button", name="Earlier version of “First, edited.”").click()
    await expect(user_messages(page)).to_have_text(["First.", "Second."])
    await expect(versions.locator(".count")).to_have_text(["1 of 2"])
    await page.reload()
    await expect(user_messages(page)).to_have_text(["First.", "Second."])
    await expect(versions.locator(".said")).to_have_text(["“First.”"])
    await expect(versions.locator(".count")).to_have_text(["1 of 2"])
    await ask(page, "Third.")  # the turn continues the branch on screen
    await expect(bot_messages(page).last).to_contain_text("You said: Third.")
    sent = ollama_server.chat_requests[-1]["messages"]
    assert [m["content"] for m in sent[1:] if m["role"] == "user"] == [
        "First.", "Second.", "Third."]
    if size == DESKTOP:
        await shot(page, "branch-switched")
