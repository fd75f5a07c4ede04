"""The fuzzing targets: each takes arbitrary bytes and must end in a result or in the
error the component promises (an HTTPError with its status, a ProtocolFailure with its
close code, an InvalidHandshake, a ChatError), never in any other exception.

Run one with `python -m fuzz TARGET [libFuzzer flags]`; `make fuzz` runs them all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

from fastim.chat.protocol import ChatError, parse
from fastim.http.errors import HTTPError
from fastim.http.parser import NEED_DATA, PAUSED, EndOfMessage, RequestParser
from fastim.ws import InvalidHandshake
from fastim.ws.deflate import PerMessageDeflate
from fastim.ws.handshake import check_request, parse_request, parse_response
from fastim.ws.protocol import ProtocolFailure, Role, WebSocketProtocol


def _split(data: bytes) -> list[bytes]:
    """Use the first byte to cut the rest in pieces, so splits get explored too."""
    if not data:
        return [b""]
    step = data[0] % 17 + 1
    body = data[1:]
    return [body[i:i + step] for i in range(0, len(body), step)] or [b""]


def http_parser(data: bytes) -> None:
    parser = RequestParser(max_header_size=4096, max_body_size=4096)
    try:
        for piece in _split(data):
            parser.receive_data(piece)
            for _ in range(len(data) + 8):  # bounded: every event consumes input
                event = parser.next_event()
                if event is NEED_DATA:
                    break
                if event is PAUSED:
                    parser.start_next_cycle()
                elif isinstance(event, EndOfMessage):
                    continue
        parser.receive_eof()
        parser.next_event()
    except HTTPError as error:
        assert 400 <= error.status < 600


def _frames(role: Role, data: bytes, extension: PerMessageDeflate | None) -> None:
    core = WebSocketProtocol(role, max_size=65536, extension=extension)
    for piece in _split(data):
        events = core.receive_data(piece)
        if events and isinstance(events[-1], ProtocolFailure):
            assert 1000 <= int(events[-1].error.code) < 5000
            return


def ws_frames_server(data: bytes) -> None:
    _frames(Role.SERVER, data, None)


def ws_frames_client(data: bytes) -> None:
    _frames(Role.CLIENT, data, None)


def ws_frames_deflate(data: bytes) -> None:
    _frames(Role.SERVER, data, PerMessageDeflate())


def ws_handshake(data: bytes) -> None:
    head = data + b"\r\n\r\n"
    try:
        request = parse_request(head)
        check_request(request.method, request.headers, version=request.version)
    except InvalidHandshake as error:
        assert 400 <= error.status < 500
    with contextlib.suppress(InvalidHandshake):  # the client side's parser of the answer
        parse_response(head)


# The field values that once escaped the chat parser, as shapes the fuzzer can reach in
# a few runs: digits of other scripts ("²", "１２", "٣"), numbers far beyond 64 bits, and
# nesting far beyond MAX_DEPTH.
_CHAT_FIELDS = ("cmd", "dstid", "media", "amount", "cid", "since", "limit", "kind", "upto")


def _chat_shapes(data: bytes) -> list[str | bytes]:
    if len(data) < 2:
        return []
    field = _CHAT_FIELDS[data[0] % len(_CHAT_FIELDS)]
    rest = data[2:]
    text = rest.decode("utf-8", "replace")
    depth = data[1] * 40  # up to 10,200 levels
    head = '{"cmd": 10, "dstid": 2, "content": "x", "' + field + '": '
    digits = "".join(c for c in text if c.isdigit()) or "0"
    return [
        head + json.dumps(text) + "}",
        head + digits + "}",
        head + json.dumps(digits) + "}",
        head + "1" + "9" * (data[1] * 20) + "}",
        "[" * depth + text + "]" * (depth // 2),
        b'{"cmd": 10, "x": ' + b"{" * depth + rest,
    ]


def chat_message(data: bytes) -> None:
    for message in (data, *_chat_shapes(data)):
        try:
            parse(message)
        except ChatError as error:
            assert error.reason


TARGETS: dict[str, Callable[[bytes], None]] = {
    "http-parser": http_parser,
    "ws-frames-server": ws_frames_server,
    "ws-frames-client": ws_frames_client,
    "ws-frames-deflate": ws_frames_deflate,
    "ws-handshake": ws_handshake,
    "chat-message": chat_message,
}
