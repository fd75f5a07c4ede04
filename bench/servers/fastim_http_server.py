"""fastim.http JSON route and static files (fastim.http Router, StaticFiles and Server)."""

from __future__ import annotations

import argparse

from bench.servers.common import JSON_DATA, parse_args, ready, run, unsupported

try:
    from fastim.http import Request, Response, Router, Server, json_response
except ImportError as error:  # the http branch has not landed in this checkout
    Router = None  # type: ignore[assignment,misc]
    missing = str(error)


def make_router(static: str | None) -> Router:
    router = Router()

    @router.get("/json")
    async def json_route(request: Request) -> Response:
        return json_response(JSON_DATA)

    if static:
        router.static("/static/", static)
    return router


async def start(args: argparse.Namespace) -> object:
    server = Server(make_router(args.static))
    await server.start(args.host, args.port)
    ready(server.port)
    return server


if __name__ == "__main__":
    if Router is None:
        unsupported(f"fastim.http is not in this checkout ({missing})")
    run(start, parse_args(__doc__ or ""))
