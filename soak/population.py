"""The soak's users, devices, friendships and groups, made before the chat starts.

Accounts and their device sessions are written straight into the store: a REST
registration or login costs a default scrypt (n=16384, about 90 ms of one core here; a
login also upgrades a cheaper stored hash to the default one), and thousands of them would
spend minutes of a 2-core machine measuring scrypt rather than chat. The tokens are made
as /user/login makes them (256 random bits, only the SHA-256 kept). A few devices
(`rest_logins`) still log in through `POST /user/login`, replacing their seeded session,
and everything else goes through the REST API as a client would do it, concurrently over
keep-alive connections: `/contact/addfriend`, `/contact/createcommunity`,
`/contact/joincommunity` (so the hub learns of them as it does in production).
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fastim.accounts.passwords import hash_password
from fastim.accounts.service import token_hash
from fastim.store import open_store

PASSWORD = "soak password"
CHEAP_KDF = "scrypt:1024:8:1"


@dataclass
class Population:
    users: list[int] = field(default_factory=list)
    mobiles: dict[int, str] = field(default_factory=dict)
    friends: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    groups: dict[int, list[int]] = field(default_factory=dict)  # group -> members
    tokens: dict[tuple[int, int], str] = field(default_factory=dict)  # (user, device) -> token

    def groups_of(self, user: int) -> list[int]:
        return [group for group, members in self.groups.items() if user in members]


async def seed_users(url: str, count: int, devices: int) -> Population:
    """`count` accounts with `devices` sessions each, one transaction per row (the
    store's own create_user and save_token)."""
    population = Population()
    passwd, salt = hash_password(PASSWORD, CHEAP_KDF)  # one hash, shared: same password
    expires = int(time.time()) + 86_400
    store = await open_store(url, pool_size=2)
    try:
        for n in range(count):
            mobile = f"1390{n:07d}"
            user = await store.create_user(mobile=mobile, passwd=passwd, salt=salt,
                                           kdf=CHEAP_KDF, nickname=f"soak {n}")
            population.users.append(user.id)
            population.mobiles[user.id] = mobile
            for device in range(devices):
                token = secrets.token_urlsafe(32)
                await store.save_token(user.id, token_hash(token), f"soak-{device}", expires)
                population.tokens[(user.id, device)] = token
    finally:
        await store.close()
    return population


class RestError(RuntimeError):
    pass


class Rest:
    """A small HTTP/1.1 client with a pool of keep-alive connections to the server."""

    def __init__(self, port: int, size: int = 16) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.gate = asyncio.Semaphore(size)

    async def post(self, path: str, body: dict[str, Any], token: str | None = None
                   ) -> tuple[int, Any]:
        async with self.gate:
            for attempt in range(3):
                fresh = not self.idle
                reader, writer = (self.idle.pop() if self.idle else
                                  await asyncio.open_connection("127.0.0.1", self.port))
                try:
                    status, reply, keep = await self._exchange(reader, writer, path, body, token)
                except (ConnectionError, asyncio.IncompleteReadError):
                    writer.close()
                    if fresh and attempt == 2:
                        raise
                    continue  # the server closed an idle connection: try a new one
                if keep:
                    self.idle.append((reader, writer))
                else:
                    writer.close()
                return status, reply
        raise RestError(f"POST {path} failed three times")

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        path: str, body: dict[str, Any], token: str | None
                        ) -> tuple[int, Any, bool]:
        payload = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n")
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        writer.write(head.encode() + b"\r\n" + payload)
        status_line = await reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        length = 0
        keep = True
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                keep = False
        data = await reader.readexactly(length)
        return status, json.loads(data) if data else None, keep

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()

    async def ok(self, path: str, body: dict[str, Any], token: str | None = None) -> Any:
        status, reply = await self.post(path, body, token)
        if status not in (200, 201):
            raise RestError(f"POST {path} {body} -> {status} {reply}")
        return reply["data"]


async def build(population: Population, port: int, *, devices: int, friends: int,
                groups: int, group_size: int, seed: int, rest_logins: int) -> None:
    """Log the first `rest_logins` devices in again through REST, then make the
    friendships and the groups, all through REST."""
    rng = random.Random(seed)
    rest = Rest(port)
    try:
        users = population.users

        async def login(user: int, device: int) -> None:
            data = await rest.ok("/user/login", {"mobile": population.mobiles[user],
                                                 "passwd": PASSWORD,
                                                 "device": f"soak-{device}"})
            population.tokens[(user, device)] = data["token"]

        chosen = [(u, d) for u in users for d in range(devices)][:rest_logins]
        await asyncio.gather(*(login(u, d) for u, d in chosen))

        # A ring: each user befriends the next friends/2 users, so each has `friends`.
        pairs = {(users[i], users[(i + k) % len(users)])
                 for i in range(len(users)) for k in range(1, friends // 2 + 1)
                 if users[i] != users[(i + k) % len(users)]}
        pairs = {(a, b) for a, b in pairs if (b, a) not in pairs or a < b}

        async def befriend(a: int, b: int) -> None:
            # By consent: a asks, and b asking back accepts the request.
            asked = await rest.ok("/contact/addfriend", {"dstid": b}, population.tokens[(a, 0)])
            back = await rest.ok("/contact/addfriend", {"dstid": a}, population.tokens[(b, 0)])
            if (asked["status"], back["status"]) != ("requested", "friends"):
                raise RestError(f"befriending {a} and {b}: {asked} then {back}")
            population.friends[a].append(b)
            population.friends[b].append(a)

        await asyncio.gather(*(befriend(a, b) for a, b in sorted(pairs)))

        # Members are dealt from shuffled decks of all users, so each user is in as many
        # groups as the next (groups x size / users, give or take one) and every device
        # sees about the same traffic: the hub's per-connection state then fills up in
        # the warm-up everywhere (docs/reliability.md, "Memory").
        owned: dict[int, int] = defaultdict(int)  # a user may own 5 groups
        deck: list[int] = []
        plans = []
        for g in range(groups):
            members: list[int] = []
            later: list[int] = []  # dealt twice to this group: first in line for the next
            while len(members) < min(group_size, len(users)):
                if not deck:
                    deck = rng.sample(users, len(users))
                candidate = deck.pop()
                (later if candidate in members else members).append(candidate)
            deck.extend(later)
            owner = min(members, key=lambda u: (owned[u], rng.random()))
            owned[owner] += 1
            plans.append((g, owner, [m for m in members if m != owner]))

        async def make_group(g: int, owner: int, others: list[int]) -> None:
            group = await rest.ok("/contact/createcommunity", {"name": f"soak group {g}",
                                                                         "visibility": "public"},
                                  population.tokens[(owner, 0)])
            for member in others:
                await rest.ok("/contact/joincommunity", {"dstid": group["id"]},
                              population.tokens[(member, 0)])
            population.groups[group["id"]] = [owner, *others]

        await asyncio.gather(*(make_group(*plan) for plan in plans))
    finally:
        rest.close()
