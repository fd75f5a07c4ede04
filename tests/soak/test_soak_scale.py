"""The soak at scale, without a server: the limits a large run needs (soak/limits.py),
checked before any process starts, HAProxy sized for them, and the client's timing of a
connection the server ended (a node drained or killed under --restart)."""

from __future__ import annotations

import resource
import time

import pytest

from deploy.haproxy import config
from soak import limits
from soak.run import JUDGED_SECONDS, build_parser, prepare, warmup_seconds


def test_the_open_files_needed_are_the_busiest_process_s() -> None:
    # One server holds every connection; with a proxy, it holds two per connection.
    assert limits.open_files_needed(10_000, 2, 0) == 10_000 + limits.OVERHEAD
    assert limits.open_files_needed(10_000, 2, 3) \
        == 2 * (10_000 + limits.PROXY_SPARE) + limits.OVERHEAD
    # A single client process holds as many as the server.
    assert limits.open_files_needed(100, 1, 0) == 100 + limits.OVERHEAD


def test_a_limit_already_high_enough_is_left_alone() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limits.raise_open_files(64) == before
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


def test_more_open_files_than_the_kernel_allows_is_a_clear_error() -> None:
    with pytest.raises(limits.LimitError, match="open files"):
        limits.raise_open_files(10**9)


def test_more_connections_than_source_ports_is_a_clear_error() -> None:
    ports = limits.ephemeral_ports()
    assert limits.check_ephemeral_ports(1_000, 25) == 1_000 + 25 * limits.TIME_WAIT_SECONDS
    with pytest.raises(limits.LimitError, match="ip_local_port_range"):
        limits.check_ephemeral_ports(ports, 10)


def test_the_defaults_follow_the_run_s_size_and_the_machine() -> None:
    args = build_parser().parse_args(["--connections", "400", "--group-size", "20"])
    prepare(args)
    assert args.workers == limits.default_workers() >= 1
    assert args.groups == 200 * 2 // 20  # each of the 200 users in about 2 groups
    assert args.open_files >= limits.open_files_needed(400, args.workers, 0)
    # The chat lasts the warm-up and the memory verdict's window after it.
    assert args.duration == warmup_seconds(args) + JUDGED_SECONDS
    # Given ones are kept.
    args = build_parser().parse_args(["--workers", "3", "--groups", "7"])
    prepare(args)
    assert (args.workers, args.groups) == (3, 7)


def test_haproxy_is_sized_for_the_run_when_asked() -> None:
    nodes = [("127.0.0.1", 8081)]
    assert "\n    maxconn " not in config(("127.0.0.1", 8080), nodes)
    sized = config(("127.0.0.1", 8080), nodes, maxconn=11_000)
    assert "\n    maxconn 11000\n" in sized.split("defaults")[0]


def test_a_connection_the_server_ended_is_timed_until_back_and_synced() -> None:
    from soak.worker import Worker

    worker = Worker({"port": 1, "seed": 1, "devices": [
        {"key": "u1d0", "user": 1, "token": "t", "friends": [2], "groups": []}]})
    device = worker.devices[0]
    device.session = {"live": [], "syncs": []}
    device.on_frame({"cmd": 50, "users": []})  # a first connect: nothing was lost
    device.on_frame({"cmd": 21, "since": 0, "rows": [], "next": 0, "more": False})
    assert (worker.reconnect_times, worker.catchup_times) == ([], [])

    device.lost_at = time.monotonic() - 2.0  # a node drained 2 s ago
    device.session = {"live": [], "syncs": []}
    device.on_frame({"cmd": 50, "users": []})
    assert len(worker.reconnect_times) == 1 and worker.reconnect_times[0] >= 2.0
    assert worker.catchup_times == []  # not synced yet: a page with more to come
    device.on_frame({"cmd": 21, "since": 0, "rows": [{"id": 5}], "next": 5, "more": True})
    assert worker.catchup_times == []
    device.on_frame({"cmd": 21, "since": 5, "rows": [], "next": 5, "more": False})
    assert len(worker.catchup_times) == 1 and worker.catchup_times[0] >= 2.0
    assert device.lost_at is None
