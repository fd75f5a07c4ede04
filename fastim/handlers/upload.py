"""``POST /attach/upload``: an image from a logged-in user, checked, cleaned and stored.

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

from typing import TYPE_CHECKING, Any

from fastim.errors import AppError, too_many_requests
from fastim.handlers.auth import authenticated_user, to_http_error
from fastim.http import Request, Response, Router, json_response

if TYPE_CHECKING:
    from fastim.app import App

#: Room for the multipart boundary lines, the part headers and small text fields.
MULTIPART_ALLOWANCE = 64 * 1024
#: Time to receive a whole upload: 10 MiB at about 300 kbit/s.
UPLOAD_BODY_TIMEOUT = 300.0
#: The multipart field holding the file, as in fastIM.
FILE_FIELD = "file"


def register(router: Router, app: App) -> None:
    """Add ``POST /attach/upload``."""
    options = app.config.media

    @router.post(
        "/attach/upload",
        max_body_size=options.max_upload_bytes + MULTIPART_ALLOWANCE,
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
        upload = request.file(FILE_FIELD)
        if upload is None:
            raise AppError(400, f"no file: send the image in the multipart field '{FILE_FIELD}'")
        if upload.size > options.max_upload_bytes:
            raise AppError(413, _too_big(options.max_upload_bytes))
        if upload.size == 0:
            raise AppError(400, "the file is empty")
        return await services.media.upload(upload.path)


def _too_big(limit: int) -> str:
    return f"the file is larger than the upload limit of {limit:,} bytes"
