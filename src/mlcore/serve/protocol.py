"""uvicorn's httptools HTTP/1.1 protocol with what an inference endpoint needs on top.

httptools (llhttp, in C) parses requests several times faster than h11 (pure Python),
which matters once the model's cost is spread over a batch: the parser and the event
loop (uvloop, see :func:`event_loop`) are then a large share of a small request. On
top of uvicorn's protocol:

* ``TCP_NODELAY`` on every accepted connection, whoever bound the listening socket.
  uvicorn binds its own sockets with ``proto=0`` and asyncio sets the option only on
  sockets created with ``IPPROTO_TCP``, so without this every keep-alive response could
  wait about 40 ms for a delayed ACK (Nagle's algorithm; uvicorn issue 3149, open).
* A deadline for the request line and headers: a client that stalls mid-headers, or
  sends them a byte at a time, is answered 408 and dropped after
  ``header_timeout_seconds`` (a connection that sends nothing at all, too). uvicorn
  alone waits for ever.
* A cap on the size of the request head (431 past it). llhttp has no limit of its own
  and httptools keeps a header in memory until it is complete; h11 stopped at 16 KiB.
* Protocol errors (a malformed request line or header) answered with the same JSON
  error body as every other error, not uvicorn's plain text.

The body's own deadline and the scoring deadline belong to the app (:mod:`mlcore.serve.app`).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
# h11's limit for an incomplete request head, which uvicorn's h11 protocol enforced.
DEFAULT_MAX_HEAD_BYTES = 16 * 1024


def event_loop() -> str:
    """uvicorn's ``loop`` setting: uvloop (libuv, in C), except on Windows where it does not exist."""
    return "asyncio" if sys.platform == "win32" else "uvloop"


class ServeConfig(Config):
    """uvicorn's Config plus the header deadline and head cap (module level: worker processes unpickle it)."""

    def __init__(
        self,
        app: Any,
        *,
        header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS,
        max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, http=EndpointProtocol, loop=event_loop(), **kwargs)
        self.header_timeout_seconds = header_timeout_seconds
        self.max_head_bytes = max_head_bytes


def error_bytes(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP response carrying the JSON error body, closing the connection."""
    body = json.dumps({"error": reason, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode("ascii")
    return head + body


class EndpointProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with TCP_NODELAY, a header deadline, a head cap and JSON protocol errors."""

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout = float(
            getattr(config, "header_timeout_seconds", DEFAULT_HEADER_TIMEOUT_SECONDS)
        )
        self.max_head_bytes = int(getattr(config, "max_head_bytes", DEFAULT_MAX_HEAD_BYTES))
        self._header_deadline: asyncio.TimerHandle | None = None
        # True from a request's complete head until its response is sent.
        self._head_done = False
        # Bytes of an incomplete head, counted from the chunk after the one it began in
        # (a chunk is at most the transport's read size, so the cap is exact to a chunk,
        # and a chunk ending one request and starting the next is never counted against it).
        self._head_bytes = 0
        self._head_began = False
        self._head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._head_done:
            self._head_bytes = 0
            self._cancel_header_deadline()
            return
        # A request has begun (or bytes arrived between requests) but no head is complete.
        self._arm_header_deadline()
        if self._head_began:
            self._head_began = False
            self._head_bytes = 0
        else:
            self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._head_too_large = True
            self.send_400_response("request head too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_began = True

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._cancel_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # Between requests the keep-alive timeout applies, until the next request's first byte.
        self._cancel_header_deadline()
        super().on_response_complete()
        # A pipelined request uvicorn has just started already had its head.
        self._head_done = self.cycle is not None and not self.cycle.response_complete

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            answer = error_bytes(
                431,
                "Request Header Fields Too Large",
                f"the request line and headers exceed {self.max_head_bytes} bytes; "
                "send a shorter URL and fewer or shorter headers",
            )
        else:
            answer = error_bytes(
                400,
                "Bad Request",
                "the request is not valid HTTP/1.1 (a malformed request line or header); "
                "send a well-formed request",
            )
        self._cancel_header_deadline()
        self.transport.write(answer)
        self.transport.close()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self._head_done:
            return
        self.transport.write(
            error_bytes(
                408,
                "Request Timeout",
                f"the request line and headers did not arrive within {self.header_timeout:g} s; "
                "send the whole request head at once",
            )
        )
        self.transport.close()
