"""The readable text of an HTML page, with the standard library's tolerant parser.

What a browser would not show (scripts, styles, the head) is left out; blocks start new lines,
list items and headings keep a Markdown mark, table cells are joined with " | ", and <pre>
keeps its spacing. html.parser copes with broken markup well enough for reading text, and
needs no dependency (lxml, which python-docx brings, would be the choice for speed).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_HIDDEN = frozenset({"head", "script", "style", "noscript", "template", "svg", "math",
                     "iframe", "object"})
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "br", "caption", "dd", "details",
    "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1",
    "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul",
})
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed",
                   "source", "track", "wbr"})
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


def html_text(markup: str) -> str:
    """The text a reader sees, one block per line.

    >>> html_text("<html><head><title>T</title><style>p{}</style></head><body>"
    ...           "<h2>Plan</h2><p>Hello <b>you</b>,<br>dear&amp;friend</p>"
    ...           "<script>alert(1)</script><ul><li>one<li>two</ul>"
    ...           "<table><tr><th>a<th>b<tr><td>1<td>2</table></body></html>")
    '## Plan\\nHello you,\\ndear&friend\\n- one\\n- two\\na | b\\n1 | 2'
    >>> html_text("<head><title>unclosed head<body><pre>x = 1\\n    y  = 2</pre>after")
    'x = 1\\n    y  = 2\\nafter'
    """
    parser = _TextParser()
    parser.feed(markup)
    parser.close()
    return parser.text()


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line: list[str] = []
        self.hidden: list[str] = []  # open hidden elements, innermost last
        self.pre = 0
        self.cells = 0  # cells begun on the current table row

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":  # a browser ends an unclosed head here
            self.hidden.clear()
        if tag in _HIDDEN and tag not in _VOID:
            self.hidden.append(tag)
        if self.hidden:
            return
        if tag in _BLOCKS:
            self.end_line()
        if tag == "pre":
            self.pre += 1
        elif tag == "li":
            self.line.append("- ")
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.line.append("#" * int(tag[1]) + " ")
        elif tag in ("td", "th"):
            self.line.append(" | " if self.cells else "")
            self.cells += 1
        elif tag == "tr":
            self.cells = 0

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self.hidden and tag in _BLOCKS:
            self.end_line()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.hidden:  # closes it and whatever was left open inside
            del self.hidden[len(self.hidden) - 1 - self.hidden[::-1].index(tag):]
            return
        if self.hidden:
            return
        if tag == "pre" and self.pre:
            self.end_line(keep_spaces=True)
            self.pre -= 1
        if tag in _BLOCKS:
            self.end_line()

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            first, *rest = data.split("\n")
            self.line.append(first)
            for line in rest:
                self.end_line(keep_spaces=True)
                self.line.append(line)
        else:
            self.line.append(_SPACES.sub(" ", data))

    def end_line(self, *, keep_spaces: bool = False) -> None:
        line = "".join(self.line)
        line = line.rstrip() if keep_spaces else _SPACES.sub(" ", line).strip()
        if line.strip(" -#|"):
            self.lines.append(line)
        self.line = []

    def text(self) -> str:
        self.end_line()
        return "\n".join(self.lines)
