"""`python -m bench.micro`: fastim.ws' own CPU cost per message, without sockets.

The harness (`python -m bench`) measures whole servers, system calls included; this measures
only what fastim's Python code adds, so that one change to the hot path can be judged in
seconds and without a quiet machine. Connections are attached to an in-memory transport that
counts what is written; the bench server's handlers run unchanged on uvloop:

- `echo`: 64 connections, one 32-byte masked frame each per loop iteration (request/response);
- `client`: the same echo on 64 client connections (unmasked frames in, masked frames out);
- `pipelined`: 64 connections, 16 frames arriving in one read on each;
- `broadcast`: a room of 1,000, one frame to the sender per loop iteration;
- `http`: fastim.http, 64 keep-alive connections each sending wrk's GET of a small JSON
  route (and of a 27 KiB static file) per loop iteration;
- `mask`: `apply_mask` throughput at 32 B, 1 KiB, 64 KiB and 1 MiB.

Numbers are CPU time (`time.process_time`), best of `--reps` runs: the least disturbed one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from fastim.ws.connection import Connection, Options
from fastim.ws.frames import Frame, Opcode, apply_mask, encode_frame
from fastim.ws.protocol import Role, WebSocketProtocol


class MemoryTransport:
    """Just enough of asyncio.Transport for a Connection: writes are counted and dropped."""

    def __init__(self) -> None:
        self.writes = 0
        self.written = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.written += len(data)

    def writelines(self, chunks: Any) -> None:
        self.writes += 1
        self.written += sum(len(chunk) for chunk in chunks)

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def is_reading(self) -> bool:
        return True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closing = True

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


def _open(
    handler: Callable[[Connection], Any], path: str, role: Role = Role.SERVER
) -> tuple[Connection, MemoryTransport]:
    options = Options(max_size=16 * 1024 * 1024, compression=None)
    connection = Connection(WebSocketProtocol(role, max_size=options.max_size), options,
                            target=path)
    transport = MemoryTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    connection.handler_task = asyncio.get_running_loop().create_task(handler(connection))
    return connection, transport


def _client_frame(size: int) -> bytes:
    return encode_frame(Frame(Opcode.BINARY, os.urandom(size)), os.urandom(4))


def _server_frame(size: int) -> bytes:
    return encode_frame(Frame(Opcode.BINARY, os.urandom(size)))


async def _echo_handler(connection: Connection) -> None:
    async for message in connection:
        await connection.send(message)


async def _callback_echo_handler(connection: Connection) -> None:
    connection.set_message_callback(connection.send_nowait)
    await connection.wait_closed()


async def echo(
    rounds: int, conns: int = 64, inflight: int = 1, size: int = 32, callback: bool = False,
    role: Role = Role.SERVER,
) -> tuple[int, float, int]:
    """(messages, CPU seconds, transport writes) for echo over `conns` connections (of a
    server, or with `role` CLIENT of a client answering a server's frames)."""
    handler = _callback_echo_handler if callback else _echo_handler
    pairs = [_open(handler, "/echo", role) for _ in range(conns)]
    frame = _client_frame if role is Role.SERVER else _server_frame
    data = frame(size) * inflight
    await asyncio.sleep(0)
    start = time.process_time()
    loop = asyncio.get_running_loop()

    def feed() -> None:
        for connection, _transport in pairs:
            connection.data_received(data)

    for _ in range(rounds):
        # From a callback of the loop, as a transport calls data_received: not from
        # inside this task.
        loop.call_soon(feed)
        await asyncio.sleep(0)  # one loop iteration: the reads, every handler runs
        await asyncio.sleep(0)  # and whatever it scheduled
    elapsed = time.process_time() - start
    writes = sum(t.writes for _, t in pairs)
    for connection, _ in pairs:
        connection.handler_task.cancel()  # type: ignore[union-attr]
    return rounds * conns * inflight, elapsed, writes


async def broadcast(rounds: int, members: int = 1000) -> tuple[int, float, int]:
    """(deliveries, CPU seconds, transport writes) in a room of `members`."""
    room: set[Connection] = set()

    async def member(connection: Connection) -> None:
        room.add(connection)
        async for message in connection:
            for other in list(room):
                await other.send(message)

    pairs = [_open(member, "/broadcast") for _ in range(members)]
    await asyncio.sleep(0)
    sender = pairs[0][0]
    data = _client_frame(32)
    start = time.process_time()
    loop = asyncio.get_running_loop()
    for _ in range(rounds):
        loop.call_soon(sender.data_received, data)  # as a transport calls it (see echo)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    elapsed = time.process_time() - start
    writes = sum(t.writes for _, t in pairs)
    for connection, _ in pairs:
        connection.handler_task.cancel()  # type: ignore[union-attr]
    return rounds * members, elapsed, writes


async def http(rounds: int, path: str, static: str, conns: int = 64) -> tuple[int, float, int]:
    """(requests, CPU seconds, transport writes) for keep-alive GETs of `path`."""
    from bench.servers.fastim_http_server import make_router
    from fastim.http.server import HTTPProtocol, Server

    server = Server(make_router(static))
    pairs = []
    for _ in range(conns):
        protocol, transport = HTTPProtocol(server), MemoryTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        pairs.append((protocol, transport))
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".encode()
    for protocol, _ in pairs:  # warm up (the static file enters its cache)
        protocol.data_received(request)
    for _ in range(3):
        await asyncio.sleep(0)
    start = time.process_time()
    for _ in range(rounds):
        for protocol, _transport in pairs:
            protocol.data_received(request)
        for _ in range(3):  # the handler's task, then whatever it scheduled
            await asyncio.sleep(0)
    elapsed = time.process_time() - start
    writes = sum(t.writes for _, t in pairs) - conns
    for protocol, _ in pairs:
        protocol.connection_lost(None)
    return rounds * conns, elapsed, writes


def mask(size: int, seconds: float = 0.3) -> float:
    """apply_mask throughput in MB/s for payloads of `size` bytes."""
    data, key = os.urandom(size), os.urandom(4)
    batch = max(1, 65536 // size)  # calls between two clock readings
    n = 0
    start = time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        for _ in range(batch):
            apply_mask(data, key)
        n += batch
    return n * size / elapsed / 1e6


def _best(reps: int, run: Callable[[], tuple[int, float, int]]) -> tuple[float, float]:
    results = [run() for _ in range(reps)]
    messages, cpu, writes = min(results, key=lambda r: r[1] / r[0])
    return cpu / messages * 1e6, writes / messages


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only",
                        help="comma-separated: echo,client,pipelined,broadcast,http,mask")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else {
        "echo", "client", "pipelined", "broadcast", "http", "mask"}
    import uvloop

    def run(coro_factory: Callable[[], Any]) -> Callable[[], tuple[int, float, int]]:
        return lambda: uvloop.run(coro_factory())

    if "echo" in only:
        us, writes = _best(args.reps, run(lambda: echo(400)))
        print(f"echo 64 conns, 32 B       {us:6.2f} µs/msg   {writes:.2f} writes/msg")
        us, writes = _best(args.reps, run(lambda: echo(400, size=1024)))
        print(f"echo 64 conns, 1 KiB      {us:6.2f} µs/msg   {writes:.2f} writes/msg")
        us, writes = _best(args.reps, run(lambda: echo(400, callback=True)))
        print(f"echo 64 conns, 32 B, cb   {us:6.2f} µs/msg   {writes:.2f} writes/msg")
    if "client" in only:
        us, writes = _best(args.reps, run(lambda: echo(400, role=Role.CLIENT)))
        print(f"client echo 64 conns, 32 B{us:6.2f} µs/msg   {writes:.2f} writes/msg")
    if "pipelined" in only:
        us, writes = _best(args.reps, run(lambda: echo(100, inflight=16)))
        print(f"pipelined 64x16, 32 B     {us:6.2f} µs/msg   {writes:.2f} writes/msg")
    if "broadcast" in only:
        us, writes = _best(args.reps, run(lambda: broadcast(30)))
        print(f"broadcast 1000, 32 B      {us:6.2f} µs/del   {writes:.2f} writes/del")
    if "http" in only:
        import tempfile
        from pathlib import Path

        from bench.payloads import write_static_file
        from bench.scenarios import STATIC_NAME, STATIC_SIZE

        with tempfile.TemporaryDirectory() as folder:
            static = str(write_static_file(Path(folder), STATIC_NAME, STATIC_SIZE))
            for label, path in (("JSON route", "/json"),
                                ("static 27 KiB", f"/static/{STATIC_NAME}")):
                us, writes = _best(args.reps, run(lambda p=path: http(100, p, static)))
                print(f"http {label:21}{us:6.2f} µs/req   {writes:.2f} writes/req")
    if "mask" in only:
        for size in (32, 1024, 64 * 1024, 1024 * 1024):
            print(f"apply_mask {size:>8} B   {max(mask(size) for _ in range(3)):8.0f} MB/s")


if __name__ == "__main__":
    main()
