"""Static files over real sockets: types, validators and 304, Range, traversal refused."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_support import Client, ServerThread, exchange, request

from fastim.http import Router
from fastim.http.static import SMALL_FILE_LIMIT, safe_relative_path

CSS = b"body { color: #333; }\n" * 100  # > 1 KiB: worth gzipping
BIG = bytes(range(256)) * ((SMALL_FILE_LIMIT // 256) + 100)  # streamed, not cached


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "asset"
    (root / "css").mkdir(parents=True)
    (root / "css" / "site.css").write_bytes(CSS)
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "app.js").write_bytes(b"console.log(1)\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (root / "data.unknownext").write_bytes(b"?")
    (root / "big.bin").write_bytes(BIG)
    (root / ".hidden").write_bytes(b"secret dotfile")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner")
    (root / "a%2e%2e").mkdir()  # a real directory whose *name* looks encoded
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"TOP SECRET")
    (tmp_path / "secret.txt").write_bytes(b"TOP SECRET")
    os.symlink(outside / "secret.txt", root / "link_file_out")
    os.symlink(outside, root / "link_dir_out")
    os.symlink(root / "hello.txt", root / "link_inside")
    return root


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest, tree: Path) -> Iterator[ServerThread]:
    router = Router()
    router.static("/asset/", tree)
    router.static("/resource", tree.parent / "outside", cache_control="public, max-age=86400")
    with ServerThread(router, request.param) as thread:
        yield thread


def get(server: ServerThread, target: str, headers: list[tuple[str, str]] | None = None,
        method: str = "GET"):  # type: ignore[no-untyped-def]
    return exchange(server, request(method, target, headers=headers),
                    head_request=method == "HEAD")


@pytest.mark.parametrize(("path", "content_type"), [
    ("/asset/css/site.css", "text/css; charset=utf-8"),
    ("/asset/hello.txt", "text/plain; charset=utf-8"),
    ("/asset/app.js", "text/javascript; charset=utf-8"),
    ("/asset/logo.png", "image/png"),
    ("/asset/data.unknownext", "application/octet-stream"),
    ("/asset/big.bin", "application/octet-stream"),
])
def test_content_types(server: ServerThread, path: str, content_type: str) -> None:
    response = get(server, path)
    assert response.status == 200
    assert response.header("content-type") == content_type
    assert response.header("x-content-type-options") == "nosniff"


def test_file_bytes_and_headers(server: ServerThread, tree: Path) -> None:
    response = get(server, "/asset/hello.txt")
    assert response.body == b"hello, world\n"
    assert response.header("cache-control") == "public, max-age=3600"
    assert response.header("accept-ranges") == "bytes"
    assert response.header("etag", ).startswith('"')
    assert response.header("last-modified", ).endswith("GMT")
    assert get(server, "/resource/secret.txt").header("cache-control") == "public, max-age=86400"


def test_large_file_is_streamed_whole(server: ServerThread) -> None:
    response = get(server, "/asset/big.bin")
    assert response.body == BIG
    assert response.header("content-length") == str(len(BIG))


def test_head_sends_no_body(server: ServerThread) -> None:
    with server.connect() as sock:
        client = Client(sock)
        for path in ("/asset/hello.txt", "/asset/big.bin"):
            client.send(request("HEAD", path))
            head = client.read_response(head_request=True)
            assert head.status == 200
            assert int(head.header("content-length") or 0) > 0
        # Nothing but the two heads came back: the next response parses cleanly.
        client.send(request("GET", "/asset/hello.txt"))
        assert client.read_response().body == b"hello, world\n"


# -- validators and 304 ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/asset/hello.txt", "/asset/big.bin"])
def test_304_on_a_repeated_request_with_if_none_match(server: ServerThread, path: str) -> None:
    first = get(server, path)
    etag = first.header("etag")
    assert etag
    again = get(server, path, [("If-None-Match", etag)])
    assert again.status == 304
    assert again.body == b""
    assert again.header("etag") == etag
    assert again.header("content-length") is None
    assert get(server, path, [("If-None-Match", f'"other", W/{etag}')]).status == 304
    assert get(server, path, [("If-None-Match", "*")]).status == 304
    assert get(server, path, [("If-None-Match", '"stale"')]).status == 200


def test_304_with_if_modified_since(server: ServerThread) -> None:
    last_modified = get(server, "/asset/hello.txt").header("last-modified")
    assert last_modified
    assert get(server, "/asset/hello.txt", [("If-Modified-Since", last_modified)]).status == 304
    old = "Sat, 01 Jan 2000 00:00:00 GMT"
    assert get(server, "/asset/hello.txt", [("If-Modified-Since", old)]).status == 200
    assert get(server, "/asset/hello.txt", [("If-Modified-Since", "garbage")]).status == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    assert get(server, "/asset/hello.txt", [("If-None-Match", '"stale"'),
                                            ("If-Modified-Since", last_modified)]).status == 200


def test_changed_file_gets_a_new_etag(server: ServerThread, tree: Path) -> None:
    first = get(server, "/asset/hello.txt")
    (tree / "hello.txt").write_bytes(b"changed!")
    os.utime(tree / "hello.txt", ns=(1_000_000_000, 1_000_000_000))
    second = get(server, "/asset/hello.txt", [("If-None-Match", first.header("etag") or "")])
    assert second.status == 200
    assert second.body == b"changed!"
    assert second.header("etag") != first.header("etag")


# -- Range ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, data", [("/asset/hello.txt", b"hello, world\n"),
                                        ("/asset/big.bin", BIG)])
def test_range_requests(server: ServerThread, path: str, data: bytes) -> None:
    size = len(data)
    response = get(server, path, [("Range", "bytes=0-4")])
    assert response.status == 206
    assert response.body == data[:5]
    assert response.header("content-range") == f"bytes 0-4/{size}"
    response = get(server, path, [("Range", "bytes=-3")])
    assert (response.status, response.body) == (206, data[-3:])
    assert response.header("content-range") == f"bytes {size - 3}-{size - 1}/{size}"
    response = get(server, path, [("Range", "bytes=7-")])
    assert (response.status, response.body) == (206, data[7:])
    response = get(server, path, [("Range", f"bytes=5-{size + 100}")])
    assert (response.status, response.body) == (206, data[5:])


@pytest.mark.parametrize("path", ["/asset/hello.txt", "/asset/big.bin"])
def test_unsatisfiable_range_is_416(server: ServerThread, path: str) -> None:
    size = len(get(server, path).body)
    response = get(server, path, [("Range", f"bytes={size}-")])
    assert response.status == 416
    assert response.header("content-range") == f"bytes */{size}"
    assert get(server, path, [("Range", "bytes=-0")]).status == 416


@pytest.mark.parametrize("value", ["bytes=0-1,3-4", "items=0-4", "bytes=5-2", "bytes=x-y",
                                   "bytes=-", "bytes"])
def test_ranges_we_ignore_give_the_whole_file(server: ServerThread, value: str) -> None:
    response = get(server, "/asset/hello.txt", [("Range", value)])
    assert (response.status, response.body) == (200, b"hello, world\n")


def test_if_range_with_a_stale_validator_gives_the_whole_file(server: ServerThread) -> None:
    etag = get(server, "/asset/big.bin").header("etag") or ""
    assert get(server, "/asset/big.bin", [("Range", "bytes=0-9"),
                                          ("If-Range", etag)]).status == 206
    response = get(server, "/asset/big.bin", [("Range", "bytes=0-9"), ("If-Range", '"old"')])
    assert response.status == 200
    assert len(response.body) == len(BIG)


# -- gzip -------------------------------------------------------------------------------------------


def test_text_files_are_gzipped_for_clients_that_accept_it(server: ServerThread) -> None:
    plain = get(server, "/asset/css/site.css")
    zipped = get(server, "/asset/css/site.css", [("Accept-Encoding", "gzip, deflate")])
    assert zipped.header("content-encoding") == "gzip"
    assert gzip.decompress(zipped.body) == CSS == plain.body
    assert zipped.header("vary") == plain.header("vary") == "Accept-Encoding"
    assert zipped.header("etag") != plain.header("etag")  # another representation
    # Either representation's ETag validates.
    for etag in (zipped.header("etag"), plain.header("etag")):
        assert get(server, "/asset/css/site.css", [("If-None-Match", etag or "")]).status == 304


# -- no way out of the root --------------------------------------------------------------------

TRAVERSALS = [
    "/asset/../secret.txt",
    "/asset/sub/../../secret.txt",
    "/asset/%2e%2e/secret.txt",
    "/asset/%2E%2E/secret.txt",
    "/asset/.%2e/secret.txt",
    "/asset/%2e./secret.txt",
    "/asset/..%2fsecret.txt",
    "/asset/..%2Fsecret.txt",
    "/asset/%2e%2e%2fsecret.txt",
    "/asset/sub%2f..%2f..%2fsecret.txt",
    "/asset/..\\secret.txt",
    "/asset/..%5csecret.txt",
    "/asset/%5c..%5csecret.txt",
    "/asset/%252e%252e/secret.txt",
    "/asset/hello.txt%00.png",
    "/asset/hello.txt%00",
    "/asset/%00",
    "/asset/%c0%ae%c0%ae/secret.txt",
    "/asset/link_file_out",
    "/asset/link_dir_out/secret.txt",
    "/asset/.hidden",
    "/asset/%2ehidden",
    "/asset/./hello.txt",
    "/asset//hello.txt",
    "/asset/sub/",
    "/asset/sub",
    "/asset/",
    "/asset/a%2e%2e/",
    "/asset/nonexistent.txt",
    "http://test/asset/../secret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_every_traversal_shape_is_404(server: ServerThread, target: str) -> None:
    response = get(server, target)
    assert response.status == 404
    assert b"SECRET" not in response.body and b"dotfile" not in response.body


def test_symlinks_inside_the_root_are_served(server: ServerThread) -> None:
    assert get(server, "/asset/link_inside").body == b"hello, world\n"


def test_safe_relative_path_examples() -> None:
    assert safe_relative_path("css/site.css") == "css/site.css"
    assert safe_relative_path("a%20b.txt") == "a b.txt"
    assert safe_relative_path("%E2%9C%93.txt") == "\u2713.txt"
    for bad in ("", "..", "a/../b", "a\\b", "%2e%2e", "a%2fb", "a%00", "%ff", "a/", ".x", "a//b"):
        assert safe_relative_path(bad) is None, bad
