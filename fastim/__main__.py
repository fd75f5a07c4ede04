"""The `fastim` command line: `fastim serve` runs the chat app; `fastim keygen` makes
the key file of `--message-key-file` and `fastim reseal` moves stored messages to its
current key (docs/security.md, "Messages at rest")."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastim.config import Config, add_serve_arguments, config_from_args

if TYPE_CHECKING:
    from fastim.store.messages import ResealReport


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it imports, else asyncio's (the faster loop, where the machine has it; docs/performance.md)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve(config: Config) -> None:
    """Run the app until SIGINT or SIGTERM, then shut down gracefully."""
    from fastim.app import create_app

    app = create_app(config)
    try:
        await app.start()
    except BaseException:
        await app.stop()  # close what the start-up hooks opened before one failed
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"fastim is running: open {app.url}", flush=True)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)  # a second Ctrl-C interrupts the drain
        # Behind a load balancer: /healthz fails first, clients are told to reconnect
        # elsewhere (1012), then what the group commit holds is committed.
        print("fastim: shutting down", flush=True)
        await app.drain(config.drain_delay)


async def _reseal(config: Config) -> ResealReport:
    from fastim.store import open_store
    from fastim.store.messages import reseal
    from fastim.store.sealing import Sealer
    from fastim.store.search import forget_index

    assert config.message_key_file is not None
    sealer = Sealer.from_file(config.message_key_file)
    store = await open_store(config.database_url, pool_size=2)
    try:
        report = await reseal(store, sealer)
        # The search index held the clear text of the rows now sealed (docs/security.md).
        await store.write(forget_index)
        return report
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve", help="run the chat server")
    add_serve_arguments(serve_parser)
    keygen_parser = sub.add_parser(
        "keygen", help="create a message key file (mode 0600) for --message-key-file")
    keygen_parser.add_argument("path", type=Path, help="the key file to create")
    keygen_parser.add_argument("--id", dest="key_id", default=None,
                               help="the new key's id (default: k<UTC date and time>)")
    keygen_parser.add_argument("--rotate", action="store_true",
                               help="add a new current key in front of an existing file's keys")
    reseal_parser = sub.add_parser(
        "reseal", help="encrypt every stored message under the key file's current key "
                       "(clear rows too), then forget keys no message needs")
    add_serve_arguments(reseal_parser)  # the same --db / --data-dir / --message-key-file
    args = parser.parse_args(argv)
    from fastim.store.errors import Unavailable
    from fastim.store.sealing import KeyFileError, KeyMismatch, write_key_file

    if args.command == "keygen":
        try:
            key_id = write_key_file(args.path, args.key_id, rotate=args.rotate)
        except KeyFileError as error:
            print(f"fastim keygen: {error}", file=sys.stderr)
            return 1
        print(f"{args.path}: new current key {key_id}; back the file up apart from the "
              "database", flush=True)
        return 0
    if args.command == "reseal":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        config = config_from_args(args)
        if config.message_key_file is None:
            print("fastim reseal: --message-key-file (FASTIM_MESSAGE_KEY_FILE) is needed",
                  file=sys.stderr)
            return 1
        try:
            report = asyncio.run(_reseal(config))
        except (KeyFileError, KeyMismatch) as error:
            print(f"fastim reseal: {error}", file=sys.stderr)
            return 1
        print(f"resealed {report.resealed} messages ({report.were_clear} were in clear); "
              f"{report.unreadable} could not be opened and were left as they were",
              flush=True)
        if report.retired_keys:
            print(f"no message needs key(s) {', '.join(report.retired_keys)} any more: "
                  "they may leave the key file", flush=True)
        return 1 if report.unreadable else 0
    if args.command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        config = config_from_args(args)
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(serve(config))
        except (KeyFileError, KeyMismatch) as error:
            print(f"fastim: {error}", file=sys.stderr)  # an operator's mistake, no traceback
            return 1
        except Unavailable as error:
            print(f"fastim: the database could not be reached (--db-wait {config.db_wait:g} "
                  f"s): {error}", file=sys.stderr)
            return 1
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
