"""Web Push: the browser subscriptions (`POST /user/push`), and one push per new message
to each recipient with no open connection anywhere in the cluster.

The path of a push, after the message's commit (`fastim.chat.hub.Hub._stored` calls
`message_stored` on the node that stored it, so a message is pushed by one node only):

1. the subscriptions of the conversation's other members who did not mute it
   (`fastim.store.notify.push_targets`, one query);
2. minus those online on any node (`bus.online`, the presence the hub keeps);
3. minus those pushed about this conversation in the last `PushOptions.coalesce` seconds
   (`Coalescer`: in this process, or shared by every node through Redis);
4. each push is encrypted to the browser's keys (RFC 8291, ``aes128gcm``), signed with
   the server's VAPID key (RFC 8292) and POSTed to its push service (RFC 8030 §5) by
   pywebpush on a worker thread: pywebpush blocks, and a slow push service must never
   hold the event loop, so at most `PushOptions.concurrency` are in flight, each with a
   timeout, and the queue before them is bounded (beyond it, pushes are dropped and
   logged: the messages themselves are stored and reach the user at the next visit);
5. a push service answering 404 or 410 no longer knows the subscription (RFC 8030
   §7.3): it is removed.

What a push says is docs/security.md's business: by default only "New message from
Alice"; with ``--push-preview`` also the text's beginning. It says it in the language of
the browser that shows it: each subscription keeps the language the page had when it
subscribed (``lang``), and the texts come from the client's own tables
(asset/i18n/*.json, keys ``push.*`` and ``preview.*``), so a push reads like the page.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from pywebpush import WebPushException, webpush

from fastim import i18n
from fastim.accounts import User
from fastim.accounts.service import token_hash
from fastim.bus.base import Bus
from fastim.errors import bad_request
from fastim.notify.endpoints import check_endpoint
from fastim.notify.options import PushOptions
from fastim.notify.transport import PushSession
from fastim.notify.vapid import VapidKey
from fastim.store import Store
from fastim.store.notify import (
    SINGLE,
    Subscription,
    count_subscriptions,
    delete_gone,
    delete_subscription,
    delete_token_subscriptions,
    push_targets,
    save_subscription,
)

log = logging.getLogger(__name__)

#: New messages waiting for their pushes to be worked out; beyond it they are dropped.
QUEUE_SIZE = 2000
#: New messages worked out together (one per conversation among them).
BATCH = 100
#: Pushes started and not finished; beyond it new ones are dropped (a push service
#: that hangs must not make the server hold unbounded work).
MAX_IN_FLIGHT = 500
#: Seconds the names of senders and groups are kept for the pushes' titles.
NAMES_KEPT = 60.0
#: Characters of a message's text in a push with ``--push-preview``.
PREVIEW_CHARS = 120
#: A language tag as a browser gives it (BCP 47, RFC 5646 §2.1: letters, digits, hyphens).
LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")


@dataclass(frozen=True)
class Stored:
    """A new message, as much of it as a push needs."""

    sender: int
    kind: int
    dstid: int
    message_id: int
    media: int
    content: str
    memo: str


class Coalescer:
    """At most one push per (user, conversation) per `window` seconds, in this process."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._until: dict[tuple[int, int, int], float] = {}

    async def first(self, keys: Iterable[tuple[int, int, int]]) -> set[tuple[int, int, int]]:
        """Those of `keys` not pushed within the window; they count as pushed now."""
        now = self.clock()
        if len(self._until) > 10_000:
            self._until = {k: t for k, t in self._until.items() if t > now}
        fresh = set()
        for key in keys:
            if self._until.get(key, 0.0) <= now:
                self._until[key] = now + self.window
                fresh.add(key)
        return fresh

    async def close(self) -> None:
        return None


class RedisCoalescer(Coalescer):
    """The same window shared by every node (``SET NX PX``), so two nodes storing
    messages of one group at once still push once. Redis unreachable: this node's own
    window decides (a push too many, never one too few)."""

    def __init__(self, client: Any, prefix: str, window: float) -> None:
        super().__init__(window)
        self.client = client
        self.prefix = prefix

    async def first(self, keys: Iterable[tuple[int, int, int]]) -> set[tuple[int, int, int]]:
        keys = list(keys)
        if not keys:
            return set()
        try:
            async with asyncio.timeout(2.0):
                async with self.client.pipeline(transaction=False) as pipe:
                    for user, kind, dstid in keys:
                        pipe.set(f"{self.prefix}:push:{user}:{kind}:{dstid}", "1", nx=True,
                                 px=max(1, int(self.window * 1000)))
                    answers = await pipe.execute()
        except Exception as exc:
            log.warning("push coalescing: Redis unavailable (%s); this node decides", exc)
            return await super().first(keys)
        return {key for key, answer in zip(keys, answers, strict=True) if answer}

    async def close(self) -> None:
        # A Redis that does not answer must not hold the server's shut-down.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.client.aclose()


def _b64url_bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value or len(value) > 100:
        raise bad_request(f"keys.{name} must be a base64url string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise bad_request(f"keys.{name} must be a base64url string") from None


def subscription_keys(values: Mapping[str, Any]) -> tuple[str, str]:
    """(p256dh, auth) of a PushSubscription's JSON (``keys``), checked: a P-256 public
    key as an uncompressed point and a 16-byte secret (RFC 8291 §3.2)."""
    keys = values.get("keys")
    if keys is None:
        keys = values
    if not isinstance(keys, Mapping):
        raise bad_request("keys must be an object with p256dh and auth")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    point = _b64url_bytes(p256dh, "p256dh")
    if len(point) != 65 or point[0] != 4:
        raise bad_request("keys.p256dh must be a P-256 public key (65 bytes, uncompressed)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise bad_request("keys.p256dh is not a point on P-256") from None
    if len(_b64url_bytes(auth, "auth")) != 16:
        raise bad_request("keys.auth must be 16 bytes")
    return str(p256dh), str(auth)


def subscription_language(value: Any, page_language: str) -> str:
    """The language of a subscription's pushes: ``lang`` (a BCP 47 tag, the page's current
    language) matched to one we ship, English for one we do not; without it, the page's."""
    if value is None or value == "":
        return page_language if page_language in i18n.LANGUAGES else i18n.DEFAULT
    if not isinstance(value, str) or len(value) > 35 or not LANGUAGE_TAG.fullmatch(value):
        raise bad_request("lang must be a language tag such as en or zh-CN")
    return i18n.match(value) or i18n.DEFAULT


class Push:
    """Subscriptions and pushes; `start` begins the worker, `close` ends it."""

    def __init__(self, store: Store, bus: Bus, key: VapidKey, options: PushOptions,
                 texts: i18n.Tables, *, coalescer: Coalescer | None = None,
                 sealed: bool = False, clock: Callable[[], float] = time.time) -> None:
        if options.preview and sealed:
            raise ValueError("--push-preview would send message text that "
                             "--message-key-file keeps sealed (docs/security.md)")
        self.store = store
        self.bus = bus
        self.key = key
        self.options = options
        #: The client's UI strings (asset/i18n/): a push is written in its browser's language.
        self.texts = texts
        self.clock = clock
        self.coalescer = coalescer or Coalescer(options.coalesce)
        self._queue: asyncio.Queue[Stored] = asyncio.Queue(QUEUE_SIZE)
        self._pool = ThreadPoolExecutor(max_workers=options.concurrency,
                                        thread_name_prefix="web-push")
        self._slots = asyncio.Semaphore(options.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._names: dict[tuple[int, int], str] = {}
        self._names_since = time.monotonic()
        #: Pushes answered 201 (for the operator's log and the tests).
        self.sent = 0

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="web-push")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._in_flight:
            # Pushes under way get their timeout to finish; the rest are let go.
            await asyncio.wait(self._in_flight, timeout=self.options.timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        await self.coalescer.close()

    # -- subscriptions -------------------------------------------------------------

    async def subscribe(self, user: User, token: str, values: Mapping[str, Any],
                        page_language: str = i18n.DEFAULT) -> int:
        """Keep a browser's PushSubscription (its JSON: ``endpoint`` and ``keys``), with
        the language its pushes are to be in: ``lang`` as the page sends it, else
        `page_language` (the one the page was served in)."""
        endpoint = check_endpoint(values.get("endpoint"), self.options)  # type: ignore[arg-type]
        p256dh, auth = subscription_keys(values)
        lang = subscription_language(values.get("lang"), page_language)
        return await self.store.write(save_subscription, user.id, endpoint, p256dh, auth,
                                      token_hash(token), int(self.clock()),
                                      self.options.per_user, lang)

    async def unsubscribe(self, user: User, values: Mapping[str, Any]) -> bool:
        endpoint = values.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise bad_request("endpoint is required")
        return await self.store.write(delete_subscription, user.id, endpoint)

    async def count(self, user: User) -> int:
        return await self.store.read(count_subscriptions, user.id)

    async def forget_token(self, token: str) -> int:
        """That login session ended: its browser gets no more pushes."""
        return await self.store.write(delete_token_subscriptions, token_hash(token))

    # -- pushes --------------------------------------------------------------------

    def message_stored(self, sender: int, kind: int, dstid: int, message_id: int,
                       media: int, content: str, memo: str) -> None:
        """Called by the hub after a new message's commit; never blocks."""
        try:
            self._queue.put_nowait(Stored(sender, kind, dstid, message_id, media,
                                          content, memo))
        except asyncio.QueueFull:
            log.warning("web push: queue full, message %d pushes nobody", message_id)

    async def idle(self) -> None:
        """Until every message queued so far has been pushed (tests, shut-down)."""
        await self._queue.join()
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # A burst in one conversation is worked out once, for its newest message:
            # coalescing would leave the others out anyway, and each costs a query.
            newest: dict[tuple[int, int, int], Stored] = {}
            for stored in batch:
                sender = stored.sender if stored.kind == SINGLE else 0
                newest[(stored.kind, stored.dstid, sender)] = stored
            for stored in newest.values():
                try:
                    await self._pushes_for(stored)
                except Exception:
                    log.exception("web push: message %d", stored.message_id)
            for _ in batch:
                self._queue.task_done()

    async def _pushes_for(self, stored: Stored) -> None:
        if stored.kind == SINGLE and await self.bus.online([stored.dstid]):
            return  # the usual case, answered without the database
        targets = await self.store.read(push_targets, stored.kind, stored.dstid,
                                        stored.sender, int(self.clock()))
        if not targets:
            return
        online = await self.bus.online({t.user_id for t in targets})
        targets = [t for t in targets if t.user_id not in online]
        if not targets:
            return
        # The conversation as the recipient names it: 1:1 by the other user.
        where = stored.sender if stored.kind == SINGLE else stored.dstid
        fresh = await self.coalescer.first({(t.user_id, stored.kind, where) for t in targets})
        targets = [t for t in targets if (t.user_id, stored.kind, where) in fresh]
        if not targets:
            return
        payloads: dict[str, str] = {}  # one text per language among the targets
        for target in targets:
            if target.lang not in payloads:
                payloads[target.lang] = json.dumps(
                    await self._payload(stored, where, target.lang), ensure_ascii=False,
                    separators=(",", ":"))
            data = payloads[target.lang]
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                log.warning("web push: %d pushes in flight; one to user %d dropped",
                            len(self._in_flight), target.user_id)
                continue
            task = asyncio.get_running_loop().create_task(self._send(target, data))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _name(self, kind: int, ident: int) -> str:
        now = time.monotonic()
        if now - self._names_since > NAMES_KEPT:
            self._names.clear()  # a renamed user or group shows its new name soon
            self._names_since = now
        cached = self._names.get((kind, ident))
        if cached is not None:
            return cached
        record = await (self.store.get_user(ident) if kind == SINGLE
                        else self.store.get_group(ident))
        name = (record.nickname if kind == SINGLE else record.name) if record else ""  # type: ignore[union-attr]
        if len(self._names) > 4096:
            self._names.clear()
        self._names[(kind, ident)] = name
        return name

    async def _payload(self, stored: Stored, where: int, lang: str) -> dict[str, Any]:
        """What the service worker shows (asset/sw.js), in `lang`: the title names the
        sender (and the group); the body is the preview, empty without
        ``--push-preview``."""
        texts = self.texts
        sender = await self._name(SINGLE, stored.sender) or texts.text(lang, "push.someone")
        group = await self._name(stored.kind, stored.dstid) if stored.kind != SINGLE else ""
        if group:
            title = texts.text(lang, "push.title_group", {"name": sender, "group": group})
        else:
            title = texts.text(lang, "push.title", {"name": sender})
        body = ""
        if self.options.preview:
            if stored.media == 1:
                body = stored.content[:PREVIEW_CHARS]
            elif stored.media == 3:  # the page adds the length; a push has none at hand
                body = texts.text(lang, "preview.voice", {"duration": ""}).strip()
            elif stored.media == 4:
                body = texts.text(lang, "preview.photo")
            elif stored.media == 5:
                name = stored.memo[:PREVIEW_CHARS] or texts.text(lang, "file.default_name")
                body = texts.text(lang, "preview.file", {"name": name})
            else:
                body = texts.text(lang, "push.new_message")
        return {"title": title, "body": body, "cmd": stored.kind, "dstid": where,
                "id": stored.message_id}

    async def _send(self, target: Subscription, data: str) -> None:
        async with self._slots:
            loop = asyncio.get_running_loop()
            status = await loop.run_in_executor(self._pool, self._post, target, data)
        if status in (404, 410):
            # RFC 8030 §7.3: the subscription is gone; the browser subscribes anew.
            await self.store.write(delete_gone, target.id, target.endpoint)
            log.info("web push: subscription %d is gone (%d): removed", target.id, status)
        elif status is not None and 200 <= status < 300:
            self.sent += 1

    def _post(self, target: Subscription, data: str) -> int | None:
        """One push (a worker thread): the HTTP status, None when it could not be sent."""
        try:
            parts = urlsplit(target.endpoint)
            claims: dict[str, str | int] = {
                "sub": self.options.subject,
                "aud": f"{parts.scheme}://{parts.netloc}",  # RFC 8292 §2
                "exp": int(self.clock()) + 12 * 3600,
            }
            # The peer's address is checked on the connected socket (transport.py).
            with PushSession(self.options) as session:
                response = webpush(
                    {"endpoint": target.endpoint,
                     "keys": {"p256dh": target.p256dh, "auth": target.auth}},
                    data, vapid_private_key=self.key.vapid, vapid_claims=claims,
                    content_encoding="aes128gcm", timeout=self.options.timeout,
                    ttl=self.options.ttl, headers={"Urgency": "high"},
                    requests_session=session)
            return int(response.status_code)
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status not in (404, 410):
                log.warning("web push to subscription %d failed: %s", target.id,
                            str(exc).splitlines()[0])
            return status
        except Exception as exc:
            log.warning("web push to subscription %d failed: %r", target.id, exc)
            return None
