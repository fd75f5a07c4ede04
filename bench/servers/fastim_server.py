"""fastim.ws echo and broadcast server, on the library's serve(handler, host, port) API.

Two styles, chosen with --echo (default: FASTIM_BENCH_ECHO in the environment, else
coroutine):

- coroutine: the handler iterates over the messages and awaits send() for each (for
  broadcast, a send() to every member): the API of websockets and aiohttp;
- callback: each message is handled inside the read callback
  (Connection.set_message_callback) and answered with send_nowait(), for broadcast a
  send_nowait() to every member: no task switch per message, the style of picows' frame
  listener, its only API.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from bench.servers.common import MAX_SIZE, parse_args, ready, run, unsupported

try:
    from fastim.ws import serve
except ImportError as error:  # the ws branch has not landed in this checkout
    serve = None
    missing = str(error)

room: set[Any] = set()


async def coroutine_handler(conn: Any) -> None:
    if conn.path == "/broadcast":
        room.add(conn)
        try:
            async for message in conn:
                for member in list(room):
                    try:
                        await member.send(message)
                    except Exception:  # a member that left mid-broadcast: drop it, go on
                        room.discard(member)
        finally:
            room.discard(conn)
    else:
        async for message in conn:
            await conn.send(message)


def _to_room(message: bytes | str) -> None:
    for member in list(room):
        try:
            member.send_nowait(message)
        except Exception:  # a member that left mid-broadcast: drop it, go on
            room.discard(member)


async def callback_handler(conn: Any) -> None:
    if conn.path == "/broadcast":
        room.add(conn)
        try:
            conn.set_message_callback(_to_room)
            await conn.wait_closed()
        finally:
            room.discard(conn)
    else:
        conn.set_message_callback(conn.send_nowait)
        await conn.wait_closed()


async def start(args: argparse.Namespace) -> object:
    options: dict[str, Any] = {"max_size": MAX_SIZE}
    if args.deflate:
        options["compression"] = "deflate"
    handler = callback_handler if args.echo == "callback" else coroutine_handler
    try:
        server = await serve(handler, args.host, args.port, **options)
    except (TypeError, ValueError, ImportError, NotImplementedError) as error:
        unsupported(f"fastim.ws.serve refused {options}: {error}")
    ready(server.sockets[0].getsockname()[1])
    return server


if __name__ == "__main__":
    if serve is None:
        unsupported(f"fastim.ws has no serve() in this checkout ({missing})")
    arguments = parse_args(__doc__ or "")
    if arguments.echo is None:
        arguments.echo = os.environ.get("FASTIM_BENCH_ECHO", "coroutine")
    run(start, arguments)
