"""`python -m bench.push`: what Web Push costs the server (issue 20, docs/performance.md).

    python -m bench.push                      # SQLite in a temporary directory
    python -m bench.push --members 1000 --pushes 400

1. **Who to push** (`fastim.store.notify.push_targets`, one statement per new message
   that is not answered from presence alone): p50 / p99 in ms for a group of
   `--members` members who all subscribed, a tenth of them muting it, and for a 1:1.
2. **A push**: encrypt (RFC 8291) + sign (RFC 8292) + POST, through `Push._post` (the
   code the server runs on its push threads), to a push-service stand-in on loopback
   that answers 201 at once: pushes per second with the server's 4 threads, and the
   CPU milliseconds one push costs this process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

from fastim import i18n
from fastim.bus.local import LocalBus
from fastim.notify.options import PushOptions
from fastim.notify.push import Push
from fastim.notify.vapid import VapidKey
from fastim.store import open_store
from fastim.store.notify import (
    GROUP,
    SINGLE,
    Subscription,
    push_targets,
    save_subscription,
    set_mute,
)
from tests.push_support import Browser, PushService


class _Quiet(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def targets(directory: Path, members: int, repeat: int) -> None:
    store = await open_store(f"sqlite:///{directory}/bench.db")
    try:
        users = [await store.create_user(mobile=f"1{n:010d}", passwd="x" * 64, salt="s" * 32,
                                         kdf="scrypt:1024:8:1", nickname=f"u{n}")
                 for n in range(members)]
        group = await store.create_group(users[0].id, "bench")
        service = PushService()  # only for its endpoints' shape
        for n, user in enumerate(users):
            if n:
                await store.add_member(group.id, user.id)
            sub = Browser(service).subscription()
            session = f"{n:064x}"
            await store.save_token(user.id, session, "web", int(time.time()) + 3600)
            await store.write(save_subscription, user.id, sub["endpoint"], sub["keys"]["p256dh"],
                              sub["keys"]["auth"], session, 1, 10)
            if n % 10 == 1:
                await store.write(set_mute, user.id, GROUP, group.id, 0)
        service.close()
        await store.analyze()
        now = int(time.time())
        for label, kind, dstid in (("group", GROUP, group.id), ("1:1", SINGLE, users[1].id)):
            samples = []
            found: list[Subscription] = []
            for _ in range(repeat):
                start = time.perf_counter()
                found = await store.read(push_targets, kind, dstid, users[0].id, now)
                samples.append((time.perf_counter() - start) * 1000)
            p50, p99 = percentiles(samples)
            print(f"push_targets {label:5} ({len(found):4} targets): "
                  f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    finally:
        await store.close()


def pushes(directory: Path, count: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    Thread(target=server.serve_forever, daemon=True).start()
    options = PushOptions(allow_http_loopback=True)
    push = Push(None, LocalBus(), VapidKey.load_or_create(directory / "vapid.pem"),  # type: ignore[arg-type]
                options, i18n.Tables(Path(__file__).resolve().parents[1] / "asset" / "i18n"))
    stand_in = PushService()
    stand_in.port = server.server_address[1]  # endpoints on the quiet server
    subs = []
    for n in range(count):
        sub = Browser(stand_in).subscription()
        subs.append(Subscription(n, n, sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"]))
    stand_in.close()
    data = '{"title":"New message from Alice","body":"","cmd":10,"dstid":1,"id":1}'
    cpu = time.process_time()
    start = time.perf_counter()
    with ThreadPoolExecutor(options.concurrency) as pool:
        statuses = list(pool.map(lambda s: push._post(s, data), subs))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    server.shutdown()
    assert statuses.count(201) == count, statuses[:5]
    print(f"pushes: {count} in {elapsed:.2f} s = {count / elapsed:.0f}/s with "
          f"{options.concurrency} threads; {cpu / count * 1000:.2f} ms CPU per push "
          "(server and stand-in in this process)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--pushes", type=int, default=400)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(targets(Path(tmp), args.members, args.repeat))
        pushes(Path(tmp), args.pushes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
