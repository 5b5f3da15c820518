"""CORS of the REST and OpenAI routes: `OLLAMASTACK_CORS_ORIGINS` and nothing else decides,
for preflights as for the requests after them; Gradio's own routes keep Gradio's rule.
Raw httpx requests, then what Chromium does with a page of another origin."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright

from ollamastack.web.rest.door import body_limit
from tests.support.api_helpers import OllamaView, Served, serve
from tests.support.ollama_server import FakeOllama
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

TOOL = "https://tool.example"


def preflight(http: httpx.Client, path: str, origin: str, headers: str = "content-type",
              **extra: str) -> httpx.Response:
    """What a browser asks before a `fetch` POST with a JSON body (and `headers`)."""
    return http.options(path, headers={
        "origin": origin, "access-control-request-method": "POST",
        "access-control-request-headers": headers, **extra})


def granted(response: httpx.Response) -> dict[str, str]:
    """The response's CORS headers."""
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.fixture(scope="module")
def listed(shared_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    with serve(shared_server, tmp_path_factory.mktemp("data"), cors_origins=TOOL) as served:
        yield served


@pytest.fixture
def http(listed: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=listed.url, timeout=30) as client:
        yield client


def test_a_listed_origin_passes_the_preflight_of_a_json_post_with_a_token(
    http: httpx.Client,
) -> None:
    for path in ("/api/v1/chat", "/v1/chat/completions"):
        answer = preflight(http, path, TOOL, "authorization,content-type")
        assert answer.status_code == 200, answer.text
        assert granted(answer) == {
            "access-control-allow-origin": TOOL,
            "access-control-allow-methods": "GET, POST, DELETE",
            "access-control-allow-headers": "authorization,content-type",
            "access-control-max-age": "600",
        }
    # what OpenAI's JavaScript client adds to every request
    openai = preflight(http, "/v1/chat/completions", TOOL,
                       "authorization,content-type,x-stainless-os,x-stainless-lang")
    assert openai.headers["access-control-allow-origin"] == TOOL


def test_a_listed_origin_reads_the_answer_and_its_headers(
    http: httpx.Client, ollama: OllamaView, listed: Served
) -> None:
    ollama.enqueue_text("Hello from afar.")
    answer = http.post("/api/v1/chat", json={"message": "Hi"}, headers={"origin": TOOL})
    assert answer.status_code == 200 and answer.json()["content"] == "Hello from afar."
    assert granted(answer) == {
        "access-control-allow-origin": TOOL,
        "access-control-expose-headers": "X-Conversation-Id, Retry-After",
    }  # no Allow-Credentials: a token goes in a header, never in a cookie
    too_large = http.post("/api/v1/chat", content=b"x" * (body_limit(listed.settings) + 1),
                          headers={"origin": TOOL, "content-type": "application/json"})
    assert too_large.status_code == 413
    assert too_large.headers["access-control-allow-origin"] == TOOL  # readable by the page


def test_an_unlisted_origin_gets_no_grant_even_where_gradio_would_give_one(
    http: httpx.Client,
) -> None:
    # Gradio's rule grants any origin on localhost to a server on localhost, and any origin
    # at all to a server reached by another name (a LAN address, a proxy's host name).
    for origin, host in (("http://localhost:3000", None), ("https://evil.example",
                                                          "192.0.2.10:7860")):
        extra = {"host": host} if host else {}
        for path in ("/api/v1/chat", "/v1/chat/completions"):
            answer = preflight(http, path, origin, **extra)
            assert answer.status_code == 400, answer.text  # "Disallowed CORS origin"
            assert "access-control-allow-origin" not in answer.headers
            assert "access-control-allow-credentials" not in answer.headers
        simple = http.get("/api/v1/health", headers={"origin": origin, **extra})
        assert simple.status_code == 200
        assert "access-control-allow-origin" not in simple.headers
        assert "access-control-allow-credentials" not in simple.headers


def test_without_origins_no_route_of_the_api_grants_any_and_gradio_keeps_its_rule(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    local = "http://localhost:3000"
    with serve(ollama_server, tmp_path) as app, httpx.Client(base_url=app.url) as http:
        for path in ("/api/v1/chat", "/v1/chat/completions", "/api/v1/models"):
            answer = preflight(http, path, local)
            assert answer.status_code == 405, answer.text  # no CORS: no OPTIONS route
            assert granted(answer) == {}
        assert granted(http.get("/v1/models", headers={"origin": local})) == {}
        # Gradio's own routes: Gradio's answer, as without this app's patch
        gradio = preflight(http, "/gradio_api/info", local)
        assert gradio.status_code == 200
        assert gradio.headers["access-control-allow-origin"] == local
        assert gradio.headers["access-control-allow-credentials"] == "true"
        assert "access-control-allow-origin" not in preflight(
            http, "/gradio_api/info", "https://evil.example").headers


# -- in a browser ----------------------------------------------------------------------------


class PageHost:
    """A page of another origin on loopback: `http://<name>:<port>/`, an empty document."""

    def __init__(self, address: str, name: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = b"<!doctype html><title>A tool</title><p>A tool</p>"
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.origin = f"http://{name}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PageHost:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


# A page's script: POST a message as JSON, with a token, as a tool's page would.
FETCH_CHAT = """async ([url, message]) => {
    try {
        const answer = await fetch(url, {method: 'POST', body: JSON.stringify({message}),
            headers: {'Content-Type': 'application/json', 'Authorization': 'Bearer none'}});
        return {status: answer.status, content: (await answer.json()).content};
    } catch (error) {
        return {error: String(error)};
    }
}"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed")
async def test_a_page_of_a_listed_origin_chats_and_one_of_another_is_blocked(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    with PageHost("127.0.0.2", "127.0.0.2") as tool, PageHost("127.0.0.1", "localhost") as other:
        with serve(ollama_server, tmp_path, cors_origins=tool.origin) as app:
            ollama_server.enqueue_text("Hello, tool.")
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = await browser.new_page()
                    await page.goto(f"{tool.origin}/")
                    allowed = await page.evaluate(FETCH_CHAT, [f"{app.url}/api/v1/chat", "Hi"])
                    await page.goto(f"{other.origin}/")
                    blocked = await page.evaluate(
                        FETCH_CHAT, [f"{app.url}/api/v1/chat", "Sneaky"])
                finally:
                    await browser.close()
    assert allowed == {"status": 200, "content": "Hello, tool."}
    assert blocked == {"error": "TypeError: Failed to fetch"}
    sent = [r.body["messages"][-1]["content"] for r in ollama_server.requests
            if r.path == "/api/chat"]
    assert sent == ["Hi"]  # the preflight failed: the browser never sent the POST
