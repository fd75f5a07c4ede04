"""Mutes and Web Push subscriptions (migration 11).

* ``mutes``: a conversation a user muted, 1:1 (kind 10, ``dstid`` the other user) or a
  group (kind 11), until a time (Unix seconds) or, with 0, until unmuted. A muted
  conversation makes no sound, no desktop notification and no push on any device.
* ``push_subscriptions``: one row per browser that asked for Web Push (RFC 8030 §5): the
  push service's endpoint URL, the browser's ECDH public key (``p256dh``) and auth
  secret (RFC 8291 §3), the hash of the login token that made it, so that logging
  that session out removes it, and the language its pushes are written in (migration 14).

Each function runs inside one transaction on a store worker thread (``store.read`` /
``store.write``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastim.store.sql import Tx

#: The conversation kinds of docs/chat-protocol.md (Cmd.SINGLE, Cmd.GROUP).
SINGLE = 10
GROUP = 11


@dataclass(frozen=True)
class Mute:
    """`user_id` muted conversation (`kind`, `dstid`) until `until` (0: until unmuted)."""

    kind: int
    dstid: int
    until: int

    def to_dict(self) -> dict[str, Any]:
        return {"cmd": self.kind, "dstid": self.dstid, "until": self.until or None}


@dataclass(frozen=True)
class Subscription:
    """Where to push for one browser of `user_id` (RFC 8030 §5, RFC 8291 §3)."""

    id: int
    user_id: int
    endpoint: str
    p256dh: str
    auth: str
    #: The language the browser's pushes are written in (fastim.i18n.LANGUAGES).
    lang: str = "en"


def endpoint_hash(endpoint: str) -> str:
    """The unique key of a subscription: the SHA-256 of its endpoint URL."""
    return hashlib.sha256(endpoint.encode("utf-8")).hexdigest()


def in_conversation(tx: Tx, user_id: int, kind: int, dstid: int) -> bool:
    """Whether `user_id` may mute (`kind`, `dstid`): a friend, or a member of the group."""
    if kind == SINGLE:
        return tx.row("SELECT 1 FROM friendships WHERE owner_id = ? AND dst_id = ?",
                      (user_id, dstid)) is not None
    return tx.row("SELECT 1 FROM memberships WHERE community_id = ? AND user_id = ?",
                  (dstid, user_id)) is not None


def set_mute(tx: Tx, user_id: int, kind: int, dstid: int, until: int) -> None:
    """Mute (or change the end of a mute of) one conversation."""
    tx.execute(tx.dialect.upsert("mutes", ("user_id", "kind", "dstid", "muted_until"),
                                 ("user_id", "kind", "dstid")),
               (user_id, kind, dstid, until))


def clear_mute(tx: Tx, user_id: int, kind: int, dstid: int) -> bool:
    """Unmute one conversation; False when it was not muted."""
    return tx.execute("DELETE FROM mutes WHERE user_id = ? AND kind = ? AND dstid = ?",
                      (user_id, kind, dstid)) > 0


def mutes_of(tx: Tx, user_id: int, now: int) -> list[Mute]:
    """The conversations `user_id` has muted now (ended mutes are left out)."""
    rows = tx.rows("SELECT kind, dstid, muted_until FROM mutes WHERE user_id = ? "
                   "AND (muted_until = 0 OR muted_until > ?) ORDER BY kind, dstid",
                   (user_id, now))
    return [Mute(int(k), int(d), int(u)) for k, d, u in rows]


def save_subscription(tx: Tx, user_id: int, endpoint: str, p256dh: str, auth: str,
                      token_hash: str, now: int, keep: int, lang: str = "en") -> int:
    """Store a browser's subscription (the same endpoint again replaces its keys, owner
    and language: a browser has one subscription, whoever is logged in there now). A user
    keeps at most `keep` subscriptions: the oldest go. Returns the subscription's id."""
    key = endpoint_hash(endpoint)
    tx.execute("DELETE FROM push_subscriptions WHERE endpoint_hash = ?", (key,))
    new_id = tx.insert(
        "INSERT INTO push_subscriptions (user_id, endpoint_hash, endpoint, p256dh, auth, "
        "token_hash, created, lang) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (user_id, key, endpoint, p256dh, auth, token_hash, now, lang))
    ids = [int(r[0]) for r in tx.rows(
        "SELECT id FROM push_subscriptions WHERE user_id = ? ORDER BY id DESC", (user_id,))]
    for old in ids[keep:]:
        tx.execute("DELETE FROM push_subscriptions WHERE id = ?", (old,))
    return new_id


def delete_subscription(tx: Tx, user_id: int, endpoint: str) -> bool:
    """Remove the user's subscription of `endpoint`; False when there was none."""
    return tx.execute("DELETE FROM push_subscriptions WHERE endpoint_hash = ? AND user_id = ?",
                      (endpoint_hash(endpoint), user_id)) > 0


def delete_token_subscriptions(tx: Tx, token_hash: str) -> int:
    """Remove the subscriptions made with one login token (that session logged out)."""
    return tx.execute("DELETE FROM push_subscriptions WHERE token_hash = ?", (token_hash,))


def delete_gone(tx: Tx, subscription_id: int, endpoint: str) -> bool:
    """Remove a subscription the push service no longer knows (404/410, RFC 8030 §7.3).
    Only if it still names that endpoint: a browser may have subscribed again since."""
    return tx.execute("DELETE FROM push_subscriptions WHERE id = ? AND endpoint_hash = ?",
                      (subscription_id, endpoint_hash(endpoint))) > 0


def count_subscriptions(tx: Tx, user_id: int) -> int:
    return int(tx.value("SELECT COUNT(*) FROM push_subscriptions WHERE user_id = ?",
                        (user_id,)))


def push_targets(tx: Tx, kind: int, dstid: int, sender: int, now: int) -> list[Subscription]:
    """The subscriptions of everyone a new message in (`kind`, `dstid`) from `sender`
    reaches, but the sender and those who muted the conversation. For a 1:1 message the
    recipient's mute is of the conversation with `sender`. Only subscriptions whose login
    session is still valid count: a browser logged out, or whose session was revoked (a
    password change elsewhere) or expired, is told nothing, not even who wrote."""
    session = "JOIN tokens t ON t.token_hash = s.token_hash AND t.expires > ? "
    muted = ("NOT EXISTS (SELECT 1 FROM mutes m WHERE m.user_id = s.user_id "
             "AND m.kind = ? AND m.dstid = ? AND (m.muted_until = 0 OR m.muted_until > ?))")
    columns = "s.id, s.user_id, s.endpoint, s.p256dh, s.auth, s.lang"
    rows: Sequence[tuple[Any, ...]]
    if kind == SINGLE:
        rows = tx.rows(f"SELECT {columns} FROM push_subscriptions s {session}"
                       f"WHERE s.user_id = ? AND {muted} ORDER BY s.id",
                       (now, dstid, SINGLE, sender, now))
    else:
        rows = tx.rows(f"SELECT {columns} FROM push_subscriptions s {session}"
                       "JOIN memberships g ON g.user_id = s.user_id AND g.community_id = ? "
                       f"WHERE s.user_id <> ? AND {muted} ORDER BY s.id",
                       (now, dstid, sender, GROUP, dstid, now))
    return [Subscription(int(i), int(u), e, p, a, str(g)) for i, u, e, p, a, g in rows]
