"""Accepting an attached file: its name, its size, and what its bytes really are.

The type comes from the bytes (sniff.py); the name's extension must agree with it. Where the
name says one picture format and the bytes are another (a PNG named .jpg, common after a
rename), the picture is accepted as what its bytes are: both are pictures and the bytes are
what a model receives. A name without an extension, or with one we have no rule for (.py,
.json, .log), is typed by its bytes alone: text is read as text, anything else is refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

from ollamastack.documents.sniff import DESCRIPTIONS, size_text, sniff, word_package_problem
from ollamastack.errors import AttachmentRefused

MAX_NAME_BYTES = 255  # what file systems hold
# Each accepted content kind: (attachment kind, MIME type).
KINDS: dict[str, tuple[Literal["image", "document"], str]] = {
    "png": ("image", "image/png"), "jpeg": ("image", "image/jpeg"),
    "gif": ("image", "image/gif"), "webp": ("image", "image/webp"),
    "pdf": ("document", "application/pdf"),
    "docx": ("document",
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "text": ("document", "text/plain"),
}
# Extensions we have a rule for: the content kind each promises, and a text's MIME type.
EXTENSIONS = {
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif", ".webp": "webp",
    ".pdf": "pdf", ".docx": "docx",
    ".txt": "text", ".md": "text", ".markdown": "text", ".csv": "text", ".html": "text",
    ".htm": "text",
}
TEXT_MIMES = {".md": "text/markdown", ".markdown": "text/markdown", ".csv": "text/csv",
              ".html": "text/html", ".htm": "text/html"}
IMAGES = frozenset({"png", "jpeg", "gif", "webp"})
ACCEPTED = ("accepted are images (PNG, JPEG, WebP, GIF) and documents "
            "(.txt, .md, .csv, .pdf, .docx, .html)")
# What a name promising a kind is not, when the bytes disagree.
_NOT_A = {"pdf": "a PDF", "docx": "a Word document", "text": "a text file"}
_DRIVE = re.compile(r"^[A-Za-z]:")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # "txt.exe" tricks


@dataclass(frozen=True)
class Attachment:
    """A file accepted for a conversation: its bytes as sent, and what they are."""

    name: str
    kind: Literal["image", "document"]
    mime: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:  # the bytes would fill a log
        return f"Attachment({self.name!r}, {self.kind!r}, {self.mime!r}, {self.size:,} bytes)"


class TooManyFiles(AttachmentRefused):
    """A message carried more files than one message may."""

    def __init__(self, count: int, limit: int) -> None:
        self.name, self.reason = "", f"at most {limit} files per message"
        Exception.__init__(  # AttachmentRefused's message names one file
            self, f"{count} files were attached; at most {limit} files per message are allowed.",
        )


def accept(name: str, data: bytes, *, max_bytes: int) -> Attachment:
    """The attachment, or AttachmentRefused saying why not.

    >>> accept("notes.md", b"# Title", max_bytes=100)
    Attachment('notes.md', 'document', 'text/markdown', 7 bytes)
    >>> accept("../../etc/passwd", b"x", max_bytes=100)
    Traceback (most recent call last):
    ...
    ollamastack.errors.AttachmentRefused: ../../etc/passwd was not attached: its name has \
folder parts ('/', '\\', '..' or a drive); attach the file under its own name
    >>> accept("report.pdf", b"Just some words", max_bytes=100)
    Traceback (most recent call last):
    ...
    ollamastack.errors.AttachmentRefused: report.pdf was not attached: it is not a PDF \
(its content is plain text)
    """
    if problem := name_problem(name):
        raise AttachmentRefused(shown(name) if name.strip() else "", problem)
    if not data:
        raise AttachmentRefused(name, "it is empty")
    if len(data) > max_bytes:
        size, limit = size_text(len(data)), size_text(max_bytes)
        if size == limit:
            size, limit = f"{len(data):,} bytes", f"{max_bytes:,} bytes"
        raise AttachmentRefused(name, f"it is {size}; the limit is {limit}")
    actual = sniff(data)
    extension = PurePath(name).suffix.lower()
    promised = EXTENSIONS.get(extension)
    if actual == "encoding":
        raise AttachmentRefused(name, "it is text in an encoding we do not read; save it as "
                                      "UTF-8 and attach it again")
    if promised and promised != actual and not (promised in IMAGES and actual in IMAGES):
        what = "an image" if promised in IMAGES else _NOT_A[promised]
        raise AttachmentRefused(name, f"it is not {what} (its content is {DESCRIPTIONS[actual]})")
    if actual not in KINDS:
        raise AttachmentRefused(name, f"its content is {DESCRIPTIONS[actual]}; {ACCEPTED}")
    if actual == "docx" and (problem := word_package_problem(data)):
        raise AttachmentRefused(name, problem)  # read again before parsing, in the worker
    kind, mime = KINDS[actual]
    if actual == "text":
        mime = TEXT_MIMES.get(extension, mime)
    return Attachment(name=name, kind=kind, mime=mime, data=data)


def accept_all(
    files: list[tuple[str, bytes]], *, max_bytes: int, max_files: int
) -> list[Attachment]:
    """Every file of one message accepted, or the first refusal (the count is checked first)."""
    if len(files) > max_files:
        raise TooManyFiles(len(files), max_files)
    return [accept(name, data, max_bytes=max_bytes) for name, data in files]


def name_problem(name: str) -> str | None:
    """Why a file name is refused, or None. Names are refused, never quietly renamed: the
    sender sees the name we keep.

    >>> [name_problem(n) for n in ("a.txt", "année 2024.csv", ".env")]
    [None, None, None]
    >>> name_problem("C:\\\\x"), name_problem("a\\x00.txt"), name_problem("x" * 256)
    ("its name has folder parts ('/', '\\\\', '..' or a drive); attach the file under its own \
name", 'its name has control characters', 'its name is 256 bytes long; the limit is 255')
    """
    if not name or not name.strip():
        return "it has no name"
    if "/" in name or "\\" in name or name in (".", "..") or _DRIVE.match(name):
        return ("its name has folder parts ('/', '\\', '..' or a drive); attach the file under "
                "its own name")
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI for c in name):
        return "its name has control characters"
    if (length := len(name.encode("utf-8", "surrogatepass"))) > MAX_NAME_BYTES:
        return f"its name is {length:,} bytes long; the limit is {MAX_NAME_BYTES}"
    return None


def shown(name: str, limit: int = 80) -> str:
    """A refused name as it may appear in a message: control characters escaped, cut short.

    >>> shown("a\\x00b\\u202e.txt"), shown("x" * 100, limit=5)
    ('a\\\\x00b\\\\u202e.txt', 'xxxxx…')
    """
    safe = "".join(
        c.encode("unicode_escape", "backslashreplace").decode("ascii")
        if unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI else c
        for c in name[:limit + 1]
    )
    return safe if len(name) <= limit else safe[:limit] + "…"
