"""POST /attach/upload and /resource/ over real sockets against a real fastim server.

Most tests run on SQLite only (uploads touch the database only to check the token); one
round trip runs on both backends through the shared ``api`` fixture.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import secrets
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageSequence, PngImagePlugin

from fastim.media import MediaOptions
from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import SAFETY_TIMEOUT, ApiServer, Reply, api_config

MIB = 1024 * 1024
URL = re.compile(r"/resource/([0-9a-f]{2})/(\1[0-9a-f]{62})\.(png|jpg|gif|webp)")


# --- helpers -----------------------------------------------------------------------------

def media_server(tmp_path: Path, **options: Any) -> ApiServer:
    config = api_config(f"sqlite:///{tmp_path}/fastim.db", tmp_path)
    config.media = MediaOptions(**options)
    return ApiServer(config)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    """A fastim server on SQLite with the default media options."""
    with media_server(tmp_path) as running:
        yield running


@pytest.fixture
def token(server: ApiServer) -> str:
    return server.user_with_token()[1]


def multipart(parts: list[tuple[str, str | None, bytes, str | None]]) -> tuple[bytes, str]:
    """A multipart/form-data body of (field, filename, content, content type) parts."""
    boundary = "fastim-" + secrets.token_hex(12)
    body = bytearray()
    for name, filename, content, content_type in parts:
        body += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"Content-Disposition: {disposition}\r\n".encode()
        if content_type is not None:
            body += f"Content-Type: {content_type}\r\n".encode()
        body += b"\r\n" + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f"multipart/form-data; boundary={boundary}"


def upload(server: ApiServer, token: str | None, content: bytes, filename: str = "photo.png",
           content_type: str = "image/png", field: str = "file") -> Reply:
    body, ctype = multipart([(field, filename, content, content_type)])
    return server.request("POST", "/attach/upload", body=body, token=token,
                          headers={"Content-Type": ctype})


def error(reply: Reply, status: int) -> str:
    assert reply.status == status, (reply.status, reply.body)
    body = reply.json
    assert body["code"] == -1 and body["data"] is None and body["msg"]
    return str(body["msg"])


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def picture(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A picture with some structure (so resampling and encoders have work to do)."""
    img = Image.new(mode, size, "white" if mode != "RGBA" else (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.ellipse((w // 8, h // 8, w * 7 // 8, h * 7 // 8), fill="orange" if mode != "L" else 128)
    draw.rectangle((0, 0, w // 4, h // 4), fill="navy" if mode != "L" else 20)
    return img


def animation(size: tuple[int, int], frames: int = 3) -> list[Image.Image]:
    colours = ["red", "green", "blue", "yellow", "purple"]
    out = []
    for i in range(frames):
        img = Image.new("RGB", size, "white")
        ImageDraw.Draw(img).rectangle((0, 0, size[0] * (i + 1) // (frames + 1), size[1]),
                                      fill=colours[i % len(colours)])
        out.append(img)
    return out


def fetch(server: ApiServer, url: str) -> Reply:
    reply = server.get(url)
    assert reply.status == 200, (url, reply.status)
    return reply


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def stored(tmp_path: Path) -> list[Path]:
    """Every file in the resource directory, including half-written hidden ones."""
    return files_under(tmp_path / "resource")


def upload_temporaries(tmp_path: Path) -> list[Path]:
    return files_under(tmp_path / "data" / "tmp")


def check_stored_reply(server: ApiServer, data: dict[str, Any]) -> bytes:
    """The promised fields are there and the URL names the SHA-256 of what it serves."""
    assert {"url", "thumb", "width", "height", "bytes", "type"} <= set(data)
    match = URL.fullmatch(data["url"])
    assert match, data["url"]
    served = fetch(server, data["url"])
    assert hashlib.sha256(served.body).hexdigest() == match.group(2)
    assert len(served.body) == data["bytes"]
    assert served.header("content-type") == data["type"]
    assert served.header("cache-control") == "public, max-age=31536000, immutable"
    assert served.header("x-content-type-options") == "nosniff"
    assert URL.fullmatch(data["thumb"])
    return served.body


# --- accepted types ----------------------------------------------------------------------

ACCEPTED = [
    ("PNG", "image/png", {}),
    ("JPEG", "image/jpeg", {"quality": 90}),
    ("GIF", "image/gif", {}),
    ("WEBP", "image/webp", {"quality": 80}),
]


@pytest.mark.parametrize(("fmt", "mime", "params"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_each_accepted_type_is_stored_and_served_back(
    server: ApiServer, token: str, fmt: str, mime: str, params: dict[str, Any]
) -> None:
    original = picture((640, 480))
    # A misleading name and declared type: only the content decides.
    reply = upload(server, token, encode(original, fmt, **params), filename="file.bin",
                   content_type="application/octet-stream")
    assert reply.status == 200, reply.body
    data = reply.data
    assert (data["type"], data["width"], data["height"]) == (mime, 640, 480)
    assert data["url"].endswith("." + {"JPEG": "jpg"}.get(fmt, fmt.lower()))
    body = check_stored_reply(server, data)
    with Image.open(io.BytesIO(body)) as back:
        assert (back.format, back.size) == (fmt, (640, 480))
        # The picture is the picture: the centre of the ellipse is still orange.
        r, g, b = back.convert("RGB").getpixel((320, 240))
        assert r > 200 and 100 < g < 200 and b < 60


def test_an_upload_round_trip_on_both_databases(api: ApiServer) -> None:
    _, token = api.user_with_token()
    reply = upload(api, token, encode(picture((400, 300)), "PNG"))
    assert reply.status == 200, reply.body
    assert check_stored_reply(api, reply.data)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_stay_animated(server: ApiServer, token: str, fmt: str) -> None:
    frames = animation((120, 80))
    content = encode(frames[0], fmt, save_all=True, append_images=frames[1:],
                     duration=[100, 200, 300], loop=0)
    data = upload(server, token, content).data
    assert data["animated"] is True and (data["width"], data["height"]) == (120, 80)
    body = check_stored_reply(server, data)
    with Image.open(io.BytesIO(body)) as back:
        assert back.format == fmt and back.n_frames == 3
        durations = []
        for frame in ImageSequence.Iterator(back):
            frame.load()  # WebP sets the duration on load
            durations.append(frame.info.get("duration"))
        assert durations == [100, 200, 300]
    if fmt in ("GIF", "WEBP"):
        assert body == content  # nothing to change: kept byte for byte


def test_a_large_animation_is_downscaled_and_stays_animated(
    server: ApiServer, token: str
) -> None:
    frames = animation((2100, 60))
    content = encode(frames[0], "GIF", save_all=True, append_images=frames[1:],
                     duration=80, loop=0)
    data = upload(server, token, content).data
    assert (data["width"], data["height"], data["animated"]) == (2048, 59, True)
    body = check_stored_reply(server, data)
    with Image.open(io.BytesIO(body)) as back:
        assert back.size == (2048, 59) and back.n_frames == 3
        # Frame 2 is green up to 2/4 of the width, white after it.
        back.seek(1)
        rgb = back.convert("RGB")
        assert rgb.getpixel((100, 30))[1] > 100 and rgb.getpixel((100, 30))[0] < 60
        assert min(rgb.getpixel((2000, 30))) > 245  # white, give or take the palette


# --- refused types -----------------------------------------------------------------------

REFUSED = [
    ("text named .png", b"just some text, honest\n" * 10, "cat.png", "image/png"),
    ("HTML", b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>",
     "page.html", "text/html"),
    ("HTML named .gif with a GIF magic", b"GIF89a<script>alert(1)</script>", "x.gif",
     "image/gif"),
    ("SVG", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
     "pic.svg", "image/svg+xml"),
    ("BMP", encode(picture((20, 20)), "BMP"), "pic.bmp", "image/bmp"),
    ("TIFF", encode(picture((20, 20)), "TIFF"), "pic.png", "image/png"),
    ("truncated PNG", encode(picture((300, 300)), "PNG")[:200], "cut.png", "image/png"),
]


@pytest.mark.parametrize(("what", "content", "name", "ctype"), REFUSED, ids=[r[0] for r in REFUSED])
def test_anything_else_is_415_and_nothing_is_stored(
    server: ApiServer, token: str, tmp_path: Path, what: str, content: bytes, name: str,
    ctype: str,
) -> None:
    message = error(upload(server, token, content, filename=name, content_type=ctype), 415)
    assert "PNG, JPEG, GIF and WebP" in message
    assert stored(tmp_path) == [] and upload_temporaries(tmp_path) == []


def test_a_request_without_the_file_field_is_400(server: ApiServer, token: str) -> None:
    body, ctype = multipart([("other", "x.png", encode(picture((10, 10)), "PNG"), "image/png"),
                             ("note", None, b"hello", None)])
    reply = server.request("POST", "/attach/upload", body=body, token=token,
                           headers={"Content-Type": ctype})
    assert "'file'" in error(reply, 400)
    assert "empty" in error(upload(server, token, b""), 400)


def test_a_body_that_is_not_multipart_is_415(server: ApiServer, token: str) -> None:
    reply = server.request("POST", "/attach/upload", body=encode(picture((10, 10)), "PNG"),
                           token=token, headers={"Content-Type": "image/png"})
    assert "multipart/form-data" in error(reply, 415)


# --- size limits and bombs ---------------------------------------------------------------

def raw_request(port: int, head: str, chunks: Iterator[bytes] | list[bytes] = ()) -> bytes:
    """Send a head and body pieces on a raw socket; return all the server sends back
    (it half-closes after an error answer, so reading to EOF gets the whole answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY_TIMEOUT) as sock:
        sock.sendall(head.encode("latin-1"))
        for chunk in chunks:
            sock.sendall(chunk)
        received = bytearray()
        while data := sock.recv(65536):
            received += data
        return bytes(received)


def upload_head(token: str, boundary: str, framing: str) -> str:
    return ("POST /attach/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n{framing}\r\n\r\n")


def test_a_declared_26_mib_upload_is_413_before_its_body_is_sent(
    server: ApiServer, token: str, tmp_path: Path
) -> None:
    # Only the head is sent: the answer must come without waiting for the body. The
    # route's limit is the largest kind's (a file: 25 MiB); an image is then held to its
    # own 10 MiB once its part is in (test_a_file_just_over_the_limit...).
    answer = raw_request(server.port, upload_head(token, "b", f"Content-Length: {26 * MIB}"))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    assert stored(tmp_path) == [] and upload_temporaries(tmp_path) == []


def test_a_chunked_upload_is_413_as_soon_as_it_passes_the_limit(
    server: ApiServer, token: str, tmp_path: Path
) -> None:
    part_head = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
                 b"Content-Type: image/png\r\n\r\n")
    piece = os.urandom(64 * 1024)

    def chunked() -> Iterator[bytes]:
        yield b"%x\r\n%s\r\n" % (len(part_head), part_head)
        sent = len(part_head)
        # One piece past the route's limit, and then nothing more: no final chunk, no
        # closing boundary. Only a server that stops at the limit can answer now.
        while sent <= 26 * MIB:
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
            sent += len(piece)

    answer = raw_request(server.port, upload_head(token, "b", "Transfer-Encoding: chunked"),
                         chunked())
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    assert stored(tmp_path) == [] and upload_temporaries(tmp_path) == []


def test_a_file_just_over_the_limit_is_413_and_nothing_is_left(
    server: ApiServer, token: str, tmp_path: Path
) -> None:
    # The body fits the route's allowance for multipart framing; the file itself does
    # not fit the 10 MiB limit.
    content = b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * MIB - 7)
    message = error(upload(server, token, content), 413)
    assert "10,485,760 bytes" in message
    assert stored(tmp_path) == [] and upload_temporaries(tmp_path) == []


def test_the_upload_limit_is_configurable(tmp_path: Path) -> None:
    with media_server(tmp_path, max_upload_bytes=100_000) as server:
        token = server.user_with_token()[1]
        small = encode(picture((100, 100)), "PNG")
        assert upload(server, token, small).status == 200
        big = encode(Image.frombytes("RGB", (200, 200), os.urandom(120_000)), "PNG")
        assert len(big) > 100_000
        assert "100,000 bytes" in error(upload(server, token, big), 413)


def png_bomb(width: int, height: int) -> bytes:
    """A real PNG of `width` x `height` black 1-bit pixels: a few KiB that decode to
    width*height pixels (the rows are streamed through zlib, never held whole)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte "None" + the packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [9_000, 30_000])
def test_a_decompression_bomb_is_413_with_a_clear_message(
    server: ApiServer, token: str, tmp_path: Path, side: int
) -> None:
    bomb = png_bomb(side, side)
    assert len(bomb) < 200_000  # small on the wire...
    message = error(upload(server, token, bomb, filename="bomb.png"), 413)
    # ...and refused for what it would become, whichever check (ours at 64 million
    # pixels, Pillow's at twice its own limit) sees it first.
    assert "too large to process" in message and "decompression bomb" in message
    assert "pixels" in message
    assert stored(tmp_path) == []


def test_too_many_frames_is_413(tmp_path: Path) -> None:
    with media_server(tmp_path, max_frames=4) as server:
        token = server.user_with_token()[1]
        frames = animation((30, 30), frames=5)
        content = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
        assert "5 frames; at most 4" in error(upload(server, token, content), 413)


# --- storage -----------------------------------------------------------------------------

def test_the_same_image_twice_is_stored_once_under_the_same_url(
    server: ApiServer, token: str, tmp_path: Path
) -> None:
    content = encode(picture((800, 600)), "JPEG", quality=92)
    first = upload(server, token, content, filename="a.jpg").data
    files = stored(tmp_path)
    assert len(files) == 2  # the image and its thumbnail
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}

    other = server.user_with_token()[1]
    second = upload(server, other, content, filename="b.jpeg").data
    assert second == first
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stored(tmp_path)} == before

    # Without the remembered result the image is processed again, lands on the same
    # content address, and still nothing is written.
    for entry in files_under(tmp_path / "data" / "media-index"):
        entry.unlink()
    third = upload(server, token, content).data
    assert third == first
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stored(tmp_path)} == before


def test_a_remembered_upload_whose_file_is_gone_is_stored_again(
    server: ApiServer, token: str, tmp_path: Path
) -> None:
    content = encode(picture((500, 500)), "PNG")
    first = upload(server, token, content).data
    path = tmp_path / "resource" / first["url"][len("/resource/"):]
    path.unlink()
    again = upload(server, token, content).data
    assert again == first and path.is_file()
    fetch(server, first["url"])


def test_stored_files_are_readable_by_others(server: ApiServer, token: str,
                                             tmp_path: Path) -> None:
    data = upload(server, token, encode(picture((50, 50)), "GIF")).data
    path = tmp_path / "resource" / data["url"][len("/resource/"):]
    assert path.stat().st_mode & 0o777 == 0o644


# --- cleaning ----------------------------------------------------------------------------

GPS = {1: "N", 2: (48.0, 51.0, 29.5), 3: "E", 4: (2.0, 17.0, 40.2), 5: 0, 6: 35.0}


def test_a_jpeg_comes_back_without_its_gps_exif_and_upright(
    server: ApiServer, token: str
) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."   # Make
    exif[0x0112] = 6               # Orientation: the camera was turned 90° clockwise
    exif[0x8825] = GPS             # GPSInfo
    img = picture((200, 100))
    content = encode(img, "JPEG", exif=exif, comment=b"taken at home",
                     xmp=b"<x:xmpmeta>home sweet home</x:xmpmeta>")
    with Image.open(io.BytesIO(content)) as check:
        assert check.getexif().get_ifd(0x8825)  # the test file really has GPS

    data = upload(server, token, content, filename="IMG_0001.JPG").data
    assert (data["width"], data["height"]) == (100, 200)  # rotated upright
    body = check_stored_reply(server, data)
    for secret in (b"Exif", b"SpyCam", b"taken at home", b"home sweet home"):
        assert secret not in body
    with Image.open(io.BytesIO(body)) as back:
        assert len(back.getexif()) == 0
        assert not back.getexif().get_ifd(0x8825)
        assert not {"exif", "xmp", "comment"} & set(back.info)
        assert back.size == (100, 200)
        # The navy corner (top left before turning) is now at the top right.
        assert back.convert("RGB").getpixel((90, 10))[2] > 80


def test_png_text_and_exif_chunks_are_dropped(server: ApiServer, token: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "my address is 1 Secret Lane")
    exif = Image.Exif()
    exif[0x8825] = GPS
    content = encode(picture((64, 64), "RGBA"), "PNG", pnginfo=info, exif=exif)
    body = check_stored_reply(server, upload(server, token, content).data)
    assert b"Secret Lane" not in body and b"eXIf" not in body
    with Image.open(io.BytesIO(body)) as back:
        assert back.mode == "RGBA" and len(back.getexif()) == 0


def test_large_images_are_downscaled_to_2048_on_the_long_side(
    server: ApiServer, token: str
) -> None:
    data = upload(server, token, encode(picture((4000, 3000)), "JPEG")).data
    assert (data["width"], data["height"]) == (2048, 1536)
    with Image.open(io.BytesIO(fetch(server, data["url"]).body)) as back:
        assert back.size == (2048, 1536)
    data = upload(server, token, encode(picture((1000, 2500)), "PNG")).data
    assert (data["width"], data["height"]) == (819, 2048)


def test_the_downscale_bound_and_thumbnail_size_are_configurable(tmp_path: Path) -> None:
    with media_server(tmp_path, max_side=500, thumb_side=100) as server:
        token = server.user_with_token()[1]
        data = upload(server, token, encode(picture((1000, 400)), "WEBP")).data
        assert (data["width"], data["height"]) == (500, 200)
        assert (data["thumb_width"], data["thumb_height"]) == (100, 40)


# --- thumbnails --------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "thumb"), [
    ((1000, 500), (320, 160)),
    ((500, 1000), (160, 320)),
    ((3000, 1500), (320, 160)),
    ((321, 321), (320, 320)),
])
def test_thumbnails_have_a_long_side_of_320(
    server: ApiServer, token: str, size: tuple[int, int], thumb: tuple[int, int]
) -> None:
    data = upload(server, token, encode(picture(size), "JPEG")).data
    assert data["thumb"] != data["url"]
    assert (data["thumb_width"], data["thumb_height"]) == thumb
    served = fetch(server, data["thumb"])
    assert served.header("content-type") == "image/jpeg"
    assert served.header("cache-control") == "public, max-age=31536000, immutable"
    with Image.open(io.BytesIO(served.body)) as back:
        assert (back.format, back.size) == ("JPEG", thumb)


def test_a_transparent_image_gets_a_png_thumbnail(server: ApiServer, token: str) -> None:
    data = upload(server, token, encode(picture((800, 400), "RGBA"), "WEBP")).data
    with Image.open(io.BytesIO(fetch(server, data["thumb"]).body)) as back:
        assert (back.format, back.size, back.mode) == ("PNG", (320, 160), "RGBA")
        assert back.getpixel((319, 159))[3] == 0  # the transparent corner stays so


def test_an_image_no_larger_than_a_thumbnail_is_its_own_thumbnail(
    server: ApiServer, token: str, tmp_path: Path
) -> None:
    data = upload(server, token, encode(picture((320, 100)), "PNG")).data
    assert data["thumb"] == data["url"]
    assert (data["thumb_width"], data["thumb_height"]) == (320, 100)
    assert len(stored(tmp_path)) == 1


# --- who may upload ----------------------------------------------------------------------

def test_no_upload_without_a_token(server: ApiServer, tmp_path: Path) -> None:
    content = encode(picture((50, 50)), "PNG")
    reply = upload(server, None, content)
    assert "login" in error(reply, 401)
    assert reply.header("www-authenticate") == 'Bearer realm="fastim"'
    assert "invalid" in error(upload(server, "not-a-token", content), 401)
    assert stored(tmp_path) == [] and upload_temporaries(tmp_path) == []


def test_uploads_are_rate_limited_per_user(tmp_path: Path) -> None:
    with media_server(tmp_path, rate_limit=2, rate_window=3600) as server:
        token = server.user_with_token()[1]
        content = encode(picture((40, 40)), "PNG")
        assert upload(server, token, content).status == 200
        assert upload(server, token, b"not an image").status == 415  # counts as well
        reply = upload(server, token, content)
        assert "too many uploads" in error(reply, 429)
        assert 3000 < int(reply.header("retry-after") or 0) <= 3600
        # Another user has an allowance of their own.
        assert upload(server, server.user_with_token()[1], content).status == 200


# --- in a chat message -------------------------------------------------------------------

def test_an_uploaded_image_is_sent_as_media_4(server: ApiServer) -> None:
    alice, ta = server.user_with_token()
    bob, tb = server.user_with_token()
    befriend(server, ta, bob, tb)
    data = upload(server, ta, encode(picture((900, 600)), "JPEG")).data

    async def scenario() -> None:
        a = await ChatClient.open(server, ta)
        b = await ChatClient.open(server, tb)
        await a.send(cmd=10, dstid=bob["id"], media=4, url=data["url"], pic=data["thumb"],
                     cid="img-1")
        ack = await a.expect(lambda f: f.get("cid") == "img-1")
        assert ack["cmd"] == 1, ack
        got = await b.message()
        assert (got["media"], got["url"], got["pic"]) == (4, data["url"], data["thumb"])
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_an_image_message_must_name_an_upload_that_exists_or_a_sticker(
        server: ApiServer) -> None:
    # The outside attack: any /asset/ path (/asset/js/app.js) or an upload that never
    # happened was stored and delivered as an image.
    alice, ta = server.user_with_token()
    bob, tb = server.user_with_token()
    befriend(server, ta, bob, tb)
    data = upload(server, ta, encode(picture((300, 200)), "PNG")).data
    sticker = server.get("/sticker/packs").list["rows"][0]["assets"][0]["url"]
    never = "/resource/ab/ab" + "0" * 62 + ".png"
    refused = [
        ({"url": "/asset/js/app.js"}, "url /asset/js/app.js is not a sticker of this server"),
        ({"url": "/asset/stickers/cat/missing.svg"}, "is not a sticker of this server"),
        ({"url": never}, f"url {never} is not an uploaded image: nothing was uploaded"),
        ({"url": data["url"].rsplit(".", 1)[0] + ".gif"}, "nothing was uploaded under"),
        ({"url": "/resource/index.html"}, "is not the name of an uploaded image"),
        ({"url": data["url"], "pic": "/asset/img/logo.png"}, "pic /asset/img/logo.png is not"),
        ({"url": "/asset//stickers/cat/hello.svg"}, "url has an empty path segment ('//')"),
    ]

    async def scenario() -> None:
        a = await ChatClient.open(server, ta)
        b = await ChatClient.open(server, tb)
        for n, (links, words) in enumerate(refused):
            await a.send(cmd=10, dstid=bob["id"], media=4, cid=f"bad{n}", **links)
            reply = await a.expect(lambda f, n=n: f.get("cid") == f"bad{n}")
            assert reply["error"] == "bad_url" and words in reply["msg"], (links, reply)
        await b.no_more_messages()
        for n, links in enumerate(({"url": data["url"], "pic": data["thumb"]},
                                   {"url": sticker, "pic": sticker})):
            await a.send(cmd=10, dstid=bob["id"], media=4, cid=f"ok{n}", **links)
            ack = await a.expect(lambda f, n=n: f.get("cid") == f"ok{n}")
            assert ack["cmd"] == 1, ack
            assert (await b.message())["url"] == links["url"]
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_image_links_name_uploads_by_their_digest_and_stickers_by_their_pack(
        tmp_path: Path) -> None:
    from fastim.media import ImageLinks

    digest = hashlib.sha256(b"x").hexdigest()
    (tmp_path / digest[:2]).mkdir()
    (tmp_path / digest[:2] / f"{digest}.webp").write_bytes(b"x")
    links = ImageLinks(tmp_path, ["/asset/stickers/cat/hello.svg"])
    assert links.problem(f"/resource/{digest[:2]}/{digest}.webp") is None
    assert links.problem("/asset/stickers/cat/hello.svg") is None
    for url in (f"/resource/{digest[:2]}/{digest}.png",  # another type: no such file
                f"/resource/{digest}.webp", f"/resource/00/{digest}.webp",
                f"/resource/{digest[:2]}/{digest.upper()}.webp",
                f"/resource/{digest[:2]}/{digest}.webp.html", "/resource/.incoming/x",
                "/asset/stickers/cat/info.json", "/asset/js/app.js"):
        assert links.problem(url), url


def test_a_gif_with_a_trailer_is_stored_without_it(server: ApiServer, token: str) -> None:
    """A GIF plus an HTML page after its trailer was stored and served byte for
    byte (immutable, for a year). What is stored ends at the GIF's trailer."""
    gif = encode(picture((30, 20)).convert("P"), "GIF")
    assert gif.endswith(b"\x3b")
    smuggled = gif + b"<html><script>alert(document.cookie)</script></html>"
    data = upload(server, token, smuggled, filename="cat.gif").data
    served = fetch(server, data["url"])
    assert served.body == gif
    assert b"<script>" not in served.body
