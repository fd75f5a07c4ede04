"""What an operator sets about Web Push (the `--push-*` flags, docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PushOptions:
    #: Whether a push carries the message's text (a preview on the lock screen). Off:
    #: only "New message from Alice". Refused with --message-key-file (docs/security.md).
    preview: bool = False
    #: The VAPID key file (RFC 8292); None: ``vapid-private.pem`` in the data dir. Every
    #: node of a cluster must use the same one: a subscription is bound to its key.
    key_file: Path | None = None
    #: RFC 8292 §2.1 ``sub``: how a push service reaches the operator.
    subject: str = "mailto:postmaster@localhost"
    #: For tests and development only: endpoints on plain http:// at a loopback address
    #: (a push-service stand-in). Production endpoints are https:// only.
    allow_http_loopback: bool = False
    #: Endpoints whose host resolves to a private, loopback or link-local address are
    #: refused (server-side request forgery) unless this is set (a push service of
    #: one's own on the LAN).
    allow_private: bool = False
    #: Seconds within which a second push for the same conversation to the same user is
    #: left out: the first one already shows there is something new.
    coalesce: float = 5.0
    #: RFC 8030 §5.2 TTL: seconds the push service keeps a push for an offline browser.
    ttl: int = 4 * 3600
    #: Pushes in flight at once (each a blocking HTTP POST on a worker thread), and
    #: seconds each may take before it is given up.
    concurrency: int = 4
    timeout: float = 10.0
    #: Subscriptions kept per user (one per browser): the oldest go beyond it.
    per_user: int = 10
