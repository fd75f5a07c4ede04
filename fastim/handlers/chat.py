"""`/chat`: the WebSocket of the chat hub, and its REST companions.

The upgrade is checked before the 101 (docs/chat-protocol.md): a valid token (query
`token` as in fastIM, the Bearer header, or the session cookie) or 401; an `Origin`
that is not this server's own or an allowed one, 403 (cross-site WebSocket hijacking).

The hub, its bus and the chat queries are built by `fastim.services.Services`; an
api-only node (`--role api`) has no hub and serves no /chat WebSocket (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from fastim.accounts import fields
from fastim.chat.session import TOKEN_REVOKED, ChatSession
from fastim.config import Config
from fastim.errors import AppError
from fastim.handlers.auth import (
    ListReply,
    endpoint,
    origin_allowed,
    request_token,
    to_http_error,
)
from fastim.http import HTTPError, Request, Router
from fastim.ws import Connection, ConnectionClosed

if TYPE_CHECKING:
    from fastim.app import App

#: Seconds a device refused for `--max-connections-per-user` is told to wait (429).
CONNECTION_RETRY_AFTER = 30

#: The largest frame a chat client may send by default: a message of 4,000 characters and
#: its JSON (Config.chat_max_frame, `--chat-max-frame`).
MAX_FRAME = 64 * 1024


def _whole(values: dict[str, Any], name: str, default: int | None = None) -> int:
    """A non-negative integer field, checked like every other API field (fields.integer)."""
    return fields.integer(values, name, minimum=0, maximum=fields.ID_MAX, default=default)


def chat_compression_options(config: Config) -> dict[str, bool]:
    """permessage-deflate settings for /chat. ``shared``: no context takeover on the
    server's side (RFC 7692 §7.1.1.1, the server may choose it unasked), so a group
    message is compressed once per parameter set, not once per member
    (`fastim.ws.PreparedFrame`); ``per-connection``: the library's default."""
    if config.chat_compression == "shared":
        return {"server_no_context_takeover": True}
    return {}


def _seconds(value: float) -> float | int:
    """A number of seconds as JSON shows it best: 120, not 120.0."""
    return int(value) if float(value).is_integer() else value


def register(router: Router, app: App) -> None:
    """Add /chat, /chat/history, /chat/unread, /chat/reads and /chat/config."""
    allowed_origins = set(app.config.allowed_origins)

    async def before_upgrade(request: Request) -> None:
        if not origin_allowed(request, allowed_origins):
            raise HTTPError(403, "this origin may not open the chat")
        accounts = app.services.accounts
        token = (request.query.get("token") or [""])[0] or request_token(request)
        if not token:
            raise to_http_error(AppError(401, "login required: connect with ?token=…"))
        found = await accounts.session(token)
        if found is None:
            raise to_http_error(AppError(401, "the token is invalid or has expired"))
        request.state.user, request.state.login = found
        hub = app.services.hub
        if hub is not None and not hub.may_connect(found[0].id):
            # The devices already connected keep working; this one backs off and tries
            # again (a dead connection frees its slot within the ping timeout).
            raise HTTPError(429, "too many chat connections for this user",
                            [("Retry-After", str(CONNECTION_RETRY_AFTER))])

    async def chat(connection: Connection, request: Request) -> None:
        services = app.services
        hub = services.hub
        assert hub is not None, "an api-only node has no hub and no /chat route"
        # Session ids must be unique across nodes: the bus names the sender's device.
        node = f"{services.bus.node}/" if services.bus.node else ""
        login = request.state.login
        session = ChatSession(connection, request.state.user.id,
                              app.config.chat_outbound_buffer, node=node,
                              on_close=lambda: hub.disconnect(session),
                              token_hash=login.token_hash, expires=login.expires)
        # The token was checked at the upgrade only: the connection ends when it expires
        # (logout and password changes end it through Hub.revoke_tokens).
        expiry = asyncio.get_running_loop().call_later(
            max(0.0, login.expires - time.time()), session.close_for, TOKEN_REVOKED,
            "token expired")
        await hub.connect(session)
        try:
            async for message in connection:
                await hub.receive(session, message)
        except ConnectionClosed:
            pass
        finally:
            expiry.cancel()
            hub.disconnect(session)
            # on_close refers to the session and the session to it: break that cycle, so
            # reference counting frees the session, its connection and their buffers now,
            # not at the next full collection, which a big heap makes rare (a closed
            # connection's ~8 KiB piled up, docs/reliability.md "Memory").
            session.on_close = None

    config = app.config
    router.websocket("/chat", chat, before_upgrade=before_upgrade,
                     max_size=config.chat_max_frame, ping_interval=config.chat_ping_interval,
                     ping_timeout=config.chat_ping_timeout,
                     compression_options=chat_compression_options(config))

    @router.get("/chat/history")
    @endpoint(app)
    async def history(request: Request, values: dict[str, Any], user: Any) -> Any:
        """One conversation, newest first, paged backwards with `before`; `total` counts
        the whole conversation, as for every list (docs/api.md)."""
        page = await app.services.chat.history(
            user.id, _whole(values, "cmd"), _whole(values, "dstid"),
            _whole(values, "before", default=0) or None,
            _whole(values, "pagesize", default=50))
        return ListReply(page.rows, page.total)

    @router.get("/chat/reads")
    @endpoint(app)
    async def reads(request: Request, values: dict[str, Any], user: Any) -> Any:
        """How far each participant has read: read ticks (1:1) and read counts (groups)."""
        marks = await app.services.chat.read_marks(user.id, _whole(values, "cmd"),
                                                   _whole(values, "dstid"))
        rows = [{"userid": u, "upto": upto} for u, upto in sorted(marks.items())]
        return ListReply(rows, len(rows))

    @router.get("/chat/summaries")
    @endpoint(app)
    async def summaries(request: Request, values: dict[str, Any], user: Any) -> Any:
        """Every conversation of the caller's lists with its newest message and unread
        counts, newest first: the client's start-up in one request."""
        rows = await app.services.chat.summaries(user.id)
        return ListReply(rows, len(rows))

    @router.get("/chat/unread")
    @endpoint(app)
    async def unread(request: Request, values: dict[str, Any], user: Any) -> Any:
        """Unread counts for every conversation of the caller that has any."""
        rows = await app.services.chat.unread(user.id)
        return ListReply(rows, len(rows))

    @router.get("/chat/config")
    @endpoint(app)
    async def chat_config(request: Request, values: dict[str, Any], user: Any) -> Any:
        """What a client needs to know of this server's chat rules to offer only what
        the server will accept: the edit and recall windows (--edit-window,
        --recall-window), in seconds. The server still decides each change."""
        lifecycle = app.config.hub.lifecycle
        return {"edit_window": _seconds(lifecycle.edit_window),
                "recall_window": _seconds(lifecycle.recall_window)}
