"""HAProxy in front of fastim nodes: the configuration, and a process to run it.

One address for HTTP and the `/chat` WebSocket (HAProxy passes the Upgrade through in
HTTP mode and then relays the bytes both ways: ``timeout tunnel`` bounds an idle
WebSocket, which the chat's heartbeats keep busy). Each node is checked with
``GET /healthz`` (fastim/handlers/health.py): a node that fails it, or is draining
after SIGTERM, gets no new connections; a node that refuses connections is skipped at
once (``option redispatch``). ``balance leastconn`` spreads long-lived WebSockets by how
many each node holds, not by request count. The client's address goes to the nodes in
``X-Forwarded-For`` and the scheme in ``X-Forwarded-Proto``; start the nodes with
``--trusted-proxy`` naming the proxy's address so they believe it.

`config()` writes what docs/scaling.md shows; for a real deployment print it with

    python -m deploy.haproxy --listen 0.0.0.0:443 --tls /etc/fastim/site.pem \
        10.0.0.11:8081 10.0.0.12:8081 10.0.0.13:8081

(TLS ending at the proxy; without ``--tls`` it listens in plain HTTP).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Checks:
    """How often HAProxy asks each node's /healthz, and how many answers change its mind.

    The defaults suit production (a node is out within about 4 s of failing, back after
    4 s of passing); tests and `make cluster` use shorter ones. A node's `--drain-delay`
    should be longer than ``interval * fall`` so no new client is sent to it after it
    started closing."""

    interval: float = 2.0  # seconds between checks
    fall: int = 2  # failed checks before a node is out
    rise: int = 2  # passed checks before it is back

    def line(self) -> str:
        return f"inter {int(self.interval * 1000)}ms fall {self.fall} rise {self.rise}"


def config(listen: tuple[str, int], nodes: Sequence[tuple[str, int]],
           checks: Checks = Checks(), *, tls_pem: Path | None = None,
           maxconn: int | None = None) -> str:
    """HAProxy's configuration: one frontend on `listen`, one backend of `nodes`.

    With `tls_pem` (certificate and key in one file) the proxy ends TLS and tells the
    nodes the scheme was https; the nodes then speak plain HTTP on their own network.
    """
    host, port = listen
    bind = f"bind {host}:{port}" + (f" ssl crt {tls_pem}" if tls_pem else "")
    # HAProxy run as root raises its own open-file limit to fit maxconn (two descriptors
    # per connection); a frontend without maxconn of its own takes the global one.
    sized = f"\n    maxconn {maxconn}" if maxconn else ""
    servers = "\n".join(
        f"    server node{i} {node_host}:{node_port} check"
        for i, (node_host, node_port) in enumerate(nodes, start=1))
    return f"""# fastim behind HAProxy (deploy/haproxy.py; docs/scaling.md)
global
    # Without maxconn HAProxy sizes itself from the open-file limit (`ulimit -n`): each
    # WebSocket holds two descriptors here, one to the client and one to a node.{sized}

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    # An upgraded WebSocket: idle this long (no heartbeat either way) and it is cut.
    timeout tunnel 1h
    timeout client-fin 5s
    # A node that refuses the connection is skipped for another one.
    option redispatch
    retries 2

frontend fastim
    {bind}
    option forwardfor
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
    http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
    default_backend nodes

backend nodes
    balance leastconn
    option httpchk GET /healthz
    http-check expect status 200
    default-server {checks.line()}
{servers}
"""


def find_haproxy() -> str | None:
    """The haproxy binary (Debian's package), or None."""
    return shutil.which("haproxy") or next(
        (str(p) for p in (Path("/usr/sbin/haproxy"),) if p.exists()), None)


class HAProxy:
    """HAProxy as a child process in the foreground, with its configuration in `directory`."""

    def __init__(self, directory: Path, listen: tuple[str, int],
                 nodes: Sequence[tuple[str, int]], checks: Checks = Checks(),
                 tls_pem: Path | None = None, maxconn: int | None = None) -> None:
        binary = find_haproxy()
        if binary is None:
            raise FileNotFoundError("haproxy is not installed (Debian: apt-get install haproxy)")
        self.binary = binary
        self.directory = directory
        self.listen = listen
        self.path = directory / "haproxy.cfg"
        self.text = config(listen, nodes, checks, tls_pem=tls_pem, maxconn=maxconn)
        self.scheme = "https" if tls_pem else "http"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.listen[0]}:{self.listen[1]}/"

    def start(self, timeout: float = 20.0) -> HAProxy:
        """Check the configuration, start, and wait until the port accepts."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.text)
        subprocess.run([self.binary, "-c", "-q", "-f", str(self.path)], check=True,
                       capture_output=True, timeout=timeout)
        with open(self.directory / "haproxy.log", "ab") as log:
            # -db: stay in the foreground, so stopping this process stops the proxy.
            self.process = subprocess.Popen([self.binary, "-db", "-f", str(self.path)],
                                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _accepts(self.listen):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"haproxy did not start; see {self.directory}/haproxy.log")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _accepts(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, not {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.haproxy",
                                     description="print HAProxy's configuration for fastim")
    parser.add_argument("--listen", type=_address, default=("0.0.0.0", 80),
                        help="the proxy's address (default 0.0.0.0:80)")
    parser.add_argument("--tls", type=Path, help="PEM file with certificate and key: end TLS "
                                                 "at the proxy")
    parser.add_argument("nodes", nargs="+", type=_address, help="each node's HOST:PORT")
    args = parser.parse_args(argv)
    sys.stdout.write(config(args.listen, args.nodes, tls_pem=args.tls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
