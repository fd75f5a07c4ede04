"""The message bus between the chat hub and the services, within a node and across nodes.

`fastim.bus.base.Bus` is the interface; `LocalBus` (in process, the default) and
`RedisBus` (`fastim serve --redis redis://host:port/0`: Redis pub/sub and a presence
registry) implement it; the Redis client is imported only when the Redis bus is. Control
events (`fastim.bus.events`) are what services publish for the hub. docs/scaling.md has
the design and the figures.
"""

from typing import TYPE_CHECKING, Any

from fastim.bus.base import Bus, Publisher, Receiver
from fastim.bus.envelope import Envelope, Names, pack, split_url, unpack
from fastim.bus.events import (
    ContactEvent,
    ControlEvent,
    FriendAdded,
    GroupDissolved,
    MemberJoined,
    MemberLeft,
    TokensRevoked,
    UsersWentOffline,
)
from fastim.bus.local import LocalBus

if TYPE_CHECKING:
    from fastim.bus.redisbus import BusOptions, BusStats, RedisBus, State

_REDIS_NAMES = frozenset({"BusOptions", "BusStats", "RedisBus", "State"})

__all__ = ["Bus", "BusOptions", "BusStats", "GroupDissolved", "ContactEvent",
           "ControlEvent", "Envelope", "FriendAdded", "LocalBus", "MemberJoined",
           "MemberLeft", "Names", "Publisher", "Receiver", "RedisBus", "State",
           "TokensRevoked", "UsersWentOffline", "pack", "split_url", "unpack"]


def __getattr__(name: str) -> Any:
    if name in _REDIS_NAMES:
        from fastim.bus import redisbus

        return getattr(redisbus, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
