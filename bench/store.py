"""`python -m bench.store`: the store's hot paths on a small and on a year-old database.

    python -m bench.store --messages 1000000                 # SQLite and MariaDB
    python -m bench.store --messages 100000 --backends sqlite

Each backend is seeded twice the way the server writes it (bench/seed.py: a heavy user U
with 1,000 friends in 100 groups of 50, a light user L), with `--small` and with
`--messages` messages, and analyzed as the server does at start-up. Then the statements
behind each endpoint run `--repeat` times through the store (its thread pool, as the
server calls it) and the table gives p50 and p99 in ms, and the growth from small to big
(target: within 2x; docs/store.md). "full sync" is one run of every page U's client asks
for from 0 (pages of 200, as the hub asks the store), in seconds; it is not paced here
(the hub paces pages at 200/s, docs/chat-protocol.md).

Databases are kept (SQLite files under `--dir`, MariaDB databases named
`fastim_bench_<backend-size>`) and reused when they hold the asked number of messages,
so a second run only measures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pymysql

from bench.seed import SEED_PASSWORD, Seeded, conversation, mobile, seed
from fastim.accounts.passwords import hash_password
from fastim.store import Store, open_store
from fastim.store.messages import GROUP, SINGLE, history, messages_since, read_marks, unread

LOGIN_KDF = "scrypt:1024:8:1"  # the store's part of a login; the KDF is not measured here
PAGE = 200


async def _seeded(url: str, messages: int, friends: int, groups: int,
                  group_size: int) -> tuple[Store, Seeded]:
    store = await open_store(url)
    count = int(await store.read(lambda tx: tx.value("SELECT COUNT(*) FROM messages")))
    if count == 0:
        passwd, salt = hash_password(SEED_PASSWORD, LOGIN_KDF)
        started = time.monotonic()
        info = await seed(store, messages, friends=friends, groups=groups,
                          group_size=group_size, kdf_store=(passwd, salt, LOGIN_KDF),
                          progress=messages >= 200_000)
        print(f"  seeded {url} with {messages:,} messages in "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    elif count != messages:
        await store.close()
        raise SystemExit(f"{url} holds {count:,} messages, not {messages:,}: remove it")
    else:
        ids = [int(r[0]) for r in await store.read(
            lambda tx: tx.rows("SELECT id FROM users ORDER BY id"))]
        group_ids = [int(r[0]) for r in await store.read(
            lambda tx: tx.rows("SELECT community_id FROM memberships WHERE user_id = ?"
                               " ORDER BY community_id", [ids[0]]))]
        info = Seeded(heavy=ids[0], light=ids[-1], heavy_mobile=mobile(0),
                      light_mobile=mobile(len(ids) - 1), users=len(ids),
                      groups=group_ids, messages=count)
    await store.analyze()
    return store, info


async def _timed(call: Callable[[], Awaitable[Any]], repeat: int) -> list[float]:
    await call()  # warm: caches and prepared statements
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def _full_sync(store: Store, user: int, groups: list[int]) -> tuple[float, int, int]:
    """Every page from 0, as the hub asks for them: (seconds, pages, messages)."""
    started = time.perf_counter()
    since, pages, total = 0, 0, 0
    while True:
        rows = await store.read(messages_since, user, groups, since, PAGE + 1)
        pages += 1
        total += min(len(rows), PAGE)
        if len(rows) <= PAGE:
            break
        since = rows[PAGE - 1]["id"]
    return time.perf_counter() - started, pages, total


async def measure(store: Store, info: Seeded, repeat: int) -> dict[str, Any]:
    heavy, light, groups = info.heavy, info.light, info.groups
    friends = await store.friend_ids(heavy)
    heavy_convs = [conversation(SINGLE, heavy, f) for f in friends]
    heavy_convs += [conversation(GROUP, heavy, g) for g in groups]
    light_groups = await store.group_ids(light)
    light_convs = [conversation(SINGLE, light, f) for f in await store.friend_ids(light)]
    light_convs += [conversation(GROUP, light, g) for g in light_groups]
    group = conversation(GROUP, heavy, groups[0])
    token = "b" * 64
    await store.save_token(heavy, token, "bench", 2**40)

    async def login() -> None:
        await store.get_credentials(info.heavy_mobile)
        await store.save_token(heavy, token, "bench", 2**40)

    async def connect() -> None:
        await store.session_for_token(token)
        await asyncio.gather(store.friend_ids(heavy), store.group_ids(heavy))

    rows: dict[str, Any] = {
        "history, first page": await _timed(
            lambda: store.read(history, group, None, 50), repeat),
        "unread (U)": await _timed(lambda: store.read(unread, heavy, heavy_convs), repeat),
        "unread (L)": await _timed(lambda: store.read(unread, light, light_convs), repeat),
        "sync page from 0 (U)": await _timed(
            lambda: store.read(messages_since, heavy, groups, 0, PAGE + 1), repeat),
        "sync page from 0 (L)": await _timed(
            lambda: store.read(messages_since, light, light_groups, 0, PAGE + 1), repeat),
        "reads (a group)": await _timed(lambda: store.read(read_marks, group), repeat),
        "login (store part)": await _timed(login, repeat),
        "connect (store part)": await _timed(connect, repeat),
    }
    rows["full sync (U)"] = await _full_sync(store, heavy, groups)
    return rows


def _p(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(backend: str, small: int, big: int, a: dict[str, Any], b: dict[str, Any]) -> str:
    lines = [f"### {backend}: {small:,} and {big:,} messages", "",
             f"| statement | p50 {small:,} | p99 {small:,} | p50 {big:,} | p99 {big:,} "
             "| growth (p50) |", "|---|---|---|---|---|---|"]
    for name, times in a.items():
        other = b[name]
        if name.startswith("full sync"):
            lines.append(f"| {name} | {times[0]:.2f} s ({times[2]:,} msgs) | | "
                         f"{other[0]:.1f} s ({other[2]:,} msgs, {other[1]:,} pages) | | "
                         f"{other[0] / other[2] / (times[0] / times[2]):.1f}x per message |")
            continue
        small50, big50 = statistics.median(times), statistics.median(other)
        lines.append(f"| {name} | {small50:.2f} | {_p(times, 0.99):.2f} | {big50:.2f} | "
                     f"{_p(other, 0.99):.2f} | {big50 / small50:.1f}x |")
    return "\n".join(lines)


def _url(backend: str, size: int, args: argparse.Namespace) -> str:
    if backend == "sqlite":
        return f"sqlite:///{Path(args.dir).resolve()}/store-{size}.db"
    return f"{args.mysql.rstrip('/')}/fastim_bench_{size}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,mysql")
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306",
                        help="server URL; databases fastim_bench_<n> are made on it")
    parser.add_argument("--dir", default="bench/results/store-db")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--friends", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--group-size", type=int, default=50)
    args = parser.parse_args(argv)
    Path(args.dir).mkdir(parents=True, exist_ok=True)

    async def one(backend: str, size: int) -> dict[str, Any]:
        store, info = await _seeded(_url(backend, size, args), size, args.friends,
                                    args.groups, args.group_size)
        try:
            return await measure(store, info, args.repeat)
        finally:
            await store.close()

    for backend in args.backends.split(","):
        if backend == "mysql":
            try:
                pymysql.connect(host="127.0.0.1", user="root", password="").close()
            except pymysql.MySQLError as error:
                print(f"### mysql: skipped ({error})")
                continue
        small = asyncio.run(one(backend, args.small))
        big = asyncio.run(one(backend, args.messages))
        print(report(backend, args.small, args.messages, small, big), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
