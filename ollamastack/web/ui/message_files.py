"""A message's files as the chat shows them, and the "Sources" its answer drew on.

Pure functions, no I/O (`stored_files` reads the images): an image is shown as an image from
a file Gradio serves (the upload itself while the turn streams, Gradio's cache after a
reload); a document, or an image no longer there, as a line naming it. The Sources message
is collapsible like a tool step: each passage with its file and page, a document read whole
by its name. Every text passes through `safe_markdown`: file names and passages are the
sender's and the documents' words.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradio import ChatMessage

from ollamastack.events import Source
from ollamastack.web.ui.safe_markdown import safe_markdown

SOURCES_TITLE = "Sources"
_MARKDOWN_PUNCTUATION = frozenset("\\`*_{}[]()<>#+-.!|~$&:")


@dataclass(frozen=True)
class ShownFile:
    """A file of a user message: `path` is where Gradio may serve it from ("" when it
    cannot be shown, or is a document)."""

    name: str
    kind: str  # "image" or "document"
    path: str = ""
    mime: str = ""
    pages: int | None = None


def uploaded(paths: Sequence[str]) -> list[ShownFile]:
    """Files in the box, as sent: images by their name's type (the service checks the bytes).

    >>> uploaded(["/tmp/gradio/ab/cat.PNG", "/tmp/gradio/cd/notes.md"])[1]
    ShownFile(name='notes.md', kind='document', path='', mime='', pages=None)
    >>> uploaded(["/tmp/gradio/ab/cat.PNG"])[0].kind
    'image'
    """
    shown = []
    for path in paths:
        mime = mimetypes.guess_type(Path(path).name.lower())[0] or ""
        if mime.startswith("image/"):
            shown.append(ShownFile(Path(path).name, "image", path, mime))
        else:
            shown.append(ShownFile(Path(path).name, "document"))
    return shown


def stored(refs: object, images: Mapping[str, str]) -> list[ShownFile]:
    """A stored message's files (`additional_kwargs["attachments"]`); `images`: file id ->
    where Gradio serves that image now.

    >>> stored([{"id": "f1", "name": "a.png", "kind": "image", "mime": "image/png"},
    ...         {"id": "f2", "name": "b.pdf", "kind": "document", "pages": 3}], {"f1": "/c/a.png"})
    ... # doctest: +NORMALIZE_WHITESPACE
    [ShownFile(name='a.png', kind='image', path='/c/a.png', mime='image/png', pages=None),
     ShownFile(name='b.pdf', kind='document', path='', mime='', pages=3)]
    """
    shown = []
    for ref in refs if isinstance(refs, list) else []:
        if not isinstance(ref, dict):
            continue
        kind = "image" if ref.get("kind") == "image" else "document"
        pages = ref.get("pages") if isinstance(ref.get("pages"), int) else None
        path = images.get(str(ref.get("id"))) if kind == "image" else None
        shown.append(ShownFile(str(ref.get("name") or "file"), kind, path or "",
                               str(ref.get("mime") or "") if path else "", pages))
    return shown


def user_message(text: str, files: Sequence[ShownFile] = ()) -> ChatMessage:
    """The user's message: its files (images shown, the others named), then its text.

    >>> user_message("hi").content
    'hi'
    >>> [part if isinstance(part, str) else part["alt_text"] for part in user_message(
    ...     "Compare", [ShownFile("a.png", "image", "/c/a.png", "image/png"),
    ...                 ShownFile("b_1.md", "document", pages=2)]).content]
    ['a.png', 'Attached `b_1.md` (2 pages)', 'Compare']
    """
    if not files:
        return ChatMessage(role="user", content=safe_markdown(text))
    parts: list[Any] = [
        {"file": {"path": f.path, "mime_type": f.mime, "orig_name": f.name}, "alt_text": f.name}
        for f in files if f.path
    ]
    named = [file_line(f) for f in files if not f.path]
    if named:
        parts.append(safe_markdown("  \n".join(named)))
    if text.strip():
        parts.append(safe_markdown(text))
    return ChatMessage(role="user", content=parts)


def file_line(file: ShownFile) -> str:
    """A file named in a message (a document, or an image that cannot be shown), the way
    an exported conversation names it.

    >>> file_line(ShownFile("report.pdf", "document", pages=1))
    'Attached `report.pdf` (1 page)'
    >>> file_line(ShownFile("cat.png", "image")), file_line(ShownFile("a`b.md", "document"))
    ('Attached image `cat.png`', 'Attached ``a`b.md``')
    """
    what = "image " if file.kind == "image" else ""
    pages = f" ({file.pages} page{'' if file.pages == 1 else 's'})" if file.pages else ""
    return f"Attached {what}{code_span(file.name)}{pages}"


def code_span(text: str) -> str:
    """`text` as inline code, whatever backticks it holds (`safe_markdown` escapes markup).

    >>> print(code_span("a.md"), code_span("`x`"))
    `a.md` `` `x` ``
    """
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plain(text: str) -> str:
    """`text` as Markdown shows it letter for letter (a file name with `_` or `*`).

    >>> plain("my_file [1].md")
    'my\\\\_file \\\\[1\\\\]\\\\.md'
    """
    return "".join(f"\\{c}" if c in _MARKDOWN_PUNCTUATION else c for c in text)


def sources_message(sources: Sequence[Source | Mapping[str, Any]]) -> ChatMessage:
    """What the answer drew on: each passage under its file and page, quoted; a document
    read whole, by its name.

    >>> print(sources_message([Source("notes.md", None, ""),
    ...                        Source("r.pdf", 3, "Sales rose.\\nCosts fell.")]).content)
    **notes\\.md**: read whole
    <BLANKLINE>
    **r\\.pdf**, page 3
    > Sales rose.
    > Costs fell.
    """
    blocks = []
    for source in sources:
        found = source.as_dict() if isinstance(source, Source) else source
        where = f"**{plain(str(found.get('file') or 'document'))}**"
        if isinstance(found.get("page"), int):
            where += f", page {found['page']}"
        passage = str(found.get("text") or "").strip()
        if not passage:
            blocks.append(f"{where}: read whole")
        else:
            blocks.append(where + "\n" + "\n".join(f"> {line}" for line in passage.split("\n")))
    return ChatMessage(role="assistant", content=safe_markdown("\n\n".join(blocks)),
                       metadata={"title": SOURCES_TITLE, "status": "done"})
