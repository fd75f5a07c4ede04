"""The asyncio side of the HTTP layer: an `asyncio.Protocol` per connection and a `Server`.

The protocol only moves bytes: into the sans-I/O `RequestParser`, and out as responses.
It owns the clocks (header, body and keep-alive timeouts), the ordering of pipelined
requests (one at a time: the parser pauses after each request until it is answered),
flow control in both directions, and the hand-over of upgraded connections to
`fastim.ws`.  A malformed request gets its 4xx with ``Connection: close``; nothing it
does reaches another connection.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from fastim.ws import InvalidHandshake, take_over

from .body import BytesSink, MultipartSink, parse_content_type
from .errors import HTTPError, reason_phrase
from .parser import (
    CONNECTION_CLOSED,
    NEED_DATA,
    Data,
    EndOfMessage,
    RequestHead,
    RequestParser,
)
from .proxy import TrustedProxies, resolve_client
from .request import Request
from .response import (
    Response,
    accepts_gzip,
    current_date,
    date_field,
    error_response,
    is_compressible,
)
from .router import Route, Router, WebSocketRoute

logger = logging.getLogger("fastim.http")
access_logger = logging.getLogger("fastim.access")

def redact_target(target: str) -> str:
    """The request-target with the values of query parameters whose name ends in
    ``token`` (token, access_token, refresh_token...) hidden.

    Names are compared as the application reads them, percent-decoded (`%74oken` is
    `token`, and `+` a space: fastim.http.body.parse_urlencoded), so an encoded name
    cannot carry a token past the redaction."""
    path, question, rest = target.partition("?")
    if not question:
        return target
    query, hash_, fragment = rest.partition("#")
    lowered = query.lower()
    if "token" not in lowered and "%" not in lowered:
        return target  # the common case: nothing to hide, nothing encoded
    fields = query.split("&")
    changed = False
    for index, field in enumerate(fields):
        name, equals, _ = field.partition("=")
        if equals and _is_secret_name(name):
            fields[index] = name + "=REDACTED"
            changed = True
    if not changed:
        return target
    return path + "?" + "&".join(fields) + hash_ + fragment


def _is_secret_name(name: str) -> bool:
    decoded = unquote_plus(name, errors="replace") if "%" in name or "+" in name else name
    return decoded.strip().lower().endswith("token")


@dataclass(frozen=True)
class Limits:
    """Limits and timeouts of the HTTP layer; each maps to an honest status."""

    #: Longest request line (method, target, version), bytes -> 414.
    max_request_line: int = 8190
    #: Largest request head (request line and all header fields), bytes -> 431.
    max_header_size: int = 16384
    #: Most header fields in one request -> 431.
    max_header_count: int = 100
    #: Largest request body, unless the route sets its own, bytes -> 413.
    max_body_size: int = 1024 * 1024
    #: Seconds for a client to send a complete request head (slowloris) -> 408 + close.
    header_timeout: float = 10.0
    #: Seconds for a client to send a complete body, unless the route sets its own.
    body_timeout: float = 60.0
    #: Seconds an idle keep-alive connection is kept open between requests.
    keep_alive_timeout: float = 15.0
    #: Pipelined bytes buffered while a request is being handled before reading pauses.
    max_pipeline_buffer: int = 256 * 1024
    #: Seconds a peer may leave our answers unread (the transport's write buffer above
    #: its high-water mark, with no drain) before the connection is cut.
    write_timeout: float = 30.0
    #: Seconds a graceful shutdown waits for in-flight requests before cutting them.
    shutdown_timeout: float = 10.0
    #: Seconds to keep reading (and discarding) after an error response before closing,
    #: so that the kernel does not reset the connection before the client reads it.
    linger_timeout: float = 2.0


# Responses that never carry a body (RFC 9110 §6.4.1).
_NO_BODY_STATUSES = frozenset({204, 304})
_GZIP_MIN_SIZE = 1024
_FILE_CHUNK = 256 * 1024
_status_lines: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _status_lines.get(status)
    if line is None:
        line = _status_lines[status] = f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode()
    return line


# Field lines already checked and encoded, by (name, value): most responses repeat the same
# few (Content-Type, Cache-Control...). Bounded; cleared when full.
_FIELD_LINES: dict[tuple[str, str], bytes] = {}
_FIELD_LINES_MAX = 1024


def _encode_fields(fields: Iterable[tuple[str, str]]) -> bytes:
    parts = []
    for field in fields:
        if type(field) is not tuple:
            name, value = field  # a list of two: made a tuple, hashable for the cache
            field = (name, value)
        line = _FIELD_LINES.get(field)
        if line is None:
            name, value = field
            # Header injection guard: a CR or LF in a value would start a new field.
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"invalid response header field {name!r}")
            line = f"{name}: {value}\r\n".encode("latin-1")
            if len(_FIELD_LINES) >= _FIELD_LINES_MAX:
                _FIELD_LINES.clear()
            _FIELD_LINES[field] = line
        parts.append(line)
    return b"".join(parts)


class HTTPProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        limits = self.limits
        self.parser = RequestParser(
            max_request_line=limits.max_request_line,
            max_header_size=limits.max_header_size,
            max_header_count=limits.max_header_count,
            max_body_size=limits.max_body_size,
        )
        self.transport: asyncio.Transport | None = None
        #: The TCP peer's address, and the scheme of this connection ("https" under TLS).
        #: A request's own `remote_addr`/`scheme` may differ behind a trusted proxy.
        self.remote_addr = ""
        self.scheme = "https" if server.tls else "http"
        self._https = server.tls  # whether the current request came over HTTPS
        self._peer_is_proxy = False  # whether the peer is a trusted proxy (set when known)
        self.upgraded = False
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_kind = ""  # what the timeout is for; "" when none is armed
        self._deadline = 0.0
        self._head: RequestHead | None = None
        self._request: Request | None = None
        self._route: Route | None = None
        self._ws_route: WebSocketRoute | None = None
        self._pending_error: HTTPError | None = None
        self._sink: BytesSink | MultipartSink | None = None
        # The task answering the current request (None between requests): this
        # connection's one worker task, which answers its requests one after the other.
        self._task: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._job: Coroutine[Any, Any, None] | None = None  # the next answer to run
        self._wakeup: asyncio.Future[None] | None = None  # the idle worker waits on it
        self._started = 0.0
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._draining = False
        self._eof = False

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.remote_addr = str(peer[0])
        proxies = self.server.trusted_proxies
        # Checked once per connection: its peer does not change.
        self._peer_is_proxy = bool(proxies) and proxies.trusts(self.remote_addr)
        self.server.connections.add(self)
        if self.server.closing:
            self._close()
            return
        self._arm_timer(self.limits.header_timeout, "head")

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return  # after an error response: read and drop until the peer goes away
        self.parser.receive_data(data)
        if self._task is not None or self._writing_paused:
            # A request is being answered; keep the pipelined bytes, within a bound.
            if self.parser.buffered_size > self.limits.max_pipeline_buffer:
                self._pause_reading()
            return
        self._advance()

    def eof_received(self) -> bool:
        if self._draining:
            self._close()
            return False
        self._eof = True
        self.parser.receive_eof()
        if self._task is None:
            self._advance()
        # Keep our sending side open: a client may half-close after its last request
        # and still read the answers.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._drop_timer()
        self.server.connections.discard(self)
        if self._sink is not None and self._task is None:
            self._sink.abort()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)  # the idle worker ends

    def pause_writing(self) -> None:
        # The peer is not reading what we write.  Nothing more is parsed or answered
        # until the buffer drains (the answering task waits in `_drain`), and reading
        # stops too, so the kernel's buffers push back on the client.
        self._writing_paused = True
        if not self.upgraded:
            self._pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        elif self._reading_paused and self._task is None and not self.upgraded:
            # Between requests nothing else would resume reading.
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    # -- reading requests ------------------------------------------------------------

    def _advance(self) -> None:
        """Turn buffered bytes into requests until more bytes or an answer are needed."""
        parser = self.parser
        while True:
            try:
                event = parser.next_event()
            except HTTPError as exc:
                self._reject(exc)
                return
            if isinstance(event, Data):
                if self._sink is not None:
                    try:
                        self._sink.feed(event.data)
                    except HTTPError as exc:
                        self._reject(exc)
                        return
            elif isinstance(event, RequestHead):
                if not self._on_head(event):
                    return
            elif isinstance(event, EndOfMessage):
                self._on_message_end()
                return
            elif event is NEED_DATA:
                if parser.waiting_for_head and parser.in_progress and self._timer_kind == "idle":
                    # The next request has begun: from now on it has header_timeout.
                    self._arm_timer(self.limits.header_timeout, "head")
                return
            elif event is CONNECTION_CLOSED:
                self._close()
                return
            else:  # PAUSED: cannot happen while no request is being answered
                return

    def _on_head(self, head: RequestHead) -> bool:
        """Route a request head; False if the request was refused."""
        self._cancel_timer()
        self._head = head
        self._started = self.loop.time()
        self._route = self._ws_route = self._sink = self._pending_error = None
        remote_addr, scheme = self.remote_addr, self.scheme
        if self._peer_is_proxy:
            client = resolve_client(remote_addr, scheme, head.headers,
                                    self.server.trusted_proxies)
            remote_addr, scheme = client.addr, client.scheme
        self._https = scheme == "https"
        request = self._request = Request(
            head.method,
            head.target,
            head.headers,
            http_version=head.http_version,
            remote_addr=remote_addr,
            scheme=scheme,
            app=self.server.app,
        )
        has_body = head.chunked or bool(head.content_length)
        router = self.server.router
        if head.upgrade and "websocket" in head.upgrade and head.method == "GET":
            found = router.resolve_websocket(request.raw_path)
            if found is not None:
                if has_body:
                    self._reject(HTTPError(400, "an upgrade request cannot have a body"))
                    return False
                if head.http_version != "1.1":
                    # RFC 6455 §4.1: the opening handshake is an HTTP/1.1 request (and
                    # HTTP/1.0 has no Upgrade: RFC 9110 §7.8).
                    self._pending_error = HTTPError(
                        400, "a WebSocket upgrade needs HTTP/1.1")
                    return True
                self._ws_route, request.path_params = found
                return True
        try:
            route, request.path_params = router.resolve(head.method, request.raw_path)
        except HTTPError as exc:
            if has_body:
                # Answer now and close rather than read a body nobody wants.
                self._reject(exc)
                return False
            self._pending_error = exc
            return True
        self._route = route
        limit = route.max_body_size if route.max_body_size is not None else (
            self.limits.max_body_size
        )
        self.parser.max_body_size = limit
        if not has_body:
            return True
        if head.content_length is not None and head.content_length > limit:
            self._reject(HTTPError(413, "request body too large"))
            return False
        media_type, params = parse_content_type(head.headers.get("content-type"))
        try:
            if media_type == "multipart/form-data":
                boundary = params.get("boundary")
                if not boundary:
                    raise HTTPError(400, "multipart body without a boundary")
                self._sink = MultipartSink(boundary, self.server.tmp_dir)
            else:
                self._sink = BytesSink()
        except HTTPError as exc:
            self._reject(exc)
            return False
        if head.expect_continue and self.parser.buffered_size == 0:
            # RFC 9110 §10.1.1: tell the client we will read the body it is holding back.
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        timeout = route.body_timeout if route.body_timeout is not None else (
            self.limits.body_timeout
        )
        self._arm_timer(timeout, "body")
        return True

    def _on_message_end(self) -> None:
        self._cancel_timer()
        request = self._request
        assert request is not None and self._head is not None
        if self._pending_error is not None:
            error = self._pending_error
            self._task = self._run(self._respond(error_response(error)))
            return
        if self._ws_route is not None:
            self._task = self._run(self._upgrade(request, self._ws_route))
            return
        sink = self._sink
        if sink is not None:
            try:
                request.body = sink.finish()
            except HTTPError as exc:
                self._reject(exc)
                return
            if isinstance(sink, MultipartSink):
                request._form_fields = sink.fields
                request.files = sink.files
        assert self._route is not None
        self._task = self._run(self._handle(request, self._route))

    def _run(self, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Answer the current request with `job` in this connection's worker task.

        One task per connection rather than one per request (a task costs about 3 µs to
        create and schedule here, a third of a small request): requests on a connection
        are answered one at a time anyway, in order (RFC 9112 §9.3.2)."""
        self._job = job
        if self._worker is None:
            self._worker = self.loop.create_task(self._work())
        elif self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        return self._worker

    async def _work(self) -> None:
        """The worker: runs each job as it is given, until the connection is closed or
        handed over to fastim.ws."""
        while True:
            job = self._job
            if job is None:
                if self.upgraded or self.closed.done():
                    return
                self._wakeup = self.loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
                continue
            self._job = None
            await job

    # -- answering -------------------------------------------------------------------

    async def _handle(self, request: Request, route: Route) -> None:
        try:
            response = await route.handler(request)
            if not isinstance(response, Response):
                raise TypeError(f"handler returned {type(response).__name__}, not Response")
        except HTTPError as exc:
            response = error_response(exc)
        except Exception:
            logger.exception(
                "error in handler for %s %s", request.method, redact_target(request.target)
            )
            response = error_response(HTTPError(500, "internal server error"))
        await self._respond(response)

    async def _respond(self, response: Response) -> None:
        """Send `response` to the current request, then read the next one or close."""
        head = self._head
        assert head is not None
        keep_alive = head.keep_alive and not self.server.closing
        if self._sink is not None:
            # The handler is done with the uploads it did not save: delete them now,
            # before the client hears back.
            self._sink.abort()
            self._sink = None
        try:
            await self._send(head, response, keep_alive)
            # The next pipelined request waits until the peer has read this answer (down
            # to the low-water mark): otherwise a client that sends and never reads makes
            # us queue answers without limit.
            await self._drain()
        except Exception:
            logger.exception("error sending a response")
            keep_alive = False
        finally:
            if response.file is not None:
                response.file.close()
        self._task = None
        self._request = self._head = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not keep_alive:
            self._close()
            return
        self.parser.start_next_cycle()
        self._arm_timer(self.limits.keep_alive_timeout, "idle")
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._advance()

    async def _send(self, head: RequestHead, response: Response, keep_alive: bool) -> None:
        transport = self.transport
        assert transport is not None
        if transport.is_closing():
            return
        try:
            encoded = _encode_fields(response.headers)
        except (ValueError, UnicodeEncodeError):
            logger.exception("invalid header in a response to %s", redact_target(head.target))
            response = error_response(HTTPError(500, "internal server error"))
            encoded = _encode_fields(response.headers)
        status = response.status
        body = response.body
        if (
            self.server.gzip
            and response.compress
            and len(body) >= _GZIP_MIN_SIZE
            and status == 200
        ):
            content_type = response.get_header("content-type") or ""
            if (
                is_compressible(content_type)
                and response.get_header("content-encoding") is None
                and accepts_gzip(head.headers.get_all("accept-encoding"))
            ):
                body = gzip.compress(body, 6, mtime=0)
                encoded += b"Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
        send_body = head.method != "HEAD" and status not in _NO_BODY_STATUSES
        # The fields the server adds are known to be well-formed: no check, no lookup.
        parts = [_status_line(status), encoded, self.server.always_fields, date_field()]
        if self._https:
            parts.append(self.server.https_fields)
        if status not in _NO_BODY_STATUSES:
            length = response.file.length if response.file is not None else len(body)
            parts.append(b"Content-Length: %d\r\n" % length)
        if not keep_alive:
            parts.append(b"Connection: close\r\n")
        elif head.http_version == "1.0":
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        head_bytes = b"".join(parts)
        if response.file is None or not send_body:
            # Logged before the write, so the line exists once the client has its answer.
            self._log(head, status, len(body) if send_body else 0)
            if not send_body:
                transport.write(head_bytes)
            elif len(body) <= 64 * 1024:
                transport.write(head_bytes + body)
            else:
                transport.write(head_bytes)
                transport.write(body)
        else:
            transport.write(head_bytes)
            self._log(head, status, await self._send_file(response))

    async def _send_file(self, response: Response) -> int:
        body = response.file
        assert body is not None and self.transport is not None
        body.file.seek(body.offset)
        remaining = body.length
        sent = 0
        while remaining > 0:
            chunk = body.file.read(min(_FILE_CHUNK, remaining))
            if not chunk:
                break  # the file shrank while being sent; the client sees a short body
            if self.transport.is_closing():
                break
            self.transport.write(chunk)
            sent += len(chunk)
            remaining -= len(chunk)
            if self._writing_paused:
                await self._drain()
        if remaining > 0 and self.transport is not None:
            # Content-Length promised more bytes: the connection cannot be reused.
            self.transport.abort()
        return sent

    async def _drain(self) -> None:
        """Wait until the write buffer is below its low-water mark; a peer that reads
        nothing for `write_timeout` seconds has its connection cut (see `_on_timer`)."""
        if not self._writing_paused or self.transport is None or self.transport.is_closing():
            return
        self._drain_waiter = self.loop.create_future()
        self._arm_timer(self.limits.write_timeout, "write")
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None
            if self._timer_kind == "write":
                self._cancel_timer()

    async def _upgrade(self, request: Request, route: WebSocketRoute) -> None:
        """Run the pre-upgrade check, then give the transport to fastim.ws."""
        extra_headers: list[tuple[str, str]] = []
        try:
            if route.before_upgrade is not None:
                extra_headers = list(await route.before_upgrade(request) or ())
        except HTTPError as exc:
            await self._respond(error_response(exc))
            return
        except Exception:
            logger.exception("error in the pre-upgrade check of %s", route.path)
            await self._respond(error_response(HTTPError(500, "internal server error")))
            return
        if self.server.closing:
            # The server began to shut down while the check ran: its WebSockets are
            # already being closed, and one opened now would be missed and keep it from
            # exiting (uvloop's wait_closed waits for every transport). Try another node.
            await self._respond(error_response(HTTPError(503, "the server is shutting down")))
            return
        transport = self.transport
        head = self._head
        assert transport is not None and head is not None
        if transport.is_closing():
            self._task = None
            return
        server = self.server
        handler = route.handler

        async def run(connection: Any) -> None:
            try:
                await handler(connection, request)
            finally:
                server.websockets.discard(connection)

        if self._reading_paused:
            # The WebSocket connection does its own flow control from here on.
            self._reading_paused = False
            transport.resume_reading()
        try:
            connection = take_over(
                transport,
                head.method,
                head.target,
                head.headers.raw,
                run,
                buffered=self.parser.trailing_data,
                extra_headers=extra_headers,
                **route.options,
            )
        except InvalidHandshake as exc:
            error = HTTPError(exc.status, exc.reason, exc.headers)
            await self._respond(error_response(error))
            return
        except Exception:
            # The 101 may already be on the wire: no HTTP answer is possible any more.
            logger.exception("WebSocket hand-over failed for %s", redact_target(head.target))
            self._task = None
            transport.abort()
            return
        self.parser.detach()
        self.upgraded = True
        self._task = None
        self._drop_timer()
        server.connections.discard(self)
        server.websockets.add(connection)
        if not self.closed.done():
            self.closed.set_result(None)
        self._log(head, 101, 0)

    def _reject(self, error: HTTPError) -> None:
        """Answer a request the parser or the router refused, then close."""
        self._cancel_timer()
        if self._sink is not None:
            self._sink.abort()
            self._sink = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        # The head of the refused request, if it got that far.
        head = self._head if self._request is not None else None
        response = error_response(error)
        # Before a head there is no forwarded scheme: the connection's own decides.
        https = self._https if head is not None else self.scheme == "https"
        fields = [*response.headers, *self.server.headers,
                  *(self.server.https_headers if https else ()), ("Date", current_date()),
                  ("Content-Length", str(len(response.body))), ("Connection", "close")]
        if head is not None:
            self._log(head, error.status, len(response.body))
        else:
            access_logger.info('%s "-" %d %d', self.remote_addr, error.status, len(response.body))
        transport.write(
            b"".join((_status_line(error.status), _encode_fields(fields), b"\r\n", response.body))
        )
        self._linger()

    def _linger(self) -> None:
        """Half-close and drop whatever the client still sends, briefly, then close.

        Closing with unread bytes in the socket makes the kernel send a reset, which
        may destroy the error response before the client has read it.
        """
        transport = self.transport
        assert transport is not None
        self._draining = True
        if not self._eof and transport.can_write_eof():
            transport.write_eof()
            if self._reading_paused:
                self._reading_paused = False
                transport.resume_reading()
            self._arm_timer(self.limits.linger_timeout, "linger")
        else:
            self._close()

    # -- timers and flow control -----------------------------------------------------

    # One timer at a time, lazily: arming only moves a deadline, and the TimerHandle is
    # made again only when it fires early (it then sleeps on to the deadline) or must fire
    # sooner. A keep-alive request cancels and re-arms a timeout twice; with a handle each
    # time that cost about 1 µs of its 10.

    def _arm_timer(self, delay: float, kind: str) -> None:
        deadline = self.loop.time() + delay
        self._timer_kind = kind
        self._deadline = deadline
        if self._timer is not None:
            if self._timer.when() <= deadline:
                return  # it fires first and sleeps on until the deadline
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        self._timer_kind = ""  # the handle, if any, fires and finds nothing to do

    def _drop_timer(self) -> None:
        """No more timeouts on this connection: cancel the handle itself too."""
        self._timer_kind = ""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        kind = self._timer_kind
        if not kind:
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        self._timer_kind = ""
        if kind == "write":
            # The peer has read nothing of our answers for write_timeout seconds.  A
            # plain close would wait for the buffer to flush, i.e. for ever: cut it.
            logger.info("closing %s: it has not read its answers for %.1f s",
                        self.remote_addr, self.limits.write_timeout)
            if self.transport is not None:
                self.transport.abort()
        elif kind in ("head", "body") and self.parser.in_progress:
            # Too slow: a slowloris or a stalled client.  It gets a 408, then we close.
            self._reject(HTTPError(408, "request timeout"))
        else:
            self._close()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _close(self) -> None:
        self._cancel_timer()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            if transport.get_write_buffer_size() > 0:
                # close() flushes first; a peer that never reads would keep the
                # connection (and its buffer) for ever.
                self._arm_timer(self.limits.write_timeout, "write")

    # -- shutdown --------------------------------------------------------------------

    def shutdown(self) -> None:
        """Close now if idle; otherwise the current response will end the connection."""
        if self.upgraded:
            return
        if self._task is None and not self.parser.in_progress:
            self._close()

    def abort(self) -> None:
        """Cut the connection (the graceful shutdown ran out of time)."""
        if self._job is not None:  # given to the worker, not started: never will be
            self._job.close()
            self._job = None
        if self._task is not None:
            self._task.cancel()
        if self.transport is not None:
            self.transport.abort()

    def _log(self, head: RequestHead, status: int, size: int) -> None:
        if access_logger.isEnabledFor(logging.INFO):
            elapsed = (self.loop.time() - self._started) * 1000
            # The client's address as resolved for this request (behind a trusted proxy,
            # the forwarded one), not the proxy's.
            request = self._request
            address = request.remote_addr if request is not None else self.remote_addr
            access_logger.info(
                '%s "%s %s HTTP/%s" %d %d %.1fms',
                address, head.method, redact_target(head.target),
                head.http_version, status, size, elapsed,
            )


class Server:
    """An HTTP/1.1 server for a `Router`, WebSocket routes included.

    >>> server = Server(router)
    >>> await server.start("127.0.0.1", 8081)
    >>> await server.shutdown()
    """

    def __init__(
        self,
        router: Router,
        *,
        limits: Limits | None = None,
        app: Any = None,
        gzip: bool = True,
        tmp_dir: str | Path | None = None,
        headers: Iterable[tuple[str, str]] = (),
        https_headers: Iterable[tuple[str, str]] = (),
        trusted_proxies: TrustedProxies | Iterable[str] = (),
    ) -> None:
        self.router = router
        self.limits = limits or Limits()
        #: Header fields added to every response, errors included; checked and encoded
        #: once here.
        self.headers = [(str(name), str(value)) for name, value in headers]
        self.always_fields = _encode_fields(self.headers)
        #: Header fields added to every response to a request that came over HTTPS, by
        #: our own TLS or through a trusted proxy (e.g. Strict-Transport-Security, which
        #: must not be sent over plain HTTP: RFC 6797 §7.2).
        self.https_headers = [(str(name), str(value)) for name, value in https_headers]
        self.https_fields = _encode_fields(self.https_headers)
        #: Peers whose X-Forwarded-For / X-Forwarded-Proto / Forwarded fields name the
        #: request's client (fastim/http/proxy.py); none by default.
        self.trusted_proxies = (
            trusted_proxies if isinstance(trusted_proxies, TrustedProxies)
            else TrustedProxies(trusted_proxies)
        )
        #: Whether the server speaks TLS itself (set by `start(ssl=...)`).
        self.tls = False
        #: Given to every request as ``request.app``.
        self.app = app
        #: Whether textual responses are gzipped for clients that accept it.
        self.gzip = gzip
        import tempfile

        #: Where multipart file parts are written while they arrive.
        self.tmp_dir = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
        #: Open HTTP connections.
        self.connections: set[HTTPProtocol] = set()
        #: WebSocket connections handed to fastim.ws and still running their handler.
        self.websockets: set[Any] = set()
        self.closing = False
        self._server: asyncio.AbstractServer | None = None
        self._port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        """Listen on (host, port); port 0 picks a free port (see `port`)."""
        loop = asyncio.get_running_loop()
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.tls = kwargs.get("ssl") is not None
        # asyncio's default backlog (100) overflows when thousands of clients come
        # back at once (a node drained or lost behind a proxy): the kernel then drops
        # SYNs and the clients wait out their 1 s, 3 s... retransmits. The kernel caps
        # it at net.core.somaxconn.
        kwargs.setdefault("backlog", 4096)
        self._server = await loop.create_server(
            lambda: HTTPProtocol(self), host, port, reuse_address=True, **kwargs
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    @property
    def port(self) -> int:
        """The port of the first listening socket (known once started)."""
        return self._port

    async def serve_forever(self) -> None:
        """Wait until the server is shut down."""
        assert self._server is not None
        try:
            await self._server.serve_forever()
        except asyncio.CancelledError:
            if not self.closing:
                raise

    async def close_websockets(
        self, code: int = 1001, reason: str = "server shutting down", timeout: float = 5.0
    ) -> None:
        """Close every WebSocket connection (1001 Going Away, RFC 6455 §7.4.1)."""
        connections = list(self.websockets)
        if not connections:
            return

        async def close_one(connection: Any) -> None:
            try:
                await asyncio.wait_for(connection.close(code, reason), timeout)
            except Exception:
                logger.debug("closing a WebSocket failed", exc_info=True)

        await asyncio.gather(*(close_one(c) for c in connections))

    async def shutdown(self, timeout: float | None = None, code: int = 1001,
                       reason: str = "server shutting down") -> None:
        """Stop accepting, close idle connections and WebSockets (`code`, by default
        1001 Going Away), let in-flight requests finish for up to `timeout` seconds, then
        cut what is left."""
        if timeout is None:
            timeout = self.limits.shutdown_timeout
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.shutdown()
        await self.close_websockets(code, reason, timeout=timeout)
        pending = [c.closed for c in self.connections if not c.closed.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()


async def serve(router: Router, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Server:
    """Start a `Server` for `router` on (host, port) and return it."""
    server = Server(router, **options)
    await server.start(host, port)
    return server
