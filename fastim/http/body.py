"""Request bodies: content types, urlencoded forms, cookies, and streamed multipart.

The protocol feeds the body to a *sink* as it arrives: `BytesSink` keeps it in memory
(bounded by the route's body limit), `MultipartSink` hands it to python-multipart's
streaming parser and writes file parts straight to temporary files, so an upload never
sits in memory whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import HTTPError

#: Most fields accepted in one query string or form (a hash-flooding and memory guard).
MAX_FIELDS = 1000


def parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """Split a Content-Type value into its lower-cased media type and its parameters."""
    if not value:
        return "", {}
    media_type, _, rest = value.partition(";")
    params: dict[str, str] = {}
    if rest:
        _, raw = parse_options_header("x;" + rest)
        params = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw.items()}
    return media_type.strip().lower(), params


def parse_urlencoded(text: str) -> dict[str, list[str]]:
    """Parse ``a=1&b=2&a=3`` (application/x-www-form-urlencoded, or a query string).

    Invalid UTF-8 after percent-decoding, or more than `MAX_FIELDS` fields, is a 400.
    """
    result: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, encoding="utf-8", errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(400, "malformed urlencoded data") from exc
    for name, value in pairs:
        result.setdefault(name, []).append(value)
    return result


def parse_cookies(header: str | None) -> dict[str, str]:
    """Parse a Cookie field (RFC 6265 §5.4); the first of two same-named cookies wins."""
    cookies: dict[str, str] = {}
    if not header:
        return cookies
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name, value)
    return cookies


class UploadedFile:
    """One file part of a multipart body, already written to a temporary file.

    `filename` and `content_type` are what the client said: untrusted, never use the
    name as a path.  Read it with `read()` or `open()`, keep it with `save()`; files not
    saved are deleted once the response has been sent.
    """

    __slots__ = ("field_name", "filename", "content_type", "path", "size")

    def __init__(
        self, field_name: str, filename: str, content_type: str, path: Path, size: int = 0
    ) -> None:
        self.field_name = field_name
        self.filename = filename
        self.content_type = content_type
        self.path = path
        self.size = size

    def open(self) -> BinaryIO:
        """The uploaded bytes, as a binary file opened for reading."""
        return open(self.path, "rb")  # noqa: SIM115 - the caller closes it

    def read(self) -> bytes:
        """All the uploaded bytes."""
        return self.path.read_bytes()

    def save(self, destination: str | os.PathLike[str]) -> Path:
        """Move the upload to `destination` (a file path) and return that path."""
        target = Path(destination)
        shutil.move(os.fspath(self.path), os.fspath(target))
        self.path = target
        return target

    def discard(self, tmp_dir: Path | None = None) -> None:
        """Delete the temporary file if it has not been saved elsewhere."""
        if tmp_dir is None or self.path.parent == tmp_dir:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __repr__(self) -> str:
        return (
            f"UploadedFile(field_name={self.field_name!r}, filename={self.filename!r}, "
            f"content_type={self.content_type!r}, size={self.size})"
        )


class BytesSink:
    """Collects a body in memory (its size is bounded by the parser's body limit)."""

    __slots__ = ("_chunks",)

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)

    def finish(self) -> bytes:
        chunks = self._chunks
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def abort(self) -> None:
        self._chunks.clear()


class MultipartSink:
    """Streams a multipart/form-data body (RFC 7578) through python-multipart.

    Text fields are kept in memory (decoded as UTF-8), file parts (those with a
    `filename`) are written to temporary files in `tmp_dir` as their bytes arrive.
    Any malformation is a 400 with a message saying what was wrong.
    """

    def __init__(self, boundary: str, tmp_dir: Path) -> None:
        self.fields: dict[str, list[str]] = {}
        self.files: dict[str, list[UploadedFile]] = {}
        self._tmp_dir = tmp_dir
        self._all_files: list[UploadedFile] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._part_headers: dict[str, str] = {}
        self._field_name = ""
        self._field_value: bytearray | None = None
        self._file: UploadedFile | None = None
        self._fh: BinaryIO | None = None
        self._parts = 0
        self._ended = False
        callbacks: dict[str, Callable[..., None]] = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }
        try:
            self._parser = MultipartParser(boundary.encode("latin-1"), callbacks)  # type: ignore[arg-type]
        except (FormParserError, UnicodeEncodeError) as exc:
            raise HTTPError(400, "invalid multipart boundary") from exc

    # python-multipart callbacks --------------------------------------------------

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_FIELDS:
            raise HTTPError(400, "too many multipart parts")
        self._part_headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._header_name.decode("latin-1").strip().lower()
        self._part_headers[name] = self._header_value.decode("latin-1").strip()
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition, params = parse_options_header(
            self._part_headers.get("content-disposition", "")
        )
        name = params.get(b"name")
        if disposition.lower() != b"form-data" or name is None:
            raise HTTPError(400, "multipart part without a form-data name")
        self._field_name = _decode_part_param(name)
        filename = params.get(b"filename")
        if filename is None:
            self._field_value = bytearray()
            return
        content_type = self._part_headers.get("content-type", "application/octet-stream")
        fd, path = tempfile.mkstemp(prefix="upload-", dir=self._tmp_dir)
        self._fh = os.fdopen(fd, "wb")
        self._file = UploadedFile(
            self._field_name, _decode_part_param(filename), content_type, Path(path)
        )
        self._all_files.append(self._file)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._fh is not None and self._file is not None:
            self._fh.write(data[start:end])
            self._file.size += end - start
        elif self._field_value is not None:
            self._field_value += data[start:end]

    def _on_part_end(self) -> None:
        if self._fh is not None and self._file is not None:
            self._fh.close()
            self._fh = None
            self.files.setdefault(self._file.field_name, []).append(self._file)
            self._file = None
        elif self._field_value is not None:
            try:
                value = self._field_value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HTTPError(400, "multipart field is not valid UTF-8") from exc
            self.fields.setdefault(self._field_name, []).append(value)
            self._field_value = None

    def _on_end(self) -> None:
        self._ended = True

    # the sink interface ------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        try:
            self._parser.write(data)
        except FormParserError as exc:
            raise HTTPError(400, f"malformed multipart body: {exc}") from exc

    def finish(self) -> bytes:
        # python-multipart's finalize() does not check that the closing boundary came.
        if not self._ended:
            raise HTTPError(400, "malformed multipart body: no closing boundary")
        return b""

    def abort(self) -> None:
        """Close and delete every temporary file (the request failed or was answered)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for upload in self._all_files:
            upload.discard(self._tmp_dir)


def _decode_part_param(value: bytes) -> str:
    # Browsers send UTF-8 names and filenames in multipart headers (HTML's form
    # submission algorithm); python-multipart hands them over as raw bytes.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
