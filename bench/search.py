"""`python -m bench.search`: message search (GET /chat/search's SQL), on SQLite and MariaDB.

For each backend: N stored messages (Chinese, English, emoji, mixed; 1:1 chats and groups
of 20 users), then the p50/p99 of a search by one user over all their conversations, for
a 3+ character query (the index) and a 1-2 character one (SQLite's bounded LIKE; Mroonga's
index), the size of the index beside that of the messages table, how fast the indexer
catches up, and the group commit (ChatStorage.insert_messages in batches of 256) with
and without the indexer running beside it (fastim/chat/search.py: the index is kept
after commit). The A/B runs of the group commit are interleaved (`--repeats` pairs, the
order alternating) and their medians reported: the machine is shared and noisy.

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
from pathlib import Path
from typing import Any

from fastim.chat.hub import NewMessage, conversation
from fastim.chat.protocol import ChatMessage, Cmd, Media
from fastim.chat.search import SearchIndexer
from fastim.store import open_store
from fastim.store import search as searching
from fastim.store.messages import ChatStorage
from tests.mariadb_support import mariadb_server

WORDS = ["每周五晚上", "读书会", "我们明天见", "Hello, world", "pizza 🍕", "meeting at noon",
         "東京タワー", "deadline friday", "❤️ thanks", "周末去爬山吗", "the quick brown fox",
         "会议改到下午三点", "see you soon 👋", "图片", "OK"]
QUERIES_LONG = ["周五晚", "hello", "friday", "爬山吗", "brown fox", "🍕 pizza"]
QUERIES_SHORT = ["周", "ok", "🍕", "图片"]
USERS = 20
BATCH = 256
#: Messages a transaction while seeding (one multi-row INSERT each: storage.insert_messages).
SEED_BATCH = 5_000
#: The bench's private mariadbd: a buffer pool that holds 1,000,000 messages and their
#: indexes (about 300 MiB) and a redo log large enough that seeding is not one checkpoint
#: after another. tests/mariadb_support.py's 16 MB pool and 4 MB log (sized to start fast
#: in a test) made seeding 1,000,000 messages disk-bound: still running after 20 minutes.
SERVER = ("--innodb-buffer-pool-size=1G", "--innodb-log-file-size=256M")


def _note(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _text(rng: random.Random, n: int) -> str:
    return f"{rng.choice(WORDS)} {rng.choice(WORDS)} #{n}"


def _messages(users: list[int], groups: list[int], count: int, seed: int,
              first: int = 0) -> list[NewMessage]:
    """`count` messages numbered from `first`; the same seed and `first` give the same."""
    rng = random.Random(seed * 1_000_003 + first)
    out = []
    for n in range(first, first + count):
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


def _server_cpu(pid: int | None) -> float:
    """CPU seconds the database server process has used (a private mariadbd of ours, so
    no one else's work counts), from /proc; 0 for SQLite (it runs in this process)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _insert_rate(url: str, with_indexer: bool, count: int,
                       server_pid: int | None = None) -> tuple[float, float]:
    """Messages a second through the group commit's store call, the indexer running
    beside it (as in the server: its period, its batches) or not at all; and the CPU
    microseconds a message cost meanwhile (this process, all its threads, and the
    database server's), the figure the machine's other load disturbs least."""
    store = await open_store(url, pool_size=4)
    indexer = SearchIndexer(store)
    try:
        storage = ChatStorage(store)
        await storage.start()
        users, groups = await _people(store)
        messages = _messages(users, groups, count, 7)
        if with_indexer:
            await indexer.start()
        start, cpu = time.perf_counter(), time.process_time() + _server_cpu(server_pid)
        for at in range(0, count, BATCH):
            await storage.insert_messages(messages[at:at + BATCH])
        rate = count / (time.perf_counter() - start)
        cpu = (time.process_time() + _server_cpu(server_pid) - cpu) / count * 1e6
        if with_indexer:
            await indexer.stop()
            await indexer.catch_up()
            left = await store.read(searching.index_lag)
            assert left == {"messages": 0, "changes": 0}, left
        return rate, cpu
    finally:
        await indexer.stop()
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
        start = time.perf_counter()
        for at in range(0, count, SEED_BATCH):
            # Made a batch at a time: a million NewMessage objects at once is ~1 GiB.
            await storage.insert_messages(
                _messages(users, groups, min(SEED_BATCH, count - at), 11, at))
        seeded = time.perf_counter() - start
        _note(f"seeded {count:,} messages in {seeded:.0f} s ({count / seeded:,.0f}/s)")
        # The indexer catches up once, after the seeding, rather than during it.
        indexer = SearchIndexer(store)
        await indexer.start()
        await indexer.stop()
        start = time.perf_counter()
        await indexer.catch_up(passes=count)
        indexed = time.perf_counter() - start
        _note(f"indexed in {indexed:.0f} s ({count / indexed:,.0f}/s)")
        result: dict[str, Any] = {"index_rate": count / indexed}
        if url.startswith("sqlite"):
            await store.write(lambda tx: tx.execute("ANALYZE"))
        me = users[0]
        for label, queries in (("long", QUERIES_LONG), ("short", QUERIES_SHORT)):
            times = []
            for r in range(rounds):
                query = queries[r % len(queries)]
                start = time.perf_counter()
                await store.read(searching.search, me, query, None, None, 20)
                times.append(time.perf_counter() - start)
            result[label] = _percentiles(times)
            _note(f"{label} queries: p50 / p99 {result[label][0]:.1f} / {result[label][1]:.1f} ms")
        result["sizes"] = await store.write(_sizes)
        return result
    finally:
        await store.close()


def table(count: int, rounds: int, commit_count: int, repeats: int,
          backends: list[str]) -> list[str]:
    rows = ["| backend | messages | search, 3+ chars p50 / p99 | 1-2 chars p50 / p99 "
            "| index / messages size | indexing (catching up) | group commit, indexer "
            "running / not (median of runs) | CPU µs a message, with / without (median) "
            "| runs with / without |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        # MariaDB: a private server of ours (tests/mariadb_support.py), so that its CPU
        # time is ours alone and no other work shares its buffers.
        server = mariadb_server(Path(tmp) / "mariadb", SERVER) if "mysql" in backends else None

        def fresh(kind: str, name: str) -> str:
            """A new empty database for one run."""
            if kind == "sqlite":
                return f"sqlite:///{tmp}/{name}.db"
            assert server is not None
            return server.url(f"bench_{name}")

        try:
            for kind in backends:
                label = {"sqlite": "SQLite (FTS5 trigram)",
                         "mysql": "MariaDB (Mroonga bigram)"}[kind]
                found = (asyncio.run(_search_times(fresh(kind, "search"), count, rounds))
                         if count else {"sizes": (0, 0), "long": (0.0, 0.0),
                                        "short": (0.0, 0.0), "index_rate": 0.0})
                rates: dict[bool, list[float]] = {True: [], False: []}
                cpus: dict[bool, list[float]] = {True: [], False: []}
                pid = None if kind == "sqlite" or server is None or server.process is None \
                    else server.process.pid
                for run in range(repeats):
                    for with_indexer in ((True, False) if run % 2 == 0 else (False, True)):
                        url = fresh(kind, f"commit{run}{int(with_indexer)}")
                        rate, cpu = asyncio.run(_insert_rate(url, with_indexer, commit_count,
                                                             pid))
                        rates[with_indexer].append(rate)
                        cpus[with_indexer].append(cpu)
                if repeats:
                    with_index = statistics.median(rates[True])
                    without = statistics.median(rates[False])
                    cpu_with, cpu_without = (statistics.median(cpus[k]) for k in (True, False))
                    commit = (f"{with_index:,.0f}/s / {without:,.0f}/s "
                              f"({with_index / without:.0%}) | {cpu_with:,.0f} / "
                              f"{cpu_without:,.0f} ({cpu_with / cpu_without - 1:+.0%})")
                else:  # --repeats 0: the search figures alone
                    commit = "not run | not run"
                index_size, table_size = found["sizes"]
                size = (f"{index_size / 2**20:,.1f} / {table_size / 2**20:,.1f} MiB "
                        f"({index_size / max(1, table_size):.0%})" if table_size else "n/a")
                (lp50, lp99), (sp50, sp99) = found["long"], found["short"]
                runs = " / ".join(", ".join(f"{r:,.0f}" for r in rates[k])
                                  for k in (True, False))
                rows.append(f"| {label} | {count:,} | {lp50:.1f} / {lp99:.1f} ms | "
                            f"{sp50:.1f} / {sp99:.1f} ms | {size} | "
                            f"{found['index_rate']:,.0f} messages/s | {commit} | {runs} |")
                print(rows[-1], file=sys.stderr, flush=True)
        finally:
            if server is not None:
                server.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200, help="searches per query kind")
    parser.add_argument("--commit-messages", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved pairs of group-commit runs (0: none)")
    parser.add_argument("--backend", choices=["sqlite", "mysql", "both"], default="both")
    args = parser.parse_args(argv)
    backends = ["sqlite", "mysql"] if args.backend == "both" else [args.backend]
    print(f"## Message search (cpu count {os.cpu_count()})\n")
    print("\n".join(table(args.messages, args.rounds, args.commit_messages, args.repeats,
                           backends)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
