"""`python -m bench.client`: WebSocket *clients* driving echo against the Go reference server.

The client row of docs/performance.md: one client process (pinned to CPU 0) keeps `--conns` connections
busy against gorilla/websocket's echo server (`loadgen -mode server`, pinned to CPU 1, so
that the client is the bottleneck), with one message in flight per connection or
`--inflight` (pipelined). For each client it reports messages per second and the client
process's CPU time per message (`time.process_time()` around the measured window, which
is what the client's core spends: everything runs in its one thread).

    python -m bench.client                                   # every client, size, mode
    python -m bench.client --clients fastim,fastim-cb --sizes 32 --seconds 2

Clients: fastim (`async for` / `await send()`), fastim-cb (`set_message_callback` with
`send_nowait()`), websockets (its asyncio client), aiohttp (`ClientSession.ws_connect`).
All on uvloop, compression off, no size limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("fastim", "fastim-cb", "websockets", "aiohttp")


class Counter:
    def __init__(self) -> None:
        self.received = 0
        self.stop = False


async def _fastim(url: str, payload: bytes, inflight: int, counter: Counter, callback: bool) -> None:
    from fastim.ws import connect

    ws = await connect(url, max_size=None, compression=None, ping_interval=None)
    if callback:
        def answer(message: str | bytes) -> None:
            counter.received += 1
            if not counter.stop:
                ws.send_nowait(payload)

        ws.set_message_callback(answer)
        for _ in range(inflight):
            ws.send_nowait(payload)
        while not counter.stop:
            await asyncio.sleep(0.05)
    else:
        for _ in range(inflight):
            await ws.send(payload)
        async for _message in ws:
            counter.received += 1
            if counter.stop:
                break
            await ws.send(payload)
    ws._transport.abort()  # type: ignore[union-attr]  # the window is over: no close handshake


async def _websockets(url: str, payload: bytes, inflight: int, counter: Counter) -> None:
    from websockets.asyncio.client import connect

    ws = await connect(url, max_size=None, compression=None, ping_interval=None)
    for _ in range(inflight):
        await ws.send(payload)
    async for _message in ws:
        counter.received += 1
        if counter.stop:
            break
        await ws.send(payload)
    ws.transport.abort()


async def _aiohttp(url: str, payload: bytes, inflight: int, counter: Counter) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, max_msg_size=0, compress=0, autoping=False) as ws,
    ):
        for _ in range(inflight):
            await ws.send_bytes(payload)
        while True:
            await ws.receive()
            counter.received += 1
            if counter.stop:
                break
            await ws.send_bytes(payload)


async def drive(client: str, url: str, size: int, conns: int, inflight: int,
                warmup: float, seconds: float) -> dict[str, Any]:
    payload = os.urandom(size)
    counter = Counter()
    if client in ("fastim", "fastim-cb"):
        tasks = [_fastim(url, payload, inflight, counter, client == "fastim-cb")
                 for _ in range(conns)]
    elif client == "websockets":
        tasks = [_websockets(url, payload, inflight, counter) for _ in range(conns)]
    else:
        tasks = [_aiohttp(url, payload, inflight, counter) for _ in range(conns)]
    running = [asyncio.ensure_future(task) for task in tasks]
    await asyncio.sleep(warmup)
    count0, cpu0, t0 = counter.received, time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    count1, cpu1, t1 = counter.received, time.process_time(), time.monotonic()
    counter.stop = True
    await asyncio.wait(running, timeout=5)
    for task in running:
        task.cancel()
    messages = count1 - count0
    return {"client": client, "size": size, "conns": conns, "inflight": inflight,
            "messages": messages, "msgs_per_s": messages / (t1 - t0),
            "cpu_util": (cpu1 - cpu0) / (t1 - t0),
            "cpu_us_per_msg": (cpu1 - cpu0) / messages * 1e6 if messages else float("nan")}


def _pinned(cpu: int, cmd: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu), *cmd] if taskset else cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--sizes", default="32,1024,1048576")
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--inflight", default="1,16", help="in flight per connection")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one client here
    args = parser.parse_args(argv)

    if args.one:
        import uvloop

        client, url, size, inflight = args.one.split(" ")
        result = uvloop.run(drive(client, url, int(size), args.conns, int(inflight),
                                  args.warmup, args.seconds))
        print(json.dumps(result))
        return 0

    from bench.build import build_loadgen

    loadgen = build_loadgen()
    server = subprocess.Popen(_pinned(1, [str(loadgen), "-mode", "server"]),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = f"ws://127.0.0.1:{int(line.split()[1])}/echo"
        print(f"# load average {os.getloadavg()}; {args.conns} connections; "
              f"{args.seconds} s windows; client on CPU 0, Go server on CPU 1", flush=True)
        print("| client | size | in flight | msg/s | client CPU µs/msg | client core use |")
        print("|---|---:|---:|---:|---:|---:|")
        for _rep in range(args.reps):
            for size in (int(s) for s in args.sizes.split(",")):
                for inflight in (int(n) for n in args.inflight.split(",")):
                    if size >= 1 << 20 and inflight > 1:
                        continue  # 16 MiB in flight per connection says nothing more
                    for client in args.clients.split(","):
                        out = subprocess.run(
                            _pinned(0, [sys.executable, "-m", "bench.client", "--conns",
                                        str(args.conns), "--seconds", str(args.seconds),
                                        "--warmup", str(args.warmup), "--one",
                                        f"{client} {url} {size} {inflight}"]),
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
                        if out.returncode:
                            print(f"| {client} | {size} | {inflight} | error | "
                                  f"{out.stderr.strip().splitlines()[-1:]} | |", flush=True)
                            continue
                        r = json.loads(out.stdout)
                        print(f"| {client} | {size} | {inflight} | {r['msgs_per_s']:,.0f} | "
                              f"{r['cpu_us_per_msg']:,.2f} | {r['cpu_util']:.2f} |", flush=True)
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
