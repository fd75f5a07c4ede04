"""Login throttling shared through Redis: N nodes draw on one budget of attempts.

Without Redis each process counts alone (tests/store/test_store_accounts.py); with ``--redis``
the windows live in Redis (fastim/accounts/throttle.py:RedisLoginThrottle), so guessing
through several nodes gains nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from fastim.accounts import Accounts, LoginThrottle, RedisLoginThrottle
from fastim.config import Config
from fastim.errors import AppError
from fastim.services import login_throttle
from fastim.store import Store, User
from tests.cluster_support import free_port
from tests.store_fixtures import TEST_KDF, new_mobile, run

pytestmark = pytest.mark.redis


def redis_url(addr: tuple[str, int]) -> str:
    return f"redis://{addr[0]}:{addr[1]}/0"


def forget(addr: tuple[str, int], prefix: str) -> None:
    client = redis.Redis.from_url(redis_url(addr))
    try:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()


async def status_of(service: Accounts, values: dict[str, str], address: str) -> int:
    try:
        await service.login(values, address)
    except AppError as error:
        if error.status == 429:
            assert error.retry_after is not None and 0 < error.retry_after <= 60
        return error.status
    return 200


def two_nodes(store: Store, addr: tuple[str, int], prefix: str, **limits: int,
              ) -> list[Accounts]:
    """Two Accounts, as two nodes would have, each with its own Redis client."""
    return [Accounts(store, kdf=TEST_KDF, throttle=RedisLoginThrottle(
        aioredis.from_url(redis_url(addr)), prefix, window=60, **limits)) for _ in range(2)]


def test_two_nodes_share_one_budget_per_number(
        store: Store, make_user: Callable[..., User], redis_addr: tuple[str, int]) -> None:
    prefix = f"throttle-{secrets.token_hex(4)}"
    user = make_user(passwd="correct horse")
    wrong = {"mobile": user.mobile, "passwd": "wrong horse"}
    right = {**wrong, "passwd": "correct horse"}

    async def scenario() -> list[int]:
        a, b = two_nodes(store, redis_addr, prefix, per_mobile=3, per_address=100)
        try:
            seen = [await status_of(node, wrong, f"10.0.0.{i}")
                    for i, node in enumerate((a, b, a))]
            # The fourth attempt, on either node, and even with the right password: 429.
            seen += [await status_of(b, right, "10.0.0.9"), await status_of(a, right, "10.0.1.1")]
            return seen
        finally:
            for node in (a, b):
                node.close()
                await node.throttle.close()

    try:
        assert run(scenario()) == [401, 401, 401, 429, 429]
    finally:
        forget(redis_addr, prefix)


def test_two_nodes_share_one_budget_per_address_and_a_success_gives_its_attempt_back(
        store: Store, make_user: Callable[..., User], redis_addr: tuple[str, int]) -> None:
    prefix = f"throttle-{secrets.token_hex(4)}"
    user = make_user(passwd="correct horse")
    right = {"mobile": user.mobile, "passwd": "correct horse"}

    async def scenario() -> list[int]:
        a, b = two_nodes(store, redis_addr, prefix, per_mobile=100, per_address=3)
        try:
            seen = [await status_of(a, right, "10.9.9.9")]  # a success does not count
            for node in (a, b, a, b):
                seen.append(await status_of(
                    node, {"mobile": new_mobile(), "passwd": "guess1234"}, "10.9.9.9"))
            seen.append(await status_of(b, right, "10.9.9.8"))  # another address is free
            return seen
        finally:
            for node in (a, b):
                node.close()
                await node.throttle.close()

    try:
        assert run(scenario()) == [200, 401, 401, 401, 429, 200]
    finally:
        forget(redis_addr, prefix)


def test_in_process_throttles_do_not_share_which_is_why_redis_is_used(
        store: Store, make_user: Callable[..., User]) -> None:
    user = make_user(passwd="correct horse")
    wrong = {"mobile": user.mobile, "passwd": "wrong horse"}

    async def scenario() -> list[int]:
        a, b = (Accounts(store, kdf=TEST_KDF, throttle=LoginThrottle(per_mobile=2, window=60))
                for _ in range(2))
        try:
            return [await status_of(node, wrong, "10.0.0.1") for node in (a, a, a, b, b, b)]
        finally:
            a.close()
            b.close()

    assert run(scenario()) == [401, 401, 429, 401, 401, 429]


def test_without_reachable_redis_logins_are_throttled_in_the_process(
        store: Store, make_user: Callable[..., User]) -> None:
    user = make_user(passwd="correct horse")
    wrong = {"mobile": user.mobile, "passwd": "wrong horse"}

    async def scenario() -> list[int]:
        # Nothing listens on this port: every Redis call fails at once.
        client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0",
                                   socket_connect_timeout=1)
        service = Accounts(store, kdf=TEST_KDF, throttle=RedisLoginThrottle(
            client, "nowhere", per_mobile=2, window=60))
        try:
            seen = [await status_of(service, wrong, "10.0.0.1") for _ in range(3)]
            seen.append(await status_of(service, {**wrong, "passwd": "correct horse"},
                                        "10.0.0.1"))
            return seen
        finally:
            service.close()
            await service.throttle.close()

    assert run(scenario()) == [401, 401, 429, 429]


def test_the_app_uses_redis_for_the_throttle_when_redis_is_configured(
        redis_addr: tuple[str, int]) -> None:
    config = Config(redis=redis_url(redis_addr) + "?prefix=staging", login_per_mobile=4,
                    login_per_address=9, login_window=30)
    throttle = login_throttle(config)
    assert isinstance(throttle, RedisLoginThrottle)
    assert (throttle.prefix, throttle.per_mobile, throttle.per_address, throttle.window_ms) == (
        "staging", 4, 9, 30_000)
    run(throttle.close())
    local = login_throttle(Config(login_per_mobile=4))
    assert isinstance(local, LoginThrottle) and local.by_mobile.limit == 4


@pytest.mark.mysql
def test_two_server_processes_share_the_budget(
        tmp_path: Path, mysql_database: str, redis_addr: tuple[str, int]) -> None:
    from tests.cluster_support import Cluster, Node

    cluster = Cluster(tmp_path, f"{mysql_database}_th{secrets.token_hex(2)}",
                      redis_url(redis_addr))
    try:
        nodes = []
        for name in ("node1", "node2"):
            node = Node(tmp_path / name, cluster.db, cluster.redis, name=name)
            node.args += ["--login-per-mobile", "3"]
            cluster.nodes.append(node)
            nodes.append(node.start())
        user = nodes[0].user("alice")  # registers and logs in: a success, not counted
        wrong = {"mobile": user.mobile, "passwd": "wrong horse"}
        statuses = [nodes[i % 2].post("/user/login", wrong).status for i in range(4)]
        assert statuses == [401, 401, 401, 429]
        refused = nodes[1].post("/user/login", {**wrong, "passwd": "correct horse"})
        assert refused.status == 429 and refused.header("retry-after") is not None
    finally:
        cluster.close()
