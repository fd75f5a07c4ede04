"""Accounts: register, log in and out, authenticate tokens, find users, edit profiles.

Login tokens are ``secrets.token_urlsafe(32)`` (256 random bits). The database keeps only
their SHA-256, so a leaked database (or backup) holds no usable token; a plain hash is
enough because the token, unlike a password, has full entropy. Each login is a session of
one device: logging in again from the same ``device`` replaces its old token, other
devices stay logged in, and logging out revokes only the token presented.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from fastim.accounts import fields
from fastim.accounts.passwords import (
    DEFAULT_KDF,
    check_kdf,
    hash_password,
    needs_rehash,
    verify_password,
)
from fastim.accounts.throttle import (
    LoginThrottle,
    RedisLoginThrottle,
    RedisRegisterThrottle,
    RegisterThrottle,
)
from fastim.bus.base import Publisher, publish_committed
from fastim.bus.events import TokensRevoked
from fastim.errors import AppError, bad_request, conflict, not_found, unauthorized
from fastim.store import Credentials, Duplicate, Session, Store, User
from fastim.store.phones import as_typed

T = TypeVar("T")

TOKEN_TTL = 30 * 24 * 3600  # seconds a login stays valid
MAX_SESSIONS = 20  # tokens kept per user; the oldest go first
# What a token from token_urlsafe looks like; anything else is refused without a query.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")
# Login failures say the same thing whether the number exists or the password is wrong.
LOGIN_FAILED = "mobile number or password is incorrect"


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Login:
    """The result of a successful login: who, the token (shown once), when it expires."""

    user: User
    token: str
    device: str
    expires: int
    #: Hashes of this user's live tokens the login replaced (same device) or pushed out
    #: (past max_sessions): their /chat connections must end too.
    replaced: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """fastIM's login reply: the user's profile with ``token`` in it."""
        return {**self.user.private(), "token": self.token, "expires": self.expires}


class Accounts:
    """The account operations, on top of a :class:`~fastim.store.Store`.

    Methods that take ``values`` validate them (see :mod:`fastim.accounts.fields`) and raise
    :class:`~fastim.errors.AppError` with the status the client should see.
    """

    def __init__(
        self,
        store: Store,
        *,
        kdf: str = DEFAULT_KDF,
        token_ttl: int = TOKEN_TTL,
        max_sessions: int = MAX_SESSIONS,
        throttle: LoginThrottle | RedisLoginThrottle | None = None,
        register_throttle: RegisterThrottle | RedisRegisterThrottle | None = None,
        clock: Callable[[], float] = time.time,
        kdf_threads: int = 2,
        bus: Publisher | None = None,
    ) -> None:
        self.store = store
        #: Where revoked tokens are published, so that the chat connections they opened
        #: end on every node (None: nowhere, e.g. a script's use).
        self.bus = bus
        self.kdf = check_kdf(kdf)
        self.token_ttl = token_ttl
        self.max_sessions = max_sessions
        self.throttle = throttle if throttle is not None else LoginThrottle()
        self.register_throttle = (register_throttle if register_throttle is not None
                                  else RegisterThrottle())
        self.clock = clock
        # Password hashing is CPU-bound by design; a small dedicated pool keeps a flood of
        # logins from taking every thread (and every core) of the process.
        self._kdf_pool = ThreadPoolExecutor(kdf_threads, thread_name_prefix="fastim-kdf")
        # Verifying against this when the mobile number is unknown makes a failed login
        # take as long either way, so timing does not reveal which numbers exist.
        self._decoy = hash_password(secrets.token_urlsafe(16), self.kdf)

    def close(self) -> None:
        """Stop the hashing threads."""
        self._kdf_pool.shutdown(wait=True)

    def _now(self) -> int:
        return int(self.clock())

    async def _in_kdf_pool(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._kdf_pool, fn, *args)

    # --- registration and login ----------------------------------------------------------

    async def register(self, values: Mapping[str, Any], address: str = "") -> User:
        """Create an account from mobile, passwd, nickname and optional avatar, sex, memo.

        409 if the number is taken (decided by the database's unique key, so two concurrent
        registrations of one number give one account and one 409). 429 (``retry_after``)
        after too many registrations from ``address`` (none counted without one: a
        script's own use). A taken number is found before the password is hashed; a decoy
        hash then takes the same time, so the 409 is not told apart by its timing, and
        the throttle bounds how much hashing one address can ask for.
        """
        mobile = fields.mobile(values)
        password = fields.password(values)
        nickname = fields.nickname(values)
        avatar = fields.local_url(values, "avatar") or ""
        sex = fields.sex(values) or "U"
        memo = fields.memo(values) or ""
        assert nickname is not None
        if address:
            await self.register_throttle.attempt(address)
        if await self.store.get_user_by_mobile(mobile) is not None:
            await self._in_kdf_pool(hash_password, password, self.kdf)  # the decoy
            raise conflict("this mobile number is already registered")
        passwd, salt = await self._in_kdf_pool(hash_password, password, self.kdf)
        try:
            return await self.store.create_user(
                mobile=mobile,
                passwd=passwd,
                salt=salt,
                kdf=self.kdf,
                nickname=nickname,
                avatar=avatar,
                sex=sex,
                memo=memo,
                now=self._now(),
            )
        except Duplicate:
            raise conflict("this mobile number is already registered") from None

    async def login(self, values: Mapping[str, Any], address: str = "") -> Login:
        """Check mobile + passwd and issue a token for ``device`` (optional).

        401 on a wrong number or password (the same message for both); 429 with
        ``retry_after`` after too many attempts for the number or from the address.
        """
        mobile = fields.mobile(values)
        raw_password = fields.password_given(values)  # NFC, as register stored it
        device = fields.text(values, "device", max_len=fields.DEVICE_MAX)
        await self.throttle.attempt(mobile, address)
        found = await self._credentials_for(mobile, as_typed(str(values.get("mobile"))),
                                            raw_password)
        if found is None:
            raise unauthorized(LOGIN_FAILED)
        user, credentials = found
        await self.throttle.success(mobile, address)
        if needs_rehash(credentials.kdf, self.kdf):
            passwd, salt = await self._in_kdf_pool(hash_password, raw_password, self.kdf)
            await self.store.set_credentials(user.id, passwd, salt, self.kdf)
        login = await self._issue_token(user, device)
        if login.replaced:
            await publish_committed(self.bus, TokensRevoked(
                user.id, login.replaced, reason="signed in again"))
        return login

    async def _credentials_for(self, mobile: str, typed: str,
                               raw_password: str) -> tuple[User, Credentials] | None:
        """The account whose number is ``mobile`` (canonical) and whose password is
        ``raw_password``, else None. Where migration 12 found two accounts with one
        number, the one that kept its number as stored (not canonical) is reached by
        typing that number exactly: it is tried when the canonical one's password fails."""
        tried = False
        for number in dict.fromkeys((mobile, typed)):
            found = await self.store.get_credentials(number)
            if found is None:
                continue
            tried = True
            _, credentials = found
            if await self._in_kdf_pool(verify_password, raw_password, credentials.passwd,
                                       credentials.salt, credentials.kdf):
                return found
        if not tried:
            await self._in_kdf_pool(verify_password, raw_password, *self._decoy, self.kdf)
        return None

    async def _issue_token(self, user: User, device: str) -> Login:
        token = secrets.token_urlsafe(32)
        # No device name: each such login is its own session (capped by max_sessions).
        device = device or "anon-" + secrets.token_hex(8)
        now = self._now()
        expires = now + self.token_ttl
        replaced = await self.store.save_token(
            user.id, token_hash(token), device, expires, now=now, max_sessions=self.max_sessions
        )
        return Login(user, token, device, expires, tuple(replaced))

    async def session(self, token: str | None) -> tuple[User, Session] | None:
        """The user and session a token belongs to, or None (unknown, revoked, expired)."""
        if not token or not TOKEN_SHAPE.fullmatch(token):
            return None
        return await self.store.session_for_token(token_hash(token), now=self._now())

    async def authenticate(self, token: str | None) -> User | None:
        """The user a token belongs to, or None."""
        found = await self.session(token)
        return None if found is None else found[0]

    async def logout(self, token: str, user: User | None = None) -> bool:
        """Revoke one token (this device only); True if it was valid. Given the token's
        `user`, the chat connections opened with it end too."""
        if not TOKEN_SHAPE.fullmatch(token or ""):
            return False
        deleted = await self.store.delete_token(token_hash(token))
        if user is not None:
            await publish_committed(self.bus, TokensRevoked(
                user.id, (token_hash(token),), reason="logged out"))
        return deleted

    # --- profiles ------------------------------------------------------------------------

    async def find(self, values: Mapping[str, Any]) -> User:
        """A user by ``id`` (or ``dstid``); 404 if there is none."""
        user_id = fields.identifier(values, "id") or fields.identifier(values, "dstid")
        if user_id is None:
            raise bad_request("id is required")
        user = await self.store.get_user(user_id)
        if user is None:
            raise not_found("no such user")
        return user

    async def update_profile(self, user: User, values: Mapping[str, Any]) -> User:
        """Change any of nickname, avatar, sex, memo; the others stay as they are."""
        changes: dict[str, str] = {}
        for name, value in (
            ("nickname", fields.nickname(values, required=False)),
            ("avatar", fields.local_url(values, "avatar")),
            ("sex", fields.sex(values)),
            ("memo", fields.memo(values)),
        ):
            if value is not None:
                changes[name] = value
        if not changes:
            raise bad_request("nothing to change: give nickname, avatar, sex or memo")
        updated = await self.store.update_profile(user.id, changes)
        if updated is None:
            raise not_found("no such user")
        return updated

    async def change_password(
        self, user: User, values: Mapping[str, Any], current_token: str | None = None,
        address: str = "",
    ) -> None:
        """Replace the password after checking ``oldpasswd``; every other session of the
        user is logged out (the one presenting ``current_token`` stays).

        The check of ``oldpasswd`` is a login attempt: it counts against the login
        throttle's windows of the user's number and of ``address`` (429 beyond), so a
        stolen token does not open a faster way to guess the password."""
        old = fields.password_given(values, "oldpasswd")
        new = fields.password(values)
        await self.throttle.attempt(user.mobile, address)
        found = await self.store.get_credentials(user.mobile)
        if found is None:
            raise not_found("no such user")
        credentials = found[1]
        ok = await self._in_kdf_pool(
            verify_password, old, credentials.passwd, credentials.salt, credentials.kdf
        )
        if not ok:
            raise AppError(403, "oldpasswd is incorrect")
        await self.throttle.success(user.mobile, address)
        passwd, salt = await self._in_kdf_pool(hash_password, new, self.kdf)
        await self.store.set_credentials(user.id, passwd, salt, self.kdf)
        keep = None
        if current_token and TOKEN_SHAPE.fullmatch(current_token):
            keep = token_hash(current_token)
        await self.store.delete_user_tokens(user.id, keep=keep)
        # Every other session of the user was revoked: their open chats end too.
        await publish_committed(self.bus, TokensRevoked(
            user.id, None, keep=keep, reason="password changed"))
