"""What a file's bytes are, whatever its name says: signatures, text decoding, Word packages.

The name of an upload is the sender's claim; these checks are the evidence. They read at most
the file once (text decoding) and never parse a document: that happens in the reading worker.
"""

from __future__ import annotations

import io
import re
import zipfile

MB = 2**20
# What each kind of content is called in a refusal ("its content is plain text").
DESCRIPTIONS = {
    "png": "a PNG image", "jpeg": "a JPEG image", "gif": "a GIF image", "webp": "a WebP image",
    "pdf": "a PDF", "docx": "a Word document", "text": "plain text",
    "zip": "a ZIP archive", "office": "an old Office file (.doc, .xls or .ppt)",
    "image": "an image of a type we do not read", "encoding": "text in an unknown encoding",
    "binary": "binary data of a type we do not read",
}
_SIGNATURES = (  # (kind, offset, bytes): the strong ones, checked before text
    ("png", 0, b"\x89PNG\r\n\x1a\n"), ("jpeg", 0, b"\xff\xd8\xff"), ("gif", 0, b"GIF87a"),
    ("gif", 0, b"GIF89a"), ("zip", 0, b"PK\x03\x04"),
    ("office", 0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), ("image", 0, b"II*\x00"),
    ("image", 0, b"MM\x00*"), ("image", 4, b"ftypheic"), ("image", 4, b"ftypavif"),
)
_BOMS = (  # UTF-32 first: its little-endian BOM begins with UTF-16's
    (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"),
)
# Control characters no text file holds (tab, newlines, form feed and ESC of coloured logs may).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_LEGACY_SHARE = 0.3  # most bytes of Western text in Windows-1252 are still ASCII
MAX_ZIP_ENTRIES = 10_000
MAX_UNPACKED = 200 * MB
MAX_RATIO, RATIO_FROM = 100, 10 * MB  # entries this big may not be compressed more than this


def sniff(data: bytes) -> str:
    """The kind of content: a key of DESCRIPTIONS.

    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n...."), sniff(b"%PDF-1.7 ..."), sniff("é,ü\\n".encode())
    ('png', 'pdf', 'text')
    >>> sniff(b"RIFF\\x00\\x00\\x00\\x00WEBPVP8 "), sniff(b"\\x00\\x01\\x02"), sniff(b"BMW cars")
    ('webp', 'binary', 'text')
    """
    for kind, offset, signature in _SIGNATURES:
        if data[offset:offset + len(signature)] == signature:
            return "docx" if kind == "zip" and is_word_package(data) else kind
    if data[:1024].lstrip(b"\t\n\r ").startswith(b"%PDF-"):  # a PDF after blank lines
        return "pdf"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if decode_text(data) is not None:
        return "text"
    if data[:2] == b"BM":  # a BMP: checked after text, since text may begin with "BM"
        return "image"
    return "encoding" if looks_like_legacy_text(data) else "binary"


def decode_text(data: bytes) -> str | None:
    """The text of a text file, or None when the bytes are not text we can read.

    UTF-8 (with or without BOM), UTF-16 and UTF-32 with a BOM; without a BOM, what is not UTF-8
    is read as Windows-1252 (Excel's CSV on Western Windows) when at most 30% of its bytes are
    non-ASCII, as in European languages; anything else (Shift-JIS, GBK, UTF-16 without a BOM)
    is refused rather than shown to the model as mojibake. NUL and other control characters
    mean binary. Line ends become "\\n".

    >>> decode_text(b"\\xef\\xbb\\xbfna\\xc3\\xafve\\r\\n"), decode_text("hé".encode("utf-16"))
    ('naïve\\n', 'hé')
    >>> decode_text("café crème".encode("cp1252")), decode_text(b"a\\x00b")
    ('café crème', None)
    >>> decode_text("漢字かな".encode("shift_jis")) is None
    True
    """
    text = None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = _decoded(data, encoding)
            break
    else:
        text = _decoded(data, "utf-8")
        if text is None and _non_ascii_share(data) <= _LEGACY_SHARE:
            text = _decoded(data, "cp1252")
    if text is None or _CONTROL.search(text):
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def looks_like_legacy_text(data: bytes) -> bool:
    """Text in an encoding we do not read: no control bytes, though not decodable.

    >>> looks_like_legacy_text("漢字かな".encode("shift_jis")), looks_like_legacy_text(b"\\x00a")
    (True, False)
    """
    sample = data[:65536]
    return not _CONTROL.search(sample.decode("latin-1"))


def is_word_package(data: bytes) -> bool:
    """A ZIP that holds a Word document's parts: the main part and the content types.

    Too many entries for a Word document count as not one (and spare us listing them).
    """
    if data.count(b"PK\x01\x02") > MAX_ZIP_ENTRIES:  # central-directory records, bounded above
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            names = set(package.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False
    return {"word/document.xml", "[Content_Types].xml"} <= names


def word_package_problem(data: bytes) -> str | None:
    """Why a Word package would unpack to too much (see zip_bomb), or None."""
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        return zip_bomb(package)


def zip_bomb(package: zipfile.ZipFile) -> str | None:
    """Why a ZIP would unpack to too much (the reason of a refusal), or None.

    The sizes are those the archive declares; reading an entry never yields more than its
    declared size (zipfile stops there), so these numbers bound what parsing may unpack.
    """
    infos = package.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        return f"it has {len(infos):,} parts; the limit is {MAX_ZIP_ENTRIES:,}"
    unpacked = sum(info.file_size for info in infos)
    if unpacked > MAX_UNPACKED:
        return (f"it unpacks to {size_text(unpacked)}; the limit is {size_text(MAX_UNPACKED)} "
                "(a zip bomb?)")
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= RATIO_FROM and ratio > MAX_RATIO:
            return (f"its part {info.filename} is compressed {ratio:,.0f} times; the limit is "
                    f"{MAX_RATIO} (a zip bomb?)")
    return None


def size_text(size: int) -> str:
    """A size as people read it, in MB of 2**20 bytes like the upload limit.

    >>> size_text(20 * MB), size_text(int(25.3 * MB)), size_text(3 * MB // 2), size_text(900)
    ('20 MB', '25.3 MB', '1.5 MB', '0.9 KB')
    """
    if size < MB // 10:
        return f"{size / 1024:.1f}".removesuffix(".0") + " KB"
    return f"{size / MB:.1f}".removesuffix(".0") + " MB"


def _decoded(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _non_ascii_share(data: bytes) -> float:
    return (len(data) - len(data.translate(None, bytes(range(128, 256))))) / max(len(data), 1)
