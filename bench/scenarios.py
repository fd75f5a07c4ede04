"""The benchmark's scenarios (docs/performance.md): what the load generator does in each, and how it is reported."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * 1024
# The static file of the HTTP scenario (bench.payloads writes it).
STATIC_NAME = "app-27k.js"
STATIC_SIZE = 27 * KIB


@dataclass(frozen=True)
class Scenario:
    key: str            # short name for --scenarios and the JSON results
    title: str          # row title in the tables
    kind: str           # "echo", "broadcast", "idle" or "http"
    conns: int          # connections (room size for broadcast)
    size: int = 32      # message size in bytes (echo of the chat message: its own size)
    inflight: int = 1   # echo: messages in flight per connection
    deflate: bool = False
    main: bool = False  # drawn in the chart
    path: str = ""      # http: the URL path wrk requests
    default: bool = True  # run when --scenarios is not given

    @property
    def rate_label(self) -> str:
        if self.kind == "http":
            return "req/s"
        return "deliveries/s" if self.kind == "broadcast" else "msg/s"


def _size_name(size: int) -> str:
    if size >= MIB:
        return f"{size // MIB} MiB"
    if size >= KIB:
        return f"{size // KIB} KiB"
    return f"{size} B"


def _echo(conns: int, size: int, main: bool) -> Scenario:
    key = f"echo-{conns}c-{_size_name(size).replace(' ', '')}"
    title = f"echo, {conns} conn{'s' if conns > 1 else ''}, {_size_name(size)}"
    return Scenario(key, title, "echo", conns, size, main=main)


# The sweep (docs/performance.md): every message size from 32 B to 16 MiB, 64 connections, one message in flight on
# each; run with --scenarios sweep --peers fastim,fastim-cb to compare the two styles.
SWEEP_SIZES = (32, KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB)


def _sweep(size: int) -> Scenario:
    return Scenario(f"sweep-64c-{_size_name(size).replace(' ', '')}",
                    f"echo sweep, 64 conns, {_size_name(size)}", "echo", 64, size,
                    default=False)


SCENARIOS: tuple[Scenario, ...] = (
    *(_echo(conns, size, main=(conns == 64 and size <= KIB) or (conns == 1 and size >= 64 * KIB))
      for size in (32, KIB, 64 * KIB, MIB) for conns in (1, 64)),
    Scenario("pipelined-64x16-32B", "pipelined echo, 64 conns × 16 in flight, 32 B", "echo",
             64, 32, inflight=16, main=True),
    Scenario("broadcast-100", "broadcast, room of 100, 32 B", "broadcast", 100, 32, main=True),
    Scenario("broadcast-1000", "broadcast, room of 1,000, 32 B", "broadcast", 1000, 32,
             main=True),
    Scenario("deflate-chat-64c", "echo with permessage-deflate, 64 conns, chat JSON", "echo",
             64, 0, deflate=True, main=True),
    Scenario("idle-10000", "10,000 idle connections", "idle", 10_000),
    # HTTP (fastim.http against aiohttp), loaded by wrk: keep-alive GETs over 64 connections.
    Scenario("http-json-64c", "HTTP small JSON route, 64 conns", "http", 64, main=True,
             path="/json"),
    Scenario("http-static-27KiB-64c", "HTTP 27 KiB static file, 64 conns", "http", 64,
             size=STATIC_SIZE, main=True, path=f"/static/{STATIC_NAME}"),
    *(_sweep(size) for size in SWEEP_SIZES),
)


def select(keys: str | None) -> list[Scenario]:
    """Scenarios named in a comma-separated list (prefixes allowed: 'echo', 'broadcast')."""
    if not keys:
        return [s for s in SCENARIOS if s.default]
    wanted = [k.strip() for k in keys.split(",") if k.strip()]
    chosen = [s for s in SCENARIOS if any(s.key == k or s.key.startswith(k) for k in wanted)]
    unknown = [k for k in wanted if not any(s.key.startswith(k) for s in SCENARIOS)]
    if unknown:
        names = ", ".join(s.key for s in SCENARIOS)
        raise SystemExit(f"unknown scenario {', '.join(unknown)}; choose from: {names}")
    return chosen
