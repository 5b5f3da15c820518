"""Approving a tool call on the page (issue 21), in Chromium: the turn pauses on a tool of
OLLAMASTACK_CONFIRM_TOOLS, the bar over the box asks, Approve runs it and the answer streams;
after a reload the waiting call is asked about again, and Deny tells the model no."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.support.ollama_server import FakeOllama
from tests.test_browser import CHROMIUM, serve_app
from tests.test_browser_page import DESKTOP, ask, bot_messages, browser, open_page, shot

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed")
__all__ = ["browser"]  # the fixture, shared


async def test_approve_runs_the_tool_and_deny_tells_the_model_no(
    browser: Browser, ollama_server: FakeOllama, tmp_path: Path
):
    with serve_app(ollama_server, tmp_path, confirm_tools="calculator") as url:
        page = await open_page(browser, url, DESKTOP)
        ollama_server.enqueue_tool_call("calculator", {"expression": "6*7"})
        ollama_server.enqueue_text("6 times 7 is 42.")
        await ask(page, "What is 6*7?")
        bar = page.locator("#approval")
        await expect(bar).to_contain_text("The model wants to run calculator with:")
        await expect(bar).to_contain_text('"expression": "6*7"')
        await expect(bot_messages(page).filter(
            has_text="Tool calculator waits for your approval")).to_have_count(1)
        await shot(page, "approval")
        await bar.get_by_role("button", name="Approve").click()
        await expect(bot_messages(page).last).to_contain_text("6 times 7 is 42.")
        await expect(page.locator('#chat [data-testid="bot"]').filter(
            has_text="Used tool calculator")).to_have_count(1)
        await expect(bar.get_by_role("button", name="Approve")).to_have_count(0)
        tool_result = ollama_server.chat_requests[-1]["messages"][-1]
        assert (tool_result["role"], tool_result["content"]) == ("tool", "42")

        # a call left waiting is asked about again after a reload; Deny answers without it
        ollama_server.enqueue_tool_call("calculator", {"expression": "2**10"})
        ollama_server.enqueue_text("I did not calculate it, as you declined.")
        await ask(page, "And 2 to the 10th?")
        await expect(bar).to_contain_text('"expression": "2**10"')
        await page.reload()
        await expect(page.locator("#status")).to_contain_text("Ollama 0.12.6")
        await expect(bar).to_contain_text('"expression": "2**10"')
        await bar.get_by_role("button", name="Deny").click()
        await expect(bot_messages(page).last).to_contain_text("as you declined")
        declined = ollama_server.chat_requests[-1]["messages"][-1]
        assert declined["role"] == "tool" and "rejected" in declined["content"]
        await expect(bar.get_by_role("button", name="Deny")).to_have_count(0)
