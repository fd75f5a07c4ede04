"""Issue 16's names: nicknames and group names made only of invisible characters, or
holding bidi controls, are refused; group names are unique by their skeleton (NFKC,
case-folded, invisibles dropped, TS #39 confusables), also for concurrent creations and
for groups created before the skeleton (schema migration 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fastim.accounts import Accounts, Contacts, User
from fastim.accounts.names import name_key, skeleton
from fastim.errors import AppError
from fastim.store import Store
from tests.store_fixtures import gather, new_mobile, run

INVISIBLE_ONLY = ["\u200b", "\ufeff", "\u3164", "\u200b\u200c\u200d", "\u2800\u2800",
                  " \u3164 ", "\u115f\u1160", "\u2060", "\ufe0f"]
BIDI = ["abc\u202etxt.exe", "\u202dname", "na\u2066me\u2069", "\u200fname"]


def error_of(awaitable: Any) -> AppError:
    with pytest.raises(AppError) as caught:
        run(awaitable)
    return caught.value


@pytest.mark.parametrize("nickname", INVISIBLE_ONLY)
def test_invisible_only_nicknames_are_refused(accounts: Accounts,
                                              make_user: Callable[..., User],
                                              nickname: str) -> None:
    error = error_of(accounts.register({"mobile": new_mobile(), "passwd": "correct horse",
                                        "nickname": nickname}))
    assert error.status == 400 and "show something" in error.message
    user = make_user()
    error = error_of(accounts.update_profile(user, {"nickname": nickname}))
    assert error.status == 400


@pytest.mark.parametrize("nickname", BIDI)
def test_bidi_controls_in_nicknames_are_refused(accounts: Accounts, nickname: str) -> None:
    error = error_of(accounts.register({"mobile": new_mobile(), "passwd": "correct horse",
                                        "nickname": nickname}))
    assert error.status == 400 and "bidirectional" in error.message


@pytest.mark.parametrize("name", INVISIBLE_ONLY + BIDI)
def test_such_group_names_are_refused(contacts: Contacts, make_user: Callable[..., User],
                                      name: str) -> None:
    error = error_of(contacts.create_group(make_user(), {"name": name}))
    assert error.status == 400


def test_names_with_visible_text_and_joiners_are_still_fine(
        accounts: Accounts, contacts: Contacts, make_user: Callable[..., User]) -> None:
    for nickname in ("👨\u200d👩\u200d👧 family", "❤️", "한글 이름", "مرحبا", "a b"):
        run(accounts.register({"mobile": new_mobile(), "passwd": "correct horse",
                               "nickname": nickname}))
    run(contacts.create_group(make_user(), {"name": "👨\u200d👩\u200d👧"}))


def test_the_skeleton() -> None:
    same = ["group", "Group", "GROUP", "group\u200b", "gr\u200dou\ufeffp", "grоup",  # о
            "ｇｒｏｕｐ", "group ", "𝐠𝐫𝐨𝐮𝐩"]
    assert {skeleton(name) for name in same} == {"group"}
    assert len({name_key(name) for name in same}) == 1
    assert skeleton("my   group") == skeleton("my group") != skeleton("mygroup")
    assert skeleton("群聊") != skeleton("群组")
    assert len(name_key("x" * 64)) == 64


def test_look_alike_group_names_clash(contacts: Contacts, store: Store,
                                      make_user: Callable[..., User]) -> None:
    owner, other = make_user(), make_user()
    prefix = new_mobile()
    group = run(contacts.create_group(owner, {"name": f"group {prefix}"}))
    for look_alike in (f"group\u200b {prefix}", f"grоup {prefix}", f"Group {prefix}",
                       f"ｇｒｏｕｐ {prefix}"):
        error = error_of(contacts.create_group(other, {"name": look_alike}))
        assert error.status == 409, look_alike
    # Joining by a look-alike spelling of the name finds the one group.
    joined = run(contacts.join_group(other, {"dstname": f"GROUP {prefix}"}))
    assert joined.id == group.id


def test_concurrent_look_alike_creations_make_one_group(
        contacts: Contacts, store: Store, make_user: Callable[..., User]) -> None:
    owners = [make_user() for _ in range(4)]
    prefix = new_mobile()
    names = [f"race {prefix}", f"RACE {prefix}", f"rаce {prefix}", f"race\u200b {prefix}"]
    results = gather(*(contacts.create_group(owner, {"name": name})
                       for owner, name in zip(owners, names, strict=True)))
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, AppError)]
    assert len(created) == 1 and len(refused) == 3
    assert all(r.status == 409 for r in refused)


def test_groups_made_before_the_skeleton_get_their_keys_at_start(
        contacts: Contacts, store: Store, make_user: Callable[..., User]) -> None:
    owner = make_user()
    prefix = new_mobile()
    # As migration 4 finds them: rows without a name key, two of them look-alikes.
    old = [run(store.create_group(owner.id, name)) for name in
           (f"old {prefix}", f"OLD {prefix}", f"other {prefix}")]
    given = run(contacts.backfill_name_keys())
    assert given >= 2
    keys = dict(run(store.read(lambda tx: [
        (r[0], r[1]) for r in tx.rows("SELECT id, name_key FROM communities WHERE id IN "
                                      f"({', '.join(str(g.id) for g in old)})")])))
    assert keys[old[0].id] == name_key(f"old {prefix}")  # the older one keeps the key
    assert keys[old[1].id] is None  # its look-alike stays, without one
    assert keys[old[2].id] == name_key(f"other {prefix}")
    assert run(contacts.backfill_name_keys()) == 0  # nothing left to do
    # No new look-alike of either can be made.
    error = error_of(contacts.create_group(make_user(), {"name": f"Old {prefix}"}))
    assert error.status == 409
