"""The chat hub: who is online, who may talk to whom, and where each message goes.

Every accepted message is stored (group commit) before it is acked or delivered; its
frame is encoded once and the same text goes to every recipient connection. The checks
on the hot path (is this a friend, is this a member, who of this group is online) are
answered from memory: a user's friends and groups are loaded when their first device
connects and kept in step by the control events the services publish on the bus after
each commit (`apply`: a friendship, a membership, revoked tokens). Delivery goes through
the bus too, so another node's users can be reached the same way: the bus also answers
who is online anywhere and is told when this node starts or stops holding a user or a
group's online members (`fastim.bus.base.Bus`; fastim/bus/ puts Redis behind it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from fastim.bus.base import Bus
from fastim.bus.events import (
    ControlEvent,
    FriendAdded,
    FriendRemoved,
    FriendRequested,
    GroupDissolved,
    GroupNotice,
    MemberJoined,
    MemberLeft,
    TokensRevoked,
    UsersWentOffline,
)
from fastim.bus.local import LocalBus
from fastim.chat.groupcommit import Busy, GroupCommit
from fastim.chat.lifecycle import LifecycleOptions, Rules, prepare_message, request_of
from fastim.chat.protocol import (
    Change,
    ChatError,
    ChatLimits,
    ChatMessage,
    Cmd,
    Command,
    Heartbeat,
    Media,
    Read,
    Sync,
    Typing,
    encode,
    parse,
)
from fastim.chat.ratelimit import SharedWindow, TokenBucket
from fastim.chat.session import TOKEN_REVOKED, Session, fan_out
from fastim.store.changes import (
    DELETE,
    REACT,
    ChangeRefused,
    ChangeRequest,
    ChangeResult,
    Check,
    change_frame,
)
from fastim.store.errors import StoreError
from fastim.store.messages import StoredMessage, SyncPage
from fastim.ws import prepare

log = logging.getLogger(__name__)

# How many messages answered store_failed are remembered until their resend (see _unsure).
UNSURE_KEPT = 10_000

#: The close code of a connection beyond `HubOptions.max_connections_per_user` that got
#: past the upgrade's check (two upgrades racing): a private-use code (RFC 6455 §7.4.2).
#: The usual refusal is a 429 at the upgrade (fastim/handlers/chat.py).
TOO_MANY_CONNECTIONS = 4002
#: A member's history window when a join event did not carry it: above every message id,
#: so no change of an older message can reach them (see `Hub.member_joined`).
UNKNOWN_WINDOW = 2 ** 63 - 1


def conversation(kind: int, a: int, b: int) -> str:
    """The key of a conversation: a pair of users (order-free) or a group."""
    if kind == Cmd.GROUP:
        return f"g{b}"
    low, high = (a, b) if a <= b else (b, a)
    return f"p{low}_{high}"


@dataclass(frozen=True)
class NewMessage:
    """A validated message with its sender, ready to be stored."""

    sender: int
    message: ChatMessage
    session_id: str  # the device it came from: it gets the ack, not a copy
    conv: str
    ts: int  # server time, ms
    # What the delivered frame adds (a reply's quote, the mentions): checked before
    # the message was queued (fastim/chat/lifecycle.py).
    extra: dict[str, Any] | None = None


class ChatStore(Protocol):
    async def friends_of(self, user_id: int) -> set[int]: ...
    async def group_windows(self, user_id: int) -> dict[int, int]: ...
    async def insert_messages(self, batch: Sequence[NewMessage]) -> list[StoredMessage]: ...
    async def sync_page(self, user_id: int, groups: Sequence[int], since: int, limit: int,
                        sent: frozenset[int]) -> SyncPage: ...
    async def mark_read(self, user_id: int, conv: str, upto: int) -> int: ...
    # The message lifecycle (fastim/store/changes.py): used only by its commands.
    async def change_page(self, user_id: int, groups: Sequence[int], since: int,
                          limit: int, sent: frozenset[int]) -> SyncPage: ...
    async def latest_change(self) -> int: ...
    async def apply_change(self, request: ChangeRequest, check: Check) -> ChangeResult: ...
    async def prepare(self, fn: Callable[..., Any], *args: Any) -> Any: ...


class ImageCheck(Protocol):
    """Whether an image URL names something this server holds: None if it does, else
    what is wrong (`fastim.media.ImageLinks`: an uploaded image that exists, or a
    sticker). The parser checks only the URL's shape; it reads no disk."""

    def problem(self, url: str) -> str | None: ...


class AttachmentCheck(Protocol):
    """What a voice or file message may carry (`fastim.media.Attachments`)."""

    async def voice_amount(self, url: str) -> int | None:
        """The server's whole seconds of the voice recording at `url`; None: not one."""
        ...

    async def file_message(self, user_id: int, url: str) -> tuple[str, int] | str:
        """The name and size of the file at `url` as `user_id` may send it, or what is
        wrong (not uploaded, or neither theirs nor sent to them)."""
        ...


class Notifier(Protocol):
    """Told of each new message after its commit, on the node that stored it (Web Push,
    fastim/notify/push.py); must not block."""

    def message_stored(self, sender: int, kind: int, dstid: int, message_id: int,
                       media: int, content: str, memo: str) -> None: ...


@dataclass
class HubOptions:
    limits: ChatLimits = field(default_factory=ChatLimits)
    rate: float = 20.0  # messages a second a user may send, sustained, on all devices
    burst: float = 40.0  # and in a burst
    max_connections_per_user: int = 10  # devices of one user on this node
    max_strikes: int = 10  # malformed commands tolerated before closing with 1008
    max_batch: int = 256
    max_pending: int = 20_000
    # Sync pages (cmd 20) a second a user may ask for, sustained, on all devices here,
    # and in a burst. Not a limit: a sync over it waits its turn (the connection's
    # frames are read one after another), so a long sync is paced, never cut off.
    sync_rate: float = 200.0
    sync_burst: float = 100.0
    lifecycle: LifecycleOptions = field(default_factory=LifecycleOptions)


@dataclass
class Presence:
    """What the hub keeps in memory for a user with at least one live device."""

    sessions: dict[str, Session]
    friends: set[int]
    groups: set[int]
    # group -> its history window: the user reads the group's messages above this id
    # (`since_id`, fastim/store/groups.py), and so only their changes (`deliver_to_group`).
    windows: dict[int, int] = field(default_factory=dict)


class Hub:
    """The chat of one node. It sends through `bus` (the in-process one by default) and
    attaches itself to it, so that what the bus carries reaches this hub's connections."""

    def __init__(self, store: ChatStore, options: HubOptions | None = None, *,
                 bus: Bus | None = None, shared: SharedWindow | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 images: ImageCheck | None = None,
                 attachments: AttachmentCheck | None = None,
                 notifier: Notifier | None = None) -> None:
        self.store = store
        self._closed = False
        self.notifier = notifier
        # None: any URL of the right shape is taken (the hub's unit tests have no disk).
        self.images = images
        self.attachments = attachments
        self.options = options or HubOptions()
        self.clock = clock
        self.bus: Bus = bus if bus is not None else LocalBus()
        self.bus.attach(self)
        self.users: dict[int, Presence] = {}
        self.online_members: dict[int, set[int]] = {}  # group -> members online here
        # group -> the sessions of its online members here, built at its first fan-out
        # and dropped whenever a member joins, leaves, or connects or closes a device
        # (`_membership_changed`), so the next message sees the change.
        self._group_sessions: dict[int, list[Session]] = {}
        # The rate limit is per user, over all their devices here: one bucket per user,
        # kept after their last device leaves until it has refilled (a reconnect does not
        # buy a fresh burst). With `shared` (Redis), each user's messages are also
        # counted across nodes: `_counts` gathers them between two flushes, `_over`
        # holds the users over the shared limit until (clock) their window ends.
        self._buckets: dict[int, TokenBucket] = {}
        # Sync pages are paced apart from messages (HubOptions.sync_rate): a bucket per
        # user while they have a device here.
        self._sync_buckets: dict[int, TokenBucket] = {}
        self.shared = shared
        self._counts: dict[int, int] = {}
        self._over: dict[int, float] = {}
        self._flusher: asyncio.Task[None] | None = None
        # Messages of each session submitted and not yet answered (ack or store_failed),
        # and the sessions to close, with (code, reason), once they are all answered:
        # a message stored is acked before its connection's close frame goes out.
        self._unanswered: dict[str, int] = {}
        self._draining: dict[str, tuple[int, str]] = {}
        # (sender, cid) of messages answered store_failed: their commit may have happened
        # all the same (its answer lost), so a resend found stored must still be
        # delivered live. Oldest first, bounded.
        self._unsure: dict[tuple[int, str | None], None] = {}
        self._strikes: dict[str, int] = {}
        self._commit: GroupCommit[NewMessage, StoredMessage] = GroupCommit(
            store.insert_messages, self._stored, self._store_failed,
            max_batch=self.options.max_batch, max_pending=self.options.max_pending)

    def start(self) -> None:
        self._commit.start()
        if self.shared is not None:
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_counts(), name="chat-rate-counts")

    async def close(self) -> None:
        self._closed = True  # the store closes next (fastim/services.py)
        await self._commit.close()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    def may_connect(self, user: int) -> bool:
        """Whether `user` may open one more device here (`max_connections_per_user`)."""
        presence = self.users.get(user)
        return presence is None or \
            len(presence.sessions) < self.options.max_connections_per_user

    # -- connections ------------------------------------------------------------------

    async def connect(self, session: Session) -> None:
        """A device came online: load what the hot path needs and tell friends."""
        user = session.user_id
        presence = self.users.get(user)
        first_here = False
        new_groups: list[int] = []  # groups that had no online member on this node
        if presence is None:
            friends, windows = await asyncio.gather(self.store.friends_of(user),
                                                    self.store.group_windows(user))
            groups = set(windows)
            presence = self.users.get(user)  # another device may have raced us here
            if presence is None:
                presence = Presence(sessions={}, friends=friends, groups=groups,
                                    windows=windows)
                self.users[user] = presence
                first_here = True
                for group in groups:
                    members = self.online_members.setdefault(group, set())
                    if not members:
                        new_groups.append(group)
                    members.add(user)
        presence.sessions[session.id] = session
        if len(presence.sessions) > self.options.max_connections_per_user:
            # Upgrades that raced past may_connect: the newest is refused, the devices
            # already connected keep working.
            session.close_for(TOO_MANY_CONNECTIONS, "too many connections")
            self.disconnect(session)
            return
        self._membership_changed(presence.groups)
        if user not in self._buckets:
            self._sweep_buckets()
            self._buckets[user] = TokenBucket(self.options.rate, self.options.burst,
                                              self.clock())
        if first_here:
            # Receive for the user (and new groups) before the client can ask to sync,
            # so a message is either in the sync reply or arrives live.
            online = await self.bus.arrived(
                user, new_groups, presence.friends,
                encode({"cmd": Cmd.PRESENCE, "userid": user, "online": True}))
        else:
            online = await self.bus.online(presence.friends)
        if session.id in presence.sessions:  # not closed while we waited
            session.push(encode({"cmd": Cmd.PRESENCE, "users": sorted(online),
                                 "online": True}))

    def disconnect(self, session: Session) -> None:
        user = session.user_id
        self._strikes.pop(session.id, None)
        self._unanswered.pop(session.id, None)
        self._draining.pop(session.id, None)
        presence = self.users.get(user)
        if presence is None or presence.sessions.pop(session.id, None) is None:
            return
        self._membership_changed(presence.groups)
        if presence.sessions:
            return
        del self.users[user]
        self._sync_buckets.pop(user, None)
        bucket = self._buckets.get(user)
        if bucket is not None and self._refilled(bucket):
            del self._buckets[user]
        emptied = []
        for group in presence.groups:
            members = self.online_members.get(group)
            if members is not None:
                members.discard(user)
                if not members:
                    del self.online_members[group]
                    emptied.append(group)
        self.bus.departed(user, emptied, presence.friends,
                          encode({"cmd": Cmd.PRESENCE, "userid": user, "online": False}))

    def is_online(self, user: int) -> bool:
        """Whether `user` has a device on this node (`bus.online` knows all nodes)."""
        return user in self.users

    def friends_went_offline(self, users: Collection[int]) -> None:
        """`users` were on a node that stopped without saying so (its presence expired):
        tell their friends connected here that they are offline."""
        gone = set(users)
        frames: dict[int, str] = {}
        for presence in list(self.users.values()):
            for friend in (presence.friends & gone):
                frame = frames.get(friend)
                if frame is None:
                    frame = frames[friend] = encode(
                        {"cmd": Cmd.PRESENCE, "userid": friend, "online": False})
                for session in list(presence.sessions.values()):
                    session.push(frame)

    def close_all(self, code: int, reason: str) -> int:
        """Close every connection of this node with `code` (the bus reconnected after an
        outage: each client reconnects and syncs). Returns how many."""
        sessions = [session for presence in list(self.users.values())
                    for session in list(presence.sessions.values())]
        for session in sessions:
            session.close_for(code, reason)
        return len(sessions)

    # -- control events: what services publish on the bus ------------------------------

    def apply(self, event: ControlEvent) -> None:
        """Bring the in-memory friends, groups and connections in step with a change the
        bus carried (from this node's services, or from another node)."""
        match event:
            case FriendAdded():
                self.friendship_added(event.user_id, event.friend_id)
            case FriendRemoved():
                self.friendship_removed(event.user_id, event.friend_id)
            case FriendRequested():
                self._notify(event.to_id, {"cmd": Cmd.CONTACT, "event": "request",
                                           "requestid": event.request_id,
                                           "userid": event.from_id})
            case MemberJoined():
                self.member_joined(event.group_id, event.user_id, event.since)
            case MemberLeft():
                self.member_left(event.group_id, event.user_id)
            case GroupDissolved():
                self.group_dissolved(event.group_id)
            case GroupNotice():
                self.group_notice(event)
            case TokensRevoked():
                self.revoke_tokens(event.user_id, event.token_hashes, keep=event.keep,
                                   reason=event.reason)
            case UsersWentOffline():
                self.friends_went_offline(event.user_ids)


    def friendship_added(self, a: int, b: int) -> None:
        """Each side connected here learns of the new friend, and the friend learns that
        this side is online (from every node that holds a device of it)."""
        for one, other in ((a, b), (b, a)):
            presence = self.users.get(one)
            if presence is not None:
                presence.friends.add(other)
                self._notify(one, {"cmd": Cmd.CONTACT, "event": "friend", "userid": other})
                self.bus.to_users([other], encode({"cmd": Cmd.PRESENCE, "userid": one,
                                                   "online": True}))

    def friendship_removed(self, a: int, b: int) -> None:
        """From now on nothing 1:1 passes between `a` and `b` (the checks read
        `Presence.friends`), and presence stops both ways: each side connected here is
        told, and sees the other offline."""
        for one, other in ((a, b), (b, a)):
            presence = self.users.get(one)
            if presence is not None:
                presence.friends.discard(other)
                self._notify(one, {"cmd": Cmd.PRESENCE, "userid": other, "online": False})
                self._notify(one, {"cmd": Cmd.CONTACT, "event": "unfriend", "userid": other})

    def _notify(self, user: int, body: dict[str, Any]) -> None:
        """Push a frame to every device of `user` on this node (every node gets the
        control event, so each tells its own devices)."""
        presence = self.users.get(user)
        if presence is None:
            return
        frame = encode(body)
        for session in list(presence.sessions.values()):
            session.push(frame)

    def member_joined(self, group: int, user: int, since: int | None) -> None:
        """`user` joined `group` and reads its messages above id `since` (None: not
        known, an event from a node that did not say: then no change of the group's
        messages reaches their devices here until they reconnect, rather than one of
        a message from before they joined)."""
        presence = self.users.get(user)
        if presence is not None:
            self._membership_changed((group,))
            presence.groups.add(group)
            presence.windows[group] = UNKNOWN_WINDOW if since is None else since
            members = self.online_members.setdefault(group, set())
            if not members:
                self.bus.watch_group(group)
            members.add(user)

    def member_left(self, group: int, user: int) -> None:
        self._membership_changed((group,))
        presence = self.users.get(user)
        if presence is not None:
            presence.groups.discard(group)
            presence.windows.pop(group, None)
        members = self.online_members.get(group)
        if members is not None:
            members.discard(user)
            if not members:
                del self.online_members[group]
                self.bus.unwatch_group(group)

    def group_dissolved(self, group: int) -> None:
        self._membership_changed((group,))
        members = self.online_members.pop(group, set())
        for user in members:
            presence = self.users.get(user)
            if presence is not None:
                presence.groups.discard(group)
                presence.windows.pop(group, None)
        if members:
            self.bus.unwatch_group(group)

    def group_notice(self, event: GroupNotice) -> None:
        """Tell this node's devices of a group change (cmd 71), and apply a membership
        change: a removed member hears of it, then stops receiving the group at once."""
        body: dict[str, Any] = {"cmd": Cmd.GROUP_NOTICE, "event": event.event,
                                "groupid": event.group_id, "userid": event.user_id,
                                "by": event.by_id}
        if event.role:
            body["role"] = event.role
        if event.banned:
            body["banned"] = True
        if event.event == "joined":
            self.member_joined(event.group_id, event.user_id, event.since)
        if event.to:
            told = set(event.to)
        else:
            told = set(self.online_members.get(event.group_id, ())) | {event.user_id}
        for user in sorted(told):
            self._notify(user, body)
        if event.event in ("left", "removed"):
            self.member_left(event.group_id, event.user_id)

    def revoke_tokens(self, user: int, token_hashes: Collection[str] | None = None, *,
                      keep: str | None = None, reason: str = "logged out") -> int:
        """Close (TOKEN_REVOKED) `user`'s connections here opened with a token that is no longer
        valid: those of `token_hashes`, or, when it is None, every one but `keep`'s (a
        password change keeps the device that made it). The token was checked only at the
        upgrade, so without this an open connection would outlive its logout. Returns how
        many were closed."""
        presence = self.users.get(user)
        if presence is None:
            return 0
        closed = 0
        for session in list(presence.sessions.values()):
            token = session.token_hash
            if token_hashes is None:
                if token and token == keep:
                    continue
            elif token not in token_hashes:
                continue
            session.close_for(TOKEN_REVOKED, reason)
            closed += 1
        return closed

    # -- commands ---------------------------------------------------------------------

    async def receive(self, session: Session, text: str | bytes) -> None:
        """Handle one frame from a client; errors go back to it as ERROR frames."""
        if self._draining and session.id in self._draining:
            return  # closing once its messages are acked: nothing more is taken
        user = session.user_id
        try:
            command: Command | ChatError = parse(text, self.options.limits)
        except ChatError as error:
            command = error
        # A sync request is paced by what it costs (_pace_sync), not charged to the
        # message rate limit: a client that follows `more` page after page, as
        # docs/chat-protocol.md tells it to, must never be closed for it.
        if not isinstance(command, Sync):
            bucket = self._buckets.get(user)
            if bucket is not None and not bucket.take(self.clock()):
                self._close_after_answers(session, 1008, "message rate limit exceeded")
                return
            if self.shared is not None:
                if self._over and self._over_shared_limit(user):
                    self._close_after_answers(session, 1008, "message rate limit exceeded")
                    return
                counts = self._counts
                counts[user] = counts.get(user, 0) + 1
        try:
            if isinstance(command, ChatError):
                raise command
            if isinstance(command, Sync):
                await self._pace_sync(user)
            await self._dispatch(session, command)
        except ChatError as error:
            session.push(error.frame())
            if error.reason in ("bad_json", "bad_field", "unknown_cmd", "unknown_media"):
                strikes = self._strikes.get(session.id, 0) + 1
                self._strikes[session.id] = strikes
                if strikes > self.options.max_strikes:
                    self._close_after_answers(session, 1008, "too many malformed messages")
        except Exception as error:
            # The database failed a sync or a read mark: the client may ask again; the
            # connection, and everyone else's, goes on. A store closed under a command
            # in flight is a node shutting down (its clients reconnect elsewhere and ask
            # again): said in one line, not as a failure with its traceback.
            if isinstance(error, StoreError) and self._closed:
                log.info("a command of user %s came as the store closed", session.user_id)
            else:
                log.exception("a command of user %s failed", session.user_id)
            session.push(ChatError("unavailable", "the server could not do this now; "
                                   "try again").frame())

    async def _dispatch(self, session: Session, command: Command) -> None:
        if isinstance(command, ChatMessage):
            if command.media in (Media.VOICE, Media.FILE):
                # Who may write here first: a stranger learns nothing about the file.
                self._check_allowed(session.user_id, command.cmd, command.dstid, command.cid)
                command = await self._attachment(session.user_id, command)
            if command.reply_to is not None or command.mentions:
                await self._send_with_extras(session, command)
            else:
                self._send(session, command)
        elif isinstance(command, Change):
            await self._change(session, command)
        elif isinstance(command, Heartbeat):
            session.push('{"cmd":0}')
        elif isinstance(command, Sync):
            await self._sync(session, command)
        elif isinstance(command, Read):
            await self._read(session, command)
        elif isinstance(command, Typing):
            self._typing(session, command)

    def _check_allowed(self, user: int, kind: int, dstid: int, cid: str | None) -> None:
        presence = self.users.get(user)
        if kind == Cmd.SINGLE:
            if dstid == user:
                raise ChatError("not_friend", "you cannot message yourself", cid)
            if presence is None or dstid not in presence.friends:
                raise ChatError("not_friend", f"user {dstid} is not your friend", cid)
        elif presence is None or dstid not in presence.groups:
            raise ChatError("not_member", f"you are not a member of group {dstid}", cid)

    async def _send_with_extras(self, session: Session, message: ChatMessage) -> None:
        """A reply or a message with mentions: its quote and mentions are checked in the
        database first (the connection's frames are taken one after another, so its
        messages keep their order)."""
        user = session.user_id
        self._check_allowed(user, message.cmd, message.dstid, message.cid)
        extra = await self.store.prepare(prepare_message, user, message,
                                         conversation(message.cmd, user, message.dstid))
        self._send(session, message, extra)

    def _send(self, session: Session, message: ChatMessage,
              extra: dict[str, Any] | None = None) -> None:
        user = session.user_id
        self._check_allowed(user, message.cmd, message.dstid, message.cid)
        if self.images is not None:
            # A voice or file url was checked by `_attachment`.
            url = message.url if message.media not in (Media.VOICE, Media.FILE) else ""
            for name, link in (("url", url), ("pic", message.pic)):
                if link and (problem := self.images.problem(link)) is not None:
                    raise ChatError("bad_url", f"{name} {problem}", message.cid)
        item = NewMessage(sender=user, message=message, session_id=session.id,
                          conv=conversation(message.cmd, user, message.dstid),
                          ts=int(time.time() * 1000), extra=extra or None)
        try:
            self._commit.submit(item)
        except Busy as exc:
            raise ChatError("busy", str(exc), message.cid) from None
        unanswered = self._unanswered
        unanswered[session.id] = unanswered.get(session.id, 0) + 1

    async def _attachment(self, user: int, message: ChatMessage) -> ChatMessage:
        """A voice or file message with the server's figures: a recording's length as
        `amount`; a file's name as `memo` and its size as `amount`. Refused when the
        recording or file was not uploaded here, or the sender may not have the file."""
        check = self.attachments
        if check is None:
            return message
        if message.media == Media.VOICE:
            amount = await check.voice_amount(message.url)
            if amount is None:
                raise ChatError("bad_url", f"url {message.url} is not an uploaded voice "
                                "recording (upload it with /attach/upload and kind=voice)",
                                message.cid)
            return replace(message, amount=amount)
        found = await check.file_message(user, message.url)
        if isinstance(found, str):
            raise ChatError("bad_url", f"url {found}", message.cid)
        name, size = found
        return replace(message, memo=name, amount=size)

    def _stored(self, batch: Sequence[NewMessage], results: Sequence[StoredMessage]) -> None:
        """After the commit: ack each sender, deliver each new message, in id order."""
        drained: list[str] = []
        for item, stored in zip(batch, results, strict=True):
            message = item.message
            self._ack(item, stored)
            if self._answered(item.session_id):
                drained.append(item.session_id)
            unsure = bool(self._unsure) and self._was_unsure(item)
            if not stored.created and not unsure:
                continue  # a retry of a stored message: acked again, delivered once
            body = {
                "id": stored.id, "cid": message.cid, "userid": item.sender,
                "cmd": message.cmd, "dstid": message.dstid, "media": message.media,
                "content": message.content, "pic": message.pic, "url": message.url,
                "memo": message.memo, "amount": message.amount, "ts": stored.ts,
            }
            if item.extra:
                body.update(item.extra)
                if "mentions" in item.extra:
                    self._deliver_mentions(item, body, stored.id)
            self._to_conversation(item.sender, message.cmd, message.dstid, encode(body),
                                  skip_session=item.session_id, message_id=stored.id)
            if self.notifier is not None:
                self.notifier.message_stored(item.sender, message.cmd, message.dstid,
                                             stored.id, message.media, message.content,
                                             message.memo)
        self._close_drained(drained)

    def _deliver_mentions(self, item: NewMessage, body: dict[str, Any],
                          message_id: int) -> None:
        """The mentioned get the message with `mentioned: true`, before the group gets it
        without: a connection is sent each message id once, so the group's copy skips
        the devices that had theirs."""
        mentions = body["mentions"]
        if mentions == "all":
            # Everyone is called but the sender, whose devices get the plain copy first.
            self.bus.to_users([item.sender], encode(body), item.session_id, message_id)
            self.bus.to_group(item.message.dstid, encode({**body, "mentioned": True}),
                              item.sender, item.session_id, message_id)
            return
        called = [user for user in mentions if user != item.sender]
        if called:
            self.bus.to_users(called, encode({**body, "mentioned": True}),
                              item.session_id, message_id)

    async def _change(self, session: Session, command: Change) -> None:
        """Edit, recall, react or delete for me: the rules are checked and the change
        applied in one transaction; then the acting device gets its ack and every device
        of every reader (of the actor only, for a delete) the change, once each."""
        user = session.user_id
        presence = self.users.get(user)
        rules = Rules(self.options.lifecycle, presence.friends if presence else set(),
                      presence.groups if presence else set())
        key = (user, command.cid)
        try:
            result = await self.store.apply_change(
                request_of(user, command, int(time.time() * 1000)), rules.check)
        except ChangeRefused as refused:
            raise ChatError(refused.reason, refused.message, command.cid) from None
        except Exception:
            # The change may have committed all the same: its resend must deliver it.
            if command.cid is not None:
                self._unsure[key] = None
                if len(self._unsure) > UNSURE_KEPT:
                    del self._unsure[next(iter(self._unsure))]
            raise
        session.push(encode({"cmd": Cmd.ACK, "cid": command.cid, "id": command.id,
                             "change": result.change, "dup": result.dup}))
        if result.change is None:
            return  # nothing changed (a reaction already there, a delete done before)
        if result.dup:
            if key not in self._unsure:
                # A resend of an applied change: acked again, delivered once (as a
                # message is). Its readers got it live then, or get it from the log.
                return
            del self._unsure[key]
        extra = ({"emoji": command.emoji, "on": command.on}
                 if result.kind == REACT and not result.dup else None)
        frame = encode(change_frame(result.change, result.kind, user, result.view, extra))
        # A change goes to a connection once, like a message: its id is kept with the
        # message ids the connection was sent, negated so the two never meet.
        once = -result.change
        shown = result.view
        if result.kind == DELETE:
            self.bus.to_users([user], frame, None, once)
        elif shown.get("cmd") == Cmd.SINGLE:
            self.bus.to_users([shown["userid"], shown["dstid"]], frame, None, once)
        else:
            # Only to the members who may read the message: not to one who joined after
            # it was sent (its edit would show them its text).
            self.bus.to_group(shown["dstid"], frame, user, None, once, about=shown["id"])

    def _ack(self, item: NewMessage, stored: StoredMessage) -> None:
        presence = self.users.get(item.sender)
        session = presence.sessions.get(item.session_id) if presence else None
        if session is not None:
            # The sender holds the message now: a checkpoint sync need not send it back.
            session.first_send(stored.id)
            session.push(encode({"cmd": Cmd.ACK, "cid": item.message.cid, "id": stored.id,
                                 "ts": stored.ts, "dup": not stored.created}))

    def _was_unsure(self, item: NewMessage) -> bool:
        """Whether `item` resends a message answered store_failed (then forgotten)."""
        key = (item.sender, item.message.cid)
        if key not in self._unsure:
            return False
        del self._unsure[key]
        return True

    def _store_failed(self, batch: Sequence[NewMessage], error: BaseException) -> None:
        unsure = self._unsure
        for item in batch:
            if item.message.cid is not None:  # without a cid a resend is a new message
                unsure[(item.sender, item.message.cid)] = None
                if len(unsure) > UNSURE_KEPT:
                    del unsure[next(iter(unsure))]
            presence = self.users.get(item.sender)
            session = presence.sessions.get(item.session_id) if presence else None
            if session is not None:
                session.push(ChatError("store_failed", "the message could not be stored; "
                                       "send it again", item.message.cid).frame())
            if self._answered(item.session_id):
                self._close_drained((item.session_id,))

    # -- rate limits: per user, across devices and (with `shared`) across nodes --------

    def _close_after_answers(self, session: Session, code: int, reason: str) -> None:
        """Close `session` with `code` once every message it sent that is waiting for the
        database has its answer (ack or store_failed): at once when none is waiting.
        Until then nothing more it sends is taken."""
        if self._unanswered.get(session.id):
            self._draining.setdefault(session.id, (code, reason))
        else:
            session.close_for(code, reason)

    def _answered(self, session_id: str) -> bool:
        """One message of `session_id` has its answer; True when that was the last one a
        draining session waited for."""
        unanswered = self._unanswered
        left = unanswered.get(session_id, 0) - 1
        if left > 0:
            unanswered[session_id] = left
            return False
        unanswered.pop(session_id, None)
        return bool(self._draining) and session_id in self._draining

    def _close_drained(self, session_ids: Iterable[str]) -> None:
        for session_id in session_ids:
            closing = self._draining.pop(session_id, None)
            session = self._session(session_id)
            if closing is not None and session is not None:
                session.close_for(*closing)

    def _session(self, session_id: str) -> Session | None:
        for presence in self.users.values():
            session = presence.sessions.get(session_id)
            if session is not None:
                return session
        return None

    def _refilled(self, bucket: TokenBucket) -> bool:
        bucket.take(self.clock(), 0.0)
        return bucket.tokens >= bucket.burst

    def _sweep_buckets(self) -> None:
        """Forget the refilled buckets of users no longer here, once they pile up."""
        buckets = self._buckets
        if len(buckets) <= 2 * len(self.users) + 1024:
            return
        for user in [u for u, b in buckets.items()
                     if u not in self.users and self._refilled(b)]:
            del buckets[user]

    def _over_shared_limit(self, user: int) -> bool:
        until = self._over.get(user)
        if until is None:
            return False
        if self.clock() < until:
            return True
        del self._over[user]
        return False

    async def _flush_counts(self) -> None:
        """Hand the counts gathered since the last flush to the shared window, every
        `flush_every` seconds, and learn who is over the limit on all nodes."""
        shared = self.shared
        assert shared is not None
        warned = False
        while True:
            await asyncio.sleep(shared.flush_every)
            if not self._counts:
                continue
            counts, self._counts = self._counts, {}
            try:
                over, left = await shared.add(counts)
            except shared.unavailable as exc:
                # Each node's own bucket still applies; the shared count resumes later.
                if not warned:
                    log.warning("chat rate limit: Redis unavailable (%s); counting on "
                                "this node only", exc)
                    warned = True
                continue
            warned = False
            now = self.clock()
            if self._over:
                self._over = {u: t for u, t in self._over.items() if t > now}
            until = now + left
            for user in over:
                self._over[user] = until

    def _to_conversation(self, sender: int, kind: int, dstid: int, frame: str,
                         skip_session: str | None = None,
                         message_id: int | None = None) -> None:
        """Both sides of a 1:1 chat, or the group's members, and the sender's devices."""
        if kind == Cmd.SINGLE:
            self.bus.to_users([dstid, sender], frame, skip_session, message_id)
        else:
            self.bus.to_group(dstid, frame, sender, skip_session, message_id)

    async def _pace_sync(self, user: int) -> None:
        """Wait until `user` may have one more sync page (HubOptions.sync_rate): pages
        beyond the burst are owed, and each waits for the tokens it owes."""
        bucket = self._sync_buckets.get(user)
        if bucket is None:
            bucket = self._sync_buckets[user] = TokenBucket(
                self.options.sync_rate, self.options.sync_burst, self.clock())
        bucket.take(self.clock(), 0.0)  # refill up to now
        bucket.tokens -= 1.0
        if bucket.tokens < 0:
            await asyncio.sleep(-bucket.tokens / bucket.rate)

    async def _sync(self, session: Session, command: Sync) -> None:
        presence = self.users.get(session.user_id)
        groups = sorted(presence.groups) if presence else []
        latest = None
        if command.changes_since == 0 and command.since == 0:
            # A device with nothing yet gets every message as it is now: it starts the
            # change log from here (read first: a later change comes live or next time).
            # One that has a change cursor (it saw changes, but no message yet) goes on
            # from its cursor, or it would miss the changes in between.
            latest = await self.store.latest_change()
        # Leave out what this connection already got live (it may have arrived between
        # the connect and this sync, or the client asks again at its checkpoint, docs/
        # chat-protocol.md "The sync cursor") or in an earlier page: each message once
        # per connection; and those the user deleted for themselves.
        sent, sent_changes = session.sync_asked(command.since, command.changes_since)
        # And what the client says it holds (from an earlier connection): not again.
        page = await self.store.sync_page(session.user_id, groups, command.since,
                                          command.limit, sent | command.held)
        rows = [row for row in page.rows
                if session.first_sync(row["id"]) and not row.pop("hidden", False)]
        result: dict[str, Any] = {"cmd": Cmd.SYNC_RESULT, "since": command.since,
                                  "rows": rows, "more": page.more, "next": page.next}
        if page.head is not None:
            result["head"] = page.head
        if command.changes_since is not None:
            result.update(await self._sync_changes(session, groups, command, latest,
                                                   sent_changes))
        session.sync_paged(page.next, page.more or result.get("changes_more", False),
                           result.get("changes_next"))
        session.push(encode(result))

    async def _sync_changes(self, session: Session, groups: Sequence[int], command: Sync,
                            latest: int | None, sent: frozenset[int]) -> dict[str, Any]:
        """The changes part of a sync: the log after the client's cursor, oldest first,
        those this connection was sent live (`sent`, and any that came meanwhile)
        left out."""
        if latest is not None:
            return {"changes": [], "changes_more": False, "changes_next": latest}
        page = await self.store.change_page(session.user_id, groups,
                                            command.changes_since or 0, command.limit, sent)
        return {"changes": [c for c in page.rows if session.first_sync(-c["change"])],
                "changes_more": page.more, "changes_next": page.next}

    async def _read(self, session: Session, command: Read) -> None:
        user = session.user_id
        self._check_allowed(user, command.kind, command.dstid, None)
        upto = await self.store.mark_read(user, conversation(command.kind, user,
                                                             command.dstid), command.upto)
        receipt = encode({"cmd": Cmd.RECEIPT, "kind": command.kind, "dstid": command.dstid,
                          "userid": user, "upto": upto})
        self._to_conversation(user, command.kind, command.dstid, receipt)

    def _typing(self, session: Session, command: Typing) -> None:
        user = session.user_id
        self._check_allowed(user, command.kind, command.dstid, None)
        frame = encode({"cmd": Cmd.TYPING, "kind": command.kind, "dstid": command.dstid,
                        "userid": user})
        self._to_conversation(user, command.kind, command.dstid, frame,
                              skip_session=session.id)

    # -- delivery on this node ---------------------------------------------------------

    # A frame is prepared once (fastim.ws.prepare: header and payload encoded once) and
    # the same bytes go to every connection (session.fan_out). A group's recipients are
    # a list kept per group, so a message costs no walk over its members' presences; a
    # device that falls too far behind is closed after the loop, since closing it leaves
    # the hub (disconnect), which drops that list.

    def _membership_changed(self, groups: Iterable[int]) -> None:
        cache = self._group_sessions
        for group in groups:
            cache.pop(group, None)

    def _sessions_of(self, users: Iterable[int]) -> list[Session]:
        presences = self.users
        sessions: list[Session] = []
        for user in users:
            presence = presences.get(user)
            if presence is not None:  # offline here: the message waits in the store
                sessions.extend(presence.sessions.values())
        return sessions

    def deliver_to_users(self, users: Iterable[int], frame: str,
                         skip_session: str | None = None,
                         message_id: int | None = None) -> None:
        self._close_slow(fan_out(self._sessions_of(users), prepare(frame), skip_session,
                                 message_id))

    def deliver_to_group(self, group: int, frame: str, also: int | None = None,
                         skip_session: str | None = None,
                         message_id: int | None = None,
                         about: int | None = None) -> None:
        prepared = prepare(frame)
        members = self.online_members.get(group)
        if members is None:
            sessions: list[Session] = []
        else:
            cached = self._group_sessions.get(group)
            if cached is None:
                cached = self._group_sessions[group] = self._sessions_of(members)
            sessions = cached
        extra = [] if also is None or (members is not None and also in members) \
            else self._sessions_of((also,))
        if about is not None:
            # A change of message `about`: only to those whose window holds it.
            sessions = [s for s in sessions if self._reads(s.user_id, group, about)]
            extra = [s for s in extra if self._reads(s.user_id, group, about)]
        slow = fan_out(sessions, prepared, skip_session, message_id)
        if extra:
            slow += fan_out(extra, prepared, skip_session, message_id)
        self._close_slow(slow)

    def _reads(self, user: int, group: int, message_id: int) -> bool:
        """Whether `user`, a member of `group` with a device here, may read its message
        `message_id`: it was sent after their history window began."""
        presence = self.users.get(user)
        window = presence.windows.get(group) if presence is not None else None
        return window is not None and message_id > window

    @staticmethod
    def _close_slow(slow: Sequence[Session]) -> None:
        for session in slow:
            session.too_slow()

