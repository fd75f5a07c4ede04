"""`/chat`: the WebSocket of the chat hub, and its REST companions.

The upgrade is checked before the 101 (docs/chat-protocol.md): a valid token (query
`token` as in fastIM, the Bearer header, or the session cookie) or 401; an `Origin`
that is not this server's own or an allowed one, 403 (cross-site WebSocket hijacking).

With `--redis` the hub sends through `fastim.bus.RedisBus` (``app.bus``), which also
carries contact changes to the other nodes; an api-only node (`--role api`) runs the
bus without a hub (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastim.accounts import fields
from fastim.accounts.contacts import (
    CommunityDissolved,
    ContactEvent,
    FriendAdded,
    MemberJoined,
    MemberLeft,
)
from fastim.chat.hub import Hub, conversation
from fastim.chat.protocol import Cmd
from fastim.chat.session import TOKEN_REVOKED, ChatSession
from fastim.errors import AppError
from fastim.handlers.auth import (
    endpoint,
    origin_allowed,
    request_token,
    services,
    to_http_error,
)
from fastim.http import HTTPError, Request, Router
from fastim.store.messages import ChatStorage
from fastim.store.sealing import Sealer
from fastim.ws import ConnectionClosed

#: The largest frame a chat client may send by default: a message of 4,000 characters and
#: its JSON (Config.chat_max_frame, `--chat-max-frame`).
MAX_FRAME = 64 * 1024
MAX_HISTORY_PAGE = 100


def _whole(values: dict[str, Any], name: str, default: int | None = None) -> int:
    """A non-negative integer field, checked like every other API field (fields.integer)."""
    return fields.integer(values, name, minimum=0, maximum=fields.ID_MAX, default=default)


def apply_contact_event(hub: Hub, event: ContactEvent) -> None:
    if isinstance(event, FriendAdded):
        hub.friendship_added(event.user_id, event.friend_id)
    elif isinstance(event, MemberJoined):
        hub.member_joined(event.community_id, event.user_id)
    elif isinstance(event, MemberLeft):
        hub.member_left(event.community_id, event.user_id)
    elif isinstance(event, CommunityDissolved):
        hub.group_dissolved(event.community_id)


def register(router: Router, app: Any) -> None:
    """Add /chat, /chat/history, /chat/unread, /chat/reads and the hub's life cycle."""
    app.hub = None
    app.bus = None  # the Redis bus, when --redis is given
    allowed_origins = set(app.config.allowed_origins)

    async def start_hub(app: Any) -> None:
        key_file = app.config.message_key_file
        storage = ChatStorage(app.store, Sealer.from_file(key_file) if key_file else None)
        await storage.start()
        app.chat_storage = storage
        bus = None
        if app.config.redis:
            from fastim.bus import BusOptions, RedisBus

            bus = RedisBus(app.config.redis, BusOptions(node_ttl=app.config.node_ttl))
            app.contacts.subscribe(bus.contact_changed)
            app.bus = bus
        if app.config.role != "api":
            hub = Hub(storage, app.config.hub)
            if bus is not None:
                bus.attach(hub)
            app.hub = hub
            hub.start()
            # Friendships and memberships changed through REST reach the hub's in-memory
            # checks right after their commit, so they never lag the database.
            app.contacts.subscribe(lambda event: apply_contact_event(hub, event))
        if bus is not None:
            await bus.start()

    async def stop_hub(app: Any) -> None:
        if app.hub is not None:
            hub, app.hub = app.hub, None
            await hub.close()  # stores and publishes what is queued
        if app.bus is not None:
            bus, app.bus = app.bus, None
            await bus.close()

    app.on_startup.append(start_hub)
    app.on_shutdown.append(stop_hub)

    async def before_upgrade(request: Request) -> None:
        if not origin_allowed(request, allowed_origins):
            raise HTTPError(403, "this origin may not open the chat")
        accounts, _ = services(app)
        token = (request.query.get("token") or [None])[0] or request_token(request)
        if not token:
            raise to_http_error(AppError(401, "login required: connect with ?token=…"))
        found = await accounts.session(token)
        if found is None:
            raise to_http_error(AppError(401, "the token is invalid or has expired"))
        request.state.user, request.state.login = found

    async def chat(connection: Any, request: Request) -> None:
        hub: Hub = app.hub
        # Session ids must be unique across nodes: the bus names the sender's device.
        node = f"{app.bus.node}/" if app.bus is not None else ""
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
                     ping_timeout=config.chat_ping_timeout)

    async def conversation_of(user: Any, values: dict[str, Any]) -> tuple[int, int, str]:
        kind = _whole(values, "cmd")
        dstid = _whole(values, "dstid")
        if kind == Cmd.SINGLE:
            if not await app.store.are_friends(user.id, dstid):
                raise AppError(403, f"user {dstid} is not your friend")
        elif kind == Cmd.GROUP:
            if not await app.store.is_member(dstid, user.id):
                raise AppError(403, f"you are not a member of group {dstid}")
        else:
            raise AppError(400, "cmd must be 10 (1:1) or 11 (group)")
        return kind, dstid, conversation(kind, user.id, dstid)

    @router.get("/chat/history")
    @endpoint(app)
    async def history(request: Request, values: dict[str, Any], user: Any) -> Any:
        """One conversation, newest first, paged backwards with `before`."""
        _, _, conv = await conversation_of(user, values)
        before = _whole(values, "before", default=0) or None
        size = min(_whole(values, "pagesize", default=50), MAX_HISTORY_PAGE) or 1
        rows = await app.chat_storage.history(conv, before, size)
        return {"rows": rows, "total": len(rows)}

    @router.get("/chat/reads")
    @endpoint(app)
    async def reads(request: Request, values: dict[str, Any], user: Any) -> Any:
        """How far each participant has read: read ticks (1:1) and read counts (groups)."""
        _, _, conv = await conversation_of(user, values)
        marks = await app.chat_storage.read_marks(conv)
        rows = [{"userid": u, "upto": upto} for u, upto in sorted(marks.items())]
        return {"rows": rows, "total": len(rows)}

    @router.get("/chat/unread")
    @endpoint(app)
    async def unread(request: Request, values: dict[str, Any], user: Any) -> Any:
        """Unread counts for every conversation of the caller that has any."""
        friends = await app.store.friend_ids(user.id)
        groups = await app.store.community_ids(user.id)
        convs = {conversation(Cmd.SINGLE, user.id, f): (Cmd.SINGLE, f) for f in friends}
        convs.update({conversation(Cmd.GROUP, user.id, g): (Cmd.GROUP, g) for g in groups})
        rows = []
        for row in await app.chat_storage.unread(user.id, list(convs)):
            kind, dstid = convs[row["conv"]]
            rows.append({"cmd": int(kind), "dstid": dstid, "unread": row["unread"],
                         "last": row["last"]})
        return {"rows": rows, "total": len(rows)}
