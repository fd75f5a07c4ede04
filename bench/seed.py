"""`python -m bench.seed`: fill a database the way the server writes it, to look like a
year of use (issue 25, docs/store.md "Indexes and query plans").

    python -m bench.seed --db sqlite:///tmp/year.db --messages 1000000
    python -m bench.seed --db mysql://root@127.0.0.1:3306/fastim_year --messages 1000000

The shape: one heavy user U (the first user) with `--friends` friends who is in all
`--groups` groups of `--group-size` members; a light user L (the last user) with one
friend and one group. Half the messages are in U's conversations (1:1 both ways and
group messages), half are 1:1 between other pairs of friends, so that U sees about half of
all messages and L a few. U and L have read all but the last zero to two messages of each
of their conversations, as users who open the app do (issue 25's database: 743 of U's
conversations with 1,455 unread). A conversation never read costs unread what it holds.

Users, friendships and groups go in with the store's own rows (bulk INSERTs of what
`add_friendship` and `add_member` write); messages go through `ChatStorage.insert_messages`
in batches of 256, as the hub's group commit stores them (with client ids), and read
marks through `mark_read`. U and L can log in with the password `SEED_PASSWORD`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from dataclasses import dataclass

from fastim.store import Store, open_store
from fastim.store.messages import GROUP, SINGLE, TEXT, ChatStorage, mark_read
from fastim.store.sql import Tx

SEED_PASSWORD = "seed-password-1"
BATCH = 256


@dataclass(frozen=True)
class SeedMessage:
    cid: str | None
    cmd: int
    dstid: int
    media: int
    content: str
    pic: str = ""
    url: str = ""
    memo: str = ""
    amount: int = 0


@dataclass(frozen=True)
class SeedItem:
    sender: int
    message: SeedMessage
    conv: str
    ts: int


@dataclass(frozen=True)
class Seeded:
    """Who is who in a seeded database."""

    heavy: int  # U
    light: int  # L
    heavy_mobile: str
    light_mobile: str
    users: int
    groups: list[int]
    messages: int


def conversation(kind: int, a: int, b: int) -> str:
    """fastim.chat.hub.conversation (the store does not import the chat package)."""
    if kind == GROUP:
        return f"g{b}"
    low, high = (a, b) if a <= b else (b, a)
    return f"p{low}_{high}"


def mobile(n: int) -> str:
    """The number of the n-th seeded user (137...: apart from the soak's own 1390...)."""
    return f"137{n:08d}"


async def seed(store: Store, messages: int, *, friends: int = 1000, groups: int = 100,
               group_size: int = 50, kdf_store: tuple[str, str, str] | None = None,
               progress: bool = False, rng: random.Random | None = None) -> Seeded:
    """Fill an empty database; `kdf_store` is (passwd, salt, kdf) of SEED_PASSWORD as
    Accounts stores it (bench.store makes it), else the users cannot log in."""
    rng = rng or random.Random(25)
    passwd, salt, kdf = kdf_store or ("0", "0", "seed")
    now = int(time.time())
    users = friends + 2  # U, the friends, L

    def add_users(tx: Tx) -> list[int]:
        tx.executemany(
            "INSERT INTO users (mobile, passwd, salt, kdf, nickname, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(mobile(n), passwd, salt, kdf, f"user{n}", now) for n in range(users)])
        return [int(r[0]) for r in tx.rows("SELECT id FROM users ORDER BY id")]

    ids = await store.write(add_users)
    heavy, others, light = ids[0], ids[1:-1], ids[-1]

    def add_contacts(tx: Tx) -> list[int]:
        pairs = [(heavy, f) for f in others]
        pairs += [(others[i], others[i + 1]) for i in range(len(others) - 1)]
        pairs.append((others[0], light))
        rows = []
        for a, b in pairs:  # two rows per friendship, as add_friendship writes them
            rows += [(a, b, now), (b, a, now)]
        tx.executemany("INSERT INTO friendships (owner_id, dst_id, created) VALUES (?, ?, ?)",
                       rows)
        group_ids = []
        members = []
        for g in range(groups):
            group_id = tx.insert(
                "INSERT INTO communities (name, owner_id, icon, memo, cate, created)"
                " VALUES (?, ?, '', '', 1, ?)", (f"group {g}", heavy, now))
            group_ids.append(group_id)
            members.append((group_id, heavy, "owner", now))
            for k in range(group_size - 1):
                members.append((group_id, others[(g * (group_size - 1) + k) % len(others)],
                                "member", now))
        members.append((group_ids[0], light, "member", now))
        tx.executemany("INSERT INTO memberships (community_id, user_id, role, joined)"
                       " VALUES (?, ?, ?, ?)", members)
        return group_ids

    group_ids = await store.write(add_contacts)
    group_members: dict[int, list[int]] = {g: [] for g in group_ids}
    for g, gid in enumerate(group_ids):
        group_members[gid] = [heavy] + [others[(g * (group_size - 1) + k) % len(others)]
                                        for k in range(group_size - 1)]
    group_members[group_ids[0]].append(light)

    storage = ChatStorage(store)
    await storage.start()
    ts = now * 1000 - messages * 30_000  # one message every 30 s, ending now
    batch: list[SeedItem] = []
    started = time.monotonic()
    for n in range(messages):
        kind = rng.random()
        if kind < 0.25:  # U's 1:1, both ways
            friend = rng.choice(others)
            sender, dstid = (heavy, friend) if rng.random() < 0.5 else (friend, heavy)
            cmd = SINGLE
        elif kind < 0.5:  # U's groups
            dstid = rng.choice(group_ids)
            sender = rng.choice(group_members[dstid])
            cmd = GROUP
        elif kind < 0.501:  # L's 1:1
            sender, dstid = (light, others[0]) if rng.random() < 0.5 else (others[0], light)
            cmd = SINGLE
        else:  # everybody else's 1:1
            i = rng.randrange(len(others) - 1)
            sender, dstid = (others[i], others[i + 1]) if rng.random() < 0.5 \
                else (others[i + 1], others[i])
            cmd = SINGLE
        ts += 30_000
        batch.append(SeedItem(sender, SeedMessage(f"seed-{n}", cmd, dstid, TEXT,
                                                  f"message {n}"),
                              conversation(cmd, sender, dstid), ts))
        if len(batch) == BATCH or n == messages - 1:
            await storage.insert_messages(batch)
            batch = []
            if progress and (n + 1) % 100_000 < BATCH:
                rate = (n + 1) / (time.monotonic() - started)
                print(f"  {n + 1:,} messages ({rate:,.0f}/s)", file=sys.stderr, flush=True)

    def read_most(tx: Tx) -> None:
        convs = [conversation(SINGLE, heavy, f) for f in others]
        convs += [conversation(GROUP, heavy, g) for g in group_ids]
        for conv in convs:
            newest = tx.value("SELECT MAX(id) FROM messages WHERE conv = ?", [conv])
            if newest is not None:
                mark_read(tx, heavy, conv, int(newest) - rng.randrange(3))
        light_convs = [conversation(SINGLE, light, others[0]),
                       conversation(GROUP, light, group_ids[0])]
        for conv in light_convs:
            newest = tx.value("SELECT MAX(id) FROM messages WHERE conv = ?", [conv])
            if newest is not None:
                mark_read(tx, light, conv, int(newest) - rng.randrange(3))

        for i, other in enumerate(others):  # everybody else reads too
            conv = conversation(SINGLE, other, others[(i + 1) % len(others)])
            newest = tx.value("SELECT MAX(id) FROM messages WHERE conv = ?", [conv])
            if newest is not None:
                mark_read(tx, other, conv, int(newest))

    await store.write(read_most)
    return Seeded(heavy=heavy, light=light, heavy_mobile=mobile(0),
                  light_mobile=mobile(users - 1), users=users, groups=group_ids,
                  messages=messages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="an empty database (sqlite:/// or mysql://)")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--friends", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--group-size", type=int, default=50)
    args = parser.parse_args(argv)

    async def run() -> Seeded:
        store = await open_store(args.db)
        try:
            return await seed(store, args.messages, friends=args.friends, groups=args.groups,
                              group_size=args.group_size, progress=True)
        finally:
            await store.close()

    seeded = asyncio.run(run())
    print(seeded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
