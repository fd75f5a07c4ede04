"""The fuzzing targets: each takes arbitrary bytes and must end in a result or in the
error the component promises (an HTTPError with its status, a ProtocolFailure with its
close code, an InvalidHandshake, a ChatError, an AppError 413/415), never in any other
exception. Where a cheap property holds, the target checks it too (an echoed message
decodes to itself, a negotiated extension answer is one the client accepts, an error
frame is JSON).

Run one with `python -m fuzz TARGET [libFuzzer flags]`; `make fuzz` runs them all.
Each target's seed corpus is fuzz/corpus/TARGET/ and its dictionary fuzz/TARGET.dict
(fuzz/seeds.py writes the seeds); `python -m fuzz coverage` says what the corpora reach.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastim.chat.protocol import ChatError, ChatMessage, encode, parse
from fastim.errors import AppError
from fastim.http.body import MAX_FIELDS, MultipartSink, parse_content_type
from fastim.http.errors import HTTPError
from fastim.http.headers import Headers
from fastim.http.parser import (
    CONNECTION_CLOSED,
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    RequestHead,
    RequestParser,
)
from fastim.http.request import Request
from fastim.media.audio import check_audio
from fastim.media.images import gif_blocks, process_image
from fastim.media.options import MediaOptions
from fastim.media.webm import WebMError, read_webm
from fastim.ws import InvalidHandshake, frames
from fastim.ws.deflate import (
    DeflateOptions,
    NegotiationError,
    PerMessageDeflate,
    accept_client_response,
    client_offer,
    negotiate_server,
)
from fastim.ws.frames import Frame
from fastim.ws.handshake import (
    HeadReader,
    accept_headers,
    accept_key,
    accept_response,
    build_request,
    check_request,
    check_response,
    client_headers,
    parse_request,
    parse_response,
    reject_response,
)
from fastim.ws.protocol import (
    CloseReceived,
    Message,
    ProtocolFailure,
    Role,
    WebSocketProtocol,
)

# python-multipart logs a warning for each malformation it meets: noise here, and slow.
logging.getLogger("python_multipart").setLevel(logging.CRITICAL)


def _split(data: bytes) -> list[bytes]:
    """Use the first byte to cut the rest in pieces, so splits get explored too: pieces
    of 1 to 17 bytes, or from 0xF0 up, of 16 bytes to 512 KiB (whole frames at once)."""
    if not data:
        return [b""]
    step = data[0] % 17 + 1 if data[0] < 0xF0 else 16 << (data[0] & 0x0F)
    body = data[1:]
    return [body[i:i + step] for i in range(0, len(body), step)] or [b""]


_TMP: Path | None = None


def _tmp_dir() -> Path:
    """One scratch directory per process for the files multipart and upload targets write."""
    global _TMP
    if _TMP is None:
        _TMP = Path(tempfile.mkdtemp(prefix="fastim-fuzz-"))
        atexit.register(shutil.rmtree, _TMP, True)
    return _TMP


# -- HTTP ----------------------------------------------------------------------------------


def _requests(data: bytes, parser: RequestParser) -> list[tuple[RequestHead, bytes]]:
    """Feed `data` (split as _split says) to `parser`, answering each request in turn as
    the server does; return the complete requests and their bodies. HTTPError escapes."""
    done: list[tuple[RequestHead, bytes]] = []
    head: RequestHead | None = None
    body: list[bytes] = []
    for piece in _split(data):
        parser.receive_data(piece)
        for _ in range(len(data) + 8):  # bounded: every event consumes input
            event = parser.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED:
                parser.start_next_cycle()
                assert parser.waiting_for_head
            elif isinstance(event, RequestHead):
                head, body = event, []
                assert parser.in_progress and not parser.waiting_for_head
                if event.upgrade:
                    # A WebSocket upgrade: the bytes after the head belong to fastim.ws.
                    parser.trailing_data  # noqa: B018 - the property copies the buffer
                    parser.detach()
                    done.append((event, b""))
                    return done
                # Per-route limits: a body route takes more than the default.
                parser.max_body_size = 2048 if event.method == "GET" else 4096
            elif isinstance(event, Data):
                body.append(event.data)
            elif isinstance(event, EndOfMessage):
                assert head is not None
                done.append((head, b"".join(body)))
    parser.receive_eof()
    parser.next_event()
    return done


def http_parser(data: bytes) -> None:
    # Limits small enough that a short input can reach each of them (414, 431, 413).
    parser = RequestParser(max_request_line=1024, max_header_size=4096,
                           max_header_count=32, max_body_size=4096)
    try:
        _requests(data, parser)
    except HTTPError as error:
        assert 400 <= error.status < 600
        try:  # promised: once it has raised, it raises the same error on every call
            parser.next_event()
        except HTTPError as again:
            assert again is error
        else:
            raise AssertionError("the parser forgot its error") from None
    else:
        assert parser.next_event() is CONNECTION_CLOSED or parser.buffered_size


def _exercise_request(request: Request) -> None:
    """What handlers read of a request: path, query, cookies, and the body's values."""
    try:
        request.path  # noqa: B018 - percent-decoding happens in the property
    except HTTPError as error:
        assert error.status == 400
    try:
        query = request.query
    except HTTPError as error:
        assert error.status == 400
    else:
        assert sum(map(len, query.values())) <= MAX_FIELDS
    for read in (request.values, request.form):
        try:
            read()
        except HTTPError as error:
            assert error.status in (400, 415), error
    cookies = request.cookies
    assert all(name and "=" not in name and ";" not in name for name in cookies)


def http_query_cookies(data: bytes) -> None:
    """Lines of `data`: the request-target, a Cookie value, a Content-Type value, then
    the body. They go through the request parser first (what it refuses never reaches a
    handler), then into a Request whose query, cookies and form a handler reads."""
    target, _, rest = data.partition(b"\n")
    cookie, _, rest = rest.partition(b"\n")
    content_type, _, body = rest.partition(b"\n")
    head = (b"POST /" + target.lstrip(b"/") + b" HTTP/1.1\r\nHost: fuzz\r\nCookie: " + cookie
            + b"\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    parser = RequestParser(max_body_size=4096)
    try:
        requests = _requests(b"\x10" + head + body, parser)
    except HTTPError:
        return  # refused before any handler sees it
    for parsed, received in requests:
        _exercise_request(Request(parsed.method, parsed.target, parsed.headers, received))


def http_multipart(data: bytes) -> None:
    """After the first byte (how to cut the body), a Content-Type value, CRLF, then the
    body, which goes through python-multipart in pieces exactly as fastim.http.server
    streams it (parse_content_type, then MultipartSink)."""
    content_type, _, body = data[1:].partition(b"\r\n")
    media_type, params = parse_content_type(content_type.decode("latin-1"))
    boundary = params.get("boundary")
    if media_type != "multipart/form-data" or not boundary:
        return  # the server reads such a body into memory (BytesSink), unparsed
    try:
        sink = MultipartSink(boundary, _tmp_dir())
    except HTTPError as error:
        assert error.status == 400
        return
    try:
        for piece in _split(data[:1] + body):
            sink.feed(piece)
        sink.finish()
    except HTTPError as error:
        assert error.status == 400
        return
    finally:
        sink.abort()
    uploaded = sum(upload.size for uploads in sink.files.values() for upload in uploads)
    assert uploaded <= len(body)
    headers = Headers([("Content-Type", content_type.decode("latin-1"))])
    request = Request("POST", "/attach/upload", headers, b"",
                      form_fields=sink.fields, files=sink.files)
    _exercise_request(request)


# -- WebSocket -----------------------------------------------------------------------------


def _frames(role: Role, data: bytes, extension: PerMessageDeflate | None) -> None:
    """Feed frames to a core of `role` like the asyncio layer does, answering pings and
    echoing every message back; the echo, read by a peer core, must be the message.

    Bits of the first byte choose: 0x80, try receive_message() first, as the hosts do;
    0x40, the pure-Python masking (what runs where the C extension was not built);
    0x20, a frame observer, which re-encodes every frame received and decodes it again."""
    flags = data[0] if data else 0
    saved_mask = frames._mask
    if flags & 0x40:
        frames._mask = frames._mask_python  # looked up at call time, as the tests swap it
    try:
        _frames_run(role, data, extension, flags)
    finally:
        frames._mask = saved_mask


def _reencode(direction: str, frame: Frame) -> None:
    if direction != "recv":
        return
    decoder = frames.FrameDecoder()
    decoder.feed(frames.encode_frame(frame, b"\x37\xfa\x21\x3d" if frame.masked else None))
    again = decoder.next_frame()
    assert again == frame and not decoder.buffered, (again, frame)


def _frames_run(role: Role, data: bytes, extension: PerMessageDeflate | None,
                flags: int) -> None:
    core = WebSocketProtocol(role, max_size=65536, extension=extension,
                             on_frame=_reencode if flags & 0x20 else None)
    peer_role = Role.CLIENT if role is Role.SERVER else Role.SERVER
    peer = WebSocketProtocol(peer_role, max_size=None,
                             extension=None if extension is None else PerMessageDeflate())
    for piece in _split(data):
        message = core.receive_message(piece) if flags & 0x80 else None
        events = [Message(message)] if message is not None else core.receive_data(piece)
        core.data_to_send()
        for event in events:
            if isinstance(event, Message):
                send = core.send_text if isinstance(event.data, str) else core.send_binary
                echoed = peer.receive_data(send(event.data))  # type: ignore[arg-type]
                assert echoed == [Message(event.data)], echoed
        if events and isinstance(events[-1], ProtocolFailure | CloseReceived):
            if isinstance(events[-1], ProtocolFailure):
                assert 1000 <= int(events[-1].error.code) < 5000
            core.close_reply()
            return
    core.receive_eof()


def ws_frames_server(data: bytes) -> None:
    _frames(Role.SERVER, data, None)


def ws_frames_client(data: bytes) -> None:
    _frames(Role.CLIENT, data, None)


def ws_frames_deflate(data: bytes) -> None:
    _frames(Role.SERVER, data, PerMessageDeflate())


_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's; its accept is s3pPLMBiTxaQ9kYGzzhZRbK+xOo=


def ws_handshake(data: bytes) -> None:
    """`data` is a head without its empty line: read as a client's request by the server
    side (with origin, subprotocol and permessage-deflate hooks), and as a server's answer
    by the client side, which offered `_SAMPLE_KEY`, "chat" and permessage-deflate."""
    head = data + b"\r\n\r\n"
    reader = HeadReader(status=400, what="request")
    try:
        cut = len(data) // 2
        got = reader.feed(head[:cut]) or reader.feed(head[cut:])
        assert got is not None and got[0] == head[: len(got[0])]
        request = parse_request(got[0])
        hooks: dict[str, Any] = (
            {"origins": [None, "http://127.0.0.1:8081"], "subprotocols": ("chat",)}
            if len(data) % 2 else
            {"check_origin": lambda origin: origin != "http://evil.example",
             "select_subprotocol": lambda offered, _: offered[-1]}
        )
        accepted = check_request(request.method, request.headers, version=request.version,
                                 negotiate_extensions=negotiate_server, **hooks)
    except InvalidHandshake as error:
        assert 400 <= error.status < 600
        answer = reject_response(error)
        assert answer.startswith(b"HTTP/1.1 %d " % error.status)
    else:
        answer = accept_response(accept_headers(accepted, [("Server", "fuzz")]))
        # What the server accepted, a client built from the same values is accepted for.
        offered = [p.strip() for v in request.headers.get_all("Sec-WebSocket-Protocol")
                   for p in v.split(",") if p.strip()]
        again = build_request(request.target, client_headers(
            request.headers.get("Host") or "", accepted.key,
            origin=request.headers.get("Origin"), subprotocols=offered,
            extensions=", ".join(request.headers.get_all("Sec-WebSocket-Extensions")),
        ))
        rebuilt = parse_request(again)
        check_request(rebuilt.method, rebuilt.headers, negotiate_extensions=negotiate_server,
                      **hooks)
        # And the server's answer is one a client that offered all that accepts.
        response = parse_response(answer)
        check_response(response, accepted.key, subprotocols=offered,
                       accept_extensions=accept_client_response)
    with contextlib.suppress(InvalidHandshake):  # the client side's reading of an answer
        response = parse_response(head)
        check_response(response, _SAMPLE_KEY, subprotocols=("chat",),
                       accept_extensions=accept_client_response)
    assert accept_key(_SAMPLE_KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def _deflate_options(flags: int) -> DeflateOptions:
    bits = (None, 8, 9, 12, 15)
    return DeflateOptions(
        server_no_context_takeover=bool(flags & 1),
        client_no_context_takeover=bool(flags & 2),
        server_max_window_bits=bits[(flags >> 2) % 5],
        client_max_window_bits=bits[(flags >> 5) % 5],
        threshold=0,
    )


def ws_deflate_negotiation(data: bytes) -> None:
    """The first byte picks the options of both ends; the rest is the header value(s),
    one per line. The server negotiates with them as a client's offer, the client reads
    them as a server's answer to client_offer(); a server's answer to the client's own
    offer must be accepted by it, and a message must cross the negotiated pair intact."""
    flags, text = (data[0], data[1:]) if data else (0, b"")
    options = _deflate_options(flags)
    values = text.decode("latin-1").split("\n")
    try:
        answer, server = negotiate_server(values, options)
    except NegotiationError as error:
        assert error.status == 400
    else:
        assert (answer is None) == (server is None)
    with contextlib.suppress(NegotiationError):
        accept_client_response(values[0], options)
    client_options = _deflate_options(flags >> 1)
    answer, server = negotiate_server([client_offer(client_options)], options)
    assert answer is not None and server is not None
    client = accept_client_response(answer, client_options)
    message = text[:200]
    for sender, receiver in ((server, client), (client, server)):
        payload = sender.compress(message)
        assert receiver.decompress(payload, True, None) == message


# -- chat ----------------------------------------------------------------------------------


def _check_chat(message: str | bytes) -> None:
    """parse() ends in a command or a ChatError; the ERROR frame sent back is JSON, and a
    message's fields, encoded as the server delivers them, come back the same."""
    try:
        command = parse(message)
    except ChatError as error:
        assert error.reason
        assert json.loads(error.frame())["error"] == error.reason
        return
    if isinstance(command, ChatMessage):
        fields = dataclasses.asdict(command)
        assert 1 <= command.dstid <= 2**63 - 1 and 0 <= command.amount <= 2**63 - 1
        assert json.loads(encode(fields)) == fields


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
    """Raw bytes as a frame's payload, plus a few shapes built from them."""
    for message in (data, *_chat_shapes(data)):
        _check_chat(message)


# Every field a chat frame carries, both ways (docs/chat-protocol.md), and every cmd.
CHAT_KEYS = ("id", "userid", "cmd", "dstid", "media", "content", "pic", "url", "memo",
             "amount", "cid", "ts", "dup", "since", "limit", "kind", "upto", "error", "msg",
             "rows", "more", "next", "online", "users", "unreadable")
CHAT_CMDS = (0, 1, 2, 10, 11, 20, 21, 30, 31, 40, 50)
# Digits that are not ASCII: superscripts, full-width, Arabic-Indic, Devanagari, N'Ko...
_UNICODE_DIGITS = "²³¹０１２９٠٣٩۵०७߀൬๓๙᠑𝟘𝟡"
_URLS = ("/resource/", "/asset/stickers/", "/resource/../", "//evil.example/",
         "javascript:", "/asset/a?b", "/resource/a//b", "http://x/")
_NUMBERS = ("0", "-0", "1", "-1", "10", "11", "1e3", "1.5", "-1e-7", "9223372036854775807",
            "9223372036854775808", "-9223372036854775809", "1e400", "NaN", "Infinity",
            "-Infinity", "0x10", "01", "1E+2")


def _json_value(fdp: Any, depth: int) -> str:
    """One JSON value as text (sometimes one JSON does not quite allow), of any type."""
    kind = fdp.ConsumeIntInRange(0, 13)
    if kind == 0:
        return "null"
    if kind == 1:
        return fdp.PickValueInList(["true", "false"])
    if kind == 2:
        return str(fdp.PickValueInList([*CHAT_CMDS, 4, 3, 200, 201]))
    if kind == 3:  # an integer of any size, up to past Python's 4,300-digit limit
        size = fdp.PickValueInList([1, 2, 4, 8, 9, 16, 64, 2000])
        number = str(fdp.ConsumeInt(size))
        return number * (4301 // len(number) + 1) if size == 2000 else number
    if kind == 4:
        return fdp.PickValueInList(list(_NUMBERS))
    if kind == 5:
        return repr(fdp.ConsumeRegularFloat())
    if kind == 6:  # digits as a string, ASCII or not
        alphabet = "0123456789" if fdp.ConsumeBool() else _UNICODE_DIGITS
        count = fdp.ConsumeIntInRange(0, 24)
        return json.dumps("".join(fdp.PickValueInList(list(alphabet)) for _ in range(count)),
                          ensure_ascii=fdp.ConsumeBool())
    if kind == 7:
        return json.dumps(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 64)),
                          ensure_ascii=fdp.ConsumeBool())
    if kind == 8:  # a long string, over the limits
        return json.dumps("x" * fdp.PickValueInList([300, 301, 500, 501, 4000, 4001]))
    if kind == 9:
        return json.dumps(fdp.PickValueInList(list(_URLS)) + fdp.ConsumeUnicode(12))
    if kind == 10:  # a lone surrogate, as JSON's escape carries it
        return f'"\\ud8{fdp.ConsumeIntInRange(0, 255):02x}"'
    if kind == 11 and depth < 40:
        count = fdp.ConsumeIntInRange(0, 4)
        return "[" + ",".join(_json_value(fdp, depth + 1) for _ in range(count)) + "]"
    if kind == 12 and depth < 40:
        return _json_object(fdp, depth + 1)
    # deep nesting in one go, around MAX_DEPTH and far past it
    levels = fdp.PickValueInList([31, 32, 33, 100, 5000])
    opener = fdp.PickValueInList(["[", '{"a":'])
    closer = "]" if opener == "[" else "}"
    return opener * levels + "1" + closer * levels


def _json_object(fdp: Any, depth: int) -> str:
    members = []
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        if fdp.ConsumeIntInRange(0, 7):
            key = fdp.PickValueInList(list(CHAT_KEYS))  # duplicates come as they fall
        else:
            key = fdp.ConsumeUnicode(8)
        members.append(json.dumps(key) + ":" + _json_value(fdp, depth))
    return "{" + ",".join(members) + "}"


def chat_structured(data: bytes) -> None:
    """A chat frame built from the fuzzer's bytes by atheris.FuzzedDataProvider: a JSON
    object of the known fields (any of them repeated) with values of every JSON type,
    digits of every script, numbers of every size and nesting of every depth."""
    import atheris  # only this target needs it; the others run without atheris

    fdp = atheris.FuzzedDataProvider(data)
    cmd = fdp.PickValueInList(list(CHAT_CMDS))
    text = _json_object(fdp, 0)
    if fdp.ConsumeBool():  # most commands carry a cmd, often first
        text = f'{{"cmd":{cmd}' + ("," if text != "{}" else "") + text[1:]
    encoding = fdp.ConsumeIntInRange(0, 3)
    if encoding == 0:
        _check_chat(text)
    elif encoding == 1:
        _check_chat(text.encode("utf-8", "surrogatepass"))
    elif encoding == 2:
        _check_chat(text.encode("utf-16", "surrogatepass"))  # json.loads detects it
    else:
        _check_chat(text[: fdp.ConsumeIntInRange(0, len(text))])  # cut short


# -- uploads -------------------------------------------------------------------------------

# Small limits: a fuzzed header may declare any size, and the work is bounded by these.
_MEDIA = MediaOptions(max_side=64, thumb_side=16, max_pixels=128 * 128, max_frames=8,
                      max_animation_pixels=8 * 128 * 128)


def media_upload(data: bytes) -> None:
    """An uploaded file, judged as POST /attach/upload does (process_image: Pillow's
    decoders for PNG, JPEG, GIF and WebP only, the pixel and frame limits, the GIF block
    walk), then the GIF walk alone on the raw bytes."""
    source = _tmp_dir() / "upload"
    source.write_bytes(data)
    work = _tmp_dir()
    try:
        with warnings.catch_warnings():  # Pillow's "Corrupt EXIF data" and the like
            warnings.simplefilter("ignore")
            processed = process_image(source, work, _MEDIA)
    except AppError as error:
        assert error.status in (413, 415), error
    else:
        assert processed.image.type.extension in ("png", "jpg", "gif", "webp")
        assert 1 <= processed.image.width <= _MEDIA.max_side
        processed.discard()
    try:
        clean = gif_blocks(data)
    except ValueError:  # GIFFormatError
        return
    assert clean.endswith(b"\x3b") and len(clean) <= len(data) + 1
    assert gif_blocks(clean) == clean  # walking a walked GIF changes nothing


def media_voice(data: bytes) -> None:
    """An uploaded voice recording, judged as POST /attach/upload with kind=voice does:
    the WebM reader (fastim/media/webm.py) on the bytes, then check_audio on the file
    (the reader again, or mutagen for Ogg and MP4), which may only answer 413 or 415."""
    try:
        info = read_webm(data)
    except WebMError:
        pass
    else:
        assert info.doc_type in ("webm", "matroska")
        assert info.duration >= 0 and info.last_block >= 0
        assert all(track.type >= 0 for track in info.tracks)
    source = _tmp_dir() / "voice"
    source.write_bytes(data)
    try:
        audio = check_audio(source, 60.0, 1024 * 1024)
    except AppError as error:
        assert error.status in (413, 415), error
    else:
        assert 0 <= audio.seconds <= 60.0 and audio.amount >= 1


TARGETS: dict[str, Callable[[bytes], None]] = {
    "http-parser": http_parser,
    "http-query-cookies": http_query_cookies,
    "http-multipart": http_multipart,
    "ws-frames-server": ws_frames_server,
    "ws-frames-client": ws_frames_client,
    "ws-frames-deflate": ws_frames_deflate,
    "ws-handshake": ws_handshake,
    "ws-deflate-negotiation": ws_deflate_negotiation,
    "chat-message": chat_message,
    "chat-structured": chat_structured,
    "media-upload": media_upload,
    "media-voice": media_voice,
}

#: The module each target is there to exercise (`python -m fuzz coverage` reports it).
MODULES: dict[str, str] = {
    "http-parser": "fastim/http/parser.py",
    "http-query-cookies": "fastim/http/request.py",
    "http-multipart": "fastim/http/body.py",
    "ws-frames-server": "fastim/ws/frames.py",
    "ws-frames-client": "fastim/ws/frames.py",
    "ws-frames-deflate": "fastim/ws/frames.py",
    "ws-handshake": "fastim/ws/handshake.py",
    "ws-deflate-negotiation": "fastim/ws/deflate.py",
    "chat-message": "fastim/chat/protocol.py",
    "chat-structured": "fastim/chat/protocol.py",
    "media-upload": "fastim/media/images.py",
    "media-voice": "fastim/media/webm.py",
}
