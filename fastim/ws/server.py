"""The asyncio WebSocket server: serve() listens, take_over() upgrades a connection that
another protocol (fastim.http) has already read the request head of.

Both paths meet in one place: the request head is checked (handshake.check_request), the
101 answer is written, a Connection replaces the protocol on the transport, and the
application's handler runs as a task; the connection is closed when the handler returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

from fastim.ws.connection import Connection, Options
from fastim.ws.deflate import deflate_options, negotiate_server
from fastim.ws.exceptions import ConnectionClosed, InvalidHandshake
from fastim.ws.frames import CloseCode
from fastim.ws.handshake import (
    Headers,
    HeadReader,
    NegotiateExtensions,
    Request,
    SelectSubprotocol,
    accept_headers,
    accept_response,
    check_request,
    parse_request,
    reject_response,
)
from fastim.ws.protocol import Role, WebSocketProtocol

__all__ = ["serve", "take_over", "Server", "ServerOptions", "Handler"]

logger = logging.getLogger("fastim.ws")

Handler = Callable[[Connection], Awaitable[None]]


@dataclass(kw_only=True)
class ServerOptions(Options):
    """Options of serve() and take_over(): those of Options plus the handshake hooks."""

    origins: Sequence[str | None] | None = None  # accepted Origin values; None: any
    check_origin: Callable[[str | None], bool] | None = None
    subprotocols: Sequence[str] = ()  # supported, in order of preference
    select_subprotocol: SelectSubprotocol | None = None


def _negotiator(options: ServerOptions) -> NegotiateExtensions | None:
    settings = deflate_options(options.compression, options.compression_options)
    if settings is None:
        return None
    return lambda offers: negotiate_server(offers, settings)


async def _run_handler(connection: Connection, handler: Handler) -> None:
    """Run the application's handler; close the connection when it returns (1000) or
    fails (1011, logged). A ConnectionClosed escaping the handler is the normal end."""
    code, reason = CloseCode.NORMAL_CLOSURE, ""
    try:
        await handler(connection)
    except ConnectionClosed:
        pass
    except Exception:
        logger.exception("WebSocket handler failed for %s", connection.path)
        code, reason = CloseCode.INTERNAL_ERROR, "internal error"
    await connection.close(code, reason)


def _accept(
    transport: asyncio.Transport,
    request: Request,
    handler: Handler,
    options: ServerOptions,
    *,
    buffered: bytes,
    extra_headers: Sequence[tuple[str, str]],
    server: Server | None,
    raw_headers: bytes | Sequence[tuple[str, str]] | Headers,
) -> Connection:
    accepted = check_request(
        request.method,
        request.headers,
        version=request.version,
        origins=options.origins,
        check_origin=options.check_origin,
        subprotocols=options.subprotocols,
        select_subprotocol=options.select_subprotocol,
        negotiate_extensions=_negotiator(options),
    )
    core = WebSocketProtocol(Role.SERVER, max_size=options.max_size, extension=accepted.extension)
    response_headers = accept_headers(accepted, extra_headers)
    # The connection keeps the header fields as they came (the request head's bytes, or
    # the list fastim.http parsed) and parses them only if the application asks: the
    # parsed request is dropped here, to keep an idle connection small.
    connection = Connection(
        core,
        options,
        target=request.target,
        headers=raw_headers,
        response_headers=response_headers,
        subprotocol=accepted.subprotocol,
    )
    transport.write(accept_response(response_headers))
    transport.set_protocol(connection)
    connection.connection_made(transport)
    if buffered:
        connection.data_received(buffered)
    task = asyncio.get_running_loop().create_task(_run_handler(connection, handler))
    connection.handler_task = task
    if server is not None:
        server._track(connection, task)
    return connection


def take_over(
    transport: asyncio.Transport,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] | Headers,
    handler: Handler,
    *,
    buffered: bytes = b"",
    extra_headers: Sequence[tuple[str, str]] = (),
    **options: Any,
) -> Connection:
    """Upgrade a connection whose HTTP/1.1 request head another protocol has parsed.

    Validates the upgrade request (RFC 6455 §4.2.1). On success writes the 101 response
    (with `extra_headers` added, e.g. Set-Cookie), installs a Connection as the
    transport's protocol, feeds it `buffered` (bytes read past the request head), starts
    `handler(connection)` as a task and returns the connection; the connection is closed
    when the handler returns. On an invalid request raises InvalidHandshake without
    writing anything, so the caller answers with its own error response built from the
    exception's status, reason and headers. `options` are those of serve().
    """
    request = Request(method, target, "HTTP/1.1", Headers(headers))
    return _accept(
        transport,
        request,
        handler,
        ServerOptions(**options),
        buffered=buffered,
        extra_headers=extra_headers,
        server=None,
        raw_headers=headers,
    )


class _ServerHandshake(asyncio.Protocol):
    """Reads one request head from a new TCP connection, then hands over to a Connection
    (or answers with an HTTP error and closes)."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._head = HeadReader(status=431, what="request")
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self._transport = transport = cast(asyncio.Transport, transport)
        if self._server._closing:
            # Accepted just before close() stopped listening: nothing may start now.
            self._reject(_SHUTTING_DOWN)
            return
        self._server._handshakes.add(self)
        timeout = self._server.options.open_timeout
        if timeout is not None:
            # A client that connects and says nothing is dropped after open_timeout.
            self._timer = asyncio.get_running_loop().call_later(timeout, transport.abort)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        try:
            complete = self._head.feed(data)
            if complete is None:
                return
            self._cancel_timer()
            self._server._handshakes.discard(self)
            head, rest = complete
            request = parse_request(head)
            _accept(
                self._transport,
                request,
                self._server.handler,
                self._server.options,
                buffered=rest,
                extra_headers=(),
                server=self._server,
                raw_headers=head,
            )
        except InvalidHandshake as error:
            self._reject(error)

    def _reject(self, error: InvalidHandshake) -> None:
        assert self._transport is not None
        self._cancel_timer()
        self._server._handshakes.discard(self)
        self._transport.write(reject_response(error))
        self._transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._server._handshakes.discard(self)


# The answer to an opening handshake that has not completed when the server closes: its
# handler could only start after wait_closed() has returned, to be destroyed pending
# with the loop (RFC 9110 §15.6.4: 503, the server cannot handle the request now).
_SHUTTING_DOWN = InvalidHandshake(503, "server shutting down")


class Server:
    """A listening WebSocket server, as returned by serve()."""

    def __init__(self, handler: Handler, options: ServerOptions) -> None:
        self.handler = handler
        self.options = options
        self.connections: set[Connection] = set()
        # Handler tasks still running, and their connections.
        self._tasks: dict[asyncio.Task[None], Connection] = {}
        # TCP connections whose opening handshake is still being read; close() answers
        # them 503, so that no handler starts once closing has begun.
        self._handshakes: set[_ServerHandshake] = set()
        self._closing = False
        self._server: asyncio.Server | None = None

    def _track(self, connection: Connection, task: asyncio.Task[None]) -> None:
        self.connections.add(connection)
        self._tasks[task] = connection
        task.add_done_callback(self._forget)  # a bound method: no closure per connection

    def _forget(self, task: asyncio.Task[None]) -> None:
        self.connections.discard(self._tasks.pop(task))

    async def _start(self, host: str | None, port: int, **kwargs: Any) -> Server:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerHandshake(self), host, port, **kwargs
        )
        return self

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        assert self._server is not None
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        """The port of the first listening socket (useful with port=0)."""
        port: int = self.sockets[0].getsockname()[1]
        return port

    def close(self, code: int = CloseCode.GOING_AWAY, reason: str = "server shutting down") -> None:
        """Stop listening, refuse the opening handshakes in progress (503), and start
        closing every open connection with `code` (1001); wait_closed() waits for their
        handlers. A connection is aborted if its peer does not answer the close frame
        within close_timeout (RFC 6455 §7.1.1: TCP is closed once the close frames are
        exchanged; a peer that vanished without closing TCP never sends its own)."""
        assert self._server is not None
        self._closing = True
        self._server.close()
        for handshake in list(self._handshakes):
            handshake._reject(_SHUTTING_DOWN)
        for connection in list(self.connections):
            # No task per connection: starting the close is synchronous, and the
            # handler's task, which wait_closed() awaits, ends with the connection.
            connection._start_close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the server stopped listening and every handler has returned."""
        assert self._server is not None
        await self._server.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


class _Serve:
    """What serve() returns: `await` it for a Server, or use it as `async with`."""

    def __init__(self, server: Server, host: str | None, port: int, kwargs: dict[str, Any]):
        self._server = server
        self._host = host
        self._port = port
        self._kwargs = kwargs

    def __await__(self) -> Generator[Any, None, Server]:
        return self._server._start(self._host, self._port, **self._kwargs).__await__()

    async def __aenter__(self) -> Server:
        return await self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._server.__aexit__(exc_type, exc, tb)


def serve(
    handler: Handler,
    host: str | None,
    port: int,
    *,
    ssl: Any = None,
    reuse_port: bool | None = None,
    **options: Any,
) -> _Serve:
    """Serve WebSocket connections on host:port, running `handler(connection)` for each.

        async with serve(handler, "127.0.0.1", 9001) as server:
            await server.serve_forever()

    or `server = await serve(...)`. `ssl` (an SSLContext) serves wss://. `options` are
    those of ServerOptions (max_size, ping_interval, origins, ...); see docs/library.md.
    Unknown options raise TypeError here.
    """
    server = Server(handler, ServerOptions(**options))
    _negotiator(server.options)  # fail now on an unknown compression
    kwargs: dict[str, Any] = {"ssl": ssl, "reuse_port": reuse_port}
    return _Serve(server, host, port, kwargs)
