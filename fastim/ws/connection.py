"""A WebSocket connection on asyncio: an asyncio.Protocol that moves bytes between the
transport and the sans-I/O core (protocol.py), with backpressure, heartbeats and timeouts.

Nothing here parses or builds frames; it decides *when*: when to read (a bounded queue of
received messages pauses the transport), when to write (send() waits while the transport's
buffer is over its high-water mark), when to answer a close, and when to close TCP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs

from fastim.ws import frames
from fastim.ws.awaitables import done
from fastim.ws.exceptions import ConnectionClosed, ConnectionClosedOK, connection_closed
from fastim.ws.frames import CloseCode, Frame
from fastim.ws.handshake import Headers, parse_request
from fastim.ws.prepared import PreparedFrame
from fastim.ws.protocol import (
    DEFAULT_MAX_SIZE,
    CloseReceived,
    PongReceived,
    ProtocolFailure,
    Role,
    State,
    WebSocketProtocol,
)

__all__ = ["Connection", "Options", "FrameHook", "MessageCallback"]

logger = logging.getLogger("fastim.ws")

# Called with (connection, "recv" | "send", frame) for every frame: the CLI's --trace.
FrameHook = Callable[["Connection", str, Frame], None]

# Called with each message received, instead of queueing it (Connection.set_message_callback).
MessageCallback = Callable[[str | bytes], None]

# The future a receiver waits on, one per wait. Made as `Future()`, bound to the running
# loop, rather than `loop.create_future()`: the future type takes `loop` only as a keyword,
# and a type called with a keyword builds a dict for it (CPython 3.11: no vectorcall for
# asyncio.Future); on uvloop create_future() is one more call around the same. A recv()
# always runs in the connection's loop, so the two futures are the same.
_Future = asyncio.Future


class _TaskRunning:
    """True while a task of this thread runs (asyncio.current_task() is not None)."""

    def __bool__(self) -> bool:
        return asyncio.current_task() is not None


# Whether a task is running, in one cheap test (see _resolve_waiter). Before Python 3.14
# asyncio's tasks enter themselves in one dict, {loop: task}, true while any runs (on 3.11
# current_task() is a Python function costing about a tenth of a message's instructions).
# A task running on another thread's loop makes the dict true as well; a message then
# takes the loop's way, which is only slower. From 3.14 the current task is kept per
# thread, and current_task() is in C.
_task_running: object = (
    asyncio.tasks._current_tasks  # type: ignore[attr-defined]
    if sys.version_info < (3, 14)
    else _TaskRunning()
)


# Waking a receiver. When data_received hands a message to a task waiting in recv() or
# `async for`, it runs that task's next step itself, at once, rather than leaving the
# future to schedule it with the loop's call_soon: in a request/response exchange that is
# a Handle, a dict for call_soon's `context=` keyword and a turn of the ready queue saved
# per message, and the answer the task writes goes out in the same turn as the read. The
# step is the task's own wake-up callback, taken off the future and called in the task's
# context, exactly as the loop would have called it; only earlier. It needs the loop to
# be between tasks, as it is when a transport calls data_received: when a task is running
# (data_received called from a task, as some tests do) asyncio refuses to enter another
# one (RuntimeError, before the step runs) and the wake-up goes to call_soon after all.


def _hand_over_python(
    waiter: asyncio.Future[Any], message: object, loop: asyncio.AbstractEventLoop
) -> bool:
    """Give the task awaiting `waiter` its message and run it now (see "Waking a
    receiver"); False, touching nothing, unless the waiter has exactly one callback, the
    task's wake-up (none: the task was cancelled). _speedups.hand_over in C."""
    callbacks = waiter._callbacks
    if callbacks is None or len(callbacks) != 1:
        return False
    wakeup, context = callbacks[0]
    waiter.remove_done_callback(wakeup)
    waiter.set_result(message)
    try:
        context.run(wakeup, waiter)
    except RuntimeError:  # a task is running, or its context is in use: the loop's way
        loop.call_soon(wakeup, waiter, context=context)
    return True


_hand_over = frames.from_speedups("hand_over", _hand_over_python, frames._SPEEDUPS)


# What send() returns when the frame is written and nothing is left to wait for.
_SENT = done(None)


@dataclass(kw_only=True)
class Options:
    """Options shared by serve(), take_over() and connect(); see docs/library.md."""

    max_size: int | None = DEFAULT_MAX_SIZE  # largest incoming message, bytes
    max_queue: int = 16  # received messages buffered before reading pauses
    write_limit: int = 64 * 1024  # transport high-water mark; send() waits above it
    ping_interval: float | None = 20.0  # ping after this long without incoming data
    ping_timeout: float | None = 20.0  # fail with 1011 if its pong takes longer
    close_timeout: float = 10.0  # longest wait for the close handshake and TCP close
    open_timeout: float | None = 10.0  # longest wait for the opening handshake
    # permessage-deflate (RFC 7692), on by default as browsers expect; None turns it off.
    compression: str | None = "deflate"
    # fields of fastim.ws.deflate.DeflateOptions, e.g. {"threshold": 0}
    compression_options: dict[str, Any] = field(default_factory=dict)
    on_frame: FrameHook | None = None


# Pending writes beyond this many bytes go to the transport at once, without waiting for the
# end of the loop's turn: coalescing saves system calls on small frames, and above this size
# they are cheap beside the bytes; it also bounds what waits outside the transport's flow
# control.
COALESCE_LIMIT = 16 * 1024

# A frame written at once (see send) up to this payload size is joined to its header first:
# one buffer for the transport; copying a few KiB costs less than a writev of two.
DIRECT_WRITE_LIMIT = 4 * 1024

# A frame that waits in `_pending` is joined to its header below this payload size: a few
# bytes copied cost less than a list item.
JOIN_LIMIT = 1024


class _Flusher:
    """Once per turn of an event loop, flushes the connections that wrote during it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queued: list[Connection] = []

    def queue(self, connection: Connection) -> None:
        if not self._queued:
            self._loop.call_soon(self._flush)
        self._queued.append(connection)

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        for connection in queued:
            connection._flush_queued = False
            connection._flush()


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = (
    weakref.WeakKeyDictionary()
)


def _flusher(loop: asyncio.AbstractEventLoop) -> _Flusher:
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = _Flusher(loop)
    return flusher


class _Heartbeat:
    """One timer ticking every `interval` seconds for the connections of a loop that
    keep alive at that interval (see Connection._heartbeat_tick)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._loop = loop
        self._interval = interval
        self._members: dict[Connection, None] = {}  # insertion-ordered set
        self._timer: asyncio.TimerHandle | None = None

    def add(self, connection: Connection) -> None:
        self._members[connection] = None
        if self._timer is None:
            self._timer = self._loop.call_later(self._interval, self._tick)

    def discard(self, connection: Connection) -> None:
        self._members.pop(connection, None)

    def _tick(self) -> None:
        self._timer = None
        for connection in list(self._members):
            connection._heartbeat_tick()
        if self._members:
            self._timer = self._loop.call_later(self._interval, self._tick)


_heartbeats: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[float, _Heartbeat]
] = weakref.WeakKeyDictionary()


def _heartbeat(loop: asyncio.AbstractEventLoop, interval: float) -> _Heartbeat:
    by_interval = _heartbeats.get(loop)
    if by_interval is None:
        by_interval = _heartbeats[loop] = {}
    heartbeat = by_interval.get(interval)
    if heartbeat is None:
        heartbeat = by_interval[interval] = _Heartbeat(loop, interval)
    return heartbeat


class _End:
    """Marks, in the queue of received messages, where the peer's close frame or a
    protocol error came: messages before it are delivered first."""


_END = _End()


class Connection(asyncio.Protocol):
    """An open WebSocket connection.

    Receive with `await recv()` or `async for message in connection`; send with
    `await send(message)` (str goes as a text message, bytes as binary); `await ping()`;
    `await close(code, reason)`. After the end, `close_code` and `close_reason` say why.

    `path`, `query` and `headers` describe the opening request (on a client, the request
    it sent); `response_headers` the 101 answer; `subprotocol` the one agreed, if any;
    `remote_address` the peer's (host, port). Applications may set attributes of their
    own on a connection (e.g. `connection.user = ...`).
    """

    # Slots keep an idle connection small (docs/performance.md: at most 5 KiB); __dict__ stays
    # for the attributes applications add (connection.user = ...), made on first use.
    __slots__ = (
        "path",
        "subprotocol",
        "remote_address",
        "handler_task",
        "_core",
        "_options",
        "_loop",
        "_query",
        "_headers",
        "_response_headers",
        "_transport",
        "_pending",
        "_pending_size",
        "_flush_queued",
        "_write_now",
        "_direct",
        "_plain",
        "_message_callback",
        "_flusher",
        "_messages",
        "_recv_waiter",
        "_waiter_takes_message",
        "_reading_paused",
        "_read_held",
        "_writing_paused",
        "_drain_waiters",
        "_lost",
        "_closed",
        "_pings",
        "_received_since_tick",
        "_heartbeat",
        "_keepalive",
        "_ping_deadline",
        "_end_deadline",
        "_close_deadline",
        "_tcp_closing",
        "_share_below",
        "__dict__",
    )

    def __init__(
        self,
        core: WebSocketProtocol,
        options: Options,
        *,
        target: str = "/",
        headers: Headers | bytes | Sequence[tuple[str, str]] | None = None,
        response_headers: Headers | Sequence[tuple[str, str]] | None = None,
        subprotocol: str | None = None,
    ) -> None:
        self._core = core
        self._options = options
        self._loop = asyncio.get_running_loop()
        path, _, query = target.partition("?")
        self.path: str = path.partition("#")[0] or "/"
        # The opening request's query and header fields are kept as they came (the query
        # string; the raw request head, or the fields as a list) and parsed on first use:
        # most connections never look, and idle ones should stay small.
        self._query: dict[str, list[str]] | str = query.partition("#")[0]
        self._headers = headers if headers is not None else Headers()
        self._response_headers = response_headers if response_headers is not None else ()
        self.subprotocol = subprotocol
        self.remote_address: Any = None
        self.handler_task: asyncio.Task[None] | None = None

        self._transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []  # frames not yet handed to the transport
        self._pending_size = 0
        self._flush_queued = False
        # send() may write at once (see there): set where recv() takes the last queued
        # message while _direct holds and nothing is pending; cleared by every write that
        # waits in _pending, so that send() tests this one attribute.
        self._write_now = False
        # Nothing forbids a direct write: TCP attached and not lost, our close frame not
        # sent, the transport's buffer under write_limit. Recomputed only where one of
        # them changes (connection_made, _write_close, pause/resume_writing, connection_lost).
        self._direct = False
        self._message_callback: MessageCallback | None = None
        self._flusher = _flusher(self._loop)
        # Received messages (a list: at most max_queue, and an empty list is 56 bytes where
        # an empty deque is 600), then _END where the peer's close or an error came.
        self._messages: list[str | bytes | _End] = []
        # The future a receiver waits on while the queue is empty. Whoever wakes it clears
        # this, and its result is the message itself (data_received's fast path) or None
        # (look at the queue and the state again).
        self._recv_waiter: asyncio.Future[str | bytes | None] | None = None
        # Whether _recv_waiter is the one __anext__ returned, resolved with the message
        # itself, or recv()'s, woken with None to look at the queue again.
        self._waiter_takes_message = False
        self._reading_paused = False  # the queue of messages is full
        self._read_held = False  # reading paused while the write buffer drains (below)
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._lost = False
        self._closed: asyncio.Future[None] | None = None  # made when somebody waits
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] | None = None
        self._received_since_tick = False
        self._heartbeat: _Heartbeat | None = None
        self._keepalive: asyncio.Future[float] | None = None  # its ping awaits a pong
        self._ping_deadline: asyncio.TimerHandle | None = None
        self._end_deadline: asyncio.TimerHandle | None = None
        self._close_deadline: asyncio.TimerHandle | None = None
        self._tcp_closing = False
        if options.on_frame is not None:
            hook = options.on_frame
            core.on_frame = lambda direction, frame: hook(self, direction, frame)
        # A data frame goes out exactly as _encode_message() builds it: nobody traces the
        # frames, and no extension may compress them. A client masks it with a fresh key.
        self._plain = core.extension is None and core.on_frame is None
        # send_prepared() writes a prepared frame's own bytes for payloads shorter than
        # this: on a server whose frames nobody traces, every message that permessage-
        # deflate leaves uncompressed (all of them without the extension) has exactly
        # those bytes. A client masks each frame with a fresh key (RFC 6455 §5.3).
        if core.role is not Role.SERVER or core.on_frame is not None:
            self._share_below = 0
        elif core.extension is None:
            self._share_below = sys.maxsize
        else:
            self._share_below = core.extension.threshold

    # -- public API ----------------------------------------------------------------------

    @property
    def query(self) -> dict[str, list[str]]:
        """The opening request's query parameters; every value of a repeated name."""
        query = self._query
        if isinstance(query, str):
            query = self._query = parse_qs(query, keep_blank_values=True)
        return query

    @property
    def headers(self) -> Headers:
        """The opening request's header fields (on a client, those it sent)."""
        headers = self._headers
        if isinstance(headers, bytes):
            headers = self._headers = parse_request(headers).headers
        elif not isinstance(headers, Headers):
            headers = self._headers = Headers(headers)
        return headers

    @property
    def response_headers(self) -> Headers:
        """The header fields of the 101 response."""
        headers = self._response_headers
        if not isinstance(headers, Headers):
            headers = self._response_headers = Headers(headers)
        return headers

    @property
    def state(self) -> State:
        """OPEN, CLOSING or CLOSED (CLOSED once TCP is closed, too)."""
        return State.CLOSED if self._lost else self._core.state

    @property
    def close_code(self) -> int | None:
        """None while open; then the code of the peer's close frame, or of ours when the
        peer sent none (e.g. 1002 after its protocol error), or 1006 when TCP just ended."""
        core = self._core
        if not self._lost and core.state is State.OPEN:
            return None
        if core.close_received is not None:
            return core.close_received[0]
        if core.close_sent is not None:
            return core.close_sent[0]
        if core.failure is not None:  # our close frame for it is not written yet
            return int(core.failure.code)
        return CloseCode.ABNORMAL_CLOSURE

    @property
    def close_reason(self) -> str | None:
        """The reason that goes with close_code ("" when there is none)."""
        core = self._core
        if self.close_code is None:
            return None
        if core.close_received is not None:
            return core.close_received[1]
        if core.close_sent is not None:
            return core.close_sent[1]
        return core.failure.reason if core.failure is not None else ""

    async def recv(self) -> str | bytes:
        """The next message: str for text, bytes for binary. Raises ConnectionClosedOK or
        ConnectionClosedError once the connection has ended and every message received
        before the end has been returned."""
        while (message := self._next_message()) is None:
            waiter: asyncio.Future[str | bytes | None]  # (an annotation: no code)
            self._recv_waiter = waiter = _Future()  # see _Future
            self._waiter_takes_message = False
            try:
                message = await waiter
            except BaseException:
                self._wait_abandoned(waiter)
                raise
            if message is not None:  # handed over by data_received (see there)
                self._write_now = not self._messages and self._direct and not self._pending
                return message
        return message

    def __aiter__(self) -> Connection:
        """Iterate over messages until the connection closes; a normal close ends the
        loop, an error close raises ConnectionClosedError."""
        return self

    def __anext__(self) -> Awaitable[str | bytes]:
        # recv() written out again, as a method that returns an awaitable rather than a
        # coroutine: a message already queued comes back in a finished awaitable
        # (awaitables.done), and a wait is the waiter itself, whose result is the message
        # (see _resolve_waiter): no coroutine object, frame or finalizer per message.
        messages = self._messages
        if messages and messages[0] is not _END and not self._reading_paused:
            # A message is there and taking it changes nothing else: no call.
            if len(messages) == 1:
                # The last one: a new empty list rather than pop(), which would make
                # CPython free the list's storage (realloc to 0, a libc malloc) for
                # data_received to allocate it again for the next message.
                item = messages[0]
                self._messages = []
                self._write_now = self._direct and not self._pending
                return done(item)
            self._write_now = False
            return done(messages.pop(0))
        # (between_messages is False once TCP is lost: connection_lost feeds the EOF.)
        if not messages and self._core.between_messages and self._recv_waiter is None:
            # Nothing queued and the peer has more to send: wait, as _next_message()
            # would decide after its checks, flushing this task's writes first.
            self._write_now = False
            if self._pending:
                self._flush()
        else:
            try:
                message = self._next_message()
            except ConnectionClosedOK:
                raise StopAsyncIteration from None
            if message is not None:
                return done(message)
        waiter: asyncio.Future[str | bytes | None]  # (an annotation: no code)
        self._recv_waiter = waiter = _Future()  # see _Future
        self._waiter_takes_message = True
        return waiter  # type: ignore[return-value]  # never resolved with None: see above

    def _wait_abandoned(self, waiter: asyncio.Future[str | bytes | None]) -> None:
        """A wait for a message ends without its result: the task was cancelled (e.g. by
        wait_for's timeout) or closed. A message already handed over to it goes back to
        the front of the queue, for the next recv(): nothing received is lost."""
        if self._recv_waiter is waiter:
            self._recv_waiter = None  # nobody woke it
        elif not waiter.cancelled() and (message := waiter.result()) is not None:
            self._messages.insert(0, message)
            self._wake_receiver()  # somebody may have started waiting meanwhile

    def _next_message(self) -> str | bytes | None:
        """The next queued message, or None when the caller must wait for one. Raises
        ConnectionClosed once the end (a close, an error, EOF) is reached."""
        messages = self._messages
        while messages:
            item = messages.pop(0)
            if self._reading_paused and len(messages) <= self._options.max_queue // 2:
                self._resume_reading()
                self._process(b"")  # messages already read but left in the core
            if item is _END:
                self._answer_end()
                continue
            assert not isinstance(item, _End)
            self._write_now = not messages and self._direct and not self._pending
            return item
        self._write_now = False
        if self._lost or not self._core.receiving:
            raise self._closed_error()
        waiter = self._recv_waiter
        if waiter is not None:
            if not waiter.done():
                raise RuntimeError("another coroutine is already waiting in recv()")
            self._recv_waiter = None  # __anext__'s, cancelled (no coroutine to clear it)
        if self._pending:
            # About to wait for the peer: first send what this task wrote, e.g. the
            # answer to the message it just had (no need to wait for the loop's turn).
            self._flush()
        return None

    def send(
        self, message: str | bytes | bytearray | memoryview
    ) -> Coroutine[Any, Any, None]:
        """Send a message (str: text, bytes-like: binary): `await ws.send(message)`.
        Waits while the transport's write buffer is above `write_limit`. Raises
        ConnectionClosed after the close.

        A method that returns an awaitable, not an `async def`: when the frame can be
        written at once it is written in the call, and what is returned has already
        finished (awaitables.Done, no coroutine object per message). Whatever it returns,
        asyncio.create_task() and ensure_future() take it as they take a coroutine."""
        if self._write_now:
            # Most likely the answer to the last message received, and recv() would
            # flush it alone next: one write(2) either way, so write it now, without
            # queueing it for the end of the loop's turn. Once per message taken, so
            # other tasks' writes to this connection still share system calls. The one
            # flag says the rest: open, our close not sent, nothing pending, the write
            # buffer under its limit (see _write_now and _direct).
            if self._plain:
                # core.message_bytes() written out: a Python call less per message.
                key = self._core._mask_key  # None on a server: no mask
                data = frames._encode_message(
                    message, None if key is None else key(), DIRECT_WRITE_LIMIT
                )
            else:
                data = self._core.message_bytes(message, DIRECT_WRITE_LIMIT)
            if data is not None:
                self._write_now = False
                # (no assert: _write_now is never set before connection_made)
                self._transport.write(data)  # type: ignore[union-attr]
                # The write may have filled the buffer (pause_writing is called inside
                # it); losing TCP is never synchronous (connection_lost is scheduled).
                if self._writing_paused:
                    return self._drain()
                return _SENT
        elif not self._lost and (data := self._core.message_bytes(message, JOIN_LIMIT)):
            # Queued for the end of the loop's turn, with the other writes (see _write).
            self._write(data)
            if self._writing_paused:
                return self._drain()
            return _SENT
        return self._send(message)

    async def _send(self, message: str | bytes | bytearray | memoryview) -> None:
        """send() for what it does not write or queue in the call: large, compressed,
        traced, bytes-like but not bytes, or after the close (raised here, when awaited,
        as from any coroutine)."""
        if self._write_now:
            self._send_frame(message, True)
            if self._writing_paused:
                await self._drain()
            return
        if self._lost:
            raise self._closed_error()
        self._send_frame(message, False)
        if self._writing_paused or self._lost:
            await self._drain()

    def send_nowait(self, message: str | bytes) -> None:
        """Write a message at once, never waiting for the write buffer to drain.

        For fan-out, where one slow reader must not hold up the others: the caller
        bounds what it queues by watching `buffered_amount` (and closes a connection
        that falls too far behind). Raises ConnectionClosed after the close."""
        if self._write_now:
            # The answer to the message a callback is handling, written as send() does
            # (written out again: a Python call less per message).
            if self._plain:
                key = self._core._mask_key  # None on a server: no mask
                data = frames._encode_message(
                    message, None if key is None else key(), DIRECT_WRITE_LIMIT
                )
            else:
                data = self._core.message_bytes(message, DIRECT_WRITE_LIMIT)
            if data is not None:
                self._write_now = False
                self._transport.write(data)  # type: ignore[union-attr]
            else:
                self._send_frame(message, True)
            return
        core = self._core
        if self._lost or core.close_sent is not None:
            raise self._closed_error()
        if (data := core.message_bytes(message, JOIN_LIMIT)) is not None:
            self._write(data)
        else:
            self._send_frame(message, False)

    def _send_frame(self, message: str | bytes | bytearray | memoryview, direct: bool) -> None:
        """Send the long way a message that message_bytes() did not join: large,
        compressed, traced, bytes-like but not bytes, or after our close (message_frame
        raises then). `direct`: the frame may be written at once (see send())."""
        header, payload = self._core.message_frame(message)
        if direct and len(payload) < DIRECT_WRITE_LIMIT:
            self._write_now = False
            assert self._transport is not None
            self._transport.write(header + payload)
        else:
            self._write_frame(header, payload)

    def set_message_callback(self, callback: MessageCallback | None) -> None:
        """Hand each message to `callback(message)` as soon as it is complete, inside the
        protocol's read callback, instead of queueing it for recv(); None queues again.

        For request/response servers where a task switch per message is the main cost:
        the callback runs without one, so it must not block; it answers with
        `send_nowait()` (the answer to the message being handled is written at once) and
        bounds its writes with `buffered_amount`. Messages already queued are passed to it
        at once, in order. Reading is not paused for it (nothing is queued); recv() and
        `async for` see only the end of the connection, so a handler may
        `await connection.wait_closed()`. If the callback raises, the error is logged and
        the connection is closed with 1011, as when a handler fails."""
        self._message_callback = callback
        if callback is not None and self._messages:
            self._deliver_queued()

    def send_prepared(self, frame: PreparedFrame) -> None:
        """`send_nowait()` of a message prepared once for many connections
        (`fastim.ws.prepare`): where this connection would send the very same bytes (a
        server, no frame tracing, the message not compressed, or compressed without
        context takeover), the prepared bytes are written as they are; otherwise the
        connection builds its own frame from `frame.message` (RFC 7692 compression
        contexts are per connection). Raises ConnectionClosed after the close."""
        if self._lost or self._core.close_sent is not None:
            raise self._closed_error()
        if len(frame.payload) < self._share_below:
            self._write(frame.data)
        elif (
            self._core.role is Role.SERVER
            and self._core.on_frame is None
            and (data := frame.compressed_data(self._core.extension))
        ):
            self._write(data)  # compressed once for every connection alike (prepared.py)
        else:
            header, payload = self._core.message_frame(frame.message)
            self._write_frame(header, payload)

    @property
    def buffered_amount(self) -> int:
        """Bytes written but not yet sent on the socket (the browser API's name)."""
        transport = self._transport
        buffered = 0 if transport is None else transport.get_write_buffer_size()
        return buffered + self._pending_size

    async def ping(self, data: str | bytes | None = None) -> asyncio.Future[float]:
        """Send a ping (RFC 6455 §5.5.2) and return a future that resolves to the round
        trip time in seconds when its pong comes. `data` defaults to 4 random bytes."""
        if self._lost:
            raise self._closed_error()
        payload = (
            os.urandom(4)
            if data is None
            else (data.encode("utf-8") if isinstance(data, str) else bytes(data))
        )
        if self._pings is not None and payload in self._pings:
            raise RuntimeError("a ping with this payload is already waiting for its pong")
        waiter = self._send_ping(payload)
        await self._drain()
        return waiter

    async def pong(self, data: str | bytes = b"") -> None:
        """Send an unsolicited pong, a one-way heartbeat (RFC 6455 §5.5.3)."""
        if self._lost:
            raise self._closed_error()
        self._write(self._core.send_pong(data.encode("utf-8") if isinstance(data, str) else data))
        await self._drain()

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start (or finish) the closing handshake and wait until TCP is closed, at most
        `close_timeout` seconds before the connection is aborted (RFC 6455 §7.1.2).

        If the peer's close frame has already come, it is answered with its own code.
        Messages that arrive after close() is called are discarded."""
        self._start_close(code, reason)
        await self.wait_closed()

    def _start_close(self, code: int, reason: str) -> None:
        core = self._core
        if not self._lost and core.close_sent is None:
            self._stop_heartbeat()
            if core.close_received is not None or core.failure is not None:
                self._answer_end()
            else:
                self._write_close(core.send_close(code, reason))
                self._arm_close_deadline()
                self._release_read()  # see pause_writing
                if core.eof_received:
                    self._start_tcp_close()
                elif self._reading_paused:
                    # Read on, to find the peer's close frame; what the queue had no room
                    # for is parsed now (and its messages dropped).
                    self._resume_reading()
                    self._process(b"")

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed."""
        if self._lost:
            return
        if self._closed is None:
            self._closed = self._loop.create_future()
        await asyncio.shield(self._closed)

    # -- asyncio.Protocol callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Attach to a transport whose opening handshake is done (called by serve,
        take_over and connect, which swap this protocol in with set_protocol)."""
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self._transport = transport = cast(asyncio.Transport, transport)
        self.remote_address = transport.get_extra_info("peername")
        transport.set_write_buffer_limits(high=self._options.write_limit)
        self._direct = not self._writing_paused and self._core.close_sent is None
        if not transport.is_reading():
            transport.resume_reading()
        self._schedule_heartbeat()

    def data_received(self, data: bytes) -> None:
        """Feed received bytes to the core and act on its events."""
        self._received_since_tick = True
        messages = self._messages
        # (`not messages` first: the request/response case, without a call of len())
        if not messages or len(messages) < self._options.max_queue:
            # The common case of a request/response peer, one whole small message per
            # read: straight into the queue, without events (see receive_message; after
            # close() it returns None, and _process drops the messages).
            # core.receive_message(data) written out: a Python call less per message.
            core = self._core
            message = (
                frames._parse_message(data, core._mask_key is None, core.max_size)
                if core.between_messages and core.on_frame is None
                else None
            )
            if message is not None:
                callback = self._message_callback
                if callback is not None:
                    # Its answer may be written at once (send_nowait): one read, one write.
                    self._write_now = self._direct and not self._pending
                    try:  # _call_back() written out: a Python call less per message
                        callback(message)
                    except Exception:
                        self._callback_failed()
                    self._write_now = False
                    return
                waiter = self._recv_waiter
                if waiter is not None:
                    # Somebody waits, so the queue is empty (every message queued wakes
                    # the waiter, and waking clears _recv_waiter): hand the message over
                    # in the future's result, without the queue, and run its task now
                    # (see "Waking a receiver" at the top); its answer may be written at
                    # once. Order holds. `async for`'s waiter is the message itself: it
                    # is handed one only while no task runs (see _resolve_waiter).
                    self._recv_waiter = None
                    if not self._waiter_takes_message or not _task_running:
                        self._write_now = self._direct and not self._pending
                        if _hand_over(waiter, message, self._loop):
                            return
                    # Otherwise (or cancelled) it is queued, and the receiver woken as
                    # after any read.
                    messages.append(message)
                    self._recv_waiter = waiter
                    self._wake_receiver()
                    return
                messages.append(message)
                return
        self._process(data)

    # -- receiving -----------------------------------------------------------------------

    def _process(self, data: bytes) -> None:
        core = self._core
        messages = self._messages
        queued = len(messages)
        max_queue = self._options.max_queue
        if core.close_sent is None and self._message_callback is not None:
            # Every message goes to the callback at once (below): nothing waits.
            events = core.receive_data(data, messages=messages)
        elif core.close_sent is None:
            # Take no more messages than the queue has room for; the rest of the bytes
            # wait in the core until recv() makes room.
            room = max_queue - queued
            events = core.receive_data(
                data, max_messages=room if room > 0 else 0, messages=messages
            )
        else:
            # close() was called: messages after it are discarded (no Message is queued).
            events = core.receive_data(data)
        out = core.data_to_send()
        if out:
            self._write(out)
        wake = len(messages) > queued
        if wake and self._message_callback is not None:
            self._deliver_queued()
        for event in events:
            if type(event) is PongReceived:
                self._pong_received(event.payload)
            elif type(event) is CloseReceived or type(event) is ProtocolFailure:
                self._end_received()
                wake = True
        if len(messages) >= max_queue and core.buffered and not self._reading_paused:
            # A bounded queue: the peer cannot make us buffer without limit. What the
            # queue had no room for waits in the core, and TCP flow control pushes back on
            # the peer until the application catches up.
            self._reading_paused = True
            if not self._read_held:
                assert self._transport is not None
                self._transport.pause_reading()
        if wake:
            # Last, once this read's state is settled: the receiving task may run now
            # (see "Waking a receiver"), take every queued message and resume reading.
            self._wake_receiver()

    def _call_back(self, message: str | bytes) -> None:
        callback = self._message_callback
        assert callback is not None
        try:
            callback(message)
        except Exception:
            self._callback_failed()

    def _callback_failed(self) -> None:
        """The message callback raised: log it, close with 1011 as for a failed handler."""
        logger.exception("WebSocket message callback failed for %s", self.path)
        self._message_callback = None
        self._start_close(CloseCode.INTERNAL_ERROR, "internal error")

    def _deliver_queued(self) -> None:
        """Pass the queued messages up to the end (if it is queued) to the callback. Their
        answers are not written at once: they share the system call of the loop's turn."""
        messages = self._messages
        while messages and messages[0] is not _END and self._message_callback is not None:
            message = messages.pop(0)
            assert not isinstance(message, _End)
            self._call_back(message)
        if messages and messages[0] is _END and self._message_callback is not None:
            messages.pop(0)
            self._answer_end()  # as recv() would on reaching it
        if self._reading_paused:
            self._resume_reading()
            self._process(b"")  # messages already read but left in the core

    def eof_received(self) -> bool:
        """The peer closed its side: nothing more will arrive. Returning False lets the
        transport close once our writes are flushed."""
        self._stop_heartbeat()
        self._core.receive_eof()
        self._wake_receiver()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """TCP is closed: wake everybody who waits, cancel the timers."""
        self._lost = True
        self._direct = self._write_now = False
        self._pending.clear()
        self._pending_size = 0
        self._core.receive_eof()
        self._stop_heartbeat()
        for handle in (self._end_deadline, self._close_deadline):
            if handle is not None:
                handle.cancel()
        if self._pings:
            error = self._closed_error()
            for waiter, _ in self._pings.values():
                if not waiter.done():  # the caller may have cancelled it
                    waiter.set_exception(error)
                    waiter.exception()  # retrieved: nobody has to await a lost ping
            self._pings.clear()
        self._wake_drainers()
        self._wake_receiver()
        if self._closed is not None:
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        """The transport's buffer went over write_limit: send() will wait, and reading
        stops until it drains.

        Reading stops because what the peer sends may make us write without anybody
        calling send(): a pong for its pings, a callback's answers. A peer that sends and
        never reads would otherwise make the write buffer grow without bound (a ping
        flood). Control frames wait in the kernel with the rest; TCP flow control pushes
        back on the peer. Once our close frame is sent nothing read is answered any more,
        so reading goes on then (to find the peer's close, see _start_tcp_close)."""
        self._writing_paused = True
        self._direct = self._write_now = False
        if self._core.close_sent is None and not self._read_held:
            self._read_held = True
            if not self._reading_paused:
                assert self._transport is not None
                self._transport.pause_reading()

    def resume_writing(self) -> None:
        """The transport's buffer drained: release the senders, read again."""
        self._writing_paused = False
        self._direct = not self._lost and self._core.close_sent is None
        self._release_read()
        self._wake_drainers()

    def _release_read(self) -> None:
        if self._read_held:
            self._read_held = False
            if not self._reading_paused:
                assert self._transport is not None
                self._transport.resume_reading()

    def _end_received(self) -> None:
        core = self._core
        self._stop_heartbeat()
        if core.close_sent is not None:
            # Our close was answered, or the peer failed while we were closing: done.
            self._start_tcp_close()
        elif not self._messages:
            self._answer_end()
        else:
            # Let the application handle what came before the close or the error first
            # (an echo server echoes it before the close frame), within close_timeout.
            self._messages.append(_END)
            self._end_deadline = self._loop.call_later(
                self._options.close_timeout, self._answer_end
            )
        # (_process, the caller, wakes the receiver once it is done.)

    def _answer_end(self) -> None:
        """Answer the peer's close frame (§5.5.1) or report a protocol error (§7.1.7), then
        close TCP. Called once: when recv() reaches the end, at its deadline, or by close()."""
        if self._end_deadline is not None:
            self._end_deadline.cancel()
        if self._lost:
            return  # TCP is gone meanwhile: there is nobody left to answer
        self._write_close(self._core.close_reply())
        self._start_tcp_close()

    def _start_tcp_close(self) -> None:
        # RFC 6455 §7.1.1: once the close frames are exchanged the server closes TCP first;
        # the client waits for that. Both keep reading (and dropping) whatever still comes:
        # closing a socket with unread data would send a RST, which can destroy the close
        # frame we just sent before the peer reads it.
        if self._tcp_closing:
            return
        self._tcp_closing = True
        self._messages = [m for m in self._messages if m is not _END]
        assert self._transport is not None
        self._release_read()
        if self._reading_paused:
            self._resume_reading()
        if self._core.role is Role.SERVER:
            self._flush()  # our close frame goes before the FIN
            if self._transport.can_write_eof():
                self._transport.write_eof()
            else:  # pragma: no cover - TLS transports cannot half-close
                self._transport.close()
        self._arm_close_deadline()

    def _arm_close_deadline(self) -> None:
        if self._close_deadline is None:
            self._close_deadline = self._loop.call_later(self._options.close_timeout, self._abort)

    def _abort(self) -> None:
        assert self._transport is not None
        self._pending.clear()
        self._pending_size = 0
        self._transport.abort()

    def _resume_reading(self) -> None:
        # Harmless on a transport that has closed meanwhile, with asyncio and uvloop alike.
        self._reading_paused = False
        if not self._read_held:
            assert self._transport is not None
            self._transport.resume_reading()

    def _wake_receiver(self) -> None:
        """Something was queued, or the end reached: wake whoever waits for a message."""
        waiter = self._recv_waiter
        if waiter is not None:
            self._recv_waiter = None
            if waiter.done():  # its task was cancelled
                return
            if self._waiter_takes_message:
                self._resolve_waiter(waiter)
            else:
                waiter.set_result(None)  # recv() looks at the queue again

    def _resolve_waiter(self, waiter: asyncio.Future[str | bytes | None]) -> None:
        """Resolve the waiter __anext__ returned: its result is the next message, or its
        exception the end (StopAsyncIteration for a normal close).

        Nothing else can put a message back if its task is cancelled before it runs, so
        a message is handed over only to a task that runs at once (see "Waking a
        receiver"): while another task is running, this is done again from the loop."""
        if _task_running:
            self._loop.call_soon(self._resolve_later, waiter)
            return
        try:
            message = self._next_message()
        except ConnectionClosedOK:
            waiter.set_exception(StopAsyncIteration())
            return
        except ConnectionClosed as error:
            # Without the traceback of its raise here, which holds this frame and so the
            # waiter that holds the error: a cycle that would keep the connection and its
            # handler's frame for the cycle collector, not free them when they end.
            waiter.set_exception(error.with_traceback(None))
            return
        if message is None:  # nothing whole yet: it waits on
            self._recv_waiter = waiter
            return
        if not _hand_over(waiter, message, self._loop):
            waiter.set_result(message)  # nobody awaits it yet, or more than one does

    def _resolve_later(self, waiter: asyncio.Future[str | bytes | None]) -> None:
        if self._recv_waiter is None and not waiter.done():  # not cancelled meanwhile
            self._recv_waiter = waiter
            self._wake_receiver()

    def _closed_error(self) -> ConnectionClosed:
        return connection_closed(
            self.close_code or CloseCode.ABNORMAL_CLOSURE, self.close_reason or ""
        )

    # -- writing -------------------------------------------------------------------------

    # Frames are not written one system call each: they wait in `_pending` until the end
    # of the current turn of the event loop (or until recv() is about to wait, or until
    # COALESCE_LIMIT bytes are pending), then go out together with one writelines(), i.e.
    # one writev(2) on uvloop. Replies to a pipelining peer, the copies a broadcast puts on
    # one connection, a pong beside a message: all share a system call.

    def _write(self, data: bytes) -> None:
        self._write_now = False  # what waits here goes first
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= COALESCE_LIMIT:
            self._flush()
        elif not self._flush_queued:
            self._flush_queued = True
            self._flusher.queue(self)

    def _write_close(self, data: bytes) -> None:
        """Write our close frame: after it, send() takes the long way (and raises)."""
        self._direct = False
        self._write(data)

    def _write_frame(self, header: bytes, payload: bytes) -> None:
        if len(payload) < JOIN_LIMIT:
            self._write(header + payload)  # a few bytes copied cost less than a list item
        else:
            self._pending.append(header)
            self._write(payload)

    def _flush(self) -> None:
        """Hand what is pending to the transport (flow control starts counting there)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._pending_size = 0
        assert self._transport is not None
        if len(pending) == 1:
            self._transport.write(pending[0])
        else:
            self._transport.writelines(pending)

    async def _drain(self) -> None:
        # asyncio calls pause_writing() when the buffer passes the high-water mark and
        # resume_writing() when it falls below the low one.
        if self._writing_paused and not self._lost:
            waiter = self._loop.create_future()
            if self._drain_waiters is None:
                self._drain_waiters = []
            self._drain_waiters.append(waiter)
            await waiter
        if self._lost:
            raise self._closed_error()

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, None
        for waiter in waiters or ():
            if not waiter.done():  # a sender cancelled while waiting leaves a done one
                waiter.set_result(None)

    # -- pings and heartbeats ------------------------------------------------------------

    def _send_ping(self, payload: bytes) -> asyncio.Future[float]:
        self._write(self._core.send_ping(payload))
        waiter: asyncio.Future[float] = self._loop.create_future()
        if self._pings is None:
            self._pings = {}
        self._pings[payload] = (waiter, self._loop.time())
        return waiter

    def _pong_received(self, payload: bytes) -> None:
        # §5.5.3: a pong answers the ping with the same payload; one pong also vouches for
        # the pings sent before it. A pong matching no ping is unsolicited and ignored.
        pings = self._pings
        if not pings or payload not in pings:
            return
        now = self._loop.time()
        while True:  # in the order sent, up to and including the matching ping
            key, (waiter, sent_at) = next(iter(pings.items()))
            del pings[key]
            if not waiter.done():
                waiter.set_result(now - sent_at)
            if key == payload:
                break

    # Keepalive: every ping_interval a shared _Heartbeat ticks for all the connections of
    # the loop with that interval (one timer, not one per connection: an idle connection
    # stays small). A connection pings at a tick when nothing arrived since the previous
    # tick and no keepalive ping is still waiting for its pong: so after one to two
    # intervals of silence. The pong must come within ping_timeout.

    def _schedule_heartbeat(self) -> None:
        interval = self._options.ping_interval
        if interval:  # None or 0: no heartbeat
            self._received_since_tick = True  # a full interval before the first ping
            self._heartbeat = _heartbeat(self._loop, interval)
            self._heartbeat.add(self)

    def _stop_heartbeat(self) -> None:
        # Once closing has begun, the close timeout takes over from the heartbeat.
        if self._heartbeat is not None:
            self._heartbeat.discard(self)
            self._heartbeat = None
        self._pong_in_time(None)

    def _heartbeat_tick(self) -> None:
        if self._received_since_tick:
            self._received_since_tick = False
            if not self._core.buffered or self._reading_paused:
                # Data came in during the interval: the peer is alive, no ping needed.
                return
            # Bytes came, but a frame is still unfinished: a peer that stopped, or drips a
            # byte at a time, half-way through a frame is pinged like a silent one. Its
            # pong cannot come before that frame ends (RFC 6455 §5.4: control frames go
            # between frames, never inside one), so a frame must end within ping_timeout.
        if self._keepalive is not None:
            return  # the last keepalive ping is still waiting for its pong
        self._keepalive = self._send_ping(os.urandom(4))
        self._keepalive.add_done_callback(self._pong_in_time)
        timeout = self._options.ping_timeout
        if timeout:  # None or 0: wait for the pong forever
            self._ping_deadline = self._loop.call_later(timeout, self._ping_timed_out)

    def _pong_in_time(self, _: asyncio.Future[float] | None) -> None:
        """The keepalive ping was answered (or the connection is lost, or closing)."""
        self._keepalive = None
        if self._ping_deadline is not None:
            self._ping_deadline.cancel()
            self._ping_deadline = None

    def _ping_timed_out(self) -> None:
        # The peer did not answer within ping_timeout: fail with 1011, "an unexpected
        # condition" (RFC 6455 §7.4.1), as websockets does, then close TCP
        # without waiting for a close frame from a peer that no longer answers.
        self._stop_heartbeat()
        self._write_close(self._core.send_close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout"))
        self._start_tcp_close()

    def __repr__(self) -> str:
        return f"<Connection {self._core.role.value} {self.path!r} {self.state.name}>"
