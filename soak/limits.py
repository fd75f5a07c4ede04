"""What the operating system must allow before a large soak starts.

Every WebSocket is one file descriptor in the server and one in a client process (and
two in HAProxy with --cluster), so 10,000 connections need more than the usual soft
limit of 1,024 open files. The coordinator raises its own limit, which the server, the
client processes and HAProxy inherit (fork and exec keep rlimits: setrlimit(2)), and
says plainly what it cannot raise. Every client connects from 127.0.0.1 to the one port
of the server (or the proxy), so each needs its own ephemeral source port: the kernel's
range (net.ipv4.ip_local_port_range) bounds the connections open at once, together with
those still in TIME_WAIT after a drop (RFC 9293 §3.6.1: twice the MSL, 60 s on Linux).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

#: Descriptors a process needs beyond its sockets: the interpreter, its libraries, the
#: database, logs, Redis, the event loop's own.
OVERHEAD = 256
#: Connections HAProxy takes beyond the run's own (its maxconn is the run's plus these:
#: the health checks, and a client back before the proxy saw its old connection end).
PROXY_SPARE = 50
#: Seconds a closed TCP connection stays in TIME_WAIT on Linux (TCP_TIMEWAIT_LEN).
TIME_WAIT_SECONDS = 60


class LimitError(SystemExit):
    """The machine's limits cannot carry the run as asked; the message says which."""


def open_files_needed(connections: int, workers: int, cluster: int) -> int:
    """The largest number of descriptors one process of the run holds: the server with
    every connection (one node holds them all), a client process with its share, or
    HAProxy with two per connection (client side and node side)."""
    per_worker = -(-connections // max(1, workers))
    per_proxy = 2 * (connections + PROXY_SPARE) if cluster else 0
    return max(connections, per_worker, per_proxy) + OVERHEAD


def raise_open_files(needed: int) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE (soft, and the hard one too when allowed: root, or
    CAP_SYS_RESOURCE) to at least `needed`; returns the new (soft, hard). A limit that
    cannot reach `needed` is an error naming the limit, not a run that fails half-way
    with EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft, hard
    if hard != resource.RLIM_INFINITY and hard < needed:
        ceiling = int(Path("/proc/sys/fs/nr_open").read_text()) \
            if Path("/proc/sys/fs/nr_open").exists() else needed
        if needed > ceiling:
            raise LimitError(f"the run needs {needed:,} open files per process; the kernel "
                             f"allows {ceiling:,} (fs.nr_open): run fewer connections")
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, PermissionError) as exc:
            raise LimitError(f"the run needs {needed:,} open files per process and the hard "
                             f"limit is {hard:,}, which this process may not raise ({exc}; "
                             "it takes CAP_SYS_RESOURCE, which a container may withhold even "
                             f"from root): raise it where it is set (`ulimit -Hn {needed}`, "
                             "the container's nofile limit), or run fewer connections; with "
                             "--cluster HAProxy holds two per connection") from exc
        return resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def ephemeral_ports() -> int:
    """How many source ports the kernel hands out for outgoing connections."""
    path = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not path.exists():
        return 28_232  # Linux's default range, 32768-60999
    low, high = (int(n) for n in path.read_text().split())
    return high - low + 1


def check_ephemeral_ports(connections: int, drops_per_second: float) -> int:
    """The ports the run holds at its worst (every connection open, and a minute of
    drops in TIME_WAIT: each drop's old port waits there, RFC 9293 §3.6.1), checked
    against the kernel's range for one destination; returns that worst case."""
    worst = connections + int(drops_per_second * TIME_WAIT_SECONDS)
    available = ephemeral_ports()
    if worst > available:
        raise LimitError(f"{connections:,} connections and {drops_per_second:.0f} drops a "
                         f"second hold up to {worst:,} source ports to one address, and the "
                         f"kernel hands out {available:,} (net.ipv4.ip_local_port_range): "
                         "widen the range or run fewer connections")
    return worst


def default_workers() -> int:
    """One client process per core the machine has: the clients parse every delivery in
    Python, so on a small machine they need as many cores as the server."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)
