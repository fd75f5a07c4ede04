"""The server's VAPID key pair (RFC 8292): made on the first start and kept in a file
(mode 0600, like the message key file), so that subscriptions made against its public
key stay valid across restarts. The public key goes to browsers as the
``applicationServerKey`` of ``pushManager.subscribe``; the private key signs the JWT of
every push, by which the push service knows the pushes come from the server the browser
subscribed for.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid

log = logging.getLogger(__name__)


def b64url(data: bytes) -> str:
    """Base64url without padding, as Web Push writes keys (RFC 8292 §3.2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class VapidKey:
    """The key pair, as py_vapid's signer and as the public key browsers are given."""

    def __init__(self, vapid: Vapid) -> None:
        self.vapid = vapid
        raw = vapid.public_key.public_bytes(serialization.Encoding.X962,
                                            serialization.PublicFormat.UncompressedPoint)
        #: The P-256 public key, uncompressed point, base64url (RFC 8292 §3.2).
        self.public_key = b64url(raw)

    @classmethod
    def load_or_create(cls, path: Path) -> VapidKey:
        """The key of `path`, made there first (0600, never overwritten) if missing. Two
        nodes starting at once on a shared directory: the loser of O_EXCL reads the
        winner's key."""
        if not path.exists():
            vapid = Vapid()
            vapid.generate_keys()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as out:
                    out.write(vapid.private_pem())
                    out.flush()
                    os.fsync(out.fileno())
                log.info("made a new VAPID key pair in %s", path)
                return cls(vapid)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("%s is readable by others (mode %o): chmod 600 it", path, mode)
        return cls(Vapid.from_pem(path.read_bytes()))
