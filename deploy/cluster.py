"""`make cluster` (`python -m deploy.cluster`): a fastim cluster on this machine, to try.

N `fastim serve` nodes on the MariaDB and the Redis that the machine runs (started here,
as `.ci/run` does, when they are down, and stopped again at the end), and HAProxy in
front of them on one port (deploy/haproxy.py). It prints the URL; Ctrl-C (or SIGTERM)
stops what it started: the proxy first, then each node gracefully (drain: 1012 to its
WebSocket clients, its group commits done).

    python -m deploy.cluster --nodes 3 --port 8080

The nodes share one database and one Redis prefix, and one upload directory: on several
machines that directory must be shared storage (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from deploy.haproxy import Checks, HAProxy

MARIADB = ("127.0.0.1", 3306)
REDIS = ("127.0.0.1", 6379)
#: Checks for trying it out: a stopped node is out within a second or so.
CHECKS = Checks(interval=0.5, fall=2, rise=1)
#: A node keeps serving this long after SIGTERM, longer than the proxy takes to notice.
DRAIN_DELAY = CHECKS.interval * CHECKS.fall + 0.5
STARTUP = 60.0


def _accepts(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(address: tuple[str, int], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP
    while not _accepts(address):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start (exit status {process.poll()})")
        time.sleep(0.1)


class LocalCluster:
    """What `make cluster` starts, in the order it stops it (reversed)."""

    def __init__(self, directory: Path, nodes: int, port: int, db: str | None,
                 redis: str | None) -> None:
        self.directory = directory
        self.count = nodes
        self.port = port
        self.db = db or f"mysql://root:@{MARIADB[0]}:{MARIADB[1]}/fastim_cluster"
        self.redis = redis or f"redis://{REDIS[0]}:{REDIS[1]}/0?prefix=fastim-cluster"
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.proxy: HAProxy | None = None

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"{name}.log", "ab") as log:
            process = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.started.append((name, process))
        return process

    def start_services(self) -> None:
        """MariaDB and Redis, when they are not answering already (and were asked for)."""
        if self.db.startswith(("mysql://", "mariadb://")) and f"@{MARIADB[0]}:{MARIADB[1]}/" \
                in self.db and not _accepts(MARIADB):
            binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
            print(f"starting MariaDB ({binary})", flush=True)
            _wait_for(MARIADB, "MariaDB", self._spawn("mariadb", [binary, "--user=root"]))
        if f"//{REDIS[0]}:{REDIS[1]}/" in self.redis and not _accepts(REDIS):
            binary = shutil.which("redis-server") or "/usr/bin/redis-server"
            print(f"starting Redis ({binary})", flush=True)
            _wait_for(REDIS, "Redis", self._spawn("redis", [
                binary, "--port", str(REDIS[1]), "--bind", REDIS[0], "--save", "",
                "--appendonly", "no", "--dir", str(self.directory)]))

    def start_nodes(self) -> list[tuple[str, int]]:
        nodes = []
        for number in range(1, self.count + 1):
            port = _free_port()
            self._spawn(f"node{number}", [
                sys.executable, "-m", "fastim", "serve", "--host", "127.0.0.1",
                "--port", str(port), "--db", self.db, "--redis", self.redis,
                "--trusted-proxy", "127.0.0.1", "--drain-delay", str(DRAIN_DELAY),
                "--data-dir", str(self.directory / f"node{number}"),
                "--resource-dir", str(self.directory / "resource")])
            nodes.append(("127.0.0.1", port))
        for number, (address, (_, process)) in enumerate(
                zip(nodes, self.started[-self.count:], strict=True), start=1):
            _wait_for(address, f"node{number} (see {self.directory}/node{number}.log)",
                      process)
        return nodes

    def start(self) -> str:
        self.start_services()
        nodes = self.start_nodes()
        self.proxy = HAProxy(self.directory / "haproxy", ("127.0.0.1", self.port), nodes,
                             CHECKS).start()
        for number, (host, port) in enumerate(nodes, start=1):
            print(f"node{number}: http://{host}:{port}/", flush=True)
        return self.proxy.url

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for name, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(DRAIN_DELAY + 30)
                except subprocess.TimeoutExpired:
                    print(f"{name} did not stop in time: killed", flush=True)
                    process.kill()
                    process.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3, help="fastim nodes (default 3)")
    parser.add_argument("--port", type=int, default=8080,
                        help="the proxy's port on 127.0.0.1 (default 8080)")
    parser.add_argument("--dir", type=Path, default=Path("data/cluster"),
                        help="logs, node data and uploads (default data/cluster)")
    parser.add_argument("--db", help="database URL (default: MariaDB on 127.0.0.1:3306, "
                                     "database fastim_cluster)")
    parser.add_argument("--redis", help="Redis URL (default: 127.0.0.1:6379, prefix "
                                        "fastim-cluster)")
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 32:
        parser.error("--nodes must be between 1 and 32")
    cluster = LocalCluster(args.dir, args.nodes, args.port, args.db, args.redis)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        url = cluster.start()
        print(f"fastim cluster of {args.nodes} nodes is running: open {url}", flush=True)
        while not stopping:
            time.sleep(0.2)
    finally:
        print("stopping the cluster", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
