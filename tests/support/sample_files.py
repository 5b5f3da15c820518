"""Files to attach, made in memory: real PDFs, Word documents, pictures and web pages, and
the hostile ones (encrypted, bombs, damaged). For tests and benchmarks.

PDFs are written by hand (Helvetica, WinAnsi text, uncompressed streams), so pypdf reads
back exactly the lines given and a big one is made in about a second.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zipfile
import zlib

from PIL import Image

WORDS = ("river stone cloud paper music light garden window number letter morning answer "
         "market winter bridge system signal forest engine harbor").split()


def pdf(pages: list[str]) -> bytes:
    """A text PDF whose page i reads pages[i] (lines split on "\\n"; Latin-1 characters)."""
    streams = [_page_stream(text) for text in pages]
    return _pdf_file(streams, list(range(len(streams))))


def many_pages_pdf(n: int, text: str = "A page.") -> bytes:
    """A PDF of n pages that all show one shared content stream: 10,000 pages in ~100 ms."""
    return _pdf_file([_page_stream(text)], [0] * n)


def big_pdf(megabytes: float, *, seed: int = 1) -> bytes:
    """A text PDF of about `megabytes` MB: dense pages of 60 lines of varied words (about
    5.7 KB of text each, so 10 MB is ~1,800 pages, under the 2,000-page limit)."""
    return _big_pdf(round(megabytes * 2**20 / 6000), seed)


def big_pdf_pages(megabytes: float, *, seed: int = 1) -> list[str]:
    """The page texts big_pdf(megabytes, seed=seed) shows."""
    return list(_pages(round(megabytes * 2**20 / 6000), seed))


def encrypted_pdf(password: str = "secret", text: str = "Top secret.") -> bytes:
    """A one-page PDF that opens only with `password` (RC4: needs no extra package)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf([text]))))
    writer.encrypt(user_password=password, owner_password=password + "!", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def damaged_pdf() -> bytes:
    """A PDF header followed by noise: no objects, no cross-reference table, no trailer."""
    return b"%PDF-1.7\n" + random.Random(7).randbytes(4000)


def docx(blocks: list[str | list[list[str]]]) -> bytes:
    """A Word document: a string is a paragraph ("# " makes a Heading 1), a list of rows is a
    table."""
    import docx as python_docx

    document = python_docx.Document()
    for block in blocks:
        if isinstance(block, str):
            if block.startswith("# "):
                document.add_heading(block[2:], level=1)
            else:
                document.add_paragraph(block)
        else:
            table = document.add_table(rows=len(block), cols=len(block[0]))
            for row, values in zip(table.rows, block, strict=True):
                for cell, value in zip(row.cells, values, strict=True):
                    cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_zip_bomb(unpacked_mb: int = 300) -> bytes:
    """A real Word package plus a part of `unpacked_mb` MB of zeros (about 1,000:1)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx(["Harmless."]))) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            bomb.writestr(info, source.read(info))
        with bomb.open("word/media/zeros.bin", "w", force_zip64=True) as part:
            zeros = bytes(2**20)
            for _ in range(unpacked_mb):
                part.write(zeros)
    return out.getvalue()


def zip_archive(files: dict[str, bytes]) -> bytes:
    """A plain ZIP archive of the given entries."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def png(width: int = 64, height: int = 48, *, mode: str = "RGB") -> bytes:
    """A PNG with a colour gradient."""
    return _save(_gradient(width, height, mode), "PNG")


def jpeg(width: int = 64, height: int = 48) -> bytes:
    """A JPEG with a colour gradient."""
    return _save(_gradient(width, height, "RGB"), "JPEG")


def gif(frames: int = 3, width: int = 32, height: int = 24) -> bytes:
    """An animated GIF: frame i is a solid colour, red first."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    images = [Image.new("RGB", (width, height), colours[i % 3]) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=100)
    return out.getvalue()


def webp(width: int = 40, height: int = 30, *, photo: bool = False) -> bytes:
    """A lossless WebP whose left half is transparent, or (`photo`) a lossy, opaque one."""
    if photo:
        return _save(_gradient(width, height, "RGB"), "WEBP", quality=80)
    image = _gradient(width, height, "RGBA")
    image.paste((0, 0, 0, 0), (0, 0, width // 2, height))
    return _save(image, "WEBP", lossless=True)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG that declares width × height grey pixels but holds a few hundred bytes of
    compressed zeros: decoding it would need width × height bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(width + 1) * 4, 9)) + chunk(b"IEND", b""))


def html(paragraphs: list[str], *, title: str = "A page") -> bytes:
    """A web page with a title, a style, a script and a menu around the given paragraphs."""
    body = "".join(f"<p>{text}</p>\n" for text in paragraphs)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" + title + "</title>"
        "<style>p { color: red }</style><script>var hidden = 'no';</script></head>\n"
        "<body><nav><ul><li>Home</li><li>About</li></ul></nav>\n" + body
        + "<script>document.title = 'never shown';</script></body></html>"
    ).encode()


# -- the PDF writer --


def _page_stream(text: str) -> bytes:
    lines = b"".join(b"(" + _pdf_string(line) + b") Tj T*\n" for line in text.split("\n"))
    return b"BT /F1 11 Tf 13 TL 50 800 Td\n" + lines + b"ET"


def _pdf_string(line: str) -> bytes:
    out = bytearray()
    for byte in line.encode("cp1252"):
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif byte < 32 or byte > 126:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out)


def _pdf_file(streams: list[bytes], page_streams: list[int]) -> bytes:
    """Catalog 1, pages 2, font 3, the streams from 4, then one page object per page."""
    first_page = 4 + len(streams)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(
            b"%d 0 R" % (first_page + i) for i in range(len(page_streams))
        ) + b"] /Count %d >>" % len(page_streams),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    objects += [b"<< /Length %d >>\nstream\n%s\nendstream" % (len(s), s) for s in streams]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (4 + stream)
        for stream in page_streams
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    table = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, table)
    return bytes(out)


@functools.lru_cache(maxsize=4)
def _big_pdf(pages: int, seed: int) -> bytes:
    return pdf(list(_pages(pages, seed)))


@functools.lru_cache(maxsize=4)
def _pages(count: int, seed: int) -> tuple[str, ...]:
    """Pages of 60 lines: "Page n", then lines of 14 words (~95 characters) from a shuffle."""
    rng = random.Random(seed)
    pages = []
    for number in range(1, count + 1):
        words = list(WORDS)
        rng.shuffle(words)
        lines = [" ".join((words[k:] + words[:k])[:14]) for k in rng.choices(range(20), k=59)]
        pages.append("\n".join([f"Page {number}", *lines]))
    return tuple(pages)


def _gradient(width: int, height: int, mode: str) -> Image.Image:
    image = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                               image.rotate(90))).convert(mode)


def _save(image: Image.Image, format_: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format_, **options)
    return out.getvalue()
