"""The connection of docs/protocol.md, replayed by a client that prints every byte.

    python -m fastim.ws echo --port 9001 --ping-interval 0 --trace     # terminal 1
    python -m fastim.ws walkthrough ws://127.0.0.1:9001/                # terminal 2

A fastim client made of the sans-I/O pieces (handshake, deflate, WebSocketProtocol,
encode_frame) over a plain blocking socket, so that nothing hides between the code and the
wire. It opens the connection, sends a text message, a fragmented message with a ping
between its fragments, a compressed message, and closes; each step prints the bytes sent
(`client:`) and received (`server:`), and a `#` line naming the function at work.

It differs from `connect()` on purpose in one way: where a real client draws random values,
it uses fixed ones, so that every run gives the same bytes and the walkthrough can be
checked by tests. Its Sec-WebSocket-Key is the sample of RFC 6455 §1.3 and its masking keys
are the constants below. A real client must not do this: §5.3 wants masking keys that the
application cannot predict, and §4.1 a fresh key per connection.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import TextIO

from fastim.ws.client import parse_uri
from fastim.ws.deflate import accept_client_response, client_offer
from fastim.ws.exceptions import InvalidURI
from fastim.ws.frames import Frame, Opcode, encode_frame
from fastim.ws.handshake import build_request, check_response, client_headers, parse_response
from fastim.ws.protocol import Event, Role, WebSocketProtocol

__all__ = ["KEY", "MASKING_KEYS", "CHAT_MESSAGE", "replay"]

# RFC 6455 §1.3's sample key, whose accept value the RFC gives: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="

# One masking key per frame the client sends, in order. The first is the key of the RFC's
# masked examples (§5.7), so the first frame is byte for byte the RFC's masked "Hello".
MASKING_KEYS = [
    bytes.fromhex("37fa213d"),  # "Hello"
    bytes.fromhex("5a1c9e02"),  # "Hel", the first fragment
    bytes.fromhex("c3d4e5f6"),  # the ping between the fragments
    bytes.fromhex("0b16212c"),  # "lo, world", the last fragment
    bytes.fromhex("a1b2c3d4"),  # the compressed chat message
    bytes.fromhex("e8f9a0b1"),  # the close frame
]

# A chat message in fastIM's JSON format: long enough (>= 32 bytes, the default threshold)
# to be compressed, and repetitive, as chat traffic is.
CHAT_MESSAGE = '{"cmd":10,"dstid":2,"media":1,"content":"hello hello hello hello"}'

_TIMEOUT = 10.0  # seconds; a safety net against a server that stops answering
_BYTES_PER_LINE = 16


class _Wire:
    """The socket, plus what was read but not yet consumed, printing everything it moves."""

    def __init__(self, sock: socket.socket, out: TextIO) -> None:
        self.sock = sock
        self.out = out
        self.buffer = b""

    def note(self, text: str) -> None:
        print(f"# {text}", file=self.out)

    def send_head(self, head: bytes) -> None:
        for line in head.decode("latin-1").split("\r\n")[:-1]:
            print(f"client: {line}".rstrip(), file=self.out)
        self.sock.sendall(head)

    def receive_head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        head += b"\r\n\r\n"
        for line in head.decode("latin-1").split("\r\n")[:-1]:
            print(f"server: {line}".rstrip(), file=self.out)
        return head

    def send_frame(self, data: bytes) -> None:
        self._print_hex("client:", data)
        self.sock.sendall(data)

    def receive_frame(self, core: WebSocketProtocol) -> list[Event]:
        """Read until the core makes an event of the bytes (in this script, one frame)."""
        data, self.buffer = self.buffer, b""
        events = core.receive_data(data)
        while not events:
            chunk = self._recv()
            data += chunk
            events = core.receive_data(chunk)
        self._print_hex("server:", data)
        for event in events:
            self.note(f"receive_data() -> {event!r}")
        return events

    def receive_eof(self, core: WebSocketProtocol) -> None:
        # The server closes TCP first (§7.1.1); whatever came before the end is shown,
        # though after its close frame a server sends nothing (§5.5.1).
        with self.sock.makefile("rb") as stream:
            self._print_hex("server:", stream.read())
        core.receive_eof()
        print("server: (end of stream: the server closed TCP)", file=self.out)

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection in the middle of a step")
        return chunk

    def _print_hex(self, who: str, data: bytes) -> None:
        for i in range(0, len(data), _BYTES_PER_LINE):
            prefix = who if i == 0 else " " * len(who)
            print(f"{prefix} {data[i : i + _BYTES_PER_LINE].hex(' ')}", file=self.out)


def replay(url: str, out: TextIO) -> None:
    """Replay the walkthrough's connection against the WebSocket server at `url` (ws://
    only), writing the transcript to `out`. Raises InvalidURI, OSError, ConnectionError,
    InvalidHandshake if the server does not play along."""
    uri = parse_uri(url)
    if uri.secure:
        raise InvalidURI("the walkthrough shows plain bytes: use a ws:// URI")
    masks: Iterator[bytes] = iter(MASKING_KEYS)
    with socket.create_connection((uri.host, uri.port), timeout=_TIMEOUT) as sock:
        wire = _Wire(sock, out)

        wire.note("the opening handshake (RFC 6455 §4.1): client_headers(), build_request()")
        offer = client_offer()
        wire.send_head(
            build_request(uri.resource, client_headers(uri.host_header, KEY, extensions=offer))
        )
        response = parse_response(wire.receive_head())
        _, extension = check_response(response, KEY, accept_extensions=accept_client_response)
        wire.note("check_response(): 101, the right Sec-WebSocket-Accept, permessage-deflate:")
        wire.note(repr(extension))
        core = WebSocketProtocol(Role.CLIENT, extension=extension, mask_key=lambda: next(masks))

        wire.note("send_text('Hello'): one text frame (§5.6), too short to be worth compressing")
        wire.send_frame(core.send_text("Hello"))
        wire.receive_frame(core)

        wire.note("a fragmented message (§5.4) with a ping between its fragments (§5.5.2):")
        wire.note("encode_frame(Frame(Opcode.TEXT, b'Hel', fin=False), mask)")
        wire.send_frame(encode_frame(Frame(Opcode.TEXT, b"Hel", fin=False), next(masks)))
        wire.note("send_ping(b'are you there?')")
        wire.send_frame(core.send_ping(b"are you there?"))
        wire.receive_frame(core)
        wire.note("encode_frame(Frame(Opcode.CONTINUATION, b'lo, world'), mask)")
        wire.send_frame(encode_frame(Frame(Opcode.CONTINUATION, b"lo, world"), next(masks)))
        wire.receive_frame(core)

        wire.note("send_text(CHAT_MESSAGE): compressed (RFC 7692 §7.2.1), RSV1 set")
        wire.send_frame(core.send_text(CHAT_MESSAGE))
        wire.receive_frame(core)

        wire.note("send_close(1000, 'bye'): the closing handshake (§5.5.1, §7.1.2)")
        wire.send_frame(core.send_close(1000, "bye"))
        wire.receive_frame(core)
        wire.receive_eof(core)
