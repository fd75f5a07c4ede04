"""The opening handshake (RFC 6455 §4) without sockets: the §1.3 key, the server's checks
with their HTTP statuses, the client's checks of the answer, and the head parser."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fastim.ws.exceptions import InvalidHandshake
from fastim.ws.handshake import (
    MAX_HEAD_SIZE,
    Headers,
    HeadReader,
    Response,
    ServerAccept,
    accept_headers,
    accept_key,
    accept_response,
    build_request,
    check_request,
    check_response,
    client_headers,
    generate_key,
    parse_request,
    parse_response,
    reject_response,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_rfc_1_3_accept_key() -> None:
    assert accept_key(KEY) == ACCEPT


def test_generated_keys_are_fresh_16_byte_nonces() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(key)) == 16 for key in keys)


def good_headers(**changes: str | None) -> list[tuple[str, str]]:
    fields: dict[str, str | None] = {
        "Host": "server.example.com",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
        "Origin": "http://example.com",
    }
    fields.update(changes)
    return [(name, value) for name, value in fields.items() if value is not None]


def refused(method: str = "GET", headers: Any = None, **kwargs: Any) -> InvalidHandshake:
    with pytest.raises(InvalidHandshake) as info:
        check_request(method, good_headers() if headers is None else headers, **kwargs)
    return info.value


def test_a_valid_request_is_accepted() -> None:
    accepted = check_request("GET", good_headers())
    assert accepted == ServerAccept(KEY)
    head = accept_response(accept_headers(accepted, [("Set-Cookie", "a=b")]))
    assert head == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSet-Cookie: a=b\r\n\r\n"
    )


def test_token_lists_in_any_case() -> None:
    headers = good_headers(Upgrade="WebSocket", Connection="keep-alive, UPGRADE")
    assert check_request("GET", headers).key == KEY


def test_method_must_be_get() -> None:
    error = refused("POST")
    assert error.status == 405 and ("Allow", "GET") in error.headers


def test_http_1_1_required() -> None:
    assert refused(version="HTTP/1.0").status == 400


@pytest.mark.parametrize("host", [None, "twice"])
def test_host_required_once(host: str | None) -> None:
    headers = good_headers(Host=None)
    if host == "twice":
        headers += [("Host", "a"), ("host", "b")]
    assert refused(headers=headers).status == 400


@pytest.mark.parametrize("upgrade", [None, "h2c"])
def test_upgrade_websocket_required(upgrade: str | None) -> None:
    error = refused(headers=good_headers(Upgrade=upgrade))
    assert error.status == 426
    assert ("Upgrade", "websocket") in error.headers
    assert ("Sec-WebSocket-Version", "13") in error.headers


@pytest.mark.parametrize("connection", [None, "keep-alive"])
def test_connection_upgrade_required(connection: str | None) -> None:
    assert refused(headers=good_headers(Connection=connection)).status == 400


@pytest.mark.parametrize("version", [None, "8", "13, 8", "14"])
def test_version_13_required_else_426(version: str | None) -> None:
    error = refused(headers=good_headers(**{"Sec-WebSocket-Version": version}))
    assert error.status == 426
    assert ("Sec-WebSocket-Version", "13") in error.headers


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "not base64!",
        base64.b64encode(bytes(15)).decode(),
        base64.b64encode(bytes(17)).decode(),
        "dGhlIHNhbXBsZSBub25jZQ",  # missing padding
        "dGhlIHNhbXBsZSBub25jZQ==é",
    ],
)
def test_key_must_be_base64_of_16_bytes(key: str | None) -> None:
    error = refused(headers=good_headers(**{"Sec-WebSocket-Key": key}))
    assert error.status == 400
    assert "Sec-WebSocket-Key" in error.reason


def test_repeated_key_is_refused() -> None:
    assert refused(headers=good_headers() + [("Sec-WebSocket-Key", KEY)]).status == 400


def test_origin_list_and_hook() -> None:
    assert check_request("GET", good_headers(), origins=["http://example.com"]).key == KEY
    assert refused(origins=["https://other.example"]).status == 403
    no_origin = good_headers(Origin=None)
    assert check_request("GET", no_origin, origins=[None]).key == KEY
    assert refused(check_origin=lambda origin: origin is None).status == 403
    assert check_request("GET", good_headers(), check_origin=lambda origin: True).key == KEY


def test_subprotocol_choice() -> None:
    headers = good_headers() + [
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Protocol", "v2"),
    ]
    accepted = check_request("GET", headers, subprotocols=["v2", "chat"])
    assert accepted.subprotocol == "v2"
    assert ("Sec-WebSocket-Protocol", "v2") in accepted.headers
    assert check_request("GET", headers, subprotocols=["other"]).subprotocol is None
    # Without any offer, no subprotocol whatever the server supports.
    assert check_request("GET", good_headers(), subprotocols=["chat"]).subprotocol is None


def test_select_subprotocol_hook() -> None:
    headers = good_headers(**{"Sec-WebSocket-Protocol": "a, b"})
    seen: list[Any] = []

    def pick_last(offered: Any, supported: Any) -> str:
        seen.append((list(offered), list(supported)))
        return str(offered[-1])

    accepted = check_request("GET", headers, select_subprotocol=pick_last)
    assert accepted.subprotocol == "b"
    assert seen == [(["a", "b"], [])]
    assert check_request("GET", headers, select_subprotocol=lambda o, s: None).subprotocol is None
    assert refused(headers=headers, select_subprotocol=lambda o, s: "zzz").status == 500


def test_extension_negotiation_hook() -> None:
    headers = good_headers(**{"Sec-WebSocket-Extensions": "permessage-deflate"})
    marker = object()
    accepted = check_request(
        "GET", headers, negotiate_extensions=lambda offers: ("permessage-deflate", marker)
    )
    assert accepted.extension is marker
    assert ("Sec-WebSocket-Extensions", "permessage-deflate") in accepted.headers
    declined = check_request("GET", headers, negotiate_extensions=lambda offers: (None, None))
    assert declined.extension is None and declined.headers == []
    # With no negotiator, offers are ignored: the answer names no extension.
    assert check_request("GET", headers).headers == []


def test_reject_response_is_a_complete_http_answer() -> None:
    error = InvalidHandshake(426, "need version 13", [("Sec-WebSocket-Version", "13")])
    wire = reject_response(error)
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in head
    assert b"\r\nContent-Length: 16\r\n" in head
    assert body == b"need version 13\n"
    assert reject_response(InvalidHandshake(599, "odd")).startswith(b"HTTP/1.1 599 Error\r\n")


# -- parsing heads -------------------------------------------------------------------------


def test_parse_request() -> None:
    request = parse_request(
        b"GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nX-Thing:  spaced \t\r\nx-thing: two\r\n\r\n"
    )
    assert (request.method, request.target, request.version) == ("GET", "/chat?x=1", "HTTP/1.1")
    assert request.headers.get("X-THING") == "spaced"
    assert request.headers.get_all("x-thing") == ["spaced", "two"]


@pytest.mark.parametrize(
    "head",
    [
        b"GET /\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"G@T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/one\r\n\r\n",
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nName : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\x00\r\n\r\n",
    ],
)
def test_malformed_requests(head: bytes) -> None:
    with pytest.raises(InvalidHandshake) as info:
        parse_request(head)
    assert info.value.status == 400


def test_too_many_headers() -> None:
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"A%d: x\r\n" % i for i in range(200)) + b"\r\n"
    with pytest.raises(InvalidHandshake) as info:
        parse_request(head)
    assert info.value.status == 431


def test_parse_response() -> None:
    response = parse_response(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    assert (response.status, response.reason) == (101, "Switching Protocols")
    for bad in (b"HTTP/1.1 1O1 x\r\n\r\n", b"garbage\r\n\r\n", b"HTTP/1.1 101 ok\r\nbad\r\n\r\n"):
        with pytest.raises(InvalidHandshake) as info:
            parse_response(bad)
        assert info.value.status == 0


def test_headers_container() -> None:
    headers = Headers([("A", "1"), ("b", "2"), ("a", "3")])
    assert headers.get("a") == "1" and headers.get("missing") is None
    assert headers.get("missing", "d") == "d"
    assert "B" in headers and "c" not in headers and 3 not in headers
    assert len(headers) == 3 and list(headers) == headers.items()
    assert headers == Headers(headers.items()) and headers != headers.items()
    assert "Headers(" in repr(headers)
    assert Headers([("Connection", "keep-alive,  Upgrade, ,")]).tokens("connection") == [
        "keep-alive",
        "upgrade",
    ]


# -- client side ---------------------------------------------------------------------------


def test_client_request() -> None:
    headers = client_headers(
        "example.com:8080",
        KEY,
        origin="http://example.com",
        subprotocols=["chat", "v2"],
        extensions="permessage-deflate",
        extra_headers=[("Cookie", "a=b")],
    )
    wire = build_request("/chat?x=1", headers)
    request = parse_request(wire)
    assert request.target == "/chat?x=1"
    assert request.headers.get("Sec-WebSocket-Protocol") == "chat, v2"
    assert request.headers.get("Cookie") == "a=b"
    # What a fastim client sends, a fastim server accepts.
    assert check_request(request.method, request.headers).key == KEY


def answer(status: int = 101, **changes: str | None) -> Response:
    fields: dict[str, str | None] = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": ACCEPT,
    }
    fields.update(changes)
    headers = Headers((k, v) for k, v in fields.items() if v is not None)
    return Response(status, "x", "HTTP/1.1", headers)


def test_client_accepts_a_good_answer() -> None:
    assert check_response(answer(), KEY) == (None, None)
    chosen = answer(**{"Sec-WebSocket-Protocol": "v2"})
    assert check_response(chosen, KEY, subprotocols=["chat", "v2"]) == ("v2", None)


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (answer(status=200), 200),
        (answer(Upgrade=None), 101),
        (answer(Connection="close"), 101),
        (answer(**{"Sec-WebSocket-Accept": "wrong"}), 101),
        (answer(**{"Sec-WebSocket-Accept": None}), 101),
        (answer(**{"Sec-WebSocket-Protocol": "not-offered"}), 101),
        (answer(**{"Sec-WebSocket-Extensions": "permessage-deflate"}), 101),
    ],
)
def test_client_refuses_a_bad_answer(response: Response, status: int) -> None:
    with pytest.raises(InvalidHandshake) as info:
        check_response(response, KEY, subprotocols=["chat"])
    assert info.value.status == status


def test_client_extension_acceptance_hook() -> None:
    marker = object()
    response = answer(**{"Sec-WebSocket-Extensions": "permessage-deflate"})
    seen: list[str] = []

    def accept(value: str) -> object:
        seen.append(value)
        return marker

    assert check_response(response, KEY, accept_extensions=accept) == (None, marker)
    assert seen == ["permessage-deflate"]


# -- reading a head as it arrives (what the client and the server share) -------------------

HEAD = b"GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n"


@pytest.mark.parametrize("cut", range(1, len(HEAD)))
def test_head_reader_finds_the_end_across_any_split(cut: int) -> None:
    reader = HeadReader(status=431, what="request")
    assert reader.feed(HEAD[:cut]) is None
    assert reader.feed(HEAD[cut:] + b"\x81\x00") == (HEAD, b"\x81\x00")


def test_head_reader_byte_by_byte() -> None:
    reader = HeadReader(status=431, what="request")
    results = [reader.feed(HEAD[i : i + 1]) for i in range(len(HEAD))]
    assert results[:-1] == [None] * (len(HEAD) - 1)
    assert results[-1] == (HEAD, b"")


@pytest.mark.parametrize(
    "chunks",
    [
        [b"HTTP/1.1 101 x\r\nX: " + b"y" * MAX_HEAD_SIZE],  # no end in sight
        [b"HTTP/1.1 101 x\r\n", b"X: " + b"y" * MAX_HEAD_SIZE + b"\r\n\r\n"],  # an end, too late
    ],
)
def test_head_reader_refuses_a_head_over_the_limit(chunks: list[bytes]) -> None:
    reader = HeadReader(status=0, what="response")
    with pytest.raises(InvalidHandshake) as info:
        for chunk in chunks:
            reader.feed(chunk)
    assert (info.value.status, info.value.reason) == (0, "response head too large")


def test_head_reader_accepts_a_head_of_exactly_the_limit() -> None:
    head = b"GET / HTTP/1.1\r\nX: "
    head += b"y" * (MAX_HEAD_SIZE - len(head) - 4) + b"\r\n\r\n"
    assert len(head) == MAX_HEAD_SIZE
    assert HeadReader(status=431, what="request").feed(head) == (head, b"")
