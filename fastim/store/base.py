"""The async store interface shared by both backends.

A backend supplies three things: :meth:`Store._submit`, which runs a synchronous function
``fn(tx, *args)`` inside one transaction on one of its worker threads and returns its
result to the awaiting coroutine; :meth:`Store._open_sync`, which readies the database and
applies the migrations; and :meth:`Store._shutdown`, which stops its threads and closes its
connections. Everything else -- opening and closing, the domain queries and the migration
runner -- is written once here and in :mod:`fastim.store.queries`.

Other code (the chat hub) can run its own SQL in a transaction with::

    def insert_batch(tx: Tx, rows): tx.executemany("INSERT INTO messages ... VALUES (?, ?)", rows)
    await store.write(insert_batch, rows)

``read`` is for functions that only SELECT (on SQLite they run on the reader connections,
in parallel with the writer); ``write`` for anything that changes rows.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Protocol, TypeVar

from fastim.store import queries as q
from fastim.store.errors import SchemaError, StoreError, Unavailable
from fastim.store.migrations import MIGRATIONS, SCHEMA_VERSION_DDL, Migration
from fastim.store.records import (
    Credentials,
    FriendRequest,
    Group,
    Member,
    Page,
    RequestOutcome,
    Session,
    User,
)
from fastim.store.sql import Dialect, Tx

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Consecutive failures (Unavailable) of one kind of transaction that open its breaker.
BREAKER_THRESHOLD = 3
#: Seconds after a failed probe before an open breaker lets the next one through.
PROBE_INTERVAL = 1.0


def _now(now: int | None) -> int:
    return int(time.time()) if now is None else now


class CircuitBreaker:
    """Fail at once while the database is known to be away, instead of making every
    request wait for its own timeout.

    *Closed* (the usual state): transactions run; ``threshold`` consecutive failures
    (:class:`Unavailable`: the server is down, hung or unreachable) open it. *Open*: a
    transaction fails at once with :class:`Unavailable`, except the *half-open probe*:
    one transaction at a time, at most one per ``probe_interval`` seconds after a failed
    probe, runs. If it gets any answer from the database (an error of the statement
    included) the breaker closes; if it fails the breaker stays open. So on a hung server
    one request per timeout + ``probe_interval`` waits and the others get their 503 at
    once, and once the server is back, the breaker closes at the next request after
    ``probe_interval``.
    """

    def __init__(self, name: str, threshold: int = BREAKER_THRESHOLD,
                 probe_interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.threshold = threshold
        self.probe_interval = probe_interval
        self.clock = clock
        self.failures = 0  # consecutive
        self.probing = False
        self.next_probe = 0.0  # (clock) when an open breaker lets a probe through

    @property
    def open(self) -> bool:
        return self.failures >= self.threshold

    def before(self) -> bool:
        """Raise Unavailable if this transaction may not run now; True when it runs as
        the probe of an open breaker (pass it to the outcome's method)."""
        if self.failures < self.threshold:
            return False
        if self.probing or self.clock() < self.next_probe:
            raise Unavailable("the database is not answering; try again in a few seconds")
        self.probing = True
        return True

    def succeeded(self, probe: bool) -> None:
        if probe:
            self.probing = False
        if self.failures >= self.threshold:
            log.warning("the database answers %s again: circuit breaker closed", self.name)
        self.failures = 0

    def failed(self, probe: bool) -> None:
        if probe:
            self.probing = False
        self.failures += 1
        interval = PROBE_INTERVAL if self.probe_interval is None else self.probe_interval
        self.next_probe = self.clock() + interval
        if self.failures == self.threshold:
            log.warning("%d %s in a row failed: the database looks away; circuit breaker "
                        "open (a probe every %.1f s, the others get 503 at once)",
                        self.failures, self.name, interval)

    def abandoned(self, probe: bool) -> None:
        """The transaction was cancelled before its outcome was known."""
        if probe:
            self.probing = False


class Store(abc.ABC):
    """Async access to the database; one instance per process, shared by all requests."""

    dialect: Dialect
    #: the versions the last start-up applied (empty when the schema was already current)
    applied_migrations: list[int]
    #: the worker :meth:`open` runs :meth:`_open_sync` on (set by the backend)
    _opener: Executor

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.applied_migrations = []
        self._closed = False
        # One breaker for reads, one for writes: on SQLite another process's write lock
        # fails writes while reads go on.
        self.breakers = {False: CircuitBreaker("reads"), True: CircuitBreaker("writes")}

    # --- the backend's part ----------------------------------------------------------

    @abc.abstractmethod
    async def _submit(self, fn: Callable[..., T], args: Sequence[Any], *, write: bool) -> T:
        """Run ``fn(tx, *args)`` in one transaction on a worker thread; commit if it returns,
        roll back if it raises (and re-raise). Called only while the store is open."""

    @abc.abstractmethod
    def _open_sync(self, migrations: Sequence[Migration]) -> list[int]:
        """On the ``_opener`` worker: ready the database, apply pending ``migrations`` and
        return the versions applied."""

    @abc.abstractmethod
    def _shutdown(self) -> None:
        """On a thread of its own: wait for running jobs, then stop every worker thread and
        close every connection."""

    # --- life cycle ------------------------------------------------------------------

    async def open(self, migrations: Sequence[Migration]) -> None:
        """Ready the database and apply pending migrations; on failure, close what was
        opened and re-raise."""
        loop = asyncio.get_running_loop()
        try:
            self.applied_migrations = await loop.run_in_executor(
                self._opener, self._open_sync, migrations
            )
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Finish running jobs, close every connection and worker thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._shutdown)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    # --- transactions for any caller -------------------------------------------------

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(tx, *args)`` in a read-only transaction off the event loop."""
        if self._closed:
            raise StoreError("the store is closed")
        return await self._guarded(fn, args, write=False)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(tx, *args)`` in a read-write transaction off the event loop."""
        if self._closed:
            raise StoreError("the store is closed")
        return await self._guarded(fn, args, write=True)

    async def _guarded(self, fn: Callable[..., T], args: Sequence[Any], *, write: bool) -> T:
        """`_submit` behind the circuit breaker of its kind (:class:`CircuitBreaker`)."""
        breaker = self.breakers[write]
        probe = breaker.before()
        try:
            result = await self._submit(fn, args, write=write)
        except Unavailable:
            breaker.failed(probe)
            raise
        except asyncio.CancelledError:
            breaker.abandoned(probe)
            raise
        except BaseException:
            breaker.succeeded(probe)  # the database answered, with an error
            raise
        breaker.succeeded(probe)
        return result

    async def schema_versions(self) -> list[int]:
        """The migration versions recorded in ``schema_version``, ascending."""
        return await self.read(
            lambda tx: [
                int(r[0]) for r in tx.rows("SELECT version FROM schema_version ORDER BY version")
            ]
        )

    async def ping(self) -> None:
        """One round trip to the database; raises `Unavailable` when it cannot answer
        (the health check, `/healthz`)."""
        await self.read(q.ping)

    async def analyze(self) -> None:
        """Refresh the query planner's statistics (at start-up and hourly: the server
        runs this, see fastim/services.py)."""
        await self.write(q.analyze)

    async def server_variable(self, name: str) -> Any:
        """A server system variable (MySQL's ``@@name``); None on SQLite, which has none."""
        return await self.read(self.dialect.server_variable, name)

    # --- users -------------------------------------------------------------------------

    async def create_user(
        self,
        *,
        mobile: str,
        passwd: str,
        salt: str,
        kdf: str,
        nickname: str,
        avatar: str = "",
        sex: str = "U",
        memo: str = "",
        now: int | None = None,
    ) -> User:
        """Insert an account. Raises ``Duplicate("users.mobile")``."""
        return await self.write(
            q.create_user, mobile, passwd, salt, kdf, nickname, avatar, sex, memo, _now(now)
        )

    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""
        return await self.read(q.get_user, user_id)

    async def get_user_by_mobile(self, mobile: str) -> User | None:
        """The user with this mobile number, or None."""
        return await self.read(q.get_user_by_mobile, mobile)

    async def get_users(self, user_ids: Iterable[int]) -> list[User]:
        """The existing users among ``user_ids``, ordered by id."""
        return await self.read(q.get_users, list(user_ids))

    async def get_credentials(self, mobile: str) -> tuple[User, Credentials] | None:
        """A user and their password hash, by mobile number."""
        return await self.read(q.get_credentials, mobile)

    async def set_credentials(self, user_id: int, passwd: str, salt: str, kdf: str) -> bool:
        """Replace a user's password hash and KDF parameters."""
        return await self.write(q.set_credentials, user_id, passwd, salt, kdf)

    async def update_profile(self, user_id: int, changes: Mapping[str, str]) -> User | None:
        """Change some of nickname/avatar/sex/memo; return the updated user."""
        return await self.write(q.update_profile, user_id, dict(changes))

    async def count_users(self) -> int:
        """Number of accounts."""
        return await self.read(q.count_users)

    # --- tokens ------------------------------------------------------------------------

    async def save_token(
        self,
        user_id: int,
        token_hash: str,
        device: str,
        expires: int,
        *,
        now: int | None = None,
        max_sessions: int = 20,
    ) -> list[str]:
        """Store a login token (its hash) for a device, replacing that device's old one;
        return the hashes of the live tokens it replaced or pushed out."""
        return await self.write(
            q.save_token, user_id, token_hash, device, expires, _now(now), max_sessions
        )

    async def session_for_token(
        self, token_hash: str, *, now: int | None = None
    ) -> tuple[User, Session] | None:
        """The user and session of an unexpired token hash, or None."""
        return await self.read(q.session_for_token, token_hash, _now(now))

    async def delete_token(self, token_hash: str) -> bool:
        """Revoke one token; True if it existed."""
        return await self.write(q.delete_token, token_hash)

    async def delete_user_tokens(self, user_id: int, keep: str | None = None) -> int:
        """Revoke all of a user's tokens except the one whose hash is ``keep``."""
        return await self.write(q.delete_user_tokens, user_id, keep)

    async def purge_expired_tokens(self, *, now: int | None = None) -> int:
        """Delete expired tokens of every user."""
        return await self.write(q.purge_expired_tokens, _now(now))

    # --- friendships -------------------------------------------------------------------

    async def add_friendship(self, user_id: int, friend_id: int, *, now: int | None = None) -> None:
        """Make two users friends. Raises Refused("self"), Missing("user"),
        Duplicate("friendships")."""
        await self.write(q.add_friendship, user_id, friend_id, _now(now))

    async def list_friends(self, user_id: int, offset: int, limit: int) -> Page[User]:
        """One page of a user's friends, and the total."""
        return await self.read(q.list_friends, user_id, offset, limit)

    async def friend_ids(self, user_id: int) -> list[int]:
        """All of a user's friends' ids."""
        return await self.read(q.friend_ids, user_id)

    async def are_friends(self, user_id: int, other_id: int) -> bool:
        """Whether two users are friends."""
        return await self.read(q.are_friends, user_id, other_id)

    async def remove_friendship(self, user_id: int, friend_id: int) -> bool:
        """End a friendship (both sides); False when there was none."""
        return await self.write(q.remove_friendship, user_id, friend_id)

    # --- friend requests and blocks ------------------------------------------------------

    async def request_friend(
        self,
        from_id: int,
        *,
        to_id: int | None = None,
        to_mobile: str | None = None,
        ttl: int,
        per_day: int | None = None,
        now: int | None = None,
    ) -> RequestOutcome:
        """Ask a user (by id or mobile) to be friends; see `queries.request_friend`."""
        return await self.write(
            q.request_friend, from_id, to_id, to_mobile, _now(now), ttl, per_day
        )

    async def accept_request(
        self, user_id: int, request_id: int, *, now: int | None = None
    ) -> tuple[int, bool]:
        """Accept a request made to ``user_id``: (the asker, whether newly friends).
        Raises Missing("request")."""
        return await self.write(q.accept_request, user_id, request_id, _now(now))

    async def decline_request(self, user_id: int, request_id: int, *, now: int | None = None) -> None:
        """Decline a request made to ``user_id``. Raises Missing("request")."""
        await self.write(q.decline_request, user_id, request_id, _now(now))

    async def list_requests(
        self, user_id: int, offset: int, limit: int, *, now: int | None = None
    ) -> Page[FriendRequest]:
        """One page of a user's live friend requests, both ways, and the total."""
        return await self.read(q.list_requests, user_id, _now(now), offset, limit)

    async def purge_expired_requests(self, *, now: int | None = None) -> int:
        """Delete expired friend requests of every user."""
        return await self.write(q.purge_expired_requests, _now(now))

    async def block_user(self, owner_id: int, blocked_id: int, *, now: int | None = None) -> bool:
        """Block a user (ends a friendship; returns whether there was one). Raises
        Refused("self"), Missing("user")."""
        return await self.write(q.block_user, owner_id, blocked_id, _now(now))

    async def unblock_user(self, owner_id: int, blocked_id: int) -> bool:
        """Lift a block; False when there was none."""
        return await self.write(q.unblock_user, owner_id, blocked_id)

    async def list_blocked(self, owner_id: int, offset: int, limit: int) -> Page[User]:
        """One page of the users ``owner_id`` blocks, and the total."""
        return await self.read(q.list_blocked, owner_id, offset, limit)

    async def blocks(self, owner_id: int, other_id: int) -> bool:
        """Whether ``owner_id`` blocks ``other_id``."""
        return await self.read(q.blocks, owner_id, other_id)

    # --- groups -------------------------------------------------------------------

    async def create_group(
        self,
        owner_id: int,
        name: str,
        *,
        icon: str = "",
        memo: str = "",
        cate: int = 1,
        limit: int | None = None,
        now: int | None = None,
        name_key: str | None = None,
    ) -> Group:
        """Create a group; the owner is its first member. Raises Missing("user"),
        Refused("group_limit"), Duplicate("communities.name") (the name, or its
        ``name_key``, is taken)."""
        return await self.write(
            q.create_group, owner_id, name, icon, memo, cate, limit, _now(now), name_key
        )

    async def get_group(self, group_id: int) -> Group | None:
        """The group with this id, or None."""
        return await self.read(q.get_group, group_id)

    async def get_group_by_name(self, name: str) -> Group | None:
        """The group with this exact name, or None."""
        return await self.read(q.get_group_by_name, name)

    async def get_group_by_name_key(self, name_key: str) -> Group | None:
        """The group whose name has this key (the hash of its skeleton), or None."""
        return await self.read(q.get_group_by_name_key, name_key)

    async def groups_without_name_key(self, after_id: int = 0,
                                      limit: int = 500) -> list[tuple[int, str]]:
        """(id, name) of groups that have no name key yet, oldest first."""
        return await self.read(q.groups_without_name_key, after_id, limit)

    async def set_group_name_key(self, group_id: int, name_key: str) -> None:
        """Give a group its name key. Raises Duplicate("communities.name_key")."""
        await self.write(q.set_group_name_key, group_id, name_key)

    async def add_member(
        self, group_id: int, user_id: int, *, now: int | None = None
    ) -> Group:
        """Join a user to a group. Raises Missing("group"|"user"),
        Duplicate("memberships")."""
        return await self.write(q.add_member, group_id, user_id, _now(now))

    async def remove_member(self, group_id: int, user_id: int) -> None:
        """Take a member out. Raises Missing("group"), Refused("not_member"|
        "owner_cannot_leave")."""
        await self.write(q.remove_member, group_id, user_id)

    async def dissolve_group(self, group_id: int, owner_id: int) -> list[int]:
        """Delete a group (owner only); return the ids of its former members."""
        return await self.write(q.dissolve_group, group_id, owner_id)

    async def transfer_group(
        self, group_id: int, owner_id: int, new_owner_id: int, *, limit: int | None = None
    ) -> Group:
        """Hand a group to another member (owner only)."""
        return await self.write(q.transfer_group, group_id, owner_id, new_owner_id, limit)

    async def list_members(self, group_id: int, offset: int, limit: int) -> Page[Member]:
        """One page of a group's members (owner first), and the total."""
        return await self.read(q.list_members, group_id, offset, limit)

    async def list_user_groups(self, user_id: int, offset: int, limit: int) -> Page[Group]:
        """One page of the groups a user belongs to, and the total."""
        return await self.read(q.list_user_groups, user_id, offset, limit)

    async def member_ids(self, group_id: int) -> list[int]:
        """All member ids of a group."""
        return await self.read(q.member_ids, group_id)

    async def group_ids(self, user_id: int) -> list[int]:
        """All ids of the groups a user belongs to."""
        return await self.read(q.group_ids, user_id)

    async def is_member(self, group_id: int, user_id: int) -> bool:
        """Whether a user belongs to a group."""
        return await self.read(q.is_member, group_id, user_id)


class Transaction(Protocol):
    """Runs ``fn(tx)`` in one transaction on one connection, commits, returns its result."""

    def __call__(self, fn: Callable[[Tx], T], /) -> T: ...


def _migration_step(migration: Migration, dialect: str) -> Callable[[Tx], bool]:
    """One migration as a transaction's work: False when another process applied it."""

    def step(tx: Tx) -> bool:
        if tx.row("SELECT 1 FROM schema_version WHERE version = ?", (migration.version,)):
            return False  # another process applied it meanwhile
        for statement in migration.statements(dialect):
            if isinstance(statement, str):
                tx.execute(statement)
            else:
                statement(tx)
        tx.execute(
            "INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)",
            (migration.version, migration.name, int(time.time())),
        )
        return True

    return step


def apply_migrations(
    transaction: Transaction,
    dialect: str,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> list[int]:
    """Bring a database to the newest schema; return the versions applied now.

    ``transaction(fn)`` must run ``fn(tx)`` in one transaction on one connection and commit.
    The caller holds whatever lock keeps two processes from migrating at once; each step
    also re-checks ``schema_version`` inside its own transaction, so a step is never
    applied twice.
    """
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise SchemaError(f"migration versions must be unique and ascending: {versions}")
    transaction(lambda tx: tx.execute(SCHEMA_VERSION_DDL[dialect]))
    recorded = set(
        transaction(lambda tx: [int(r[0]) for r in tx.rows("SELECT version FROM schema_version")])
    )
    unknown = recorded - set(versions)
    if unknown:
        raise SchemaError(
            f"the database has schema versions {sorted(unknown)} this fastim does not know;"
            " it was written by a newer fastim"
        )
    applied: list[int] = []
    for migration in migrations:
        if migration.version in recorded:
            continue
        if transaction(_migration_step(migration, dialect)):
            applied.append(migration.version)
    return applied
