"""``POST /attach/upload``: an image, a voice recording or a file from a logged-in user;
``GET /attach/file/<sha256>``: a file, to those who may have it.

The multipart field ``kind`` says what the upload is: ``image``, ``voice``
(fastim/media/audio.py judges it by content) or ``file`` (any type, up to
``--file-max-bytes``; fastim/media/attachments.py). Without one, as fastIM's pages send
it, a recording (WebM, Ogg or MP4 by its first bytes) is a voice upload and anything else
an image.

fastIM stored any upload under the suffix the client chose (an ``.html`` upload was
stored XSS) with no size limit. Here (docs/media.md):

* the caller must present a token (401); each user may upload ``rate_limit`` files per
  ``rate_window`` seconds (429 with ``Retry-After``);
* the route's body limit is the file limit plus room for the multipart framing, so a
  larger body is refused with 413 as soon as it is known to be too large (at once for a
  declared ``Content-Length``, as the bytes pass the limit for a chunked one), and the
  HTTP layer deletes the part already written; the file itself is then held to the exact
  limit;
* the multipart part is streamed to a temporary file by the HTTP layer and never read
  whole into memory here; Pillow's work runs in the media service's threads.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastim.errors import AppError, too_many_requests
from fastim.handlers.auth import authenticated_user, to_http_error
from fastim.http import HTTPError, Request, Response, Router, json_response
from fastim.http.response import FileBody, http_date
from fastim.http.static import requested_range
from fastim.media import Download, looks_like_audio

if TYPE_CHECKING:
    from fastim.app import App

#: Room for the multipart boundary lines, the part headers and small text fields.
MULTIPART_ALLOWANCE = 64 * 1024
#: Time to receive a whole upload: 25 MiB at about 700 kbit/s.
UPLOAD_BODY_TIMEOUT = 300.0
#: The multipart field saying what the upload is.
KIND_FIELD = "kind"
KINDS = ("image", "voice", "file")
#: The multipart field holding the file, as in fastIM.
FILE_FIELD = "file"


def register(router: Router, app: App) -> None:
    """Add ``POST /attach/upload``."""
    options = app.config.media

    @router.post(
        "/attach/upload",
        # The largest of the kinds' limits; each kind is then held to its own.
        max_body_size=max(options.max_upload_bytes, options.file_max_bytes)
        + MULTIPART_ALLOWANCE,
        body_timeout=UPLOAD_BODY_TIMEOUT,
    )
    async def upload(request: Request) -> Response:
        # Not `endpoint`: it reads the body as a form first, and a body of another type
        # deserves this module's own 415 saying how to send an image.
        user = await authenticated_user(request, app)
        try:
            result = await _store_upload(request, user)
        except AppError as error:
            raise to_http_error(error) from None
        return json_response(result)

    async def _store_upload(request: Request, user: Any) -> dict[str, Any]:
        services = app.services
        limiter = services.upload_limiter
        # Counted before the work, failed uploads included: decoding costs the same.
        key = str(user.id)
        wait = limiter.retry_after(key)
        if wait is not None:
            raise too_many_requests(
                f"too many uploads: at most {options.rate_limit} every "
                f"{options.rate_window:g} seconds", wait,
            )
        limiter.record(key)
        if request.content_type != "multipart/form-data":
            raise AppError(
                415, f"send the image as multipart/form-data in the field '{FILE_FIELD}'"
            )
        kind = request.form().get(KIND_FIELD) or ""
        if kind and kind not in KINDS:
            raise AppError(400, f"{KIND_FIELD} must be one of {', '.join(KINDS)}, not {kind!r}")
        upload = request.file(FILE_FIELD)
        if upload is None:
            raise AppError(400, f"no file: send the {kind or 'image'} in the multipart field "
                                f"'{FILE_FIELD}'")
        # fastIM's pages send no kind: a recording is told from an image by its first bytes.
        kind = kind or ("voice" if looks_like_audio(upload.path) else "image")
        limit = options.file_max_bytes if kind == "file" else options.max_upload_bytes
        if upload.size > limit:
            raise AppError(413, _too_big(limit))
        if upload.size == 0:
            raise AppError(400, "the file is empty")
        if kind == "voice":
            return await services.attachments.upload_voice(user.id, upload.path)
        if kind == "file":
            return await services.attachments.upload_file(user.id, upload.path,
                                                          upload.filename)
        return await services.media.upload(upload.path)

    @router.get("/attach/file/{digest}")
    async def download(request: Request) -> Response:
        user = await authenticated_user(request, app)
        try:
            found = await app.services.attachments.download(user.id, request.path_params["digest"])
        except AppError as error:
            raise to_http_error(error) from None
        return _file_response(request, found)


def _too_big(limit: int) -> str:
    return f"the file is larger than the upload limit of {limit:,} bytes"


def content_disposition(name: str) -> str:
    """``attachment`` with the file's name, for every browser (RFC 6266 §4.3): an ASCII
    ``filename`` (non-ASCII and quoting characters replaced) and the exact UTF-8 name in
    ``filename*`` (RFC 8187)."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%;' else "_"
                       for c in name) or "file"
    return f'attachment; filename="{fallback}"; filename*=UTF-8\'\'{quote(name, safe="")}'


def _file_response(request: Request, found: Download) -> Response:
    """The file as a download: never rendered in the page (attachment, nosniff, a type
    that cannot run), private to the browser's cache, seekable with Range."""
    try:
        fh = open(found.path, "rb")  # noqa: SIM115 - closed by the server once sent
    except OSError:
        raise HTTPError(404, "no such file") from None
    try:
        st = os.fstat(fh.fileno())
        etag = f'"{found.path.stem[:32]}"'
        last_modified = http_date(st.st_mtime)
        headers = [
            ("Content-Type", found.type),
            ("Content-Disposition", content_disposition(found.name)),
            ("X-Content-Type-Options", "nosniff"),
            # Access is checked on every request: no shared cache may keep it.
            ("Cache-Control", "private, max-age=0, must-revalidate"),
            ("ETag", etag),
            ("Last-Modified", last_modified),
            ("Accept-Ranges", "bytes"),
            ("Content-Security-Policy", "default-src 'none'; sandbox"),
        ]
        byte_range = requested_range(request, etag, last_modified, st.st_size)
    except BaseException:
        fh.close()
        raise
    if byte_range is not None:
        start, end = byte_range
        headers.append(("Content-Range", f"bytes {start}-{end}/{st.st_size}"))
        return Response.from_file(FileBody(fh, start, end - start + 1), 206, headers)
    return Response.from_file(FileBody(fh, 0, st.st_size), 200, headers)
