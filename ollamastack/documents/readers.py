"""Reading a document's text, page by page: PDF (pypdf), Word (python-docx), HTML and text.

These run in the reading worker (worker.py), where a slow or hostile file costs only that
process; text files, which need no parsing, are also read here in the app. Each refusal is
an `Unreadable` whose reason completes "<name> was not attached: ...".
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from dataclasses import dataclass

from ollamastack.documents.html_text import html_text
from ollamastack.documents.sniff import decode_text, zip_bomb

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT_MIMES = frozenset({"text/plain", "text/markdown", "text/csv"})
_DECLARED_PAGES = re.compile(rb"<(?:\w+:)?Pages>\s*(\d+)\s*<")
_HEADING = re.compile(r"Heading ([1-6])")


@dataclass(frozen=True)
class Page:
    """The text of one page; `number` counts PDF pages from 1, None where there are no pages."""

    number: int | None
    text: str


class Unreadable(Exception):
    """A document was refused while being read; `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def preload() -> None:
    """Import the parsers once, in the worker, so the first document does not pay for it."""
    import docx  # noqa: F401
    import pypdf  # noqa: F401

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files are refused, not logged


def read(mime: str, data: bytes, *, max_pages: int, max_chars: int) -> list[Page]:
    """The pages with text of a document; Unreadable when there are none or a limit is passed.

    >>> read("text/csv", b"a,b\\r\\n1,2\\r\\n", max_pages=1, max_chars=100)
    [Page(number=None, text='a,b\\n1,2')]
    >>> read("text/html", b"<p> </p>", max_pages=1, max_chars=100)
    Traceback (most recent call last):
    ...
    ollamastack.documents.readers.Unreadable: it has no text to read
    """
    if mime == PDF:
        pages = read_pdf(data, max_pages=max_pages, max_chars=max_chars)
    elif mime == DOCX:
        pages = [Page(None, read_docx(data, max_pages=max_pages))]
    elif mime == "text/html":
        pages = [Page(None, html_text(_text_of(data)))]
    elif mime in TEXT_MIMES:
        pages = [Page(None, _text_of(data))]
    else:
        raise Unreadable(f"its type ({mime}) is not a document we read")
    pages = [Page(page.number, page.text.strip()) for page in pages if page.text.strip()]
    if not pages:
        raise Unreadable("it has no text to read")
    if sum(len(page.text) for page in pages) > max_chars:
        raise Unreadable(_too_much(max_chars))
    return pages


def read_pdf(data: bytes, *, max_pages: int, max_chars: int) -> list[Page]:
    """Each page's text, the page count checked before any text is read."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:  # many "protected" PDFs only restrict printing: their user password is empty
                opened = reader.decrypt("")
            except DependencyError:
                raise Unreadable("it is encrypted in a way this installation cannot read (the "
                                 "Python package cryptography is missing)") from None
            if not opened:
                raise Unreadable("it is password-protected; remove the password and attach it "
                                 "again")
        declared = _declared_count(reader)  # cheap: before walking the page tree
        count = declared if declared > max_pages else len(reader.pages)
        if count > max_pages:
            raise Unreadable(f"it has {count:,} pages; the limit is {max_pages:,}")
        pages, chars = [], 0
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text()
            chars += len(text)
            if chars > max_chars:
                raise Unreadable(_too_much(max_chars))
            pages.append(Page(number, text))
    except (Unreadable, MemoryError):
        raise
    except Exception as error:  # pypdf raises many kinds on damaged files
        raise Unreadable(f"it is damaged and could not be read ({_cause(error)})") from None
    if not any(page.text.strip() for page in pages):
        raise Unreadable("it has no text to read (a scan?); attach its pages as images instead")
    return pages


def read_docx(data: bytes, *, max_pages: int) -> str:
    """Paragraphs and tables in document order; the ZIP is checked for a bomb before parsing."""
    import docx
    from docx.table import Table

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            if reason := zip_bomb(package):
                raise Unreadable(reason)
            pages = _declared_pages(package)
        if pages > max_pages:
            raise Unreadable(f"it has {pages:,} pages; the limit is {max_pages:,}")
        blocks = []
        for block in docx.Document(io.BytesIO(data)).iter_inner_content():
            if isinstance(block, Table):
                blocks.append(_table_text(block))
            elif text := block.text.strip():
                level = _HEADING.match(block.style.name if block.style else "")
                blocks.append(f"{'#' * int(level[1])} {text}" if level else text)
    except (Unreadable, MemoryError):
        raise
    except Exception as error:  # python-docx and lxml raise many kinds on damaged files
        raise Unreadable(f"it is damaged and could not be read ({_cause(error)})") from None
    return "\n\n".join(block for block in blocks if block)


def _declared_count(reader) -> int:
    """The page count the PDF's page tree declares (0 when it is missing or not a number)."""
    try:
        return int(reader.root_object["/Pages"]["/Count"])
    except Exception:
        return 0


def _declared_pages(package: zipfile.ZipFile) -> int:
    """The page count Word saved in docProps/app.xml (0 when it did not)."""
    try:
        info = package.getinfo("docProps/app.xml")
    except KeyError:
        return 0
    if info.file_size > 2**20:
        return 0
    found = _DECLARED_PAGES.search(package.read(info))
    return int(found[1]) if found else 0


def _table_text(table) -> str:
    """One line per row, cells joined by " | "; a merged cell is written once."""
    rows = []
    for row in table.rows:
        cells, previous = [], None
        for cell in row.cells:  # a cell merged across columns comes once per column
            if cell._tc is not previous:
                cells.append(" ".join(cell.text.split()))
            previous = cell._tc
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _text_of(data: bytes) -> str:
    text = decode_text(data)
    if text is None:
        raise Unreadable("it is not text we can read (save it as UTF-8)")
    return text


def _too_much(limit: int) -> str:
    return f"its text is longer than {limit:,} characters, the most one document may have"


def _cause(error: Exception) -> str:
    detail = " ".join(str(error).split())[:120]
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
