"""The sans-I/O request parser, without sockets: framing, smuggling guards, limits,
and hypothesis properties over splits and arbitrary bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastim.http.errors import HTTPError
from fastim.http.parser import (
    CONNECTION_CLOSED,
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    RequestHead,
    RequestParser,
)

ERROR_STATUSES = {400, 413, 414, 431, 505}


def drain(parser: RequestParser, out: list[Any]) -> bool:
    """Pull events into `out` (merging Data, auto-continuing after each request).
    Returns False once the stream is finished (closed or failed)."""
    while True:
        try:
            event = parser.next_event()
        except HTTPError as exc:
            out.append(("error", exc.status))
            return False
        if event is NEED_DATA:
            return True
        if event is PAUSED:
            parser.start_next_cycle()
            continue
        if event is CONNECTION_CLOSED:
            out.append(("closed",))
            return False
        if isinstance(event, RequestHead):
            out.append(("head", event.method, event.target, event.http_version,
                        [(n.lower(), v) for n, v in event.headers.raw], event.keep_alive))
        elif isinstance(event, Data):
            if out and out[-1][0] == "data":
                out[-1] = ("data", out[-1][1] + event.data)
            else:
                out.append(("data", event.data))
        elif isinstance(event, EndOfMessage):
            out.append(("end",))


def parse(chunks: list[bytes], eof: bool = True, **limits: Any) -> list[Any]:
    parser = RequestParser(**limits)
    out: list[Any] = []
    for chunk in chunks:
        parser.receive_data(chunk)
        if not drain(parser, out):
            return out
    if eof:
        parser.receive_eof()
        drain(parser, out)
    return out


def status_of(data: bytes, **limits: Any) -> int | None:
    events = parse([data], **limits)
    return events[-1][1] if events and events[-1][0] == "error" else None


# -- well-formed requests ---------------------------------------------------------------


def test_simple_get_and_pipelined_requests() -> None:
    events = parse([
        b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    ])
    assert events == [
        ("head", "GET", "/a?x=1", "1.1", [("host", "h"), ("x-dup", "1"), ("x-dup", "2")], True),
        ("end",),
        ("head", "POST", "/b", "1.1", [("host", "h"), ("content-length", "5")], True),
        ("data", b"hello"),
        ("end",),
        ("head", "GET", "/c", "1.1", [("host", "h"), ("connection", "close")], False),
        ("end",),
        ("closed",),
    ]


def test_headers_are_case_insensitive_and_keep_repeats() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nACCEPT: b\r\n\r\n")
    head = parser.next_event()
    assert isinstance(head, RequestHead)
    assert head.headers["accept"] == "a"
    assert head.headers.get_all("Accept") == ["a", "b"]
    assert "HOST" in head.headers
    assert head.headers.raw[1] == ("Accept", "a")


def test_http10_keep_alive_rules() -> None:
    events = parse([b"GET / HTTP/1.0\r\n\r\n"])
    assert events[0][5] is False
    events = parse([b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"])
    assert events[0][5] is True
    # HTTP/1.0 needs no Host field.
    assert events[1] == ("end",)


def test_higher_minor_version_is_handled_as_1_1() -> None:
    assert parse([b"GET / HTTP/1.7\r\nHost: h\r\n\r\n"])[0][3] == "1.1"


def test_chunked_body_with_extensions_and_trailers() -> None:
    events = parse([
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value;flag\r\nhello\r\n"
        b"6 ; q=\"a \\\" b\"\r\n world\r\n"
        b"0\r\nExpires: never\r\n\r\n"
    ])
    assert events[1:] == [("data", b"hello world"), ("end",), ("closed",)]


def test_leading_empty_lines_are_ignored() -> None:
    events = parse([b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"])
    assert events[0][:3] == ("head", "GET", "/")


def test_expect_continue_and_upgrade_are_reported() -> None:
    parser = RequestParser()
    parser.receive_data(
        b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
        b"Upgrade: WebSocket\r\nExpect: 100-continue\r\n\r\nrest"
    )
    head = parser.next_event()
    assert isinstance(head, RequestHead)
    assert head.upgrade == ["websocket"]
    assert head.expect_continue
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.next_event() is PAUSED
    assert parser.trailing_data == b"rest"


def test_upgrade_ignored_unless_connection_names_it() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")
    head = parser.next_event()
    assert isinstance(head, RequestHead) and head.upgrade == []


@pytest.mark.parametrize("fields", [
    b"Content-Length: 3, 3\r\n",
    b"Content-Length: 3\r\nContent-Length: 3\r\n",
    b"Content-Length: 3, 3\r\nContent-Length: 3\r\n",
    b"Content-Length: 3,\r\n",
])
def test_a_list_of_content_lengths_is_400_even_when_identical(fields: bytes) -> None:
    """RFC 9110 §8.6 allows merging identical values or refusing them; we refuse, as
    docs/security.md says (`2, 2` was once accepted), so nothing in front of us can
    read a list differently."""
    assert status_of(b"POST / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\nabc") == 400
    assert parse([b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"])[1] == (
        "data", b"abc")


def test_absolute_form_and_asterisk_targets() -> None:
    assert parse([b"GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n"])[0][2] == "http://h/x"
    assert parse([b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"])[0][2] == "*"
    assert status_of(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n") == 400


def test_paused_until_next_cycle() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(parser.next_event(), RequestHead)
    assert isinstance(parser.next_event(), EndOfMessage)
    assert parser.next_event() is PAUSED
    assert parser.next_event() is PAUSED
    parser.start_next_cycle()
    head = parser.next_event()
    assert isinstance(head, RequestHead) and head.target == "/2"


def test_eof_between_requests_is_a_clean_close() -> None:
    assert parse([b""]) == [("closed",)]


def test_eof_inside_a_request_is_a_400() -> None:
    assert parse([b"GET / HTTP/1.1\r\nHo"]) == [("error", 400)]
    assert parse([b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab"])[-1] == (
        "error", 400)
    assert parse([b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"])[
        -1] == ("error", 400)


# -- smuggling shapes and malformed input -------------------------------------------------

BAD_REQUESTS = {
    "both CL and TE": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE then CL": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 3\r\n\r\n0\r\n\r\n",
    "TE gzip": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
    "TE gzip, chunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "TE chunked twice": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n",
    "TE identity": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
    "TE xchunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
    "TE empty": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n",
    "TE in HTTP/1.0": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE with space before colon": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked"
                                  b"\r\n\r\n",
    "CL identical list": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\n\r\nab",
    "CL identical fields": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
                           b"Content-Length: 2\r\n\r\nab",
    "CL conflicting list": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabcd",
    "CL conflicting fields": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                             b"Content-Length: 4\r\n\r\nabcd",
    "CL plus sign": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
    "CL negative": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    "CL hex": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\nabc",
    "CL inner space": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n",
    "CL empty": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
    "CL unicode digit": "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ³\r\n\r\n".encode("latin-1"),
    "chunk size not hex": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"zz\r\n",
    "chunk size 0x prefix": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"0x5\r\nhello\r\n0\r\n\r\n",
    "chunk size negative": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"-5\r\n",
    "chunk size empty": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
    "chunk size overflow": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"1ffffffffffffffff\r\n",
    "chunk data too long": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"3\r\nabcd\r\n0\r\n\r\n",
    "chunk bare LF terminator": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"3\r\nabc\n0\r\n\r\n",
    "chunk size bare LF": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"3\nabc\r\n0\r\n\r\n",
    "chunk bad extension": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"3;\r\nabc\r\n0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n continued\r\n\r\n",
    "obs-fold tab": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\tcontinued\r\n\r\n",
    "bare LF head": b"GET / HTTP/1.1\nHost: h\n\n",
    "bare LF in one line": b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
    "bare CR": b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    "no colon": b"GET / HTTP/1.1\r\nHost h\r\n\r\n",
    "empty name": b"GET / HTTP/1.1\r\n: h\r\n\r\n",
    "NUL in value": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    "no Host in 1.1": b"GET / HTTP/1.1\r\n\r\n",
    "two Hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "lowercase version": b"GET / http/1.1\r\nHost: h\r\n\r\n",
    "two spaces": b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    "no version": b"GET /\r\nHost: h\r\n\r\n",
    "relative target": b"GET x HTTP/1.1\r\nHost: h\r\n\r\n",
    "non-ascii target": "GET /é HTTP/1.1\r\nHost: h\r\n\r\n".encode("latin-1"),
    "method with slash": b"G/T / HTTP/1.1\r\nHost: h\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_malformed_and_smuggling_shapes_are_400(name: str) -> None:
    assert status_of(BAD_REQUESTS[name]) == 400


def test_http_2_and_0_9_get_505() -> None:
    assert status_of(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n") == 505
    assert status_of(b"GET / HTTP/0.9\r\n\r\n") == 505


def test_error_state_is_sticky() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET / HTTP/1.1\nHost: h\n\n")
    with pytest.raises(HTTPError) as first:
        parser.next_event()
    with pytest.raises(HTTPError) as second:
        parser.next_event()
    assert first.value is second.value


def test_bare_lf_head_fails_before_the_head_is_complete() -> None:
    # A bare-LF head never contains CRLFCRLF; it must not wait for a timeout.
    assert parse([b"GET / HTTP/1.1\nHost: h\n"], eof=False) == [("error", 400)]


# -- limits --------------------------------------------------------------------------------


def test_request_line_too_long_is_414_even_before_it_ends() -> None:
    assert parse([b"GET /" + b"a" * 200], eof=False, max_request_line=100) == [("error", 414)]
    assert status_of(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
                     max_request_line=100) == 414


def test_header_section_too_large_is_431() -> None:
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 300 + b"\r\n"
    assert parse([big], eof=False, max_header_size=200) == [("error", 431)]
    assert status_of(big + b"\r\n", max_header_size=200) == 431


def test_too_many_header_fields_is_431() -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 10 + b"\r\n"
    assert status_of(head, max_header_count=10) == 431
    assert status_of(head, max_header_count=11) is None


def test_body_limit_is_checked_against_content_length_before_reading() -> None:
    parser = RequestParser(max_body_size=10)
    parser.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n")
    assert isinstance(parser.next_event(), RequestHead)
    with pytest.raises(HTTPError) as exc:
        parser.next_event()
    assert exc.value.status == 413


def test_body_limit_is_set_per_request_by_the_host() -> None:
    parser = RequestParser(max_body_size=10)
    parser.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n" + b"x" * 20)
    assert isinstance(parser.next_event(), RequestHead)
    parser.max_body_size = 100  # e.g. an upload route
    assert parser.next_event() == Data(b"x" * 20)


def test_chunked_body_limit_counts_every_chunk() -> None:
    body = b"5\r\naaaaa\r\n5\r\nbbbbb\r\n1\r\nc\r\n0\r\n\r\n"
    data = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    assert status_of(data, max_body_size=10) == 413
    assert status_of(data, max_body_size=11) is None


def test_huge_content_length_is_413_not_a_crash() -> None:
    data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + b"9" * 100 + b"\r\n\r\n"
    assert status_of(data) == 413


def test_long_chunk_size_line_is_400() -> None:
    data = (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;"
            + b"a" * 5000)
    assert parse([data], eof=False) [-1] == ("error", 400)


def test_trailer_section_is_bounded() -> None:
    data = (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            + b"X: y\r\n" * 100)
    assert parse([data], eof=False, max_header_size=200)[-1] == ("error", 431)


def test_buffer_stays_bounded_for_an_endless_head() -> None:
    parser = RequestParser(max_header_size=1000)
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n")
    assert parser.next_event() is NEED_DATA
    with pytest.raises(HTTPError):
        for _ in range(1000):
            parser.receive_data(b"X-Long: " + b"v" * 10 + b"\r\n")
            parser.next_event()
    assert parser.buffered_size < 1100


# -- hypothesis ----------------------------------------------------------------------------

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
                 min_size=1, max_size=12)
_value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e),
                 max_size=20).map(lambda v: v.strip())
_path = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~/%?=&", max_size=30).map(
    lambda p: "/" + p)


@st.composite
def valid_request(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    target = draw(_path)
    fields = [("Host", "example")]
    for _ in range(draw(st.integers(0, 4))):
        name = draw(_token)
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection",
                            "upgrade", "expect"):
            continue
        fields.append((name, draw(_value)))
    body = draw(st.binary(max_size=200))
    chunked = draw(st.booleans())
    if chunked:
        fields.append(("Transfer-Encoding", "chunked"))
        encoded = b""
        rest = body
        while rest:
            size = draw(st.integers(1, len(rest)))
            ext = draw(st.sampled_from([b"", b";a=b", b' ; q="x y"']))
            encoded += b"%x%s\r\n%s\r\n" % (size, ext, rest[:size])
            rest = rest[size:]
        encoded += b"0\r\n"
        if draw(st.booleans()):
            encoded += b"Trailer-Field: x\r\n"
        encoded += b"\r\n"
    else:
        fields.append(("Content-Length", str(len(body))))
        encoded = body
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
    raw = head.encode("latin-1") + b"\r\n" + encoded
    expected = [("head", method, target, "1.1", [(n.lower(), v) for n, v in fields], True)]
    if body:
        expected.append(("data", body))
    expected.append(("end",))
    return raw, expected


@st.composite
def request_stream(draw: st.DrawFn) -> tuple[bytes, list[Any], list[int]]:
    requests = draw(st.lists(valid_request(), min_size=1, max_size=4))
    data = b"".join(raw for raw, _ in requests)
    expected = [event for _, events in requests for event in events] + [("closed",)]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    return data, expected, cuts


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    pieces, last = [], 0
    for cut in cuts:
        pieces.append(data[last:cut])
        last = cut
    pieces.append(data[last:])
    return pieces


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(request_stream())
def test_any_split_of_a_valid_stream_parses_to_the_same_requests(
    case: tuple[bytes, list[Any], list[int]],
) -> None:
    data, expected, cuts = case
    assert parse([data]) == expected
    assert parse(split(data, cuts)) == expected


@settings(max_examples=300)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_arbitrary_bytes_give_requests_or_an_error_status(data: bytes, cuts: list[int]) -> None:
    cuts = sorted(c for c in cuts if c <= len(data))
    events = parse(split(data, cuts), max_request_line=100, max_header_size=200)
    for event in events[:-1]:
        assert event[0] in ("head", "data", "end")
    if events and events[-1][0] == "error":
        assert events[-1][1] in ERROR_STATUSES


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(request_stream(), st.binary(min_size=1, max_size=8), st.integers(0, 10_000))
def test_corrupted_valid_streams_never_raise_anything_but_http_errors(
    case: tuple[bytes, list[Any], list[int]], junk: bytes, where: int,
) -> None:
    data, _, cuts = case
    where %= len(data) + 1
    corrupted = data[:where] + junk + data[where:]
    events = parse(split(corrupted, cuts))
    if events[-1][0] == "error":
        assert events[-1][1] in ERROR_STATUSES
