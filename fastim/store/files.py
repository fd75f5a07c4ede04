"""Voice and file uploads, and the file messages that carry them (migration 9).

* ``uploads``: one row per (user, SHA-256, kind) a user uploaded: the per-user storage
  quota sums its sizes; a voice message's duration is the server's figure from here; a
  file's name and served type come from here.
* ``message_files``: one row per stored file message (``media`` 5): which file it carries
  and in which conversation. A file is served to its uploaders and to the members of a
  conversation one of these rows names; nothing else (not the URL alone) grants access.

Each function runs inside one transaction on a store worker thread (``store.read`` /
``store.write``). The store does not import the domain: the message kinds are the wire
values of docs/chat-protocol.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastim.store.errors import IntegrityViolation
from fastim.store.sql import Tx

#: `messages.media` of a file message (Media.FILE of fastim/chat/protocol.py).
FILE = 5
VOICE_KIND = "voice"
FILE_KIND = "file"


@dataclass(frozen=True)
class Upload:
    """What a user uploaded: the bytes' SHA-256, their name, served type and size, and
    for a voice message its duration in milliseconds."""

    owner_id: int
    digest: str
    kind: str
    name: str
    type: str
    size: int
    millis: int


_UPLOAD_COLUMNS = "owner_id, digest, kind, name, type, size, millis"


def _upload(row: Sequence[Any]) -> Upload:
    owner, digest, kind, name, type_, size, millis = row
    return Upload(int(owner), digest, kind, name, type_, int(size), int(millis))


def used_bytes(tx: Tx, owner_id: int) -> int:
    """Bytes of voice and files a user has uploaded (each distinct upload counted once)."""
    return int(tx.value("SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner_id = ?",
                        (owner_id,)))


def record_upload(tx: Tx, upload: Upload, now: int, quota: int | None) -> Upload:
    """Remember that `upload.owner_id` uploaded these bytes (a second upload of the same
    bytes takes the new name and costs no quota). With a `quota`, a new upload that would
    take the user past it raises :class:`QuotaExceeded`, inside the same transaction, so
    two uploads at once cannot both slip under it."""
    key = (upload.owner_id, upload.digest, upload.kind)
    known = tx.row("SELECT 1 FROM uploads WHERE owner_id = ? AND digest = ? AND kind = ?", key)
    if known is not None:
        tx.execute("UPDATE uploads SET name = ?, type = ? "
                   "WHERE owner_id = ? AND digest = ? AND kind = ?",
                   (upload.name, upload.type, *key))
        return upload
    if quota is not None:
        used = used_bytes(tx, upload.owner_id)
        if used + upload.size > quota:
            raise QuotaExceeded(used, quota)
    try:
        tx.execute(f"INSERT INTO uploads ({_UPLOAD_COLUMNS}, created) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (upload.owner_id, upload.digest, upload.kind, upload.name, upload.type,
                    upload.size, upload.millis, now))
    except IntegrityViolation as violation:
        if violation.kind != "unique":
            raise  # the same upload at the same moment from another device: already there
    return upload


class QuotaExceeded(Exception):
    """The upload would take its user past the storage quota."""

    def __init__(self, used: int, quota: int) -> None:
        super().__init__(f"{used} of {quota} bytes used")
        self.used = used
        self.quota = quota


def voice_millis(tx: Tx, digest: str) -> int | None:
    """The duration the server read from an uploaded voice message, None if unknown."""
    value = tx.value("SELECT MAX(millis) FROM uploads WHERE digest = ? AND kind = ?",
                     (digest, VOICE_KIND))
    return None if value is None else int(value)


def own_file(tx: Tx, owner_id: int, digest: str) -> Upload | None:
    """The user's own upload of this file, None when they never uploaded it."""
    row = tx.row(f"SELECT {_UPLOAD_COLUMNS} FROM uploads "
                 "WHERE owner_id = ? AND digest = ? AND kind = ?",
                 (owner_id, digest, FILE_KIND))
    return None if row is None else _upload(row)


def any_file(tx: Tx, digest: str) -> Upload | None:
    """Some upload of this file (its type and size are those of the bytes)."""
    row = tx.row(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE digest = ? AND kind = ? "
                 "ORDER BY created, owner_id LIMIT 1", (digest, FILE_KIND))
    return None if row is None else _upload(row)


def _member(tx: Tx, user_id: int, conv: str) -> bool:
    """Whether `user_id` is in conversation `conv` (``p<low>_<high>`` or ``g<group>``)."""
    if conv.startswith("g"):
        return tx.row("SELECT 1 FROM memberships WHERE community_id = ? AND user_id = ?",
                      (int(conv[1:]), user_id)) is not None
    low, _, high = conv[1:].partition("_")
    return str(user_id) in (low, high)


def downloadable(tx: Tx, user_id: int, digest: str) -> Upload | None:
    """The file as `user_id` may download it: their own upload, or the file as it was sent
    in a conversation they are in (with the name it was sent under); None otherwise."""
    own = own_file(tx, user_id, digest)
    if own is not None:
        return own
    for conv, name in tx.rows("SELECT conv, name FROM message_files WHERE digest = ? "
                              "ORDER BY message_id DESC", (digest,)):
        if _member(tx, user_id, conv):
            stored = any_file(tx, digest)
            if stored is None:
                return None
            return Upload(stored.owner_id, digest, FILE_KIND, name, stored.type, stored.size,
                          0)
    return None


def link_message(tx: Tx, message_id: int, digest: str, conv: str, name: str) -> None:
    """Record that file message `message_id` of conversation `conv` carries this file
    (called in the transaction that stores the message)."""
    tx.execute(tx.dialect.insert_ignore("message_files",
                                        ("message_id", "digest", "conv", "name")),
               (message_id, digest, conv, name))


def unlink_message(tx: Tx, message_id: int) -> None:
    """Forget the file a message carried (the message was recalled or deleted): the
    members of its conversation can no longer download the file through it."""
    tx.execute("DELETE FROM message_files WHERE message_id = ?", (message_id,))


#: Where a file is downloaded: ``/attach/file/<sha256>`` (fastim/handlers/upload.py).
FILE_URL_PREFIX = "/attach/file/"


def file_digest(url: str) -> str | None:
    """The SHA-256 a file message's url names, None when it names none."""
    if not url.startswith(FILE_URL_PREFIX):
        return None
    digest = url[len(FILE_URL_PREFIX):]
    if len(digest) != 64 or digest.strip("0123456789abcdef"):
        return None
    return digest


def link_file_messages(tx: Tx, batch: Sequence[Any], ids: Sequence[tuple[int, bool]]) -> None:
    """For each newly stored file message of `batch` (`ids`: its id and whether it was
    created now), record which file it carries; its name is the message's ``memo``."""
    for item, (message_id, created) in zip(batch, ids, strict=True):
        message = item.message
        if not created or message.media != FILE:
            continue
        digest = file_digest(message.url)
        if digest is not None:
            link_message(tx, message_id, digest, item.conv, message.memo[:255])
