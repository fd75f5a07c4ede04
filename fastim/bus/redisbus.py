"""The hub's bus over Redis: many fastim nodes serve one chat (docs/scaling.md).

Live delivery is Redis pub/sub on one channel per online user and one per group with
online members (fastim/bus/envelope.py); a node subscribes to the channels of the users
and groups it holds, so Redis sends each publish once to each interested node, never
once per member. Every frame, even one for a user on this same node, goes out through
Redis and comes back: each node then sees the frames of all publishers in one order,
and a message stored during a Redis outage is never overtaken by a later one delivered
locally (which would move the client's sync cursor past it).

Presence is a registry in Redis kept by atomic scripts (fastim/bus/scripts.py) and a
heartbeat per node: a node that stops beating (SIGKILL, a crash, a lost network) stops
counting after `node_ttl` seconds, and a live node reaps its entries and tells every
node which users went offline with it.

Losing Redis: the node keeps storing and acking (the database is the source of truth).
Stored messages and contact changes wait in a bounded outbox and are published once
Redis is back; typing, presence and receipts (receipts are stored too) are dropped. The
node reconnects with backoff, then closes its chat connections with 1012 (service
restart): each client reconnects, syncs what it missed from the store, reloads the
friend and member caches, and live delivery resumes. A connection is sent each message
id once (`fastim.chat.session.ChatSession.first_send`), so a message republished after
the outage does not reach a device that already synced it.

Contact changes take effect everywhere before the client hears "done": each control
event carries its publisher's sequence number, every node that applies it answers on the
publisher's ``applied`` channel, and `RedisBus.settle` waits (at most `options.wait`) until
as many answers came as PUBLISH counted receivers. Without that, a friend added through
node 3 could still be refused by node 2 for the message the client sends next.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import secrets
import socket
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from fastim.bus import scripts
from fastim.bus.base import Receiver
from fastim.bus.client import redis_client
from fastim.bus.envelope import Envelope, Names, pack, redacted_url, split_url, unpack
from fastim.bus.events import ControlEvent, UsersWentOffline, from_json, to_json

log = logging.getLogger(__name__)

#: Close code sent to the chat connections after the bus reconnected (RFC 6455 §7.4.1,
#: IANA-registered 1012 "Service Restart": the client should reconnect).
SERVICE_RESTART = 1012

_SUBSCRIBE_CHUNK = 1000  # channels per SUBSCRIBE when (re)subscribing everything


class State(enum.Enum):
    DOWN = "down"  # no Redis: stored messages queue up, the rest is dropped
    CONNECTING = "connecting"  # reconnected, setting up: everything queues
    UP = "up"  # the pump publishes as things come


@dataclass
class BusOptions:
    """Tuning of the Redis bus; the defaults suit production, tests shorten them."""

    node_ttl: float = 15.0  # seconds without a heartbeat before a node counts as dead
    max_outbox: int = 100_000  # stored messages and contact changes kept while Redis is down
    max_batch: int = 512  # commands per pipeline round trip
    wait: float = 2.0  # longest a connect waits for Redis (subscribe, registry)
    backoff_min: float = 0.05
    backoff_max: float = 2.0
    socket_timeout: float = 5.0

    @property
    def heartbeat(self) -> float:
        return self.node_ttl / 3


@dataclass
class BusStats:
    """Counters for the measurements in docs/scaling.md."""

    published: int = 0  # PUBLISH commands sent
    received: int = 0  # messages this node's subscription delivered
    reconnects: int = 0
    resets: int = 0  # chat connections closed with 1012 after a reconnect
    dropped: int = 0  # frames dropped while Redis was down (typing, presence, receipts)


@dataclass
class _Op:
    """One command for the pump: a publish or a script run (with a future or callback)."""

    channel: bytes | None = None
    payload: bytes = b""
    keep: bool = False  # publish again after an outage (stored messages, contact changes)
    script: str | None = None
    args: Sequence[Any] = ()
    future: asyncio.Future[Any] | None = None
    fallback: Any = None  # the future's result when Redis cannot answer
    then: Callable[[Any], None] | None = field(default=None, repr=False)

    def fail(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(self.fallback)


@dataclass
class _Confirmation:
    """A control event this node published, waiting for the other nodes to apply it."""

    done: asyncio.Future[None]
    expected: int | None = None  # other nodes that received it (PUBLISH's count less us)
    applied: int = 0  # "applied" answers so far (they may come before PUBLISH's reply)

    def check(self) -> bool:
        """Resolve `done` once every receiver answered; whether it is resolved."""
        answered = self.expected is not None and self.applied >= self.expected
        if answered and not self.done.done():
            self.done.set_result(None)
        return self.done.done()


def new_node_id() -> str:
    """A node id unique across hosts and restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class RedisBus:
    """The `fastim.bus.base.Bus` over Redis, and the presence registry of all nodes.

    ``start()`` connects (and keeps reconnecting in the background), ``attach(hub)``
    wires a chat hub to it (an api-only node has none and uses the bus only to publish
    contact changes and to answer who is online), ``close()`` leaves the registry.
    """

    def __init__(self, url: str, options: BusOptions | None = None,
                 node: str | None = None) -> None:
        redis_url, prefix = split_url(url)
        self.url = redis_url
        #: What the logs say: the URL without its password.
        self.shown_url = redacted_url(redis_url)
        self.options = options or BusOptions()
        self.names = Names(prefix)
        self.node = node or new_node_id()
        self.hub: Receiver | None = None
        self.stats = BusStats()
        self.state = State.DOWN
        # Our own reconnect loop decides when to retry: redis-py must not retry inside.
        self._redis = redis_client(
            redis_url, retry=Retry(NoBackoff(), 0), socket_keepalive=True,
            socket_connect_timeout=self.options.wait,
            socket_timeout=self.options.socket_timeout)
        self._shas: dict[str, str] = {}
        self._ops: deque[_Op] = deque()
        self._ops_ready = asyncio.Event()
        self._kept = 0  # ops in the queue with keep=True
        self._channels: set[bytes] = set()  # what this node wants to receive
        self._active: set[bytes] = set()  # confirmed by Redis on the live subscription
        self._unsubscribing: set[bytes] = set()  # UNSUBSCRIBE sent, not yet confirmed
        self._to_subscribe: set[bytes] = set()
        self._to_unsubscribe: set[bytes] = set()
        self._subscriptions_changed = asyncio.Event()
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._up = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._applied_channel = self.names.applied(self.node)
        self._control_seq = 0  # numbers this node's control events
        self._confirming: dict[int, _Confirmation] = {}

    # -- life cycle -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.state is State.UP

    def attach(self, receiver: Receiver) -> None:
        """Deliver to `receiver`'s connections (the hub, which sends through this bus)."""
        self.hub = receiver

    async def start(self) -> None:
        """Connect in the background; wait a little for the first connection so a node
        that starts with Redis up serves its first users fully."""
        self._supervisor = asyncio.get_running_loop().create_task(
            self._run(), name="redis-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), self.options.wait)
        if self.state is not State.UP:
            log.warning("Redis at %s is not reachable yet: messages are stored and acked, "
                        "live delivery starts when it is", self.shown_url)

    async def close(self) -> None:
        """Publish what is queued, leave the registry, disconnect."""
        if self.state is State.UP:
            await self.settle()
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(self._call("reap", self.node, "1", self.node),
                                       self.options.wait)
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    async def settle(self) -> None:
        """Wait until everything queued so far has reached Redis, and every node has
        applied the control events published so far (at once when Redis is down: then
        they wait in the outbox; at most `options.wait` in all, so a node that is slow
        or dying delays the answer, never blocks it). Services call this before they
        answer, so every node acts on a change when the client hears "done"."""
        up_to = self._control_seq
        try:
            if self.state is State.DOWN:
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.options.wait
            future: asyncio.Future[Any] = loop.create_future()
            self._enqueue(_Op(script="ping", future=future))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, self.options.wait)
            waiting = [c.done for seq, c in self._confirming.items() if seq <= up_to]
            if waiting and deadline > loop.time():
                await asyncio.wait(waiting, timeout=deadline - loop.time())
        finally:
            self._give_up_confirming(up_to)

    def _give_up_confirming(self, up_to: int) -> None:
        """Stop waiting for answers about events up to `up_to` (a node that never
        answers must not hold the next settle, nor memory)."""
        for seq in [seq for seq in self._confirming if seq <= up_to]:
            confirmation = self._confirming.pop(seq)
            if not confirmation.done.done():
                confirmation.done.set_result(None)

    # -- frames and presence (fastim.bus.base.Bus) -----------------------------------

    def to_users(self, users: Sequence[int], frame: str, skip_session: str | None = None,
                 message_id: int | None = None) -> None:
        payload = pack(self.node, frame, skip_session=skip_session, message_id=message_id)
        for user in dict.fromkeys(users):  # once each, in order
            self._publish(self.names.user(user), payload, keep=message_id is not None)

    def to_group(self, group: int, frame: str, also: int | None = None,
                 skip_session: str | None = None, message_id: int | None = None,
                 about: int | None = None) -> None:
        payload = pack(self.node, frame, skip_session=skip_session, also=also,
                       message_id=message_id, about=about)
        self._publish(self.names.group(group), payload, keep=message_id is not None)

    async def arrived(self, user: int, groups: Collection[int], friends: Collection[int],
                      frame: str) -> set[int]:
        channels = [self.names.user(user), *(self.names.group(g) for g in groups)]
        for channel in channels:
            self._watch(channel)
        local = self._local(friends)
        if self.state is State.DOWN:
            return local  # after the outage every connection is reset and comes back
        args = [self.node, user, pack(self.node, frame), *friends]
        try:
            async with asyncio.timeout(self.options.wait):
                await self._subscribed(channels)
                result = await self._script("arrive", args, fallback=None)
        except TimeoutError:
            return local
        if result is None:
            return local
        online = {int(friend) for friend in result[1:]}
        if int(result[0]) == 1:
            self.stats.published += len(online)
        return local | online

    def departed(self, user: int, groups: Collection[int], friends: Collection[int],
                 frame: str) -> None:
        self._unwatch(self.names.user(user))
        for group in groups:
            self._unwatch(self.names.group(group))

        def count(result: Any) -> None:
            self.stats.published += int(result[0])

        self._enqueue(_Op(script="depart",
                          args=[self.node, user, pack(self.node, frame), *friends],
                          then=count))

    def watch_group(self, group: int) -> None:
        self._watch(self.names.group(group))

    def unwatch_group(self, group: int) -> None:
        self._unwatch(self.names.group(group))

    def _local(self, users: Collection[int]) -> set[int]:
        hub = self.hub
        return set() if hub is None else {user for user in users if hub.is_online(user)}

    async def online(self, users: Collection[int]) -> set[int]:
        users = list(users)
        if not users:
            return set()
        local = self._local(users)
        if self.state is State.DOWN:
            return local
        try:
            async with asyncio.timeout(self.options.wait):
                found = await self._script("online", users, fallback=None)
        except TimeoutError:
            found = None
        if found is None:
            return local
        return local | {int(u) for u in found}

    # -- control events: every node's hub -----------------------------------------------

    def publish(self, event: ControlEvent) -> None:
        """Apply `event` to this node's hub now, and publish it for the other nodes. Kept
        across a Redis outage (the outbox) like stored messages: a friendship or a
        revocation must not be lost. Queued first, so that a failure to apply it here
        does not keep it from the other nodes."""
        self._control_seq += 1
        seq = self._control_seq
        self._confirming[seq] = _Confirmation(asyncio.get_running_loop().create_future())
        self._enqueue(_Op(channel=self.names.control,
                          payload=pack(self.node, to_json(event), seq=seq), keep=True,
                          then=lambda receivers: self._received_by(seq, receivers)))
        if self.hub is not None:
            self.hub.apply(event)

    def _received_by(self, seq: int, receivers: Any) -> None:
        """PUBLISH answered how many subscribers got event `seq`; we are one of them."""
        confirmation = self._confirming.get(seq)
        if confirmation is not None:
            confirmation.expected = max(0, int(receivers) - 1)
            if confirmation.check():
                del self._confirming[seq]

    def _on_applied(self, payload: bytes) -> None:
        """Another node has applied our control event number `payload`."""
        confirmation = self._confirming.get(int(payload))
        if confirmation is not None:
            confirmation.applied += 1
            if confirmation.check():
                del self._confirming[int(payload)]

    def _apply_control(self, envelope: Envelope) -> None:
        try:
            self._use_control(envelope.origin, envelope.frame)
        finally:
            # Answered after applying, and also when this node cannot use the event (no
            # hub, a kind it does not know, a failure): the publisher waits for everyone.
            if envelope.seq is not None and envelope.origin != self.node:
                self._publish(self.names.applied(envelope.origin),
                              str(envelope.seq).encode(), keep=False)

    def _use_control(self, origin: str, body: str) -> None:
        hub = self.hub
        if hub is None:
            return
        try:
            event = from_json(body)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unknown control event from %s: %r (%s)", origin, body, exc)
            return
        # A dead node's users are announced by whichever node reaped it, maybe this one;
        # everything else this node applied when it published it.
        if origin == self.node and not isinstance(event, UsersWentOffline):
            return
        hub.apply(event)

    # -- receiving ----------------------------------------------------------------------

    def _on_message(self, channel: bytes, payload: bytes) -> None:
        self.stats.received += 1
        if channel == self._applied_channel:
            self._on_applied(payload)
            return
        kind, ident = self.names.parse(channel)
        envelope = unpack(payload)
        if kind == "ctl":
            self._apply_control(envelope)
        elif self.hub is None:
            return
        elif kind == "u":
            self.hub.deliver_to_users([ident], envelope.frame, envelope.skip_session,
                                      envelope.message_id)
        else:
            self.hub.deliver_to_group(ident, envelope.frame, envelope.also,
                                      envelope.skip_session, envelope.message_id,
                                      about=envelope.about)

    async def _listen(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind, channel = message["type"], message["channel"]
            if kind == "message":
                try:
                    self._on_message(channel, message["data"])
                except Exception:  # one bad envelope must not stop the node's delivery
                    log.exception("could not handle a message on %r", channel)
            elif kind == "subscribe":
                self._active.add(channel)
                for waiter in self._waiters.pop(channel, ()):
                    if not waiter.done():
                        waiter.set_result(None)
            elif kind == "unsubscribe":
                self._active.discard(channel)
                self._unsubscribing.discard(channel)

    # -- subscriptions --------------------------------------------------------------------

    def _receiving(self, channel: bytes) -> bool:
        return channel in self._active and channel not in self._unsubscribing

    def _watch(self, channel: bytes) -> None:
        self._channels.add(channel)
        self._to_unsubscribe.discard(channel)
        if not self._receiving(channel):
            self._to_subscribe.add(channel)
            self._subscriptions_changed.set()

    def _unwatch(self, channel: bytes) -> None:
        self._channels.discard(channel)
        self._to_subscribe.discard(channel)
        self._to_unsubscribe.add(channel)
        self._subscriptions_changed.set()

    async def _subscribed(self, channels: Iterable[bytes]) -> None:
        """Until Redis has confirmed the subscription to each of `channels`."""
        loop = asyncio.get_running_loop()
        waiting = []
        for channel in channels:
            if not self._receiving(channel):
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.setdefault(channel, []).append(waiter)
                waiting.append(waiter)
        if waiting:
            await asyncio.gather(*waiting)

    async def _subscriber(self, pubsub: Any) -> None:
        """Send the subscription changes, batched: a reconnect storm of thousands of
        users costs a few SUBSCRIBE commands, not one each."""
        while True:
            if not (self._to_subscribe or self._to_unsubscribe):
                self._subscriptions_changed.clear()
                await self._subscriptions_changed.wait()
                continue
            gone, self._to_unsubscribe = self._to_unsubscribe, set()
            new, self._to_subscribe = self._to_subscribe, set()
            if gone:
                self._unsubscribing |= gone
                await pubsub.unsubscribe(*gone)
            if new:
                await pubsub.subscribe(*new)

    # -- sending: one ordered queue, pipelined --------------------------------------------

    def _publish(self, channel: bytes, payload: bytes, keep: bool) -> None:
        self._enqueue(_Op(channel=channel, payload=payload, keep=keep))

    def _script(self, name: str, args: Sequence[Any], fallback: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Op(script=name, args=args, future=future, fallback=fallback))
        return future

    def _enqueue(self, op: _Op) -> None:
        if self.state is State.DOWN and not op.keep:
            if op.channel is not None:
                self.stats.dropped += 1
            op.fail()
            return
        if op.keep:
            if self._kept >= self.options.max_outbox:
                self._drop_oldest_kept()
            self._kept += 1
        self._ops.append(op)
        self._ops_ready.set()

    def _drop_oldest_kept(self) -> None:
        for index, queued in enumerate(self._ops):
            if queued.keep:
                del self._ops[index]
                self._kept -= 1
                self.stats.dropped += 1
                log.warning("the Redis outbox is full: a stored message will reach its "
                            "recipients through sync only")
                return

    async def _pump(self) -> None:
        """Send queued commands in order, as many per round trip as are waiting."""
        while True:
            if not self._ops:
                self._ops_ready.clear()
                await self._ops_ready.wait()
                continue
            batch = [self._ops.popleft()
                     for _ in range(min(len(self._ops), self.options.max_batch))]
            self._kept -= sum(op.keep for op in batch)
            pipe = self._redis.pipeline(transaction=False)
            for op in batch:
                if op.channel is not None:
                    pipe.publish(op.channel, op.payload)
                elif op.script == "ping":
                    pipe.ping()
                else:
                    assert op.script is not None
                    pipe.evalsha(self._shas[op.script], 0, self.names.prefix, *op.args)
            try:
                results = await pipe.execute(raise_on_error=False)
            except BaseException:
                self._requeue(batch)
                raise
            self.stats.published += sum(op.channel is not None for op in batch)
            for op, result in zip(batch, results, strict=True):
                self._finish(op, result)

    def _finish(self, op: _Op, result: Any) -> None:
        if isinstance(result, Exception):
            log.warning("Redis refused %s: %r", op.script or "a publish", result)
            op.fail()
            return
        if op.future is not None and not op.future.done():
            op.future.set_result(result)
        if op.then is not None:
            try:
                op.then(result)
            except Exception:
                log.exception("handling the result of %s failed", op.script)

    def _requeue(self, batch: list[_Op]) -> None:
        """A round trip failed: what must survive goes back to the front, in order (some
        may have reached Redis: a connection gets each message id once, and contact
        changes are idempotent)."""
        kept = [op for op in batch if op.keep]
        self._ops.extendleft(reversed(kept))
        self._kept += len(kept)
        for op in batch:
            if not op.keep:
                op.fail()

    # -- connection: reconnect with backoff, resubscribe, heartbeat ----------------------

    async def _call(self, name: str, *args: Any) -> Any:
        return await self._redis.evalsha(self._shas[name], 0, self.names.prefix, *args)

    async def _run(self) -> None:
        delay = self.options.backoff_min
        gap = False  # we had Redis and lost it: connections must resync
        while not self._closing:
            try:
                await self._session(gap)
            except asyncio.CancelledError:
                raise
            except _Reaped:
                log.warning("this node was declared dead (heartbeats were late): resyncing")
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("no Redis at %s: %r", self.shown_url, exc)
            finally:
                if self.state is not State.DOWN:  # it had worked: retry soon
                    gap = True
                    delay = self.options.backoff_min
                self._go_down()
            if self._closing:
                return
            # Exponential backoff with jitter, so that many nodes do not reconnect in step.
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, self.options.backoff_max)

    def _go_down(self) -> None:
        self.state = State.DOWN
        self._up.clear()
        self._active.clear()
        self._unsubscribing.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._waiters.clear()
        kept = [op for op in self._ops if op.keep]
        for op in self._ops:
            if not op.keep:
                op.fail()
        self._ops = deque(kept)
        self._kept = len(kept)

    async def _session(self, gap: bool) -> None:
        """One connection's life: set up, then run until something fails."""
        await self._redis.connection_pool.disconnect()  # no stale sockets from before
        await self._redis.ping()
        self.state = State.CONNECTING
        if gap:
            self.stats.reconnects += 1
            self._reset_connections()
        for name, source in scripts.ALL.items():
            self._shas[name] = await self._redis.script_load(source)
        # Whatever this node registered before is stale: users who left meanwhile must
        # not stay online (the script announces them offline); those just reset come
        # back through the usual connect.
        await self._call("reap", self.node, "1", self.node)
        pubsub = self._redis.pubsub()
        wanted = [self.names.control, self._applied_channel, *self._channels]
        self._to_subscribe.clear()
        self._to_unsubscribe.clear()
        tasks: list[asyncio.Task[None]] = []
        try:
            for start in range(0, len(wanted), _SUBSCRIBE_CHUNK):
                await pubsub.subscribe(*wanted[start:start + _SUBSCRIBE_CHUNK])
            await self._beat(first=True)
            loop = asyncio.get_running_loop()
            tasks = [loop.create_task(self._listen(pubsub), name="redis-bus-listen"),
                     loop.create_task(self._subscriber(pubsub), name="redis-bus-subscribe"),
                     loop.create_task(self._pump(), name="redis-bus-pump"),
                     loop.create_task(self._heartbeat(), name="redis-bus-heartbeat")]
            self.state = State.UP
            self._up.set()
            log.info("node %s is on the Redis bus at %s", self.node, self.shown_url)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended the session
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await pubsub.aclose()

    def _reset_connections(self) -> None:
        """After an outage: every chat connection of this node reconnects and syncs."""
        hub = self.hub
        if hub is None:
            return
        closed = hub.close_all(SERVICE_RESTART, "the chat bus reconnected: reconnect and sync")
        self.stats.resets += closed
        if closed:
            log.warning("closed %d chat connections after the Redis outage", closed)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat)
            await self._beat(first=False)

    async def _beat(self, first: bool) -> None:
        ttl_ms = int(self.options.node_ttl * 1000)
        result = await self._call("heartbeat", self.node, ttl_ms)
        if int(result[0]) == 1 and not first:
            raise _Reaped()
        for raw in result[1:]:
            dead = raw.decode()
            if dead == self.node:
                continue
            reaped = await self._call("reap", dead, "0", self.node)
            if reaped and int(reaped[0]):  # else another node reaped it, or it came back
                log.warning("node %s stopped beating: %d of its users went offline with "
                            "it", dead, len(reaped) - 1)


class _Reaped(Exception):
    """Our lease ran out and another node reaped us: resync as after an outage."""

