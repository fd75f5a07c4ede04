"""Friends by consent over both backends: requests, their answers, expiry, the daily
quota, unfriending and blocking, and the events each change publishes for the hubs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fastim.accounts import (
    ContactEvent,
    Contacts,
    FriendAdded,
    FriendRemoved,
    FriendRequested,
)
from fastim.errors import AppError
from fastim.store import Store, User
from tests.store_fixtures import befriend_users, new_mobile, run, table_counts


class Recorder:
    """A bus that keeps what the service published."""

    def __init__(self) -> None:
        self.events: list[ContactEvent] = []

    def publish(self, event: ContactEvent) -> None:
        self.events.append(event)

    async def settle(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bus() -> Recorder:
    return Recorder()


@pytest.fixture
def friends(store: Store, clock: Clock, bus: Recorder) -> Contacts:
    """Contacts with a small quota, a one-hour request lifetime and a recording bus."""
    return Contacts(store, requests_per_day=5, request_ttl=3600, clock=clock, bus=bus)


def _error(call: Callable[[], object]) -> AppError:
    with pytest.raises(AppError) as exc:
        run(call())  # type: ignore[arg-type]
    return exc.value


def _requests(contacts: Contacts, user: User) -> list[dict[str, object]]:
    return [r.to_dict() for r in run(contacts.friend_requests(user, {})).rows]


def test_the_answer_is_the_same_whoever_the_number_belongs_to(
    friends: Contacts, bus: Recorder, make_user: Callable[..., User]
) -> None:
    me, known, blocker = make_user(), make_user(), make_user()
    run(friends.block(blocker, {"dstid": me.id}))
    answers = [
        run(friends.add_friend(me, {"dstname": known.mobile})),  # has an account
        run(friends.add_friend(me, {"dstname": new_mobile()})),  # has none
        run(friends.add_friend(me, {"dstname": blocker.mobile})),  # blocks me
        run(friends.add_friend(me, {"dstname": known.mobile})),  # a repeat
        run(friends.add_friend(me, {"dstid": known.id})),  # the repeat, by id
    ]
    assert answers == ["requested"] * 5
    # Only the request that reached someone is announced.
    assert bus.events == [FriendRequested(bus.events[0].request_id, me.id, known.id)]  # type: ignore[union-attr]
    # My own list cannot tell them apart either: asked by number, each shows the number.
    mine = _requests(friends, me)
    assert [(r["direction"], r["user"], r["mobile"]) for r in mine][::-1] == [
        ("out", None, known.mobile), ("out", None, mine[1]["mobile"]),
        ("out", None, blocker.mobile)]
    assert [r["direction"] for r in _requests(friends, known)] == ["in"]
    assert _requests(friends, blocker) == []  # a blocked user's request never shows


def test_asking_back_accepts_and_both_lists_empty(
    friends: Contacts, store: Store, bus: Recorder, make_user: Callable[..., User]
) -> None:
    a, b = make_user(), make_user()
    assert run(friends.add_friend(a, {"dstid": b.id})) == "requested"
    incoming = _requests(friends, b)
    assert incoming[0]["direction"] == "in" and incoming[0]["user"] == a.public()
    outgoing = _requests(friends, a)
    assert outgoing[0]["direction"] == "out" and outgoing[0]["user"] == b.public()
    assert outgoing[0]["id"] == incoming[0]["id"]
    assert run(friends.add_friend(b, {"dstname": a.mobile})) == "friends"
    assert run(store.are_friends(a.id, b.id))
    assert _requests(friends, a) == _requests(friends, b) == []
    assert bus.events[-1] == FriendAdded(b.id, a.id)


def test_accept_and_decline_by_request_id(
    friends: Contacts, store: Store, bus: Recorder, make_user: Callable[..., User]
) -> None:
    a, b, c, d = make_user(), make_user(), make_user(), make_user()
    run(friends.add_friend(a, {"dstid": c.id}))
    run(friends.add_friend(b, {"dstid": c.id}))
    from_a, from_b = sorted(int(r["id"]) for r in _requests(friends, c))  # type: ignore[call-overload]
    # Only the one asked may answer, and only once.
    assert _error(lambda: friends.accept_request(a, {"requestid": from_a})).status == 404
    assert _error(lambda: friends.decline_request(d, {"requestid": from_b})).status == 404
    assert _error(lambda: friends.accept_request(c, {})).status == 400
    assert run(friends.accept_request(c, {"requestid": from_a})) == a
    assert bus.events[-1] == FriendAdded(c.id, a.id)
    assert _error(lambda: friends.accept_request(c, {"requestid": from_a})).status == 404
    assert run(friends.decline_request(c, {"requestid": from_b})) is None
    events = len(bus.events)
    # Declined: gone for c, still pending to b, who is not told and cannot tell.
    assert [r["user"] for r in _requests(friends, c)] == []
    assert [(r["direction"], r["user"]) for r in _requests(friends, b)] == [("out", c.public())]
    assert run(friends.add_friend(b, {"dstid": c.id})) == "requested"
    assert len(bus.events) == events  # no new request reaches c
    assert _error(lambda: friends.accept_request(c, {"requestid": from_b})).status == 404
    assert not run(store.are_friends(b.id, c.id))
    # c changes their mind: asking b accepts b's request after all.
    assert run(friends.add_friend(c, {"dstid": b.id})) == "friends"


def test_requests_expire(
    friends: Contacts, store: Store, clock: Clock, bus: Recorder, make_user: Callable[..., User]
) -> None:
    a, b = make_user(), make_user()
    run(friends.add_friend(a, {"dstid": b.id}))
    request_id = _requests(friends, b)[0]["id"]
    clock.now += 3600
    assert _requests(friends, a) == _requests(friends, b) == []
    assert _error(lambda: friends.accept_request(b, {"requestid": request_id})).status == 404
    # An expired request is not accepted by asking back: that asks anew.
    assert run(friends.add_friend(b, {"dstid": a.id})) == "requested"
    assert run(friends.add_friend(a, {"dstid": b.id})) == "friends"
    run(friends.add_friend(a, {"dstname": new_mobile()}))
    clock.now += 3600
    assert run(store.purge_expired_requests(now=int(clock.now))) == 1
    assert table_counts(store)["friend_requests"] == 0


def test_the_daily_quota_counts_new_requests_whoever_they_reach(
    friends: Contacts, clock: Clock, make_user: Callable[..., User]
) -> None:
    me, known, blocker, friend = make_user(), make_user(), make_user(), make_user()
    befriend_users(friends, me, friend)  # accepted: the row is gone, and not counted
    run(friends.block(blocker, {"dstid": me.id}))
    for values in ({"dstid": known.id}, {"dstname": new_mobile()},
                   {"dstname": blocker.mobile}, {"dstname": new_mobile()},
                   {"dstname": new_mobile()}):
        assert run(friends.add_friend(me, values)) == "requested"
    over = _error(lambda: friends.add_friend(me, {"dstname": new_mobile()}))
    assert over.status == 429 and over.retry_after == 24 * 3600
    # Unknown, known or blocking: the same 429, so the quota tells nothing either.
    assert _error(lambda: friends.add_friend(me, {"dstid": make_user().id})).status == 429
    # Repeats and friends already are no new requests: still answered.
    assert run(friends.add_friend(me, {"dstid": known.id})) == "requested"
    assert run(friends.add_friend(me, {"dstid": friend.id})) == "friends"
    # Someone who asked me may still be accepted by asking back.
    other = make_user()
    run(friends.add_friend(other, {"dstid": me.id}))
    assert run(friends.add_friend(me, {"dstid": other.id})) == "friends"
    clock.now += 24 * 3600
    assert run(friends.add_friend(me, {"dstname": new_mobile()})) == "requested"


def test_a_number_that_registers_later_gets_the_repeated_request(
    friends: Contacts, bus: Recorder, accounts: object, make_user: Callable[..., User]
) -> None:
    me, number = make_user(), new_mobile()
    assert run(friends.add_friend(me, {"dstname": number})) == "requested"
    assert bus.events == []
    later = make_user(mobile=number)
    assert run(friends.add_friend(me, {"dstname": number})) == "requested"
    assert [r["user"] for r in _requests(friends, later)] == [me.public()]
    assert isinstance(bus.events[-1], FriendRequested) and bus.events[-1].to_id == later.id


def test_unfriend_ends_it_on_both_sides(
    friends: Contacts, store: Store, bus: Recorder, make_user: Callable[..., User]
) -> None:
    a, b = make_user(), make_user()
    befriend_users(friends, a, b)
    assert _error(lambda: friends.unfriend(a, {"dstid": a.id})).status == 400
    assert run(friends.unfriend(b, {"dstid": a.id})) is None
    assert bus.events[-1] == FriendRemoved(b.id, a.id)
    assert not run(store.are_friends(a.id, b.id)) and not run(store.are_friends(b.id, a.id))
    assert run(friends.load_friends(a, {})).total == 0
    assert _error(lambda: friends.unfriend(a, {"dstid": b.id})).status == 404
    # Friends again only by consent again.
    assert run(friends.add_friend(a, {"dstid": b.id})) == "requested"


def test_block(
    friends: Contacts, store: Store, bus: Recorder, make_user: Callable[..., User]
) -> None:
    me, friend, pest = make_user(), make_user(), make_user()
    befriend_users(friends, me, friend)
    run(friends.add_friend(pest, {"dstid": me.id}))  # pending when I block
    # Blocking a friend unfriends (the friend sees just that); blocking declines what
    # the blocked user had asked.
    run(friends.block(me, {"dstid": friend.id}))
    assert bus.events[-1] == FriendRemoved(me.id, friend.id)
    run(friends.block(me, {"dstid": pest.id}))
    assert bus.events[-1] == FriendRemoved(me.id, friend.id)  # pest was no friend: no event
    run(friends.block(me, {"dstid": pest.id}))  # again: no change
    assert not run(store.are_friends(me.id, friend.id))
    assert _requests(friends, me) == []
    assert [r["direction"] for r in _requests(friends, pest)] == ["out"]  # looks pending
    # Blocked users' requests are answered like anyone's and reach no one.
    events = len(bus.events)
    assert run(friends.add_friend(friend, {"dstid": me.id})) == "requested"
    assert run(friends.add_friend(pest, {"dstname": me.mobile})) == "requested"
    assert len(bus.events) == events and _requests(friends, me) == []
    # Asking back does not befriend a blocker either.
    assert not run(store.are_friends(me.id, friend.id))
    # The blocker cannot ask someone they block (they know whom they block).
    assert _error(lambda: friends.add_friend(me, {"dstid": pest.id})).status == 409
    blocked = run(friends.blocked(me, {}))
    assert blocked.total == 2 and {u.id for u in blocked.rows} == {friend.id, pest.id}
    assert _error(lambda: friends.block(me, {"dstid": me.id})).status == 400
    assert _error(lambda: friends.block(me, {"dstid": pest.id + 1000})).status == 404
    # Unblocking brings nothing back, and makes asking possible again.
    run(friends.unblock(me, {"dstid": friend.id}))
    run(friends.unblock(me, {"dstid": friend.id}))
    assert [u.id for u in run(friends.blocked(me, {})).rows] == [pest.id]
    assert not run(store.are_friends(me.id, friend.id))
    assert run(friends.add_friend(me, {"dstid": friend.id})) == "friends"  # friend had asked


def test_blocking_withdraws_the_blockers_own_requests(
    friends: Contacts, make_user: Callable[..., User]
) -> None:
    me, other = make_user(), make_user()
    run(friends.add_friend(me, {"dstid": other.id}))
    run(friends.block(me, {"dstid": other.id}))
    assert _requests(friends, me) == _requests(friends, other) == []
    run(friends.unblock(me, {"dstid": other.id}))
    assert run(friends.add_friend(other, {"dstid": me.id})) == "requested"  # not "friends"
