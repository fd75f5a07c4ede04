"""`/learn`: a live wire inspector for people learning WebSocket (docs/protocol.md).

The page opens two WebSockets. `/learn/ws` (or `/learn/ws/plain`, without compression) is
the one being inspected: an echo endpoint whose every frame, both ways, is tapped as its
bytes crossed the wire (`fastim.ws.trace.tap`) and explained by `fastim.ws.explain`, the
source of `python -m fastim.ws decode`. `/learn/control` carries those reports to the page
and the page's requests to the server; it is not inspected, so the inspected socket carries
only what the learner sends and its echoes.

What a browser cannot do through the WebSocket API, the server does, and the page says so:
a ping and a fragmented message go from the server to the browser (real frames: the
browser answers the ping with a pong); a broken frame is *simulated*: its bytes are fed to a
fresh server-side `WebSocketProtocol`, and the page shows the close frame that instance
would send. Nothing broken crosses the wire.

Safe to leave on: no login, but messages are bounded (64 KiB, also once inflated), each
address has a few sessions at most and one message rate for all of them, idle sessions are
closed, a page that leaves its reports unread is dropped, and `--no-learn` removes the
routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastim.handlers.views import PAGE_HEADERS
from fastim.http import HTTPError, Request, Response, Router
from fastim.ws import CloseCode, Connection, ConnectionClosed, Frame, Opcode, Role, explain_zh
from fastim.ws.explain import ACCEPT_STEP_MEANING, accept_steps, explain_frame
from fastim.ws.frames import apply_mask, encode_frame
from fastim.ws.protocol import ProtocolFailure, WebSocketProtocol
from fastim.ws.trace import Tap, WireFrame, response_head, tap

if TYPE_CHECKING:
    from fastim.app import App

#: The largest message the inspected socket takes (1009 beyond) and payload bytes shown.
MAX_MESSAGE = 64 * 1024
SHOWN_PAYLOAD = 512
UNMASK_SHOWN = 32
#: Sessions (one control socket each) per client address, and in all.
SESSIONS_PER_ADDRESS = 4
MAX_SESSIONS = 256
#: Messages per second the pages of one address may send on all their sockets, in bursts
#: of RATE_BURST.
RATE = 5.0
RATE_BURST = 20.0
#: Seconds without a message from the page before its session is closed.
IDLE_TIMEOUT = 300.0
MAX_FRAGMENTS = 16

#: permessage-deflate without context takeover on either side: each compressed message
#: inflates on its own, so the page can show it inflated frame by frame; every message is
#: compressed (threshold 0), even a short one where it does not pay, to be seen.
LEARN_COMPRESSION = {
    "server_no_context_takeover": True,
    "client_no_context_takeover": True,
    "threshold": 0,
}


# -- broken frames, simulated -------------------------------------------------------------------

#: What a learner may ask to break.
BROKEN_KINDS = ("unmasked", "reserved_opcode", "bad_utf8", "long_control")


def broken_frame(kind: str, key: bytes) -> bytes:
    """The frame a client would have sent, breaking the rule `kind` (masked with `key`,
    except the one whose fault is not being masked)."""
    if kind == "unmasked":  # RFC 6455 §5.1: a client masks every frame
        return encode_frame(Frame(Opcode.TEXT, b"Hello"))
    if kind == "reserved_opcode":  # §5.2: 0x3 is reserved; encode_frame only knows Opcodes
        return bytes([0x83, 0x82]) + key + apply_mask(b"hi", key)
    if kind == "bad_utf8":  # §8.1: C3 starts a 2-byte character, 28 cannot continue it
        return encode_frame(Frame(Opcode.TEXT, b"\xc3\x28"), key)
    # long_control, §5.5: a control frame carries at most 125 bytes
    return encode_frame(Frame(Opcode.PING, b"p" * 126), key)


def simulate_broken(kind: str, lang: str = "en") -> dict[str, Any]:
    """Feed the broken frame `kind` to a fresh server-side protocol; report its bytes, the
    failure and the close frame the server answers with."""
    data = broken_frame(kind, os.urandom(4))
    core = WebSocketProtocol(Role.SERVER, max_size=MAX_MESSAGE)
    events = core.receive_data(data)
    failure = events[-1]
    assert isinstance(failure, ProtocolFailure)
    close = core.close_reply()
    return {
        "type": "simulated",
        "kind": kind,
        "frame": frame_report(data, "recv", deflate=False, lang=lang),
        "code": int(failure.error.code),
        "reason": failure.error.reason,
        "close": frame_report(close, "send", deflate=False, lang=lang),
    }


# -- what the page is sent ------------------------------------------------------------------------


def frame_report(
    data: bytes, direction: str, *, deflate: bool, size: int | None = None, lang: str = "en"
) -> dict[str, Any]:
    """One frame for the page: its bytes as on the wire, the explanation of every field
    (fastim.ws.explain, as `decode` prints it; in Chinese through fastim.ws.explain_zh),
    the unmasking byte by byte, the payload."""
    receiver = Role.SERVER if direction == "recv" else Role.CLIENT
    # Inflated no further than the socket's own limit: the tap sees a frame before the
    # protocol does, and a small payload could inflate to gigabytes.
    explained = explain_frame(data, receiver=receiver, deflate=deflate, max_size=MAX_MESSAGE)
    length7 = data[1] & 0x7F
    ext = 2 if length7 == 126 else 8 if length7 == 127 else 0
    masked = bool(data[1] & 0x80)
    header_size = 2 + ext + (4 if masked else 0)
    wire_payload = data[header_size:]
    report: dict[str, Any] = {
        "type": "frame",
        "dir": direction,
        "hex": data[: header_size + SHOWN_PAYLOAD].hex(),
        "size": size if size is not None else len(data),
        "ext": ext,
        "masked": masked,
        "fin": bool(data[0] & 0x80),
        "rsv": [bool(data[0] & 0x40), bool(data[0] & 0x20), bool(data[0] & 0x10)],
        "opcode": data[0] & 0x0F,
        "name": _opcode_name(data[0] & 0x0F),
        "length": int.from_bytes(data[2 : 2 + ext], "big") if ext else length7,
        "rows": explained.rows,
        "verdict": explained.verdict(),
    }
    if lang == "zh":
        report["rows"] = [(explain_zh.where(where), explain_zh.text(text))
                          for where, text in explained.rows]
        report["verdict"] = [explain_zh.verdict(line) for line in explained.verdict()]
    key = data[header_size - 4 : header_size] if masked else None
    payload = explained.payload
    if payload is None:  # an invalid or cut frame: unmasked here, for the page only
        payload = wire_payload if key is None else apply_mask(wire_payload, key)
    if key is not None:
        report["unmask"] = [
            [wire_payload[i], key[i % 4], payload[i]]
            for i in range(min(len(wire_payload), UNMASK_SHOWN))
        ]
    report["payload_hex"] = payload[:SHOWN_PAYLOAD].hex()
    report["payload_text"] = _text(payload)
    if explained.data[0] & 0x40 and deflate and explained.message is not None:
        message = explained.message
        raw = message.encode("utf-8") if isinstance(message, str) else message
        report["inflated_hex"] = raw[:SHOWN_PAYLOAD].hex()
        report["inflated_text"] = _text(raw)
        report["inflated_length"] = len(raw)
    return report


def _opcode_name(opcode: int) -> str:
    try:
        return Opcode(opcode).name
    except ValueError:
        return f"0x{opcode:x}"


def _text(data: bytes) -> str | None:
    try:
        return data[:SHOWN_PAYLOAD].decode("utf-8")
    except UnicodeDecodeError:
        return None


def handshake_report(request: Request, connection: Connection, lang: str = "en") -> dict[str, Any]:
    """The opening handshake step by step, and both heads."""
    key = request.headers.get("Sec-WebSocket-Key") or ""
    steps = accept_steps(key)
    meaning = explain_zh.ACCEPT_STEP_MEANING if lang == "zh" else ACCEPT_STEP_MEANING
    sent = connection.response_headers.get("Sec-WebSocket-Accept")
    request_lines = [f"{request.method} {request.target} HTTP/{request.http_version}"]
    request_lines += [f"{name}: {value}" for name, value in request.headers.raw]
    return {
        "type": "handshake",
        "steps": [
            {"step": "key", "value": steps.key, "meaning": meaning["key"]},
            {"step": "joined", "value": steps.joined, "meaning": meaning["joined"]},
            {"step": "sha1", "value": steps.sha1.hex(" "), "meaning": meaning["sha1"]},
            {"step": "accept", "value": steps.accept, "meaning": meaning["accept"]},
        ],
        "accept_sent": sent,
        "request_head": "\r\n".join(request_lines) + "\r\n\r\n",
        "response_head": response_head(connection).decode("latin-1"),
        "extensions": connection.response_headers.get("Sec-WebSocket-Extensions"),
    }


# -- sessions -----------------------------------------------------------------------------------


@dataclass
class Bucket:
    """A token bucket: RATE messages a second, in bursts of up to RATE_BURST."""

    tokens: float = RATE_BURST
    refilled: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.refilled) * RATE)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


#: Bytes of reports a page may leave unread before its session is closed.
MAX_UNREAD_REPORTS = 4 * 1024 * 1024


@dataclass
class Session:
    """One open page: its control socket, and the inspected socket while one is open.
    `bucket` is shared by every session of the same address."""

    id: str
    address: str
    control: Connection
    bucket: Bucket
    wire: Connection | None = None
    tap: Tap | None = None
    deflate: bool = False
    lang: str = "en"  # of the explanations: "en" or "zh" (?lang= of /learn/control)
    active: float = field(default_factory=time.monotonic)
    closing: asyncio.Task[None] | None = None

    def report(self, message: dict[str, Any]) -> None:
        """Send a report to the page; a page that leaves them unread loses its session."""
        if self.closing is not None:
            return
        if self.control.buffered_amount > MAX_UNREAD_REPORTS:
            self.closing = asyncio.get_running_loop().create_task(
                self.control.close(CloseCode.POLICY_VIOLATION, "reports left unread"))
            return
        with contextlib.suppress(ConnectionClosed):
            self.control.send_nowait(json.dumps(message, ensure_ascii=False))

    def allow(self) -> bool:
        """Count one message from the page against its address's rate."""
        self.active = time.monotonic()
        return self.bucket.take()


class Sessions:
    """The open sessions of this process by id, and the rate buckets of their addresses."""

    def __init__(self) -> None:
        self.by_id: dict[str, Session] = {}
        self.buckets: dict[str, Bucket] = {}

    def count(self, address: str) -> int:
        return sum(1 for s in self.by_id.values() if s.address == address)

    def open(self, address: str, control: Connection) -> Session:
        bucket = self.buckets.setdefault(address, Bucket())
        session = Session(secrets.token_urlsafe(12), address, control, bucket)
        self.by_id[session.id] = session
        return session

    def close(self, session: Session) -> None:
        self.by_id.pop(session.id, None)
        if not self.count(session.address):
            # The bucket goes with the address's last session; a page opened again at once
            # would start full, but each one costs a WebSocket handshake.
            self.buckets.pop(session.address, None)


def register(router: Router, app: App) -> None:
    """Add /learn, /learn/control, /learn/ws and /learn/ws/plain, unless --no-learn."""
    if not app.config.learn:
        return
    sessions = Sessions()

    @router.get("/learn")
    async def learn_page(request: Request) -> Response:
        response = app.render("learn.html", request=request, title="WebSocket wire inspector")
        response.headers.extend(PAGE_HEADERS)
        return response

    async def before_control(request: Request) -> None:
        if len(sessions.by_id) >= MAX_SESSIONS:
            raise HTTPError(503, "too many learners right now: try again later")
        if sessions.count(request.remote_addr) >= SESSIONS_PER_ADDRESS:
            raise HTTPError(429, f"at most {SESSIONS_PER_ADDRESS} /learn pages per address")

    async def control(connection: Connection, request: Request) -> None:
        session = sessions.open(request.remote_addr, connection)
        if (request.query.get("lang") or [""])[0] == "zh":
            session.lang = "zh"
        idle = asyncio.get_running_loop().create_task(_close_when_idle(session))
        session.report({"type": "hello", "session": session.id, "limits": {
            "max_message": MAX_MESSAGE, "rate": RATE, "burst": RATE_BURST,
            "idle_timeout": IDLE_TIMEOUT, "max_fragments": MAX_FRAGMENTS}})
        try:
            async for message in connection:
                if not session.allow():
                    await connection.close(CloseCode.POLICY_VIOLATION, "too many messages")
                    break
                await _command(session, message)
        except ConnectionClosed:
            pass
        finally:
            idle.cancel()
            sessions.close(session)
            if session.wire is not None:
                await session.wire.close(CloseCode.GOING_AWAY, "the page went away")

    async def before_wire(request: Request) -> None:
        session = sessions.by_id.get((request.query.get("session") or [""])[0])
        if session is None or session.address != request.remote_addr:
            raise HTTPError(404, "no such /learn session: open /learn/control first")
        if session.wire is not None:
            raise HTTPError(409, "this session's inspected socket is already open")
        request.state.learn = session

    async def wire(connection: Connection, request: Request) -> None:
        session: Session = request.state.learn
        if session.wire is not None or session.id not in sessions.by_id:
            return  # a second socket raced the first, or the page has gone
        session.wire = connection
        session.deflate = connection.response_headers.get("Sec-WebSocket-Extensions") is not None
        session.report(handshake_report(request, connection, session.lang))

        def show(frame: WireFrame) -> None:
            session.report(frame_report(frame.data, frame.direction, deflate=session.deflate,
                                        size=frame.size, lang=session.lang))

        session.tap = tap(connection, show, keep=MAX_MESSAGE)
        # What the server closed with, when it did; else the peer's close (its frame's).
        ended: tuple[int, str] | None = None
        try:
            async for message in connection:
                if not session.allow():
                    ended = (CloseCode.POLICY_VIOLATION, "too many messages")
                    await connection.close(*ended)
                    break
                await connection.send(message)
        except ConnectionClosed:
            pass
        finally:
            await connection.close()
            code, reason = ended or (connection.close_code, connection.close_reason)
            session.report({"type": "closed", "code": code, "reason": reason})
            session.wire = session.tap = None

    wire_options: dict[str, Any] = {
        "max_size": MAX_MESSAGE, "ping_interval": None, "max_queue": 4, "open_timeout": 10.0,
    }
    router.websocket("/learn/control", control, before_upgrade=before_control,
                     max_size=4096, compression=None, ping_interval=60.0)
    router.websocket("/learn/ws", wire, before_upgrade=before_wire,
                     compression_options=LEARN_COMPRESSION, **wire_options)
    router.websocket("/learn/ws/plain", wire, before_upgrade=before_wire, compression=None,
                     **wire_options)


async def _close_when_idle(session: Session) -> None:
    while True:
        left = session.active + IDLE_TIMEOUT - time.monotonic()
        if left <= 0:
            session.report({"type": "idle"})
            if session.wire is not None:
                await session.wire.close(CloseCode.GOING_AWAY, "idle")
            await session.control.close(CloseCode.NORMAL_CLOSURE, "idle")
            return
        await asyncio.sleep(left)


async def _command(session: Session, message: str | bytes) -> None:
    """Do what the page asks: {"do": "fragments" | "ping" | "broken", ...}."""
    try:
        request = json.loads(message)
        action = request["do"]
    except (ValueError, TypeError, KeyError):
        session.report({"type": "error", "error": "bad_request"})
        return
    if action == "broken":
        kind = request.get("kind")
        if kind not in BROKEN_KINDS:
            session.report({"type": "error", "error": "bad_request"})
            return
        session.report(simulate_broken(kind, session.lang))
        return
    wire, watcher = session.wire, session.tap
    if wire is None or watcher is None:
        session.report({"type": "error", "error": "not_connected"})
        return
    try:
        if action == "fragments":
            text = str(request.get("text", ""))
            try:
                count = int(request.get("n", 3))
            except (TypeError, ValueError):
                count = 0
            data = text.encode("utf-8")
            if not 2 <= count <= MAX_FRAGMENTS or not data or len(data) > 4096:
                session.report({"type": "error", "error": "bad_fragments"})
                return
            watcher.send_frames(_fragments(data, count))
        elif action == "ping":
            payload = str(request.get("payload", "")).encode("utf-8")
            if len(payload) > 125:
                session.report({"type": "error", "error": "ping_too_long"})
                return
            pong = await wire.ping(payload)

            def answered(done: asyncio.Future[float]) -> None:
                if not done.cancelled() and done.exception() is None:
                    session.report({"type": "pong", "rtt_ms": round(done.result() * 1000, 2)})

            pong.add_done_callback(answered)
        else:
            session.report({"type": "error", "error": "bad_request"})
    except (ConnectionClosed, RuntimeError):  # the inspected socket is closing
        session.report({"type": "error", "error": "not_connected"})


def _fragments(data: bytes, count: int) -> list[Frame]:
    """`data` as a text message in `count` frames (RFC 6455 §5.4): TEXT with FIN=0, then
    CONTINUATION frames, the last with FIN=1. Cuts fall between UTF-8 characters only when
    the text is ASCII; a fragment may end inside a character (§5.6 asks that of the
    message, not of each fragment)."""
    count = min(count, len(data))
    size = -(-len(data) // count)
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return [
        Frame(Opcode.TEXT if i == 0 else Opcode.CONTINUATION, piece, fin=i == len(pieces) - 1)
        for i, piece in enumerate(pieces)
    ]
