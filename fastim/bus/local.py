"""The in-process bus: one node, every user is here (the default without `--redis`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from fastim.bus.base import Receiver
from fastim.bus.events import ControlEvent


class LocalBus:
    """`fastim.bus.base.Bus` within one process: sending is delivering to the hub."""

    node = ""

    def __init__(self) -> None:
        self.hub: Receiver | None = None  # None on a node without a hub (`--role api`)

    @property
    def connected(self) -> bool:
        return True

    def attach(self, receiver: Receiver) -> None:
        self.hub = receiver

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def publish(self, event: ControlEvent) -> None:
        if self.hub is not None:
            self.hub.apply(event)

    async def settle(self) -> None:
        pass  # no other node to wait for

    def to_users(self, users: Sequence[int], frame: str, skip_session: str | None = None,
                 message_id: int | None = None) -> None:
        if self.hub is not None:
            self.hub.deliver_to_users(users, frame, skip_session, message_id)

    def to_group(self, group: int, frame: str, also: int | None = None,
                 skip_session: str | None = None, message_id: int | None = None,
                 about: int | None = None) -> None:
        if self.hub is not None:
            self.hub.deliver_to_group(group, frame, also, skip_session, message_id,
                                      about=about)

    async def arrived(self, user: int, groups: Collection[int], friends: Collection[int],
                      frame: str) -> set[int]:
        # This node is the only one: its first device is the first anywhere.
        online = await self.online(friends)
        self.to_users(sorted(online), frame)
        return online

    def departed(self, user: int, groups: Collection[int], friends: Collection[int],
                 frame: str) -> None:
        self.to_users(sorted(friends), frame)

    def watch_group(self, group: int) -> None:
        pass  # every group message is published here already

    def unwatch_group(self, group: int) -> None:
        pass

    async def online(self, users: Collection[int]) -> set[int]:
        hub = self.hub
        return set() if hub is None else {user for user in users if hub.is_online(user)}
