"""The schema, as an ordered list of migrations applied at start-up.

Each :class:`Migration` has a version (strictly increasing), a name, and its DDL for each
dialect. :func:`fastim.store.base.Store.migrate` applies, in order, every migration whose
version is not yet in ``schema_version``, each in its own transaction, and records it there.
To change the schema later, APPEND a migration; never edit one that has shipped.

The two dialects describe the same tables. Differences are only of spelling:

* ids are ``INTEGER PRIMARY KEY AUTOINCREMENT`` in SQLite (ids are never reused, which matters
  once messages refer to them) and ``BIGINT AUTO_INCREMENT`` in MySQL;
* SQLite ``TEXT`` has no length, so CHECK constraints give it the same limits MySQL's
  ``VARCHAR(n)`` has (counted in characters on both);
* MySQL tables are ``utf8mb4`` (full Unicode: emoji, CJK) with ``utf8mb4_unicode_ci`` for
  ordinary text, while unique text keys use a binary collation (``utf8mb4_bin`` /
  ``ascii_bin``) so that they compare exactly like SQLite does: ``_unicode_ci`` would call
  "Chat" and "chat" (and even some different emoji) the same name;
* times are Unix seconds in integer columns on both, so there is no time-zone handling.

MySQL commits DDL implicitly, so a MySQL migration is not atomic the way a SQLite one is:
its statements are written to be re-runnable (``IF NOT EXISTS``) so that a migration that
failed half-way can simply be applied again.

Migration 1 holds the accounts and contacts; the chat's tables (messages, read marks,
message keys) come as migration 2 onwards; friend requests and blocks are migration 5
(docs/store.md); migration 6 adds the indexes of the hot paths; group visibility,
invites, roles, bans and history windows are migration 7. A step is a statement or,
where the two databases need different logic (an index MySQL must not add twice), a
Python function of the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastim.store.phones import canonical_mobile

if TYPE_CHECKING:
    from fastim.store.sql import Tx

_log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` orders it; ``sqlite`` / ``mysql`` are its steps, each a
    statement or a function ``step(tx)``."""

    version: int
    name: str
    sqlite: list[str | Callable[[Tx], None]] = field(default_factory=list)
    mysql: list[str | Callable[[Tx], None]] = field(default_factory=list)

    def statements(self, dialect: str) -> list[str | Callable[[Tx], None]]:
        """The steps of this migration for ``dialect`` ("sqlite" or "mysql")."""
        return self.sqlite if dialect == "sqlite" else self.mysql


# The bookkeeping table itself; created before any migration runs.
SCHEMA_VERSION_DDL = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " applied INTEGER NOT NULL)"
    ),
    "mysql": (
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INT NOT NULL PRIMARY KEY,"
        " name VARCHAR(100) NOT NULL,"
        " applied BIGINT NOT NULL"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
    ),
}

_MYSQL_TABLE = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
_ASCII_BIN = "CHARACTER SET ascii COLLATE ascii_bin"
_UTF8_BIN = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"

ACCOUNTS = Migration(
    version=1,
    name="users, tokens, friendships, communities, memberships",
    sqlite=[
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            mobile TEXT NOT NULL CHECK (length(mobile) BETWEEN 1 AND 20),
            passwd TEXT NOT NULL CHECK (length(passwd) <= 128),
            salt TEXT NOT NULL CHECK (length(salt) <= 64),
            kdf TEXT NOT NULL CHECK (length(kdf) <= 64),
            nickname TEXT NOT NULL CHECK (length(nickname) BETWEEN 1 AND 32),
            avatar TEXT NOT NULL DEFAULT '' CHECK (length(avatar) <= 255),
            sex TEXT NOT NULL DEFAULT 'U' CHECK (sex IN ('M', 'W', 'U')),
            memo TEXT NOT NULL DEFAULT '' CHECK (length(memo) <= 140),
            created INTEGER NOT NULL,
            CONSTRAINT uq_users_mobile UNIQUE (mobile)
        )""",
        # id orders a user's sessions (oldest are dropped first); the token itself is
        # only ever stored as its SHA-256.
        """CREATE TABLE tokens (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            token_hash TEXT NOT NULL CHECK (length(token_hash) = 64),
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            device TEXT NOT NULL CHECK (length(device) BETWEEN 1 AND 64),
            expires INTEGER NOT NULL,
            created INTEGER NOT NULL,
            CONSTRAINT uq_tokens_hash UNIQUE (token_hash),
            CONSTRAINT uq_tokens_device UNIQUE (user_id, device)
        )""",
        "CREATE INDEX ix_tokens_expires ON tokens (expires)",
        # A friendship is two rows, (a, b) and (b, a), so "friends of X" is one index range.
        # They are always inserted lower id first: two concurrent requests for one pair then
        # collide on the same first key (one gets the duplicate), and never deadlock.
        """CREATE TABLE friendships (
            owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            dst_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created INTEGER NOT NULL,
            PRIMARY KEY (owner_id, dst_id),
            CONSTRAINT ck_friendships_not_self CHECK (owner_id <> dst_id)
        )""",
        "CREATE INDEX ix_friendships_dst ON friendships (dst_id)",
        """CREATE TABLE communities (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
            owner_id INTEGER NOT NULL REFERENCES users (id),
            icon TEXT NOT NULL DEFAULT '' CHECK (length(icon) <= 255),
            memo TEXT NOT NULL DEFAULT '' CHECK (length(memo) <= 140),
            cate INTEGER NOT NULL DEFAULT 1,
            created INTEGER NOT NULL,
            CONSTRAINT uq_communities_name UNIQUE (name)
        )""",
        "CREATE INDEX ix_communities_owner ON communities (owner_id)",
        """CREATE TABLE memberships (
            community_id INTEGER NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
            joined INTEGER NOT NULL,
            PRIMARY KEY (community_id, user_id)
        )""",
        "CREATE INDEX ix_memberships_user ON memberships (user_id)",
    ],
    mysql=[
        f"""CREATE TABLE IF NOT EXISTS users (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            mobile VARCHAR(20) {_ASCII_BIN} NOT NULL,
            passwd VARCHAR(128) {_ASCII_BIN} NOT NULL,
            salt VARCHAR(64) {_ASCII_BIN} NOT NULL,
            kdf VARCHAR(64) {_ASCII_BIN} NOT NULL,
            nickname VARCHAR(32) NOT NULL,
            avatar VARCHAR(255) NOT NULL DEFAULT '',
            sex CHAR(1) {_ASCII_BIN} NOT NULL DEFAULT 'U',
            memo VARCHAR(140) NOT NULL DEFAULT '',
            created BIGINT NOT NULL,
            CONSTRAINT uq_users_mobile UNIQUE (mobile),
            CONSTRAINT ck_users_sex CHECK (sex IN ('M', 'W', 'U')),
            CONSTRAINT ck_users_mobile CHECK (CHAR_LENGTH(mobile) >= 1),
            CONSTRAINT ck_users_nickname CHECK (CHAR_LENGTH(nickname) >= 1)
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS tokens (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            token_hash CHAR(64) {_ASCII_BIN} NOT NULL,
            user_id BIGINT NOT NULL,
            device VARCHAR(64) {_UTF8_BIN} NOT NULL,
            expires BIGINT NOT NULL,
            created BIGINT NOT NULL,
            CONSTRAINT uq_tokens_hash UNIQUE (token_hash),
            CONSTRAINT uq_tokens_device UNIQUE (user_id, device),
            KEY ix_tokens_expires (expires),
            CONSTRAINT fk_tokens_user FOREIGN KEY (user_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS friendships (
            owner_id BIGINT NOT NULL,
            dst_id BIGINT NOT NULL,
            created BIGINT NOT NULL,
            PRIMARY KEY (owner_id, dst_id),
            KEY ix_friendships_dst (dst_id),
            CONSTRAINT ck_friendships_not_self CHECK (owner_id <> dst_id),
            CONSTRAINT fk_friendships_owner FOREIGN KEY (owner_id) REFERENCES users (id)
                ON DELETE CASCADE,
            CONSTRAINT fk_friendships_dst FOREIGN KEY (dst_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS communities (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            name VARCHAR(64) {_UTF8_BIN} NOT NULL,
            owner_id BIGINT NOT NULL,
            icon VARCHAR(255) NOT NULL DEFAULT '',
            memo VARCHAR(140) NOT NULL DEFAULT '',
            cate INT NOT NULL DEFAULT 1,
            created BIGINT NOT NULL,
            CONSTRAINT uq_communities_name UNIQUE (name),
            KEY ix_communities_owner (owner_id),
            CONSTRAINT ck_communities_name CHECK (CHAR_LENGTH(name) >= 1),
            CONSTRAINT fk_communities_owner FOREIGN KEY (owner_id) REFERENCES users (id)
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS memberships (
            community_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL,
            role VARCHAR(8) {_ASCII_BIN} NOT NULL DEFAULT 'member',
            joined BIGINT NOT NULL,
            PRIMARY KEY (community_id, user_id),
            KEY ix_memberships_user (user_id),
            CONSTRAINT ck_memberships_role CHECK (role IN ('owner', 'member')),
            CONSTRAINT fk_memberships_community FOREIGN KEY (community_id)
                REFERENCES communities (id) ON DELETE CASCADE,
            CONSTRAINT fk_memberships_user FOREIGN KEY (user_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
    ],
)

MESSAGES = Migration(
    version=2,
    name="chat messages and read marks",
    sqlite=[
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conv TEXT NOT NULL CHECK (length(conv) <= 48),
            sender INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            cid TEXT NULL CHECK (length(cid) <= 64),
            cmd INTEGER NOT NULL,
            dstid INTEGER NOT NULL,
            media INTEGER NOT NULL,
            content TEXT NOT NULL CHECK (length(content) <= 20000),
            pic TEXT NOT NULL DEFAULT '' CHECK (length(pic) <= 300),
            url TEXT NOT NULL DEFAULT '' CHECK (length(url) <= 300),
            memo TEXT NOT NULL DEFAULT '' CHECK (length(memo) <= 500),
            amount INTEGER NOT NULL DEFAULT 0,
            created INTEGER NOT NULL
        )""",
        # A resend with the same client id is the same message (NULL cids never clash).
        "CREATE UNIQUE INDEX ux_messages_sender_cid ON messages (sender, cid)",
        "CREATE INDEX ix_messages_conv ON messages (conv, id)",
        "CREATE INDEX ix_messages_dst ON messages (cmd, dstid, id)",
        """CREATE TABLE read_marks (
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            conv TEXT NOT NULL CHECK (length(conv) <= 48),
            upto INTEGER NOT NULL,
            PRIMARY KEY (user_id, conv)
        )""",
    ],
    mysql=[
        f"""CREATE TABLE IF NOT EXISTS messages (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            conv VARCHAR(48) {_ASCII_BIN} NOT NULL,
            sender BIGINT NOT NULL,
            cid VARCHAR(64) {_UTF8_BIN} NULL,
            cmd SMALLINT NOT NULL,
            dstid BIGINT NOT NULL,
            media SMALLINT NOT NULL,
            content TEXT NOT NULL,
            pic VARCHAR(300) NOT NULL DEFAULT '',
            url VARCHAR(300) NOT NULL DEFAULT '',
            memo VARCHAR(500) NOT NULL DEFAULT '',
            amount BIGINT NOT NULL DEFAULT 0,
            created BIGINT NOT NULL,
            UNIQUE KEY ux_messages_sender_cid (sender, cid),
            KEY ix_messages_conv (conv, id),
            KEY ix_messages_dst (cmd, dstid, id),
            CONSTRAINT fk_messages_sender FOREIGN KEY (sender) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS read_marks (
            user_id BIGINT NOT NULL,
            conv VARCHAR(48) {_ASCII_BIN} NOT NULL,
            upto BIGINT NOT NULL,
            PRIMARY KEY (user_id, conv),
            CONSTRAINT fk_read_marks_user FOREIGN KEY (user_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
    ],
)

# Messages at rest (fastim/store/sealing.py). A message sealed with a key keeps its user
# text (content, pic, url, memo) only in `sealed`, as `enc:v1:<key-id>:<base64url>`, and
# '' in those columns; plain rows keep `sealed` NULL. A column of its own rather than a
# prefix in `content`: the ciphertext of 4,000 emoji does not fit content's 20,000-char
# limit (nor memo's 500), one AEAD call covers all four fields, and a user who types
# "enc:v1:..." is never mistaken for a sealed value. MEDIUMTEXT: the sealed value grows
# with --chat-max-text, and TEXT stops at 64 KiB.
# `message_keys` remembers which keys have sealed rows (by a fingerprint, never the key),
# so a server started without one of them refuses to start instead of serving gaps.
# The MySQL ALTER is the one statement here that is not re-runnable (MySQL 8 has no
# ADD COLUMN IF NOT EXISTS); it runs last, so only a crash between it and the
# schema_version insert would need `ALTER TABLE messages DROP COLUMN sealed` by hand.
SEALED_MESSAGES = Migration(
    version=3,
    name="sealed message text and the keys that sealed it",
    sqlite=[
        """CREATE TABLE message_keys (
            key_id TEXT NOT NULL PRIMARY KEY CHECK (length(key_id) BETWEEN 1 AND 32),
            fingerprint TEXT NOT NULL CHECK (length(fingerprint) = 32),
            first_used INTEGER NOT NULL
        )""",
        "ALTER TABLE messages ADD COLUMN sealed TEXT NULL",
    ],
    mysql=[
        f"""CREATE TABLE IF NOT EXISTS message_keys (
            key_id VARCHAR(32) {_ASCII_BIN} NOT NULL PRIMARY KEY,
            fingerprint CHAR(32) {_ASCII_BIN} NOT NULL,
            first_used BIGINT NOT NULL
        ) {_MYSQL_TABLE}""",
        f"ALTER TABLE messages ADD COLUMN sealed MEDIUMTEXT {_ASCII_BIN} NULL",
    ],
)

# Group names are unique by what they look like, not only byte for byte: `name_key` is
# the SHA-256 (hex) of the name's skeleton (fastim/accounts/names.py: NFKC, case-folded,
# invisibles dropped, confusables mapped), under a unique index, so two look-alike names
# created at once cannot both be taken. The skeleton is computed in Python, so the
# column starts NULL (a unique index allows many NULLs) and the app fills it in for the
# older groups at start (`Contacts.backfill_name_keys`). MySQL: one ALTER, so the column
# and its index come together (MySQL 8 has no ADD COLUMN IF NOT EXISTS).
GROUP_NAME_KEYS = Migration(
    version=4,
    name="group name keys: unique by skeleton",
    sqlite=[
        "ALTER TABLE communities ADD COLUMN name_key TEXT NULL"
        " CHECK (name_key IS NULL OR length(name_key) = 64)",
        "CREATE UNIQUE INDEX uq_communities_name_key ON communities (name_key)",
    ],
    mysql=[
        f"ALTER TABLE communities ADD COLUMN name_key CHAR(64) {_ASCII_BIN} NULL,"
        " ADD CONSTRAINT uq_communities_name_key UNIQUE (name_key)",
    ],
)

# Friends by consent (docs/store.md). A friend request is one row from the asker: to a
# user (`to_id`), and, when it was asked by mobile number, that number as typed
# (`to_mobile`), also when no account has it: the asker's own list then shows a request
# either way, so it cannot tell a number with an account from one without (`to_id` stays
# NULL for those and nobody receives them). `declined` rows look pending to the asker and
# are invisible to the one asked; accepting deletes the row (the friendship is the
# record). Rows end at `expires`. Both unique keys allow many NULLs on both databases.
# `blocks` is one row per (blocker, blocked). The friendships table is not touched:
# existing friends stay friends.
FRIENDS_BY_CONSENT = Migration(
    version=5,
    name="friend requests and blocks",
    sqlite=[
        """CREATE TABLE friend_requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            from_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            to_id INTEGER NULL REFERENCES users (id) ON DELETE CASCADE,
            to_mobile TEXT NULL CHECK (length(to_mobile) BETWEEN 1 AND 20),
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'declined')),
            created INTEGER NOT NULL,
            expires INTEGER NOT NULL,
            CONSTRAINT ck_friend_requests_target CHECK (to_id IS NOT NULL OR to_mobile IS NOT NULL),
            CONSTRAINT ck_friend_requests_not_self CHECK (to_id IS NULL OR to_id <> from_id)
        )""",
        "CREATE UNIQUE INDEX ux_friend_requests_pair ON friend_requests (from_id, to_id)",
        "CREATE UNIQUE INDEX ux_friend_requests_mobile ON friend_requests (from_id, to_mobile)",
        "CREATE INDEX ix_friend_requests_to ON friend_requests (to_id, state)",
        "CREATE INDEX ix_friend_requests_expires ON friend_requests (expires)",
        """CREATE TABLE blocks (
            owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            blocked_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created INTEGER NOT NULL,
            PRIMARY KEY (owner_id, blocked_id),
            CONSTRAINT ck_blocks_not_self CHECK (owner_id <> blocked_id)
        )""",
        "CREATE INDEX ix_blocks_blocked ON blocks (blocked_id)",
    ],
    mysql=[
        f"""CREATE TABLE IF NOT EXISTS friend_requests (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            from_id BIGINT NOT NULL,
            to_id BIGINT NULL,
            to_mobile VARCHAR(20) {_ASCII_BIN} NULL,
            state VARCHAR(8) {_ASCII_BIN} NOT NULL DEFAULT 'pending',
            created BIGINT NOT NULL,
            expires BIGINT NOT NULL,
            UNIQUE KEY ux_friend_requests_pair (from_id, to_id),
            UNIQUE KEY ux_friend_requests_mobile (from_id, to_mobile),
            KEY ix_friend_requests_to (to_id, state),
            KEY ix_friend_requests_expires (expires),
            CONSTRAINT ck_friend_requests_state CHECK (state IN ('pending', 'declined')),
            CONSTRAINT ck_friend_requests_target CHECK (to_id IS NOT NULL OR to_mobile IS NOT NULL),
            CONSTRAINT ck_friend_requests_not_self CHECK (to_id IS NULL OR to_id <> from_id),
            CONSTRAINT fk_friend_requests_from FOREIGN KEY (from_id) REFERENCES users (id)
                ON DELETE CASCADE,
            CONSTRAINT fk_friend_requests_to FOREIGN KEY (to_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS blocks (
            owner_id BIGINT NOT NULL,
            blocked_id BIGINT NOT NULL,
            created BIGINT NOT NULL,
            PRIMARY KEY (owner_id, blocked_id),
            KEY ix_blocks_blocked (blocked_id),
            CONSTRAINT ck_blocks_not_self CHECK (owner_id <> blocked_id),
            CONSTRAINT fk_blocks_owner FOREIGN KEY (owner_id) REFERENCES users (id)
                ON DELETE CASCADE,
            CONSTRAINT fk_blocks_blocked FOREIGN KEY (blocked_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
    ],
)



def mysql_add_index(table: str, index: str, columns: str) -> Callable[[Tx], None]:
    """A MySQL step adding ``index`` on ``table (columns)`` unless it is there already
    (MySQL 8 has no CREATE INDEX IF NOT EXISTS), so a migration that stopped half-way
    can be applied again. ``ALGORITHM=INPLACE, LOCK=NONE``: InnoDB builds the index
    online, reads and writes of the table go on meanwhile (only its short start and end
    wait for a metadata lock); the statement fails rather than silently copying the
    table under a lock on a server that cannot do that."""

    def step(tx: Tx) -> None:
        if tx.row("SELECT 1 FROM information_schema.statistics WHERE table_schema = "
                  "DATABASE() AND table_name = ? AND index_name = ? LIMIT 1",
                  [table, index]) is None:
            tx.execute(f"ALTER TABLE {table} ADD INDEX {index} ({columns}), "
                       "ALGORITHM=INPLACE, LOCK=NONE")

    step.__name__ = f"add_index_{index}"
    return step


# Costs that do not grow with history (docs/store.md, "Indexes and query plans"):
# * sync reads a user's own 1:1 messages by (sender, cmd, id), in id order, where before
#   only the messages to them had an index (ix_messages_dst);
# * who has read a conversation how far (/chat/reads, group read counts) is a range of
#   ix_read_marks_conv, where the key (user_id, conv) made it a full scan;
# * unread counts the messages above a read mark from the index alone: ix_messages_unread
#   (conv, id, sender) holds the sender, which ix_messages_conv (conv, id) sent to the table
#   for every row counted;
# * a user's groups and sessions come in id order from an index, not a sort
#   (ix_memberships_user_group, ix_tokens_user).
# On a large table SQLite builds an index in one pass over it, holding the write lock
# (about 2 s a million messages); MySQL builds it online (mysql_add_index).
HOT_PATH_INDEXES = Migration(
    version=6,
    name="indexes of the hot paths: sync, read marks, groups and sessions of a user",
    sqlite=[
        "CREATE INDEX IF NOT EXISTS ix_messages_sender ON messages (sender, cmd, id)",
        "CREATE INDEX IF NOT EXISTS ix_read_marks_conv ON read_marks (conv, user_id)",
        "CREATE INDEX IF NOT EXISTS ix_messages_unread ON messages (conv, id, sender)",
        "CREATE INDEX IF NOT EXISTS ix_memberships_user_group"
        " ON memberships (user_id, community_id)",
        "CREATE INDEX IF NOT EXISTS ix_tokens_user ON tokens (user_id, id)",
    ],
    mysql=[
        mysql_add_index("messages", "ix_messages_sender", "sender, cmd, id"),
        mysql_add_index("read_marks", "ix_read_marks_conv", "conv, user_id"),
        mysql_add_index("messages", "ix_messages_unread", "conv, id, sender"),
        mysql_add_index("memberships", "ix_memberships_user_group", "user_id, community_id"),
        mysql_add_index("tokens", "ix_tokens_user", "user_id, id"),
    ],
)

# Groups that are safe to run (docs/store.md, issue 17). A group has a `visibility`
# (private groups are found by invite only; existing groups become private), a
# `join_policy` (open, or approval by an owner or admin) and a `history` setting (what a
# new member may read: "joined", from the moment they joined, or "all"). A membership
# gains the role `admin` and `since_id`: its member reads the group's messages with a
# greater id (0, every one, for the members from before this migration, who keep their
# full history). `group_past` keeps, per former member, the window they could read when
# they left or were removed (from_id < id <= upto_id). Invites are stored as the SHA-256
# of their code; bans and join requests are one row per (group, user).
# SQLite cannot change a CHECK constraint, so `memberships` is rebuilt to allow 'admin';
# MySQL drops and re-adds the constraint. The MySQL ALTERs come last and are the only
# statements here that are not re-runnable.
SAFE_GROUPS = Migration(
    version=7,
    name="group visibility, invites, roles, bans, join requests, history windows",
    sqlite=[
        "ALTER TABLE communities ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private'"
        " CHECK (visibility IN ('private', 'public'))",
        "ALTER TABLE communities ADD COLUMN join_policy TEXT NOT NULL DEFAULT 'open'"
        " CHECK (join_policy IN ('open', 'approval'))",
        "ALTER TABLE communities ADD COLUMN history TEXT NOT NULL DEFAULT 'joined'"
        " CHECK (history IN ('joined', 'all'))",
        """CREATE TABLE memberships_v7 (
            community_id INTEGER NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
            joined INTEGER NOT NULL,
            since_id INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (community_id, user_id)
        )""",
        "INSERT INTO memberships_v7 (community_id, user_id, role, joined, since_id)"
        " SELECT community_id, user_id, role, joined, 0 FROM memberships",
        "DROP TABLE memberships",
        "ALTER TABLE memberships_v7 RENAME TO memberships",
        "CREATE INDEX ix_memberships_user ON memberships (user_id)",
        # The rebuild dropped migration 6's index of a user's groups in order: again.
        "CREATE INDEX ix_memberships_user_group ON memberships (user_id, community_id)",
        """CREATE TABLE group_past (
            community_id INTEGER NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            from_id INTEGER NOT NULL,
            upto_id INTEGER NOT NULL,
            PRIMARY KEY (community_id, user_id)
        )""",
        """CREATE TABLE group_invites (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            community_id INTEGER NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
            code_hash TEXT NOT NULL CHECK (length(code_hash) = 64),
            created_by INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created INTEGER NOT NULL,
            expires INTEGER NULL,
            max_uses INTEGER NULL,
            uses INTEGER NOT NULL DEFAULT 0,
            CONSTRAINT uq_group_invites_code UNIQUE (code_hash)
        )""",
        "CREATE INDEX ix_group_invites_group ON group_invites (community_id)",
        """CREATE TABLE group_bans (
            community_id INTEGER NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            by_id INTEGER NOT NULL,
            created INTEGER NOT NULL,
            PRIMARY KEY (community_id, user_id)
        )""",
        """CREATE TABLE group_join_requests (
            community_id INTEGER NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created INTEGER NOT NULL,
            PRIMARY KEY (community_id, user_id)
        )""",
    ],
    mysql=[
        f"""CREATE TABLE IF NOT EXISTS group_past (
            community_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL,
            from_id BIGINT NOT NULL,
            upto_id BIGINT NOT NULL,
            PRIMARY KEY (community_id, user_id),
            CONSTRAINT fk_group_past_community FOREIGN KEY (community_id)
                REFERENCES communities (id) ON DELETE CASCADE,
            CONSTRAINT fk_group_past_user FOREIGN KEY (user_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS group_invites (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            community_id BIGINT NOT NULL,
            code_hash CHAR(64) {_ASCII_BIN} NOT NULL,
            created_by BIGINT NOT NULL,
            created BIGINT NOT NULL,
            expires BIGINT NULL,
            max_uses INT NULL,
            uses INT NOT NULL DEFAULT 0,
            CONSTRAINT uq_group_invites_code UNIQUE (code_hash),
            KEY ix_group_invites_group (community_id),
            CONSTRAINT fk_group_invites_community FOREIGN KEY (community_id)
                REFERENCES communities (id) ON DELETE CASCADE,
            CONSTRAINT fk_group_invites_user FOREIGN KEY (created_by) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS group_bans (
            community_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL,
            by_id BIGINT NOT NULL,
            created BIGINT NOT NULL,
            PRIMARY KEY (community_id, user_id),
            CONSTRAINT fk_group_bans_community FOREIGN KEY (community_id)
                REFERENCES communities (id) ON DELETE CASCADE,
            CONSTRAINT fk_group_bans_user FOREIGN KEY (user_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS group_join_requests (
            community_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL,
            created BIGINT NOT NULL,
            PRIMARY KEY (community_id, user_id),
            CONSTRAINT fk_group_join_requests_community FOREIGN KEY (community_id)
                REFERENCES communities (id) ON DELETE CASCADE,
            CONSTRAINT fk_group_join_requests_user FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        "ALTER TABLE memberships DROP CONSTRAINT ck_memberships_role",
        "ALTER TABLE memberships ADD COLUMN since_id BIGINT NOT NULL DEFAULT 0,"
        " ADD CONSTRAINT ck_memberships_role CHECK (role IN ('owner', 'admin', 'member'))",
        f"ALTER TABLE communities ADD COLUMN visibility VARCHAR(8) {_ASCII_BIN} NOT NULL"
        " DEFAULT 'private',"
        f" ADD COLUMN join_policy VARCHAR(8) {_ASCII_BIN} NOT NULL DEFAULT 'open',"
        f" ADD COLUMN history VARCHAR(8) {_ASCII_BIN} NOT NULL DEFAULT 'joined',"
        " ADD CONSTRAINT ck_communities_visibility CHECK (visibility IN ('private', 'public')),"
        " ADD CONSTRAINT ck_communities_join_policy CHECK (join_policy IN ('open', 'approval')),"
        " ADD CONSTRAINT ck_communities_history CHECK (history IN ('joined', 'all'))",
    ],
)

# The message lifecycle (docs/store.md, "Changes to messages"): replies, mentions,
# edits, recalls, reactions and delete-for-me. Nothing is added to `messages` itself (an
# edit or a recall UPDATEs its text columns, or `sealed`): what a message gained after
# it was sent lives in tables of its own, keyed by the message id. `message_changes` is
# the change log: one row per applied change, its id the cursor a device syncs changes
# by (docs/chat-protocol.md), with the conversation's (cmd, sender, dstid) so that the
# sync reads it the way it reads messages, and `only_user` set for a change that only
# one user sees (delete for me). A change's (actor, cid) is unique: a resend is acked,
# never applied twice. A mention of everyone is user_id 0.
MESSAGE_LIFECYCLE = Migration(
    version=8,
    name="message lifecycle: replies, mentions, edits, recalls, reactions, change log",
    sqlite=[
        """CREATE TABLE message_meta (
            message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
            reply_to INTEGER NULL,
            edited INTEGER NULL,
            recalled INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE message_mentions (
            message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL,
            PRIMARY KEY (message_id, user_id)
        )""",
        "CREATE INDEX ix_message_mentions_user ON message_mentions (user_id, message_id)",
        """CREATE TABLE message_reactions (
            message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            emoji TEXT NOT NULL CHECK (length(emoji) BETWEEN 1 AND 16),
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created INTEGER NOT NULL,
            PRIMARY KEY (message_id, emoji, user_id)
        )""",
        """CREATE TABLE message_hidden (
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            PRIMARY KEY (user_id, message_id)
        )""",
        """CREATE TABLE message_changes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            cmd INTEGER NOT NULL,
            sender INTEGER NOT NULL,
            dstid INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            actor INTEGER NOT NULL,
            only_user INTEGER NULL,
            cid TEXT NULL CHECK (length(cid) <= 64),
            created INTEGER NOT NULL
        )""",
        "CREATE UNIQUE INDEX ux_message_changes_actor_cid ON message_changes (actor, cid)",
        "CREATE INDEX ix_message_changes_message ON message_changes (message_id)",
    ],
    mysql=[
        f"""CREATE TABLE IF NOT EXISTS message_meta (
            message_id BIGINT NOT NULL PRIMARY KEY,
            reply_to BIGINT NULL,
            edited BIGINT NULL,
            recalled SMALLINT NOT NULL DEFAULT 0,
            CONSTRAINT fk_message_meta_message FOREIGN KEY (message_id)
                REFERENCES messages (id) ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS message_mentions (
            message_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL,
            PRIMARY KEY (message_id, user_id),
            KEY ix_message_mentions_user (user_id, message_id),
            CONSTRAINT fk_message_mentions_message FOREIGN KEY (message_id)
                REFERENCES messages (id) ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS message_reactions (
            message_id BIGINT NOT NULL,
            emoji VARCHAR(16) {_UTF8_BIN} NOT NULL,
            user_id BIGINT NOT NULL,
            created BIGINT NOT NULL,
            PRIMARY KEY (message_id, emoji, user_id),
            CONSTRAINT fk_message_reactions_message FOREIGN KEY (message_id)
                REFERENCES messages (id) ON DELETE CASCADE,
            CONSTRAINT fk_message_reactions_user FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS message_hidden (
            user_id BIGINT NOT NULL,
            message_id BIGINT NOT NULL,
            PRIMARY KEY (user_id, message_id),
            CONSTRAINT fk_message_hidden_user FOREIGN KEY (user_id)
                REFERENCES users (id) ON DELETE CASCADE,
            CONSTRAINT fk_message_hidden_message FOREIGN KEY (message_id)
                REFERENCES messages (id) ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS message_changes (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            message_id BIGINT NOT NULL,
            cmd SMALLINT NOT NULL,
            sender BIGINT NOT NULL,
            dstid BIGINT NOT NULL,
            kind SMALLINT NOT NULL,
            actor BIGINT NOT NULL,
            only_user BIGINT NULL,
            cid VARCHAR(64) {_UTF8_BIN} NULL,
            created BIGINT NOT NULL,
            UNIQUE KEY ux_message_changes_actor_cid (actor, cid),
            KEY ix_message_changes_message (message_id),
            CONSTRAINT fk_message_changes_message FOREIGN KEY (message_id)
                REFERENCES messages (id) ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
    ],
)

#: Voice and file uploads (issue 19): who uploaded which bytes (the per-user quota, the
#: server's own duration of a voice message, a file's name and type), and which file
#: messages carry which file, so that a file is served only to the members of the
#: conversations it was sent in and to its uploader (docs/media.md, fastim/store/files.py).
UPLOADS = Migration(
    version=9,
    name="uploads and file messages",
    sqlite=[
        """CREATE TABLE uploads (
            owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            digest TEXT NOT NULL CHECK (length(digest) = 64),
            kind TEXT NOT NULL CHECK (kind IN ('voice', 'file')),
            name TEXT NOT NULL CHECK (length(name) <= 255),
            type TEXT NOT NULL CHECK (length(type) <= 127),
            size INTEGER NOT NULL,
            millis INTEGER NOT NULL DEFAULT 0,
            created INTEGER NOT NULL,
            PRIMARY KEY (owner_id, digest, kind)
        )""",
        "CREATE INDEX ix_uploads_digest ON uploads (digest, kind)",
        """CREATE TABLE message_files (
            message_id INTEGER NOT NULL PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
            digest TEXT NOT NULL CHECK (length(digest) = 64),
            conv TEXT NOT NULL,
            name TEXT NOT NULL CHECK (length(name) <= 255)
        )""",
        "CREATE INDEX ix_message_files_digest ON message_files (digest)",
    ],
    mysql=[
        f"""CREATE TABLE IF NOT EXISTS uploads (
            owner_id BIGINT NOT NULL,
            digest CHAR(64) {_ASCII_BIN} NOT NULL,
            kind VARCHAR(5) {_ASCII_BIN} NOT NULL,
            name VARCHAR(255) NOT NULL,
            type VARCHAR(127) {_ASCII_BIN} NOT NULL,
            size BIGINT NOT NULL,
            millis BIGINT NOT NULL DEFAULT 0,
            created BIGINT NOT NULL,
            PRIMARY KEY (owner_id, digest, kind),
            KEY ix_uploads_digest (digest, kind),
            CONSTRAINT ck_uploads_kind CHECK (kind IN ('voice', 'file')),
            CONSTRAINT fk_uploads_owner FOREIGN KEY (owner_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS message_files (
            message_id BIGINT NOT NULL PRIMARY KEY,
            digest CHAR(64) {_ASCII_BIN} NOT NULL,
            conv VARCHAR(48) {_ASCII_BIN} NOT NULL,
            name VARCHAR(255) NOT NULL,
            KEY ix_message_files_digest (digest),
            CONSTRAINT fk_message_files_message FOREIGN KEY (message_id) REFERENCES messages (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
    ],
)


def _ensure_search_index(tx: Tx) -> None:
    # Imported here: fastim.store.search imports the message columns, which import this.
    from fastim.store.search import ensure_index

    ensure_index(tx)


# Message search (docs/store.md "Search"), kept OFF the commit path: the group commit
# stores messages exactly as before (no trigger, no extra statement in its
# transaction); an indexer (fastim/store/search.py, run by fastim/chat/search.py) reads
# new messages and the change log after they commit and indexes them in short batches
# of their own. `search_cursor` is where it is, in the database so a restart resumes:
# every message id <= `upto_message` and every change id <= `upto_change` is indexed.
# Both start at 0, so the indexer indexes the messages stored before this migration
# (in batches, while the server runs) instead of the migration holding a lock on them.
# SQLite: FTS5 with the trigram tokenizer (CJK without spaces, case folded), holding its
# own copy of the text: re-indexing an edit must remove the old text's trigrams, which
# an external-content table could only do with the old text in hand (and SQLite 3.40 has
# no contentless_delete). MariaDB: InnoDB FULLTEXT has no CJK parser, so a Mroonga table
# (bigram tokenizer, NFKC + case folding) with the conversation as a column, so a page's
# ids come from Mroonga alone; the table is made by search.ensure_index, which loads the
# engine if it can and otherwise leaves search off (503) without stopping the server.
MESSAGE_SEARCH = Migration(
    version=10,
    name="message search: an index kept after commit, and its cursor",
    sqlite=[
        """CREATE TABLE IF NOT EXISTS search_cursor (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            upto_message INTEGER NOT NULL,
            upto_change INTEGER NOT NULL
        )""",
        "INSERT OR IGNORE INTO search_cursor (id, upto_message, upto_change) VALUES (1, 0, 0)",
        "CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5(content,"
        " tokenize='trigram')",
    ],
    mysql=[
        f"""CREATE TABLE IF NOT EXISTS search_cursor (
            id TINYINT NOT NULL PRIMARY KEY,
            upto_message BIGINT NOT NULL,
            upto_change BIGINT NOT NULL,
            CONSTRAINT ck_search_cursor_one CHECK (id = 1)
        ) {_MYSQL_TABLE}""",
        "INSERT IGNORE INTO search_cursor (id, upto_message, upto_change) VALUES (1, 0, 0)",
        _ensure_search_index,
    ],
)


#: Notifications (issue 20, docs/store.md): conversations a user muted, and the Web Push
#: subscriptions of their browsers, each tied to the login session that made it.
NOTIFICATIONS = Migration(
    version=11,
    name="mutes and push subscriptions",
    sqlite=[
        # A conversation a user muted: kind 10 (1:1, dstid the other user) or 11 (group).
        # muted_until: Unix seconds the mute ends; 0 while it lasts until unmuted.
        """CREATE TABLE mutes (
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            kind INTEGER NOT NULL CHECK (kind IN (10, 11)),
            dstid INTEGER NOT NULL,
            muted_until INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (user_id, kind, dstid)
        )""",
        # One Web Push subscription per browser (RFC 8030 §5): the endpoint is unique (by
        # its SHA-256, a short key on both databases); the token that made it, so that
        # logging that session out removes it.
        """CREATE TABLE push_subscriptions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            endpoint_hash TEXT NOT NULL UNIQUE CHECK (length(endpoint_hash) = 64),
            endpoint TEXT NOT NULL CHECK (length(endpoint) <= 2048),
            p256dh TEXT NOT NULL CHECK (length(p256dh) <= 100),
            auth TEXT NOT NULL CHECK (length(auth) <= 40),
            token_hash TEXT NOT NULL CHECK (length(token_hash) <= 64),
            created INTEGER NOT NULL
        )""",
        "CREATE INDEX ix_push_subscriptions_user ON push_subscriptions (user_id)",
        "CREATE INDEX ix_push_subscriptions_token ON push_subscriptions (token_hash)",
    ],
    mysql=[
        f"""CREATE TABLE IF NOT EXISTS mutes (
            user_id BIGINT NOT NULL,
            kind SMALLINT NOT NULL,
            dstid BIGINT NOT NULL,
            muted_until BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (user_id, kind, dstid),
            CONSTRAINT ck_mutes_kind CHECK (kind IN (10, 11)),
            CONSTRAINT fk_mutes_user FOREIGN KEY (user_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
        f"""CREATE TABLE IF NOT EXISTS push_subscriptions (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT NOT NULL,
            endpoint_hash CHAR(64) {_ASCII_BIN} NOT NULL,
            endpoint VARCHAR(2048) {_ASCII_BIN} NOT NULL,
            p256dh VARCHAR(100) {_ASCII_BIN} NOT NULL,
            auth VARCHAR(40) {_ASCII_BIN} NOT NULL,
            token_hash VARCHAR(64) {_ASCII_BIN} NOT NULL,
            created BIGINT NOT NULL,
            UNIQUE KEY uq_push_subscriptions_endpoint (endpoint_hash),
            KEY ix_push_subscriptions_user (user_id),
            KEY ix_push_subscriptions_token (token_hash),
            CONSTRAINT fk_push_subscriptions_user FOREIGN KEY (user_id) REFERENCES users (id)
                ON DELETE CASCADE
        ) {_MYSQL_TABLE}""",
    ],
)


def canonical_mobiles(tx: Tx) -> None:
    """Rewrite every stored phone number in its canonical form (migration 12).

    Accounts: each number becomes canonical (``+86 138...``, ``0086138...`` and
    ``138...`` are one number, fastim/store/phones.py). Where several accounts share a
    canonical number, the account already holding it keeps it, else the oldest (lowest
    id) gets it; every other keeps its number exactly as stored, and still logs in by
    typing it so (Accounts.login tries the canonical number first, then the number as
    typed). Nothing is deleted or merged: an operator decides, and the log names them.
    Friend requests asked by number: each ``to_mobile`` becomes canonical; a second
    request of one asker for one number (the unique key) is dropped, the oldest kept.
    Both databases: plain UPDATEs and DELETEs, so the step can run again."""
    taken: dict[str, int] = {}
    rows = [(int(i), str(m)) for i, m in tx.rows("SELECT id, mobile FROM users ORDER BY id")]
    for user_id, mobile in rows:
        if canonical_mobile(mobile) == mobile:
            taken[mobile] = user_id
    for user_id, mobile in rows:
        canonical = canonical_mobile(mobile)
        if canonical is None or canonical == mobile:
            continue
        if canonical in taken:
            _log.warning("migration 12: user %s keeps mobile %r: user %s has %r",
                         user_id, mobile, taken[canonical], canonical)
            continue
        tx.execute("UPDATE users SET mobile = ? WHERE id = ?", (canonical, user_id))
        taken[canonical] = user_id
    kept: dict[tuple[int, str], int] = {}
    changes: list[tuple[str, int]] = []
    for request_id, from_id, to_mobile in tx.rows(
            "SELECT id, from_id, to_mobile FROM friend_requests WHERE to_mobile IS NOT NULL"
            " ORDER BY id"):
        canonical = canonical_mobile(str(to_mobile)) or str(to_mobile)
        key = (int(from_id), canonical)
        if key in kept:  # deleted first, so that no UPDATE below meets its unique key
            tx.execute("DELETE FROM friend_requests WHERE id = ?", (request_id,))
            continue
        kept[key] = int(request_id)
        if canonical != to_mobile:
            changes.append((canonical, int(request_id)))
    for canonical, request_id in changes:
        tx.execute("UPDATE friend_requests SET to_mobile = ? WHERE id = ?",
                   (canonical, request_id))


#: Phone numbers in one canonical form (issue 24, docs/store.md): a Python step, the same
#: on both databases.
CANONICAL_MOBILES = Migration(
    version=12,
    name="phone numbers in their canonical form",
    sqlite=[canonical_mobiles],
    mysql=[canonical_mobiles],
)


def _rebuild_search_index(tx: Tx) -> None:
    """MariaDB: drop the Mroonga table of migration 10 and let the indexer fill the new
    one (with `lo` and `hi`) from the messages as they are now: the index cursor goes
    back to the first message, and past every change logged (a message is re-read with
    its current text, so its past edits and recalls need no replay)."""
    if tx.value("SELECT COUNT(*) FROM information_schema.TABLES WHERE table_schema ="
                " DATABASE() AND table_name = 'message_search'"):
        tx.execute("DROP TABLE message_search")
    tx.execute("UPDATE search_cursor SET upto_message = 0,"
               " upto_change = (SELECT COALESCE(MAX(id), 0) FROM message_changes)")
    _ensure_search_index(tx)


#: MariaDB's search index gains each 1:1 chat's two users (issue 20, docs/store.md
#: "Search"): a search then finds a user's 1:1 chats inside Groonga, where it listed them
#: first with a DISTINCT over all of the user's 1:1 messages (tens of milliseconds at a
#: million messages), and the whole search is one Groonga select. The table is rebuilt:
#: search finds the older messages again as the indexer catches up (at most a tenth of
#: the time, fastim/chat/search.py DUTY). SQLite's index is unchanged.
SEARCH_PAIRS = Migration(
    version=13,
    name="message search on MariaDB: the index knows each 1:1 chat's two users",
    sqlite=[],
    mysql=[_rebuild_search_index],
)


#: The language of each push subscription (issue 20): a push's title and body are in the
#: language of the browser that will show it (the page sends its current one when it
#: subscribes); rows from before it are English, as their pushes were. Version 14: 13 is
#: another change's. One statement, so that a stop half-way leaves nothing to undo by hand
#: (MySQL 8 has no ADD COLUMN IF NOT EXISTS).
PUSH_LANGUAGE = Migration(
    version=14,
    name="the language of each push subscription",
    sqlite=[
        "ALTER TABLE push_subscriptions ADD COLUMN lang TEXT NOT NULL DEFAULT 'en' "
        "CHECK (length(lang) BETWEEN 1 AND 16)",
    ],
    mysql=[
        f"ALTER TABLE push_subscriptions ADD COLUMN lang VARCHAR(16) {_ASCII_BIN} "
        "NOT NULL DEFAULT 'en'",
    ],
)

#: Every migration, in order. Append new ones at the end with the next version number.
MIGRATIONS: list[Migration] = [ACCOUNTS, MESSAGES, SEALED_MESSAGES, GROUP_NAME_KEYS,
                               FRIENDS_BY_CONSENT, HOT_PATH_INDEXES, SAFE_GROUPS,
                               MESSAGE_LIFECYCLE, UPLOADS, MESSAGE_SEARCH, NOTIFICATIONS,
                               CANONICAL_MOBILES, SEARCH_PAIRS, PUSH_LANGUAGE]
