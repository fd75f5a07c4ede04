"""Group commit: many messages, one transaction, one fsync.

One insert and commit per message caps a chat server at the disk's fsync rate. Here
messages queue up while the previous transaction is in flight and the next one takes
them all (up to `max_batch`), so batches grow with the load by themselves and a lone
message waits for no timer. The callback runs after each commit, in id order, so acks
always follow durability and deliveries leave in server-id order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class Busy(Exception):
    """Too many messages wait for the database: the sender should retry later."""


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        on_written: Callable[[Sequence[Item], Sequence[Result]], None],
        on_failed: Callable[[Sequence[Item], BaseException], None],
        *,
        max_batch: int = 256,
        max_pending: int = 20_000,
    ) -> None:
        self._write = write
        self._on_written = on_written
        self._on_failed = on_failed
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._pending: deque[Item] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    def submit(self, item: Item) -> None:
        if self._closing:
            raise Busy("the server is shutting down")
        if len(self._pending) >= self.max_pending:
            raise Busy("too many messages are waiting to be stored")
        self._pending.append(item)
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def close(self) -> None:
        """Store what is queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            count = min(len(self._pending), self.max_batch)
            batch = [self._pending.popleft() for _ in range(count)]
            try:
                results = await self._write(batch)
            except Exception as exc:  # the database is down or refused the batch
                log.warning("storing %d messages failed: %r", len(batch), exc)
                self._on_failed(batch, exc)
                continue
            try:
                self._on_written(batch, results)
            except Exception:  # a delivery bug must not stop storing
                log.exception("delivering a stored batch failed")
