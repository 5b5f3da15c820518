"""Files as each door receives them, read into the `(name, bytes)` pairs the chat service
checks: Gradio uploads (the page's box, `/chat`'s `files`), multipart parts (REST) and data
URLs (OpenAI's `image_url`). What a file is gets decided from its bytes, later, by the core.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
from collections.abc import Sequence
from pathlib import Path

from gradio.utils import get_upload_folder, is_in_or_equal

from ollamastack.errors import AttachmentRefused, InvalidInput

Files = tuple[tuple[str, bytes], ...]


async def gradio_files(files: object, *, limit: int) -> Files:
    """Files Gradio received for us: `FileData` dicts (`gradio_client.handle_file`) or paths
    (the page's box). Only files inside Gradio's upload folder are read: a client naming
    another path on this machine gets a refusal, not the file."""
    if files is None or files == []:
        return ()
    if not isinstance(files, list | tuple):
        raise InvalidInput("files must be a list of files (gradio_client.handle_file).")
    return await asyncio.to_thread(_read_uploaded, list(files), limit)


def _read_uploaded(files: list[object], limit: int) -> Files:
    folder = Path(get_upload_folder()).resolve()
    read = []
    for item in files:
        path, name = (item.get("path"), item.get("orig_name")) if isinstance(item, dict) else (
            item, None)
        if not isinstance(path, str | os.PathLike) or not path:
            raise InvalidInput("Each file must be an uploaded file (gradio_client.handle_file).")
        where = Path(path).resolve()
        name = str(name or where.name)
        if not is_in_or_equal(where, folder) or not where.is_file():
            raise AttachmentRefused(name, "it was not uploaded to this server.")
        with where.open("rb") as file:
            read.append((name, file.read(limit + 1)))  # a byte over: "too large", unread
    return tuple(read)


EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def data_url(url: str, *, limit: int) -> tuple[str, bytes]:
    """An image sent inline (`data:image/png;base64,...`), decoded; named for its type.

    >>> data_url("data:image/png;base64,aGk=", limit=10)
    ('image.png', b'hi')
    >>> data_url("https://example.com/cat.png", limit=10)
    Traceback (most recent call last):
    ...
    ollamastack.errors.AttachmentRefused: image.bin was not attached: only data: URLs are accepted \
(the server fetches nothing from other hosts).
    """
    head, _, payload = url.partition(",")
    mime = head.removeprefix("data:").split(";")[0].lower()
    name = f"image.{EXTENSIONS.get(mime, 'bin')}"
    if not head.startswith("data:") or ";base64" not in head:
        raise AttachmentRefused(
            name, "only data: URLs are accepted (the server fetches nothing from other hosts).")
    if len(payload) > (limit + 2) * 4 // 3 + 4:
        return name, b"\0" * (limit + 1)  # past the limit: refused as too large by the core
    try:
        return name, base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise AttachmentRefused(name, "its data URL is not valid base64.") from None


def numbered(files: Sequence[tuple[str, bytes]]) -> Files:
    """Inline images numbered when there are several, so a refusal says which one.

    >>> [name for name, _ in numbered([("image.png", b"a"), ("image.jpg", b"b")])]
    ['image-1.png', 'image-2.jpg']
    """
    if len(files) < 2:
        return tuple(files)
    return tuple(
        (name.replace("image.", f"image-{i}.", 1), data) for i, (name, data) in enumerate(files, 1)
    )
