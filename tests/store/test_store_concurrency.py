"""The unique keys and row locks hold under real concurrency.

The store here has 10 connections (10 worker threads), so on MariaDB the requests really
run in parallel transactions; on SQLite they queue for the single writer. Either way the
outcome must be exactly one winner.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fastim.accounts import Accounts, Contacts
from fastim.errors import AppError
from fastim.store import Group, Store, User, open_store
from tests.store_fixtures import TEST_KDF, gather, new_mobile, run, table_counts

N = 10


@pytest.fixture
def wide_store(db_url: str) -> Iterator[Store]:
    store = run(open_store(db_url, pool_size=N))
    try:
        yield store
    finally:
        run(store.close())


@pytest.fixture
def services(wide_store: Store) -> Iterator[tuple[Accounts, Contacts]]:
    accounts = Accounts(wide_store, kdf=TEST_KDF, kdf_threads=4)
    try:
        yield accounts, Contacts(wide_store, group_limit=5)
    finally:
        accounts.close()


def _split(results: list[Any]) -> tuple[list[Any], list[int]]:
    """Successes, and the statuses of the AppErrors; anything else fails the test."""
    ok = [r for r in results if not isinstance(r, BaseException)]
    statuses = []
    for r in results:
        if isinstance(r, BaseException):
            if not isinstance(r, AppError):
                raise r
            statuses.append(r.status)
    return ok, statuses


def _users(accounts: Accounts, n: int) -> list[User]:
    return [
        run(
            accounts.register(
                {"mobile": new_mobile(), "passwd": "correct horse", "nickname": f"u{i}"}
            )
        )
        for i in range(n)
    ]


def test_concurrent_registrations_of_one_number_make_one_account(
    services: tuple[Accounts, Contacts], wide_store: Store
) -> None:
    accounts, _ = services
    mobile = new_mobile()
    results = gather(
        *[
            accounts.register({"mobile": mobile, "passwd": f"password {i}", "nickname": f"n{i}"})
            for i in range(N)
        ]
    )
    ok, statuses = _split(results)
    assert len(ok) == 1
    assert statuses == [409] * (N - 1)
    assert table_counts(wide_store)["users"] == 1
    assert run(wide_store.get_user_by_mobile(mobile)) == ok[0]


def test_concurrent_friend_requests_for_one_pair_make_one_friendship(
    services: tuple[Accounts, Contacts], wide_store: Store
) -> None:
    accounts, contacts = services
    a, b = _users(accounts, 2)
    # Both ask each other, many times, at once: the pair's rows are locked lower id first,
    # so the first ask is a request, the first ask back accepts it, and the rest see
    # the request or the friendship; never two crossed requests and no friendship.
    results = gather(
        *[
            contacts.add_friend(a, {"dstid": b.id})
            if i % 2
            else contacts.add_friend(b, {"dstname": a.mobile})
            for i in range(N)
        ]
    )
    ok, statuses = _split(results)
    assert statuses == [] and set(ok) == {"requested", "friends"}
    assert table_counts(wide_store)["friendships"] == 2
    assert table_counts(wide_store)["friend_requests"] == 0
    assert run(wide_store.friend_ids(a.id)) == [b.id]
    assert run(wide_store.friend_ids(b.id)) == [a.id]


def test_concurrent_friendships_among_many_users_all_land(
    services: tuple[Accounts, Contacts], wide_store: Store
) -> None:
    accounts, contacts = services
    users = _users(accounts, 6)
    pairs = [(x, y) for i, x in enumerate(users) for y in users[i + 1 :]]
    ok, statuses = _split(gather(*[contacts.add_friend(x, {"dstid": y.id}) for x, y in pairs]))
    assert ok == ["requested"] * len(pairs) and statuses == []
    ok, statuses = _split(gather(*[contacts.add_friend(y, {"dstid": x.id}) for x, y in pairs]))
    assert ok == ["friends"] * len(pairs) and statuses == []
    for u in users:
        assert len(run(wide_store.friend_ids(u.id))) == len(users) - 1


def test_concurrent_creations_of_one_group_name_make_one_group(
    services: tuple[Accounts, Contacts], wide_store: Store
) -> None:
    accounts, contacts = services
    owners = _users(accounts, N)
    ok, statuses = _split(
        gather(*[contacts.create_group(o, {"name": "the one 🏆"}) for o in owners])
    )
    assert len(ok) == 1 and statuses == [409] * (N - 1)
    counts = table_counts(wide_store)
    assert (counts["communities"], counts["memberships"]) == (1, 1)


def test_concurrent_creations_respect_the_per_owner_limit(
    services: tuple[Accounts, Contacts], wide_store: Store
) -> None:
    accounts, contacts = services
    (owner,) = _users(accounts, 1)
    ok, statuses = _split(
        gather(*[contacts.create_group(owner, {"name": f"mine {i}"}) for i in range(8)])
    )
    assert len(ok) == 5 and statuses == [409] * 3
    assert run(wide_store.list_user_groups(owner.id, 0, 100)).total == 5


def test_concurrent_joins_of_one_member_make_one_membership(
    services: tuple[Accounts, Contacts], wide_store: Store
) -> None:
    accounts, contacts = services
    owner, member = _users(accounts, 2)
    group = run(contacts.create_group(owner, {"name": "club"}))
    ok, statuses = _split(
        gather(*[contacts.join_group(member, {"dstid": group.id}) for _ in range(N)])
    )
    assert len(ok) == 1 and statuses == [409] * (N - 1)
    assert run(wide_store.member_ids(group.id)) == sorted([owner.id, member.id])


def _owner_invariant(store: Store, group: Group) -> int:
    current = run(store.get_group(group.id))
    assert current is not None
    members = run(store.list_members(group.id, 0, 100)).rows
    owners = [m.user.id for m in members if m.role == "owner"]
    assert owners == [current.owner_id]  # exactly one owner, and it is a member
    return current.owner_id


def test_hand_over_racing_the_new_owner_leaving_keeps_one_owner(
    services: tuple[Accounts, Contacts], wide_store: Store
) -> None:
    accounts, contacts = services
    for round_ in range(4):
        owner, heir = _users(accounts, 2)
        group = run(contacts.create_group(owner, {"name": f"race {round_}"}))
        run(contacts.join_group(heir, {"dstid": group.id}))
        ok, statuses = _split(
            gather(
                contacts.transfer_group(owner, {"dstid": group.id, "ownerid": heir.id}),
                contacts.leave_group(heir, {"dstid": group.id}),
            )
        )
        assert len(ok) == 1 and statuses == [409]  # one wins; the other sees the new state
        _owner_invariant(wide_store, group)


def test_concurrent_logins_on_one_device_leave_one_valid_token(
    services: tuple[Accounts, Contacts], wide_store: Store
) -> None:
    accounts, _ = services
    (user,) = _users(accounts, 1)
    logins, statuses = _split(
        gather(
            *[
                accounts.login(
                    {"mobile": user.mobile, "passwd": "correct horse", "device": "phone"}
                )
                for _ in range(5)
            ]
        )
    )
    assert statuses == [] and len(logins) == 5
    valid = [login for login in logins if run(accounts.authenticate(login.token))]
    assert len(valid) == 1
    assert table_counts(wide_store)["tokens"] == 1
