"""Command line of fastim.ws, for learners and conformance runs.

    python -m fastim.ws echo --port 9001 [--host 127.0.0.1] [--max-size BYTES] [--trace[=bytes]]
    python -m fastim.ws client ws://127.0.0.1:9001/ [--trace=bytes] [--no-compression]
    python -m fastim.ws accept-key dGhlIHNhbXBsZSBub25jZQ==
    python -m fastim.ws decode [--server | --client] [--deflate] [--lang zh] 81 85 37 fa 21 3d 7f 9f 4d 51 58
    python -m fastim.ws walkthrough [ws://127.0.0.1:9001/]

`echo` sends every message back as it came (text stays text). `--trace` prints the opening
handshake's request and response heads, then every frame read (recv) or written (send): a
line with FIN, RSV1-3, opcode, MASK, payload length and the first bytes of the payload
(unmasked), and under it the header's bytes and the masking key as they were on the wire;
`--trace=bytes` adds the payload as it was on the wire, before unmasking (fastim.ws.trace).

`client` is a small interactive client (fastim.ws.console): a line typed is sent as text;
/ping [TEXT], /binary HEX, /close [CODE [REASON]]. It prints the same trace, of its side.

`decode` explains one frame field by field and, for an invalid frame, which rule it breaks
and which close code a receiver answers with; it exits with 1 for an invalid or incomplete
frame. `walkthrough` replays the connection of docs/protocol.md against a server (the echo
server) and prints every byte; it uses fixed keys so that its bytes are the document's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TextIO

from fastim.ws import explain_zh
from fastim.ws.connection import Connection
from fastim.ws.console import run_client
from fastim.ws.explain import explain_frame, parse_hex
from fastim.ws.handshake import accept_key
from fastim.ws.loop import run
from fastim.ws.protocol import Role
from fastim.ws.server import Server, serve
from fastim.ws.trace import trace_connection
from fastim.ws.walkthrough import replay


async def echo(connection: Connection) -> None:
    """Send every message back as it came."""
    async for message in connection:
        await connection.send(message)


async def start_echo(
    host: str,
    port: int,
    *,
    max_size: int | None,
    trace: TextIO | None = None,
    trace_level: str = "headers",
    ping_interval: float | None = 20.0,
) -> Server:
    """Start the echo server; with `trace`, write every connection's handshake and frames
    to it (see trace_connection)."""

    async def handler(connection: Connection) -> None:
        if trace is not None:
            trace_connection(connection, trace, trace_level)
        await echo(connection)

    return await serve(handler, host, port, max_size=max_size, ping_interval=ping_interval)


async def _serve_echo(args: argparse.Namespace) -> None:
    server = await start_echo(
        args.host,
        args.port,
        max_size=args.max_size,
        trace=sys.stdout if args.trace else None,
        trace_level=args.trace or "headers",
        ping_interval=args.ping_interval or None,
    )
    print(f"echo server listening on ws://{args.host}:{server.port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def add_trace_argument(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--trace",
        nargs="?",
        const="headers",
        default=default,
        choices=("headers", "bytes"),
        help="print the handshake and every frame: --trace shows each header's bytes and"
        " masking key, --trace=bytes also the payload as it was on the wire",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m fastim.ws",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    echo_cmd = commands.add_parser("echo", help="run a WebSocket echo server")
    echo_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on")
    echo_cmd.add_argument("--port", type=int, default=9001, help="port (0: any free port)")
    echo_cmd.add_argument(
        "--max-size",
        type=int,
        default=2**20,
        metavar="BYTES",
        help="largest message accepted (default 1 MiB); larger ones close with 1009",
    )
    echo_cmd.add_argument(
        "--ping-interval",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="ping an idle client after this long (0: never; default 20)",
    )
    add_trace_argument(echo_cmd, None)
    client_cmd = commands.add_parser(
        "client",
        help="a small interactive client: type a line to send it; /ping, /close, /binary",
    )
    client_cmd.add_argument("url", help="ws:// or wss:// URL")
    add_trace_argument(client_cmd, "headers")
    client_cmd.add_argument(
        "--no-compression",
        dest="compression",
        action="store_const",
        const=None,
        default="deflate",
        help="do not offer permessage-deflate",
    )
    key_cmd = commands.add_parser("accept-key", help="print the Sec-WebSocket-Accept for a key")
    key_cmd.add_argument("key", help="a Sec-WebSocket-Key value")
    decode_cmd = commands.add_parser(
        "decode",
        help="explain one frame, given in hex, field by field",
        description="Explain one WebSocket frame field by field (RFC 6455 §5.2). "
        "Exit status 1 for an invalid or incomplete frame.",
    )
    decode_cmd.add_argument(
        "hex", nargs="+", help="the frame's bytes in hex; spaces, colons and 0x are allowed"
    )
    receiver = decode_cmd.add_mutually_exclusive_group()
    receiver.add_argument(
        "--server",
        dest="receiver",
        action="store_const",
        const=Role.SERVER,
        help="a server received it (so it must be masked)",
    )
    receiver.add_argument(
        "--client",
        dest="receiver",
        action="store_const",
        const=Role.CLIENT,
        help="a client received it (so it must not be masked)",
    )
    decode_cmd.add_argument(
        "--deflate",
        action="store_true",
        help="permessage-deflate was negotiated: inflate a payload with RSV1 set",
    )
    decode_cmd.add_argument(
        "--lang",
        choices=("en", "zh"),
        default="en",
        help="the language of the explanation: en (default) or zh, Simplified Chinese",
    )
    walk_cmd = commands.add_parser(
        "walkthrough",
        help="replay docs/protocol.md's connection against a server, printing every byte",
    )
    walk_cmd.add_argument(
        "url", nargs="?", default="ws://127.0.0.1:9001/", help="default ws://127.0.0.1:9001/"
    )
    args = parser.parse_args(argv)

    if args.command == "accept-key":
        print(accept_key(args.key))
        return 0
    if args.command == "decode":
        try:
            data = parse_hex(" ".join(args.hex))
        except ValueError as exc:
            decode_cmd.error(str(exc))
        explanation = explain_frame(data, receiver=args.receiver, deflate=args.deflate)
        print(explain_zh.render(explanation) if args.lang == "zh" else explanation.render())
        return 0 if explanation.valid else 1
    if args.command == "walkthrough":
        replay(args.url, sys.stdout)
        return 0
    if args.command == "client":
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            return run(
                run_client(
                    args.url,
                    sys.stdin,
                    sys.stdout,
                    trace_level=args.trace,
                    compression=args.compression,
                )
            )
        return 1
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        run(_serve_echo(args))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a program in test_ws_cli
    sys.exit(main())
