"""Static files: content types, validators and 304, Range, and no way out of the root.

A request path is refused with 404 (never 400 or 403, so nothing is learned about the
disk) when, before or after percent-decoding, it holds ``..`` or ``.`` segments, hidden
names, backslashes, encoded slashes, NUL or other control bytes, or when the real path
(symlinks resolved) is not a regular file inside the root.

Small files are kept in memory (with a gzip variant for text) after their first
request and revalidated with one ``stat`` per request: the fast path.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
import stat as stat_module
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from .errors import HTTPError
from .request import Request
from .response import (
    FileBody,
    Response,
    accepts_gzip,
    http_date,
    is_compressible,
    with_charset,
)

_EXTRA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".wasm": "application/wasm",
    ".ico": "image/x-icon",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".ogg": "audio/ogg",
    ".m4a": "audio/mp4",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".txt": "text/plain",
}

#: Files up to this size are cached in memory.
SMALL_FILE_LIMIT = 256 * 1024
#: The whole in-memory cache holds at most this many bytes (identity + gzip bodies).
CACHE_BYTES = 32 * 1024 * 1024
#: Text smaller than this is not worth gzipping.
GZIP_MIN_SIZE = 1024


def content_type_for(name: str) -> str:
    """The Content-Type for a file name, with a charset for text."""
    suffix = os.path.splitext(name)[1].lower()
    media_type = _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(name)[0]
    return with_charset(media_type or "application/octet-stream")


def safe_relative_path(raw: str) -> str | None:
    """The decoded relative path for a raw URL path under a static root, or None if the
    path has any shape that could escape or reach a hidden file."""
    lowered = raw.lower()
    # Encoded slashes and backslashes would let a segment check be bypassed.
    if "%2f" in lowered or "%5c" in lowered or "\\" in raw or "%00" in raw:
        return None
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    if not decoded or any(ord(ch) < 0x20 or ch == "\x7f" or ch == "\\" for ch in decoded):
        return None
    for segment in decoded.split("/"):
        # Empty, ".", ".." and hidden names (".git", ".env") are all refused.
        if not segment or segment[0] == ".":
            return None
    return decoded


class _Entry:
    """A cached small file."""

    __slots__ = ("real_path", "mtime_ns", "size", "body", "gzipped", "etag",
                 "last_modified", "content_type")

    def __init__(self, real_path: str, st: os.stat_result, body: bytes, content_type: str):
        self.real_path = real_path
        self.mtime_ns = st.st_mtime_ns
        self.size = st.st_size
        self.body = body
        self.gzipped: bytes | None = None
        self.etag = _etag(st)
        self.last_modified = http_date(st.st_mtime)
        self.content_type = content_type


def _etag(st: os.stat_result) -> str:
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'


def tree_version(directory: str | os.PathLike[str], length: int = 12) -> str:
    """A short hash of every file's path and bytes under `directory`: it changes when
    any file does, so URLs that carry it may be cached forever (``immutable``)."""
    digest = hashlib.sha256()
    root = os.path.realpath(directory)
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()[:length]


class StaticFiles:
    """A handler serving the files under `directory` (GET and HEAD).

    `cache_control` is sent with every file; `prefix` is the URL prefix it is mounted on.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        prefix: str = "/",
        cache_control: str = "public, max-age=3600",
    ) -> None:
        self.root = os.path.realpath(directory)
        self.prefix = prefix
        self.cache_control = cache_control
        self._cache: dict[str, _Entry] = {}
        self._cache_bytes = 0

    async def __call__(self, request: Request) -> Response:
        return self.respond(request)

    def respond(self, request: Request) -> Response:
        """Answer `request` (a plain method; the coroutine wrapper only awaits it)."""
        raw = request.raw_path[len(self.prefix):]
        relative = safe_relative_path(raw)
        if relative is None:
            raise HTTPError(404, "not found")
        entry = self._cache.get(relative)
        if entry is not None:
            try:
                st = os.stat(entry.real_path)
            except OSError:
                st = None
            if st is None or st.st_mtime_ns != entry.mtime_ns or st.st_size != entry.size:
                self._evict(relative)
                entry = None
        if entry is not None:
            return self._respond_cached(request, entry)

        real_path = os.path.realpath(os.path.join(self.root, relative))
        if not real_path.startswith(self.root + os.sep):
            raise HTTPError(404, "not found")  # a symlink pointing outside the root
        try:
            fh = open(real_path, "rb")  # noqa: SIM115 - closed below or by the server
        except OSError:
            raise HTTPError(404, "not found") from None
        try:
            st = os.fstat(fh.fileno())
            if not stat_module.S_ISREG(st.st_mode):
                raise HTTPError(404, "not found")
            content_type = content_type_for(real_path)
            if st.st_size <= SMALL_FILE_LIMIT:
                body = fh.read()
                fh.close()
                entry = _Entry(real_path, st, body, content_type)
                entry.size = len(body)
                self._store(relative, entry)
                return self._respond_cached(request, entry)
            return self._respond_file(request, fh, st, content_type)
        except BaseException:
            fh.close()
            raise

    # -- cache ----------------------------------------------------------------------

    def _store(self, key: str, entry: _Entry) -> None:
        while self._cache and self._cache_bytes + entry.size > CACHE_BYTES:
            self._evict(next(iter(self._cache)))
        self._cache[key] = entry
        self._cache_bytes += entry.size

    def _evict(self, key: str) -> None:
        entry = self._cache.pop(key, None)
        if entry is not None:
            self._cache_bytes -= entry.size + len(entry.gzipped or b"")

    # -- responses ------------------------------------------------------------------

    def _headers(self, etag: str, last_modified: str) -> list[tuple[str, str]]:
        return [
            ("ETag", etag),
            ("Last-Modified", last_modified),
            ("Cache-Control", self.cache_control),
            ("Accept-Ranges", "bytes"),
            # Uploaded files are user content: never let a browser sniff them into HTML.
            ("X-Content-Type-Options", "nosniff"),
        ]

    def _respond_cached(self, request: Request, entry: _Entry) -> Response:
        gzip_ok = (
            entry.size >= GZIP_MIN_SIZE
            and is_compressible(entry.content_type)
            and accepts_gzip(request.headers.get_all("accept-encoding"))
        )
        etag = entry.etag[:-1] + '-gz"' if gzip_ok else entry.etag
        headers = self._headers(etag, entry.last_modified)
        if is_compressible(entry.content_type) and entry.size >= GZIP_MIN_SIZE:
            headers.append(("Vary", "Accept-Encoding"))
        if _not_modified(request, (entry.etag, entry.etag[:-1] + '-gz"'), entry.mtime_ns):
            response = Response(b"", 304, headers)
            response.compress = False
            return response
        byte_range = requested_range(request, entry.etag, entry.last_modified, entry.size)
        if byte_range is not None:
            start, end = byte_range
            headers.append(("Content-Range", f"bytes {start}-{end}/{entry.size}"))
            response = Response(entry.body[start : end + 1], 206, headers, entry.content_type)
        elif gzip_ok:
            if entry.gzipped is None:
                entry.gzipped = gzip.compress(entry.body, 6, mtime=0)
                self._cache_bytes += len(entry.gzipped)
            headers.append(("Content-Encoding", "gzip"))
            response = Response(entry.gzipped, 200, headers, entry.content_type)
        else:
            response = Response(entry.body, 200, headers, entry.content_type)
        response.compress = False
        return response

    def _respond_file(
        self, request: Request, fh: object, st: os.stat_result, content_type: str
    ) -> Response:
        etag = _etag(st)
        last_modified = http_date(st.st_mtime)
        headers = self._headers(etag, last_modified)
        if _not_modified(request, (etag,), st.st_mtime_ns):
            fh.close()  # type: ignore[attr-defined]
            response = Response(b"", 304, headers)
            response.compress = False
            return response
        byte_range = requested_range(request, etag, last_modified, st.st_size)
        headers.append(("Content-Type", content_type))
        if byte_range is not None:
            start, end = byte_range
            headers.append(("Content-Range", f"bytes {start}-{end}/{st.st_size}"))
            body = FileBody(fh, start, end - start + 1)  # type: ignore[arg-type]
            return Response.from_file(body, 206, headers)
        return Response.from_file(FileBody(fh, 0, st.st_size), 200, headers)  # type: ignore[arg-type]


def _parse_etags(value: str) -> list[str]:
    tags = []
    for item in value.split(","):
        item = item.strip()
        if item.startswith("W/"):
            item = item[2:]  # RFC 9110 §13.1.2: If-None-Match uses the weak comparison
        if item:
            tags.append(item)
    return tags


def _not_modified(request: Request, etags: tuple[str, ...], mtime_ns: int) -> bool:
    """RFC 9110 §13.2.2: If-None-Match first; If-Modified-Since only without it."""
    if request.method not in ("GET", "HEAD"):
        return False
    if_none_match = request.headers.get_all("if-none-match")
    if if_none_match:
        return any(tag == "*" or tag in etags for tag in _parse_etags(",".join(if_none_match)))
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        return mtime_ns // 1_000_000_000 <= since
    return False


def requested_range(
    request: Request, etag: str, last_modified: str, size: int
) -> tuple[int, int] | None:
    """The single byte range to send, None for the whole file; 416 if unsatisfiable.

    RFC 9110 §14.2: Range only applies to GET, may be ignored (we ignore multi-range and
    malformed values), and If-Range makes it conditional on the current validator.
    """
    value = request.headers.get("range")
    if value is None or request.method != "GET":
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() not in (etag, last_modified):
        return None
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first + last).isascii():
        return None
    first, last = first.strip(), last.strip()
    if first and not first.isdigit() or last and not last.isdigit() or not (first or last):
        return None
    unsatisfiable = HTTPError(416, "range not satisfiable", [("Content-Range", f"bytes */{size}")])
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise unsatisfiable
        return max(size - length, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # RFC 9110 §14.1.1: an invalid range-spec; ignore the field
    if start >= size:
        raise unsatisfiable
    end = min(int(last), size - 1) if last else size - 1
    return start, end
