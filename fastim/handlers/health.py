"""``GET /healthz``: whether this node should get traffic, for a load balancer (docs/scaling.md).

200 when the node is ready: its services run, the database answers a round trip and,
with ``--redis``, the bus is connected (without it, live delivery to users on other
nodes would be lost, so the balancer should send them elsewhere). 503 while starting,
while draining (after SIGTERM, before the node stops accepting) or when a link is down.
The body says which check failed, as JSON; nobody needs to log in, and nothing in it is
secret (no addresses, no versions).

Served by every role (`--role api|chat|all`) and never cached.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from fastim.http import Request, Response, Router

if TYPE_CHECKING:
    from fastim.app import App

PATH = "/healthz"

#: Longest the database round trip may take before the node counts as not ready: a
#: balancer's check has a timeout of its own, and a hung database must fail it, not hang.
DATABASE_TIMEOUT = 2.0

log = logging.getLogger("fastim.health")


async def check(app: App) -> tuple[bool, dict[str, str]]:
    """Whether the node is ready, and the state of each part."""
    if app.draining:
        return False, {"status": "draining"}
    services = app.running_services
    if services is None:
        return False, {"status": "starting"}
    parts: dict[str, str] = {}
    try:
        await asyncio.wait_for(services.store.ping(), DATABASE_TIMEOUT)
        parts["database"] = "ok"
    except Exception as exc:  # whatever the driver raises, the node is not ready
        log.warning("health check: the database did not answer: %r", exc)
        parts["database"] = "unavailable"
    parts["bus"] = "ok" if services.bus.connected else "disconnected"
    ready = all(state == "ok" for state in parts.values())
    return ready, {"status": "ready" if ready else "unavailable", **parts}


def register(router: Router, app: App) -> None:
    """Add ``GET /healthz`` (HEAD too)."""

    @router.get(PATH)
    async def healthz(request: Request) -> Response:
        ready, parts = await check(app)
        response = Response(json.dumps(parts), 200 if ready else 503,
                            content_type="application/json")
        response.set_header("Cache-Control", "no-store")
        return response
