"""The `fastim` command line: `fastim serve` runs the chat app."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from fastim.config import Config, add_serve_arguments, config_from_args


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it imports, else asyncio's (DESIGN.md)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve(config: Config) -> None:
    """Run the app until SIGINT or SIGTERM, then shut down gracefully."""
    from fastim.app import create_app

    app = create_app(config)
    await app.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"fastim is running: open {app.url}", flush=True)
    try:
        await stop.wait()
    finally:
        print("fastim: shutting down", flush=True)
        await app.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="run the chat server")
    add_serve_arguments(serve_parser)
    args = parser.parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        config = config_from_args(args)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(config))
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
