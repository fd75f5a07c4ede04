"""`python -m fastim.ws client URL`: a small interactive client, for watching both sides.

    python -m fastim.ws echo --port 9001 --trace          # terminal 1
    python -m fastim.ws client ws://127.0.0.1:9001/       # terminal 2

Each line typed is sent as a text message; a few lines are commands:

    /ping [TEXT]          a ping, with TEXT as its payload (default: 4 random bytes)
    /binary HEX           a binary message, e.g. /binary 00 ff 10
    /close [CODE [REASON]]  the closing handshake, e.g. /close 1000 bye
    /help                 this list

The client prints its side of the connection with the same trace as `echo --trace`: the
opening handshake's heads, then every frame it writes or reads, as the bytes crossed the
wire (its own frames masked, as a client must, RFC 6455 §5.3). The end of the input closes
with 1000.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TextIO

from fastim.ws.client import connect
from fastim.ws.connection import Connection
from fastim.ws.exceptions import ConnectionClosed
from fastim.ws.explain import parse_hex
from fastim.ws.frames import CloseCode
from fastim.ws.trace import trace_connection

__all__ = ["HELP", "run_client", "run_command"]

HELP = """\
commands: TEXT (sent as a text message), /ping [TEXT], /binary HEX,
          /close [CODE [REASON]], /help; the end of the input closes with 1000"""


def _read_lines(stream: TextIO, queue: asyncio.Queue[str | None]) -> None:
    """Read `stream` on a thread of its own (a daemon: a blocked read never holds up
    the exit) and hand each line to the loop; None at the end."""
    loop = asyncio.get_running_loop()

    def reader() -> None:
        # RuntimeError: the loop has closed (the connection ended) while reading on.
        with contextlib.suppress(RuntimeError):
            for line in iter(stream.readline, ""):
                loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, name="fastim.ws client input", daemon=True).start()


async def run_command(connection: Connection, line: str, out: TextIO) -> bool:
    """Do what one input line says; False once the client has closed."""
    if not line.startswith("/"):
        await connection.send(line)
        return True
    command, _, rest = line.partition(" ")
    rest = rest.strip()
    if command == "/ping":
        await connection.ping(rest if rest else None)
    elif command == "/binary":
        try:
            data = parse_hex(rest)
        except ValueError as error:
            print(f"/binary: {error}", file=out, flush=True)
            return True
        await connection.send(data)
    elif command == "/close":
        code_text, _, reason = rest.partition(" ")
        try:
            code = int(code_text) if code_text else CloseCode.NORMAL_CLOSURE
            await connection.close(code, reason)
        except ValueError as error:
            print(f"/close: {error}", file=out, flush=True)
            return True
        return False
    else:
        print(HELP, file=out, flush=True)
    return True


async def run_client(
    url: str,
    stream: TextIO,
    out: TextIO,
    *,
    trace_level: str = "headers",
    compression: str | None = "deflate",
) -> int:
    """Connect to `url`, send what `stream` says, print everything to `out`; returns the
    exit status (0 after a normal closure, 1 otherwise)."""
    connection = await connect(url, compression=compression, ping_interval=None)
    trace_connection(connection, out, trace_level)
    print(HELP, file=out, flush=True)

    async def receive() -> None:
        try:
            async for message in connection:
                print(f"message: {message!r}", file=out, flush=True)
        except ConnectionClosed:
            pass

    receiver = asyncio.ensure_future(receive())
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    _read_lines(stream, lines)
    try:
        while True:
            next_line = asyncio.ensure_future(lines.get())
            await asyncio.wait({next_line, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if not next_line.done():
                next_line.cancel()
                break  # the server closed
            line = next_line.result()
            if line is None or not await run_command(connection, line, out):
                break
    except ConnectionClosed:
        pass
    await connection.close()  # at the end of the input; else already closed, or closing
    await receiver
    code, reason = connection.close_code, connection.close_reason
    print(f"closed: {code} {reason!r}", file=out, flush=True)
    return 0 if code == CloseCode.NORMAL_CLOSURE else 1
