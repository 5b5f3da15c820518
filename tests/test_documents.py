"""Attached files (ollamastack/documents): what is accepted and refused from the bytes, the text
read in worker processes (page numbers, limits, bombs, the time limit that kills a worker, an
event loop that keeps running meanwhile), pictures made safe for a model, and passages."""

from __future__ import annotations

import ast
import asyncio
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from ollamastack.documents import (
    Attachment,
    Chunk,
    Page,
    Picture,
    ReadingPool,
    TooManyFiles,
    accept,
    accept_all,
    checked_image,
    read_text,
    shutdown,
    split,
)
from ollamastack.documents.readers import DOCX, Unreadable, read
from ollamastack.errors import AttachmentRefused
from tests.support import sample_files

MB = 2**20
LIMIT = 20 * MB
ACCEPTED = ("accepted are images (PNG, JPEG, WebP, GIF) and documents "
            "(.txt, .md, .csv, .pdf, .docx, .html)")
FOLDERS = ("its name has folder parts ('/', '\\', '..' or a drive); attach the file under its "
           "own name")


@pytest.fixture(scope="module")
def pool() -> Iterator[ReadingPool]:
    pool = ReadingPool()
    try:
        yield pool
    finally:
        pool.close()


def refusal(name: str, data: bytes, *, max_bytes: int = LIMIT) -> str:
    with pytest.raises(AttachmentRefused) as refused:
        accept(name, data, max_bytes=max_bytes)
    return str(refused.value)


async def text_of(pool: ReadingPool, name: str, data: bytes, **limits) -> list[Page]:
    limits = {"timeout": 30.0, "max_pages": 2000} | limits
    return await read_text(accept(name, data, max_bytes=LIMIT), pool=pool, **limits)


async def refused_reading(attachment: Attachment, pool: ReadingPool, **limits) -> str:
    limits = {"timeout": 30.0, "max_pages": 2000} | limits
    with pytest.raises(AttachmentRefused) as refused:
        await read_text(attachment, pool=pool, **limits)
    return str(refused.value)


# -- accepting: the type comes from the bytes --


@pytest.mark.parametrize(("name", "data", "kind", "mime"), [
    ("photo.png", sample_files.png(), "image", "image/png"),
    ("photo.JPG", sample_files.jpeg(), "image", "image/jpeg"),
    ("cat.gif", sample_files.gif(), "image", "image/gif"),
    ("clip.webp", sample_files.webp(), "image", "image/webp"),
    ("renamed.jpg", sample_files.png(), "image", "image/png"),  # the bytes decide the picture
    ("report.pdf", sample_files.pdf(["Hi"]), "document", "application/pdf"),
    ("letter.docx", sample_files.docx(["Hi"]), "document", DOCX),
    ("notes.txt", b"Hi", "document", "text/plain"),
    ("notes.md", b"# Hi", "document", "text/markdown"),
    ("table.csv", b"a,b\n1,2\n", "document", "text/csv"),
    ("page.html", sample_files.html(["Hi"]), "document", "text/html"),
    ("page.htm", b"<p>Hi</p>", "document", "text/html"),
    ("script.py", b"print('hi')\n", "document", "text/plain"),  # unknown extension: text
    ("README", sample_files.pdf(["Hi"]), "document", "application/pdf"),  # no extension
])
def test_accepted_files_are_typed_by_their_bytes(name, data, kind, mime):
    assert accept(name, data, max_bytes=LIMIT) == Attachment(name, kind, mime, data)


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("empty.txt", b"", "it is empty"),
    ("report.pdf", b"Just some words.", "it is not a PDF (its content is plain text)"),
    ("notes.txt", sample_files.png(), "it is not a text file (its content is a PNG image)"),
    ("photo.png", sample_files.pdf(["x"]), "it is not an image (its content is a PDF)"),
    ("letter.docx", sample_files.zip_archive({"a.txt": b"x"}),
     "it is not a Word document (its content is a ZIP archive)"),
    ("sheet.xlsx", sample_files.zip_archive({"xl/workbook.xml": b"<x/>"}),
     f"its content is a ZIP archive; {ACCEPTED}"),
    ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500),
     f"its content is an old Office file (.doc, .xls or .ppt); {ACCEPTED}"),
    ("tool.exe", b"MZ\x90\x00\x03" + bytes(100), f"its content is binary data of a type we do "
     f"not read; {ACCEPTED}"),
    ("wide.txt", "no BOM".encode("utf-16-le"),
     "it is not a text file (its content is binary data of a type we do not read)"),
    ("kanji.txt", "漢字かな交じり文".encode("shift_jis"),
     "it is text in an encoding we do not read; save it as UTF-8 and attach it again"),
    ("bomb.docx", sample_files.docx_zip_bomb(50), "its part word/media/zeros.bin is compressed "
     "1,029 times; the limit is 100 (a zip bomb?)"),
])
def test_refused_files_say_why(name, data, reason):
    assert refusal(name, data) == f"{name} was not attached: {reason}"


def test_a_file_over_the_size_limit_is_refused_with_both_sizes():
    assert refusal("big.txt", b"x" * int(25.3 * MB)) == (
        "big.txt was not attached: it is 25.3 MB; the limit is 20 MB")
    assert refusal("edge.txt", b"x" * (LIMIT + 1)) == (
        "edge.txt was not attached: it is 20,971,521 bytes; the limit is 20,971,520 bytes")
    assert accept("edge.txt", b"x" * LIMIT, max_bytes=LIMIT).size == LIMIT


@pytest.mark.parametrize(("name", "shown", "reason"), [
    ("../../x", "../../x", FOLDERS), ("a/b.txt", "a/b.txt", FOLDERS),
    ("C:\\x", "C:\\x", FOLDERS), ("C:x.txt", "C:x.txt", FOLDERS), ("..", "..", FOLDERS),
    ("a\x00.txt", "a\\x00.txt", "its name has control characters"),
    ("line\nbreak.txt", "line\\nbreak.txt", "its name has control characters"),
    ("invoice\u202etxt.exe", "invoice\\u202etxt.exe", "its name has control characters"),
    ("é" * 128 + ".txt", "é" * 80 + "…", "its name is 260 bytes long; the limit is 255"),
])
def test_names_with_paths_or_control_characters_are_refused_not_renamed(name, shown, reason):
    assert refusal(name, b"text") == f"{shown} was not attached: {reason}"


def test_a_file_without_a_name_is_refused():
    assert refusal("  ", b"text") == "The file was not attached: it has no name"


def test_accept_all_counts_the_files_first():
    files = [(f"{i}.txt", b"x") for i in range(9)]
    with pytest.raises(TooManyFiles) as refused:
        accept_all(files, max_bytes=LIMIT, max_files=8)
    assert isinstance(refused.value, AttachmentRefused)
    assert str(refused.value) == (
        "9 files were attached; at most 8 files per message are allowed.")
    assert [a.name for a in accept_all(files[:8], max_bytes=LIMIT, max_files=8)] == [
        f"{i}.txt" for i in range(8)]
    with pytest.raises(AttachmentRefused, match=r"^x\.pdf was not attached: it is not a PDF"):
        accept_all([("a.txt", b"a"), ("x.pdf", b"b")], max_bytes=LIMIT, max_files=8)


# -- reading text --


async def test_pdf_pages_keep_their_numbers(pool):
    pages = await text_of(pool, "r.pdf", sample_files.pdf(
        ["Intro (one) \\ back", "", "Page three\nsecond line: café, über, 5 €"]))
    assert pages == [Page(1, "Intro (one) \\ back"),
                     Page(3, "Page three\nsecond line: café, über, 5 €")]


async def test_a_larger_pdf_reads_back_every_page(pool):
    pages = await text_of(pool, "big.pdf", sample_files.big_pdf(1))
    expected = sample_files.big_pdf_pages(1)
    assert pages == [Page(n, text) for n, text in enumerate(expected, start=1)]


@pytest.mark.parametrize(("data", "reason"), [
    (sample_files.encrypted_pdf(), "it is password-protected; remove the password and attach "
                                   "it again"),
    (sample_files.damaged_pdf(), "it is damaged and could not be read (PdfStreamError: Stream "
                                 "has ended unexpectedly)"),
    (sample_files.many_pages_pdf(10_000), "it has 10,000 pages; the limit is 2,000"),
    (sample_files.pdf(["", "  "]), "it has no text to read (a scan?); attach its pages as "
                                   "images instead"),
])
async def test_unreadable_pdfs_are_refused(pool, data, reason):
    attachment = accept("x.pdf", data, max_bytes=LIMIT)
    assert await refused_reading(attachment, pool) == f"x.pdf was not attached: {reason}"


async def test_a_pdf_locked_only_against_printing_is_read(pool):
    pages = await text_of(pool, "x.pdf", sample_files.encrypted_pdf(password="", text="Open."))
    assert pages == [Page(1, "Open.")]


async def test_docx_paragraphs_and_tables_come_in_order(pool):
    data = sample_files.docx(["# Plan", "First step.", [["Who", "When"], ["Ann", "Monday"]],
                              "", "Last step."])
    assert await text_of(pool, "plan.docx", data) == [
        Page(None, "# Plan\n\nFirst step.\n\nWho | When\nAnn | Monday\n\nLast step.")]


@pytest.mark.parametrize(("unpacked_mb", "reason"), [
    (300, "it unpacks to 300.8 MB; the limit is 200 MB (a zip bomb?)"),
    (50, "its part word/media/zeros.bin is compressed 1,029 times; the limit is 100 "
         "(a zip bomb?)"),
])
async def test_the_worker_refuses_a_docx_zip_bomb_before_parsing_it(pool, unpacked_mb, reason):
    bomb = Attachment("bomb.docx", "document", DOCX, sample_files.docx_zip_bomb(unpacked_mb))
    assert await refused_reading(bomb, pool) == f"bomb.docx was not attached: {reason}"


async def test_html_keeps_what_a_reader_sees(pool):
    data = sample_files.html(["Hello &amp; welcome.", "Second <b>bold</b> line."])
    assert await text_of(pool, "p.html", data) == [
        Page(None, "- Home\n- About\nHello & welcome.\nSecond bold line.")]


@pytest.mark.parametrize(("data", "text"), [
    (b"a,b\r\n1,2\r\n", "a,b\n1,2"),
    ("\ufeffnaïve".encode(), "naïve"),
    ("ünïcödé".encode("utf-16"), "ünïcödé"),
    ("ünïcödé".encode("utf-16-be").join([b"\xfe\xff", b""]), "ünïcödé"),
    ("ünïcödé".encode("utf-32"), "ünïcödé"),
    ("Prix: 5 € – déjà réglé, merci.".encode("cp1252"), "Prix: 5 € – déjà réglé, merci."),
])
async def test_text_files_are_decoded(pool, data, text):
    assert await text_of(pool, "t.txt", data) == [Page(None, text)]


async def test_documents_without_text_or_with_too_much_are_refused(pool):
    blank = accept("blank.md", b"  \n\n ", max_bytes=LIMIT)
    assert await refused_reading(blank, pool) == (
        "blank.md was not attached: it has no text to read")
    long = accept("long.pdf", sample_files.pdf(["x" * 600] * 3), max_bytes=LIMIT)
    assert await refused_reading(long, pool, max_chars=1000) == (
        "long.pdf was not attached: its text is longer than 1,000 characters, the most one "
        "document may have")
    picture = accept("a.png", sample_files.png(), max_bytes=LIMIT)
    assert await refused_reading(picture, pool) == "a.png was not attached: it is not a document"


# -- the worker processes --


async def test_past_the_time_limit_the_worker_is_killed_and_the_next_document_is_read(pool):
    await text_of(pool, "warm.pdf", sample_files.pdf(["warm"]))
    [before] = pool.pids
    slow = accept("slow.pdf", sample_files.big_pdf(2), max_bytes=LIMIT)
    assert await refused_reading(slow, pool, timeout=0.2) == (
        "slow.pdf was not attached: it took longer than 0.2 s to read")
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)  # killed and reaped
    assert await text_of(pool, "next.pdf", sample_files.pdf(["Next."])) == [Page(1, "Next.")]
    assert pool.pids != [before]


async def test_time_counts_from_when_a_worker_takes_the_document(pool):
    slow = text_of(pool, "slow.pdf", sample_files.big_pdf(2))
    quick = text_of(pool, "quick.pdf", sample_files.pdf(["Quick."]), timeout=0.5)
    pages, quick_pages = await asyncio.gather(slow, quick)  # quick waits for slow's worker
    assert (len(pages), quick_pages) == (350, [Page(1, "Quick.")])


async def test_cancelling_a_read_stops_its_worker(pool):
    await text_of(pool, "warm.pdf", sample_files.pdf(["warm"]))
    [before] = pool.pids
    reading = asyncio.create_task(text_of(pool, "slow.pdf", sample_files.big_pdf(2)))
    await asyncio.sleep(0.3)  # the worker is reading
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert await text_of(pool, "next.pdf", sample_files.pdf(["Next."])) == [Page(1, "Next.")]
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)


def address_space_limits(pid: int) -> list[str]:
    """The soft and hard RLIMIT_AS of a process, in bytes, as Linux reports them."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return line.split()[3:5]
    return []


async def test_the_worker_runs_capped_and_behind_the_app(pool):
    await text_of(pool, "warm.pdf", sample_files.pdf(["warm"]))
    [pid] = pool.pids
    assert address_space_limits(pid) == ["2147483648", "2147483648"]
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 10,
                                                       19)


async def test_a_document_needing_more_memory_than_the_cap_is_refused():
    pool = ReadingPool(memory_bytes=256 * MB)
    try:
        huge = Attachment("huge.html", "document", "text/html", b"x" * (64 * MB))
        assert "more memory than one document may use" in await refused_reading(
            huge, pool, max_chars=10**9)
        assert await text_of(pool, "ok.html", b"<p>fine</p>") == [Page(None, "fine")]
    finally:
        pool.close()


async def test_the_event_loop_keeps_running_while_a_big_pdf_is_read(pool):
    await text_of(pool, "warm.pdf", sample_files.pdf(["warm"]))
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    pages = await text_of(pool, "big.pdf", sample_files.big_pdf(3))
    took = time.perf_counter() - started
    done.set()
    await ticker
    assert len(pages) == 524
    # Read on the loop, it would stall for the whole read (took); a busy machine slows both.
    assert max(gaps) < max(0.25, took / 5), f"a {max(gaps):.3f} s stall in a {took:.1f} s read"


async def test_the_shared_pool_closes_and_starts_again():
    attachment = accept("a.pdf", sample_files.pdf(["Shared."]), max_bytes=LIMIT)
    assert await read_text(attachment, timeout=30, max_pages=10) == [Page(1, "Shared.")]
    shutdown()
    assert await read_text(attachment, timeout=30, max_pages=10) == [Page(1, "Shared.")]
    shutdown()


# -- pictures --


def picture(name: str, data: bytes) -> Picture:
    return checked_image(accept(name, data, max_bytes=LIMIT))


def test_png_and_jpeg_are_kept_byte_for_byte():
    png, jpeg = sample_files.png(64, 48), sample_files.jpeg(64, 48)
    assert picture("a.png", png) == Picture("a.png", "image/png", png, 64, 48)
    assert picture("b.jpg", jpeg) == Picture("b.jpg", "image/jpeg", jpeg, 64, 48)
    assert picture("c.jpg", png) == Picture("c.jpg", "image/png", png, 64, 48)


def test_gif_and_webp_become_png_or_a_lossy_webp_jpeg():
    gif = picture("cat.gif", sample_files.gif(frames=3))
    with Image.open(io.BytesIO(gif.data)) as first:
        assert (gif.name, gif.mime, first.format, first.size, first.getpixel((5, 5))) == (
            "cat.png", "image/png", "PNG", (32, 24), (255, 0, 0))
    webp = picture("clip.webp", sample_files.webp(40, 30))
    with Image.open(io.BytesIO(webp.data)) as image:
        assert (webp.name, image.format, image.mode, image.size, image.getpixel((2, 2))[3],
                image.getpixel((35, 2))[3]) == ("clip.png", "PNG", "RGBA", (40, 30), 0, 255)
    photo = picture("photo.webp", sample_files.webp(40, 30, photo=True))
    with Image.open(io.BytesIO(photo.data)) as image:
        assert (photo.name, photo.mime, image.format, image.mode, image.size) == (
            "photo.jpg", "image/jpeg", "JPEG", "RGB", (40, 30))


@pytest.mark.parametrize(("data", "reason"), [
    (sample_files.bomb_png(), "it has 10,000 megapixels; the limit is 40 megapixels"),
    (sample_files.bomb_png(8000, 8000),
     "it is 8,000 × 8,000 pixels (64 megapixels); the limit is 40 megapixels"),
    (sample_files.png(300, 300)[:200], "it is damaged and could not be opened (image file is "
                                       "truncated)"),
])
def test_bombs_and_damaged_pictures_are_refused(data, reason):
    attachment = accept("x.png", data, max_bytes=LIMIT)
    started = time.perf_counter()
    with pytest.raises(AttachmentRefused) as refused:
        checked_image(attachment)
    assert str(refused.value) == f"x.png was not attached: {reason}"
    assert time.perf_counter() - started < 0.5  # the bombs were never decoded


def test_a_document_is_not_a_picture():
    with pytest.raises(AttachmentRefused, match=r"^a\.txt was not attached: it is not an image$"):
        checked_image(accept("a.txt", b"hi", max_bytes=LIMIT))


# -- passages --


def test_passages_stay_within_pages_and_cover_them_with_overlap():
    pages = [Page(n, text) for n, text in enumerate(sample_files.big_pdf_pages(0.1), start=1)]
    chunks = split(pages, chars=1200, overlap=150)
    for page in pages:
        mine = [chunk.text for chunk in chunks if chunk.page == page.number]
        assert all(len(text) <= 1200 for text in mine)
        starts = [page.text.index(text) for text in mine]
        ends = [start + len(text) for start, text in zip(starts, mine, strict=True)]
        assert (starts[0], ends[-1]) == (0, len(page.text))
        assert all(0 < end - start <= 150 for start, end in zip(starts[1:], ends, strict=False))
    assert {chunk.page for chunk in chunks} == {page.number for page in pages}
    assert split([Page(None, "Short.")]) == [Chunk(None, "Short.")]


def test_split_refuses_an_overlap_as_long_as_the_passage():
    with pytest.raises(ValueError, match="overlap below it"):
        split([Page(1, "x")], chars=100, overlap=100)


# -- the layer --


def test_documents_imports_only_itself_and_the_shared_top():
    package = Path(__file__).resolve().parent.parent / "ollamastack" / "documents"
    outside = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     else [])
            outside += [f"{path.name}: {name}" for name in names
                        if name.startswith("ollamastack.")
                        and name.split(".")[1] not in ("documents", "errors", "settings")]
    assert outside == []


def test_unreadable_reasons_complete_the_refusal_sentence():
    with pytest.raises(Unreadable) as refused:
        read("application/zip", b"PK", max_pages=1, max_chars=1)
    assert refused.value.reason == "its type (application/zip) is not a document we read"
