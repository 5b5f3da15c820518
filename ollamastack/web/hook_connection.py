"""One webhook receiver's HTTP/1.1 keep-alive connection, on a blocking socket (a URL's
deliveries run on a thread of their own: `webhooks.py`). Our code writes the request, every
part of which is ours; httptools (llhttp, the parser uvicorn serves with) reads the reply
whatever its framing and says whether the connection may be used again. About 0.07 ms of
CPU a POST on its thread, where h11 on asyncio streams took 0.25 and httpx 0.8
(BENCHMARKS-events.md)."""

from __future__ import annotations

import base64
import logging
import select
import socket
import ssl
import struct
import time

import httptools
import httpx

log = logging.getLogger(__name__)

TIMEOUT = 5.0  # seconds per POST, connecting included
FRESH = 1.0  # seconds after a reply when a kept-alive connection is used without a look
# what a failed POST raises: refused, reset, TLS, DNS, too slow (OSError, TimeoutError among
# them); a reply that is not HTTP (httptools' HttpParserError)
FAILURES = (OSError, httptools.HttpParserError)


class Reply:
    """What httptools reads of one reply: its status, whether it has ended, whether it is
    framed (a length or chunks; otherwise it ends with the connection), whether the
    connection may be used again. 1xx replies that come first are passed over."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.framed = False
        self.ended = False
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # "100 Continue" and the like: the reply comes next
            self.status, self.framed = 0, False
        else:
            self.ended = True
            self.keep_alive = self.parser.should_keep_alive()  # only while it is this reply's

    def read(self, data: bytes) -> None:
        """Feed what came; b"": the server closed the connection."""
        if data:
            self.parser.feed_data(data)
        elif self.status and not self.framed:
            self.ended = True  # a body that ends with the connection has ended
        else:
            raise ConnectionResetError("the connection closed before the reply ended")


class Connection:
    """One keep-alive HTTP/1.1 connection to a URL's server, for one POST at a time (a URL's
    deliveries come one after another from its thread); opened again when the server has
    closed it, and closed after any failure."""

    def __init__(
        self, url: str, *, timeout: float = TIMEOUT, tls: ssl.SSLContext | None = None
    ) -> None:
        """`timeout`: seconds for one POST, connecting included; `tls`: for https (httpx's
        default: the authorities it trusts)."""
        parsed = httpx.URL(url)
        self.timeout = timeout
        https = parsed.scheme == "https"
        self.host, self.port = parsed.host, parsed.port or (443 if https else 80)
        self.tls = (tls or httpx.create_ssl_context()) if https else None
        head = [b"POST " + parsed.raw_path + b" HTTP/1.1", b"Host: " + parsed.netloc]
        if parsed.username or parsed.password:  # as httpx sends a URL's credentials
            basic = base64.b64encode(f"{parsed.username}:{parsed.password}".encode())
            head.append(b"Authorization: Basic " + basic)
        self.head = b"\r\n".join(head) + b"\r\n"
        self.socket: socket.socket | None = None
        self.replied = 0.0  # when the last reply ended (time.monotonic)
        self.opened = 0  # connections made, for tests and curious readers

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        """POST `body`; the reply's status. Raises one of `FAILURES`."""
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (self.head + f"{fields}Content-Length: {len(body)}\r\n\r\n".encode()
                   + body)
        deadline = time.monotonic() + self.timeout
        try:
            if self._usable():
                heard = [False]
                try:
                    return self._exchange(request, deadline, heard)
                except (ConnectionError, httptools.HttpParserError):
                    if heard[0]:
                        raise  # it had begun to answer: that was the answer
                # the server closed it while idle, before we noticed: on a new one
            self._open(deadline)
            return self._exchange(request, deadline, [False])
        except BaseException:
            self.close()
            raise

    def _usable(self) -> bool:
        """Open, and the server has not closed it (or said anything unasked) meanwhile;
        looked at only after `FRESH` s without a reply (no server's keep-alive timeout is
        that short, and the rare miss is sent again on a new connection: `post`)."""
        if self.socket is None:
            return False
        if time.monotonic() - self.replied < FRESH:
            return True
        looking = select.poll()  # not select(): a server's descriptors pass 1024
        looking.register(self.socket, select.POLLIN)
        if not looking.poll(0):
            return True  # nothing has come: still open
        self.socket.setblocking(False)
        try:
            unasked = self.socket.recv(1)  # b"": closed; bytes: nothing should come unasked
        except (BlockingIOError, ssl.SSLWantReadError):
            return True  # TLS records only (session tickets): still open
        except OSError:
            unasked = b""
        finally:
            if self.socket is not None:
                self.socket.setblocking(True)
        if unasked:
            log.warning("webhook %s:%s sent bytes unasked; reconnecting", self.host, self.port)
        self.close()
        return False

    def _open(self, deadline: float) -> None:
        self.close()
        raw = socket.create_connection((self.host, self.port), self._left(deadline))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            opened = (self.tls.wrap_socket(raw, server_hostname=self.host)
                      if self.tls else raw)
        except BaseException:
            raw.close()
            raise
        # a timeout of the kernel's for each send and receive, not Python's (which polls
        # before each call); `_exchange` holds the whole POST to its deadline
        opened.settimeout(None)
        timeval = struct.pack("ll", int(self.timeout), int(self.timeout % 1 * 1e6))
        opened.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        opened.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        self.socket = opened
        self.opened += 1

    def _exchange(self, request: bytes, deadline: float, heard: list[bool]) -> int:
        """Send the request, read the whole reply (past any 1xx); its status."""
        assert self.socket is not None
        try:
            self.socket.sendall(request)
            reply = Reply()
            while not reply.ended:
                data = self.socket.recv(65536)
                heard[0] = heard[0] or bool(data)
                reply.read(data)
                if not reply.ended:
                    self._left(deadline)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise TimeoutError("the receiver took too long") from None  # SO_RCVTIMEO
        if not reply.keep_alive:
            self.close()  # "Connection: close", HTTP/1.0, or a body that ended with it
        self.replied = time.monotonic()
        return reply.status

    @staticmethod
    def _left(deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the receiver took too long")
        return left

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None
