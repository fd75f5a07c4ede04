"""The bus's interface: what the hub sends through it, what it hands back to the hub, and
what services publish on it.

Two buses implement `Bus`: `fastim.bus.local.LocalBus` (one process: every user is
here) and `fastim.bus.redisbus.RedisBus` (many nodes over Redis pub/sub). The hub is a
`Receiver` to them; the bus never imports it (nor the accounts), so either side can be
replaced in a test.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Protocol

from fastim.bus.events import ControlEvent

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """What a service needs of the bus: publish a change, and wait until it has left."""

    def publish(self, event: ControlEvent) -> None:
        """Apply `event` to this node's hub at once, and carry it to every other node.
        Called after the change is committed, so no hub's cache runs ahead of the
        database."""

    async def settle(self) -> None:
        """Until what was published so far has reached the other nodes (at once for a
        bus with no other node, or one that cannot reach them now: then it waits in an
        outbox). A service awaits this before it answers, so a client answered "left"
        can post nowhere after."""


class Receiver(Protocol):
    """The chat hub as the bus sees it: where frames and control events arrive."""

    def is_online(self, user: int) -> bool:
        """Whether `user` has a device on this node."""

    def deliver_to_users(self, users: Sequence[int], frame: str,
                         skip_session: str | None = None,
                         message_id: int | None = None) -> None: ...

    def deliver_to_group(self, group: int, frame: str, also: int | None = None,
                         skip_session: str | None = None,
                         message_id: int | None = None,
                         about: int | None = None) -> None: ...

    def apply(self, event: ControlEvent) -> None:
        """Bring the hub's in-memory state in step with `event`."""

    def close_all(self, code: int, reason: str) -> int:
        """Close every chat connection of this node with `code`; returns how many."""


class Bus(Publisher, Protocol):
    """Carries frames to users wherever they are connected (this node or others), carries
    control events to every node's hub, and knows who is online anywhere.

    `message_id` marks a stored message's frame: a device is sent each message once even
    when it reaches the node twice (a bus that republishes after an outage).
    """

    #: This node's id on the bus ("" for the in-process bus): session ids start with it,
    #: so they are unique across nodes.
    node: str

    @property
    def connected(self) -> bool:
        """Whether frames reach the other nodes now (always, for a bus without any); the
        health check reports a node whose Redis link is down as not ready."""

    def attach(self, receiver: Receiver) -> None:
        """Deliver what arrives to `receiver` (the hub; an api-only node has none)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def to_users(self, users: Sequence[int], frame: str, skip_session: str | None = None,
                 message_id: int | None = None) -> None: ...

    def to_group(self, group: int, frame: str, also: int | None = None,
                 skip_session: str | None = None, message_id: int | None = None,
                 about: int | None = None) -> None:
        """Every online member of `group`, and the devices of user `also` (the sender,
        who may be on no list of this node's members). `about`: the frame is a change
        of group message `about`, for the members whose history window holds it only
        (a member who joined after it was sent may not read it, nor its changes)."""

    async def arrived(self, user: int, groups: Collection[int], friends: Collection[int],
                      frame: str) -> set[int]:
        """The first device of `user` on this node is connected, and `groups` now have an
        online member here: start receiving for them. If the user was offline everywhere
        until now, send `frame` (the online presence) to those of `friends` who are
        online. Returns the friends online anywhere."""

    def departed(self, user: int, groups: Collection[int], friends: Collection[int],
                 frame: str) -> None:
        """The last device of `user` on this node is gone and `groups` have no online
        member here any more. If the user is now offline everywhere, send `frame` (the
        offline presence) to those of `friends` who are online."""

    def watch_group(self, group: int) -> None:
        """`group` has its first online member on this node (a member joined)."""

    def unwatch_group(self, group: int) -> None:
        """`group` has no online member on this node any more (left, dissolved)."""

    async def online(self, users: Collection[int]) -> set[int]:
        """Those of `users` with a live device on any node."""


async def publish_committed(bus: Publisher | None, event: ControlEvent) -> None:
    """What a service does after a change is committed: publish `event`, then wait until
    the other nodes have it (`Publisher.settle`). A failure to apply it here (a bug in a
    receiver) is logged, not raised: it must not turn a committed change into a 500."""
    if bus is None:
        return
    try:
        bus.publish(event)
    except Exception:
        log.exception("publishing %r failed", event)
    await bus.settle()
