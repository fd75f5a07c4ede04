"""The app's domain operations on top of the store: accounts, friends and groups.

    accounts = Accounts(store)                    # register, login, authenticate, logout, ...
    contacts = Contacts(store, community_limit=5) # addfriend, createcommunity, ...

Input comes in as the request's merged values; failures are
:class:`fastim.errors.AppError` values carrying the HTTP status to answer with.
"""

from fastim.accounts.contacts import (
    CommunityDissolved,
    ContactEvent,
    Contacts,
    FriendAdded,
    MemberJoined,
    MemberLeft,
)
from fastim.accounts.service import Accounts, Login, token_hash
from fastim.accounts.throttle import LoginThrottle, RedisLoginThrottle

__all__ = [
    "Accounts",
    "CommunityDissolved",
    "ContactEvent",
    "Contacts",
    "FriendAdded",
    "Login",
    "LoginThrottle",
    "MemberJoined",
    "MemberLeft",
    "RedisLoginThrottle",
    "token_hash",
]
