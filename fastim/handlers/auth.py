"""Token authentication for the REST API and the chat, and the shape of every reply.

Who is calling is decided by the token alone (fastIM trusted a ``userid`` parameter):

* ``Authorization: Bearer <token>`` (RFC 6750 §2.1), for API clients;
* the ``fastim_token`` cookie (HttpOnly, SameSite=Lax) set by ``/user/login``, for the
  web client. SameSite=Lax keeps the cookie off cross-site POSTs, and every endpoint that
  changes something is POST-only. SameSite does not cover a page of the *same site* on
  another origin (another port of the same host), so an unsafe request authenticated by
  the cookie must also come from an allowed Origin (:func:`check_origin`), as ``/chat``
  upgrades must (CSRF). So must a login or registration: a foreign page's form could
  otherwise log the victim's browser in to the attacker's account (login CSRF).

No token, or an unknown, revoked or expired one -> 401 with ``WWW-Authenticate: Bearer``
(RFC 6750 §3). A ``userid`` in the request naming someone else -> 403.

This module has no routes: the handler modules use :func:`request_token`,
:func:`authenticated_user` and :func:`endpoint`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastim.accounts import User
from fastim.accounts.fields import caller_matches
from fastim.errors import AppError
from fastim.handlers.views import SESSION_COOKIE
from fastim.http import HTTPError, Request, Response, json_response, list_response

if TYPE_CHECKING:
    from fastim.app import App

Endpoint = Callable[[Request, dict[str, Any], Any], Awaitable[Any]]


def request_token(request: Request) -> str | None:
    """The token a request presents: the Bearer credentials, else the session cookie.

    An Authorization field that is not ``Bearer <token>`` yields "" (refused, and the
    cookie is not consulted: the client said explicitly how it authenticates).
    """
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return ""
        return credentials.strip()
    return request.cookies.get(SESSION_COOKIE) or None


#: Methods that do not change anything (RFC 9110 §9.2.1): no Origin check for them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def origin_allowed(request: Request, allowed: set[str] | frozenset[str] | tuple[str, ...]) -> bool:
    """Whether the request's Origin (RFC 6454 §7) is this server's own or listed.

    No Origin at all passes: browsers send one with every POST and WebSocket handshake
    (Fetch standard, "append a request Origin header"), so a request without one is not a
    browser's and carries no ambient cookie to abuse. ``Origin: null`` (a sandboxed
    frame, a data: URL) is foreign.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    # This server's own origin is the scheme the page was served over (behind a trusted
    # proxy, the proxy's, from request.scheme) and the Host it was asked for.
    host = request.headers.get("host", "")
    return origin == f"{request.scheme}://{host}" or origin in allowed


def check_origin(request: Request, app: App) -> None:
    """CSRF defence beyond SameSite: 403 for an unsafe request whose Origin is neither this
    server's own nor one of ``--allowed-origin``.

    Called for requests authenticated by the session cookie, and for the endpoints
    without authentication (login, register). Not for Bearer requests: a foreign page
    cannot make a browser add an ``Authorization`` header to a cross-origin request
    without a CORS preflight, which this server never grants, so they are not CSRF-able.
    """
    if request.method in SAFE_METHODS:
        return
    if not origin_allowed(request, app.config.allowed_origins):
        raise HTTPError(403, "this origin may not make changes here: use the app's own pages")


def to_http_error(error: AppError) -> HTTPError:
    """The HTTP layer's error for a domain error (status, message, Retry-After...)."""
    headers = error.headers()
    if error.status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="fastim"'))
    return HTTPError(error.status, error.message, headers)


async def authenticated_user(request: Request, app: App) -> User:
    """The user the request's token belongs to; 401 without a valid token.

    Also stores ``request.state.user`` and ``request.state.token``.
    """
    accounts = app.services.accounts
    token = request_token(request)
    if token is None:
        raise to_http_error(AppError(401, "login required: send the token from /user/login"))
    if request.headers.get("authorization") is None:
        check_origin(request, app)  # the ambient cookie: CSRF-able
    user = await accounts.authenticate(token)
    if user is None:
        error = to_http_error(AppError(401, "the token is invalid or has expired: log in again"))
        if request.headers.get("authorization") is None:
            # A stale session cookie: drop it, so the web client goes back to the login
            # page instead of presenting it again.
            secure = "; Secure" if request.scheme == "https" else ""
            error.headers.append((
                "Set-Cookie",
                f"{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly{secure}; SameSite=Lax",
            ))
        raise error
    request.state.user = user
    request.state.token = token
    return user


def endpoint(
    app: App, *, auth: bool = True, status: int = 200
) -> Callable[[Endpoint], Callable[[Request], Awaitable[Response]]]:
    """Turn ``async def fn(request, values, user) -> data`` into a route handler.

    The handler authenticates (unless ``auth=False``; then ``user`` is None, and only the
    Origin is checked, :func:`check_origin`), checks that a
    ``userid`` in the request is the caller's own, reads the merged request values, and
    answers fastIM's envelope ``{"code": 0, "msg": "", "data": data}`` with ``status``
    -- or, for a :class:`ListReply`, fastIM's list envelope with ``rows`` and ``total`` at
    the top level -- or, when ``fn`` raises :class:`AppError`, ``{"code": -1, "msg": ...}``
    with the error's status. ``fn`` may also return a ready :class:`Response`.
    """

    def wrap(fn: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(fn)
        async def handler(request: Request) -> Response:
            if not auth:
                # Login CSRF: a foreign page's form could log the victim's browser in to
                # the attacker's account (the reply's cookie is stored even for a
                # cross-site top-level POST). Logging in and registering are for the
                # app's own pages and for clients that send no Origin.
                check_origin(request, app)
            user = await authenticated_user(request, app) if auth else None
            values = request.values()
            try:
                if user is not None:
                    caller_matches(values, user.id)
                result = await fn(request, values, user)
            except AppError as error:
                raise to_http_error(error) from None
            if isinstance(result, Response):
                return result
            if isinstance(result, ListReply):
                return list_response(result.rows, result.total, status, result.total_capped)
            return json_response(result, status)

        return handler

    return wrap


@dataclass(frozen=True)
class ListReply:
    """What a list endpoint returns: one page of ``rows`` and the ``total`` of the whole
    list, answered as ``{"code": 0, "msg": "", "rows": [...], "total": N}``. fastIM's own
    pages read ``res.rows`` (its ``util.RespOkList``), so the two are not nested in
    ``data``."""

    rows: list[Any]
    total: int
    #: Only for a list whose count stops at a bound (message search): whether it did.
    total_capped: bool | None = None


def page_data(page: Any, render: Callable[[Any], Mapping[str, Any]]) -> ListReply:
    """A list reply of ``page`` (a store Page), each row rendered by ``render``."""
    return ListReply([render(row) for row in page.rows], page.total)
