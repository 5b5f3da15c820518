"""The login page: ours in place of Gradio's bare box, while Gradio still checks every login.

Gradio answers `GET /` for a visitor without a login with its page whose config says
`"auth_required": true` (its script then draws a login box). `with_login_page_sender` swaps
that one page, as it is sent, for `login_page`: the app's name and what it is, labelled fields,
focus in Username, the username kept after a refusal and the reason said in words
(`role="alert"`), colours meeting WCAG AA. Its form posts to Gradio's own `POST /login`
(behind `LoginGuard`), then reloads: Gradio then sends the app. Logging out is Gradio's
`GET /logout`, which forgets the login and redirects to `/`, so this page again.
Every other page (the app itself, a page this module cannot read) goes out as it came.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

PAGE_BYTES = 4 * 1024 * 1024  # a larger page goes out as it is: it is not Gradio's login page
APP_NAME = "OllamaStack"
TAGLINE = "A private assistant on your own Ollama models."
CONFIG = b"window.gradio_config = "

# Contrast on white: text #1f2937 14.7:1, hints #4b5563 7.6:1, field borders #6b7280 4.8:1,
# the button's white on #1d4ed8 6.7:1 (the app theme's blue), the error #991b1b on #fef2f2
# 8.3:1; dark alike.
STYLE = """
:root { color-scheme: light dark; --bg: #ffffff; --panel: #ffffff; --text: #1f2937;
  --hint: #4b5563; --line: #6b7280; --accent: #1d4ed8; --on-accent: #ffffff;
  --focus: #1d4ed8; --error-bg: #fef2f2; --error: #991b1b; }
@media (prefers-color-scheme: dark) { :root { --bg: #0b0f19; --panel: #111827;
  --text: #f3f4f6; --hint: #d1d5db; --line: #9ca3af; --accent: #1d4ed8;
  --focus: #93c5fd; --error-bg: #450a0a; --error: #fecaca; } }
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: var(--bg);
  color: var(--text); font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { width: min(400px, 100% - 32px); padding: 32px 0; }
h1 { margin: 0; font-size: 1.75rem; }
.tagline { margin: 4px 0 24px; color: var(--hint); }
form { display: grid; gap: 6px; padding: 24px; border: 1px solid var(--line);
  border-radius: 12px; background: var(--panel); }
h2 { margin: 0 0 8px; font-size: 1.25rem; }
label { font-weight: 600; }
input { font: inherit; color: var(--text); background: var(--bg); padding: 10px 12px;
  border: 1px solid var(--line); border-radius: 8px; margin-bottom: 10px; }
input[aria-invalid="true"] { border-color: var(--error); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
button { font: inherit; font-weight: 600; padding: 10px; border: 0; border-radius: 8px;
  color: var(--on-accent); background: var(--accent); cursor: pointer; }
button:disabled { cursor: progress; }
#login-error { margin: 0; }
#login-error:not(:empty) { margin: 0 0 10px; padding: 10px 12px; border-radius: 8px;
  color: var(--error); background: var(--error-bg); }
"""

SCRIPT = """(() => {
  const form = document.getElementById('login');
  const user = form.elements.username, password = form.elements.password;
  const error = document.getElementById('login-error');
  const button = form.querySelector('button');
  const say = (text, field) => {
    error.textContent = text;
    for (const f of [user, password]) {
      if (f === field) f.setAttribute('aria-invalid', 'true');
      else f.removeAttribute('aria-invalid');
    }
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!user.value.trim()) { say('Enter your username.', user); user.focus(); return; }
    if (!password.value) { say('Enter your password.', password); password.focus(); return; }
    button.disabled = true;
    try {
      const reply = await fetch(form.action, {method: 'POST', body: new FormData(form)});
      if (reply.ok) { location.reload(); return; }
      const body = await reply.json().catch(() => ({}));
      if (reply.status === 400) {
        say('Wrong username or password. Check both and try again.', password);
      } else if (reply.status === 429) {
        say(body.detail || 'Too many failed logins. Wait a moment, then try again.', password);
      } else {
        say(`The server could not check the login (HTTP ${reply.status}). Try again.`);
      }
      password.value = '';
      password.focus();
    } catch (e) {
      say('The server did not answer. Check the connection, then try again.');
    } finally {
      button.disabled = false;
    }
  });
})();"""


def login_page(action: str) -> bytes:
    """Our login page, its form posting to `action` (Gradio's `/login`)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · {APP_NAME}</title><style>{STYLE}</style></head>
<body><main>
<h1>{APP_NAME}</h1>
<p class="tagline">{TAGLINE}</p>
<form id="login" method="post" action="{html.escape(action)}" novalidate aria-labelledby="title">
<h2 id="title">Log in</h2>
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none"
  spellcheck="false" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<p id="login-error" role="alert"></p>
<button type="submit">Log in</button>
</form>
</main><script>{SCRIPT}</script></body></html>""".encode()


def gradio_config(page: bytes) -> dict[str, Any] | None:
    """The config Gradio's HTML page carries, or None if it has none that can be read.

    >>> gradio_config(b'<script>window.gradio_config = {"auth_required":true};</script>')
    {'auth_required': True}
    >>> gradio_config(b"<html></html>"), gradio_config(b"window.gradio_config = {oops")
    (None, None)
    """
    start = page.find(CONFIG)
    if start < 0:
        return None
    try:
        text = page[start + len(CONFIG):].decode("utf-8", errors="replace")
        config, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return config if isinstance(config, dict) else None


def with_login_page(page: bytes) -> bytes:
    """Gradio's page asking for a login becomes ours; any other page is left as it is.

    >>> asking = b'<script>window.gradio_config = {"auth_required":true,"root":"http://h/a"};'
    >>> b'action="http://h/a/login"' in with_login_page(asking)
    True
    >>> app = b'<script>window.gradio_config = {"components":[],"root":"http://h"};</script>'
    >>> with_login_page(app) == app
    True
    """
    config = gradio_config(page)
    if not config or config.get("auth_required") is not True:
        return page
    root = str(config.get("root") or "")
    return login_page(f"{root.rstrip('/')}/login" if root else "login")


def with_login_page_sender(send: Send) -> Send:
    """`send` for a GET: an HTML page goes through `with_login_page` (with its new length)."""
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
                page = with_login_page(page)
                start["headers"] = [(k, v) for k, v in start["headers"]
                                    if k.lower() != b"content-length"]
                start["headers"].append((b"content-length", str(len(page)).encode()))
            await send(start)
            message = {**message, "body": page}
            start = None
        await send(message)

    return sender
