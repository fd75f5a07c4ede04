"""Slowing down password guessing: a sliding-window count of login attempts.

Two windows apply to every login: one per mobile number (someone guessing one account's
password) and one per client address (someone trying many accounts). Each remembers the
times of the last attempts within ``window`` seconds; once a key has ``limit`` of them,
further attempts are refused with 429 until the oldest leaves the window, and the answer
says when (``Retry-After``). An attempt is counted BEFORE the password is checked, so a
burst of concurrent guesses cannot all slip in before the first failure is recorded; a
successful login then takes its attempt back (and clears the mobile number's window).

It lives in memory: simple, no I/O on the login path, and adequate for one process. The
number of keys is bounded (least recently used ones are forgotten), so a flood of
made-up numbers cannot exhaust memory. With several processes each keeps its own count,
which multiplies the allowance by the process count (a shared counter, e.g. in Redis,
would fix that).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from fastim.errors import too_many_requests


class SlidingWindow:
    """At most ``limit`` events per key in any ``window`` seconds."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        while events and events[0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may act again, or None if it may act now."""
        now = self.clock()
        events = self._recent(key, now)
        if events is None or len(events) < self.limit:
            return None
        return events[0] + self.window - now

    def record(self, key: str) -> None:
        """Count one event for ``key`` now."""
        now = self.clock()
        events = self._recent(key, now)
        if events is None:
            events = self._events[key] = deque(maxlen=self.limit)
        self._events.move_to_end(key)
        events.append(now)
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)

    def forget_one(self, key: str) -> None:
        """Take back the latest event of ``key``."""
        events = self._events.get(key)
        if events:
            events.pop()
            if not events:
                del self._events[key]

    def clear(self, key: str) -> None:
        """Forget every event of ``key``."""
        self._events.pop(key, None)


class LoginThrottle:
    """Per-mobile and per-address limits on login attempts."""

    def __init__(
        self,
        *,
        per_mobile: int = 5,
        per_address: int = 20,
        window: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.by_mobile = SlidingWindow(per_mobile, window, clock=clock)
        self.by_address = SlidingWindow(per_address, window, clock=clock)

    def begin(self, mobile: str, address: str) -> None:
        """Count an attempt, or raise 429 (with ``retry_after``) if one is not allowed now."""
        waits = [
            w
            for w in (
                self.by_mobile.retry_after(mobile),
                self.by_address.retry_after(address) if address else None,
            )
            if w is not None
        ]
        if waits:
            raise too_many_requests("too many login attempts; try again later", max(waits))
        self.by_mobile.record(mobile)
        if address:
            self.by_address.record(address)

    def succeeded(self, mobile: str, address: str) -> None:
        """A login worked: it does not count against the address, and the number is clear."""
        self.by_mobile.clear(mobile)
        if address:
            self.by_address.forget_one(address)
