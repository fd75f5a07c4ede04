"""The servers compared: fastim.ws, its three Python peers, and the Go reference server."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    role: str  # "fastim", "peer" or "ceiling"
    http: bool = False  # has an HTTP server for the http scenarios

    def command(self, loadgen: Path, deflate: bool, static: Path | None = None) -> list[str]:
        """The server's command line; with `static` (an http scenario), the HTTP server
        serving that directory."""
        if self.role == "ceiling":
            return [str(loadgen), "-mode", "server"] + (
                ["-static", str(static)] if static is not None else [])
        if static is not None:
            return [sys.executable, "-m", f"bench.servers.{self.name}_http_server",
                    "--port", "0", "--static", str(static)]
        cmd = [sys.executable, "-m", f"bench.servers.{self.name}_server", "--port", "0"]
        return cmd + (["--deflate"] if deflate else [])


# fastim.ws in the WebSocket rows, fastim.http in the HTTP rows.
FASTIM = Peer("fastim", "fastim", "fastim", http=True)
PEERS: tuple[Peer, ...] = (
    FASTIM,
    Peer("websockets", "websockets", "peer"),
    Peer("aiohttp", "aiohttp", "peer", http=True),
    Peer("picows", "picows", "peer"),
    # gorilla/websocket (and net/http) in Go on the server core: what the generator (wrk
    # for HTTP) reaches when the server is not the limit, i.e. the generator's own ceiling.
    Peer("go-ref", "Go reference server", "ceiling", http=True),
)


def select(names: str | None, ceiling: bool = True) -> list[Peer]:
    chosen = list(PEERS)
    if names:
        wanted = {n.strip() for n in names.split(",") if n.strip()}
        unknown = wanted - {p.name for p in PEERS}
        if unknown:
            raise SystemExit(f"unknown peer {', '.join(sorted(unknown))}; "
                             f"choose from: {', '.join(p.name for p in PEERS)}")
        chosen = [p for p in PEERS if p.name in wanted]
    if not ceiling:
        chosen = [p for p in chosen if p.role != "ceiling"]
    return chosen
