"""What travels between fastim nodes over Redis: channel and key names, envelopes.

Sans-I/O: bytes and strings in, values out; nothing here talks to Redis.

Channels (pub/sub; Redis routes each publish to the nodes subscribed):

* ``<prefix>:u:<user id>``  -- frames for one user's devices; a node subscribes while it
  holds a device of that user;
* ``<prefix>:g:<group id>`` -- frames for a group's online members; a node subscribes
  while at least one member of the group is connected to it;
* ``<prefix>:ctl``          -- control events (fastim/bus/events.py: friend added,
  member joined/left, group dissolved, tokens revoked, "these users went offline with
  their node"); every node;
* ``<prefix>:applied:<node id>`` -- "I have applied your control event number N": each
  node's answer to the node that published it, so that the publisher's ``settle()``
  returns only once every node's hub acts on the change.

Keys (the presence registry):

* ``<prefix>:nodes``            -- sorted set: node id -> the ms time its heartbeat lapses;
* ``<prefix>:on:<user id>``     -- set of the nodes holding a device of the user;
* ``<prefix>:node:<node id>``   -- set of the users a node holds (to clean up after it).

An envelope is a JSON header, a newline, and the frame exactly as the hub encoded it, so
a node decodes a message once however many of its connections receive it. Compact JSON
never contains a raw newline, so the first newline ends the header.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_PREFIX = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclass(frozen=True)
class Names:
    """Channel and key names under one prefix (one fastim deployment per prefix: Redis
    pub/sub ignores the database number, so the prefix is what keeps deployments apart)."""

    prefix: str = "fastim"

    def user(self, user_id: int) -> bytes:
        return f"{self.prefix}:u:{user_id}".encode()

    def group(self, group_id: int) -> bytes:
        return f"{self.prefix}:g:{group_id}".encode()

    @property
    def control(self) -> bytes:
        return f"{self.prefix}:ctl".encode()

    def applied(self, node: str) -> bytes:
        return f"{self.prefix}:applied:{node}".encode()

    def parse(self, channel: bytes) -> tuple[str, int]:
        """("u", user id), ("g", group id) or ("ctl", 0) for a channel of this prefix."""
        text = channel.decode()
        head = self.prefix + ":"
        if not text.startswith(head):
            raise ValueError(f"channel {text!r} is not under prefix {self.prefix!r}")
        rest = text[len(head):]
        if rest == "ctl":
            return "ctl", 0
        kind, _, number = rest.partition(":")
        if kind not in ("u", "g") or not number.isdigit():
            raise ValueError(f"unknown channel {text!r}")
        return kind, int(number)


@dataclass(frozen=True)
class Envelope:
    """One frame on its way to another node's connections."""

    origin: str  # the node that published it
    frame: str  # the WebSocket text frame, encoded once by the hub
    skip_session: str | None = None  # the sender's device: it got the ack instead
    also: int | None = None  # group frames: the sender, who gets it even if no member here
    message_id: int | None = None  # stored messages: each connection gets an id once
    # group change frames: the message changed; a member whose history window starts
    # after it (they joined later) is not sent the frame
    about: int | None = None
    seq: int | None = None  # control events: the origin's number, echoed when applied


def pack(origin: str, frame: str, *, skip_session: str | None = None,
         also: int | None = None, message_id: int | None = None,
         seq: int | None = None, about: int | None = None) -> bytes:
    """The bytes to publish for `frame`."""
    header: dict[str, Any] = {"o": origin}
    if seq is not None:
        header["q"] = seq
    if skip_session is not None:
        header["s"] = skip_session
    if also is not None:
        header["a"] = also
    if message_id is not None:
        header["m"] = message_id
    if about is not None:
        header["w"] = about
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False)
    return head.encode() + b"\n" + frame.encode()


def unpack(payload: bytes) -> Envelope:
    """An envelope from published bytes; ValueError if they are not one."""
    head, newline, body = payload.partition(b"\n")
    if not newline:
        raise ValueError("an envelope needs a header line")
    header = json.loads(head)
    if not isinstance(header, dict) or not isinstance(header.get("o"), str):
        raise ValueError("an envelope header is an object with the origin node")
    skip, also, message_id, seq, about = (header.get("s"), header.get("a"),
                                          header.get("m"), header.get("q"), header.get("w"))
    if skip is not None and not isinstance(skip, str):
        raise ValueError("skip_session must be a string")
    for value in (also, message_id, seq, about):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("also, message_id, seq and about must be integers")
    return Envelope(origin=header["o"], frame=body.decode(), skip_session=skip, also=also,
                    message_id=message_id, seq=seq, about=about)


def redacted_url(url: str) -> str:
    """``url`` as it may be logged: a password in it (``rediss://:PASSWORD@host``, or
    ``user:PASSWORD@``) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def split_url(url: str) -> tuple[str, str]:
    """The Redis URL for redis-py and the deployment prefix from its ``prefix`` query
    parameter (default ``fastim``): ``redis://127.0.0.1:6379/0?prefix=staging``."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel"):
        raise ValueError(f"not a Redis URL: {url!r} (redis://host:port/db, or "
                         "redis+sentinel://host:port,host:port/service)")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = "fastim"
    kept = []
    for name, value in query:
        if name == "prefix":
            prefix = value
        else:
            kept.append((name, value))
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"prefix must be 1-64 letters, digits, '_', '.', '-': {prefix!r}")
    return urlunsplit(parts._replace(query=urlencode(kept))), prefix
