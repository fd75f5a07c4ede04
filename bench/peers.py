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

    def command(self, loadgen: Path, deflate: bool) -> list[str]:
        if self.role == "ceiling":
            return [str(loadgen), "-mode", "server"]
        cmd = [sys.executable, "-m", f"bench.servers.{self.name}_server", "--port", "0"]
        return cmd + (["--deflate"] if deflate else [])


FASTIM = Peer("fastim", "fastim.ws", "fastim")
PEERS: tuple[Peer, ...] = (
    FASTIM,
    Peer("websockets", "websockets", "peer"),
    Peer("aiohttp", "aiohttp", "peer"),
    Peer("picows", "picows", "peer"),
    # gorilla/websocket in Go on the server core: what the generator reaches when the server
    # is not the limit, i.e. the generator's own ceiling.
    Peer("go-ref", "Go reference server", "ceiling"),
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
