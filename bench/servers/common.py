"""What every benchmark server shares: its command line, uvloop, the READY line, shutdown."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

# Every server accepts messages up to 16 MiB: the largest scenario sends 1 MiB, and a
# library's default limit (websockets: 1 MiB) must not turn a size row into an error row.
MAX_SIZE = 16 * 1024 * 1024

UNSUPPORTED_EXIT = 3

# The body of every HTTP server's /json route: fastIM's envelope around a small object.
JSON_DATA = {"id": 1, "name": "fastim", "online": True}


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--deflate", action="store_true", help="accept permessage-deflate")
    parser.add_argument("--static", help="HTTP servers: the directory served under /static/")
    parser.add_argument("--echo", choices=("coroutine", "callback"),
                        help="fastim: the style of its handlers (see fastim_server.py)")
    return parser.parse_args()


def ready(port: int) -> None:
    """Tell the harness the server listens (it waits for this line)."""
    print(f"READY {port}", flush=True)


def unsupported(reason: str) -> None:
    """Tell the harness this server cannot run the requested configuration."""
    print(f"UNSUPPORTED {reason}", flush=True)
    sys.exit(UNSUPPORTED_EXIT)


def run(start: Callable[[argparse.Namespace], Awaitable[object]], args: argparse.Namespace) -> None:
    """Run `start(args)` on uvloop, then serve until SIGTERM or SIGINT."""
    import uvloop

    async def main() -> None:
        keep = await start(args)  # noqa: F841 - the server object must stay referenced
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    uvloop.run(main())
