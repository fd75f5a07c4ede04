"""`python -m bench.search`: message search (GET /chat/search's SQL), on SQLite and MariaDB.

For each backend: N stored messages (Chinese, English, emoji, mixed; 1:1 chats and groups
of 20 users), then the p50/p99 of a search by one user over all their conversations, for
a 3+ character query (the index) and a 1-2 character one (SQLite's bounded LIKE; Mroonga's
index), the size of the index beside that of the messages table, and the group commit
(ChatStorage.insert_messages in batches of 256) with and without the index's triggers.

`--messages 1000000` is the issue's size; the default is smaller, to run in minutes.
Bounded in count; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from typing import Any

from bench.chat import drop_mysql_database, mysql_database
from fastim.chat.hub import NewMessage, conversation
from fastim.chat.protocol import ChatMessage, Cmd, Media
from fastim.store import open_store
from fastim.store import search as searching
from fastim.store.messages import ChatStorage
from fastim.store.migrations import MESSAGE_SEARCH, MIGRATIONS

WORDS = ["每周五晚上", "读书会", "我们明天见", "Hello, world", "pizza 🍕", "meeting at noon",
         "東京タワー", "deadline friday", "❤️ thanks", "周末去爬山吗", "the quick brown fox",
         "会议改到下午三点", "see you soon 👋", "图片", "OK"]
QUERIES_LONG = ["周五晚", "hello", "friday", "爬山吗", "brown fox", "🍕 pizza"]
QUERIES_SHORT = ["周", "ok", "🍕", "图片"]
USERS = 20
BATCH = 256


def _text(rng: random.Random, n: int) -> str:
    return f"{rng.choice(WORDS)} {rng.choice(WORDS)} #{n}"


def _messages(users: list[int], groups: list[int], count: int, seed: int) -> list[NewMessage]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        sender = rng.choice(users)
        if rng.random() < 0.5:
            dstid = rng.choice([u for u in users if u != sender])
            kind = Cmd.SINGLE
        else:
            dstid, kind = rng.choice(groups), Cmd.GROUP
        message = ChatMessage(cmd=kind, dstid=dstid, media=Media.TEXT, content=_text(rng, n),
                              pic="", url="", memo="", amount=0, cid=None)
        out.append(NewMessage(sender=sender, message=message, session_id="bench",
                              conv=conversation(kind, sender, dstid), ts=1_000 + n))
    return out


async def _people(store: Any) -> tuple[list[int], list[int]]:
    users = []
    for n in range(USERS):
        user = await store.create_user(mobile=f"139{secrets.randbelow(10**7):07d}{n % 10}",
                                       passwd="00", salt="00", kdf="scrypt:1024:8:1",
                                       nickname=f"bench {n}")
        users.append(user.id)
    for i, a in enumerate(users):
        for b in users[i + 1:]:
            await store.add_friendship(a, b)
    groups = []
    for g in range(3):
        group = await store.create_group(users[g], f"bench {secrets.token_hex(4)}")
        for u in users:
            if u != users[g]:
                await store.add_member(group.id, u)
        groups.append(group.id)
    return users, groups


async def _insert_rate(url: str, with_index: bool, count: int) -> float:
    steps = MIGRATIONS if with_index else [m for m in MIGRATIONS
                                           if m.version != MESSAGE_SEARCH.version]
    store = await open_store(url, pool_size=4, migrations=steps)
    try:
        storage = ChatStorage(store)
        await storage.start()
        users, groups = await _people(store)
        messages = _messages(users, groups, count, 7)
        start = time.perf_counter()
        for at in range(0, count, BATCH):
            await storage.insert_messages(messages[at:at + BATCH])
        return count / (time.perf_counter() - start)
    finally:
        await store.close()


def _sizes(tx: Any) -> tuple[int, int]:
    """Bytes of the index and of the messages table (with its indexes)."""
    if tx.dialect.name == "sqlite":
        try:
            rows = tx.rows("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
        except Exception:  # dbstat not compiled in
            return 0, 0
        index = sum(int(s) for n, s in rows if n.startswith("message_search"))
        table = sum(int(s) for n, s in rows if n == "messages" or n.startswith("ix_messages")
                    or n.startswith("sqlite_autoindex_messages") or n.startswith("ux_messages"))
        return index, table
    for name in ("messages", "message_search"):
        tx.rows(f"ANALYZE TABLE {name}")
    rows = tx.rows("SELECT table_name, data_length + index_length FROM information_schema.TABLES"
                   " WHERE table_schema = DATABASE() AND table_name IN"
                   " ('message_search', 'messages')")
    sizes = {str(n): int(s or 0) for n, s in rows}
    return sizes.get("message_search", 0), sizes.get("messages", 0)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1000,
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000)


async def _search_times(url: str, count: int, rounds: int) -> dict[str, Any]:
    store = await open_store(url, pool_size=4)
    try:
        storage = ChatStorage(store)
        await storage.start()
        users, groups = await _people(store)
        messages = _messages(users, groups, count, 11)
        for at in range(0, count, 2_000):
            await storage.insert_messages(messages[at:at + 2_000])
        if url.startswith("sqlite"):
            await store.write(lambda tx: tx.execute("ANALYZE"))
        me = users[0]
        result: dict[str, Any] = {}
        for label, queries in (("long", QUERIES_LONG), ("short", QUERIES_SHORT)):
            times = []
            for r in range(rounds):
                query = queries[r % len(queries)]
                start = time.perf_counter()
                await store.read(searching.search, me, query, None, None, 20)
                times.append(time.perf_counter() - start)
            result[label] = _percentiles(times)
        result["sizes"] = await store.write(_sizes)
        return result
    finally:
        await store.close()


def table(count: int, rounds: int, commit_count: int) -> list[str]:
    rows = ["| backend | messages | search, 3+ chars p50 / p99 | 1-2 chars p50 / p99 "
            "| index / messages size | group commit with index / without |",
            "|---|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        backends: list[tuple[str, Any]] = [("SQLite (FTS5 trigram)",
                                           lambda n: f"sqlite:///{tmp}/{n}.db")]
        made = mysql_database()
        if made is not None:
            backends.append(("MariaDB (Mroonga bigram)", lambda n: made[1]))
        try:
            for label, url in backends:
                found = asyncio.run(_search_times(url("search"), count, rounds))
                if made is not None and label.startswith("MariaDB"):
                    drop_mysql_database(made[0])
                    made = mysql_database()
                    assert made is not None
                with_index = asyncio.run(_insert_rate(url("with"), True, commit_count))
                if made is not None and label.startswith("MariaDB"):
                    drop_mysql_database(made[0])
                    made = mysql_database()
                    assert made is not None
                without = asyncio.run(_insert_rate(url("without"), False, commit_count))
                index_size, table_size = found["sizes"]
                size = (f"{index_size / 2**20:,.1f} / {table_size / 2**20:,.1f} MiB "
                        f"({index_size / max(1, table_size):.0%})" if table_size else "n/a")
                (lp50, lp99), (sp50, sp99) = found["long"], found["short"]
                rows.append(f"| {label} | {count:,} | {lp50:.1f} / {lp99:.1f} ms | "
                            f"{sp50:.1f} / {sp99:.1f} ms | {size} | {with_index:,.0f}/s / "
                            f"{without:,.0f}/s ({with_index / without:.0%}) |")
        finally:
            if made is not None:
                drop_mysql_database(made[0])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200, help="searches per query kind")
    parser.add_argument("--commit-messages", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(f"## Message search (cpu count {os.cpu_count()})\n")
    print("\n".join(table(args.messages, args.rounds, args.commit_messages)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
