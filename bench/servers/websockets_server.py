"""websockets (its asyncio API, the library's current one) echo and broadcast server."""

from __future__ import annotations

import argparse

from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.servers.common import MAX_SIZE, parse_args, ready, run

room: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    if ws.request is not None and ws.request.path == "/broadcast":
        room.add(ws)
        try:
            async for message in ws:
                broadcast(room, message)  # the library's own fan-out: no await per member
        finally:
            room.discard(ws)
    else:
        async for message in ws:
            await ws.send(message)


async def start(args: argparse.Namespace) -> object:
    server = await serve(
        handler,
        args.host,
        args.port,
        max_size=MAX_SIZE,
        # permessage-deflate is websockets' default; it is only used when the client offers it
        compression="deflate" if args.deflate else None,
    )
    ready(server.sockets[0].getsockname()[1])
    return server


if __name__ == "__main__":
    run(start, parse_args(__doc__ or ""))
