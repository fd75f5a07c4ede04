"""The database's bad days, continued: the store's circuit breaker (a hung MariaDB costs
503s at once after the first failures, not a timeout each) and `fastim serve` waiting
for a database that is not up yet (`--db-wait`). The outages are made as in
test_faults_database.py: a private MariaDB started, stopped and SIGSTOPped by the test."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fastim.store.base
import fastim.store.mysql
from fastim.store import Unavailable, open_store
from fastim.store.base import CircuitBreaker
from tests.mariadb_support import MariaDBServer, free_port, mariadb_server
from tests.store.test_faults_database import assert_unavailable
from tests.store_fixtures import ApiServer, api_config

SAFETY = 60.0  # a hung subprocess fails the test instead of hanging it


@pytest.fixture
def private_mariadb(tmp_path: Path) -> Iterator[MariaDBServer]:
    server = mariadb_server(tmp_path / "mariadb")
    try:
        yield server
    finally:
        server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- the breaker on its own ----------------------------------------------------------------


def test_the_breaker_opens_after_consecutive_failures_and_probes_one_at_a_time() -> None:
    clock = Clock()
    breaker = CircuitBreaker("reads", threshold=3, probe_interval=2.0, clock=clock)
    for _ in range(2):
        assert breaker.before() is False
        breaker.failed(False)
    assert breaker.before() is False
    breaker.succeeded(False)  # an answer in between: the count starts again
    for _ in range(3):
        assert breaker.before() is False
        breaker.failed(False)
    assert breaker.open
    with pytest.raises(Unavailable):  # at once, inside the probe interval
        breaker.before()
    clock.now += 2.0
    assert breaker.before() is True  # the probe
    with pytest.raises(Unavailable):  # one probe at a time
        breaker.before()
    breaker.failed(True)
    with pytest.raises(Unavailable):
        breaker.before()
    clock.now += 2.0
    probe = breaker.before()
    breaker.abandoned(probe)  # a cancelled probe lets the next one through
    probe = breaker.before()
    breaker.succeeded(probe)
    assert not breaker.open and breaker.before() is False


def test_a_statement_error_is_an_answer_and_closes_the_breaker(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(f"sqlite:///{tmp_path}/breaker.db")
        breaker = store.breakers[False]
        breaker.failures = breaker.threshold  # as after an outage
        breaker.next_probe = 0.0

        def bad(tx: object) -> None:
            raise ValueError("a bug, not an outage")

        with pytest.raises(ValueError):
            await store.read(bad)
        assert not breaker.open
        await store.close()

    asyncio.run(scenario())


# --- a hung MariaDB -------------------------------------------------------------------------


def test_a_hung_mariadb_answers_503_at_once_after_the_first_failures(
        private_mariadb: MariaDBServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastim.store.mysql, "READ_TIMEOUT", 1)
    monkeypatch.setattr(fastim.store.base, "PROBE_INTERVAL", 3.0)
    with ApiServer(api_config(private_mariadb.url("fastim"), tmp_path)) as api:
        _, token = api.user_with_token()
        private_mariadb.pause()
        for _ in range(fastim.store.base.BREAKER_THRESHOLD):  # each waits for its timeout
            assert_unavailable(api.post("/contact/loadfriend", {}, token=token))
        began = time.monotonic()
        for _ in range(10):
            reply = api.post("/contact/loadfriend", {}, token=token)
            assert_unavailable(reply)
        # Before the breaker each of these waited its own READ_TIMEOUT (1 s here, 15 s by
        # default): ten took over 10 s. Now they are answered at once.
        assert time.monotonic() - began < 1.0
        private_mariadb.resume()
        time.sleep(3.0)  # the next probe
        assert api.post("/contact/loadfriend", {}, token=token).status == 200
        # Closed again: every request runs.
        assert all(api.post("/contact/loadfriend", {}, token=token).status == 200
                   for _ in range(5))


# --- waiting for the database at start --------------------------------------------------


def test_open_store_waits_for_a_database_that_is_not_up_yet(
        private_mariadb: MariaDBServer, caplog: pytest.LogCaptureFixture) -> None:
    private_mariadb.stop()
    starter = threading.Timer(2.0, private_mariadb.start)
    starter.start()

    async def scenario() -> list[int]:
        store = await open_store(private_mariadb.url("waited"), pool_size=2, wait=60)
        try:
            return await store.schema_versions()
        finally:
            await store.close()

    try:
        with caplog.at_level(logging.WARNING, logger="fastim.store"):
            versions = asyncio.run(scenario())
    finally:
        starter.join()
    assert versions  # the schema was made once the server came up
    attempts = [r.getMessage() for r in caplog.records if "not reachable yet" in r.getMessage()]
    assert len(attempts) >= 2 and "attempt 1:" in attempts[0] and "attempt 2:" in attempts[1]
    assert "--db-wait" in attempts[0] and "password" not in attempts[0]


def test_the_wait_is_bounded() -> None:
    url = f"mysql://root:@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    began = time.monotonic()
    with pytest.raises(Unavailable):
        asyncio.run(open_store(url, pool_size=1, wait=1.5))
    assert 1.4 < time.monotonic() - began < 10
    began = time.monotonic()
    with pytest.raises(Unavailable):
        asyncio.run(open_store(url, pool_size=1))  # no wait: the first failure is final
    assert time.monotonic() - began < 5


def test_fastim_serve_logs_each_attempt_and_exits_cleanly_when_the_wait_runs_out(
        tmp_path: Path) -> None:
    url = f"mysql://root:@127.0.0.1:{free_port()}/nowhere"
    result = subprocess.run(
        [sys.executable, "-m", "fastim", "serve", "--port", "0", "--db", url,
         "--db-wait", "2", "--data-dir", str(tmp_path / "data"),
         "--resource-dir", str(tmp_path / "resource")],
        capture_output=True, text=True, timeout=SAFETY, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr.count("not reachable yet") >= 2
    assert "attempt 1:" in result.stderr
    assert "fastim: the database could not be reached (--db-wait 2 s)" in result.stderr
    assert "Traceback" not in result.stderr


def test_fastim_serve_starts_once_the_database_is_up(
        private_mariadb: MariaDBServer, tmp_path: Path) -> None:
    private_mariadb.stop()
    process = subprocess.Popen(
        [sys.executable, "-m", "fastim", "serve", "--port", "0",
         "--db", private_mariadb.url("late"), "--db-wait", "60",
         "--data-dir", str(tmp_path / "data"), "--resource-dir", str(tmp_path / "resource")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert process.stderr is not None and process.stdout is not None
        line = process.stderr.readline()
        while "not reachable yet" not in line:  # it is waiting, and says so
            assert line, "fastim serve ended before waiting for the database"
            line = process.stderr.readline()
        private_mariadb.start()
        assert process.stdout.readline().startswith("fastim is running")
    finally:
        process.terminate()
        process.wait(SAFETY)
