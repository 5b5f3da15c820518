"""Attached files: what their bytes are (files), their text (extract), pictures for a model
(images), and passages to index (chunks). Pure: imports only the shared top."""

from ollamastack.documents.chunks import Chunk, estimate_tokens, split
from ollamastack.documents.extract import Page, ReadingPool, read_text, shutdown
from ollamastack.documents.files import Attachment, TooManyFiles, accept, accept_all
from ollamastack.documents.images import Picture, checked_image

__all__ = [
    "Attachment", "Chunk", "Page", "Picture", "ReadingPool", "TooManyFiles", "accept",
    "accept_all", "checked_image", "estimate_tokens", "read_text", "shutdown", "split",
]
