"""The store's SQL, as plain functions of a :class:`~fastim.store.sql.Tx`.

Each function runs inside ONE transaction opened by the caller (``Store.read`` or
``Store.write``) on a worker thread; none of them touches the event loop. Rules that must
hold under concurrency are enforced here, inside the transaction, by unique keys or by row
locks (``tx.dialect.for_update``: ``FOR UPDATE`` on MySQL; SQLite needs none because the
store has a single writer connection, see ``fastim.store.sqlite``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastim.store.errors import Duplicate, IntegrityViolation, Missing, Refused
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
from fastim.store.sql import Tx

USER_COLUMNS = "u.id, u.mobile, u.nickname, u.avatar, u.sex, u.memo, u.created"
GROUP_COLUMNS = "c.id, c.name, c.owner_id, c.icon, c.memo, c.cate, c.created"
# Columns a profile update may change (names never come from the request).
PROFILE_COLUMNS = ("nickname", "avatar", "sex", "memo")
# Large IN (...) lists are split so no statement exceeds SQLite's variable limit.
IN_CHUNK = 500


def _user(row: tuple[Any, ...]) -> User:
    return User(
        id=int(row[0]),
        mobile=row[1],
        nickname=row[2],
        avatar=row[3],
        sex=row[4],
        memo=row[5],
        created=int(row[6]),
    )


def _group(row: tuple[Any, ...]) -> Group:
    return Group(
        id=int(row[0]),
        name=row[1],
        owner_id=int(row[2]),
        icon=row[3],
        memo=row[4],
        cate=int(row[5]),
        created=int(row[6]),
    )


def _ids(rows: Iterable[tuple[Any, ...]]) -> list[int]:
    return [int(r[0]) for r in rows]


# --- users -----------------------------------------------------------------------------


def create_user(
    tx: Tx,
    mobile: str,
    passwd: str,
    salt: str,
    kdf: str,
    nickname: str,
    avatar: str,
    sex: str,
    memo: str,
    now: int,
) -> User:
    """Insert an account; the unique key on ``mobile`` (not a prior SELECT) refuses twins."""
    try:
        user_id = tx.insert(
            "INSERT INTO users (mobile, passwd, salt, kdf, nickname, avatar, sex, memo, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (mobile, passwd, salt, kdf, nickname, avatar, sex, memo, now),
        )
    except IntegrityViolation as v:
        if v.kind == "unique":
            raise Duplicate("users.mobile") from None
        raise
    return User(user_id, mobile, nickname, avatar, sex, memo, now)


def get_user(tx: Tx, user_id: int) -> User | None:
    """The user with this id, or None."""
    row = tx.row(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?", (user_id,))
    return None if row is None else _user(row)


def get_user_by_mobile(tx: Tx, mobile: str) -> User | None:
    """The user with this mobile number, or None."""
    row = tx.row(f"SELECT {USER_COLUMNS} FROM users u WHERE u.mobile = ?", (mobile,))
    return None if row is None else _user(row)


def get_users(tx: Tx, user_ids: Iterable[int]) -> list[User]:
    """The users with these ids that exist, ordered by id."""
    wanted = sorted(set(user_ids))
    found: list[User] = []
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        found.extend(
            _user(r)
            for r in tx.rows(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id IN ({marks})", chunk)
        )
    found.sort(key=lambda u: u.id)
    return found


def get_credentials(tx: Tx, mobile: str) -> tuple[User, Credentials] | None:
    """The user with this mobile number and their password hash, or None."""
    row = tx.row(
        f"SELECT {USER_COLUMNS}, u.passwd, u.salt, u.kdf FROM users u WHERE u.mobile = ?",
        (mobile,),
    )
    if row is None:
        return None
    user = _user(row)
    return user, Credentials(user.id, row[7], row[8], row[9])


def set_credentials(tx: Tx, user_id: int, passwd: str, salt: str, kdf: str) -> bool:
    """Replace a user's password hash (e.g. re-hashed with stronger KDF parameters)."""
    changed = tx.execute(
        "UPDATE users SET passwd = ?, salt = ?, kdf = ? WHERE id = ?",
        (passwd, salt, kdf, user_id),
    )
    return changed > 0


def update_profile(tx: Tx, user_id: int, changes: Mapping[str, str]) -> User | None:
    """Set some of nickname/avatar/sex/memo; return the updated user (None if unknown)."""
    columns = [c for c in PROFILE_COLUMNS if c in changes]
    if columns:
        assignments = ", ".join(f"{c} = ?" for c in columns)
        tx.execute(
            f"UPDATE users SET {assignments} WHERE id = ?",
            [changes[c] for c in columns] + [user_id],
        )
    return get_user(tx, user_id)


def ping(tx: Tx) -> None:
    """A round trip to the database (the health check)."""
    tx.value("SELECT 1")


#: Tables whose statistics the planner needs (MySQL's ANALYZE TABLE names them).
ANALYZED_TABLES = ("messages", "read_marks", "friendships", "memberships", "communities",
                   "users", "tokens", "friend_requests", "blocks")


def analyze(tx: Tx) -> None:
    """Refresh the planner's statistics, so it knows which index narrows a range most.
    SQLite: ANALYZE reading at most about 1,000 rows of each index (``analysis_limit``,
    so it takes milliseconds on any size). MySQL: ANALYZE TABLE, which samples a few
    InnoDB pages per index."""
    if tx.dialect.name == "sqlite":
        tx.execute("PRAGMA analysis_limit = 1000")
        tx.execute("ANALYZE")
    else:
        tx.rows(f"ANALYZE TABLE {', '.join(ANALYZED_TABLES)}")


def count_users(tx: Tx) -> int:
    """How many accounts exist."""
    return int(tx.value("SELECT COUNT(*) FROM users"))


# --- tokens ----------------------------------------------------------------------------


def save_token(
    tx: Tx,
    user_id: int,
    token_hash: str,
    device: str,
    expires: int,
    now: int,
    max_sessions: int,
) -> list[str]:
    """Store a login token for ``device``, replacing that device's previous token.

    Expired tokens of the user are dropped, and so are the oldest ones beyond
    ``max_sessions`` so that logins without a device name cannot pile up rows. Returns
    the hashes of the unexpired tokens this login replaced or pushed out, so that what
    they opened (a /chat connection) can be closed too.
    """
    tx.execute("DELETE FROM tokens WHERE user_id = ? AND expires <= ?", (user_id, now))
    dropped = [row[0] for row in tx.rows(
        "SELECT token_hash FROM tokens WHERE user_id = ? AND device = ?", (user_id, device))]
    # Delete-then-insert gives the new token a new (newest) id; the upsert covers a
    # concurrent login on the same device that inserted in between.
    tx.execute("DELETE FROM tokens WHERE user_id = ? AND device = ?", (user_id, device))
    tx.execute(
        tx.dialect.upsert(
            "tokens",
            ("token_hash", "user_id", "device", "expires", "created"),
            key=("user_id", "device"),
        ),
        (token_hash, user_id, device, expires, now),
    )
    surplus = tx.rows(
        "SELECT id, token_hash FROM tokens WHERE user_id = ?"
        " ORDER BY id DESC LIMIT 100000 OFFSET ?",
        (user_id, max_sessions),
    )
    for old, old_hash in surplus:
        tx.execute("DELETE FROM tokens WHERE id = ?", (old,))
        dropped.append(old_hash)
    return [str(h) for h in dropped if h != token_hash]


def session_for_token(tx: Tx, token_hash: str, now: int) -> tuple[User, Session] | None:
    """The user and session a token hash belongs to, if it exists and has not expired."""
    row = tx.row(
        f"SELECT {USER_COLUMNS}, t.device, t.expires, t.created"
        " FROM tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = ? AND t.expires > ?",
        (token_hash, now),
    )
    if row is None:
        return None
    user = _user(row)
    return user, Session(token_hash, user.id, row[7], int(row[8]), int(row[9]))


def delete_token(tx: Tx, token_hash: str) -> bool:
    """Revoke one token; True if it existed."""
    return tx.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash,)) > 0


def delete_user_tokens(tx: Tx, user_id: int, keep: str | None = None) -> int:
    """Revoke every token of a user except ``keep`` (a token hash); return how many."""
    if keep is None:
        return tx.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
    return tx.execute("DELETE FROM tokens WHERE user_id = ? AND token_hash <> ?", (user_id, keep))


def purge_expired_tokens(tx: Tx, now: int) -> int:
    """Delete every expired token; return how many."""
    return tx.execute("DELETE FROM tokens WHERE expires <= ?", (now,))


# --- friendships -----------------------------------------------------------------------


def add_friendship(tx: Tx, user_id: int, friend_id: int, now: int) -> None:
    """Make two users friends (both directions, one transaction), without a request: for
    scripts and benchmarks; the app's way is `request_friend` and `accept_request`.

    Raises Refused("self"), Missing("user"), or Duplicate("friendships") when they already are.
    """
    if user_id == friend_id:
        raise Refused("self")
    existing = tx.value("SELECT COUNT(*) FROM users WHERE id IN (?, ?)", (user_id, friend_id))
    if int(existing) != 2:
        raise Missing("user")
    _befriend(tx, user_id, friend_id, now)


def _befriend(tx: Tx, user_id: int, friend_id: int, now: int) -> None:
    low, high = sorted((user_id, friend_id))
    try:
        # Lower id first: concurrent requests for one pair, from either side, conflict on
        # this same key, so one wins and the other gets the duplicate (no lock cycle).
        tx.execute(
            "INSERT INTO friendships (owner_id, dst_id, created) VALUES (?, ?, ?)",
            (low, high, now),
        )
        tx.execute(
            "INSERT INTO friendships (owner_id, dst_id, created) VALUES (?, ?, ?)",
            (high, low, now),
        )
    except IntegrityViolation as v:
        if v.kind == "unique":
            raise Duplicate("friendships") from None
        raise


def remove_friendship(tx: Tx, user_id: int, friend_id: int) -> bool:
    """End a friendship, both rows at once; False when they were not friends."""
    removed = tx.execute(
        "DELETE FROM friendships WHERE (owner_id = ? AND dst_id = ?) OR (owner_id = ? AND dst_id = ?)",
        (user_id, friend_id, friend_id, user_id),
    )
    return removed > 0


def list_friends(tx: Tx, user_id: int, offset: int, limit: int) -> Page[User]:
    """One page of a user's friends, ordered by id, and how many there are in all."""
    rows = tx.rows(
        f"SELECT {USER_COLUMNS} FROM friendships f JOIN users u ON u.id = f.dst_id"
        # f.dst_id (= u.id): the friendships key gives that order, with no sort.
        " WHERE f.owner_id = ? ORDER BY f.dst_id LIMIT ? OFFSET ?",
        (user_id, limit, offset),
    )
    total = tx.value("SELECT COUNT(*) FROM friendships WHERE owner_id = ?", (user_id,))
    return Page([_user(r) for r in rows], int(total))


def friend_ids(tx: Tx, user_id: int) -> list[int]:
    """Ids of all of a user's friends, ascending."""
    return _ids(
        tx.rows("SELECT dst_id FROM friendships WHERE owner_id = ? ORDER BY dst_id", (user_id,))
    )


def are_friends(tx: Tx, user_id: int, other_id: int) -> bool:
    """Whether the two users are friends."""
    return (
        tx.row("SELECT 1 FROM friendships WHERE owner_id = ? AND dst_id = ?", (user_id, other_id))
        is not None
    )


def count_friendships(tx: Tx) -> int:
    """Number of friendship rows (two per friendship)."""
    return int(tx.value("SELECT COUNT(*) FROM friendships"))


# --- groups -----------------------------------------------------------------------


def _lock_user(tx: Tx, user_id: int) -> None:
    # Serialises the owner's own "how many groups do I own" checks on MySQL.
    if tx.row(f"SELECT id FROM users WHERE id = ?{tx.dialect.for_update}", (user_id,)) is None:
        raise Missing("user")


def _owned_count(tx: Tx, user_id: int) -> int:
    return int(tx.value("SELECT COUNT(*) FROM communities WHERE owner_id = ?", (user_id,)))


def create_group(
    tx: Tx,
    owner_id: int,
    name: str,
    icon: str,
    memo: str,
    cate: int,
    limit: int | None,
    now: int,
    name_key: str | None = None,
) -> Group:
    """Create a group owned by ``owner_id``, who becomes its first member.

    Raises Missing("user"), Refused("group_limit") when the owner already owns ``limit``
    groups, Duplicate("communities.name") when the name is taken, or another group's
    ``name_key`` (the hash of its name's skeleton, computed by the caller) is the same.
    """
    _lock_user(tx, owner_id)
    if limit is not None and _owned_count(tx, owner_id) >= limit:
        raise Refused("group_limit")
    try:
        group_id = tx.insert(
            "INSERT INTO communities (name, owner_id, icon, memo, cate, created, name_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, owner_id, icon, memo, cate, now, name_key),
        )
    except IntegrityViolation as v:
        if v.kind == "unique":
            raise Duplicate("communities.name") from None
        raise
    tx.execute(
        "INSERT INTO memberships (community_id, user_id, role, joined) VALUES (?, ?, 'owner', ?)",
        (group_id, owner_id, now),
    )
    return Group(group_id, name, owner_id, icon, memo, cate, now)


def get_group(tx: Tx, group_id: int) -> Group | None:
    """The group with this id, or None."""
    row = tx.row(f"SELECT {GROUP_COLUMNS} FROM communities c WHERE c.id = ?", (group_id,))
    return None if row is None else _group(row)


def get_group_by_name(tx: Tx, name: str) -> Group | None:
    """The group with exactly this name, or None."""
    row = tx.row(f"SELECT {GROUP_COLUMNS} FROM communities c WHERE c.name = ?", (name,))
    return None if row is None else _group(row)


def get_group_by_name_key(tx: Tx, name_key: str) -> Group | None:
    """The group whose name has this key (the hash of its skeleton), or None."""
    row = tx.row(f"SELECT {GROUP_COLUMNS} FROM communities c WHERE c.name_key = ?",
                 (name_key,))
    return None if row is None else _group(row)


def groups_without_name_key(tx: Tx, after_id: int, limit: int) -> list[tuple[int, str]]:
    """(id, name) of groups made before names had keys, oldest first, after ``after_id``."""
    return [(int(r[0]), r[1]) for r in tx.rows(
        "SELECT id, name FROM communities WHERE name_key IS NULL AND id > ?"
        " ORDER BY id LIMIT ?", (after_id, limit))]


def set_group_name_key(tx: Tx, group_id: int, name_key: str) -> None:
    """Give an older group its name key. Raises Duplicate("communities.name_key") when
    another group already has it (two old names that look alike)."""
    try:
        tx.execute("UPDATE communities SET name_key = ? WHERE id = ?", (name_key, group_id))
    except IntegrityViolation as v:
        if v.kind == "unique":
            raise Duplicate("communities.name_key") from None
        raise


def add_member(tx: Tx, group_id: int, user_id: int, now: int) -> Group:
    """Add a user to a group as a member; return the group.

    Raises Missing("group"), Missing("user"), Duplicate("memberships").
    """
    group = get_group(tx, group_id)
    if group is None:
        raise Missing("group")
    try:
        tx.execute(
            "INSERT INTO memberships (community_id, user_id, role, joined)"
            " VALUES (?, ?, 'member', ?)",
            (group_id, user_id, now),
        )
    except IntegrityViolation as v:
        if v.kind == "unique":
            raise Duplicate("memberships") from None
        if v.kind == "foreign_key":
            # The group was checked above, so the user is the missing one (or the
            # group was dissolved in between, which reads the same to the caller).
            raise Missing("user") from None
        raise
    return group


def _membership_role(tx: Tx, group_id: int, user_id: int) -> str | None:
    role: str | None = tx.value(
        "SELECT role FROM memberships WHERE community_id = ? AND user_id = ?"
        f"{tx.dialect.for_update}",
        (group_id, user_id),
    )
    return role


def remove_member(tx: Tx, group_id: int, user_id: int) -> None:
    """Take a member out of a group.

    Raises Missing("group"), Refused("not_member"), Refused("owner_cannot_leave").
    """
    role = _membership_role(tx, group_id, user_id)
    if role is None:
        if get_group(tx, group_id) is None:
            raise Missing("group")
        raise Refused("not_member")
    if role == "owner":
        raise Refused("owner_cannot_leave")
    tx.execute(
        "DELETE FROM memberships WHERE community_id = ? AND user_id = ?", (group_id, user_id)
    )


def _lock_owned_group(tx: Tx, group_id: int, user_id: int) -> Group:
    row = tx.row(
        f"SELECT {GROUP_COLUMNS} FROM communities c WHERE c.id = ?{tx.dialect.for_update}",
        (group_id,),
    )
    if row is None:
        raise Missing("group")
    group = _group(row)
    if group.owner_id != user_id:
        raise Refused("not_owner")
    return group


def dissolve_group(tx: Tx, group_id: int, owner_id: int) -> list[int]:
    """Delete a group and its memberships; only its owner may. Return the member ids.

    Raises Missing("group"), Refused("not_owner").
    """
    _lock_owned_group(tx, group_id, owner_id)
    members = member_ids(tx, group_id)
    tx.execute("DELETE FROM memberships WHERE community_id = ?", (group_id,))
    tx.execute("DELETE FROM communities WHERE id = ?", (group_id,))
    return members


def transfer_group(
    tx: Tx, group_id: int, owner_id: int, new_owner_id: int, limit: int | None
) -> Group:
    """Hand a group over to another of its members; return the updated group.

    Raises Missing("group"), Refused("not_owner"), Refused("not_member") when the new
    owner is not a member, Refused("group_limit") when they already own ``limit`` groups.
    """
    group = _lock_owned_group(tx, group_id, owner_id)
    if new_owner_id == owner_id:
        return group
    if _membership_role(tx, group_id, new_owner_id) is None:
        raise Refused("not_member")
    _lock_user(tx, new_owner_id)
    if limit is not None and _owned_count(tx, new_owner_id) >= limit:
        raise Refused("group_limit")
    tx.execute("UPDATE communities SET owner_id = ? WHERE id = ?", (new_owner_id, group_id))
    tx.execute(
        "UPDATE memberships SET role = 'member' WHERE community_id = ? AND user_id = ?",
        (group_id, owner_id),
    )
    tx.execute(
        "UPDATE memberships SET role = 'owner' WHERE community_id = ? AND user_id = ?",
        (group_id, new_owner_id),
    )
    updated = get_group(tx, group_id)
    assert updated is not None
    return updated


def list_members(tx: Tx, group_id: int, offset: int, limit: int) -> Page[Member]:
    """One page of a group's members (owner first, then by join time) and the total."""
    rows = tx.rows(
        f"SELECT {USER_COLUMNS}, m.role, m.joined"
        " FROM memberships m JOIN users u ON u.id = m.user_id"
        " WHERE m.community_id = ?"
        " ORDER BY CASE m.role WHEN 'owner' THEN 0 ELSE 1 END, m.joined, u.id"
        " LIMIT ? OFFSET ?",
        (group_id, limit, offset),
    )
    total = tx.value("SELECT COUNT(*) FROM memberships WHERE community_id = ?", (group_id,))
    return Page([Member(_user(r), r[7], int(r[8])) for r in rows], int(total))


def list_user_groups(tx: Tx, user_id: int, offset: int, limit: int) -> Page[Group]:
    """One page of the groups a user belongs to, ordered by id, and the total."""
    rows = tx.rows(
        f"SELECT {GROUP_COLUMNS}"
        " FROM memberships m JOIN communities c ON c.id = m.community_id"
        # m.community_id (= c.id): ix_memberships_user_group gives that order.
        " WHERE m.user_id = ? ORDER BY m.community_id LIMIT ? OFFSET ?",
        (user_id, limit, offset),
    )
    total = tx.value("SELECT COUNT(*) FROM memberships WHERE user_id = ?", (user_id,))
    return Page([_group(r) for r in rows], int(total))


def member_ids(tx: Tx, group_id: int) -> list[int]:
    """Ids of all members of a group, ascending."""
    return _ids(
        tx.rows(
            "SELECT user_id FROM memberships WHERE community_id = ? ORDER BY user_id",
            (group_id,),
        )
    )


def group_ids(tx: Tx, user_id: int) -> list[int]:
    """Ids of all groups a user belongs to, ascending."""
    return _ids(
        tx.rows(
            "SELECT community_id FROM memberships WHERE user_id = ? ORDER BY community_id",
            (user_id,),
        )
    )


def is_member(tx: Tx, group_id: int, user_id: int) -> bool:
    """Whether the user belongs to the group."""
    return (
        tx.row(
            "SELECT 1 FROM memberships WHERE community_id = ? AND user_id = ?",
            (group_id, user_id),
        )
        is not None
    )


# --- friend requests and blocks ----------------------------------------------------------

#: The window of the per-user friend request quota, seconds.
DAY = 24 * 3600


def _blocks(tx: Tx, owner_id: int, other_id: int) -> bool:
    return (
        tx.row("SELECT 1 FROM blocks WHERE owner_id = ? AND blocked_id = ?", (owner_id, other_id))
        is not None
    )


def _forget_requests_between(tx: Tx, a: int, b: int) -> None:
    tx.execute(
        "DELETE FROM friend_requests WHERE (from_id = ? AND to_id = ?) OR (from_id = ? AND to_id = ?)",
        (a, b, b, a),
    )


def request_friend(
    tx: Tx,
    from_id: int,
    to_id: int | None,
    to_mobile: str | None,
    now: int,
    ttl: int,
    per_day: int | None,
) -> RequestOutcome:
    """Ask user ``to_id``, or whoever has mobile ``to_mobile``, to be friends.

    The outcome is "requested" for a new request, a repeat, a number without an account
    and a user who blocks the asker alike (a request to a blocker is stored declined: it
    looks pending to the asker, its target never sees it); "friends" when they are
    already, or when the target had asked the asker (that request is accepted). Only a
    new row counts against ``per_day`` (rows created in the last day), so whether the
    quota bites depends on the asker's own requests, never on the target.

    Raises Missing("user") for an unknown ``to_id`` (ids are not secret), Refused("self"),
    Refused("you_block") when the asker blocks the target, Refused("throttled").
    """
    target: int | None = to_id
    if to_id is not None:
        if tx.row("SELECT id FROM users WHERE id = ?", (to_id,)) is None:
            raise Missing("user")
    elif to_mobile is not None:
        found = tx.value("SELECT id FROM users WHERE mobile = ?", (to_mobile,))
        target = None if found is None else int(found)
    if target == from_id:
        raise Refused("self")
    # Row locks on MySQL, lower id first: the asker's serialise their quota checks, and
    # both of a pair's make two people asking each other at once one friendship, not
    # two requests (SQLite has one writer).
    for user in sorted({from_id} if target is None else {from_id, target}):
        _lock_user(tx, user)
    tx.execute("DELETE FROM friend_requests WHERE from_id = ? AND expires <= ?", (from_id, now))
    if target is not None:
        if are_friends(tx, from_id, target):
            return RequestOutcome("friends", target)
        if _blocks(tx, from_id, target):
            raise Refused("you_block")
        theirs = tx.row(
            "SELECT id FROM friend_requests WHERE from_id = ? AND to_id = ? AND expires > ?"
            f"{tx.dialect.for_update}",
            (target, from_id, now),
        )
        if theirs is not None and not _blocks(tx, target, from_id):
            _befriend(tx, from_id, target, now)
            _forget_requests_between(tx, from_id, target)
            return RequestOutcome("friends", target, befriended=target)
        if tx.row(
            "SELECT id FROM friend_requests WHERE from_id = ? AND to_id = ?", (from_id, target)
        ) is not None:
            return RequestOutcome("requested", target)
    hidden = target is not None and _blocks(tx, target, from_id)
    state = "declined" if hidden else "pending"
    if to_mobile is not None:
        earlier = tx.row(
            "SELECT id, to_id FROM friend_requests WHERE from_id = ? AND to_mobile = ?",
            (from_id, to_mobile),
        )
        if earlier is not None:
            if earlier[1] is None and target is not None:
                # Asked before the number had an account; it has one now: deliver.
                tx.execute(
                    "UPDATE friend_requests SET to_id = ?, state = ? WHERE id = ?",
                    (target, state, earlier[0]),
                )
                return RequestOutcome("requested", target,
                                      delivered=None if hidden else int(earlier[0]))
            return RequestOutcome("requested", target)
    if per_day is not None:
        recent = tx.rows(
            "SELECT created FROM friend_requests WHERE from_id = ? AND created > ?"
            " ORDER BY created LIMIT ?",
            (from_id, now - DAY, per_day),
        )
        if len(recent) >= per_day:
            raise Refused("throttled", retry_after=max(1, int(recent[0][0]) + DAY - now))
    try:
        request_id = tx.insert(
            "INSERT INTO friend_requests (from_id, to_id, to_mobile, state, created, expires)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (from_id, target, to_mobile, state, now, now + ttl),
        )
    except IntegrityViolation as v:
        if v.kind in ("unique", "foreign_key"):
            # A concurrent repeat got there first, or the target was just deleted.
            return RequestOutcome("requested", target)
        raise
    return RequestOutcome("requested", target, delivered=None if hidden else request_id)


def accept_request(tx: Tx, user_id: int, request_id: int, now: int) -> tuple[int, bool]:
    """Accept a pending request made to ``user_id``: the two become friends and every
    request between them is gone. Returns the asker and whether the friendship is new.

    Raises Missing("request") for a request that is not pending for this user (unknown,
    someone else's, declined, expired).
    """
    row = tx.row(
        "SELECT from_id FROM friend_requests WHERE id = ? AND to_id = ? AND state = 'pending'"
        f" AND expires > ?{tx.dialect.for_update}",
        (request_id, user_id, now),
    )
    if row is None:
        raise Missing("request")
    asker = int(row[0])
    try:
        _befriend(tx, user_id, asker, now)
        new = True
    except Duplicate:
        new = False
    _forget_requests_between(tx, user_id, asker)
    return asker, new


def decline_request(tx: Tx, user_id: int, request_id: int, now: int) -> None:
    """Decline a pending request made to ``user_id``. It stays, declined, until it expires:
    its asker still sees it pending and cannot ask again meanwhile.

    Raises Missing("request") like `accept_request`.
    """
    changed = tx.execute(
        "UPDATE friend_requests SET state = 'declined'"
        " WHERE id = ? AND to_id = ? AND state = 'pending' AND expires > ?",
        (request_id, user_id, now),
    )
    if changed == 0:
        raise Missing("request")


def list_requests(tx: Tx, user_id: int, now: int, offset: int, limit: int) -> Page[FriendRequest]:
    """One page of a user's live requests, newest first: those made to them and still
    pending, and every one they made (declined ones too: to them they are pending)."""
    where = (
        " FROM friend_requests r WHERE r.expires > ?"
        " AND (r.from_id = ? OR (r.to_id = ? AND r.state = 'pending'))"
    )
    params = (now, user_id, user_id)
    rows = tx.rows(
        "SELECT r.id, r.from_id, r.to_id, r.to_mobile, r.created, r.expires"
        f"{where} ORDER BY r.id DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    total = int(tx.value(f"SELECT COUNT(*){where}", params))
    # Profiles: the asker of each incoming request, the one asked of each outgoing
    # request made by id (by number: the number only, see FriendRequest).
    wanted = {int(r[1]) for r in rows if int(r[1]) != user_id}
    wanted |= {int(r[2]) for r in rows if int(r[1]) == user_id and r[3] is None}
    users = {u.id: u for u in get_users(tx, wanted)}
    found: list[FriendRequest] = []
    for request_id, from_id, to_id, to_mobile, created, expires in rows:
        if int(from_id) != user_id:
            found.append(FriendRequest(int(request_id), True, users.get(int(from_id)), None,
                                       int(created), int(expires)))
        elif to_mobile is not None:
            found.append(FriendRequest(int(request_id), False, None, to_mobile,
                                       int(created), int(expires)))
        else:
            found.append(FriendRequest(int(request_id), False, users.get(int(to_id)), None,
                                       int(created), int(expires)))
    return Page(found, total)


def purge_expired_requests(tx: Tx, now: int) -> int:
    """Delete every expired friend request; return how many."""
    return tx.execute("DELETE FROM friend_requests WHERE expires <= ?", (now,))


def block_user(tx: Tx, owner_id: int, blocked_id: int, now: int) -> bool:
    """``owner_id`` blocks ``blocked_id`` (again: no change). A friendship between them
    ends, the owner's requests to them are withdrawn and theirs to the owner declined.
    Returns whether they were friends.

    Raises Refused("self"), Missing("user").
    """
    if owner_id == blocked_id:
        raise Refused("self")
    if tx.row("SELECT id FROM users WHERE id = ?", (blocked_id,)) is None:
        raise Missing("user")
    tx.execute(
        tx.dialect.insert_ignore("blocks", ("owner_id", "blocked_id", "created")),
        (owner_id, blocked_id, now),
    )
    were_friends = remove_friendship(tx, owner_id, blocked_id)
    tx.execute(
        "DELETE FROM friend_requests WHERE from_id = ? AND to_id = ?", (owner_id, blocked_id)
    )
    tx.execute(
        "UPDATE friend_requests SET state = 'declined' WHERE from_id = ? AND to_id = ?",
        (blocked_id, owner_id),
    )
    return were_friends


def unblock_user(tx: Tx, owner_id: int, blocked_id: int) -> bool:
    """Lift a block; False when there was none. Nothing else comes back: not the
    friendship, not the requests."""
    return tx.execute(
        "DELETE FROM blocks WHERE owner_id = ? AND blocked_id = ?", (owner_id, blocked_id)
    ) > 0


def list_blocked(tx: Tx, owner_id: int, offset: int, limit: int) -> Page[User]:
    """One page of the users ``owner_id`` blocks, most recently blocked first, and the total."""
    rows = tx.rows(
        f"SELECT {USER_COLUMNS} FROM blocks b JOIN users u ON u.id = b.blocked_id"
        " WHERE b.owner_id = ? ORDER BY b.created DESC, u.id DESC LIMIT ? OFFSET ?",
        (owner_id, limit, offset),
    )
    total = tx.value("SELECT COUNT(*) FROM blocks WHERE owner_id = ?", (owner_id,))
    return Page([_user(r) for r in rows], int(total))


def blocks(tx: Tx, owner_id: int, other_id: int) -> bool:
    """Whether ``owner_id`` blocks ``other_id``."""
    return _blocks(tx, owner_id, other_id)
