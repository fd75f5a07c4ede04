"""A Redis client for a ``--redis`` URL: one Redis, or the primary that Sentinel names.

    redis://[:password@]host:6379/0                     one Redis
    rediss://[:password@]host:6380/0                    the same over TLS
    redis+sentinel://[:password@]h1:26379,h2:26379,h3:26379/mymaster[/0]
                                                        whichever server the sentinels
                                                        name as mymaster's primary
    rediss+sentinel://…                                 the same, TLS to the primary

``?prefix=NAME`` names the deployment in every form (`fastim.bus.envelope.split_url`);
``?sentinel_password=…`` is the sentinels' own password when they have one.

With Sentinel, every new connection asks the sentinels which server is the primary
now; after a failover the bus's reconnect loop (fastim/bus/redisbus.py) connects again
and so follows the promoted replica. docs/scaling.md, "Redis without a single point of
failure".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str  # the name the sentinels monitor the primary under
    db: int = 0
    password: str | None = None  # the primary's
    sentinel_password: str | None = None
    tls: bool = False


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The sentinels, service name and options of a ``redis+sentinel://`` URL (without
    the ``prefix`` parameter); ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL: {url!r}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    password = unquote(credentials.partition(":")[2]) or None if credentials else None
    sentinels = []
    for host_port in hosts.split(","):
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"each sentinel is host:port, not {host_port!r} in {url!r}")
        sentinels.append((host.strip("[]"), int(port)))
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"a Sentinel URL ends in /SERVICE or /SERVICE/DB: {url!r}")
    options = dict(parse_qsl(parts.query))
    return SentinelTarget(
        sentinels=tuple(sentinels), service=path[0], db=int(path[1]) if len(path) == 2 else 0,
        password=password, sentinel_password=options.get("sentinel_password") or None,
        tls=parts.scheme == "rediss+sentinel")


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """A client for `url` (already without its ``prefix``): `options` are redis-py's
    connection options (timeouts, retry, keepalive), applied to the primary."""
    if urlsplit(url).scheme not in SENTINEL_SCHEMES:
        return aioredis.from_url(url, **options)
    target = parse_sentinel_url(url)
    # Asking the sentinels gets the same timeouts as talking to the primary.
    sentinel_options: dict[str, Any] = {
        name: options[name] for name in ("socket_timeout", "socket_connect_timeout")
        if name in options}
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)
    client: aioredis.Redis = sentinel.master_for(
        target.service, db=target.db, password=target.password, ssl=target.tls, **options)
    return client
