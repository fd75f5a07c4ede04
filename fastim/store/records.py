"""The rows the store hands out, as small immutable dataclasses.

``to_dict`` methods give the JSON shape of fastIM's models (``ownerid``, ``createat``...),
minus the secrets: password hashes and salts never leave :class:`Credentials`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class User:
    """An account. ``created`` is Unix time in seconds."""

    id: int
    mobile: str
    nickname: str
    avatar: str
    sex: str
    memo: str
    created: int

    def public(self) -> dict[str, Any]:
        """What other users may see (no mobile number: it is contact data, not a profile)."""
        return {
            "id": self.id,
            "nickname": self.nickname,
            "avatar": self.avatar,
            "sex": self.sex,
            "memo": self.memo,
        }

    def private(self) -> dict[str, Any]:
        """What the account's own owner sees (``/user/me``, login)."""
        return {**self.public(), "mobile": self.mobile, "createat": self.created}


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user's password hash and the KDF parameters it was made with."""

    user_id: int
    passwd: str  # hex digest
    salt: str  # hex
    kdf: str  # e.g. "scrypt:16384:8:1", see fastim.accounts.passwords


@dataclass(frozen=True, slots=True)
class Session:
    """One login token of one device; only the SHA-256 of the token is stored."""

    token_hash: str
    user_id: int
    device: str
    expires: int
    created: int


@dataclass(frozen=True, slots=True)
class Group:
    """A group (fastIM's "community"). ``cate`` is fastIM's group type (1 = ordinary)."""

    id: int
    name: str
    owner_id: int
    icon: str
    memo: str
    cate: int
    created: int

    def to_dict(self) -> dict[str, Any]:
        """fastIM's Group JSON shape."""
        return {
            "id": self.id,
            "name": self.name,
            "ownerid": self.owner_id,
            "icon": self.icon,
            "memo": self.memo,
            "cate": self.cate,
            "createat": self.created,
        }


@dataclass(frozen=True, slots=True)
class Member:
    """A user's membership of a group: role is ``owner`` or ``member``."""

    user: User
    role: str
    joined: int

    def to_dict(self) -> dict[str, Any]:
        """The member's public profile plus role and join time."""
        return {**self.user.public(), "role": self.role, "joined": self.joined}


@dataclass(frozen=True, slots=True)
class FriendRequest:
    """A pending friend request as one of its two sides sees it.

    ``incoming``: the viewer was asked, and ``user`` is the asker. Outgoing: ``user`` is
    the one asked when the viewer asked by id; when they asked by mobile number,
    ``mobile`` is that number as typed and ``user`` is None, whether or not an account
    has it (the list must not tell). A declined request looks pending to its asker.
    """

    id: int
    incoming: bool
    user: User | None
    mobile: str | None
    created: int
    expires: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``/contact/requests``."""
        return {
            "id": self.id,
            "direction": "in" if self.incoming else "out",
            "user": None if self.user is None else self.user.public(),
            "mobile": self.mobile,
            "createat": self.created,
            "expires": self.expires,
        }


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What asking to be friends did: ``status`` is ``requested`` or ``friends``.

    ``delivered`` is the id of a request the one asked (``to_id``) should hear of now (a
    new request that reached them); ``befriended`` is the user who is now a friend when
    asking accepted their request (None when they were friends already).
    """

    status: str
    to_id: int | None = None
    delivered: int | None = None
    befriended: int | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list and the total number of rows in the whole list."""

    rows: list[T]
    total: int
    #: The count stopped at a bound (message search: fastim/store/search.py TOTAL_CAP):
    #: the whole list holds more than `total` rows.
    capped: bool = False
