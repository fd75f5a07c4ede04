"""fastim.ws echo and broadcast server, on the library's serve(handler, host, port) API.

The echo handler iterates over the messages and awaits send() for each: the coroutine API.
With FASTIM_BENCH_ECHO=callback in the environment it hands each message to send_nowait()
from inside the read callback instead (Connection.set_message_callback): no task switch
per message, the style of picows' frame listener.
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
CALLBACK_ECHO = os.environ.get("FASTIM_BENCH_ECHO", "coroutine") == "callback"


async def handler(conn: Any) -> None:
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
    elif CALLBACK_ECHO:
        conn.set_message_callback(conn.send_nowait)
        await conn.wait_closed()
    else:
        async for message in conn:
            await conn.send(message)


async def start(args: argparse.Namespace) -> object:
    options: dict[str, Any] = {"max_size": MAX_SIZE}
    if args.deflate:
        options["compression"] = "deflate"
    try:
        server = await serve(handler, args.host, args.port, **options)
    except (TypeError, ValueError, ImportError, NotImplementedError) as error:
        unsupported(f"fastim.ws.serve refused {options}: {error}")
    ready(server.sockets[0].getsockname()[1])
    return server


if __name__ == "__main__":
    if serve is None:
        unsupported(f"fastim.ws has no serve() in this checkout ({missing})")
    run(start, parse_args(__doc__ or ""))
