"""The message bus between fastim nodes: Redis pub/sub and a presence registry.

`fastim serve --redis redis://host:port/0` puts :class:`RedisBus` behind the chat hub
(the in-process `fastim.chat.hub.LocalBus` is the default). docs/scaling.md has the
design and the figures.
"""

from fastim.bus.envelope import Envelope, Names, pack, split_url, unpack
from fastim.bus.redisbus import BusOptions, BusStats, RedisBus, State

__all__ = ["BusOptions", "BusStats", "Envelope", "Names", "RedisBus", "State", "pack",
           "split_url", "unpack"]
