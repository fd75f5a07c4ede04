"""Friends and groups over both backends."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fastim.accounts import (
    ContactEvent,
    Contacts,
    FriendAdded,
    FriendRequested,
    GroupDissolved,
    MemberJoined,
    MemberLeft,
)
from fastim.errors import AppError
from fastim.store import Store, User
from tests.store_fixtures import befriend_users, run, table_counts


def _status(call: Callable[[], object]) -> int:
    with pytest.raises(AppError) as exc:
        run(call())  # type: ignore[arg-type]
    return exc.value.status


# --- friends -----------------------------------------------------------------------------


def test_addfriend_by_mobile_asks_and_asking_back_makes_friends_both_ways(
    contacts: Contacts, store: Store, make_user: Callable[..., User]
) -> None:
    me, you = make_user(), make_user()
    assert run(contacts.add_friend(me, {"dstname": you.mobile})) == "requested"
    assert run(contacts.load_friends(me, {})).rows == []  # not before you accept
    assert run(contacts.add_friend(you, {"dstname": me.mobile})) == "friends"
    assert run(contacts.load_friends(me, {})).rows == [you]
    assert run(contacts.load_friends(you, {})).rows == [me]
    assert run(store.are_friends(me.id, you.id)) and run(store.are_friends(you.id, me.id))
    assert run(store.friend_ids(you.id)) == [me.id]


def test_addfriend_by_id_and_by_mobile_field(
    contacts: Contacts, make_user: Callable[..., User]
) -> None:
    me, a, b = make_user(), make_user(), make_user()
    assert run(contacts.add_friend(me, {"dstid": str(a.id)})) == "requested"
    assert run(contacts.add_friend(me, {"mobile": b.mobile})) == "requested"
    assert run(contacts.add_friend(a, {"dstid": me.id})) == "friends"
    assert run(contacts.add_friend(b, {"mobile": me.mobile})) == "friends"
    page = run(contacts.load_friends(me, {}))
    assert (page.rows, page.total) == (sorted([a, b], key=lambda u: u.id), 2)


def test_addfriend_refusals(
    contacts: Contacts, store: Store, make_user: Callable[..., User]
) -> None:
    me, you = make_user(), make_user()
    befriend_users(contacts, me, you)
    before = table_counts(store)
    assert _status(lambda: contacts.add_friend(me, {"dstid": me.id})) == 400
    assert _status(lambda: contacts.add_friend(me, {"dstname": me.mobile})) == 400
    assert _status(lambda: contacts.add_friend(me, {"dstid": you.id + 1000})) == 404  # ids are public
    # Friends already: said so, both ways, and nothing changes.
    assert run(contacts.add_friend(me, {"dstid": you.id})) == "friends"
    assert run(contacts.add_friend(you, {"dstname": me.mobile})) == "friends"
    assert table_counts(store) == before


def test_loadfriend_pages(contacts: Contacts, make_user: Callable[..., User]) -> None:
    me = make_user()
    friends = [make_user() for _ in range(7)]
    for f in friends:
        befriend_users(contacts, me, f)
    pages = [run(contacts.load_friends(me, {"pagefrom": n, "pagesize": "3"})) for n in range(4)]
    assert [len(p.rows) for p in pages] == [3, 3, 1, 0]
    assert all(p.total == 7 for p in pages)
    assert [u for p in pages for u in p.rows] == friends  # ascending id, no overlap


# --- groups -------------------------------------------------------------------------


def test_creategroup_returns_the_group_and_makes_the_owner_a_member(
    contacts: Contacts, store: Store, make_user: Callable[..., User]
) -> None:
    owner = make_user()
    group = run(
        contacts.create_group(
            owner,
            {
                "name": " 周末 hiking 🥾 ",
                "icon": "/resource/abc.png",
                "memo": "every Sat",
                "cate": "1",
            },
        )
    )
    assert (group.name, group.owner_id, group.icon, group.memo, group.cate) == (
        "周末 hiking 🥾",
        owner.id,
        "/resource/abc.png",
        "every Sat",
        1,
    )
    assert group.id > 0
    assert group.to_dict()["ownerid"] == owner.id
    assert run(store.get_group(group.id)) == group
    members = run(contacts.group_members(owner, {"dstid": group.id}))
    assert [(m.user, m.role) for m in members.rows] == [(owner, "owner")]
    assert run(contacts.load_groups(owner, {})).rows == [group]


def test_group_names_are_unique(
    contacts: Contacts, store: Store, make_user: Callable[..., User]
) -> None:
    a, b = make_user(), make_user()
    run(contacts.create_group(a, {"name": "Chat"}))
    before = table_counts(store)
    assert _status(lambda: contacts.create_group(b, {"name": "Chat"})) == 409
    assert _status(lambda: contacts.create_group(b, {"name": " Chat "})) == 409  # trimmed
    # NFC: "é" typed as e + combining accent is the same name as the precomposed one.
    run(contacts.create_group(a, {"name": "Caf\u00e9"}))
    assert _status(lambda: contacts.create_group(b, {"name": "Cafe\u0301"})) == 409
    assert table_counts(store)["communities"] == before["communities"] + 1
    # Case does not make another name (the skeleton is case-folded: test_security_names.py)
    assert _status(lambda: contacts.create_group(b, {"name": "chat"})) == 409
    # Distinct on both backends (a MySQL collation would call some different emoji equal).
    run(contacts.create_group(b, {"name": "🍣"}))
    run(contacts.create_group(b, {"name": "🍺"}))


def test_the_per_owner_limit(store: Store, make_user: Callable[..., User]) -> None:
    contacts = Contacts(store, group_limit=2)
    owner = make_user()
    run(contacts.create_group(owner, {"name": "one"}))
    run(contacts.create_group(owner, {"name": "two"}))
    with pytest.raises(AppError) as exc:
        run(contacts.create_group(owner, {"name": "three"}))
    assert exc.value.status == 409
    assert "2 groups" in exc.value.message
    assert run(store.get_group_by_name("three")) is None
    # Dissolving one frees a place.
    one = run(store.get_group_by_name("one"))
    assert one is not None
    run(contacts.dissolve_group(owner, {"dstid": one.id}))
    run(contacts.create_group(owner, {"name": "three"}))


def test_join_by_name_or_id_and_leave(contacts: Contacts, make_user: Callable[..., User]) -> None:
    owner, a, b = make_user(), make_user(), make_user()
    group = run(contacts.create_group(owner, {"name": "joinable"}))
    assert run(contacts.join_group(a, {"dstname": "joinable"})) == group
    assert run(contacts.join_group(b, {"dstid": group.id})) == group
    assert _status(lambda: contacts.join_group(a, {"dstname": "joinable"})) == 409
    assert _status(lambda: contacts.join_group(owner, {"dstid": group.id})) == 409
    assert _status(lambda: contacts.join_group(a, {"dstname": "no such"})) == 404
    assert _status(lambda: contacts.join_group(a, {"dstid": group.id + 99})) == 404
    members = run(contacts.group_members(a, {"dstid": group.id}))
    assert [m.user.id for m in members.rows] == [owner.id, a.id, b.id]
    assert [m.role for m in members.rows] == ["owner", "member", "member"]
    assert members.total == 3
    run(contacts.leave_group(a, {"dstid": group.id}))
    assert _status(lambda: contacts.leave_group(a, {"dstid": group.id})) == 409
    assert run(contacts.load_groups(a, {})).total == 0
    assert run(contacts.group_members(b, {"dstid": group.id})).total == 2


def test_the_owner_cannot_leave_but_can_hand_over_or_dissolve(
    contacts: Contacts, store: Store, make_user: Callable[..., User]
) -> None:
    owner, member, outsider = make_user(), make_user(), make_user()
    group = run(contacts.create_group(owner, {"name": "owned"}))
    run(contacts.join_group(member, {"dstid": group.id}))
    with pytest.raises(AppError) as exc:
        run(contacts.leave_group(owner, {"dstid": group.id}))
    assert exc.value.status == 409
    assert "hand it over" in exc.value.message and "dissolve" in exc.value.message
    # Only the owner hands over, and only to a member.
    assert (
        _status(
            lambda: contacts.transfer_group(member, {"dstid": group.id, "ownerid": member.id})
        )
        == 403
    )
    assert (
        _status(
            lambda: contacts.transfer_group(owner, {"dstid": group.id, "ownerid": outsider.id})
        )
        == 409
    )
    moved = run(contacts.transfer_group(owner, {"dstid": group.id, "ownerid": member.id}))
    assert moved.owner_id == member.id
    roles = {m.user.id: m.role for m in run(store.list_members(group.id, 0, 10)).rows}
    assert roles == {member.id: "owner", owner.id: "member"}
    run(contacts.leave_group(owner, {"dstid": group.id}))
    # Only the (new) owner dissolves.
    assert _status(lambda: contacts.dissolve_group(owner, {"dstid": group.id})) == 403
    run(contacts.dissolve_group(member, {"dstid": group.id}))
    assert run(store.get_group(group.id)) is None
    assert run(store.member_ids(group.id)) == []
    assert _status(lambda: contacts.dissolve_group(member, {"dstid": group.id})) == 404


def test_members_list_is_for_members_only_and_paged(
    contacts: Contacts, make_user: Callable[..., User]
) -> None:
    owner, outsider = make_user(), make_user()
    group = run(contacts.create_group(owner, {"name": "paged"}))
    joined = [make_user() for _ in range(4)]
    for u in joined:
        run(contacts.join_group(u, {"dstid": group.id}))
    assert _status(lambda: contacts.group_members(outsider, {"dstid": group.id})) == 403
    first = run(contacts.group_members(owner, {"dstid": group.id, "pagesize": 2}))
    second = run(
        contacts.group_members(owner, {"dstid": group.id, "pagesize": 2, "pagefrom": 1})
    )
    third = run(
        contacts.group_members(owner, {"dstid": group.id, "pagesize": 2, "pagefrom": 2})
    )
    ids = [m.user.id for p in (first, second, third) for m in p.rows]
    assert ids == [owner.id] + [u.id for u in joined]
    assert first.total == second.total == third.total == 5
    assert first.rows[0].to_dict()["role"] == "owner"
    assert "mobile" not in first.rows[1].to_dict()


def test_loadgroup_pages(contacts: Contacts, make_user: Callable[..., User]) -> None:
    me = make_user()
    owners = [make_user() for _ in range(3)]
    groups = [
        run(contacts.create_group(o, {"name": f"group {i}"})) for i, o in enumerate(owners)
    ]
    for g in groups:
        run(contacts.join_group(me, {"dstid": g.id}))
    page0 = run(contacts.load_groups(me, {"pagesize": 2}))
    page1 = run(contacts.load_groups(me, {"pagesize": 2, "pagefrom": 1}))
    assert page0.rows + page1.rows == groups
    assert page0.total == page1.total == 3


def test_committed_changes_are_published_on_the_bus(
    contacts: Contacts, make_user: Callable[..., User]
) -> None:
    events: list[ContactEvent] = []
    settled: list[int] = []

    class BrokenBus:
        def publish(self, event: ContactEvent) -> None:
            events.append(event)
            raise RuntimeError("a bug in a hub must not break the request")

        async def settle(self) -> None:
            settled.append(len(events))

    contacts.bus = BrokenBus()
    a, b = make_user(), make_user()
    befriend_users(contacts, a, b)
    group = run(contacts.create_group(a, {"name": "events"}))
    run(contacts.join_group(b, {"dstid": group.id}))
    run(contacts.leave_group(b, {"dstid": group.id}))
    run(contacts.join_group(b, {"dstid": group.id}))
    with pytest.raises(AppError):
        run(contacts.join_group(b, {"dstid": group.id}))  # refused: no event
    run(contacts.dissolve_group(a, {"dstid": group.id}))
    assert isinstance(events[0], FriendRequested)
    assert events == [
        FriendRequested(events[0].request_id, a.id, b.id),
        FriendAdded(b.id, a.id),
        # (each with the member's history window: no message yet, so from 0)
        MemberJoined(group.id, a.id, 0),
        MemberJoined(group.id, b.id, 0),
        MemberLeft(group.id, b.id),
        MemberJoined(group.id, b.id, 0),
        GroupDissolved(group.id, tuple(sorted((a.id, b.id)))),
    ]
    assert settled == [1, 2, 3, 4, 5, 6, 7]  # each answer waits until its event has left


def test_hub_queries(contacts: Contacts, store: Store, make_user: Callable[..., User]) -> None:
    a, b, c = make_user(), make_user(), make_user()
    befriend_users(contacts, a, b)
    group = run(contacts.create_group(a, {"name": "hub"}))
    run(contacts.join_group(c, {"dstid": group.id}))
    assert run(store.group_ids(c.id)) == [group.id]
    assert run(store.member_ids(group.id)) == sorted([a.id, c.id])
    assert run(store.is_member(group.id, c.id)) and not run(store.is_member(group.id, b.id))
    assert not run(store.are_friends(a.id, c.id))
    assert run(store.get_users([c.id, a.id, 10**12])) == [a, c]
