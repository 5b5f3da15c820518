"""A loopback HTTP server answering GETs with JSON from a scripted stand-in (the weather
services, SearXNG): subclasses say what each request gets (`answer`); this serves it.

`delay` in a stand-in holds answers back until `close()`, which releases them so that the
request threads end before the server does.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qsl, urlsplit


class JsonStandIn(ABC):
    """Call `_serve()` from `__post_init__`; then `with stand_in:` or `start()` / `close()`."""

    @abstractmethod
    def answer(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        """The status and JSON body for a GET of `path` with query `params`."""

    def _serve(self) -> None:
        self._released = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.stand_in = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._released.set()  # let delayed answers go, so their threads finish
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the request threads
        self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close() waits for the request threads
    stand_in: JsonStandIn


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        status, body = self.server.stand_in.answer(url.path, dict(parse_qsl(url.query)))
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up waiting (a timeout test)
            pass

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass
