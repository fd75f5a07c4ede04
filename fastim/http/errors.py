"""The one error type of the HTTP layer: it carries the status a server answers with."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus


class HTTPError(Exception):
    """An HTTP error response to send: `status`, a human `message` and extra `headers`.

    The parser raises it for malformed or oversized requests (400, 413, 414, 431, 505);
    handlers raise it to answer with an error (401, 404, 409, ...).  The server renders it
    as fastIM's envelope ``{"code": -1, "msg": message, "data": null}`` with that status.
    """

    def __init__(
        self,
        status: int,
        message: str = "",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.status = int(status)
        self.message = message or reason_phrase(self.status)
        self.headers = list(headers)
        super().__init__(self.status, self.message)

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


def reason_phrase(status: int) -> str:
    """The standard reason phrase for `status` (RFC 9110 §15), or "Unknown"."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
