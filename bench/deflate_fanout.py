"""`python -m bench.deflate_fanout`: a group message to 1,000 connections with
permessage-deflate, compressed per connection or once for all.

Two ways a server can run permessage-deflate (RFC 7692) for a group:

- `per-connection`: the default, with context takeover. Each connection compresses in its own
  context, so each delivery is compressed again, and later messages refer back to earlier
  ones (small, repetitive chat JSON shrinks most this way).
- `shared`: the server chooses `server_no_context_takeover` (§7.1.1.1). Each message is
  compressed on its own, once per parameter set, and the same bytes go to every member
  (fastim.ws.prepare / broadcast).

For reference, `uncompressed` (compression off). The members are server connections
negotiated from a browser's offer (`permessage-deflate; client_max_window_bits`) and
attached to an in-memory transport that counts what is written, as in bench/micro.py, so the
figures are fastim's own CPU (no system calls) and the exact bytes that would go on the
wire. Every member's bytes are inflated once by a client-side PerMessageDeflate and
compared with the messages, so a figure never comes from a broken stream.

Reported: bytes per delivery (frame header included), averaged over a stream of distinct
chat messages in fastIM's JSON; CPU µs per delivery (`time.process_time`, best of --reps).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from typing import Any

from bench.micro import MemoryTransport
from bench.payloads import CHAT_MESSAGE
from fastim.ws import broadcast, prepare
from fastim.ws.connection import Connection, Options
from fastim.ws.deflate import (
    DeflateOptions,
    PerMessageDeflate,
    accept_client_response,
    negotiate_server,
)
from fastim.ws.frames import FrameDecoder
from fastim.ws.protocol import Role, WebSocketProtocol

BROWSER_OFFER = "permessage-deflate; client_max_window_bits"
MODES = {
    "uncompressed": None,
    "per-connection": DeflateOptions(),
    "shared": DeflateOptions(server_no_context_takeover=True),
}
SENTENCES = [
    "大家好，明天下午三点在三楼会议室开周会，记得带上本周的进度报告。",
    "Tomorrow's sync is at 3 pm in room 301, please bring this week's status report.",
    "收到，谢谢！",
    "I pushed the fix for the login page, can someone review it before lunch?",
    "午饭去哪儿吃？楼下新开的那家面馆怎么样 🍜",
    "The release plan slides are in the shared folder.",
    "好的，我五分钟后到。",
    "Can we move the demo to Thursday? The staging server is still being upgraded.",
]


def chat_messages(count: int, seed: int = 7692) -> list[str]:
    """`count` distinct group messages in fastIM's JSON, as the hub delivers them."""
    rng = random.Random(seed)
    messages = []
    for n in range(count):
        user = rng.randrange(10000, 10100)
        message = {
            **CHAT_MESSAGE,
            "id": 1738412 + n,
            "userid": user,
            "content": " ".join(rng.sample(SENTENCES, rng.randrange(1, 3))),
            "createat": 1732700000123 + 1500 * n + rng.randrange(1000),
            "avatar": f"/asset/images/avatar/{user}.png",
            "nickname": f"user-{user}",
        }
        messages.append(json.dumps(message, ensure_ascii=False, separators=(",", ":")))
    return messages


def _member(options: DeflateOptions | None) -> tuple[Connection, MemoryTransport]:
    extension: PerMessageDeflate | None = None
    if options is not None:
        _, extension = negotiate_server([BROWSER_OFFER], options)
    core = WebSocketProtocol(Role.SERVER, max_size=None, extension=extension)
    connection = Connection(core, Options(compression=None, ping_interval=None), target="/chat")
    transport = MemoryTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport


class _Recorder(MemoryTransport):
    """One member's transport that also keeps the bytes, to check they decode."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        super().write(data)
        self.data += data

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)


def _check(mode: str, answer: str | None, wire: bytes, messages: list[str]) -> None:
    decoder = FrameDecoder(expect_masked=False)
    decoder.feed(wire)
    client = None
    if answer is not None:
        client = accept_client_response(answer)
    got = []
    while (frame := decoder.next_frame()) is not None:
        payload = frame.payload
        if frame.rsv1:
            assert client is not None
            payload = client.decompress(payload, frame.fin, None)
        got.append(payload.decode("utf-8"))
    assert got == messages, f"{mode}: the bytes on the wire do not decode to the messages"


async def deliver(mode: str, members: int, messages: list[str],
                  check: bool) -> tuple[int, float, int]:
    """(deliveries, CPU seconds, bytes written) for `messages` to a group of `members`."""
    options = MODES[mode]
    room = [_member(options) for _ in range(members)]
    recorder = _Recorder()
    if check:
        connection = room[0][0]
        connection.connection_made(recorder)  # type: ignore[arg-type]
        room[0] = (connection, recorder)
    connections = [connection for connection, _ in room]
    start = time.process_time()
    for message in messages:
        broadcast(connections, prepare(message))
        await asyncio.sleep(0)  # the loop's turn ends: every connection flushes
    elapsed = time.process_time() - start
    await asyncio.sleep(0)
    if check:
        answer = negotiate_server([BROWSER_OFFER], options)[0] if options else None
        _check(mode, answer, bytes(recorder.data), messages)
    written = sum(transport.written for _, transport in room)
    return members * len(messages), elapsed, written


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.deflate_fanout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50, help="distinct messages per run")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    import uvloop

    messages = chat_messages(args.messages)
    size = sum(len(m.encode()) for m in messages) / len(messages)
    load = os.getloadavg()
    print(f"{args.members} members, {args.messages} distinct chat messages of {size:.0f} B "
          f"on average; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'mode':16}{'bytes/delivery':>16}{'CPU µs/delivery':>18}")
    for mode in MODES:
        runs = [uvloop.run(deliver(mode, args.members, messages, check=rep == 0))
                for rep in range(args.reps)]
        deliveries, cpu, written = min(runs, key=lambda r: r[1])
        print(f"{mode:16}{written / deliveries:16.1f}{cpu / deliveries * 1e6:18.2f}")


if __name__ == "__main__":
    main()
