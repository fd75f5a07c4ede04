"""Write the seed corpora, fuzz/corpus/TARGET/: `python -m fuzz seeds`.

The seeds are real inputs, gathered from where the project already spells them out:

* docs: the ```http requests of docs/api.md and docs/http.md, the handshake, the frames
  (as hex) and the extension header of the walkthrough in docs/protocol.md, every JSON
  line of docs/chat-protocol.md;
* tests: every string and bytes literal in tests/ that looks like an HTTP request, a
  response head, a multipart body, a chat command or an extension header (read with
  `ast`, nothing imported), and the RFC 6455 §5.7 frame examples;
* built here: frames of every opcode and length encoding from fastim.ws's own encoder,
  chunked and pipelined requests, and small images of each accepted type from Pillow.

Files are named by the SHA-1 of their content, as libFuzzer names what it adds, so that
running this again (or `-merge=1`) never duplicates an input.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"

_METHOD = re.compile(rb"^(GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH|CONNECT|TRACE) \S+ HTTP/")


def _fence_blocks(text: str, language: str) -> list[str]:
    return re.findall(r"```" + language + r"\n(.*?)```", text, re.DOTALL)


def _http_from_doc(block: str) -> bytes | None:
    """A ```http request block as bytes on the wire: CRLF line ends, a Host and a
    Content-Length added where the doc leaves them out (as tests/app/test_api_docs.py)."""
    head, _, body = block.partition("\n\n")
    lines = head.strip("\n").split("\n")
    if not _METHOD.match(lines[0].encode()):
        return None
    names = {line.partition(":")[0].lower() for line in lines[1:]}
    if "host" not in names:
        lines.insert(1, "Host: 127.0.0.1:8081")
    payload = body.rstrip("\n").encode()
    if payload and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def _test_literals() -> list[bytes]:
    """Every str and bytes constant in the test suite (adjacent literals come joined)."""
    found: list[bytes] = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
                value = node.value
                if isinstance(value, str):
                    value = value.encode("utf-8", "surrogatepass")
                if len(value) >= 4:
                    found.append(value)
    return found


def _walkthrough() -> tuple[list[str], list[str], list[bytes], list[bytes]]:
    """docs/protocol.md's walkthrough: (client head lines, server head lines, client frame
    bytes, server frame bytes)."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    client_head: list[str] = []
    server_head: list[str] = []
    client_frames: list[bytes] = []
    server_frames: list[bytes] = []
    current: list[bytes] | None = None
    for line in text.splitlines():
        match = re.match(r"(client|server): ?(.*)$", line)
        hex_line = re.fullmatch(r"(?:[0-9a-f]{2} )*[0-9a-f]{2}", line.strip())
        if match:
            side, rest = match.groups()
            if re.fullmatch(r"(?:[0-9a-f]{2} ?)+", rest):
                current = client_frames if side == "client" else server_frames
                current.append(bytes.fromhex(rest))
            elif not rest.startswith("("):
                (client_head if side == "client" else server_head).append(rest)
                current = None
        elif hex_line and current is not None and line.startswith("        "):
            current[-1] += bytes.fromhex(line.strip())
        else:
            current = None
    return client_head, server_head, client_frames, server_frames


def _frames() -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Streams of frames built with fastim.ws's encoder: (client->server masked streams,
    server->client unmasked streams, compressed client streams)."""
    from fastim.ws.deflate import PerMessageDeflate
    from fastim.ws.frames import Frame, Opcode, encode_close_payload, encode_frame

    key = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 §5.7's masking key

    def stream(frames: list[Frame], masked: bool) -> bytes:
        return b"".join(encode_frame(f, key if masked else None) for f in frames)

    text = "hello 你好 😀".encode()
    shapes: list[list[Frame]] = [
        [Frame(Opcode.TEXT, text)],
        [Frame(Opcode.BINARY, bytes(range(256)))],
        [Frame(Opcode.TEXT, b"Hel", fin=False), Frame(Opcode.PING, b"are you there?"),
         Frame(Opcode.CONTINUATION, b"lo, world")],
        [Frame(Opcode.BINARY, b"a", fin=False), Frame(Opcode.CONTINUATION, b"b", fin=False),
         Frame(Opcode.CONTINUATION, b"c")],
        [Frame(Opcode.PONG, b"x"), Frame(Opcode.PING), Frame(Opcode.TEXT, b"")],
        [Frame(Opcode.CLOSE, encode_close_payload(1000, "bye"))],
        [Frame(Opcode.CLOSE)],
        [Frame(Opcode.CLOSE, encode_close_payload(4001, "logged out"))],
        [Frame(Opcode.CLOSE, b"\x03")],  # a 1-byte close payload
        [Frame(Opcode.CLOSE, encode_close_payload(1005))],  # may not be sent
        [Frame(Opcode.CLOSE, b"\x03\xe8\xff")],  # reason not UTF-8
        [Frame(Opcode.TEXT, "é".encode()[:1], fin=False),
         Frame(Opcode.CONTINUATION, "é".encode()[1:])],  # UTF-8 split over frames
        [Frame(Opcode.TEXT, b"\xed\xa0\x80")],  # a surrogate: not UTF-8
        [Frame(Opcode.TEXT, b"ok\xff", fin=False)],  # fails fast, before the end
        [Frame(Opcode.CONTINUATION, b"x")],  # nothing to continue
        [Frame(Opcode.TEXT, b"a", fin=False), Frame(Opcode.TEXT, b"b")],  # no continuation
        [Frame(Opcode.TEXT, b"x", rsv2=True)],
        [Frame(Opcode.PING, b"x", fin=False)],
        [Frame(Opcode.PING, bytes(126))],
        [Frame(Opcode.TEXT, b"y" * 300)],  # 16-bit length
        [Frame(Opcode.BINARY, bytes(20000))],  # over the memoryview threshold
        [Frame(Opcode.BINARY, bytes(65536))],  # 64-bit length, received directly
        [Frame(Opcode.BINARY, bytes(65537))],  # over max_size: 1009
        [Frame(Opcode.BINARY, bytes(65536)), Frame(Opcode.TEXT, b"after")],
        [Frame(Opcode.TEXT, b"a" * 40000, fin=False),
         Frame(Opcode.CONTINUATION, b"b" * 30000)],  # a message over max_size
        [Frame(Opcode.TEXT, b"\x00" * 3 + b"text \xf0\x9f\x98", fin=False),
         Frame(Opcode.CONTINUATION, b"\x80")],
    ]
    client = [stream(shape, True) for shape in shapes]
    server = [stream(shape, False) for shape in shapes]
    reserved = bytes([0x83, 0x80]) + key  # opcode 3 is reserved
    client += [reserved, bytes([0x81, 0x05]) + b"Hello"]  # an unmasked client frame
    server += [bytes([0x8B, 0x00]), bytes([0x81, 0x85]) + key + b"Hello"]
    server.append(bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]))  # top bit of 64 set
    client.append(bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]) + key)

    compressed: list[bytes] = []
    deflate = PerMessageDeflate()
    chat = json.dumps({"cmd": 10, "dstid": 2, "media": 1, "content": "hello " * 20}).encode()
    for payload in (chat, text * 10, bytes(70000)):
        body = deflate.compress(payload)
        compressed.append(stream([Frame(Opcode.TEXT if payload is not bytes(70000)
                                        else Opcode.BINARY, body, rsv1=True)], True))
    body = deflate.compress(chat)
    half = len(body) // 2
    compressed.append(stream([Frame(Opcode.TEXT, body[:half], fin=False, rsv1=True),
                              Frame(Opcode.PING, b"p"),
                              Frame(Opcode.CONTINUATION, body[half:])], True))
    compressed.append(stream([Frame(Opcode.TEXT, b"\xff\xff\xff", rsv1=True)], True))
    compressed.append(stream([Frame(Opcode.CONTINUATION, b"x", rsv1=True)], True))
    bomb = PerMessageDeflate().compress(bytes(1 << 20))  # inflates past max_size
    compressed.append(stream([Frame(Opcode.BINARY, bomb, rsv1=True)], True))
    return client, server, compressed


def _images() -> list[bytes]:
    """Small images of each accepted type, and some that are refused, made by Pillow."""
    from PIL import Image

    def save(img: Image.Image, fmt: str, **params: object) -> bytes:
        out = io.BytesIO()
        img.save(out, fmt, **params)
        return out.getvalue()

    rgb = Image.new("RGB", (8, 6), (200, 30, 30))
    rgba = Image.new("RGBA", (5, 5), (0, 0, 255, 128))
    big = Image.new("RGB", (100, 20), (1, 2, 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    frames = [Image.new("P", (4, 4), i) for i in range(3)]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=50, comment=b"a comment")
    gif = save(Image.new("P", (3, 3), 1), "GIF")
    return [
        save(rgb, "PNG"), save(rgba, "PNG"), save(big, "PNG"),
        save(rgb, "JPEG", quality=50), save(rgb, "JPEG", exif=exif.tobytes()),
        save(big, "JPEG"), gif, animated.getvalue(), gif[:-1] + b"<html>after</html>",
        save(rgb, "WEBP"), save(rgba, "WEBP", lossless=True),
        save(rgb, "WEBP", exif=exif.tobytes()), save(rgb, "BMP"),
        b'<svg xmlns="http://www.w3.org/2000/svg"/>',
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xfe\x03abc\x00"
        b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x00\x00\x00\x01\x00\x00\x08\x02",
    ]


def _recordings() -> list[bytes]:
    """Voice recordings as browsers record them (tests/media/audio_samples.py builds them)
    and a few damaged ones."""
    from tests.media.audio_samples import mp4_audio, ogg_opus, webm

    whole = [webm(1.0), webm(2.5, stated=True), webm(1.0, video=True), ogg_opus(1.5),
             mp4_audio(2.0), webm(61.0, stated=True)]
    return [*whole, whole[0][:40], whole[3][:60], whole[4][:50], b"\x1a\x45\xdf\xa3"]


def _chat_structured() -> list[bytes]:
    """Byte strings for the FuzzedDataProvider target: a spread of lengths and patterns."""
    seeds = [bytes([i]) * n for i in (0, 1, 7, 0x41, 0xFF) for n in (8, 64)]
    seeds += [hashlib.sha512(bytes([i])).digest() * (1 + i % 4) for i in range(24)]
    return seeds


def _multipart(boundary: str, parts: list[tuple[str, str | None, str | None, bytes]]) -> bytes:
    body = b""
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        body += (head + "\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def collect() -> dict[str, set[bytes]]:
    seeds: dict[str, set[bytes]] = defaultdict(set)
    literals = _test_literals()

    # -- HTTP requests: docs, tests, and a few built here --------------------------------
    requests: list[bytes] = []
    for doc in ("api.md", "http.md"):
        for block in _fence_blocks((ROOT / "docs" / doc).read_text(encoding="utf-8"), "http"):
            request = _http_from_doc(block)
            if request is not None:
                requests.append(request)
    requests += [lit for lit in literals if _METHOD.match(lit)]
    requests += [
        b"POST /chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=\"v a\"\r\nhello\r\n6 ; x=y\r\n world\r\n0\r\nTrailer: t\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"
        b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        b"\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http://h/x?y HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /" + b"a" * 1100 + b" HTTP/1.1\r\nHost: h\r\n\r\n",  # 414
        b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 40 + b"\r\n",  # 431, too many
        b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 5000 + b"\r\n\r\n",  # 431, too large
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999\r\n\r\n",  # 413
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1234567890123456789\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",  # 505
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: \x80\xff latin-1\r\n\r\n",
    ]
    for i, request in enumerate(sorted(set(requests))):
        seeds["http-parser"].add(bytes([(0x10, 0x00, 0x03, 0x07)[i % 4]]) + request)
    # Whole heads in one piece (0xF9: 8 KiB pieces), so that the checks on a complete
    # head run, not only those on one still arriving; chunk lines past their limit.
    chunked = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    seeds["http-parser"].update(b"\xf9" + request for request in (
        b"GET /" + b"a" * 1100 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: " + b"v" * 4100 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: y\nZ: w\r\n\r\n",
        chunked + b"1;" + b"e" * 4100,
        chunked + b"1;" + b"e" * 4100 + b"\r\n",
        chunked + b"0\r\nT: " + b"t" * 4100 + b"\r\n\r\n",
        chunked + b"5\r\nhello\r\n0\n",
    ))

    # Query strings, cookies and forms: target \n cookie \n content-type \n body.
    queries = [
        b"/user/find?mobile=13800000001&x=%E4%BD%A0%E5%A5%BD\nfastim_token=abc; theme=\"dark\"\n"
        b"application/x-www-form-urlencoded\nmobile=1380&passwd=battery+staple&a=1&a=2",
        b"/contact/loadfriend?pagefrom=0&pagesize=100\nfastim_token=t\napplication/json\n"
        b'{"dstid": 2, "userid": "1"}',
        b"/%ff?%ff=%fe\n=novalue; noequals; a=b=c; a=second\ntext/plain\n\xff",
        b"/x?" + b"&".join(b"k%d=v" % i for i in range(1001)) + b"\n\n\n",
        b"/x?a=1;b=2&c\n  spaced  =  v  \napplication/vnd.api+json\n[1, 2]",
        b"/chat?token=TOKEN\nsid=\"\"; q=\"x\napplication/json\n{\"a\": " + b"[" * 3000,
        b"http://h/p%20q?r=%C3%A9#frag\nk=v\nmultipart/form-data; boundary=x\n",
    ]
    for block in _fence_blocks((ROOT / "docs" / "api.md").read_text(encoding="utf-8"), "http"):
        request = _http_from_doc(block)
        if request is None:
            continue
        head, _, body = request.partition(b"\r\n\r\n")
        target = head.split(b" ")[1]
        ctype = re.search(rb"(?im)^content-type: *(.*)$", head)
        queries.append(target + b"\nfastim_token=abc\n" + (ctype.group(1) if ctype else b"")
                       + b"\n" + body)
    seeds["http-query-cookies"].update(queries)

    # Multipart bodies: Content-Type value CRLF body.
    png = _images()[0]
    multiparts = [
        ("XyZ", _multipart("XyZ", [("file", "a b.png", "image/png", png)])),
        ("----WebKitFormBoundary7MA4YWxkTrZu0gW", _multipart(
            "----WebKitFormBoundary7MA4YWxkTrZu0gW",
            [("memo", None, None, "你好".encode()),
             ("file", "照片.jpg", "image/jpeg", b"\xff\xd8\xff\xe0 not really"),
             ("file", "two", None, b"")])),
        ('"quoted boundary"', _multipart("quoted boundary", [("a", None, None, b"1")])),
        ("x", b"--x\r\nno headers"),
        ("x", b'--x\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\ndata'),
        ("x", b"--x\r\nContent-Disposition: attachment\r\n\r\nv\r\n--x--\r\n"),
        ("x", b'--x\r\nContent-Disposition: form-data; name="f"\r\n\r\n\xff\xfe\r\n--x--\r\n'),
        ("x", b"preamble\r\n--x--\r\n"),
        ("x", b'--x\r\nContent-Disposition: form-data; name*=UTF-8\'\'%E4; name="n"\r\n'
              b"X-Other: y\r\n\r\nv\r\n--x--\r\nepilogue"),
    ]
    for lit in literals:
        match = re.match(rb"--([!-~]+)\r\n", lit)
        if match and b"form-data" in lit:
            multiparts.append((match.group(1).decode(), lit))
    multiparts += [("\xe9", b"--\xe9--\r\n"), ("", b"")]
    for i, (boundary, body) in enumerate(multiparts):
        seeds["http-multipart"].add(bytes([(0x10, 0x00, 0x05)[i % 3]])
                                    + f"multipart/form-data; boundary={boundary}".encode("latin-1")
                                    + b"\r\n" + body)

    # -- WebSocket -----------------------------------------------------------------------
    client_head, server_head, client_frames, server_frames = _walkthrough()
    handshakes = ["\r\n".join(client_head).strip().encode(), "\r\n".join(server_head).strip().encode()]
    for lit in literals:
        if (_METHOD.match(lit) or lit.startswith(b"HTTP/1.")) and b"\r\n" in lit:
            handshakes.append(lit.split(b"\r\n\r\n")[0])
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    base = (b"GET /chat?token=T HTTP/1.1\r\nHost: 127.0.0.1:8081\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13")
    handshakes += [
        base + b"\r\nOrigin: http://127.0.0.1:8081\r\nSec-WebSocket-Protocol: chat, superchat"
        b"\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, foo",
        base + b"\r\nOrigin: http://evil.example",  # refused by the hook
        base + b"\r\nSec-WebSocket-Extensions: permessage-deflate; bar=1",
        base + b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7",
        base.replace(b"HTTP/1.1", b"HTTP/1.0"),
        base.replace(b"GET", b"POST"),
        base.replace(key, b"c2hvcnQ="),
        base + b"\r\nSec-WebSocket-Key: " + key,
        base.replace(b"13", b"8"),
        base.replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        base.replace(b"Connection: Upgrade", b"Connection: keep-alive"),
        base + b"\r\n" + b"X-A: b\r\n" * 130,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: x",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: wrong",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade",
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0",
        b"HTTP/1.1 abc\r\nX: y",
        b"HTTP/1.1 101 OK\r\nBad Header: x",
        b"GET / HTTP/1.1\r\nX: a\x01b",
        b"GET  HTTP/1.1",
        b"GET / HTTP/x",
        b"x" * 17000,
    ]
    seeds["ws-handshake"].update(h for h in handshakes if h)

    client, server, compressed = _frames()
    # Piece sizes 17, 1, 6, 16 KiB, 256 KiB; fast path, pure-Python masking, observer.
    prefixes = (0x10, 0x90, 0x00, 0x85, 0xFA, 0xDE, 0xB3, 0x6E, 0x22, 0xFE, 0xF4)
    def prefixed(streams: list[bytes]) -> set[bytes]:
        # Large frames come in large pieces (4 KiB, 64 KiB): byte by byte, one input
        # would take a second, and every mutation of it too.
        return {bytes([prefixes[i % len(prefixes)] if len(data) < 4096 else 0xF8 + i % 5])
                + data for i, data in enumerate(streams)}

    seeds["ws-frames-server"] |= prefixed(client + [b"".join(client_frames)] + client_frames)
    seeds["ws-frames-client"] |= prefixed(server + [b"".join(server_frames)] + server_frames)
    seeds["ws-frames-deflate"] |= prefixed(compressed + client[:6] + client_frames[-3:])

    offers = [line.split(":", 1)[1].strip() for line in client_head + server_head
              if line.lower().startswith("sec-websocket-extensions")]
    offers += [lit.decode("latin-1") for lit in literals
               if b"permessage-deflate" in lit or b"max_window_bits" in lit]
    offers += [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9",
        'permessage-deflate; server_max_window_bits="10"\nx-webkit-deflate-frame',
        "foo, permessage-deflate; unknown=1, permessage-deflate",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        'permessage-deflate; x="a\\"b"',
        'permessage-deflate; x="unterminated',
        "permessage-deflate;;",
        ", ,permessage-deflate ;\tclient_max_window_bits = 15 ,",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate; client_max_window_bits=\x01",
    ]
    for i, offer in enumerate(offers):
        seeds["ws-deflate-negotiation"].add(bytes([i * 37 % 256]) + offer.encode("latin-1"))

    # -- chat ----------------------------------------------------------------------------
    chat_doc = (ROOT / "docs" / "chat-protocol.md").read_text(encoding="utf-8")
    messages: list[bytes] = []
    for block in _fence_blocks(chat_doc, "json"):
        for candidate in [block, *block.splitlines()]:
            try:
                json.loads(candidate)
            except ValueError:
                continue
            messages.append(candidate.strip().encode())
    messages += re.findall(rb"`(\{\"cmd\".*?\})`", chat_doc.encode())
    messages += [lit for lit in literals if lit.lstrip().startswith(b'{"cmd"')]
    messages += [
        b'{"cmd": 11, "dstid": "7", "media": 4, "url": "/asset/stickers/cat/hi.png", '
        b'"pic": "/resource/ab/abc.jpg", "memo": "m", "amount": 3, "cid": 42}',
        b'{"cmd": 10, "dstid": 2, "media": 1, "content": "\\ud800"}',
        b'{"cmd": 10, "dstid": 2, "media": 3, "content": "voice"}',
        b'{"cmd": 20}', b'{"cmd": 20, "limit": 0}', b'{"cmd": 30, "kind": 12, "dstid": 1}',
        b'{"cmd": 40, "kind": "11", "dstid": 3}', b'{"cmd": 99}', b'{"cmd": true}',
        b'{"cmd": 10, "dstid": 2, "content": "   "}', b'{"cmd": 10, "dstid": 2, "media": 4}',
        b'{"cmd": 10, "dstid": 2, "content": "x", "url": "javascript:alert(1)"}',
        b'{"cmd": 0, "cid": ["x"]}', b'{"cmd": 0, "cid": "' + b"c" * 65 + b'"}',
        b"[1, 2]", b"\xff\xfe{\x00}\x00", b'{"cmd": 10, "x": ' + b"[" * 40 + b"]" * 40 + b"}",
        b'{"cmd": 10, "content": "' + b"[{" * 40 + b'"}',
        b'{"cmd": 1' + b"0" * 5000 + b"}",
    ]
    seeds["chat-message"].update(messages)
    seeds["chat-structured"].update(_chat_structured())

    seeds["media-upload"].update(_images())
    seeds["media-voice"].update(_recordings())
    return seeds


def write(seeds: dict[str, set[bytes]]) -> int:
    added = 0
    for target, inputs in seeds.items():
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            path = directory / hashlib.sha1(data).hexdigest()
            if not path.exists():
                path.write_bytes(data)
                added += 1
    return added


def main() -> int:
    seeds = collect()
    added = write(seeds)
    for target in sorted(seeds):
        print(f"{target}: {len(seeds[target])} seeds")
    print(f"{added} new files under {CORPUS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
