"""Phone numbers as people type them (issue 24): one canonical form on the server, every
form accepted by register, login and ask-a-friend, and migration 12 for the numbers
stored before, duplicates included."""

from __future__ import annotations

import pytest

from fastim.accounts import Accounts
from fastim.errors import AppError
from fastim.store import open_store
from fastim.store.phones import canonical_mobile
from tests.store_fixtures import TEST_KDF, ApiServer, run


@pytest.mark.parametrize(("typed", "canonical"), [
    ("13800000001", "13800000001"),  # as fastim stored numbers from the start
    ("+8613800000001", "13800000001"),  # China's code: the national number
    ("+86 138 0000 0001", "13800000001"),
    ("+86-138-0000-0001", "13800000001"),
    ("0086 138 0000 0001", "13800000001"),  # 00: the international prefix
    ("138-0000-0001", "13800000001"),
    ("138 0000 0001", "13800000001"),
    ("(138) 0000.0001", "13800000001"),
    ("\u00a0138\u20030000 0001 ", "13800000001"),  # any kind of space
    ("＋８６ １３８ ００００ ０００１", "13800000001"),  # full-width, as a CJK keyboard types
    ("010 1234 5678", "1012345678"),  # the trunk prefix 0 is not part of the number
    ("+86 10 1234 5678", "1012345678"),
    ("+1 415 555 0100", "+14155550100"),  # other countries keep their code
    ("001 415 555 0100", "+14155550100"),
    ("+44 (20) 7946-0958", "+442079460958"),
    ("12345", "12345"),  # the shortest allowed, then the longest
    ("123456789012345", "123456789012345"),
])
def test_every_form_of_a_number_has_one_canonical_form(typed: str, canonical: str) -> None:
    assert canonical_mobile(typed) == canonical


@pytest.mark.parametrize("typed", [
    "", "12ab", "1234", "1234567890123456", "+86 1234", "+1234", "++8613800000001",
    "138_0000_0001", "138*0000", "+", "86+13800000001", "１３８ⅹ", "\u0661\u0662\u0663\u0664\u0665",
])
def test_what_is_no_number_is_refused(typed: str) -> None:
    assert canonical_mobile(typed) is None


def test_register_login_and_ask_accept_every_form(api: ApiServer) -> None:
    user = api.register(mobile="+86 139 1234 0101")
    assert user["mobile"] == "13912340101"
    for typed in ("13912340101", "+8613912340101", "139-1234-0101", "0086 139 1234 0101"):
        assert api.login({**user, "mobile": typed})
    # The same number in another form is taken.
    again = api.post("/user/register", {"mobile": "139 1234 0101", "passwd": "correct horse",
                                        "nickname": "twin"})
    assert again.status == 409 and again.json["code"] == -1
    bad = api.post("/user/login", {"mobile": "139 1234 01ab", "passwd": "correct horse"})
    assert bad.status == 400 and "mobile" in bad.json["msg"]
    # Ask a friend by a form other than the one they registered with: the request
    # reaches them (issue 24: +8613800000002 did not find 13800000002).
    asker, token = api.user_with_token()
    asked = api.post("/contact/addfriend", {"dstname": "+86 139-1234-0101"}, token=token)
    assert asked.status == 200
    rows = api.get("/contact/requests", token=api.login(user)).list["rows"]
    assert [row["user"]["id"] for row in rows] == [asker["id"]]
    mine = api.post("/contact/addfriend", {"dstname": "+86 " + asker["mobile"]}, token=token)
    assert mine.status == 400  # oneself, in another form


def _set_mobile(store: object, user_id: int, mobile: str) -> None:
    run(store.write(lambda tx: tx.execute(  # type: ignore[attr-defined]
        "UPDATE users SET mobile = ? WHERE id = ?", (mobile, user_id))))


def test_migration_12_rewrites_stored_numbers_and_keeps_duplicates_reachable(
        db_url: str) -> None:
    store = run(open_store(db_url))
    accounts = Accounts(store, kdf=TEST_KDF)
    try:
        def user(number: str, legacy: str) -> int:
            made = run(accounts.register({"mobile": number, "passwd": f"pass {number}",
                                          "nickname": "n" + number[-4:]}))
            if legacy != number:
                _set_mobile(store, made.id, legacy)
            return made.id

        alone = user("13811110001", "+8613811110001")
        keeper = user("13822220002", "13822220002")
        twin = user("13822220003", "+8613822220002")  # stored before; same number as keeper
        first = user("13833330004", "008613833330003")
        second = user("13833330005", "+8613833330003")

        def requests(tx: object) -> None:
            for to_mobile, created in (("+8613899990009", 1), ("13899990009", 2),
                                       ("+1 415 555 0100", 3)):
                tx.execute(  # type: ignore[attr-defined]
                    "INSERT INTO friend_requests (from_id, to_id, to_mobile, state, created,"
                    " expires) VALUES (?, NULL, ?, 'pending', ?, ?)",
                    (alone, to_mobile, created, 2**40))
            tx.execute("DELETE FROM schema_version WHERE version = 12")  # type: ignore[attr-defined]

        run(store.write(requests))
    finally:
        accounts.close()
        run(store.close())

    store = run(open_store(db_url))
    accounts = Accounts(store, kdf=TEST_KDF)
    try:
        assert 12 in store.applied_migrations
        numbers = dict(run(store.read(lambda tx: tx.rows("SELECT id, mobile FROM users"))))
        assert {int(k): v for k, v in numbers.items()} == {
            alone: "13811110001", keeper: "13822220002", twin: "+8613822220002",
            first: "13833330003", second: "+8613833330003"}
        to_mobiles = run(store.read(lambda tx: tx.rows(
            "SELECT to_mobile, created FROM friend_requests ORDER BY created")))
        assert [tuple(r) for r in to_mobiles] == [("13899990009", 1), ("+14155550100", 3)]
        # Everyone still logs in: the keeper by any form, the twin by its number as stored.
        login = lambda mobile, passwd: run(accounts.login({"mobile": mobile, "passwd": passwd}))  # noqa: E731
        assert login("+86 138 2222 0002", "pass 13822220002").user.id == keeper
        assert login("+8613822220002", "pass 13822220003").user.id == twin
        assert login("138 1111 0001", "pass 13811110001").user.id == alone
        assert login("+8613833330003", "pass 13833330005").user.id == second
        with pytest.raises(AppError) as wrong:
            login("13822220002", "pass 13822220003")  # the twin's password, the keeper's number
        assert wrong.value.status == 401
    finally:
        accounts.close()
        run(store.close())
