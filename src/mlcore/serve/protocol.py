"""uvicorn's HTTP/1.1 protocol with the three things an inference endpoint needs on top.

* ``TCP_NODELAY`` on every accepted connection, whoever bound the listening socket.
  uvicorn binds its own sockets with ``proto=0`` and asyncio sets the option only on
  sockets created with ``IPPROTO_TCP``, so without this every keep-alive response waits
  about 40 ms for a delayed ACK (Nagle's algorithm; uvicorn issue 3149, open).
* A deadline for the request line and headers: a client that stalls mid-headers, or
  sends them a byte at a time, is answered 408 and dropped after
  ``header_timeout_seconds`` (a connection that sends nothing at all, too). uvicorn
  alone waits for ever.
* Protocol errors (an h11 parse error: a malformed request line or header) answered
  with the same JSON error body as every other error, not uvicorn's plain text.

The body's own deadline and the scoring deadline belong to the app (:mod:`mlcore.serve.app`).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0


class ServeConfig(Config):
    """uvicorn's Config plus the header deadline (a module-level class: worker processes unpickle it)."""

    def __init__(
        self,
        app: Any,
        *,
        header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, http=EndpointProtocol, **kwargs)
        self.header_timeout_seconds = header_timeout_seconds


def error_bytes(status: int, reason: str, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a JSON error that closes the connection."""
    body = json.dumps({"error": reason, "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return headers, body


class EndpointProtocol(H11Protocol):
    """H11Protocol with TCP_NODELAY, a header deadline and JSON protocol errors."""

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout = float(
            getattr(config, "header_timeout_seconds", DEFAULT_HEADER_TIMEOUT_SECONDS)
        )
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()  # a request has begun but its head is not complete
        else:
            self._cancel_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # Between requests the keep-alive timeout applies, until the next request's first byte.
        self._cancel_header_deadline()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        headers, body = error_bytes(
            400,
            "Bad Request",
            "the request is not valid HTTP/1.1 (a malformed request line or header); "
            "send a well-formed request",
        )
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers)) or b"")
        self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
        self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
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
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        # h11 cannot send a response before it has read a request, so the bytes are written here.
        headers, body = error_bytes(
            408,
            "Request Timeout",
            f"the request line and headers did not arrive within {self.header_timeout:g} s; "
            "send the whole request head at once",
        )
        head = b"HTTP/1.1 408 Request Timeout\r\n" + b"".join(
            name + b": " + value + b"\r\n" for name, value in headers
        )
        self.transport.write(head + b"\r\n" + body)
        self.transport.close()
