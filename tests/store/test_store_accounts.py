"""Accounts over both backends: register, login, tokens, profiles, password changes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from fastim.accounts import Accounts, LoginThrottle, token_hash
from fastim.errors import AppError
from fastim.store import Store, User
from tests.store_fixtures import TEST_KDF, new_mobile, run, table_counts


class FakeClock:
    """A settable clock, so expiry and throttling are tested without waiting."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _stored_token_hashes(store: Store) -> list[str]:
    return run(store.read(lambda tx: [r[0] for r in tx.rows("SELECT token_hash FROM tokens")]))


def test_register_returns_the_account_without_secrets(accounts: Accounts) -> None:
    mobile = new_mobile()
    user = run(
        accounts.register(
            {
                "mobile": mobile,
                "passwd": "correct horse",
                "nickname": "  小明 🐟 ",
                "avatar": "/asset/images/avatar0.png",
                "sex": "M",
                "memo": "第一行\n第二行 ✨",
            }
        )
    )
    assert (user.mobile, user.nickname, user.sex) == (mobile, "小明 🐟", "M")
    assert user.memo == "第一行\n第二行 ✨"
    assert user.avatar == "/asset/images/avatar0.png"
    public = user.public()
    assert set(public) == {"id", "nickname", "avatar", "sex", "memo"}
    assert "passwd" not in user.private() and "salt" not in user.private()
    assert user.private()["mobile"] == mobile


def test_emoji_and_cjk_round_trip_through_the_database(accounts: Accounts, store: Store) -> None:
    nickname = "漢字かな한글 😀👨‍👩‍👧 𝄞"
    memo = "emoji 🧑🏽‍🚀 and 中文\ttab"
    user = run(
        accounts.register(
            {
                "mobile": new_mobile(),
                "passwd": "pässwörd 🔑",
                "nickname": nickname,
                "memo": memo,
            }
        )
    )
    again = run(store.get_user(user.id))
    assert again is not None
    assert (again.nickname, again.memo) == (nickname, memo)
    login = run(accounts.login({"mobile": user.mobile, "passwd": "pässwörd 🔑"}))
    assert login.user.nickname == nickname


def test_defaults_for_optional_fields(make_user: Callable[..., User]) -> None:
    user = make_user()
    assert (user.sex, user.avatar, user.memo) == ("U", "", "")


def test_registering_a_taken_number_is_a_409_and_keeps_the_first(
    accounts: Accounts, store: Store
) -> None:
    mobile = new_mobile()
    first = run(accounts.register({"mobile": mobile, "passwd": "first passphrase", "nickname": "a"}))
    with pytest.raises(AppError) as exc:
        run(accounts.register({"mobile": mobile, "passwd": "second passphrase", "nickname": "b"}))
    assert exc.value.status == 409
    assert "already registered" in exc.value.message
    assert run(store.get_user_by_mobile(mobile)) == first
    run(accounts.login({"mobile": mobile, "passwd": "first passphrase"}))


def test_passwords_are_stored_as_salted_kdf_hashes(accounts: Accounts, store: Store) -> None:
    a = run(accounts.register({"mobile": new_mobile(), "passwd": "same password", "nickname": "a"}))
    b = run(accounts.register({"mobile": new_mobile(), "passwd": "same password", "nickname": "b"}))
    creds_a = run(store.get_credentials(a.mobile))
    creds_b = run(store.get_credentials(b.mobile))
    assert creds_a is not None and creds_b is not None
    assert creds_a[1].kdf == TEST_KDF
    assert creds_a[1].salt != creds_b[1].salt
    assert creds_a[1].passwd != creds_b[1].passwd
    assert "same password" not in creds_a[1].passwd
    assert creds_a[1].passwd != hashlib.md5(b"same password").hexdigest()


def test_login_issues_a_token_stored_only_as_its_hash(
    accounts: Accounts, store: Store, make_user: Callable[..., User]
) -> None:
    user = make_user(passwd="correct horse")
    login = run(accounts.login({"mobile": user.mobile, "passwd": "correct horse"}))
    assert len(login.token) == 43  # token_urlsafe(32): 256 bits
    assert login.to_dict()["token"] == login.token
    assert login.to_dict()["id"] == user.id
    stored = _stored_token_hashes(store)
    assert login.token not in stored
    assert token_hash(login.token) in stored
    assert run(accounts.authenticate(login.token)) == user


def test_wrong_password_and_unknown_number_get_the_same_401(
    accounts: Accounts, make_user: Callable[..., User]
) -> None:
    user = make_user(passwd="correct horse")
    with pytest.raises(AppError) as wrong:
        run(accounts.login({"mobile": user.mobile, "passwd": "wrong horse"}))
    with pytest.raises(AppError) as unknown:
        run(accounts.login({"mobile": new_mobile(), "passwd": "correct horse"}))
    assert wrong.value.status == unknown.value.status == 401
    assert wrong.value.message == unknown.value.message


@pytest.mark.parametrize("token", [None, "", "x", "a" * 43, "not a token!", "a" * 500, "漢" * 43])
def test_unknown_or_malformed_tokens_authenticate_nobody(
    accounts: Accounts, token: str | None
) -> None:
    assert run(accounts.authenticate(token)) is None


def test_each_device_has_its_own_token_and_logout_revokes_one(
    accounts: Accounts, make_user: Callable[..., User]
) -> None:
    user = make_user(passwd="correct horse")
    creds = {"mobile": user.mobile, "passwd": "correct horse"}
    phone = run(accounts.login({**creds, "device": "phone"}))
    laptop = run(accounts.login({**creds, "device": "laptop"}))
    assert run(accounts.authenticate(phone.token)) == user
    assert run(accounts.authenticate(laptop.token)) == user
    assert run(accounts.logout(phone.token)) is True
    assert run(accounts.authenticate(phone.token)) is None
    assert run(accounts.authenticate(laptop.token)) == user
    assert run(accounts.logout(phone.token)) is False


def test_logging_in_again_on_a_device_replaces_its_token(
    accounts: Accounts, store: Store, make_user: Callable[..., User]
) -> None:
    user = make_user(passwd="correct horse")
    creds = {"mobile": user.mobile, "passwd": "correct horse", "device": "phone"}
    old = run(accounts.login(creds))
    new = run(accounts.login(creds))
    assert run(accounts.authenticate(old.token)) is None
    assert run(accounts.authenticate(new.token)) == user
    assert len(_stored_token_hashes(store)) == 1


def test_anonymous_logins_are_separate_sessions_capped_per_user(
    store: Store, make_user: Callable[..., User]
) -> None:
    service = Accounts(store, kdf=TEST_KDF, max_sessions=3)
    try:
        user = make_user(passwd="correct horse")
        creds = {"mobile": user.mobile, "passwd": "correct horse"}
        logins = [run(service.login(creds)) for _ in range(5)]
        alive = [run(service.authenticate(x.token)) is not None for x in logins]
        assert alive.count(True) == 3
        assert all(alive[-3:])  # the newest survive
        assert len(_stored_token_hashes(store)) == 3
    finally:
        service.close()


def test_tokens_expire(store: Store, make_user: Callable[..., User]) -> None:
    clock = FakeClock()
    service = Accounts(store, kdf=TEST_KDF, token_ttl=3600, clock=clock)
    try:
        user = make_user(passwd="correct horse")
        login = run(service.login({"mobile": user.mobile, "passwd": "correct horse"}))
        assert login.expires == int(clock.now) + 3600
        clock.now += 3599
        assert run(service.authenticate(login.token)) == user
        clock.now += 1
        assert run(service.authenticate(login.token)) is None
        assert run(store.purge_expired_tokens(now=int(clock.now))) == 1
    finally:
        service.close()


def test_find_returns_a_public_profile(accounts: Accounts, make_user: Callable[..., User]) -> None:
    user = make_user(nickname="findme")
    assert run(accounts.find({"id": str(user.id)})) == user
    assert run(accounts.find({"dstid": user.id})) == user
    with pytest.raises(AppError) as exc:
        run(accounts.find({"id": user.id + 10_000}))
    assert exc.value.status == 404
    with pytest.raises(AppError) as exc:
        run(accounts.find({}))
    assert exc.value.status == 400


def test_profile_update_changes_only_what_is_given(
    accounts: Accounts, store: Store, make_user: Callable[..., User]
) -> None:
    user = make_user(nickname="before", memo="memo stays")
    updated = run(accounts.update_profile(user, {"nickname": "after 🌸", "sex": "W"}))
    assert (updated.nickname, updated.sex, updated.memo) == ("after 🌸", "W", "memo stays")
    assert run(store.get_user(user.id)) == updated
    cleared = run(accounts.update_profile(updated, {"memo": "", "avatar": "/resource/ab.png"}))
    assert (cleared.memo, cleared.avatar) == ("", "/resource/ab.png")
    with pytest.raises(AppError) as exc:
        run(accounts.update_profile(user, {"unrelated": "x"}))
    assert exc.value.status == 400


def test_changing_the_password_logs_out_other_sessions(
    accounts: Accounts, make_user: Callable[..., User]
) -> None:
    user = make_user(passwd="old password")
    creds = {"mobile": user.mobile, "passwd": "old password"}
    here = run(accounts.login({**creds, "device": "here"}))
    there = run(accounts.login({**creds, "device": "there"}))
    with pytest.raises(AppError) as exc:
        run(
            accounts.change_password(
                user, {"oldpasswd": "not it", "passwd": "new password"}, here.token
            )
        )
    assert exc.value.status == 403
    run(
        accounts.change_password(
            user, {"oldpasswd": "old password", "passwd": "new password"}, here.token
        )
    )
    assert run(accounts.authenticate(here.token)) == user
    assert run(accounts.authenticate(there.token)) is None
    with pytest.raises(AppError):
        run(accounts.login(creds))
    run(accounts.login({"mobile": user.mobile, "passwd": "new password"}))


def test_login_rehashes_when_the_kdf_parameters_were_raised(
    store: Store, make_user: Callable[..., User]
) -> None:
    user = make_user(passwd="correct horse")  # made with TEST_KDF
    stronger = Accounts(store, kdf="scrypt:2048:8:1")
    try:
        run(stronger.login({"mobile": user.mobile, "passwd": "correct horse"}))
        found = run(store.get_credentials(user.mobile))
        assert found is not None and found[1].kdf == "scrypt:2048:8:1"
        run(stronger.login({"mobile": user.mobile, "passwd": "correct horse"}))
    finally:
        stronger.close()


def test_repeated_failures_for_one_number_get_429_with_retry_after(
    store: Store, make_user: Callable[..., User]
) -> None:
    clock = FakeClock()
    throttle = LoginThrottle(per_mobile=3, per_address=100, window=60, clock=clock)
    service = Accounts(store, kdf=TEST_KDF, throttle=throttle)
    try:
        user = make_user(passwd="correct horse")
        bad = {"mobile": user.mobile, "passwd": "wrong horse"}
        for _ in range(3):
            with pytest.raises(AppError) as exc:
                run(service.login(bad, "10.0.0.1"))
            assert exc.value.status == 401
        clock.now += 10
        # Even the right password is refused while the number is throttled.
        with pytest.raises(AppError) as exc:
            run(service.login({**bad, "passwd": "correct horse"}, "10.0.0.2"))
        assert exc.value.status == 429
        assert exc.value.retry_after == 50
        assert exc.value.headers() == [("Retry-After", "50")]
        clock.now += 50
        run(service.login({**bad, "passwd": "correct horse"}, "10.0.0.2"))
    finally:
        service.close()


def test_many_numbers_from_one_address_get_429(
    store: Store, make_user: Callable[..., User]
) -> None:
    clock = FakeClock()
    throttle = LoginThrottle(per_mobile=100, per_address=4, window=60, clock=clock)
    service = Accounts(store, kdf=TEST_KDF, throttle=throttle)
    try:
        user = make_user(passwd="correct horse")
        good = {"mobile": user.mobile, "passwd": "correct horse"}
        run(service.login(good, "10.0.0.9"))  # a success does not count
        for _ in range(4):
            with pytest.raises(AppError) as exc:
                run(service.login({"mobile": new_mobile(), "passwd": "guess1234"}, "10.0.0.9"))
            assert exc.value.status == 401
        with pytest.raises(AppError) as exc:
            run(service.login(good, "10.0.0.9"))
        assert exc.value.status == 429
        run(service.login(good, "10.0.0.10"))  # other addresses are unaffected
    finally:
        service.close()


def test_refused_logins_change_nothing(
    accounts: Accounts, store: Store, make_user: Callable[..., User]
) -> None:
    user = make_user(passwd="correct horse")
    before = table_counts(store)
    for values in (
        {"mobile": user.mobile, "passwd": "wrong horse"},
        {"mobile": user.mobile},
        {"mobile": user.mobile, "passwd": ["correct horse"]},
        {"mobile": "' OR 1=1 --", "passwd": "correct horse"},
    ):
        with pytest.raises(AppError) as exc:
            run(accounts.login(values))
        assert 400 <= exc.value.status < 500
    assert table_counts(store) == before
