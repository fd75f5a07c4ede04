"""Errors as values that carry the HTTP status a handler should answer with.

The domain layer (``fastim.accounts``) raises :class:`AppError`; the HTTP handlers turn it
into fastIM's envelope ``{"code": -1, "msg": message, "data": null}`` with ``status`` as the
response status, so a handler never has to guess which status a failure deserves.
"""

from __future__ import annotations

import math


class AppError(Exception):
    """A failure the client can act on: an HTTP status, a readable message, optional headers.

    ``retry_after`` (seconds) is set on 429 answers; handlers send it as ``Retry-After``
    (RFC 9110 §10.2.3, whole seconds).
    """

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = None if retry_after is None else max(1, math.ceil(retry_after))

    def headers(self) -> list[tuple[str, str]]:
        """Extra response headers this error asks for (``Retry-After`` on 429)."""
        if self.retry_after is None:
            return []
        return [("Retry-After", str(self.retry_after))]

    def __repr__(self) -> str:
        return f"AppError({self.status}, {self.message!r})"


def bad_request(message: str) -> AppError:
    """400: the request itself is malformed or fails validation."""
    return AppError(400, message)


def unauthorized(message: str = "login required") -> AppError:
    """401: no credentials, or credentials that are not (or no longer) valid."""
    return AppError(401, message)


def forbidden(message: str) -> AppError:
    """403: the caller is known but may not do this."""
    return AppError(403, message)


def not_found(message: str) -> AppError:
    """404: the thing the request names does not exist."""
    return AppError(404, message)


def conflict(message: str) -> AppError:
    """409: the request clashes with the current state (a duplicate, an owner leaving...)."""
    return AppError(409, message)


def too_many_requests(message: str, retry_after: float) -> AppError:
    """429: slow down; ``retry_after`` seconds until the next attempt may succeed."""
    return AppError(429, message, retry_after=retry_after)
