"""Slowing down password guessing: a sliding-window count of login attempts.

Two windows apply to every login: one per mobile number (someone guessing one account's
password) and one per client address (someone trying many accounts). Each remembers the
times of the last attempts within ``window`` seconds; once a key has ``limit`` of them,
further attempts are refused with 429 until the oldest leaves the window, and the answer
says when (``Retry-After``). An attempt is counted BEFORE the password is checked, so a
burst of concurrent guesses cannot all slip in before the first failure is recorded; a
successful login then takes its attempt back (and clears the mobile number's window).

:class:`LoginThrottle` lives in memory: simple, no I/O on the login path, and adequate for
one process. The number of keys is bounded (least recently used ones are forgotten), so a
flood of made-up numbers cannot exhaust memory. With several processes each would keep its
own count, multiplying the allowance by the process count: with ``--redis`` the app uses
:class:`RedisLoginThrottle` instead, the same windows kept in Redis, so every node draws
on one budget.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from fastim.errors import too_many_requests

log = logging.getLogger(__name__)

TOO_MANY = "too many login attempts; try again later"


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
            raise too_many_requests(TOO_MANY, max(waits))
        self.by_mobile.record(mobile)
        if address:
            self.by_address.record(address)

    def succeeded(self, mobile: str, address: str) -> None:
        """A login worked: it does not count against the address, and the number is clear."""
        self.by_mobile.clear(mobile)
        if address:
            self.by_address.forget_one(address)

    # The interface Accounts uses, shared with RedisLoginThrottle.

    async def attempt(self, mobile: str, address: str) -> None:
        """`begin`, as a coroutine."""
        self.begin(mobile, address)

    async def success(self, mobile: str, address: str) -> None:
        """`succeeded`, as a coroutine."""
        self.succeeded(mobile, address)

    async def close(self) -> None:
        """Nothing to release."""


#: KEYS: the mobile number's window, the address's window ("" for none).
#: ARGV: mobile limit, address limit, window (ms), a unique member for this attempt.
#: Checks both windows and records the attempt in both only if both allow it, in one
#: atomic step (so concurrent logins on several nodes cannot all slip through). Times are
#: Redis' own clock (TIME), so the nodes' clocks may differ. Each window is a sorted set
#: of attempt times, trimmed to the window and expiring with it: at most `limit` members.
#: Returns 0 when the attempt is allowed, else the milliseconds until it would be.
_ATTEMPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
local wait = 0
for i = 1, 2 do
  local key = KEYS[i]
  if key ~= '' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local limit = tonumber(ARGV[i])
    if redis.call('ZCARD', key) >= limit then
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      local until_free = tonumber(oldest[2]) + window - now
      if until_free > wait then wait = until_free end
    end
  end
end
if wait > 0 then return wait end
for i = 1, 2 do
  local key = KEYS[i]
  if key ~= '' then
    redis.call('ZADD', key, now, now .. ':' .. ARGV[4])
    redis.call('PEXPIRE', key, window)
  end
end
return 0
"""

#: KEYS: the mobile number's window, the address's window ("" for none). A login worked:
#: the number's window is cleared, and the address's latest attempt is taken back.
_SUCCESS = """
redis.call('DEL', KEYS[1])
if KEYS[2] ~= '' then redis.call('ZPOPMAX', KEYS[2]) end
return 0
"""


class RedisLoginThrottle:
    """:class:`LoginThrottle`'s windows kept in Redis, shared by every node using it.

    ``redis`` is a ``redis.asyncio.Redis`` client; keys are ``<prefix>:login:m:<mobile>``
    and ``<prefix>:login:a:<address>``. When Redis cannot be reached the node falls back
    to its own in-memory windows (logged): logins go on, still throttled per process.
    """

    def __init__(self, redis: Any, prefix: str, *, per_mobile: int = 5,
                 per_address: int = 20, window: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.prefix = prefix
        self.per_mobile = per_mobile
        self.per_address = per_address
        self.window_ms = max(1, int(window * 1000))
        self.local = LoginThrottle(per_mobile=per_mobile, per_address=per_address,
                                   window=window, clock=clock)
        # redis-py is imported only when --redis is given (setup.cfg).
        from redis.exceptions import RedisError

        self._unavailable = (RedisError, OSError)
        self._attempt = redis.register_script(_ATTEMPT)
        self._success = redis.register_script(_SUCCESS)

    def _keys(self, mobile: str, address: str) -> list[str]:
        return [f"{self.prefix}:login:m:{mobile}",
                f"{self.prefix}:login:a:{address}" if address else ""]

    async def attempt(self, mobile: str, address: str) -> None:
        """Count an attempt, or raise 429 (with ``retry_after``) if one is not allowed now."""
        try:
            wait = await self._attempt(
                keys=self._keys(mobile, address),
                args=[self.per_mobile, self.per_address, self.window_ms,
                      secrets.token_hex(8)])
        except self._unavailable as exc:
            log.warning("login throttle: Redis unavailable (%s); counting in this process", exc)
            self.local.begin(mobile, address)
            return
        if int(wait) > 0:
            raise too_many_requests(TOO_MANY, int(wait) / 1000)

    async def success(self, mobile: str, address: str) -> None:
        """A login worked: it does not count against the address, and the number is clear."""
        try:
            await self._success(keys=self._keys(mobile, address), args=[])
        except self._unavailable as exc:
            log.warning("login throttle: Redis unavailable (%s)", exc)
            self.local.succeeded(mobile, address)

    async def close(self) -> None:
        """Disconnect from Redis."""
        with contextlib.suppress(*self._unavailable):
            await self.redis.aclose()


TOO_MANY_REGISTRATIONS = "too many registrations from this address; try again later"


class RegisterThrottle:
    """At most ``per_address`` registration attempts per client address in ``window``
    seconds (429 beyond), in this process. Every attempt that passed validation counts,
    taken or not: each costs a password hash and each tells whether a number has an
    account (docs/security.md "Registration")."""

    def __init__(self, *, per_address: int = 10, window: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.by_address = SlidingWindow(per_address, window, clock=clock)

    def begin(self, address: str) -> None:
        """Count an attempt, or raise 429 (with ``retry_after``)."""
        wait = self.by_address.retry_after(address)
        if wait is not None:
            raise too_many_requests(TOO_MANY_REGISTRATIONS, wait)
        self.by_address.record(address)

    async def attempt(self, address: str) -> None:
        """`begin`, as a coroutine (the interface Accounts uses)."""
        self.begin(address)

    async def close(self) -> None:
        """Nothing to release."""


class RedisRegisterThrottle:
    """:class:`RegisterThrottle`'s window kept in Redis (``<prefix>:register:a:<address>``),
    shared by every node, with the login throttle's script; when Redis cannot be reached
    the node counts in its own memory (logged)."""

    def __init__(self, redis: Any, prefix: str, *, per_address: int = 10,
                 window: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.prefix = prefix
        self.per_address = per_address
        self.window_ms = max(1, int(window * 1000))
        self.local = RegisterThrottle(per_address=per_address, window=window, clock=clock)
        from redis.exceptions import RedisError

        self._unavailable = (RedisError, OSError)
        self._attempt = redis.register_script(_ATTEMPT)

    async def attempt(self, address: str) -> None:
        """Count an attempt, or raise 429 (with ``retry_after``)."""
        try:
            wait = await self._attempt(
                keys=[f"{self.prefix}:register:a:{address}", ""],
                args=[self.per_address, 0, self.window_ms, secrets.token_hex(8)])
        except self._unavailable as exc:
            log.warning("register throttle: Redis unavailable (%s); counting in this "
                        "process", exc)
            self.local.begin(address)
            return
        if int(wait) > 0:
            raise too_many_requests(TOO_MANY_REGISTRATIONS, int(wait) / 1000)

    async def close(self) -> None:
        """Disconnect from Redis."""
        with contextlib.suppress(*self._unavailable):
            await self.redis.aclose()
