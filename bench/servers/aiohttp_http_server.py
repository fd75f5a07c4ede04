"""aiohttp JSON route and static files (aiohttp.web json_response and add_static)."""

from __future__ import annotations

import argparse
import socket

from aiohttp import web

from bench.servers.common import JSON_DATA, parse_args, ready, run


def make_app(static: str | None) -> web.Application:
    async def json_route(request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "msg": "", "data": JSON_DATA})

    app = web.Application()
    app.router.add_get("/json", json_route)
    if static:
        app.router.add_static("/static/", static)
    return app


async def start(args: argparse.Namespace) -> object:
    runner = web.AppRunner(make_app(args.static), access_log=None)
    await runner.setup()
    sock = socket.create_server((args.host, args.port))
    site = web.SockSite(runner, sock)
    await site.start()
    ready(sock.getsockname()[1])
    return runner


if __name__ == "__main__":
    run(start, parse_args(__doc__ or ""))
