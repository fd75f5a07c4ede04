"""A sans-I/O HTTP/1.1 request parser: bytes in, events out (RFC 9112).

The host feeds bytes with `receive_data()` (and `receive_eof()`), then calls
`next_event()` until it returns `NEED_DATA`.  Each request yields one `RequestHead`,
zero or more `Data` events and one `EndOfMessage`; the parser then returns `PAUSED`
until the host has answered and calls `start_next_cycle()`, so pipelined requests are
answered in order while their bytes wait in the buffer.

Everything that decides how the bytes are framed lives in this file.  Promises:

* parsing is linear in the input: every search resumes where the last one stopped;
* buffers are bounded: a head may not grow past `max_header_size`, a chunk-size line
  past `MAX_CHUNK_LINE`, a body past the `max_body_size` the host sets per request;
* every malformed input raises `HTTPError` carrying the status to answer with
  (400, 413, 414, 431, 505), and the parser stays in its error state after that.

No sockets, no clocks: timeouts belong to the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import HTTPError
from .headers import Headers

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9112 §3: request-line = method SP request-target SP HTTP-version
_REQUEST_LINE = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])"
)
# RFC 9110 §5.5: field-value chars are VCHAR, obs-text, SP and HTAB; anything else
# (NUL, a stray CR or LF, other controls, DEL) is rejected.
_INVALID_FIELD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# A whole header section of well-formed field lines, each with its CRLF (RFC 9112 §5):
# field-name ":" OWS field-value OWS, the name a token, the value VCHAR, obs-text, SP and
# HTAB. A section that matches is split without checking each line again; one that does
# not is checked line by line, which says what is wrong.
_FIELD_SECTION = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")
# RFC 9112 §2.2: a bare LF is not a line terminator here; we answer 400 rather than
# guess, so that we never disagree with a proxy in front of us about where a line ends.
_BARE_LF = re.compile(rb"(?<!\r)\n")
# RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF; chunk-ext is
# *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})"
    rb"(?:[ \t]*;[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
    rb"(?:[ \t]*=[ \t]*(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
    rb'|"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"))?)*'
    rb"[ \t]*"
)

#: Longest chunk-size line (size plus extensions) we accept, in bytes.
MAX_CHUNK_LINE = 4096


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: `next_event()` needs more bytes before it can say anything.
NEED_DATA = _Sentinel("NEED_DATA")
#: A request is complete; call `start_next_cycle()` once it has been answered.
PAUSED = _Sentinel("PAUSED")
#: The peer closed its side cleanly between two requests.
CONNECTION_CLOSED = _Sentinel("CONNECTION_CLOSED")


@dataclass(slots=True)
class RequestHead:
    """The request line and header section of one request."""

    method: str
    target: str
    http_version: str  # "1.0" or "1.1"
    headers: Headers
    keep_alive: bool  # whether the client lets the connection live after this request
    content_length: int | None  # None when the body is chunked
    chunked: bool
    expect_continue: bool  # RFC 9110 §10.1.1 Expect: 100-continue
    upgrade: list[str]  # lower-cased protocols of the Upgrade field, if Connection names it


@dataclass(slots=True)
class Data:
    """A piece of the request body (de-chunked)."""

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The request body is complete (trailer fields, if any, were read and dropped)."""


Event = RequestHead | Data | EndOfMessage | _Sentinel

# Parser states.
_HEAD = "HEAD"
_BODY = "BODY"  # Content-Length body
_CHUNK_SIZE = "CHUNK_SIZE"
_CHUNK_DATA = "CHUNK_DATA"
_CHUNK_END = "CHUNK_END"  # the CRLF after chunk data
_TRAILERS = "TRAILERS"
_END = "END"  # EndOfMessage is due
_DONE = "DONE"  # paused until start_next_cycle()
_CLOSED = "CLOSED"
_ERROR = "ERROR"


class RequestParser:
    """Incremental parser for the requests arriving on one server-side connection."""

    def __init__(
        self,
        *,
        max_request_line: int = 8190,
        max_header_size: int = 16384,
        max_header_count: int = 100,
        max_body_size: int | None = 1 << 20,
    ) -> None:
        self.max_request_line = max_request_line
        self.max_header_size = max_header_size
        self.max_header_count = max_header_count
        #: Largest body accepted for the current request; the host may change it after
        #: seeing the `RequestHead` (limits are per route) and before asking for the body.
        self.max_body_size = max_body_size
        self.default_max_body_size = max_body_size
        self._buffer = bytearray()
        self._state = _HEAD
        self._scan = 0  # bytes of the buffer already searched for the current terminator
        self._eof = False
        self._error: HTTPError | None = None
        self._remaining = 0  # bytes left in the Content-Length body or current chunk
        self._body_received = 0
        self._trailer_size = 0
        self._request_line_complete = False

    # -- input ------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        if data:
            self._buffer += data

    def receive_eof(self) -> None:
        """The peer will send nothing more."""
        self._eof = True

    @property
    def buffered_size(self) -> int:
        """How many received bytes have not been turned into events yet."""
        return len(self._buffer)

    @property
    def in_progress(self) -> bool:
        """True while a request has started arriving but is not complete."""
        if self._state == _HEAD:
            return bool(self._buffer)
        return self._state in (_BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _END)

    @property
    def waiting_for_head(self) -> bool:
        """True while the parser is reading a request line and header section."""
        return self._state == _HEAD

    @property
    def trailing_data(self) -> bytes:
        """A copy of the bytes buffered after the current request (see `detach()`)."""
        return bytes(self._buffer)

    def detach(self) -> None:
        """Stop parsing: the connection switched protocols (RFC 9110 §7.8) and the bytes
        after the request, read from `trailing_data` beforehand, belong to the new one."""
        self._buffer.clear()
        self._state = _CLOSED

    def start_next_cycle(self) -> None:
        """Begin parsing the next request; call once the previous one was answered."""
        if self._state != _DONE:
            raise RuntimeError(f"start_next_cycle() in state {self._state}")
        self._state = _HEAD
        self._scan = 0
        self._body_received = 0
        self._request_line_complete = False
        self.max_body_size = self.default_max_body_size

    # -- output -----------------------------------------------------------------

    def next_event(self) -> Event:
        """The next event, `NEED_DATA`, `PAUSED` or `CONNECTION_CLOSED`.

        Raises `HTTPError` (with the status to answer) on malformed input; once it has
        raised, it raises the same error on every later call.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except HTTPError as exc:
            self._state = _ERROR
            self._error = exc
            raise

    def _next_event(self) -> Event:
        state = self._state
        if state == _HEAD:
            return self._read_head()
        if state == _BODY:
            return self._read_fixed_body()
        if state in (_CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS):
            return self._read_chunked_body()
        if state == _END:
            self._state = _DONE
            return EndOfMessage()
        if state == _DONE:
            return PAUSED
        return CONNECTION_CLOSED  # _CLOSED

    # -- the head ---------------------------------------------------------------

    def _read_head(self) -> Event:
        buf = self._buffer
        # RFC 9112 §2.2: ignore empty lines received before the request-line.
        while buf.startswith(b"\r\n"):
            del buf[:2]
            self._scan = 0
            self._request_line_complete = False
        if not buf:
            if self._eof:
                self._state = _CLOSED
                return CONNECTION_CLOSED
            return NEED_DATA
        start = max(self._scan - 3, 0)
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            if _BARE_LF.search(buf, max(self._scan - 1, 0)):
                raise HTTPError(400, "bare LF in request head")
            self._check_incomplete_head_size()
            self._scan = len(buf)
            if self._eof:
                raise HTTPError(400, "connection closed in the middle of a request head")
            return NEED_DATA
        head = bytes(buf[:end])
        del buf[: end + 4]
        self._scan = 0
        return self._parse_head(head)

    def _check_incomplete_head_size(self) -> None:
        buf = self._buffer
        if len(buf) > self.max_request_line and not self._request_line_complete:
            if buf.find(b"\r\n", 0, self.max_request_line + 2) < 0:
                raise HTTPError(414, "request line too long")
            self._request_line_complete = True  # so that this search runs once
        if len(buf) > self.max_header_size:
            raise HTTPError(431, "request header section too large")

    def _parse_head(self, head: bytes) -> RequestHead:
        line_end = head.find(b"\r\n")
        request_line = head if line_end < 0 else head[:line_end]
        if len(request_line) > self.max_request_line:
            raise HTTPError(414, "request line too long")
        if len(head) > self.max_header_size:
            raise HTTPError(431, "request header section too large")
        if head.count(b"\r\n") > self.max_header_count:
            raise HTTPError(431, "too many header fields")
        section = b"" if line_end < 0 else head[line_end + 2 :] + b"\r\n"
        well_formed = _FIELD_SECTION.fullmatch(section) is not None
        if (not well_formed or b"\n" in request_line) and _BARE_LF.search(head):
            raise HTTPError(400, "bare LF in request head")

        match = _REQUEST_LINE.fullmatch(request_line)
        if match is None:
            raise HTTPError(400, "malformed request line")
        method_b, target_b, major, minor = match.groups()
        # RFC 9110 §2.5: a higher minor version of 1.x is answered as our highest (1.1).
        if major != b"1":
            raise HTTPError(505, "HTTP version not supported")
        http_version = "1.0" if minor == b"0" else "1.1"
        method = method_b.decode("ascii")
        target = target_b.decode("ascii")
        _check_target(method, target)

        headers = Headers()
        if well_formed:
            # Checked as a whole above (the request line by its own pattern: no LF there).
            for line in section.decode("latin-1").split("\r\n")[:-1]:
                name, _, value = line.partition(":")
                headers.add(name, value.strip(" \t"))
        else:
            for raw_line in section.split(b"\r\n")[:-1]:
                headers.add(*_parse_field_line(raw_line))
        return self._frame(method, target, http_version, headers)

    def _frame(self, method: str, target: str, version: str, headers: Headers) -> RequestHead:
        """Decide how the body is delimited (RFC 9112 §6.3) and refuse any ambiguity."""
        # RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is a 400.
        if version == "1.1" and len(headers.get_all("host")) != 1:
            raise HTTPError(400, "an HTTP/1.1 request needs exactly one Host field")
        transfer_encoding = headers.get_all("transfer-encoding")
        content_length_fields = headers.get_all("content-length")
        chunked = False
        content_length: int | None = 0
        if transfer_encoding:
            # RFC 9112 §6.1: both framings at once is how requests are smuggled; and
            # Transfer-Encoding in an HTTP/1.0 message means the framing is faulty.
            if content_length_fields:
                raise HTTPError(400, "both Transfer-Encoding and Content-Length")
            if version == "1.0":
                raise HTTPError(400, "Transfer-Encoding in an HTTP/1.0 request")
            if headers.get_tokens("transfer-encoding") != ["chunked"] or any(
                not value.strip(" \t") for value in transfer_encoding
            ):
                raise HTTPError(400, "the only transfer coding accepted is chunked")
            chunked = True
            content_length = None
            self._state = _CHUNK_SIZE
        elif content_length_fields:
            content_length = _parse_content_length(content_length_fields)
            self._remaining = content_length
            self._state = _BODY if content_length else _END
        else:
            self._state = _END
        connection = headers.get_tokens("connection")
        if version == "1.1":
            keep_alive = "close" not in connection
        else:
            keep_alive = "keep-alive" in connection and "close" not in connection
        expect = headers.get("expect")
        upgrade = headers.get_tokens("upgrade") if "upgrade" in connection else []
        return RequestHead(
            method=method,
            target=target,
            http_version=version,
            headers=headers,
            keep_alive=keep_alive,
            content_length=content_length,
            chunked=chunked,
            expect_continue=(
                version == "1.1" and expect is not None and expect.lower() == "100-continue"
            ),
            upgrade=upgrade,
        )

    # -- bodies -------------------------------------------------------------------

    def _check_body_limit(self, more: int) -> None:
        limit = self.max_body_size
        if limit is not None and self._body_received + more > limit:
            raise HTTPError(413, "request body too large")

    def _take(self) -> Data | None:
        """Up to `_remaining` bytes of body from the buffer, as a Data event."""
        buf = self._buffer
        n = min(len(buf), self._remaining)
        if n == 0:
            return None
        if n == len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        self._remaining -= n
        self._body_received += n
        return Data(data)

    def _read_fixed_body(self) -> Event:
        # The limit is checked against the declared length before any byte is read, so
        # an oversized body is refused without reading it (RFC 9110 §15.5.14).
        self._check_body_limit(self._remaining)
        event = self._take()
        if event is None:
            if self._eof:
                raise HTTPError(400, "connection closed in the middle of a request body")
            return NEED_DATA
        if self._remaining == 0:
            self._state = _END
        return event

    def _read_chunked_body(self) -> Event:
        # RFC 9112 §7.1: chunked-body = *chunk last-chunk trailer-section CRLF
        while True:
            state = self._state
            if state == _CHUNK_SIZE:
                line = self._read_line(MAX_CHUNK_LINE, 400, "chunk-size line too long")
                if line is None:
                    return self._need_data()
                match = _CHUNK_LINE.fullmatch(line)
                if match is None:
                    raise HTTPError(400, "malformed chunk-size line")
                size = int(match.group(1), 16)
                self._check_body_limit(size)
                if size == 0:
                    self._state = _TRAILERS
                    self._trailer_size = 0
                else:
                    self._remaining = size
                    self._state = _CHUNK_DATA
            elif state == _CHUNK_DATA:
                event = self._take()
                if event is None:
                    return self._need_data()
                if self._remaining == 0:
                    self._state = _CHUNK_END
                return event
            elif state == _CHUNK_END:
                buf = self._buffer
                if len(buf) < 2:
                    if buf != b"\r\n"[: len(buf)]:
                        raise HTTPError(400, "chunk data not followed by CRLF")
                    return self._need_data()
                if buf[:2] != b"\r\n":
                    raise HTTPError(400, "chunk data not followed by CRLF")
                del buf[:2]
                self._state = _CHUNK_SIZE
            else:  # _TRAILERS
                line = self._read_line(
                    self.max_header_size - self._trailer_size,
                    431,
                    "trailer section too large",
                )
                if line is None:
                    return self._need_data()
                if not line:
                    self._state = _DONE
                    return EndOfMessage()
                self._trailer_size += len(line) + 2
                # Trailer fields are validated like header fields, then dropped: no part
                # of this server gives them meaning (RFC 9110 §6.5.1).
                _parse_field_line(line)

    def _need_data(self) -> Event:
        if self._eof:
            raise HTTPError(400, "connection closed in the middle of a chunked body")
        return NEED_DATA

    def _read_line(self, limit: int, status: int, message: str) -> bytes | None:
        """Remove and return one CRLF-terminated line (without CRLF), or None if the
        terminator has not arrived.  The search resumes where it stopped (linear time)."""
        buf = self._buffer
        start = max(self._scan - 1, 0)
        end = buf.find(b"\r\n", start)
        if end < 0:
            if buf.find(b"\n", start) >= 0:
                raise HTTPError(400, "bare LF in chunked framing")
            if len(buf) > limit:
                raise HTTPError(status, message)
            self._scan = len(buf)
            return None
        if end > limit:
            raise HTTPError(status, message)
        line = bytes(buf[:end])
        del buf[: end + 2]
        self._scan = 0
        if b"\n" in line or b"\r" in line:
            raise HTTPError(400, "bare CR or LF in chunked framing")
        return line


def _check_target(method: str, target: str) -> None:
    """RFC 9112 §3.2: origin-form, absolute-form, or asterisk-form for OPTIONS."""
    if target[0] == "/":
        return
    if target == "*" and method == "OPTIONS":
        return
    lower = target[:8].lower()
    if lower.startswith("http://") or lower.startswith("https://"):
        return
    raise HTTPError(400, "malformed request target")


def _parse_field_line(line: bytes) -> tuple[str, str]:
    """RFC 9112 §5: field-line = field-name ":" OWS field-value OWS."""
    if line[:1] in (b" ", b"\t"):
        # RFC 9112 §5.2: obs-fold; a server may reject it with 400, and we do.
        raise HTTPError(400, "obsolete line folding in header section")
    colon = line.find(b":")
    if colon <= 0:
        raise HTTPError(400, "malformed header field")
    name = line[:colon]
    # RFC 9112 §5.1: no whitespace between the field name and the colon.
    if _TOKEN.fullmatch(name) is None:
        raise HTTPError(400, "malformed header field name")
    value = line[colon + 1 :].strip(b" \t")
    if _INVALID_FIELD_VALUE.search(value):
        raise HTTPError(400, "invalid character in header field value")
    return name.decode("ascii"), value.decode("latin-1")


def _parse_content_length(fields: list[str]) -> int:
    """RFC 9110 §8.6: Content-Length = 1*DIGIT, one field with one value.

    §8.6 lets a recipient either merge a list of identical values (``2, 2``, or the field
    twice) or refuse it; we refuse (400, RFC 9112 §6.3 item 5). An intermediary ahead of
    us that takes the first of a list, or that forwards the list as it came, then cannot
    disagree with us about where the body ends: no request smuggling through lists."""
    if len(fields) != 1 or "," in fields[0]:
        raise HTTPError(400, "more than one Content-Length value")
    value = fields[0].strip(" \t")
    if not (value.isascii() and value.isdigit()):
        raise HTTPError(400, "malformed Content-Length")
    if len(value) > 18:
        # Larger than any body limit; refuse before converting an unbounded string.
        raise HTTPError(413, "request body too large")
    return int(value)
