"""aiohttp echo and broadcast server (aiohttp.web WebSocketResponse)."""

from __future__ import annotations

import argparse
import socket

from aiohttp import WSMsgType, web

from bench.servers.common import MAX_SIZE, parse_args, ready, run

room: set[web.WebSocketResponse] = set()


def make_app(deflate: bool) -> web.Application:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_SIZE, compress=deflate)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def broadcast(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_SIZE, compress=deflate)
        await ws.prepare(request)
        room.add(ws)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                for member in list(room):
                    try:
                        await member.send_bytes(msg.data)
                    except (ConnectionError, RuntimeError):  # a member that left mid-broadcast
                        room.discard(member)
        finally:
            room.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/broadcast", broadcast)
    return app


async def start(args: argparse.Namespace) -> object:
    runner = web.AppRunner(make_app(args.deflate), access_log=None)
    await runner.setup()
    sock = socket.create_server((args.host, args.port))
    site = web.SockSite(runner, sock)
    await site.start()
    ready(sock.getsockname()[1])
    return runner


if __name__ == "__main__":
    run(start, parse_args(__doc__ or ""))
