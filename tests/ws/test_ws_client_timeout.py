"""The fastim.ws client's opening handshake against a slow server (seen in the
10,000-connection soak, docs/reliability.md "Ten times larger")."""

from __future__ import annotations

import asyncio

from fastim.ws.handshake import accept_key, parse_request


def test_a_handshake_answer_after_the_open_timeout_is_ignored() -> None:
    # Seen in the 10,000-connection soak: a server slow to upgrade answered after the
    # client's open_timeout had cancelled the wait, in the same loop turn as the abort;
    # building the connection then raised InvalidStateError into the event loop.
    from fastim.ws.client import ClientOptions, _ClientHandshake, parse_uri

    class Transport:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.written.append(data)

        def close(self) -> None:
            pass

    async def main() -> None:
        protocol = _ClientHandshake(parse_uri("ws://127.0.0.1:1/chat"), ClientOptions())
        transport = Transport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        key = parse_request(transport.written[0]).headers.get("Sec-WebSocket-Key") or ""
        protocol.done.cancel()  # the open timeout ran out
        protocol.data_received(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                               + accept_key(key).encode() + b"\r\n\r\n")
        assert protocol.done.cancelled()

    asyncio.run(main())
