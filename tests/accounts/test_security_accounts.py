"""Issue 16's account findings: one password normalisation everywhere, common and blank
passwords refused, old-password guessing under the login throttle, registration
throttled per address and its duplicate check made before the hash."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from fastim.accounts import Accounts, LoginThrottle, User
from fastim.accounts.passwords import hash_password
from fastim.accounts.throttle import RedisRegisterThrottle, RegisterThrottle
from fastim.config import Config
from fastim.errors import AppError
from fastim.services import register_throttle
from fastim.store import Store
from tests.store_fixtures import TEST_KDF, ApiServer, api_config, new_mobile, run

DECOMPOSED = "e\u0301" * 8  # "é" typed as e + combining acute, eight times
COMPOSED = "\u00e9" * 8  # the same text, precomposed


def status(awaitable: Any) -> int:
    try:
        run(awaitable)
    except AppError as error:
        return error.status
    return 200


def error_of(awaitable: Any) -> AppError:
    with pytest.raises(AppError) as caught:
        run(awaitable)
    return caught.value


# --- one normalisation -----------------------------------------------------------------


def test_a_decomposed_password_registers_and_logs_in_either_way(accounts: Accounts) -> None:
    mobile = new_mobile()
    run(accounts.register({"mobile": mobile, "passwd": DECOMPOSED, "nickname": "nfc"}))
    assert run(accounts.login({"mobile": mobile, "passwd": DECOMPOSED})).user.mobile == mobile
    assert run(accounts.login({"mobile": mobile, "passwd": COMPOSED})).user.mobile == mobile


def test_the_old_password_check_and_the_new_password_are_normalised_too(
        accounts: Accounts) -> None:
    mobile = new_mobile()
    user = run(accounts.register({"mobile": mobile, "passwd": COMPOSED, "nickname": "nfc"}))
    new_decomposed = "u\u0308ber-geheim"  # "über-geheim"
    run(accounts.change_password(user, {"oldpasswd": DECOMPOSED, "passwd": new_decomposed}))
    run(accounts.login({"mobile": mobile, "passwd": "\u00fcber-geheim"}))


# --- what is not a password ------------------------------------------------------------


@pytest.mark.parametrize("password", ["password1", "Password1", "12345678", "qwertyuiop",
                                      "iloveyou", "trustno1", "sunshine1"])
def test_the_most_common_passwords_are_refused(accounts: Accounts, make_user: Callable[..., User],
                                               password: str) -> None:
    error = error_of(accounts.register({"mobile": new_mobile(), "passwd": password,
                                        "nickname": "x"}))
    assert error.status == 400 and "most common" in error.message
    user = make_user()
    error = error_of(accounts.change_password(user, {"oldpasswd": "correct horse",
                                                     "passwd": password}))
    assert error.status == 400 and "most common" in error.message
    run(accounts.login({"mobile": user.mobile, "passwd": "correct horse"}))  # unchanged


@pytest.mark.parametrize("password", [" " * 8, "\u200b" * 8, "\ufeff" * 8, "\u3164" * 8,
                                      "\u00a0\u2003" * 4, "\u200b \u2060 " * 3])
def test_passwords_of_only_spaces_or_invisible_characters_are_refused(
        accounts: Accounts, password: str) -> None:
    error = error_of(accounts.register({"mobile": new_mobile(), "passwd": password,
                                        "nickname": "x"}))
    assert error.status == 400 and "invisible" in error.message


def test_uncommon_passphrases_are_still_welcome(accounts: Accounts) -> None:
    for password in ("correct horse", "pässwörd 🔑", "new password", "8 chars!"):
        run(accounts.register({"mobile": new_mobile(), "passwd": password, "nickname": "x"}))


# --- the old password is a login attempt -------------------------------------------------


def test_old_password_guessing_is_under_the_login_throttle_per_user(
        store: Store, make_user: Callable[..., User]) -> None:
    accounts = Accounts(store, kdf=TEST_KDF, throttle=LoginThrottle(per_mobile=5,
                                                                    per_address=100))
    try:
        user = run(accounts.register({"mobile": new_mobile(), "passwd": "correct horse",
                                      "nickname": "victim"}))
        change = {"oldpasswd": "guess 0000", "passwd": "taken over!"}
        codes = [status(accounts.change_password(user, {**change, "oldpasswd": f"guess {n}"},
                                                 address=f"10.0.0.{n}")) for n in range(30)]
        assert codes[:5] == [403] * 5 and set(codes[5:]) == {429}
        # The right one is refused too until the window passes: the guesser learns nothing.
        right = {"oldpasswd": "correct horse", "passwd": "taken over!"}
        assert status(accounts.change_password(user, right, address="10.0.0.99")) == 429
        # ... and logins of that number share the window.
        assert status(accounts.login({"mobile": user.mobile, "passwd": "correct horse"})) == 429
    finally:
        accounts.close()


def test_old_password_guessing_is_under_the_login_throttle_per_address(
        store: Store) -> None:
    accounts = Accounts(store, kdf=TEST_KDF, throttle=LoginThrottle(per_mobile=100,
                                                                    per_address=3))
    try:
        users = [run(accounts.register({"mobile": new_mobile(), "passwd": "correct horse",
                                        "nickname": f"u{n}"})) for n in range(4)]
        wrong = {"oldpasswd": "wrong horse", "passwd": "taken over!"}
        codes = [status(accounts.change_password(user, wrong, address="192.0.2.7"))
                 for user in users]
        assert codes == [403, 403, 403, 429]
        # A right answer gives its attempt back, as a successful login does.
        fresh = run(accounts.register({"mobile": new_mobile(), "passwd": "correct horse",
                                       "nickname": "ok"}))
        assert status(accounts.change_password(
            fresh, {"oldpasswd": "correct horse", "passwd": "brand new one"},
            address="192.0.2.8")) == 200
    finally:
        accounts.close()


def test_the_attack_over_http_thirty_wrong_old_passwords_then_the_right_one_is_429(
        api: ApiServer) -> None:
    user, token = api.user_with_token()
    headers = {"Authorization": f"Bearer {token}"}
    codes = [api.post("/user/passwd", {"oldpasswd": f"guess {n:04d}", "passwd": "taken over!"},
                      headers=headers).status for n in range(30)]
    assert codes[:5] == [403] * 5 and set(codes[5:]) == {429}
    reply = api.post("/user/passwd", {"oldpasswd": user["passwd"], "passwd": "taken over!"},
                     headers=headers)
    assert reply.status == 429 and reply.header("retry-after")
    # The owner was not logged out everywhere: the token still works.
    assert api.get("/user/me", headers=headers).status == 200


# --- registration ------------------------------------------------------------------------


def test_registration_is_throttled_per_address(store: Store) -> None:
    accounts = Accounts(store, kdf=TEST_KDF,
                        register_throttle=RegisterThrottle(per_address=3, window=60))
    try:
        def register(address: str) -> int:
            return status(accounts.register({"mobile": new_mobile(), "passwd": "correct horse",
                                             "nickname": "bulk"}, address))

        assert [register("198.51.100.1") for _ in range(5)] == [200, 200, 200, 429, 429]
        error = error_of(accounts.register({"mobile": new_mobile(), "passwd": "correct horse",
                                            "nickname": "bulk"}, "198.51.100.1"))
        assert error.retry_after is not None and 0 < error.retry_after <= 60
        assert register("198.51.100.2") == 200  # another address has its own budget
        assert register("") == 200  # a script's own call (no address) is not counted
    finally:
        accounts.close()


def test_a_taken_number_counts_too(store: Store, make_user: Callable[..., User]) -> None:
    taken = make_user()
    accounts = Accounts(store, kdf=TEST_KDF,
                        register_throttle=RegisterThrottle(per_address=2, window=60))
    try:
        values = {"mobile": taken.mobile, "passwd": "correct horse", "nickname": "probe"}
        codes = [status(accounts.register(values, "203.0.113.9")) for _ in range(3)]
        assert codes == [409, 409, 429]  # probing which numbers exist is bounded
    finally:
        accounts.close()


def test_a_taken_number_is_found_before_hashing_and_a_decoy_hash_still_runs(
        accounts: Accounts, store: Store, make_user: Callable[..., User],
        monkeypatch: pytest.MonkeyPatch) -> None:
    taken = make_user()
    hashed: list[Any] = []
    inserts: list[Any] = []
    run_in_pool = accounts._in_kdf_pool
    create_user = store.create_user

    async def counting_pool(fn: Any, *args: Any) -> Any:
        hashed.append(fn)
        return await run_in_pool(fn, *args)

    async def counting_create(**values: Any) -> Any:
        inserts.append(values)
        return await create_user(**values)

    monkeypatch.setattr(accounts, "_in_kdf_pool", counting_pool)
    monkeypatch.setattr(store, "create_user", counting_create)
    error = error_of(accounts.register({"mobile": taken.mobile, "passwd": "another one",
                                        "nickname": "twin"}))
    assert error.status == 409
    assert inserts == []  # the duplicate was found before anything was written
    assert hashed == [hash_password]  # and the same hash ran, so the timing is the same


def test_over_http_the_fourth_registration_from_one_address_is_429(
        db_url: str, tmp_path: Any) -> None:
    config = api_config(db_url, tmp_path)
    config.register_per_address = 3
    with ApiServer(config) as api:
        codes = [api.post("/user/register", {"mobile": new_mobile(), "passwd": "correct horse",
                                             "nickname": "bulk"}).status for _ in range(5)]
        assert codes == [201, 201, 201, 429, 429]
        reply = api.post("/user/register", {"mobile": new_mobile(),
                                            "passwd": "correct horse", "nickname": "bulk"})
        assert reply.status == 429 and int(reply.header("retry-after") or 0) > 0


def test_the_app_shares_the_registration_window_through_redis(
        redis_addr: tuple[str, int]) -> None:
    prefix = f"regtest{time.time_ns()}"
    url = f"redis://{redis_addr[0]}:{redis_addr[1]}/0?prefix={prefix}"
    assert isinstance(register_throttle(Config(redis=url)), RedisRegisterThrottle)
    assert isinstance(register_throttle(Config()), RegisterThrottle)

    async def two_nodes() -> list[int]:
        nodes = [RedisRegisterThrottle(aioredis.from_url(url.split("?")[0]), prefix,
                                       per_address=3, window=60) for _ in range(2)]
        codes = []
        for n in range(5):
            try:
                await nodes[n % 2].attempt("198.51.100.77")
                codes.append(200)
            except AppError as error:
                codes.append(error.status)
        for node in nodes:
            await node.close()
        return codes

    assert run(two_nodes()) == [200, 200, 200, 429, 429]


def test_without_reachable_redis_registrations_are_throttled_in_the_process() -> None:
    async def attempts() -> list[int]:
        client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        node = RedisRegisterThrottle(client, "nowhere", per_address=2, window=60)
        codes = []
        for _ in range(3):
            try:
                await node.attempt("198.51.100.78")
                codes.append(200)
            except AppError as error:
                codes.append(error.status)
        await node.close()
        return codes

    assert run(attempts()) == [200, 200, 429]
