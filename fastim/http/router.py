"""Routing: method + path (with path parameters) to a handler; 404 and 405 + Allow.

Paths are patterns like ``/user/{uid}`` (one segment) or ``/asset/{path:path}`` (the rest
of the path).  Matching is done on the raw, still percent-encoded path, so an encoded
slash (``%2F``) never splits a segment; parameter values are percent-decoded after the
match.  WebSocket routes live beside the HTTP routes, on the same paths if wanted: an
upgrade request goes to the WebSocket route, any other request to the HTTP routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote

from .errors import HTTPError
from .request import Request
from .response import Response

Handler = Callable[[Request], Awaitable[Response]]
#: ``async def handler(connection, request)``: the WebSocket connection and the request
#: that opened it (with whatever `before_upgrade` stored in ``request.state``).
WebSocketHandler = Callable[[Any, Request], Awaitable[None]]
#: ``async def check(request)``: raise `HTTPError` (401, 403, ...) to refuse the upgrade,
#: or return header fields to add to the 101 response (e.g. Set-Cookie), or None.
BeforeUpgrade = Callable[[Request], Awaitable[Sequence[tuple[str, str]] | None]]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")


class Route:
    """An HTTP route: one method on one path pattern."""

    __slots__ = ("method", "path", "handler", "max_body_size", "body_timeout", "decode_params")

    def __init__(
        self,
        method: str,
        path: str,
        handler: Handler,
        max_body_size: int | None = None,
        body_timeout: float | None = None,
        decode_params: bool = True,
    ) -> None:
        self.method = method
        self.path = path
        self.handler = handler
        #: False: path parameters are given still percent-encoded.
        self.decode_params = decode_params
        #: Largest request body accepted (None: the server's default).
        self.max_body_size = max_body_size
        #: Seconds allowed to receive the body (None: the server's default).
        self.body_timeout = body_timeout

    def __repr__(self) -> str:
        return f"<Route {self.method} {self.path}>"


class WebSocketRoute:
    """A WebSocket endpoint: the handler, an optional pre-upgrade check, ws options."""

    __slots__ = ("path", "handler", "before_upgrade", "options")

    def __init__(
        self,
        path: str,
        handler: WebSocketHandler,
        before_upgrade: BeforeUpgrade | None,
        options: dict[str, Any],
    ) -> None:
        self.path = path
        self.handler = handler
        self.before_upgrade = before_upgrade
        self.options = options


def _compile(path: str) -> re.Pattern[str] | None:
    """A regex for a pattern with parameters, or None for a fixed path."""
    if not path.startswith("/"):
        raise ValueError(f"route path must start with '/': {path!r}")
    pieces = []
    position = 0
    for match in _PARAM.finditer(path):
        pieces.append(re.escape(path[position : match.start()]))
        name, kind = match.groups()
        pieces.append(f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)")
        position = match.end()
    if position == 0:
        return None
    pieces.append(re.escape(path[position:]))
    return re.compile("".join(pieces))


class _Table:
    """Routes of one kind: fixed paths in a dict, patterns in registration order."""

    def __init__(self) -> None:
        self.fixed: dict[str, dict[str, Any]] = {}
        self.patterns: list[tuple[re.Pattern[str], dict[str, Any]]] = []
        self._pattern_index: dict[str, dict[str, Any]] = {}

    def slot(self, path: str) -> dict[str, Any]:
        regex = _compile(path)
        if regex is None:
            return self.fixed.setdefault(path, {})
        slot = self._pattern_index.get(path)
        if slot is None:
            slot = self._pattern_index[path] = {}
            self.patterns.append((regex, slot))
        return slot

    def candidates(self, raw_path: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
        found: list[tuple[dict[str, Any], dict[str, str]]] = []
        fixed = self.fixed.get(raw_path)
        if fixed is not None:
            found.append((fixed, {}))
        for regex, slot in self.patterns:
            match = regex.fullmatch(raw_path)
            if match is not None:
                found.append((slot, match.groupdict()))
        return found


def _decode_params(params: dict[str, str]) -> dict[str, str]:
    try:
        return {name: unquote(value, errors="strict") for name, value in params.items()}
    except UnicodeDecodeError as exc:
        raise HTTPError(400, "path parameter is not valid UTF-8") from exc


class Router:
    """Maps (method, path) to handlers, and paths to WebSocket endpoints.

    >>> router = Router()
    >>> @router.get("/user/{uid}")
    ... async def show(request): ...
    """

    def __init__(self) -> None:
        self._http = _Table()
        self._websocket = _Table()

    # -- registration -------------------------------------------------------------

    def add_route(
        self,
        methods: str | Sequence[str],
        path: str,
        handler: Handler,
        *,
        max_body_size: int | None = None,
        body_timeout: float | None = None,
        decode_params: bool = True,
    ) -> None:
        """Register `handler` for `methods` on `path`.

        `max_body_size` and `body_timeout` override the server's limits for this route;
        `decode_params=False` hands path parameters over still percent-encoded.
        """
        if isinstance(methods, str):
            methods = [methods]
        slot = self._http.slot(path)
        for method in methods:
            method = method.upper()
            if method in slot:
                raise ValueError(f"duplicate route {method} {path}")
            slot[method] = Route(
                method, path, handler, max_body_size, body_timeout, decode_params
            )

    def route(
        self, methods: str | Sequence[str], path: str, **options: Any
    ) -> Callable[[Handler], Handler]:
        """Decorator form of `add_route`."""

        def decorator(handler: Handler) -> Handler:
            self.add_route(methods, path, handler, **options)
            return handler

        return decorator

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Register a GET handler (HEAD is answered by it too)."""
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Register a POST handler."""
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Register a PUT handler."""
        return self.route("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """Register a DELETE handler."""
        return self.route("DELETE", path, **options)

    def websocket(
        self,
        path: str,
        handler: WebSocketHandler,
        *,
        before_upgrade: BeforeUpgrade | None = None,
        **options: Any,
    ) -> None:
        """Serve WebSocket upgrades on `path` with ``handler(connection, request)``.

        `before_upgrade(request)` runs before the 101: it may raise `HTTPError` to answer
        401/403 instead, store data in ``request.state``, and return extra header fields
        for the 101.  `options` go to ``fastim.ws.server.take_over`` (max_size, ...).
        """
        slot = self._websocket.slot(path)
        if "GET" in slot:
            raise ValueError(f"duplicate WebSocket route {path}")
        slot["GET"] = WebSocketRoute(path, handler, before_upgrade, options)

    def static(self, prefix: str, directory: Any, **options: Any) -> None:
        """Serve the files under `directory` at ``prefix + relative path`` (GET, HEAD)."""
        from .static import StaticFiles

        if not prefix.endswith("/"):
            prefix += "/"
        files = StaticFiles(directory, prefix=prefix, **options)
        # StaticFiles judges the raw path itself: an undecodable one is a 404, not a 400.
        self.add_route("GET", prefix + "{path:path}", files, decode_params=False)

    # -- lookup -------------------------------------------------------------------

    def resolve(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        """The route for `method` on `raw_path` and its decoded path parameters.

        Raises HTTPError 404 when no route has this path, 405 (with Allow) when routes
        have it but not for this method.  HEAD falls back to GET (RFC 9110 §9.3.2).
        """
        candidates = self._http.candidates(raw_path)
        for slot, params in candidates:
            route = slot.get(method)
            if route is None and method == "HEAD":
                route = slot.get("GET")
            if route is not None:
                if params and route.decode_params:
                    params = _decode_params(params)
                return route, params
        if not candidates:
            raise HTTPError(404, "not found")
        allowed: set[str] = set()
        for slot, _ in candidates:
            allowed.update(slot)
        if "GET" in allowed:
            allowed.add("HEAD")
        raise HTTPError(405, "method not allowed", [("Allow", ", ".join(sorted(allowed)))])

    def resolve_websocket(self, raw_path: str) -> tuple[WebSocketRoute, dict[str, str]] | None:
        """The WebSocket route for `raw_path`, or None."""
        for slot, params in self._websocket.candidates(raw_path):
            return slot["GET"], _decode_params(params) if params else params
        return None

    def has_websocket_routes(self) -> bool:
        return bool(self._websocket.fixed or self._websocket.patterns)
