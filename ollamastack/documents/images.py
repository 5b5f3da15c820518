"""Checking an attached picture before a model sees it, with Pillow.

The size is read from the header and refused before any pixel is decoded, so a picture that
declares 100,000 × 100,000 pixels in a few hundred bytes costs nothing. PNG and JPEG are sent
byte for byte once they decode; GIF (its first frame) and WebP become PNG, which Ollama's
image decoding handles surely, except a lossy WebP without transparency (a photo), which
becomes a JPEG at quality 95: as PNG it would be several times larger, and a picture is sent
again with every later turn of the conversation. Decoding needs about 4 bytes a pixel
(160 MB at the 40 megapixel limit) and about a second there; Pillow releases the GIL while
it decodes, so `asyncio.to_thread` is the way to call this from the event loop.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import PurePath

from PIL import Image

from ollamastack.documents.files import Attachment
from ollamastack.errors import AttachmentRefused

_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
_KEPT = frozenset({"image/png", "image/jpeg"})


@dataclass(frozen=True)
class Picture:
    """A picture ready for a model: PNG or JPEG bytes and its size in pixels."""

    name: str
    mime: str
    data: bytes
    width: int
    height: int

    def __repr__(self) -> str:  # the bytes would fill a log
        return (f"Picture({self.name!r}, {self.mime!r}, {self.width}x{self.height}, "
                f"{len(self.data):,} bytes)")


def checked_image(attachment: Attachment, *, max_pixels: int = 40_000_000) -> Picture:
    """The picture, or AttachmentRefused when it is too large, damaged or not a picture."""
    name = attachment.name
    if (format_ := _FORMATS.get(attachment.mime)) is None:
        raise AttachmentRefused(name, "it is not an image")
    try:
        with warnings.catch_warnings():  # the limit here is ours, not Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(attachment.data), formats=[format_])
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise AttachmentRefused(name, _too_big(width * height, max_pixels, width, height))
            image.seek(0)
            image.load()  # decodes the (first) frame: truncated or corrupt data fails here
            if attachment.mime in _KEPT:
                return Picture(name, attachment.mime, attachment.data, width, height)
            mime, data = _converted(image, lossy=attachment.data[12:16] == b"VP8 ")
            suffix = ".png" if mime == "image/png" else ".jpg"
            return Picture(str(PurePath(name).with_suffix(suffix)), mime, data, width, height)
    except Image.DecompressionBombError as error:  # past twice Pillow's own limit, at open
        found = re.search(r"\((\d+) pixels\)", str(error))
        reason = (_too_big(int(found[1]), max_pixels) if found
                  else "it is too large to open safely (a decompression bomb?)")
        raise AttachmentRefused(name, reason) from None
    except AttachmentRefused:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as error:
        detail = " ".join(str(error).split())[:120]
        raise AttachmentRefused(name, f"it is damaged and could not be opened ({detail})") \
            from None


def _converted(image: Image.Image, *, lossy: bool) -> tuple[str, bytes]:
    """The frame as PNG (keeping any transparency), or as JPEG when it came lossy and opaque.
    PNG is written with fast compression: the model's server decodes it once."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    out = io.BytesIO()
    if lossy and not has_alpha:
        image.convert("RGB").save(out, format="JPEG", quality=95)
        return "image/jpeg", out.getvalue()
    image.convert("RGBA" if has_alpha else "RGB").save(out, format="PNG", compress_level=1)
    return "image/png", out.getvalue()


def _too_big(pixels: int, limit: int, width: int = 0, height: int = 0) -> str:
    """
    >>> _too_big(100_000 * 100_000, 40_000_000, 100_000, 100_000)
    'it is 100,000 × 100,000 pixels (10,000 megapixels); the limit is 40 megapixels'
    >>> _too_big(10**10, 40_000_000)
    'it has 10,000 megapixels; the limit is 40 megapixels'
    """
    size = f"{width:,} × {height:,} pixels ({pixels / 1e6:,.0f} megapixels)" if width else ""
    what = f"is {size}" if size else f"has {pixels / 1e6:,.0f} megapixels"
    return f"it {what}; the limit is {limit / 1e6:,g} megapixels"
