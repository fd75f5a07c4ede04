"""Every service of the app, built once, in one place and one order: `Services.start`.

Handlers receive the running `Services` (through `fastim.app.App.services`) and call
them; no handler builds a service, and nothing else keeps one.

Start-up order (each part needs those above it):

1. the store (the database, its schema brought up to date);
2. the bus, in process or over Redis (created; it connects in step 7);
3. accounts (with the login and registration throttles) and contacts, which publish on
   the bus (contacts gives groups older than schema migration 4 their name keys);
4. the sweeper of expired login tokens and friend requests;
5. the chat storage (with the message sealer of `--message-key-file`) and the chat
   queries over it;
6. uploads (the media service, its rate limit, and the voice and file attachments);
7. mutes and Web Push (its VAPID key made on first start, its sending worker), then
   the sticker packs, and the hub, which tells Web Push of each new message, attached to the bus (none on an api-only node,
   `--role api`), which checks image messages against the packs and the uploads, and
   voice and file messages against the attachments;
8. the bus's connection (Redis: it waits a little for the first connection).

Shut-down runs the same steps backwards: the hub stores and publishes what it has queued
before the bus closes, and everything that queries the database stops before the store
closes. A start-up that fails half-way closes what it had opened, in that same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from fastim import i18n
from fastim.accounts import Accounts, Contacts, LoginThrottle, RedisLoginThrottle
from fastim.accounts.groups import Groups
from fastim.accounts.throttle import (
    RedisRegisterThrottle,
    RegisterThrottle,
    SlidingWindow,
)
from fastim.bus.base import Bus
from fastim.bus.local import LocalBus
from fastim.chat.history import ChatQueries
from fastim.chat.hub import Hub
from fastim.chat.ratelimit import SharedWindow
from fastim.chat.search import MessageSearch
from fastim.config import Config
from fastim.media import Attachments, ImageLinks, MediaService, StickerPack, load_packs
from fastim.notify.mutes import Mutes
from fastim.notify.push import Coalescer, Push, RedisCoalescer
from fastim.notify.vapid import VapidKey
from fastim.store import Store, open_store
from fastim.store.changes import LifecycleStorage
from fastim.store.messages import ChatStorage
from fastim.store.sealing import Sealer
from fastim.store.search import forget_index

log = logging.getLogger(__name__)

#: How often expired tokens are swept from the database (seconds).
PURGE_INTERVAL = 3600.0
#: Database connections (and worker threads) of the server's store.
STORE_POOL_SIZE = 8


def _redis(config: Config) -> tuple[Any, str]:
    """A Redis client for a throttle or the shared rate window, and the deployment
    prefix. Short timeouts: a Redis that does not answer must not hold requests up for
    long (those users then count in this process)."""
    from fastim.bus.client import redis_client
    from fastim.bus.envelope import split_url

    url, prefix = split_url(config.redis)
    return redis_client(url, socket_connect_timeout=2.0, socket_timeout=2.0), prefix


def login_throttle(config: Config) -> LoginThrottle | RedisLoginThrottle:
    """The login throttle: in this process, or with ``--redis`` in Redis, so that N nodes
    share one budget of attempts instead of allowing N times as many."""
    per_mobile, per_address = config.login_per_mobile, config.login_per_address
    if not config.redis:
        return LoginThrottle(per_mobile=per_mobile, per_address=per_address,
                             window=config.login_window)
    client, prefix = _redis(config)
    return RedisLoginThrottle(client, prefix, per_mobile=per_mobile,
                              per_address=per_address, window=config.login_window)


def register_throttle(config: Config) -> RegisterThrottle | RedisRegisterThrottle:
    """The registration throttle per address: in this process, or in Redis with
    ``--redis`` (every node shares one budget, as for logins)."""
    per_address, window = config.register_per_address, config.register_window
    if not config.redis:
        return RegisterThrottle(per_address=per_address, window=window)
    client, prefix = _redis(config)
    return RedisRegisterThrottle(client, prefix, per_address=per_address, window=window)


#: Seconds of the shared (Redis) window of the chat rate limit: a user may send
#: `burst + rate * SHARED_RATE_WINDOW` messages in it over all nodes.
SHARED_RATE_WINDOW = 10.0


def shared_rate_window(config: Config) -> SharedWindow | None:
    """With ``--redis``, the chat rate limit's window shared by every node (None without:
    the hub's bucket per user is then the whole limit)."""
    if not config.redis:
        return None
    client, prefix = _redis(config)
    hub = config.hub
    return SharedWindow(client, prefix, window=SHARED_RATE_WINDOW,
                        limit=int(hub.burst + hub.rate * SHARED_RATE_WINDOW))


def message_bus(config: Config) -> Bus:
    """The bus of `config`: over Redis with ``--redis``, else in this process."""
    if not config.redis:
        return LocalBus()
    from fastim.bus.redisbus import BusOptions, RedisBus

    return RedisBus(config.redis, BusOptions(node_ttl=config.node_ttl))


def web_push(config: Config, store: Store, bus: Bus) -> Push:
    """Web Push with the server's VAPID key (made in the data dir on first start);
    with ``--redis`` its coalescing window is shared by every node."""
    options = config.push
    key = VapidKey.load_or_create(options.key_file or config.data_dir / "vapid-private.pem")
    coalescer: Coalescer | None = None
    if config.redis:
        client, prefix = _redis(config)
        coalescer = RedisCoalescer(client, prefix, options.coalesce)
    # The client's own strings: a push reads like the page, in its language.
    texts = i18n.Tables(config.asset_dir / "i18n")
    return Push(store, bus, key, options, texts, coalescer=coalescer,
                sealed=config.message_key_file is not None)


async def _analyze(store: Store) -> None:
    """The planner's statistics (ANALYZE), so that a hot statement keeps its index plan
    as the tables grow (docs/store.md); a failure is logged, the server goes on."""
    try:
        await store.analyze()
    except Exception:
        log.exception("could not refresh the query planner's statistics")


async def _purge_expired_tokens(store: Store) -> None:
    """Hourly: expired login tokens and expired friend requests, and the planner's
    statistics."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL)
        await _analyze(store)
        try:
            removed = await store.purge_expired_tokens()
            if removed:
                log.info("removed %d expired tokens", removed)
            requests = await store.purge_expired_requests()
            if requests:
                log.info("removed %d expired friend requests", requests)
        except Exception:
            log.exception("could not purge expired tokens and friend requests")


@dataclass
class Services:
    """The running services of one node; `start` builds them, `close` stops them."""

    config: Config
    store: Store
    bus: Bus
    accounts: Accounts
    contacts: Contacts
    groups: Groups
    chat_storage: ChatStorage
    chat: ChatQueries
    #: GET /chat/search (refuses every search while messages are sealed at rest).
    search: MessageSearch
    #: None on an api-only node (`--role api`): it serves no /chat WebSocket.
    hub: Hub | None
    media: MediaService
    attachments: Attachments
    #: Uploads counted per user, failed ones too (decoding costs the same).
    upload_limiter: SlidingWindow
    sticker_packs: list[StickerPack]
    mutes: Mutes
    push: Push
    _stack: contextlib.AsyncExitStack = field(repr=False)

    @classmethod
    async def start(cls, config: Config) -> Services:
        """Build and start every service, in the order of this module's docstring."""
        async with contextlib.AsyncExitStack() as stack:
            store = await open_store(config.database_url, pool_size=STORE_POOL_SIZE,
                                     wait=config.db_wait)
            stack.push_async_callback(store.close)

            bus = message_bus(config)
            stack.push_async_callback(bus.close)

            throttle = login_throttle(config)
            stack.push_async_callback(throttle.close)
            registrations = register_throttle(config)
            stack.push_async_callback(registrations.close)
            accounts = Accounts(store, kdf=config.kdf, token_ttl=config.token_ttl,
                                max_sessions=config.max_sessions, throttle=throttle,
                                register_throttle=registrations, bus=bus)
            stack.callback(accounts.close)  # its password-hashing threads
            contacts = Contacts(store, group_limit=config.group_limit,
                                requests_per_day=config.friend_requests_per_day,
                                request_ttl=config.friend_request_ttl, bus=bus)
            groups = Groups(store, contacts, bus=bus)
            given = await contacts.backfill_name_keys()  # older groups (migration 4)
            if given:
                log.info("gave %d existing groups their name keys", given)

            await _analyze(store)
            purger = asyncio.create_task(_purge_expired_tokens(store), name="token-purger")
            stack.push_async_callback(_cancel, purger)

            key_file = config.message_key_file
            chat_storage = LifecycleStorage(store,
                                            Sealer.from_file(key_file) if key_file else None)
            await chat_storage.start()
            chat = ChatQueries(store, chat_storage)
            # The search index is kept after commit, off the group commit's path; with
            # messages sealed at rest there is no text to index, and none may stay there.
            search = MessageSearch(store, chat_storage, chat)
            if search.enabled:
                await search.indexer.start()
                stack.push_async_callback(search.indexer.stop)
            else:
                await store.write(forget_index)

            media_options = config.media
            media = MediaService(media_options, config.resource_dir,
                                 config.data_dir / "media-index")
            stack.push_async_callback(asyncio.to_thread, media.close)
            limiter = SlidingWindow(media_options.rate_limit, media_options.rate_window)
            # Voice and files: the store says who may have which file (issue 19).
            # Files live beside the other uploads (one directory to share between nodes), in a
            # hidden directory the static files never serve (fastim/http/static.py).
            attachments = Attachments(media, store, config.resource_dir / ".files")

            mutes = Mutes(store, bus)
            push = web_push(config, store, bus)
            push.start()
            stack.push_async_callback(push.close)

            packs = load_packs(config.asset_dir / "stickers")
            hub = None
            if config.role != "api":
                # An image message must name an upload that exists or one of these stickers.
                images = ImageLinks(config.resource_dir,
                                    (s.url for pack in packs for s in pack.stickers),
                                    asset_dir=config.asset_dir)
                shared = shared_rate_window(config)
                if shared is not None:
                    stack.push_async_callback(shared.close)
                hub = Hub(chat_storage, config.hub, bus=bus, images=images, shared=shared,
                          attachments=attachments, notifier=push)
                hub.start()
                stack.push_async_callback(hub.close)  # stores and publishes what is queued

            await bus.start()

            services = cls(config=config, store=store, bus=bus, accounts=accounts,
                           contacts=contacts, groups=groups, chat_storage=chat_storage, chat=chat,
                           search=search, hub=hub, media=media, attachments=attachments,
                           upload_limiter=limiter, sticker_packs=packs, mutes=mutes, push=push,
                           _stack=stack.pop_all())
        return services

    async def close(self) -> None:
        """Stop every service, the last started first."""
        await self._stack.aclose()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
