"""The `fastim` command line: `fastim serve` runs the chat app."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the chat server")
    args = parser.parse_args(argv)
    if args.command == "serve":
        print("fastim serve: the app is not built yet", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
