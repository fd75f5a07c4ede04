"""Groups that are safe to run: visibility, invites, roles, bans, join requests and
history windows (schema migration 7, docs/store.md).

Plain functions of a :class:`~fastim.store.sql.Tx`, run by the caller inside one
transaction (``store.read(fn, ...)`` / ``store.write(fn, ...)``), like
``fastim.store.queries``. Rules that concurrency could break (the last use of an invite,
a kick racing a role change) are decided here, under the group's row lock
(``FOR UPDATE`` on MySQL; SQLite has one writer).

History windows: a membership reads the group's messages with an id above its
``since_id``, set when it joins: the newest message id of the group then (history
"joined", the default) or 0 (history "all"). A member who leaves or is removed keeps
the window they had in ``group_past`` (``from_id < id <= upto_id``); joining again
opens a new window from that moment, so the gap stays unread.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from fastim.store.errors import Duplicate, IntegrityViolation, Missing, Refused
from fastim.store.queries import USER_COLUMNS, _user
from fastim.store.records import Page, User
from fastim.store.sql import Tx

#: `messages.cmd` of a group message (Cmd.GROUP of fastim/chat/protocol.py).
GROUP_CMD = 11
VISIBILITIES = ("private", "public")
JOIN_POLICIES = ("open", "approval")
HISTORIES = ("joined", "all")
ROLES = ("owner", "admin", "member")
MODERATORS = ("owner", "admin")


def conv_of(group_id: int) -> str:
    """The conversation key of a group's messages (``conversation()`` of the hub)."""
    return f"g{group_id}"


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """A group's safety settings and its member count."""

    group_id: int
    name: str
    owner_id: int
    visibility: str
    join_policy: str
    history: str
    members: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.group_id, "name": self.name, "ownerid": self.owner_id,
                "visibility": self.visibility, "join": self.join_policy,
                "history": self.history, "members": self.members}


@dataclass(frozen=True, slots=True)
class Invite:
    """An invite link of a group (its code is never stored: only its hash)."""

    id: int
    group_id: int
    created_by: int
    created: int
    expires: int | None
    max_uses: int | None
    uses: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "groupid": self.group_id, "createdby": self.created_by,
                "created": self.created, "expires": self.expires, "uses": self.max_uses,
                "used": self.uses}


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """What a join gave: ``joined`` (a member now) or ``requested`` (awaits approval)."""

    status: str
    group_id: int
    #: ``joined``: the new member's window starts after this message id (``since_id``).
    since: int = 0


@dataclass(frozen=True, slots=True)
class Listed:
    """A user in a group's list of bans or join requests, with its time."""

    user: User
    created: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.user.public(), "created": self.created}


_SETTINGS = ("SELECT c.id, c.name, c.owner_id, c.visibility, c.join_policy, c.history,"
             " (SELECT COUNT(*) FROM memberships m WHERE m.community_id = c.id)"
             " FROM communities c")


def _settings(row: Any) -> GroupSettings:
    return GroupSettings(int(row[0]), row[1], int(row[2]), row[3], row[4], row[5],
                         int(row[6]))


def settings(tx: Tx, group_id: int) -> GroupSettings | None:
    """The group's settings and member count, or None."""
    row = tx.row(f"{_SETTINGS} WHERE c.id = ?", (group_id,))
    return None if row is None else _settings(row)


def _lock_group(tx: Tx, group_id: int) -> tuple[str, str, str]:
    row = tx.row("SELECT visibility, join_policy, history FROM communities WHERE id = ?"
                 f"{tx.dialect.for_update}", (group_id,))
    if row is None:
        raise Missing("group")
    return row[0], row[1], row[2]


def role_of(tx: Tx, group_id: int, user_id: int) -> str | None:
    """The user's role in the group (owner, admin, member), or None."""
    role: str | None = tx.value(
        "SELECT role FROM memberships WHERE community_id = ? AND user_id = ?",
        (group_id, user_id))
    return role


def is_group_moderator(tx: Tx, group_id: int, user_id: int) -> bool:
    """Whether the user is the group's owner or one of its admins: those who may invite,
    remove and ban members, approve join requests and delete any message of the group."""
    return role_of(tx, group_id, user_id) in MODERATORS


def _moderator(tx: Tx, group_id: int, user_id: int) -> str:
    _lock_group(tx, group_id)
    role = role_of(tx, group_id, user_id)
    if role is None:
        raise Refused("not_member")
    if role not in MODERATORS:
        raise Refused("not_moderator")
    return role


def set_settings(tx: Tx, group_id: int, user_id: int, visibility: str | None,
                 join_policy: str | None, history: str | None) -> GroupSettings:
    """Change the group's settings; only its owner may. Raises Missing("group"),
    Refused("not_member"), Refused("not_owner")."""
    _lock_group(tx, group_id)
    role = role_of(tx, group_id, user_id)
    if role is None:
        raise Refused("not_member")
    if role != "owner":
        raise Refused("not_owner")
    for column, value in (("visibility", visibility), ("join_policy", join_policy),
                          ("history", history)):
        if value is not None:
            tx.execute(f"UPDATE communities SET {column} = ? WHERE id = ?", (value, group_id))
    found = settings(tx, group_id)
    assert found is not None
    return found


def newest_message(tx: Tx, group_id: int) -> int:
    """The id of the group's newest message (0 when it has none)."""
    return int(tx.value("SELECT MAX(id) FROM messages WHERE conv = ?", (conv_of(group_id),))
               or 0)


def is_banned(tx: Tx, group_id: int, user_id: int) -> bool:
    return tx.row("SELECT 1 FROM group_bans WHERE community_id = ? AND user_id = ?",
                  (group_id, user_id)) is not None


def _admit(tx: Tx, group_id: int, user_id: int, history: str, now: int) -> int:
    """Insert the membership with its history window, and its read mark at the window's
    start (so unread counts only what the member may read); return the window's start
    (``since_id``)."""
    since = 0 if history == "all" else newest_message(tx, group_id)
    try:
        tx.execute("INSERT INTO memberships (community_id, user_id, role, joined, since_id)"
                   " VALUES (?, ?, 'member', ?, ?)", (group_id, user_id, now, since))
    except IntegrityViolation as v:
        if v.kind == "unique":
            raise Duplicate("memberships") from None
        if v.kind == "foreign_key":
            raise Missing("user") from None
        raise
    tx.execute("DELETE FROM group_join_requests WHERE community_id = ? AND user_id = ?",
               (group_id, user_id))
    if since:
        tx.execute(tx.dialect.upsert("read_marks", ("user_id", "conv", "upto"),
                                     key=("user_id", "conv"), greatest=("upto",)),
                   (user_id, conv_of(group_id), since))
    return since


def member_since(tx: Tx, group_id: int, user_id: int) -> int | None:
    """A member's ``since_id`` (they read the group's messages above it), None for a
    non-member: the window every change to a group message is checked against."""
    since = tx.value("SELECT since_id FROM memberships WHERE community_id = ? AND user_id = ?",
                     (group_id, user_id))
    return None if since is None else int(since)


def join(tx: Tx, group_id: int, user_id: int, now: int, public_only: bool) -> JoinOutcome:
    """Join a group: as a member when it is open, as a pending join request when it asks
    for approval. ``public_only``: a private group is refused as if it did not exist
    (joining by name or id). Raises Missing("group"), Duplicate("memberships"),
    Refused("banned")."""
    visibility, policy, history = _lock_group(tx, group_id)
    if public_only and visibility != "public":
        raise Missing("group")
    if role_of(tx, group_id, user_id) is not None:
        raise Duplicate("memberships")
    if is_banned(tx, group_id, user_id):
        raise Refused("banned")
    if policy == "approval":
        tx.execute(tx.dialect.insert_ignore("group_join_requests",
                                            ("community_id", "user_id", "created")),
                   (group_id, user_id, now))
        return JoinOutcome("requested", group_id)
    return JoinOutcome("joined", group_id, _admit(tx, group_id, user_id, history, now))


def _close_window(tx: Tx, group_id: int, user_id: int) -> None:
    since = tx.value("SELECT since_id FROM memberships WHERE community_id = ? AND user_id = ?",
                     (group_id, user_id))
    if since is None:
        return
    upto = newest_message(tx, group_id)
    tx.execute("DELETE FROM group_past WHERE community_id = ? AND user_id = ?",
               (group_id, user_id))
    tx.execute("INSERT INTO group_past (community_id, user_id, from_id, upto_id)"
               " VALUES (?, ?, ?, ?)", (group_id, user_id, int(since), upto))
    tx.execute("DELETE FROM memberships WHERE community_id = ? AND user_id = ?",
               (group_id, user_id))


def leave(tx: Tx, group_id: int, user_id: int) -> None:
    """Leave a group, keeping the window read so far. Raises Missing("group"),
    Refused("not_member"), Refused("owner_cannot_leave")."""
    _lock_group(tx, group_id)
    role = role_of(tx, group_id, user_id)
    if role is None:
        raise Refused("not_member")
    if role == "owner":
        raise Refused("owner_cannot_leave")
    _close_window(tx, group_id, user_id)


def kick(tx: Tx, group_id: int, by_id: int, user_id: int, ban: bool, now: int) -> bool:
    """Remove a member (and, with ``ban``, keep them from joining again). Owners remove
    anyone but themselves; admins remove members only. Returns whether they were a
    member (a ban of a non-member is allowed: it stops them joining).

    Raises Missing("group"), Refused("not_member"|"not_moderator"|"self"|"rank").
    """
    by_role = _moderator(tx, group_id, by_id)
    if user_id == by_id:
        raise Refused("self")
    role = role_of(tx, group_id, user_id)
    if role == "owner" or (role == "admin" and by_role != "owner"):
        raise Refused("rank")
    if ban:
        if tx.row("SELECT id FROM users WHERE id = ?", (user_id,)) is None:
            raise Missing("user")
        tx.execute(tx.dialect.insert_ignore("group_bans",
                                            ("community_id", "user_id", "by_id", "created")),
                   (group_id, user_id, by_id, now))
        tx.execute("DELETE FROM group_join_requests WHERE community_id = ? AND user_id = ?",
                   (group_id, user_id))
    if role is None:
        return False
    _close_window(tx, group_id, user_id)
    return True


def unban(tx: Tx, group_id: int, by_id: int, user_id: int) -> bool:
    """Lift a ban (moderators); False when there was none."""
    _moderator(tx, group_id, by_id)
    return tx.execute("DELETE FROM group_bans WHERE community_id = ? AND user_id = ?",
                      (group_id, user_id)) > 0


def _listed(tx: Tx, table: str, group_id: int, offset: int, limit: int) -> Page[Listed]:
    rows = tx.rows(
        f"SELECT {USER_COLUMNS}, t.created FROM {table} t JOIN users u ON u.id = t.user_id"
        " WHERE t.community_id = ? ORDER BY t.created, u.id LIMIT ? OFFSET ?",
        (group_id, limit, offset))
    total = tx.value(f"SELECT COUNT(*) FROM {table} WHERE community_id = ?", (group_id,))
    return Page([Listed(_user(r), int(r[7])) for r in rows], int(total))


def list_bans(tx: Tx, group_id: int, by_id: int, offset: int, limit: int) -> Page[Listed]:
    """The group's banned users (moderators only)."""
    _moderator(tx, group_id, by_id)
    return _listed(tx, "group_bans", group_id, offset, limit)


def list_join_requests(tx: Tx, group_id: int, by_id: int, offset: int,
                       limit: int) -> Page[Listed]:
    """The users waiting to join (moderators only), oldest first."""
    _moderator(tx, group_id, by_id)
    return _listed(tx, "group_join_requests", group_id, offset, limit)


def answer_join_request(tx: Tx, group_id: int, by_id: int, user_id: int, approve: bool,
                        now: int) -> int | None:
    """Approve (the user becomes a member) or decline a join request (moderators).
    Returns the approved member's window start (``since_id``), None for a decline.
    Raises Missing("request") when there is none."""
    _, _, history = _lock_group(tx, group_id)
    _moderator(tx, group_id, by_id)
    if tx.row("SELECT 1 FROM group_join_requests WHERE community_id = ? AND user_id = ?",
              (group_id, user_id)) is None:
        raise Missing("request")
    tx.execute("DELETE FROM group_join_requests WHERE community_id = ? AND user_id = ?",
               (group_id, user_id))
    if approve:
        if is_banned(tx, group_id, user_id):
            raise Refused("banned")
        with contextlib.suppress(Duplicate):
            return _admit(tx, group_id, user_id, history, now)
        return member_since(tx, group_id, user_id)  # a member already
    return None


def moderator_ids(tx: Tx, group_id: int) -> list[int]:
    """The owner and admins of a group."""
    return [int(r[0]) for r in tx.rows(
        "SELECT user_id FROM memberships WHERE community_id = ? AND role IN ('owner', 'admin')"
        " ORDER BY user_id", (group_id,))]


def set_role(tx: Tx, group_id: int, by_id: int, user_id: int, role: str) -> None:
    """Make a member an ``admin`` or a ``member`` again (the owner only; ownership moves
    with /contact/transfercommunity). Raises Missing("group"), Refused("not_owner"),
    Refused("not_member"), Refused("self")."""
    _lock_group(tx, group_id)
    if role_of(tx, group_id, by_id) != "owner":
        raise Refused("not_owner")
    if user_id == by_id:
        raise Refused("self")
    if role_of(tx, group_id, user_id) is None:
        raise Refused("not_member")
    tx.execute("UPDATE memberships SET role = ? WHERE community_id = ? AND user_id = ?",
               (role, group_id, user_id))


# --- invites ---------------------------------------------------------------------------


_INVITE = "id, community_id, created_by, created, expires, max_uses, uses"


def _invite(row: Any) -> Invite:
    return Invite(int(row[0]), int(row[1]), int(row[2]), int(row[3]),
                  None if row[4] is None else int(row[4]),
                  None if row[5] is None else int(row[5]), int(row[6]))


def create_invite(tx: Tx, group_id: int, by_id: int, code_hash: str, expires: int | None,
                  max_uses: int | None, now: int) -> Invite:
    """Store a new invite (its code's hash) made by a moderator."""
    _moderator(tx, group_id, by_id)
    invite_id = tx.insert(
        "INSERT INTO group_invites (community_id, code_hash, created_by, created, expires,"
        " max_uses, uses) VALUES (?, ?, ?, ?, ?, ?, 0)",
        (group_id, code_hash, by_id, now, expires, max_uses))
    return Invite(invite_id, group_id, by_id, now, expires, max_uses, 0)


def list_invites(tx: Tx, group_id: int, by_id: int, now: int) -> list[Invite]:
    """The group's live invites (moderators), newest first."""
    _moderator(tx, group_id, by_id)
    return [_invite(r) for r in tx.rows(
        f"SELECT {_INVITE} FROM group_invites WHERE community_id = ?"
        " AND (expires IS NULL OR expires > ?) AND (max_uses IS NULL OR uses < max_uses)"
        " ORDER BY id DESC", (group_id, now))]


def revoke_invite(tx: Tx, group_id: int, by_id: int, invite_id: int) -> None:
    """Delete an invite (moderators). Raises Missing("invite")."""
    _moderator(tx, group_id, by_id)
    if tx.execute("DELETE FROM group_invites WHERE id = ? AND community_id = ?",
                  (invite_id, group_id)) == 0:
        raise Missing("invite")


def _live_invite(tx: Tx, code_hash: str, now: int, lock: bool) -> Invite:
    row = tx.row(
        f"SELECT {_INVITE} FROM group_invites WHERE code_hash = ?"
        " AND (expires IS NULL OR expires > ?) AND (max_uses IS NULL OR uses < max_uses)"
        f"{tx.dialect.for_update if lock else ''}", (code_hash, now))
    if row is None:
        raise Missing("invite")
    return _invite(row)


def preview_invite(tx: Tx, code_hash: str, now: int) -> GroupSettings:
    """The group a live invite leads to (name, member count). Raises Missing("invite")."""
    invite = _live_invite(tx, code_hash, now, lock=False)
    found = settings(tx, invite.group_id)
    if found is None:
        raise Missing("invite")
    return found


def join_by_invite(tx: Tx, code_hash: str, user_id: int, now: int) -> JoinOutcome:
    """Join the group of a live invite, private or not, and use the invite up by one.
    Raises Missing("invite"), Duplicate("memberships"), Refused("banned")."""
    invite = _live_invite(tx, code_hash, now, lock=True)
    outcome = join(tx, invite.group_id, user_id, now, False)
    tx.execute("UPDATE group_invites SET uses = uses + 1 WHERE id = ?", (invite.id,))
    return outcome


# --- history windows -------------------------------------------------------------------


def history_window(tx: Tx, group_id: int, user_id: int) -> tuple[int, int | None] | None:
    """The ids of the group's messages the user may read: ``(after, upto)`` meaning
    ``after < id <= upto`` (``upto`` None: no end, a member), or None: none at all."""
    return history_windows(tx, user_id, group_id).get(group_id)


def history_windows(tx: Tx, user_id: int,
                    group_id: int | None = None) -> dict[int, tuple[int, int | None]]:
    """`history_window` of every group the user may read something of (or of one): a
    member's window from `since_id` on, else a former member's kept one. The one rule
    of history and of search (fastim/store/search.py)."""
    one = "" if group_id is None else " AND community_id = ?"
    params: list[int] = [user_id] if group_id is None else [user_id, group_id]
    windows: dict[int, tuple[int, int | None]] = {
        int(group): (int(after), int(upto)) for group, after, upto in tx.rows(
            f"SELECT community_id, from_id, upto_id FROM group_past WHERE user_id = ?{one}",
            params)}
    # A member reads from their current join on: an older window (a gap they were away
    # for) does not add to it.
    for group, since in tx.rows(
            f"SELECT community_id, since_id FROM memberships WHERE user_id = ?{one}", params):
        windows[int(group)] = (int(since), None)
    return windows


def membership_changes(tx: Tx, group_id: int) -> list[dict[str, Any]]:
    """Who joined and who left the group, placed in its stream of messages: each row is
    ``userid``, ``nickname``, ``event`` ("joined" or "left") and ``after``, the id of the
    group's newest message at that moment (0: before any), for the lines a client shows
    between messages. A member's join is their ``since_id`` (with ``ts``, when, in ms;
    a member of a group whose history is "all" joined at 0 by that measure, so ``ts``
    places them); a former member's window gives their join and their leaving. The
    owner's own membership (the group's creation) is not a change. Bounded by the
    people who ever were members, not by the history."""
    rows: list[dict[str, Any]] = []
    for user_id, nickname, role, joined, since in tx.rows(
            "SELECT u.id, u.nickname, m.role, m.joined, m.since_id FROM memberships m"
            " JOIN users u ON u.id = m.user_id WHERE m.community_id = ?", (group_id,)):
        if role != "owner":
            rows.append({"userid": int(user_id), "nickname": nickname, "event": "joined",
                         "after": int(since), "ts": int(joined) * 1000})
    for user_id, nickname, from_id, upto_id in tx.rows(
            "SELECT u.id, u.nickname, p.from_id, p.upto_id FROM group_past p"
            " JOIN users u ON u.id = p.user_id WHERE p.community_id = ?", (group_id,)):
        rows.append({"userid": int(user_id), "nickname": nickname, "event": "joined",
                     "after": int(from_id)})
        rows.append({"userid": int(user_id), "nickname": nickname, "event": "left",
                     "after": int(upto_id)})
    rows.sort(key=lambda r: (r["after"], r.get("ts", 0), r["event"] == "left", r["userid"]))
    return rows


def member_windows(tx: Tx, user_id: int) -> dict[int, int]:
    """The groups a user is a member of, each with the id after which they read it
    (``since_id``): one range of ``ix_memberships_user_group``."""
    # MariaDB, on a small table, may intersect two indexes and sort: the one is enough.
    hint = "" if tx.dialect.name == "sqlite" else " FORCE INDEX (ix_memberships_user_group)"
    return {int(g): int(since) for g, since in tx.rows(
        f"SELECT community_id, since_id FROM memberships{hint} WHERE user_id = ?",
        (user_id,))}


def member_window_sql(messages: str = "messages") -> str:
    """A condition on a row of ``messages`` (a group message): the reader, bound as the
    one parameter, is a member whose window holds it. For the sync query."""
    return (f"{messages}.id > (SELECT gw.since_id FROM memberships gw"
            f" WHERE gw.community_id = {messages}.dstid AND gw.user_id = ?)")

