"""Chat rate limits: a token bucket per user on each node, and with ``--redis`` a shared
window per user across nodes.

The bucket: `rate` tokens a second, at most `burst` saved up. The clock is passed in, so
the bucket is a pure value that tests drive by hand.
"""

from __future__ import annotations

import contextlib
from typing import Any


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are enough; say whether the action may go ahead."""
        elapsed = max(0.0, now - self.stamp)
        self.stamp = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def retry_after(self, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens will be there (0 when they already are)."""
        return max(0.0, (cost - self.tokens) / self.rate)


#: KEYS: one key per user (``<prefix>:chatrate:<user>``); ARGV[1]: the window (ms), then
#: one count per key. Adds each count to the user's counter of the current fixed window
#: (the window's number, from Redis' own clock, is appended to the key, so the nodes'
#: clocks may differ) and returns the totals, then the milliseconds left in the window.
_ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local index = math.floor(now / window)
local totals = {}
for i, key in ipairs(KEYS) do
  local name = key .. ':' .. index
  totals[i] = redis.call('INCRBY', name, tonumber(ARGV[i + 1]))
  if totals[i] == tonumber(ARGV[i + 1]) then redis.call('PEXPIRE', name, window * 2) end
end
totals[#KEYS + 1] = (index + 1) * window - now
return totals
"""


class SharedWindow:
    """Chat messages per user counted across every node, in Redis: a fixed window of
    ``window`` seconds allowing ``limit`` messages to one user wherever they come from.

    It is off the hot path: the hub counts each user's messages in a dict and hands the
    counts over in one batch (`add`) every `flush_every` seconds; one script call adds
    them all and answers the totals. A user over the limit is refused on every node that
    hears the total, until the window ends. So a user spread over N nodes can get past
    the limit by at most what N nodes let through in one flush interval (each node's own
    bucket still applies), and Redis sees one round trip per node per interval, whatever
    the message rate. ``redis`` is a ``redis.asyncio.Redis`` client.
    """

    def __init__(self, redis: Any, prefix: str, *, limit: int, window: float,
                 flush_every: float = 0.1) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.window_ms = max(1, int(window * 1000))
        self.flush_every = flush_every
        from redis.exceptions import RedisError

        self.unavailable = (RedisError, OSError)
        self._add = redis.register_script(_ADD)

    async def add(self, counts: dict[int, int]) -> tuple[set[int], float]:
        """Add ``counts`` (user -> messages since the last call); return the users now over
        the limit and the seconds left in the current window. Raises one of
        ``unavailable`` when Redis cannot be reached."""
        users = list(counts)
        reply = await self._add(keys=[f"{self.prefix}:chatrate:{user}" for user in users],
                                args=[self.window_ms, *(counts[user] for user in users)])
        totals = [int(value) for value in reply]
        over = {user for user, total in zip(users, totals, strict=False)
                if total > self.limit}
        return over, totals[-1] / 1000

    async def close(self) -> None:
        """Disconnect from Redis."""
        with contextlib.suppress(*self.unavailable):
            await self.redis.aclose()
