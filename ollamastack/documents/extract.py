"""Reading an attached document's text off the event loop, in worker processes with a time
limit, so a big or hostile file neither blocks the loop nor holds the app's GIL.

A `ReadingPool` keeps a few workers (worker.py) alive between documents. A document's time
counts from the moment a worker takes it, not while it waits its turn; past its time limit
that worker is killed (only that one, and only its document is refused) and a fresh one
starts for the next document. Cancelling the awaiting task kills the worker too, so a
stopped turn leaves nothing running. Plain text needs no parser and is read in a thread.
Workers use POSIX pipes and resource limits: Linux and macOS, not Windows.
"""

from __future__ import annotations

import asyncio
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ollamastack.documents import readers
from ollamastack.documents.files import Attachment
from ollamastack.documents.readers import Page, Unreadable
from ollamastack.documents.worker import receive, send
from ollamastack.errors import AttachmentRefused

__all__ = ["Page", "ReadingPool", "read_text", "shutdown"]

GiB = 2**30
MAX_CHARS = 20_000_000  # about 5 million tokens: far more than any model reads whole
START_TIMEOUT = 60.0  # a worker's start, not counted in any document's time
_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from ollamastack.documents.worker import main; main(int(sys.argv[2]))")
_default: ReadingPool | None = None
_default_lock = threading.Lock()


async def read_text(
    attachment: Attachment,
    *,
    timeout: float,  # noqa: ASYNC109 (counted in the worker: see ReadingPool.read)
    max_pages: int,
    max_chars: int = MAX_CHARS,
    pool: ReadingPool | None = None,
) -> list[Page]:
    """The pages with text of a document (PDF page numbers kept), or AttachmentRefused.

    Uses the app's shared pool unless `pool` is given; `shutdown()` closes the shared one.
    """
    if attachment.kind != "document":
        raise AttachmentRefused(attachment.name, "it is not a document")
    try:
        if attachment.mime in readers.TEXT_MIMES:
            return await asyncio.to_thread(
                readers.read, attachment.mime, attachment.data, max_pages=max_pages,
                max_chars=max_chars)
        return await (pool or _shared()).read(
            attachment.mime, attachment.data, timeout=timeout, max_pages=max_pages,
            max_chars=max_chars)
    except Unreadable as refused:
        raise AttachmentRefused(attachment.name, refused.reason) from None


def shutdown() -> None:
    """Stop the shared pool's workers (app shutdown, tests); the next read starts a new one."""
    global _default
    with _default_lock:
        pool, _default = _default, None
    if pool is not None:
        pool.close()


def _shared() -> ReadingPool:
    global _default
    with _default_lock:
        if _default is None:
            _default = ReadingPool()
        return _default


class ReadingPool:
    """Worker processes that read documents, each one document at a time.

    One worker is the default: on a two-core machine the other core serves the chats.
    """

    def __init__(self, *, workers: int = 1, memory_bytes: int = 2 * GiB) -> None:
        self._workers = [_Worker(memory_bytes) for _ in range(workers)]
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        for worker in self._workers:
            self._idle.put(worker)
        self._threads = ThreadPoolExecutor(max_workers=16, thread_name_prefix="documents")
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """The process ids of the running workers."""
        return [pid for worker in self._workers if (pid := worker.pid) is not None]

    async def read(
        self,
        mime: str,
        data: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 (see below)
        max_pages: int,
        max_chars: int,
    ) -> list[Page]:
        """The document's pages; Unreadable when refused or past `timeout` seconds.

        The time limit counts inside the worker, from when it takes the document, and ends
        by killing that worker: `asyncio.timeout` around the call could do neither.
        """
        if self._closed:
            raise Unreadable("the app is stopping")
        job = _Job(mime, data, timeout, max_pages, max_chars)
        future = asyncio.get_running_loop().run_in_executor(self._threads, self._run, job)
        try:
            return await future
        except asyncio.CancelledError:
            job.cancel()
            raise

    def close(self) -> None:
        """Stop every worker; documents still waiting are refused."""
        self._closed = True
        self._idle.put(None)  # wakes the waiting; each puts it back for the next
        for worker in self._workers:
            worker.stop()
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: _Job) -> list[Page]:
        worker = self._idle.get()
        if worker is None or self._closed:
            self._idle.put(worker)
            raise Unreadable("the app is stopping")
        if job.cancelled:  # while it waited its turn
            self._idle.put(worker)
            raise Unreadable("reading it was cancelled")
        try:
            return worker.read(job)
        finally:
            self._idle.put(worker)


class _Job:
    """One document to read, which the awaiting task may cancel while a worker reads it."""

    def __init__(self, mime: str, data: bytes, timeout: float, max_pages: int,
                 max_chars: int) -> None:
        self.mime, self.data, self.timeout = mime, data, timeout
        self.limits = {"max_pages": max_pages, "max_chars": max_chars}
        self.lock = threading.Lock()
        self.cancelled = False
        self.process: subprocess.Popen | None = None

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            if self.process is not None:
                self.process.kill()  # the reading thread sees the pipe close and cleans up


class _Worker:
    """One worker process, started when first needed and again after each kill."""

    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self.process: subprocess.Popen | None = None
        self.busy = threading.Lock()

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.poll() is None else None

    def read(self, job: _Job) -> list[Page]:
        with self.busy:
            if self.process is None or self.process.poll() is not None:
                self._start()
            with job.lock:
                if job.cancelled:
                    raise Unreadable("reading it was cancelled")
                job.process = process = self.process
            deadline = time.monotonic() + job.timeout
            try:
                send(process.stdin.fileno(), {"mime": job.mime, **job.limits}, job.data)
                pages = []
                while "page" in (answer := receive(process.stdout.fileno(), deadline)[0]):
                    pages.append(Page(*answer["page"]))
            except TimeoutError:
                self._kill()
                raise Unreadable(f"it took longer than {job.timeout:g} s to read") from None
            except (EOFError, OSError):
                self._kill()
                raise Unreadable("reading it was cancelled" if job.cancelled else
                                 "the document reader stopped while reading it (it may need "
                                 "more memory than one document may use)") from None
            finally:
                with job.lock:
                    job.process = None
        if "refused" in answer:
            raise Unreadable(answer["refused"])
        return pages

    def stop(self) -> None:
        """End the worker: politely when idle (it exits when its input closes), else killed."""
        if not self.busy.acquire(blocking=False):
            if (process := self.process) is not None:
                process.kill()  # its reading thread cleans up
            return
        try:
            if self.process is not None:
                self.process.stdin.close()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                self._kill()
        finally:
            self.busy.release()

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, _ROOT, str(self.memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )
        try:
            receive(self.process.stdout.fileno(), time.monotonic() + START_TIMEOUT)
        except (EOFError, TimeoutError, OSError, ValueError):
            self._kill()
            raise Unreadable("the document reader could not start (see the app's log)") from None

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
