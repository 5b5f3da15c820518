"""The login page tells why a login is refused: Gradio's own page shows nothing for a 429.

`with_notice_sender` adds `NOTICE_SCRIPT` to Gradio's HTML page as it is sent: a wrapper of the
page's `fetch` that shows the reason of a 429 from `POST /login` above the form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

PAGE_BYTES = 4 * 1024 * 1024  # a page larger than this goes out without the notice script


# Gradio's login page shows a message for 400 only; this shows the reason of a 429 above it.
NOTICE_SCRIPT = b"""<script>(() => {
  const gradioFetch = window.fetch;
  const show = (text) => {
    let box = document.getElementById("login-notice");
    if (!box && text) {
      box = Object.assign(document.createElement("div"), {id: "login-notice"});
      box.setAttribute("role", "alert");
      box.style.cssText = "position:fixed;top:1rem;left:50%;transform:translateX(-50%);" +
        "z-index:1000;padding:.75rem 1rem;border-radius:.5rem;background:#fef2f2;" +
        "color:#991b1b;border:1px solid #fca5a5;font:15px sans-serif";
      document.body.appendChild(box);
    }
    if (box) text ? box.textContent = text : box.remove();
  };
  window.fetch = async function (input, init) {
    const response = await gradioFetch.apply(this, arguments);
    const request = new Request(input, init);
    if (request.method === "POST" && /\\/login\\/?$/.test(new URL(request.url).pathname)) {
      const reply = response.status === 429 ? await response.clone().json().catch(() => ({})) : {};
      show(response.status === 429 ? reply.detail || "Too many failed logins." : "");
    }
    return response;
  };
})();</script>"""


def with_notice(page: bytes) -> bytes:
    """A Gradio page with `NOTICE_SCRIPT` at the start of its head; anything else as it is.

    >>> with_notice(b"<html><head><script>window.gradio_config = {};</script></head>")[:26]
    b'<html><head><script>(() =>'
    >>> with_notice(b"<html><head></head>")  # not Gradio's page
    b'<html><head></head>'
    """
    head = page.find(b"<head>")
    if head < 0 or b"window.gradio_config" not in page:
        return page
    return page[: head + 6] + NOTICE_SCRIPT + page[head + 6:]


def with_notice_sender(send: Send) -> Send:
    """`send` for a GET: an HTML page gets `NOTICE_SCRIPT` (and its new length)."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def sender(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            headers = {k.lower(): v for k, v in message.get("headers", [])}
            if message["status"] == 200 and headers.get(b"content-type", b"").startswith(
                b"text/html"
            ):
                start = message  # held until the whole page is here
                return
        elif message["type"] == "http.response.body" and start is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body", False) and sum(map(len, chunks)) <= PAGE_BYTES:
                return
            page = b"".join(chunks)
            if not message.get("more_body", False):
                page = with_notice(page)
                start["headers"] = [(k, v) for k, v in start["headers"]
                                    if k.lower() != b"content-length"]
                start["headers"].append((b"content-length", str(len(page)).encode()))
            await send(start)
            message = {**message, "body": page}
            start = None
        await send(message)

    return sender
