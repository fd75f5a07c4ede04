"""The app's domain operations on top of the store: accounts, friends and groups.

    accounts = Accounts(store)                    # register, login, authenticate, logout, ...
    contacts = Contacts(store, group_limit=5) # addfriend, createcommunity, ...

Input comes in as the request's merged values; failures are
:class:`fastim.errors.AppError` values carrying the HTTP status to answer with. Committed
changes the chat must hear of are published on the bus (`fastim.bus.events`; the event
classes are re-exported here).
"""

from fastim.accounts.contacts import Contacts
from fastim.accounts.service import Accounts, Login, token_hash
from fastim.accounts.throttle import LoginThrottle, RedisLoginThrottle
from fastim.bus.events import (
    ContactEvent,
    FriendAdded,
    FriendRemoved,
    FriendRequested,
    GroupDissolved,
    MemberJoined,
    MemberLeft,
)

# The records the services answer with: handlers name them from here, not from the store.
from fastim.store.records import FriendRequest, Group, User

__all__ = [
    "Accounts",
    "FriendRequest",
    "Group",
    "GroupDissolved",
    "ContactEvent",
    "Contacts",
    "FriendAdded",
    "FriendRemoved",
    "FriendRequested",
    "Login",
    "LoginThrottle",
    "MemberJoined",
    "MemberLeft",
    "RedisLoginThrottle",
    "User",
    "token_hash",
]
