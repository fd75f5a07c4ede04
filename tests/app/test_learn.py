"""/learn, the wire inspector: its two sockets, the reports, the simulated broken frames,
and the limits that make it safe to leave on (fastim/handlers/learn.py)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from fastim.app import create_app
from fastim.config import Config, add_serve_arguments, config_from_args
from fastim.handlers import learn
from fastim.http import Limits
from fastim.ws import Connection, ConnectionClosed, InvalidHandshake, Role, connect
from fastim.ws.explain import explain_frame
from fastim.ws.frames import Frame, Opcode, encode_frame
from fastim.ws.handshake import GUID

TIMEOUT = 10.0


def make_config(tmp_path: Path, **changes: Any) -> Config:
    return Config(port=0, data_dir=tmp_path / "data", resource_dir=tmp_path / "resource",
                  limits=Limits(shutdown_timeout=2), access_log=False, **changes)


def run(scenario: Callable[[str], Awaitable[None]], config: Config) -> None:
    async def main() -> None:
        app = create_app(config)
        await app.start()
        try:
            assert app.server is not None
            await asyncio.wait_for(scenario(f"ws://127.0.0.1:{app.server.port}"), TIMEOUT * 3)
        finally:
            await app.stop()

    asyncio.run(main())


class Page:
    """What the /learn page does: a control socket, reports read as they come."""

    def __init__(self, control: Connection) -> None:
        self.control = control
        self.session = ""

    async def report(self, kind: str | None = None) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.control.recv(), TIMEOUT))
            if kind is None or message["type"] == kind:
                return message

    async def frames(self, count: int) -> list[dict[str, Any]]:
        return [await self.report("frame") for _ in range(count)]

    async def ask(self, **request: Any) -> None:
        await self.control.send(json.dumps(request))


@asynccontextmanager
async def page(base: str, query: str = "") -> AsyncIterator[Page]:
    async with connect(f"{base}/learn/control{query}") as control:
        opened = Page(control)
        hello = await opened.report("hello")
        assert hello["limits"]["max_message"] == 64 * 1024
        opened.session = hello["session"]
        yield opened


# -- the page and the flag ------------------------------------------------------------------------


def test_no_learn_turns_it_off(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser, environ={})
    assert config_from_args(parser.parse_args([])).learn is True
    assert config_from_args(parser.parse_args(["--no-learn"])).learn is False
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser, environ={"FASTIM_LEARN": "0"})
    assert config_from_args(parser.parse_args([])).learn is False

    async def refused(base: str) -> None:
        with pytest.raises(InvalidHandshake) as info:
            await connect(f"{base}/learn/control")
        assert info.value.status == 404

    run(refused, make_config(tmp_path, learn=False))


def test_the_page_is_served_with_the_app_headers(tmp_path: Path) -> None:
    async def scenario(base: str) -> None:
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /learn HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = (await reader.read()).decode()
        writer.close()
        assert response.startswith("HTTP/1.1 200")
        assert "Content-Security-Policy: default-src 'self'" in response
        # From the build-versioned mount, like every page's files.
        assert re.search(r'<script type="module" src="/asset/v/[0-9a-f]{12}/js/learn/learn.js">',
                         response)

    run(scenario, make_config(tmp_path))


# -- one session, as the page drives it -----------------------------------------------------------


def test_a_session_reports_the_handshake_and_every_frame(tmp_path: Path) -> None:
    async def scenario(base: str) -> None:
        async with page(base) as learner:
            # A browser compresses every message; fastim's client only from 32 bytes on.
            wire = await connect(f"{base}/learn/ws?session={learner.session}",
                                 compression_options={"threshold": 0})
            key = wire.headers.get("Sec-WebSocket-Key")
            handshake = await learner.report("handshake")
            steps = {step["step"]: step["value"] for step in handshake["steps"]}
            # Computed here independently of fastim.ws.
            digest = hashlib.sha1((key + GUID).encode()).digest()
            assert steps == {"key": key, "joined": key + GUID, "sha1": digest.hex(" "),
                             "accept": base64.b64encode(digest).decode()}
            assert handshake["accept_sent"] == steps["accept"]
            assert wire.response_headers.get("Sec-WebSocket-Accept") == steps["accept"]
            assert f"Sec-WebSocket-Key: {key}\r\n" in handshake["request_head"]
            assert handshake["response_head"].startswith("HTTP/1.1 101 Switching Protocols\r\n")
            assert "client_no_context_takeover" in handshake["extensions"]

            await wire.send("Hello")
            assert await wire.recv() == "Hello"
            received, sent = await learner.frames(2)
            assert (received["dir"], received["name"], received["masked"]) == ("recv", "TEXT", True)
            assert received["rsv"] == [True, False, False]  # compressed, each message alone
            assert received["inflated_text"] == "Hello"
            assert len(received["unmask"]) == received["length"]
            masked, key_byte, plain = received["unmask"][0]
            assert masked ^ key_byte == plain
            assert received["verdict"] == [f"VALID: a complete TEXT frame of {received['size']} bytes."]
            assert ("MASK", "1     masked, as every frame a client sends must be (§5.3)") in [
                tuple(row) for row in received["rows"]]
            assert (sent["dir"], sent["masked"], sent["inflated_text"]) == ("send", False, "Hello")

            await learner.ask(do="fragments", text="abcdefg", n=3)
            fragments = await learner.frames(3)
            assert [(f["name"], f["fin"], f["payload_text"]) for f in fragments] == [
                ("TEXT", False, "abc"), ("CONTINUATION", False, "def"),
                ("CONTINUATION", True, "g")]
            assert await wire.recv() == "abcdefg"

            await learner.ask(do="ping", payload="are you there?")
            ping, pong = await learner.frames(2)
            assert (ping["name"], pong["name"], pong["payload_text"]) == (
                "PING", "PONG", "are you there?")
            assert (await learner.report("pong"))["rtt_ms"] >= 0

            await wire.close(4000, "bye")
            close_in, close_out = await learner.frames(2)
            assert close_in["name"] == close_out["name"] == "CLOSE"
            closed = await learner.report("closed")
            assert (closed["code"], closed["reason"]) == (4000, "bye")

            # Again, without compression.
            async with connect(f"{base}/learn/ws/plain?session={learner.session}") as plain:
                handshake = await learner.report("handshake")
                assert handshake["extensions"] is None
                await plain.send(b"\x00\xff")
                assert await plain.recv() == b"\x00\xff"
                received, _ = await learner.frames(2)
                assert received["rsv"] == [False, False, False]
                assert received["payload_hex"] == "00ff" and received["payload_text"] is None
                assert "inflated_hex" not in received

    run(scenario, make_config(tmp_path))


@pytest.mark.parametrize(("kind", "code"), [
    ("unmasked", 1002), ("reserved_opcode", 1002), ("bad_utf8", 1007), ("long_control", 1002),
])
def test_a_broken_frame_is_simulated_and_its_verdict_is_the_protocols(kind: str, code: int) -> None:
    report = learn.simulate_broken(kind)
    assert report["code"] == code
    frame = bytes.fromhex(report["frame"]["hex"])
    # explain (the words on the page) and the protocol (what the server does) agree.
    assert explain_frame(frame, receiver=Role.SERVER).close_code == code
    assert report["frame"]["verdict"][0].startswith("INVALID")
    close = bytes.fromhex(report["close"]["hex"])
    assert close[:2] == bytes([0x88, len(close) - 2])
    assert int.from_bytes(close[2:4], "big") == code
    assert close[4:].decode() == report["reason"]


def test_broken_frames_arrive_as_simulations_over_the_control_socket(tmp_path: Path) -> None:
    async def scenario(base: str) -> None:
        async with page(base) as learner:
            await learner.ask(do="broken", kind="bad_utf8")
            simulated = await learner.report("simulated")
            assert (simulated["kind"], simulated["code"]) == ("bad_utf8", 1007)
        # A Chinese page gets the explanations in Chinese (fastim.ws.explain_zh).
        async with page(base, "?lang=zh") as learner:
            await learner.ask(do="broken", kind="unmasked")
            simulated = await learner.report("simulated")
            assert simulated["frame"]["verdict"][0] == "无效：客户端的帧必须加掩码（RFC 6455 §5.1）。"
            async with connect(f"{base}/learn/ws?session={learner.session}") as wire:
                handshake = await learner.report("handshake")
                assert handshake["steps"][2]["meaning"].startswith("对这串字符做 SHA-1")
                await wire.send("你好")
                received = await learner.report("frame")
                assert ["FIN", "1     结束：这是消息的最后一帧（§5.2）"] in [
                    list(row) for row in received["rows"]]

    run(scenario, make_config(tmp_path))


def test_bad_requests_get_an_error_and_nothing_else(tmp_path: Path) -> None:
    async def scenario(base: str) -> None:
        async with page(base) as learner:
            for request in ["not json", "[]", json.dumps({"do": "broken", "kind": "nope"}),
                            json.dumps({"x": 1})]:
                await learner.control.send(request)
                assert (await learner.report())["error"] == "bad_request"
            await learner.ask(do="ping")
            assert (await learner.report())["error"] == "not_connected"
            async with connect(f"{base}/learn/ws?session={learner.session}"):
                await learner.report("handshake")
                for request, error in [
                    ({"do": "fragments", "text": "abc", "n": 1}, "bad_fragments"),
                    ({"do": "fragments", "text": "", "n": 3}, "bad_fragments"),
                    ({"do": "fragments", "text": "abc", "n": "many"}, "bad_fragments"),
                    ({"do": "ping", "payload": "p" * 126}, "ping_too_long"),
                    ({"do": "dance"}, "bad_request"),
                ]:
                    await learner.ask(**request)
                    assert (await learner.report("error"))["error"] == error

    run(scenario, make_config(tmp_path))


# -- safe to leave on -------------------------------------------------------------------------------


def test_the_inspected_socket_needs_a_session_of_its_own_address(tmp_path: Path) -> None:
    async def scenario(base: str) -> None:
        with pytest.raises(InvalidHandshake) as info:
            await connect(f"{base}/learn/ws?session=guess")
        assert info.value.status == 404
        async with page(base) as learner, connect(f"{base}/learn/ws?session={learner.session}"):
            with pytest.raises(InvalidHandshake) as info:
                await connect(f"{base}/learn/ws/plain?session={learner.session}")
            assert info.value.status == 409

    run(scenario, make_config(tmp_path))


def test_sessions_per_address_are_bounded(tmp_path: Path) -> None:
    async def scenario(base: str) -> None:
        controls = [await connect(f"{base}/learn/control")
                    for _ in range(learn.SESSIONS_PER_ADDRESS)]
        with pytest.raises(InvalidHandshake) as info:
            await connect(f"{base}/learn/control")
        assert info.value.status == 429
        await controls[0].close()
        await asyncio.sleep(0.1)
        again = await connect(f"{base}/learn/control")  # a closed page frees its place
        for control in [*controls[1:], again]:
            await control.close()

    run(scenario, make_config(tmp_path))


def test_a_flood_is_closed_with_1008_and_big_messages_with_1009(tmp_path: Path) -> None:
    async def scenario(base: str) -> None:
        async with page(base) as learner:
            wire = await connect(f"{base}/learn/ws?session={learner.session}")
            with pytest.raises(ConnectionClosed):
                for n in range(int(learn.RATE_BURST) + 10):
                    await wire.send(f"flood {n}")
                    await asyncio.sleep(0)
                await wire.recv()
                while True:
                    await wire.recv()
            assert wire.close_code == 1008
            closed = await learner.report("closed")
            assert (closed["code"], closed["reason"]) == (1008, "too many messages")
        async with page(base) as learner:
            for _ in range(int(learn.RATE_BURST) + 10):
                await learner.ask(do="broken", kind="unmasked")
            with pytest.raises(ConnectionClosed):
                while True:
                    await learner.report()
            assert learner.control.close_code == 1008
        async with page(base) as learner:
            wire = await connect(f"{base}/learn/ws?session={learner.session}", compression=None)
            await wire.send(b"x" * (learn.MAX_MESSAGE + 1))
            with pytest.raises(ConnectionClosed):
                await wire.recv()
            assert wire.close_code == 1009

    run(scenario, make_config(tmp_path))


def test_an_idle_session_is_closed_and_takes_its_socket_along(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(learn, "IDLE_TIMEOUT", 0.3)

    async def scenario(base: str) -> None:
        async with page(base) as learner:
            wire = await connect(f"{base}/learn/ws?session={learner.session}")
            assert (await learner.report("idle"))["type"] == "idle"
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(wire.recv(), TIMEOUT)
            assert (wire.close_code, wire.close_reason) == (1001, "idle")
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(learner.control.recv(), TIMEOUT)
            assert (learner.control.close_code, learner.control.close_reason) == (1000, "idle")

    run(scenario, make_config(tmp_path))


def test_a_page_that_goes_away_takes_its_socket_along(tmp_path: Path) -> None:
    async def scenario(base: str) -> None:
        async with page(base) as learner:
            wire = await connect(f"{base}/learn/ws?session={learner.session}")
            await learner.report("handshake")
        # The page went away: its inspected socket is closed with it.
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(wire.recv(), TIMEOUT)
        assert (wire.close_code, wire.close_reason) == (1001, "the page went away")

    run(scenario, make_config(tmp_path))


def test_fragments_split_text_into_frames() -> None:
    frames = learn._fragments(b"abcdefg", 3)
    assert frames == [Frame(Opcode.TEXT, b"abc", fin=False),
                      Frame(Opcode.CONTINUATION, b"def", fin=False),
                      Frame(Opcode.CONTINUATION, b"g")]
    assert len(learn._fragments(b"ab", 5)) == 2  # no empty fragments
    assert encode_frame(frames[0])[:2] == b"\x01\x03"


def test_a_compressed_bomb_is_explained_without_inflating_it_all(tmp_path: Path) -> None:
    async def scenario(base: str) -> None:
        async with page(base) as learner:
            wire = await connect(f"{base}/learn/ws?session={learner.session}",
                                 max_size=None)
            await wire.send(bytes(10 * learn.MAX_MESSAGE))  # a few hundred bytes compressed
            received = await learner.report("frame")
            assert received["length"] < 1000
            assert received["verdict"][0].startswith(
                f"INVALID: the payload inflates to more than {learn.MAX_MESSAGE} bytes")
            with pytest.raises(ConnectionClosed):
                await wire.recv()
            assert wire.close_code == 1009

    run(scenario, make_config(tmp_path))


def test_sessions_of_one_address_share_one_rate() -> None:
    sessions = learn.Sessions()
    one = sessions.open("192.0.2.1", None)  # type: ignore[arg-type]
    two = sessions.open("192.0.2.1", None)  # type: ignore[arg-type]
    other = sessions.open("192.0.2.2", None)  # type: ignore[arg-type]
    assert one.bucket is two.bucket and one.bucket is not other.bucket
    assert all(one.allow() for _ in range(int(learn.RATE_BURST)))
    assert not two.allow() and other.allow()
    sessions.close(one)
    assert "192.0.2.1" in sessions.buckets
    sessions.close(two)
    assert "192.0.2.1" not in sessions.buckets


def test_a_page_that_leaves_its_reports_unread_is_dropped() -> None:
    class Unread:
        buffered_amount = learn.MAX_UNREAD_REPORTS + 1
        closed: tuple[int, str] | None = None

        async def close(self, code: int, reason: str) -> None:
            self.closed = (code, reason)

        def send_nowait(self, message: str) -> None:  # pragma: no cover - never reached
            raise AssertionError(message)

    async def scenario() -> None:
        control = Unread()
        session = learn.Sessions().open("192.0.2.1", control)  # type: ignore[arg-type]
        session.report({"type": "frame"})
        session.report({"type": "frame"})  # once closing, nothing more is queued
        assert session.closing is not None
        await session.closing
        assert control.closed == (1008, "reports left unread")

    asyncio.run(scenario())


def test_every_string_of_the_page_is_in_both_tables() -> None:
    root = Path(__file__).resolve().parents[2]
    strings = (root / "asset" / "js" / "learn" / "strings.js").read_text(encoding="utf-8")
    english, chinese = strings.split("\n  zh: {", 1)
    keys_en = set(re.findall(r"^    (\w+):", english, re.M))
    keys_zh = set(re.findall(r"^    (\w+):", chinese, re.M))
    assert keys_en == keys_zh and len(keys_en) > 60
    html = (root / "views" / "learn.html").read_text(encoding="utf-8")
    script = (root / "asset" / "js" / "learn" / "learn.js").read_text(encoding="utf-8")
    used = set(re.findall(r'data-t="(\w+)"', html)) | set(re.findall(r'\bt\("(\w+)"', script))
    used |= {f"broken_{kind}" for kind in learn.BROKEN_KINDS}  # t(`broken_${kind}`)
    used |= {f"step_{step}" for step in ("key", "joined", "sha1", "accept")}
    used |= {f"dir_{d}" for d in ("recv", "send")}
    used |= {f"error_{e}" for e in ("bad_request", "not_connected", "bad_fragments",
                                    "ping_too_long")}
    assert used <= keys_en, used - keys_en
    # Every error the server may report has its sentence.
    source = (root / "fastim" / "handlers" / "learn.py").read_text(encoding="utf-8")
    errors = set(re.findall(r'"error": "(\w+)"', source))
    assert {f"error_{e}" for e in errors} <= keys_en
