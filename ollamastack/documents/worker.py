"""The reading worker: a separate Python process that parses documents one at a time.

It is started with `python -c` (not multiprocessing), so it never imports the app's main
module, Gradio included. Its address space is capped and its priority lowered; it answers
on a duplicate of stdout, while anything a library prints goes to stderr, the app's log.
Messages are a JSON header and a byte payload, so the app never unpickles what a process
that parsed hostile files sends back.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
import traceback

_FRAME = struct.Struct(">IQ")  # header length, payload length
NICENESS = 10  # the app's answers first: on two cores, reading must not slow the chats


def main(memory_bytes: int) -> None:
    """Serve requests from stdin until it closes."""
    replies = os.dup(1)
    os.dup2(2, 1)
    _limit(memory_bytes)
    from ollamastack.documents import readers

    readers.preload()
    send(replies, {"ready": os.getpid()})
    while True:
        try:
            header, payload = receive(0)
        except EOFError:
            return
        try:
            pages = readers.read(header["mime"], payload, max_pages=header["max_pages"],
                                 max_chars=header["max_chars"])
        except readers.Unreadable as refused:
            pages, answer = [], {"refused": refused.reason}
        except MemoryError:
            payload = None  # freed before anything more is asked of memory
            pages, answer = [], {"refused": "reading it needs more memory than one document "
                                            "may use"}
        except Exception as error:  # a parser bug: this file is refused, the worker lives on
            traceback.print_exc()
            pages, answer = [], {"refused": f"it could not be read ({type(error).__name__})"}
        else:
            answer = {"done": len(pages)}
        payload = None
        for page in pages:  # one message a page: the app decodes each in a moment
            send(replies, {"page": [page.number, page.text]})
        send(replies, answer)


def send(fd: int, header: dict, payload: bytes = b"") -> None:
    """Write one message; BrokenPipeError when the other side is gone."""
    encoded = json.dumps(header, ensure_ascii=False).encode("utf-8", "surrogatepass")
    _write_all(fd, _FRAME.pack(len(encoded), len(payload)))
    _write_all(fd, encoded)
    _write_all(fd, payload)


def receive(fd: int, deadline: float | None = None) -> tuple[dict, bytes]:
    """Read one message; EOFError when the other side closed, TimeoutError past `deadline`
    (a time.monotonic() value)."""
    size, payload_size = _FRAME.unpack(_read_exactly(fd, _FRAME.size, deadline))
    header = json.loads(_read_exactly(fd, size, deadline).decode("utf-8", "surrogatepass"))
    return header, _read_exactly(fd, payload_size, deadline)


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _limit(memory_bytes: int) -> None:
    """Cap the address space, so a bomb fails with MemoryError instead of taking the machine."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # for good: the worker cannot raise it
    os.nice(NICENESS)
