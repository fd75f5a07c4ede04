"""Messages at rest: sealing a message's user text with an AEAD before it is stored.

Threat: someone copies the database file or a backup. With a key file
(`fastim serve --message-key-file PATH`) the text a user wrote into a message
(content, pic, url, memo) is stored only as AES-256-GCM ciphertext; who wrote to whom
and when stays in clear columns, because the server must query by it. This is not
end-to-end encryption: the running server holds the key and sees every message.

The crypto is the `cryptography` package's AESGCM (OpenSSL underneath); nothing here
is hand-rolled. What is ours is only the framing:

* **Key file**: one key a line, ``<key-id> <base64 of 32 random bytes>``; ``#`` starts a
  comment. The first key is the *current* one and seals new messages; the others only
  open older messages (key rotation: put a new key first, keep the old lines).
* **Sealed value**: ``enc:v1:<key-id>:<base64url(nonce || ciphertext || tag)>``, text in
  its own column (``messages.sealed``, migration 3), so a value names its format version
  and its key, and plain rows (sealed IS NULL) stay readable.
* **Nonce**: 96 random bits per message (NIST SP 800-38D §8.2.2: random nonces are safe
  for up to 2^32 messages under one key; rotate long before that).
* **Plaintext**: the fields, each as ``<length>:<text>`` (length in characters).
* **Associated data**: the row's identity known at insert time (conversation, sender,
  client id, cmd, dstid, media, amount, created). GCM authenticates it, so a sealed value
  copied into another row, or a row whose clear columns were edited, fails to open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger(__name__)

#: Bytes of a key: AES-256.
KEY_BYTES = 32
#: Bytes of a GCM nonce (NIST SP 800-38D §5.2.1.1: 96 bits is the recommended length).
NONCE_BYTES = 12
#: The prefix of a sealed value of format version 1.
PREFIX = "enc:v1:"
#: Key ids name a key in sealed values and in the `message_keys` table.
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
#: Domain separation for the associated data and the key fingerprint.
_AD_LABEL = "fastim-message-v1"
_FINGERPRINT_LABEL = b"fastim message key fingerprint v1"


class KeyFileError(Exception):
    """The key file is missing, unreadable or malformed; the message says which line."""


class KeyMismatch(Exception):
    """The database holds messages sealed with keys this server was not given."""


class SealError(Exception):
    """One sealed value cannot be opened: unknown key, bad format, or failed
    authentication (tampered ciphertext, or the row's clear columns changed)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # "unknown_key" | "malformed" | "authentication"


@dataclass(frozen=True)
class MessageKey:
    key_id: str
    secret: bytes

    @property
    def fingerprint(self) -> str:
        """A public check value of the key (HMAC of a fixed label under the key): lets the
        database remember *which* key sealed its rows without revealing the key."""
        return hmac.new(self.secret, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:32]

    def __repr__(self) -> str:  # never print the secret
        return f"MessageKey({self.key_id!r})"


def parse_key_file(text: str, source: str = "key file") -> list[MessageKey]:
    """The keys of a key file, current first. Raises KeyFileError naming the line."""
    keys: list[MessageKey] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise KeyFileError(f"{source}:{number}: expected '<key-id> <base64 key>'")
        key_id, encoded = parts
        if not KEY_ID.fullmatch(key_id):
            raise KeyFileError(f"{source}:{number}: a key id is 1-32 of A-Z a-z 0-9 _ . -")
        if key_id in seen:
            raise KeyFileError(f"{source}:{number}: key id {key_id!r} is listed twice")
        try:
            secret = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"{source}:{number}: the key is not valid base64") from None
        if len(secret) != KEY_BYTES:
            raise KeyFileError(f"{source}:{number}: a key must be {KEY_BYTES} bytes, "
                               f"not {len(secret)}")
        seen.add(key_id)
        keys.append(MessageKey(key_id, secret))
    if not keys:
        raise KeyFileError(f"{source}: no key in the file")
    return keys


def load_key_file(path: Path) -> list[MessageKey]:
    """Read a key file; warn when others than its owner may read it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyFileError(f"{path}: the message key file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read the message key file ({exc})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("%s: the message key file is accessible to group/others "
                       "(mode %o); chmod 600 it", path, stat.S_IMODE(mode))
    return parse_key_file(text, str(path))


def new_key_line(key_id: str | None = None) -> str:
    """One key file line with a fresh random key."""
    key_id = key_id or time.strftime("k%Y%m%dT%H%M%SZ", time.gmtime())
    if not KEY_ID.fullmatch(key_id):
        raise KeyFileError("a key id is 1-32 of A-Z a-z 0-9 _ . -")
    return f"{key_id} {base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}\n"


_HEADER = ("# fastim message keys: '<key-id> <base64 32 bytes>'. The first key seals new\n"
           "# messages; keep older lines to read older messages. Keep this file secret\n"
           "# and backed up apart from the database: without it sealed messages are lost.\n")


def write_key_file(path: Path, key_id: str | None = None, *, rotate: bool = False) -> str:
    """Create a key file (mode 0600, never overwriting one), or with `rotate` put a new
    current key in front of an existing file's keys. Returns the new key's id."""
    line = new_key_line(key_id)
    new_id = line.split()[0]
    if not rotate:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileError(f"{path} exists; use --rotate to add a new key to it") from None
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(_HEADER + line)
        return new_id
    old = load_key_file(path)
    if new_id in {k.key_id for k in old}:
        raise KeyFileError(f"{path}: key id {new_id!r} is already in the file")
    body = _HEADER + line + "".join(
        f"{k.key_id} {base64.b64encode(k.secret).decode()}\n" for k in old)
    # Write beside it and rename, so a crash never leaves a half-written key file.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return new_id


def _framed(value: str) -> str:
    """`value` with its length in front: any text, even one holding the separators,
    reads back unambiguously."""
    return f"{len(value)}:{value}"


def associated_data(conv: str, sender: int, cid: str | None, cmd: int, dstid: int,
                    media: int, amount: int, created: int) -> bytes:
    """The row identity a sealed value is bound to (all known before the INSERT; the
    autoincrement id is not, so it is not part of it). Integers are written in decimal,
    the texts framed by their length, a missing cid as "-" (unlike an empty one, "0:")."""
    cid_part = "-" if cid is None else _framed(cid)
    return (f"{_AD_LABEL}|{int(sender)}|{int(cmd)}|{int(dstid)}|{int(media)}|{int(amount)}"
            f"|{int(created)}|{_framed(conv)}|{cid_part}").encode()


def _pack(fields: Sequence[str]) -> bytes:
    """The plaintext: each field framed by its length (cheaper than JSON per message)."""
    return "".join(f"{len(f)}:{f}" for f in fields).encode()


def _unpack(plain: bytes) -> list[str]:
    text = plain.decode()
    fields: list[str] = []
    at = 0
    while at < len(text):
        colon = text.index(":", at)  # ValueError on a malformed value
        end = colon + 1 + int(text[at:colon])
        if end > len(text):
            raise ValueError("a sealed field runs past the end")
        fields.append(text[colon + 1:end])
        at = end
    return fields


class Sealer:
    """Seals and opens the user text of messages with the keys of one key file."""

    def __init__(self, keys: Sequence[MessageKey]) -> None:
        if not keys:
            raise KeyFileError("no message key given")
        self.keys = list(keys)
        self.current = self.keys[0]
        self._aead = {k.key_id: AESGCM(k.secret) for k in self.keys}

    @classmethod
    def from_file(cls, path: Path) -> Sealer:
        return cls(load_key_file(path))

    def seal(self, fields: Sequence[str], ad: bytes) -> str:
        """`fields` (the message's content, pic, url, memo) as one sealed value."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead[self.current.key_id].encrypt(nonce, _pack(fields), ad)
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{PREFIX}{self.current.key_id}:{body}"

    def open(self, value: str, ad: bytes) -> list[str]:
        """The fields sealed in `value`; raises SealError saying why not."""
        if not value.startswith(PREFIX):
            raise SealError("malformed", "the sealed value has an unknown format")
        key_id, _, body = value[len(PREFIX):].partition(":")
        aead = self._aead.get(key_id)
        if aead is None:
            raise SealError("unknown_key", f"sealed with key {key_id!r}, "
                                           "which the key file does not list")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise SealError("malformed", "the sealed value is not base64url") from None
        if len(raw) < NONCE_BYTES + 16:
            raise SealError("malformed", "the sealed value is too short")
        try:
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], ad)
        except InvalidTag:
            raise SealError("authentication", "authentication failed: the ciphertext or "
                            "the row it belongs to was changed") from None
        try:
            return _unpack(plain)
        except ValueError:
            raise SealError("malformed", "the sealed fields cannot be read") from None
