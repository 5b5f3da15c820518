"""How the page reads a chat message's Markdown: Gradio's steps (dedent, LaTeX), then
CommonMark with GFM tables; `renders_safely` checks that what `safe_markdown` wrote makes only
formatting tags there, and no image or diagram.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator

from markdown_it import MarkdownIt
from markdown_it.token import Token

# Shown as formatting when written bare (`<b>`, `</b>`, `<br/>`): nothing in them can load,
# move or cover anything.
KEPT_TAGS = (
    "b", "strong", "i", "em", "u", "s", "strike", "del", "ins", "mark", "sub", "sup",
    "small", "kbd", "code", "br",
)
# What gr.Chatbot renders as LaTeX (its default); layout.py passes the same to the Chatbot.
LATEX_DELIMITERS: list[dict[str, str | bool]] = [{"left": "$$", "right": "$$", "display": True}]

# How Gradio's chat finds LaTeX, before it parses Markdown: `left([\s\S]+?)right`.
LATEX = re.compile("|".join(
    f"{re.escape(str(d['left']))}[\\s\\S]+?{re.escape(str(d['right']))}"
    for d in LATEX_DELIMITERS
))
_WS = r"[ \t\n]"
KEPT_TAG = re.compile(rf"</?(?:{'|'.join(KEPT_TAGS)}){_WS}*/?>", re.IGNORECASE)
MERMAID = re.compile(r"(?<!`)```mermaid")  # what Gradio renders as a diagram, HTML labels too
# HTML, an image or a diagram needs one of these: text without them is safe as it is.
RISKY = re.compile(r"<[A-Za-z/!?]|!\[|```mermaid")
# Blocks only: inline parsing takes most of the time, and is needed only where `RISKY` is.
PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"]).disable("inline")


def renders_safely(markdown: str) -> bool:
    """Whether the page would make only kept tags of `markdown`'s HTML, and no image.

    >>> renders_safely("**a** <sub>b</sub> `<img src=x>` [link](http://x.test/)")
    True
    >>> [renders_safely(t) for t in ("<b>\\n<i>", "x <span>", "![a](b)", "```mermaid\\nA")]
    [False, False, False, False]
    """
    view = LATEX.sub("%%%LATEX_BLOCK%%%", inspect.cleandoc(markdown))
    lines = view.split("\n")
    env: dict[str, object] = {}  # link reference definitions, for `![text][ref]`
    for token in PARSER.parse(view, env):
        if token.type == "html_block":
            return False
        if token.type == "fence" and token.map and MERMAID.search(lines[token.map[0]]):
            return False
        if token.type == "inline" and RISKY.search(token.content):
            inline: list[Token] = []
            PARSER.inline.parse(token.content, PARSER, env, inline)
            for part in _walk(inline):
                if part.type == "image":
                    return False
                if part.type == "html_inline" and not KEPT_TAG.fullmatch(part.content):
                    return False
    return True


def dedent(text: str) -> str:
    """What Gradio's Chatbot shows of `text` (it applies `inspect.cleandoc`), and shows the
    same again: one cleandoc can leave lines for the next to dedent.

    >>> dedent("  \\n\\n- a\\n   > b"), dedent("   ")
    ('- a\\n> b', '')
    """
    while (shown := inspect.cleandoc(text)) != text:
        text = shown
    return text


def _walk(tokens: list[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        yield from _walk(token.children or [])
