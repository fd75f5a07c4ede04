"""picows echo and broadcast server (frame-level listener API, Cython core)."""

from __future__ import annotations

import argparse

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from bench.servers.common import MAX_SIZE, parse_args, ready, run, unsupported


class Echo(WSListener):
    """Echo each data frame as it comes: picows' own idiom; fragments stay fragments."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


room: set[WSTransport] = set()


class Member(WSListener):
    """Broadcast each (unfragmented) binary message to the whole room."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        room.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        room.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.BINARY:
            payload = frame.get_payload_as_bytes()
            for member in room:
                member.send(WSMsgType.BINARY, payload)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def route(request: WSUpgradeRequest) -> WSListener | None:
    if request.path == b"/echo":
        return Echo()
    if request.path == b"/broadcast":
        return Member()
    return None


async def start(args: argparse.Namespace) -> object:
    server = await ws_create_server(route, args.host, args.port, max_frame_size=MAX_SIZE)
    ready(server.sockets[0].getsockname()[1])
    return server


if __name__ == "__main__":
    arguments = parse_args(__doc__ or "")
    if arguments.deflate:
        unsupported("picows does not implement permessage-deflate")
    run(start, arguments)
