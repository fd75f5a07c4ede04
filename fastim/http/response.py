"""Responses: what a handler returns, and the helpers that build the common ones."""

from __future__ import annotations

import json
import re
import time
from email.utils import formatdate
from typing import Any, BinaryIO

from .errors import HTTPError, reason_phrase

# Media types that carry text, and so get "; charset=utf-8" when no charset is given.
_TEXTUAL_PREFIXES = ("text/",)
_TEXTUAL_TYPES = frozenset({
    "application/json", "application/javascript", "application/xml",
    "image/svg+xml", "application/manifest+json",
})
# RFC 6265 §4.1.1: cookie-name is a token; cookie-octet excludes CTLs, space, '"', ',',
# ';' and '\'.
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_FIELD_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


# with_charset() answers for the few content types an application uses, again and again.
_WITH_CHARSET: dict[str, str] = {}


def with_charset(content_type: str) -> str:
    """Add ``; charset=utf-8`` to a textual media type that lacks a charset."""
    known = _WITH_CHARSET.get(content_type)
    if known is not None:
        return known
    result = content_type
    if "charset=" not in content_type.lower():
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type.startswith(_TEXTUAL_PREFIXES) or media_type in _TEXTUAL_TYPES:
            result = f"{content_type}; charset=utf-8"
    if len(_WITH_CHARSET) < 256:  # bounded: content types come from code, not requests
        _WITH_CHARSET[content_type] = result
    return result


def is_compressible(content_type: str) -> bool:
    """Whether gzip is worth trying on a body of this type (text, JSON, JS, SVG)."""
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type.startswith(_TEXTUAL_PREFIXES) or media_type in _TEXTUAL_TYPES


def accepts_gzip(accept_encoding: list[str]) -> bool:
    """Whether Accept-Encoding allows gzip (RFC 9110 §12.5.3), honouring ``q=0``."""
    for value in accept_encoding:
        for item in value.split(","):
            coding, _, params = item.partition(";")
            if coding.strip().lower() not in ("gzip", "x-gzip"):
                continue
            q = params.strip().lower()
            if q.startswith("q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


class FileBody:
    """A body streamed from an open file: `length` bytes from `offset`."""

    __slots__ = ("file", "offset", "length")

    def __init__(self, file: BinaryIO, offset: int, length: int) -> None:
        self.file = file
        self.offset = offset
        self.length = length

    def close(self) -> None:
        self.file.close()


class Response:
    """An HTTP response: status, header fields, and a body of bytes or a `FileBody`.

    `Date`, `Content-Length` and `Connection` are added by the server; a `str` body is
    encoded as UTF-8; a textual `content_type` gets ``; charset=utf-8``.
    """

    __slots__ = ("status", "headers", "body", "file", "compress")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.status = status
        self.headers: list[tuple[str, str]] = headers if headers is not None else []
        if isinstance(body, str):
            body = body.encode("utf-8")
            if content_type is None:
                content_type = "text/plain"
        self.body: bytes = body
        self.file: FileBody | None = None
        #: False to keep the server from gzipping this response.
        self.compress = True
        if content_type is not None:
            self.headers.append(("Content-Type", with_charset(content_type)))

    @classmethod
    def from_file(
        cls,
        body: FileBody,
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        """A response whose body is streamed from `body` (closed once sent)."""
        response = cls(b"", status, headers)
        response.file = body
        response.compress = False
        return response

    @property
    def content_length(self) -> int:
        return self.file.length if self.file is not None else len(self.body)

    def get_header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        """Replace every `name` field by one with `value`."""
        lower = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lower]
        self.headers.append((name, value))

    def set_cookie(
        self,
        name: str,
        value: str,
        *,
        max_age: int | None = None,
        path: str = "/",
        http_only: bool = True,
        same_site: str | None = "Lax",
        secure: bool = False,
    ) -> None:
        """Add a Set-Cookie field (RFC 6265 §4.1); HttpOnly and SameSite=Lax by default."""
        if not _COOKIE_NAME.fullmatch(name) or not _COOKIE_VALUE.fullmatch(value):
            raise ValueError("cookie name or value has characters a cookie cannot carry")
        if _FIELD_VALUE_FORBIDDEN.search(path) or ";" in path:
            raise ValueError("invalid cookie path")
        parts = [f"{name}={value}", f"Path={path}"]
        if max_age is not None:
            parts.append(f"Max-Age={int(max_age)}")
        if http_only:
            parts.append("HttpOnly")
        if secure:
            parts.append("Secure")
        if same_site:
            parts.append(f"SameSite={same_site}")
        self.headers.append(("Set-Cookie", "; ".join(parts)))

    def delete_cookie(self, name: str, *, path: str = "/", secure: bool = False) -> None:
        """Ask the client to forget cookie `name` (`secure` as it was set)."""
        self.set_cookie(name, "", max_age=0, path=path, secure=secure)

    def __repr__(self) -> str:
        return f"<Response {self.status} {reason_phrase(self.status)}>"


# One encoder for every JSON answer: json.dumps() with these options builds a new one each
# call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps(value: Any) -> bytes:
    return _JSON.encode(value).encode("utf-8")


def json_response(data: Any, status: int = 200, msg: str = "") -> Response:
    """fastIM's success envelope: ``{"code": 0, "msg": msg, "data": data}``."""
    return Response(
        _dumps({"code": 0, "msg": msg, "data": data}), status, content_type="application/json"
    )


def list_response(rows: list[Any], total: int, status: int = 200,
                  total_capped: bool | None = None) -> Response:
    """fastIM's list envelope (its ``util.RespOkList``): ``rows`` and ``total`` at the top
    level, ``{"code": 0, "msg": "", "rows": [...], "total": N}``, where ``total`` counts the
    whole list and ``rows`` holds one page of it. A list whose count stops at a bound
    (message search) also says whether it did: ``"total_capped": true`` when the whole
    list holds more than ``total``."""
    body: dict[str, Any] = {"code": 0, "msg": "", "rows": rows, "total": total}
    if total_capped is not None:
        body["total_capped"] = total_capped
    return Response(_dumps(body), status, content_type="application/json")


def error_response(error: HTTPError) -> Response:
    """fastIM's error envelope ``{"code": -1, "msg": message, "data": null}``, with the
    error's status and headers."""
    return Response(
        _dumps({"code": -1, "msg": error.message, "data": None}),
        error.status,
        list(error.headers),
        content_type="application/json",
    )


def html_response(html: str, status: int = 200) -> Response:
    """An HTML page."""
    return Response(html.encode("utf-8"), status, content_type="text/html")


def text_response(text: str, status: int = 200) -> Response:
    """A plain-text body."""
    return Response(text.encode("utf-8"), status, content_type="text/plain")


def redirect(location: str, status: int = 302) -> Response:
    """A redirect to `location` (302 Found by default)."""
    if _FIELD_VALUE_FORBIDDEN.search(location):
        raise ValueError("invalid redirect location")
    return Response(b"", status, [("Location", location)])


def http_date(timestamp: float) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7), e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(timestamp, usegmt=True)


_date_cache: tuple[int, str, bytes] = (0, "", b"")


def current_date() -> str:
    """The Date field value for now; formatted once per second (RFC 9110 §6.6.1)."""
    return _current_date()[1]


def date_field() -> bytes:
    """The whole ``Date: ...\r\n`` field line for now, encoded once per second."""
    return _current_date()[2]


def _current_date() -> tuple[int, str, bytes]:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        value = http_date(now)
        _date_cache = (now, value, f"Date: {value}\r\n".encode("latin-1"))
    return _date_cache
