"""Usage records in the database: written from the bus as turns end, still there after a
restart (SQLite and PostgreSQL), summed up by day, model, tool and user; `/usage` for
administrators only."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from ollamastack.agent.service_handle import open_chat_service
from ollamastack.bus import EventBus
from ollamastack.errors import InvalidInput
from ollamastack.lifecycle import ToolCalled, TurnCompleted, TurnFailed
from ollamastack.settings import Settings
from ollamastack.storage.usage import UsageLog
from tests.support.api_helpers import run, serve
from tests.support.chat_helpers import make_settings
from tests.support.ollama_server import FakeOllama
from tests.test_browser import free_port

DAY = 86_400.0
NOW = datetime(2025, 3, 10, 12, tzinfo=UTC).timestamp()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'usage.sqlite'}"
    return request.getfixturevalue("postgres").new_database()


async def test_turns_are_recorded_and_survive_a_restart(
    ollama_server: FakeOllama, database_url: str
) -> None:
    settings = make_settings(ollama_server, database_url=database_url)
    bus = EventBus()
    usage = UsageLog(settings)
    bus.subscribe(usage.record)
    async with open_chat_service(settings) as service:
        service.bus = bus
        ollama_server.enqueue_tool_call("calculator", {"expression": "6 * 7"})
        ollama_server.enqueue_text("It is 42.")
        done = [e async for e in service.stream_turn("a secret text", user="ann")][-1]
        ollama_server.enqueue_error(500, "model runner crashed")
        [e async for e in service.stream_turn("again", user="bob")]
        await bus.aclose()
    await usage.aclose()

    again = UsageLog(settings)  # a new process, the same database
    try:
        summary = await again.summary(1)
    finally:
        await again.aclose()
    today = datetime.now(UTC).date().isoformat()
    assert summary["per_day"] == [{
        "day": today, "model": "llama3.2", "turns": 2,
        "prompt_tokens": done.stats.prompt_tokens, "completion_tokens": 3 + 1, "errors": 1,
        "cached": 0,
    }]
    assert summary["tools"] == [{"tool": "calculator", "calls": 1, "errors": 0}]
    assert summary["error_rate"] == [{"day": today, "rate": 0.5}]
    assert [(u["user"], u["turns"], u["errors"]) for u in summary["users"]] == [
        ("ann", 1, 0), ("bob", 1, 1)]
    [first] = summary["first_token"]
    assert first["turns"] == 1 and 0 < first["p50"] == first["p95"] < 30


async def test_the_summary_groups_by_day_and_keeps_to_the_range(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    usage = UsageLog(settings, clock=lambda: NOW)
    records = [  # (days ago, model, user, first token)
        (0, "llama3.2", "ann", 0.1), (0, "llama3.2", "ann", 0.2), (0, "qwen3", "bob", 0.9),
        (1, "llama3.2", "bob", 0.4), (7, "llama3.2", "ann", 5.0),  # 7 days ago: out of range
    ]
    for ago, model, user, first in records:
        await usage.record(TurnCompleted("s", user, model, 10, 20, first, 1.0,
                                         ("calculator",), time=NOW - ago * DAY))
        await usage.record(ToolCalled("s", user, model, "calculator", 0.01,
                                      time=NOW - ago * DAY))
    await usage.record(TurnFailed("s", "bob", "qwen3", "OllamaUnavailable", time=NOW))
    await usage.record(TurnFailed("s", "bob", "qwen3", "stopped", time=NOW))
    await usage.record(TurnCompleted("s", "ann", "llama3.2", cached=True, time=NOW))
    summary = await usage.summary(7)
    await usage.aclose()

    assert (summary["days"], summary["from"], summary["to"]) == (7, "2025-03-04", "2025-03-10")
    row = {"prompt_tokens": 0, "completion_tokens": 0, "errors": 0, "cached": 0}
    assert summary["per_day"] == [
        row | {"day": "2025-03-09", "model": "llama3.2", "turns": 1, "prompt_tokens": 10,
               "completion_tokens": 20},
        row | {"day": "2025-03-10", "model": "llama3.2", "turns": 3, "prompt_tokens": 20,
               "completion_tokens": 40, "cached": 1},
        row | {"day": "2025-03-10", "model": "qwen3", "turns": 3, "prompt_tokens": 10,
               "completion_tokens": 20, "errors": 1},  # a stopped turn is not an error
    ]
    assert summary["first_token"] == [  # the cached answer's time is not Ollama's
        {"day": "2025-03-09", "p50": 0.4, "p95": 0.4, "turns": 1},
        {"day": "2025-03-10", "p50": 0.2, "p95": 0.9, "turns": 3},
    ]
    assert summary["error_rate"] == [{"day": "2025-03-09", "rate": 0.0},
                                     {"day": "2025-03-10", "rate": round(1 / 6, 4)}]
    assert summary["tools"] == [{"tool": "calculator", "calls": 4, "errors": 0}]
    assert [(u["user"], u["turns"], u["errors"], u["last_turn"]) for u in summary["users"]] \
        == [("bob", 4, 1, "2025-03-10T12:00:00Z"), ("ann", 3, 0, "2025-03-10T12:00:00Z")]


@pytest.mark.parametrize("days", [0, -1, 367, 1.5, "7", True, None])
async def test_a_range_that_is_not_a_number_of_days_is_refused(tmp_path: Path, days: Any
                                                                ) -> None:
    usage = UsageLog(Settings(_env_file=None, data_dir=tmp_path))
    with pytest.raises(InvalidInput, match="days must be a whole number from 1 to 366"):
        await usage.summary(days)
    await usage.aclose()


def wait_for_turns(client: Client, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        summary = client.predict(7, api_name="/usage")
        if sum(row["turns"] for row in summary["per_day"]) >= count:
            return summary
        assert time.monotonic() < deadline, summary
        time.sleep(0.05)


def test_usage_endpoint_for_admins_after_a_restart_of_the_app(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    logins = {"auth": "ann:pw-a,bob:pw-b", "admin_users": "ann"}
    with serve(ollama_server, tmp_path, **logins) as app:
        bob = Client(app.url, auth=("bob", "pw-b"), verbose=False)
        ollama_server.enqueue_text("Hello there!")
        assert run(bob, "hi", api_name="/chat")[1] is None
        _, refused = run(bob, 7, api_name="/usage")
        ann = Client(app.url, auth=("ann", "pw-a"), verbose=False)
        wait_for_turns(ann, 1)
    assert refused is not None and refused.startswith("Only administrators may see the usage")

    with serve(ollama_server, tmp_path, **logins) as app:  # the same data directory
        ann = Client(app.url, auth=("ann", "pw-a"), verbose=False)
        summary = wait_for_turns(ann, 1)
        _, bad = run(ann, 0, api_name="/usage")
    assert [(u["user"], u["turns"]) for u in summary["users"]] == [("bob", 1)]
    assert summary["per_day"][0]["completion_tokens"] == 2
    assert bad == "days must be a whole number from 1 to 366"


# -- the Usage tab --------------------------------------------------------------------------


async def test_the_tab_shows_only_why_not_to_anyone_but_an_administrator(tmp_path: Path) -> None:
    import gradio as gr

    from ollamastack.web.edge import Edge
    from ollamastack.web.ui.usage import UsageHandlers

    settings = Settings(_env_file=None, data_dir=tmp_path, auth="ann:pw-a,bob:pw-b",
                        admin_users="ann")
    usage = UsageLog(settings, clock=lambda: NOW)
    await usage.record(TurnCompleted("s", "bob", "llama3.2", 10, 20, 0.5, 1.0, time=NOW))
    handlers = UsageHandlers(settings, usage, Edge(settings))
    refused = await handlers.show(7, gr.Request(username="bob"))
    shown = await handlers.show(7, gr.Request(username="ann"))
    await usage.aclose()
    assert refused[0].startswith("Only administrators may see the usage")
    assert all(isinstance(update, dict) and update.get("__type__") == "update"
               for update in refused[1:])  # gr.skip(): the charts stay empty
    assert shown[0] == "**1** turns from 2025-03-04 to 2025-03-10 (UTC), **0** failed."
    assert shown[-1].values.tolist() == [["bob", 1, 10, 20, 0, "2025-03-10T12:00:00Z"]]


CHROMIUM = Path("/usr/bin/chromium")


CHARTS = ("turns", "tokens", "first-token", "errors", "tools")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed")
def test_the_tab_draws_its_charts_and_table_in_a_browser(tmp_path: Path) -> None:
    import asyncio

    import gradio as gr
    from playwright.sync_api import sync_playwright

    from ollamastack.web.edge import Edge
    from ollamastack.web.ui.usage import build_usage_tab

    settings = Settings(_env_file=None, data_dir=tmp_path)
    now = time.time()

    async def fill() -> None:
        usage = UsageLog(settings)
        for ago, user, model in ((0, "ann", "llama3.2"), (0, "bob", "qwen3"),
                                 (1, "ann", "qwen3")):
            when = now - ago * DAY
            await usage.record(TurnCompleted("s", user, model, 10, 20, 0.5, 1.0, time=when))
            await usage.record(ToolCalled("s", user, model, "calculator", 0.1, time=when))
        await usage.aclose()

    asyncio.run(fill())
    usage = UsageLog(settings)
    with gr.Blocks() as blocks, gr.Tab("Usage"):
        build_usage_tab(blocks, settings, usage, Edge(settings))
    _, url, _ = blocks.launch(prevent_thread_lock=True, quiet=True, server_port=free_port())
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox",
                                                     "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url)
            page.wait_for_selector("#usage-users >> text=bob", timeout=20_000)
            notice = page.inner_text("#usage-notice")
            for name in CHARTS:  # each plot draws itself a moment after its data arrives
                page.wait_for_selector(f"#usage-{name} canvas, #usage-{name} svg",
                                       timeout=20_000)
            charts = {name: page.locator(f"#usage-{name} canvas, #usage-{name} svg").count()
                      for name in CHARTS}
            table = page.inner_text("#usage-users")
            page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)
            browser.close()
    finally:
        blocks.close()
    assert notice.startswith("3 turns from")
    assert all(count > 0 for count in charts.values()), charts
    cells = table.split()
    assert cells[cells.index("ann"):][:5] == ["ann", "2", "20", "40", "0"], table
    assert cells[cells.index("bob"):][:5] == ["bob", "1", "10", "20", "0"], table
    assert cells.index("ann") < cells.index("bob")  # most turns first
