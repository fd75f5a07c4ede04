"""Exceptions of the storage layer.

They name *what* clashed, not which HTTP status it deserves: the accounts layer turns them
into :class:`fastim.errors.AppError` values with a status and a message for people.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose (bad URL, schema too new, ...)."""


class Duplicate(StoreError):
    """A unique key of the database refused a row: ``key`` names it (e.g. ``users.mobile``)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate {key}")
        self.key = key


class Missing(StoreError):
    """A row the operation needs does not exist: ``what`` is e.g. ``user`` or ``group``."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no such {what}")
        self.what = what


class Refused(StoreError):
    """The operation breaks a rule checked inside the transaction.

    ``reason`` is one of: ``group_limit`` (owner has too many groups), ``owner_cannot_leave``,
    ``not_owner``, ``not_member``, ``self``, ``throttled`` (too many friend requests a day:
    ``retry_after`` says in how many seconds one more is allowed), ``you_block`` (a friend
    request to someone the asker blocks).
    """

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class IntegrityViolation(StoreError):
    """A driver integrity error, classified: ``kind`` is unique, foreign_key, check or other."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Unavailable(StoreError):
    """The database cannot serve the request now, and may again later: its server is down
    or does not answer in time, the connection broke, or (SQLite) another process holds
    the write lock past the busy timeout.

    The HTTP layer answers 503 with ``Retry-After: retry_after`` (fastim/app.py); the chat
    hub answers a message it could not store with a ``store_failed`` error and no ack.
    A write that failed this way may still have been applied (the connection can break
    after the commit and before its answer), so a retry must be safe to repeat: chat
    messages carry a client id (``cid``) for that, and a resend is stored once.
    """

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SchemaError(StoreError):
    """The database's schema cannot be brought to this code's version."""
