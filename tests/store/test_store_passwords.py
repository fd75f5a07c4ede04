"""Password hashing and the login throttle, without a database."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastim.accounts.passwords import (
    DEFAULT_KDF,
    KDFError,
    check_kdf,
    hash_password,
    needs_rehash,
    verify_password,
)
from fastim.accounts.throttle import LoginThrottle, SlidingWindow
from fastim.errors import AppError


def test_default_parameters_hash_and_verify() -> None:
    passwd, salt = hash_password("correct horse battery", DEFAULT_KDF)
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(passwd)) == 32
    assert verify_password("correct horse battery", passwd, salt, DEFAULT_KDF)
    assert not verify_password("correct horse batterY", passwd, salt, DEFAULT_KDF)


def test_pbkdf2_is_understood_too() -> None:
    kdf = "pbkdf2_sha256:1000"
    passwd, salt = hash_password("pässwörd", kdf)
    assert verify_password("pässwörd", passwd, salt, kdf)
    assert not verify_password("passwörd", passwd, salt, kdf)


def test_the_same_password_gets_different_salts_and_hashes() -> None:
    assert hash_password("same", "scrypt:1024:8:1") != hash_password("same", "scrypt:1024:8:1")


@pytest.mark.parametrize(
    "kdf",
    [
        "",
        "md5",
        "scrypt",
        "scrypt:1000:8:1",
        "scrypt:16384:8",
        "scrypt:2097152:8:1",
        "scrypt:1024:0:1",
        "scrypt:a:b:c",
        "pbkdf2_sha256:0",
        "pbkdf2_sha256:99999999999",
    ],
)
def test_bad_or_dangerous_kdf_parameters_are_refused(kdf: str) -> None:
    with pytest.raises(KDFError):
        check_kdf(kdf)
    # A tampered row never verifies, and never costs a huge allocation.
    assert not verify_password("x", "00" * 32, "00" * 16, kdf)


def test_garbage_stored_hashes_do_not_verify() -> None:
    assert not verify_password("x", "not hex", "00", "scrypt:1024:8:1")


def test_rehash_is_needed_when_parameters_change() -> None:
    assert needs_rehash("scrypt:1024:8:1", DEFAULT_KDF)
    assert not needs_rehash(DEFAULT_KDF, DEFAULT_KDF)


@settings(max_examples=50, deadline=None)
@given(
    st.text(min_size=1, max_size=40).filter(
        lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
    )
)
def test_any_password_verifies_against_its_own_hash(password: str) -> None:
    passwd, salt = hash_password(password, "scrypt:1024:1:1")
    assert verify_password(password, passwd, salt, "scrypt:1024:1:1")
    assert not verify_password(password + "x", passwd, salt, "scrypt:1024:1:1")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_allows_limit_events_then_reports_the_wait() -> None:
    clock = Clock()
    window = SlidingWindow(3, 60, clock=clock)
    for t in (0, 10, 20):
        clock.now = t
        assert window.retry_after("k") is None
        window.record("k")
    clock.now = 30
    assert window.retry_after("k") == 30  # until the event at t=0 leaves (t=60)
    assert window.retry_after("other") is None
    clock.now = 60
    assert window.retry_after("k") is None  # t=0 has left the window
    window.record("k")
    assert window.retry_after("k") == 10  # now t=10 is the oldest


def test_sliding_window_forgets_the_least_recent_keys_beyond_its_bound() -> None:
    clock = Clock()
    window = SlidingWindow(1, 60, max_keys=3, clock=clock)
    for key in "abcd":
        window.record(key)
    assert window.retry_after("a") is None  # evicted
    assert window.retry_after("d") == 60


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=5), max_size=60), st.integers(1, 6))
def test_never_more_than_limit_allowed_in_any_window(steps: list[float], limit: int) -> None:
    clock = Clock()
    window = SlidingWindow(limit, 10, clock=clock)
    allowed: list[float] = []
    for step in steps:
        clock.now += step
        if window.retry_after("k") is None:
            window.record("k")
            allowed.append(clock.now)
    for t in allowed:
        assert sum(1 for u in allowed if t - 10 < u <= t) <= limit


def test_throttle_counts_an_attempt_before_it_is_checked() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_mobile=2, per_address=10, window=60, clock=clock)
    throttle.begin("138", "1.2.3.4")
    throttle.begin("138", "1.2.3.4")  # two in flight, neither has failed yet
    with pytest.raises(AppError) as exc:
        throttle.begin("138", "1.2.3.4")
    assert exc.value.status == 429 and exc.value.retry_after == 60
    throttle.succeeded("138", "1.2.3.4")  # one of them turns out right: the number is clear
    throttle.begin("138", "1.2.3.4")
