"""The asyncio WebSocket client: connect(url) opens TCP (or TLS), performs the opening
handshake (RFC 6455 §4.1) and returns a Connection."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from fastim.ws.connection import Connection, Options
from fastim.ws.deflate import accept_client_response, client_offer, deflate_options
from fastim.ws.exceptions import InvalidHandshake, InvalidURI
from fastim.ws.handshake import (
    Headers,
    HeadReader,
    build_request,
    check_response,
    client_headers,
    generate_key,
    parse_response,
)
from fastim.ws.protocol import Role, WebSocketProtocol

__all__ = ["connect", "ClientOptions", "WebSocketURI", "parse_uri"]


@dataclass(kw_only=True)
class ClientOptions(Options):
    """Options of connect(): those of Options plus what the client's request carries."""

    origin: str | None = None  # Origin header, as a browser would send
    subprotocols: Sequence[str] = ()  # offered, in order of preference
    extra_headers: Sequence[tuple[str, str]] = ()  # added to the request (e.g. Cookie)
    ssl: ssl_module.SSLContext | None = None  # for wss://; default: the system's CAs


@dataclass(frozen=True)
class WebSocketURI:
    """A parsed ws:// or wss:// URI (RFC 6455 §3)."""

    secure: bool
    host: str
    port: int
    resource: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        """The Host header value: the port is left out when it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_uri(uri: str) -> WebSocketURI:
    """Parse `ws://host[:port][/path][?query]` or `wss://...`; InvalidURI otherwise."""
    try:
        split = urlsplit(uri)
        port = split.port
    except ValueError as exc:
        raise InvalidURI(f"{uri!r}: {exc}") from None
    if split.scheme not in ("ws", "wss") or not split.hostname:
        raise InvalidURI(f"{uri!r} is not a ws:// or wss:// URI")
    if split.fragment:
        raise InvalidURI(f"{uri!r}: a WebSocket URI has no fragment (RFC 6455 §3)")
    secure = split.scheme == "wss"
    resource = (split.path or "/") + (f"?{split.query}" if split.query else "")
    return WebSocketURI(secure, split.hostname, port or (443 if secure else 80), resource)


def _accepter(options: ClientOptions) -> tuple[str | None, Callable[[str], Any] | None]:
    settings = deflate_options(options.compression, options.compression_options)
    if settings is None:
        return None, None
    return client_offer(settings), lambda value: accept_client_response(value, settings)


class _ClientHandshake(asyncio.Protocol):
    """Sends the request, reads the response head, then hands over to a Connection."""

    def __init__(self, uri: WebSocketURI, options: ClientOptions) -> None:
        self._uri = uri
        self._options = options
        self._key = generate_key()
        self._offer, self._accept_extensions = _accepter(options)
        self._request_headers = client_headers(
            uri.host_header,
            self._key,
            origin=options.origin,
            subprotocols=options.subprotocols,
            extensions=self._offer,
            extra_headers=options.extra_headers,
        )
        self._head = HeadReader(status=0, what="response")
        self._transport: asyncio.Transport | None = None
        self.done: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self._transport = transport = cast(asyncio.Transport, transport)
        transport.write(build_request(self._uri.resource, self._request_headers))

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        if self.done.done():
            # The opener gave up (open_timeout cancelled it) and aborts the transport;
            # a response already read in the same loop turn is too late to matter.
            return
        try:
            complete = self._head.feed(data)
            if complete is None:
                return
            head, rest = complete
            response = parse_response(head)
            subprotocol, extension = check_response(
                response,
                self._key,
                subprotocols=self._options.subprotocols,
                accept_extensions=self._accept_extensions,
            )
        except InvalidHandshake as error:
            self._fail(error)
            return
        core = WebSocketProtocol(Role.CLIENT, max_size=self._options.max_size, extension=extension)
        connection = Connection(
            core,
            self._options,
            target=self._uri.resource,
            headers=Headers(self._request_headers),
            response_headers=response.headers,
            subprotocol=subprotocol,
        )
        self._transport.set_protocol(connection)
        connection.connection_made(self._transport)
        if rest:
            connection.data_received(rest)
        self.done.set_result(connection)

    def _fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)
        assert self._transport is not None
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(InvalidHandshake(0, "connection closed during the opening handshake"))


async def _open(uri: str, options: ClientOptions) -> Connection:
    parsed = parse_uri(uri)
    ssl: ssl_module.SSLContext | None = None
    if parsed.secure:
        ssl = options.ssl if options.ssl is not None else ssl_module.create_default_context()
    loop = asyncio.get_running_loop()

    async def handshake() -> Connection:
        transport, protocol = await loop.create_connection(
            lambda: _ClientHandshake(parsed, options),
            parsed.host,
            parsed.port,
            ssl=ssl,
            server_hostname=parsed.host if ssl is not None else None,
        )
        try:
            return await protocol.done
        except BaseException:
            transport.abort()
            raise

    return await asyncio.wait_for(handshake(), options.open_timeout)


class _Connect:
    """What connect() returns: `await` it for a Connection, or use it as `async with`
    (the connection is closed at the end of the block)."""

    def __init__(self, uri: str, options: ClientOptions) -> None:
        self._uri = uri
        self._options = options
        self._connection: Connection | None = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return _open(self._uri, self._options).__await__()

    async def __aenter__(self) -> Connection:
        self._connection = await self
        return self._connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._connection is not None
        await self._connection.close()


def connect(uri: str, **options: Any) -> _Connect:
    """Open a WebSocket connection to `uri` (ws:// or wss://).

        async with connect("ws://127.0.0.1:9001/chat") as ws:
            await ws.send("hello")
            print(await ws.recv())

    or `ws = await connect(...)`. Raises InvalidURI for a bad URI, OSError when TCP cannot
    connect, InvalidHandshake when the server refuses or answers wrongly, TimeoutError
    after `open_timeout`. `options` are those of ClientOptions; see docs/library.md.
    """
    client_options = ClientOptions(**options)
    _accepter(client_options)  # fail now on an unknown compression or compression option
    return _Connect(uri, client_options)
