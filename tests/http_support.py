"""Test support for the HTTP layer: a real server on a free port in a background thread,
and a blocking socket client that reads raw HTTP/1.1 responses."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastim.http import Router, Server

SAFETY_TIMEOUT = 10.0  # a safety net only: no test asserts on time


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class ServerThread:
    """Runs a `Server` for `router` on its own event loop in a daemon thread."""

    def __init__(self, router: Router, loop_kind: str = "asyncio", **options: Any) -> None:
        self.loop = new_loop(loop_kind)
        self.server = Server(router, **options)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start("127.0.0.1", 0))
        except BaseException as exc:  # pragma: no cover - reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(SAFETY_TIMEOUT)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.loop.is_closed() and self.loop.is_running():
            self.call(self.server.shutdown(timeout=2.0))
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(SAFETY_TIMEOUT)

    @property
    def port(self) -> int:
        return self.server.port

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(SAFETY_TIMEOUT)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=SAFETY_TIMEOUT)
        return sock


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw_head: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Client:
    """A blocking HTTP/1.1 client over one socket that reads responses one by one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def read_response(self, *, head_request: bool = False) -> RawResponse:
        """Read one response (interim 1xx responses are returned too)."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed before a response head: {self.buffer!r}")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        assert version == "HTTP/1.1", lines[0]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        response = RawResponse(int(status), reason, headers, raw_head=head)
        length = response.header("content-length")
        if head_request or response.status in (101, 204, 304) or response.status < 200:
            return response
        assert length is not None, f"response without Content-Length: {head!r}"
        while len(self.buffer) < int(length):
            if not self._fill():
                raise ConnectionError("closed in the middle of a response body")
        response.body, self.buffer = self.buffer[: int(length)], self.buffer[int(length):]
        return response

    def closed_by_peer(self) -> bool:
        """True if the server closed the connection (reads EOF, or a reset)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def request(
    method: str,
    target: str,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    *,
    host: str = "test",
) -> bytes:
    """Serialize a simple request with a Content-Length body."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(server: ServerThread, data: bytes, **kwargs: Any) -> RawResponse:
    """Send `data` on a new connection and read one response."""
    with server.connect() as sock:
        client = Client(sock)
        client.send(data)
        return client.read_response(**kwargs)
