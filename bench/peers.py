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
    # The fastim server this peer's ratios are computed against: the one written in the
    # same style (coroutine API or callback), so that the comparison is like for like.
    versus: str = "fastim"
    server_args: tuple[str, ...] = ()  # appended to the server's command line
    server: str = ""  # the module in bench.servers (default: NAME_server)
    no_http: str = "not an HTTP server"  # the note of its HTTP rows when http is False

    def command(self, loadgen: Path, deflate: bool, static: Path | None = None) -> list[str]:
        """The server's command line; with `static` (an http scenario), the HTTP server
        serving that directory."""
        if self.role == "ceiling":
            return [str(loadgen), "-mode", "server"] + (
                ["-static", str(static)] if static is not None else [])
        if static is not None:
            return [sys.executable, "-m", f"bench.servers.{self.name}_http_server",
                    "--port", "0", "--static", str(static)]
        module = self.server or f"{self.name}_server"
        cmd = [sys.executable, "-m", f"bench.servers.{module}", "--port", "0",
               *self.server_args]
        return cmd + (["--deflate"] if deflate else [])


# fastim.ws written with the coroutine API (`async for message in conn: await
# conn.send(message)`) in the WebSocket rows, fastim.http in the HTTP rows. websockets and
# aiohttp are compared with it: theirs is a coroutine API too.
FASTIM = Peer("fastim", "fastim (async for)", "fastim", http=True,
              server_args=("--echo", "coroutine"))
# fastim.ws answering inside the read callback (`set_message_callback`, `send_nowait`):
# the style of picows, whose listener is its only API, so picows is compared with this one.
FASTIM_CALLBACK = Peer("fastim-cb", "fastim (callback)", "fastim", server="fastim_server",
                       server_args=("--echo", "callback"),
                       no_http="the callback is fastim.ws's; fastim.http is in the first column")
PEERS: tuple[Peer, ...] = (
    FASTIM,
    FASTIM_CALLBACK,
    Peer("websockets", "websockets", "peer"),
    Peer("aiohttp", "aiohttp", "peer", http=True),
    Peer("picows", "picows", "peer", versus="fastim-cb"),
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
