"""`python -m soak.attack` (`make attack`): the second outside attack, replayed.

Every attack of docs/security.md's "Findings of the second outside attack" runs against a
fastim server on this machine, and each prints one line: ``held`` (the server did what
the fix says it must), ``broken`` (it did what the attack found), or ``unknown`` (this
run could not observe it, with the reason). The exit status is 1 when any attack is
``broken``.

    python -m soak.attack --serve              # start a fresh server of its own (make attack)
    python -m soak.attack --port 8081          # a running one (make run); add --log FILE
                                               # (where its access log goes) and it reads it

Bounded: every attack has a time budget and the whole run stops at ``--time-limit``; the
floods are of a fixed size. Loopback only: a target that resolves to anything but a
loopback address is refused, since these are attacks and the server's memory is read from
/proc. Each run registers a few accounts of its own (random numbers) and, last of all,
floods registration and guesses a password: against a server with the throttles on, a
second run within their windows finds itself throttled at its set-up and says so.

The verdict of each attack follows the fix the issue asks for, not today's numbers:
for example the register flood holds when one address meets a 429 within 30 attempts,
and the connection cap when an eleventh /chat connection of one user is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import ipaddress
import json
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastim.ws import ConnectionClosed, InvalidHandshake, connect

HELD, BROKEN, UNKNOWN = "held", "broken", "unknown"

#: A 35-byte GIF (1x1), as in the attack: what follows its trailer must not be stored.
TINY_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff,\x00\x00\x00\x00"
            b"\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
GIF_TRAILER = b"<html><script>alert(document.cookie)</script></html>"

#: More resident memory than this taken by one flood (when the server's memory can be
#: read) is a broken bound, whatever else was seen: the fixes hold a connection to its
#: write limit plus a few hundred KiB.
RSS_BOUND = 48 * 1024 * 1024


class SetupError(Exception):
    """The accounts the attacks need could not be made (the reason says why)."""


@dataclass
class Verdict:
    name: str
    status: str
    reason: str

    def line(self) -> str:
        return f"{self.status:<8}{self.name:<26}{self.reason}"


@dataclass
class Person:
    id: int
    mobile: str
    passwd: str
    token: str


@dataclass
class Target:
    host: str
    port: int
    quick: bool = False
    pid: int | None = None
    log: Path | None = None
    people: dict[str, Person] = field(default_factory=dict)

    # -- HTTP ---------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> tuple[int, Any]:
        """One request on a new connection: (status, the reply's JSON or None)."""
        sent = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if token:
            sent["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            content = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(content)
        except ValueError:
            return response.status, content

    async def acall(self, method: str, path: str, body: Any = None,
                    token: str | None = None) -> tuple[int, Any]:
        return await asyncio.to_thread(self.call, method, path, body, token)

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send bytes on a new connection; what comes back until the server closes it, a
        full response head arrives and the reading goes quiet, or `timeout`."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(data)
            received = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    if b"\r\n\r\n" in received:
                        break
                    continue
                except ConnectionError:
                    break
                if not chunk:
                    break
                received += chunk
            return received

    def ws_url(self, token: str) -> str:
        return f"ws://{self.host}:{self.port}/chat?token={token}"

    # -- the server's memory --------------------------------------------------------------

    def rss(self) -> int | None:
        """The server's resident memory in bytes, when its process is known."""
        if self.pid is None:
            return None
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        return int(found.group(1)) * 1024 if found else None


def status_line(reply: bytes) -> int:
    found = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    return int(found.group(1)) if found else 0


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def listening_pid(port: int) -> int | None:
    """The process that listens on `port` on this machine, from /proc (None when it cannot
    be seen, e.g. another user's process)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return int(proc.name)
    return None


def require_loopback(host: str, port: int) -> None:
    """Refuse any target that is not this machine's loopback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise SystemExit(f"soak.attack: cannot resolve {host!r}: {error}") from None
    addresses = {info[4][0] for info in infos}
    outside = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if not addresses or outside:
        raise SystemExit(f"soak.attack: {host} is not a loopback address ({', '.join(outside)}):"
                         " these attacks run against this machine only")


# -- set-up ------------------------------------------------------------------------------

def new_mobile() -> str:
    return "139" + "".join(secrets.choice("0123456789") for _ in range(8))


def register(t: Target, passwd: str, nickname: str) -> tuple[int, Any, str]:
    mobile = new_mobile()
    status, reply = t.call("POST", "/user/register",
                           {"mobile": mobile, "passwd": passwd, "nickname": nickname})
    return status, reply, mobile


def make_person(t: Target, nickname: str) -> Person:
    passwd = f"attack horse {secrets.token_hex(4)}"
    status, reply, mobile = register(t, passwd, nickname)
    if status != 201:
        raise SetupError(f"registering {nickname} answered {status} {_msg(reply)} (a throttle "
                         "from an earlier run? start a fresh server, or use --serve)")
    status, login = t.call("POST", "/user/login", {"mobile": mobile, "passwd": passwd})
    if status != 200:
        raise SetupError(f"logging {nickname} in answered {status} {_msg(login)}")
    return Person(reply["data"]["id"], mobile, passwd, login["data"]["token"])


def befriend(t: Target, a: Person, b: Person) -> None:
    """Friends by consent: `a` asks, `b` asking back accepts."""
    for asker, other, expected in ((a, b, "requested"), (b, a, "friends")):
        status, reply = t.call("POST", "/contact/addfriend", {"dstid": other.id},
                               token=asker.token)
        answer = reply.get("data") if isinstance(reply, dict) else None
        if status != 200 or answer != {"status": expected}:
            raise SetupError(f"befriending answered {status} {_msg(reply)}")


def setup(t: Target) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        t.people[name] = make_person(t, f"attack {name}")
    befriend(t, t.people["alice"], t.people["bob"])
    befriend(t, t.people["dave"], t.people["bob"])


def _msg(reply: Any) -> str:
    if isinstance(reply, dict):
        return repr(reply.get("msg", ""))
    return repr(reply[:80]) if isinstance(reply, bytes) else ""


# -- WebSocket helpers --------------------------------------------------------------------

async def open_chat(t: Target, token: str) -> Any:
    """A /chat connection, once the server's presence snapshot has come."""
    ws = await connect(t.ws_url(token), ping_interval=None, open_timeout=5)
    await next_frame(ws, lambda f: f.get("cmd") == 50 and "users" in f)
    return ws


async def next_frame(ws: Any, test: Callable[[dict[str, Any]], bool],
                     timeout: float = 5.0) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            frame = json.loads(await ws.recv())
            if test(frame):
                return frame

    return await asyncio.wait_for(wait(), timeout)


async def frames_until_quiet(ws: Any, quiet: float, limit: float) -> tuple[list[Any], int | None]:
    """Every frame until none comes for `quiet` seconds (or `limit` in all): the frames
    and the close code if the server closed the connection."""
    frames: list[Any] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            raw = await asyncio.wait_for(ws.recv(), min(quiet, deadline - time.monotonic()))
        except TimeoutError:
            return frames, None
        except ConnectionClosed as closed:
            return frames, closed.code
        frames.append(json.loads(raw))
    return frames, None


def text(cid: str, dstid: int, content: str) -> str:
    return json.dumps({"cmd": 10, "dstid": dstid, "media": 1, "content": content, "cid": cid})


# -- the HTTP layer --------------------------------------------------------------------------

async def http10_upgrade(t: Target) -> Verdict:
    name = "http-1.0-upgrade"
    token = t.people["alice"].token
    reply = await asyncio.to_thread(t.raw, (
        f"GET /chat?token={token} HTTP/1.0\r\nHost: {t.host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n").encode(), 3.0)
    status = status_line(reply)
    if status == 400:
        return Verdict(name, HELD, "an HTTP/1.0 upgrade is 400 (RFC 6455 §4.1 needs HTTP/1.1)")
    return Verdict(name, BROKEN if status == 101 else UNKNOWN,
                   f"an HTTP/1.0 upgrade got {status or 'no answer'}, not 400")


async def content_length_list(t: Target) -> Verdict:
    name = "content-length-list"
    reply = await asyncio.to_thread(t.raw, (
        f"POST /user/login HTTP/1.1\r\nHost: {t.host}\r\nContent-Type: application/json\r\n"
        "Content-Length: 2, 2\r\n\r\n{}").encode(), 3.0)
    status = status_line(reply)
    if status == 400:
        return Verdict(name, HELD, "Content-Length: 2, 2 is 400")
    return Verdict(name, BROKEN, f"Content-Length: 2, 2 got {status or 'no answer'}, not 400")


def _push(sock: socket.socket, chunk: bytes, total: int, stall: float,
          limit: float) -> tuple[int, bool, str]:
    """Send `chunk` again and again up to `total` bytes, never reading: (bytes the server
    took, whether sending stalled for `stall` seconds, how it ended)."""
    sent = 0
    last_progress = time.monotonic()
    deadline = last_progress + limit
    view = memoryview(chunk)
    offset = 0
    while sent < total:
        now = time.monotonic()
        if now - last_progress > stall:
            return sent, True, "stalled"
        if now > deadline:
            return sent, False, "time limit"
        _, writable, _ = select.select([], [sock], [], 0.1)
        if not writable:
            continue
        try:
            n = sock.send(view[offset:offset + min(len(chunk) - offset, total - sent)])
        except BlockingIOError:
            continue
        except OSError as error:
            return sent, False, f"closed ({error.strerror or error})"
        sent += n
        offset = (offset + n) % len(chunk)
        last_progress = time.monotonic()
    return sent, False, "all sent"


def _non_reader(t: Target) -> socket.socket:
    """A client with small buffers, as in the attack: what the server sends stays with
    the server."""
    sock = socket.socket(socket.AF_INET6 if ":" in t.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    sock.settimeout(5)
    sock.connect((t.host, t.port))
    return sock


async def pipelined_http(t: Target) -> Verdict:
    name = "pipelined-http"
    request = f"GET /chat HTTP/1.1\r\nHost: {t.host}\r\n\r\n".encode()
    count = 12_000 if t.quick else 36_000  # the attack's 1.1 MB
    before = t.rss()

    def flood() -> tuple[int, bool, str, int | None]:
        with _non_reader(t) as sock:
            sock.setblocking(False)
            sent, stalled, how = _push(sock, request * 500, len(request) * count,
                                       stall=1.0 if t.quick else 2.0, limit=20.0)
            time.sleep(0.5)  # what it read, it is answering now
            return sent, stalled, how, t.rss()

    sent, stalled, how, after = await asyncio.to_thread(flood)
    taken = sent // len(request)
    grew = f"; its memory grew {mib(after - before)}" if before and after else ""
    if before and after and after - before > RSS_BOUND:
        return Verdict(name, BROKEN, f"the server read {taken} of {count} pipelined requests "
                                     f"whose answers nobody read{grew}")
    if stalled or how.startswith("closed"):
        what = "stopped reading" if stalled else f"closed the connection ({how})"
        return Verdict(name, HELD, f"the server {what} after {taken} of {count} requests "
                                   f"({mib(sent)}) whose answers nobody read{grew}")
    return Verdict(name, BROKEN, f"the server read all {count} pipelined requests "
                                 f"({mib(sent)}) without a byte of its answers read{grew}")


# -- fastim.ws ------------------------------------------------------------------------------

def _frames(data: bytes) -> list[int]:
    """The opcodes of the complete unmasked server frames in `data`."""
    opcodes = []
    pos = 0
    while pos + 2 <= len(data):
        length = data[pos + 1] & 0x7F
        head = 2
        if length == 126:
            if pos + 4 > len(data):
                break
            length, head = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
        elif length == 127:
            if pos + 10 > len(data):
                break
            length, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
        if pos + head + length > len(data):
            break
        opcodes.append(data[pos] & 0x0F)
        pos += head + length
    return opcodes


async def ping_flood(t: Target) -> Verdict:
    name = "ws-ping-flood"
    token = t.people["alice"].token
    pings = 60_000 if t.quick else 600_000
    mask = secrets.token_bytes(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"p" * 125))
    ping = b"\x89\xfd" + mask + payload  # FIN, opcode 9; masked, 125 bytes
    before = t.rss()

    def flood() -> tuple[int, bool, str, int | None, int, int | None]:
        with _non_reader(t) as sock:
            sock.sendall((f"GET /chat?token={token} HTTP/1.1\r\nHost: {t.host}\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(1)
                if not chunk:
                    break
                head += chunk
            if status_line(head) != 101:
                return 0, False, f"no 101 ({head[:40]!r})", None, 0, None
            sock.setblocking(False)
            sent, stalled, how = _push(sock, ping * 400, len(ping) * pings,
                                       stall=1.0 if t.quick else 2.0, limit=30.0)
            peak = t.rss()
            # Now read what the server queued: one pong per ping, or a few coalesced ones.
            sock.setblocking(True)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.settimeout(1.0)
            received = b""
            deadline = time.monotonic() + 20
            with contextlib.suppress(OSError):
                while time.monotonic() < deadline:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        break
                    received += chunk
            pongs = _frames(received).count(0xA)
            return sent, stalled, how, peak, pongs, None

    sent, stalled, how, peak, pongs, _ = await asyncio.to_thread(flood)
    if how.startswith("no 101"):
        return Verdict(name, UNKNOWN, f"the upgrade failed: {how}")
    taken = sent // len(ping)
    grew = f"; its memory grew {mib(peak - before)}" if before and peak else ""
    pause = ", then stopped reading" if stalled else ""
    summary = f"the server read {taken} of {pings} pings{pause} and queued {pongs} pongs{grew}"
    if before and peak and peak - before > RSS_BOUND:
        return Verdict(name, BROKEN, summary)
    if taken and pongs <= max(10, taken // 10):
        return Verdict(name, HELD, summary)
    return Verdict(name, BROKEN, summary)


# -- the chat -----------------------------------------------------------------------------

async def chat_parser(t: Target) -> Verdict:
    name = "chat-parser-escapes"
    inputs = ['{"cmd":"²"}', "[" * 30000,
              json.dumps({"cmd": 10, "dstid": "１２", "media": 1, "content": "x"},
                         ensure_ascii=False)]
    ws = await open_chat(t, t.people["alice"].token)
    replies: list[str] = []
    code = None
    try:
        for n in range(30):
            try:
                # The send too: the close that follows the last strike's error frame may
                # be in before the next send (the client then refuses to send).
                await ws.send(inputs[n % len(inputs)])
                frame = await next_frame(ws, lambda f: f.get("cmd") in (1, 2), 3.0)
            except ConnectionClosed as closed:
                code = closed.code
                break
            replies.append(frame.get("error") or "acked")
    finally:
        await ws.close()
    odd = sorted({r for r in replies if r not in ("bad_json", "bad_field")})
    if code == 1008 and not odd:
        return Verdict(name, HELD, f"each was bad_json or bad_field, a strike: closed with "
                                   f"1008 after {len(replies)} replies")
    return Verdict(name, BROKEN, f"{len(replies)} replies ({', '.join(odd) or 'all malformed'})"
                                 f", close {code or 'none'} after 30 malformed commands")


async def image_url(t: Target) -> Verdict:
    name = "image-url"
    bob = t.people["bob"].id
    missing = "/resource/ab/ab" + "0" * 62 + ".png"
    ws = await open_chat(t, t.people["alice"].token)
    problems = []
    try:
        for n, url in enumerate(("/asset/js/app.js", missing, "/asset//stickers/cat/hello.svg")):
            await ws.send(json.dumps({"cmd": 10, "dstid": bob, "media": 4, "url": url,
                                      "content": "", "cid": f"img{n}"}))
            frame = await next_frame(ws, lambda f, n=n: f.get("cid") == f"img{n}"
                                     and f.get("cmd") in (1, 2))
            if frame.get("error") != "bad_url":
                problems.append(f"{url} was {frame.get('error') or 'acked'}")
            elif "//" in url and "'//'" not in frame.get("msg", "") and "//" not in frame["msg"]:
                problems.append(f"the answer to {url} does not name the '//': {frame['msg']!r}")
    finally:
        await ws.close()
    if problems:
        return Verdict(name, BROKEN, "; ".join(problems))
    return Verdict(name, HELD, "a script under /asset/ and a never-uploaded image are "
                               "bad_url; the '//' is named")


async def history_total(t: Target) -> Verdict:
    name = "history-total-pagesize"
    alice, bob = t.people["alice"], t.people["bob"]
    ws = await open_chat(t, alice.token)
    try:
        for n in range(3):
            await ws.send(text(f"h{n}", bob.id, f"history {n}"))
            await next_frame(ws, lambda f, n=n: f.get("cid") == f"h{n}")
    finally:
        await ws.close()
    base = f"/chat/history?cmd=10&dstid={bob.id}"
    _, one = await t.acall("GET", base + "&pagesize=1", token=alice.token)
    _, page = await t.acall("GET", base + "&pagesize=100", token=alice.token)
    zero, _ = await t.acall("GET", base + "&pagesize=0", token=alice.token)
    total, rows = one["total"], len(page["rows"])
    if total == rows >= 3 and zero == 400:
        return Verdict(name, HELD, f"total is the conversation's {rows} with pagesize=1; "
                                   "pagesize=0 is 400")
    return Verdict(name, BROKEN, f"total {total} for a conversation of {rows}; "
                                 f"pagesize=0 answered {zero}")


async def connection_cap(t: Target) -> Verdict:
    name = "connections-per-user"
    token = t.people["alice"].token
    opened: list[Any] = []
    refused: list[str] = []
    try:
        for _ in range(11):
            try:
                opened.append(await connect(t.ws_url(token), ping_interval=None,
                                            open_timeout=5))
            except InvalidHandshake as error:
                refused.append(f"an upgrade got {error.status}")
        await asyncio.sleep(0.3)
        for ws in opened:
            try:
                await ws.send('{"cmd":0}')
                await next_frame(ws, lambda f: f.get("cmd") == 0, 3.0)
            except ConnectionClosed as closed:
                refused.append(f"one was closed with {closed.code}")
    finally:
        for ws in opened:
            await ws.close()
    if refused:
        return Verdict(name, HELD, f"of 11 connections of one user: {', '.join(refused)}")
    return Verdict(name, BROKEN, "one user held 11 /chat connections at once")


async def _burst(ws: Any, dstid: int, prefix: str, count: int) -> None:
    for n in range(count):
        await ws.send(text(f"{prefix}{n}", dstid, f"burst {n}"))


async def per_user_rate(t: Target) -> Verdict:
    name = "per-user-rate"
    alice, bob = t.people["alice"], t.people["bob"]
    sockets = [await open_chat(t, alice.token) for _ in range(3)]
    try:
        await asyncio.gather(*(_burst(ws, bob.id, f"r{i}-", 40)
                               for i, ws in enumerate(sockets)))
        results = await asyncio.gather(*(frames_until_quiet(ws, 1.5, 10) for ws in sockets))
    finally:
        for ws in sockets:
            await ws.close()
    acks = sum(1 for frames, _ in results for f in frames if f.get("cmd") == 1)
    if acks <= 60:
        return Verdict(name, HELD, f"{acks} of 120 acked over 3 connections of one user "
                                   "(one burst is 40)")
    return Verdict(name, BROKEN, f"{acks} of 120 acked over 3 connections of one user: each "
                                 "connection had a burst of its own")


async def acks_before_close(t: Target) -> Verdict:
    name = "acks-before-rate-close"
    dave, bob = t.people["dave"], t.people["bob"]
    path = f"/chat/history?cmd=10&dstid={bob.id}&pagesize=1"
    _, before = await t.acall("GET", path, token=dave.token)
    ws = await open_chat(t, dave.token)
    try:
        await _burst(ws, bob.id, "k", 60)
        frames, code = await frames_until_quiet(ws, 1.5, 10)
    finally:
        await ws.close()
    # What was accepted is stored by the group commit after the close: wait until the
    # count stops moving.
    counted = -1
    for _ in range(20):
        _, after = await t.acall("GET", path, token=dave.token)
        if after["total"] == counted:
            break
        counted = after["total"]
        await asyncio.sleep(0.3)
    stored = counted - before["total"]
    acks = sum(1 for f in frames if f.get("cmd") == 1)
    closing = f"closed with {code}" if code else "not closed"
    if acks >= stored:
        return Verdict(name, HELD, f"60 sent: {stored} stored, {acks} acked, {closing}")
    return Verdict(name, BROKEN, f"60 sent: {stored} stored but {acks} acked, {closing}")


# -- logs, uploads, names ----------------------------------------------------------------

async def token_redaction(t: Target) -> Verdict:
    name = "percent-encoded-token"
    if t.log is None:
        return Verdict(name, UNKNOWN, "the access log is not known here: pass --log FILE "
                                      "(or --serve)")
    token = t.people["alice"].token
    answers = []
    for query in (f"%74oken={token}", f"x=1&tok%65n={token}"):
        try:
            ws = await connect(f"ws://{t.host}:{t.port}/chat?{query}", ping_interval=None,
                               open_timeout=5)
            answers.append("101")
            await ws.close()
        except InvalidHandshake as error:
            answers.append(str(error.status))
    await asyncio.sleep(0.5)  # the log line is written after the request
    try:
        logged = t.log.read_text(errors="replace")
    except OSError as error:
        return Verdict(name, UNKNOWN, f"cannot read {t.log}: {error}")
    if token in logged:
        return Verdict(name, BROKEN, f"the token is in the log in clear (answers: "
                                     f"{', '.join(answers)})")
    return Verdict(name, HELD, f"the token is not in the log (answers: {', '.join(answers)})")


def _multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = secrets.token_hex(12)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{filename}\"\r\nContent-Type: image/gif\r\n\r\n").encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def gif_trailer(t: Target) -> Verdict:
    name = "gif-trailer"
    body, kind = _multipart("cat.gif", TINY_GIF + GIF_TRAILER)
    status, reply = await asyncio.to_thread(
        t.call, "POST", "/attach/upload", None, t.people["alice"].token,
        {"Content-Type": kind}, body)
    if status != 200:
        return Verdict(name, UNKNOWN, f"the upload answered {status} {_msg(reply)}")
    url = reply["data"]["url"]
    served_status, served = await t.acall("GET", url)
    if isinstance(served, bytes) and GIF_TRAILER not in served and served_status == 200:
        return Verdict(name, HELD, f"stored and served {len(served)} bytes, without the "
                                   "HTML after the trailer")
    return Verdict(name, BROKEN, f"{url} serves the HTML that followed the GIF's trailer")


async def names(t: Target) -> Verdict:
    name = "invisible-lookalike-names"
    alice = t.people["alice"]
    accepted = []
    for nickname in ("\u200b\u200b\u200b", "\ufeff", "\u3164", "abc\u202eevil"):
        status, _ = await t.acall("POST", "/user/update", {"nickname": nickname}, alice.token)
        if status == 200:
            accepted.append(f"nickname {ascii(nickname)}")
    tag = "".join(secrets.choice("0123456789") for _ in range(6))
    group = f"group{tag}"
    status, reply = await t.acall("POST", "/contact/createcommunity", {"name": group},
                                  alice.token)
    if status != 201:
        return Verdict(name, UNKNOWN, f"creating a group answered {status} {_msg(reply)}")
    for lookalike in (f"{group}\u200b", f"gr\u043eup{tag}", f"GROUP{tag}"):
        status, _ = await t.acall("POST", "/contact/createcommunity", {"name": lookalike},
                                  alice.token)
        if status == 201:
            accepted.append(f"group {ascii(lookalike)} beside {group!r}")
    if accepted:
        return Verdict(name, BROKEN, "accepted " + ", ".join(accepted))
    return Verdict(name, HELD, "invisible-only and bidi nicknames and look-alike group "
                               "names are refused")


async def passwords(t: Target) -> Verdict:
    name = "password-rules"
    composed = "Cre\u0300me bru\u0302le\u0301e 42"  # decomposed accents: NFC differs
    status, reply, mobile = await asyncio.to_thread(register, t, composed, "attack erin")
    if status == 429:
        return Verdict(name, UNKNOWN, "registration is throttled already for this address")
    problems = []
    if status != 201:
        problems.append(f"registering with a decomposed password got {status} {_msg(reply)}")
    else:
        login, _ = await t.acall("POST", "/user/login", {"mobile": mobile, "passwd": composed})
        if login != 200:
            problems.append(f"logging in with the very password registered got {login}")
    for weak in (" " * 8, "\u200b" * 8, "password", "12345678"):
        status, _, _ = await asyncio.to_thread(register, t, weak, "attack weak")
        if status == 201:
            problems.append(f"{ascii(weak)} was taken as a password")
    if problems:
        return Verdict(name, BROKEN, "; ".join(problems))
    return Verdict(name, HELD, "one normalisation for register and login; blank, invisible "
                               "and common passwords are refused")


async def passwd_guessing(t: Target) -> Verdict:
    name = "passwd-guessing"
    carol = t.people["carol"]
    for n in range(30):
        status, _ = await t.acall("POST", "/user/passwd",
                                  {"oldpasswd": f"wrong guess {n}", "passwd": "new horse 123"},
                                  carol.token)
        if status == 429:
            return Verdict(name, HELD, f"429 after {n} wrong old passwords")
    status, _ = await t.acall("POST", "/user/passwd",
                              {"oldpasswd": carol.passwd, "passwd": carol.passwd + " 2"},
                              carol.token)
    if status == 429:
        return Verdict(name, HELD, "30 wrong old passwords, then the right one is 429")
    return Verdict(name, BROKEN, f"30 wrong old passwords unthrottled; the right one got {status}")


async def register_flood(t: Target) -> Verdict:
    name = "register-flood"
    for n in range(1, 31):
        status, reply, _ = await asyncio.to_thread(register, t, f"flood horse {n}x",
                                                   f"flood {n}")
        if status == 429:
            return Verdict(name, HELD, f"429 at registration {n} from one address")
        if status != 201:
            return Verdict(name, UNKNOWN, f"registration {n} answered {status} {_msg(reply)}")
    return Verdict(name, BROKEN, "30 accounts registered from one address, no 429")


#: name -> attack, in the order they run: the ones that leave throttles behind go last.
ALL: dict[str, Callable[[Target], Awaitable[Verdict]]] = {
    "http-1.0-upgrade": http10_upgrade,
    "content-length-list": content_length_list,
    "pipelined-http": pipelined_http,
    "ws-ping-flood": ping_flood,
    "chat-parser-escapes": chat_parser,
    "image-url": image_url,
    "history-total-pagesize": history_total,
    "connections-per-user": connection_cap,
    "per-user-rate": per_user_rate,
    "acks-before-rate-close": acks_before_close,
    "percent-encoded-token": token_redaction,
    "gif-trailer": gif_trailer,
    "invisible-lookalike-names": names,
    "password-rules": passwords,
    "passwd-guessing": passwd_guessing,
    "register-flood": register_flood,
}


async def run(t: Target, only: list[str] | None = None, time_limit: float = 180.0,
              report: Callable[[Verdict], None] = lambda v: None) -> list[Verdict]:
    """Set up, then run each attack (all, or `only`) within `time_limit` seconds."""
    deadline = time.monotonic() + time_limit
    try:
        await asyncio.wait_for(asyncio.to_thread(setup, t), min(60.0, time_limit))
    except (SetupError, OSError, TimeoutError) as error:
        verdicts = [Verdict(n, UNKNOWN, f"set-up failed: {error}") for n in (only or ALL)]
        for verdict in verdicts:
            report(verdict)
        return verdicts
    verdicts = []
    for name in only or ALL:
        left = deadline - time.monotonic()
        if left <= 0:
            verdict = Verdict(name, UNKNOWN, f"not run: the time limit ({time_limit:.0f} s) "
                                             "was spent")
        else:
            try:
                verdict = await asyncio.wait_for(ALL[name](t), min(60.0, left))
            except TimeoutError:
                verdict = Verdict(name, UNKNOWN, "did not finish within its time")
            except (OSError, ConnectionClosed, InvalidHandshake, KeyError,
                    TypeError, ValueError) as error:
                verdict = Verdict(name, UNKNOWN, f"failed: {type(error).__name__}: {error}")
        report(verdict)
        verdicts.append(verdict)
    return verdicts


# -- a server of its own (--serve) ----------------------------------------------------------

@contextlib.contextmanager
def fresh_server(folder: Path, *flags: str) -> Any:
    """`python -m fastim serve` on a free loopback port with a SQLite database in
    `folder`, its log (the access log too) in ``folder/server.log``: (port, pid, log)."""
    log = folder / "server.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FASTIM_")}
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "fastim", "serve", "--host", "127.0.0.1", "--port", "0",
             "--db", f"sqlite:///{folder}/attack.db", "--data-dir", str(folder / "data"),
             "--resource-dir", str(folder / "resource"), *flags],
            stdout=subprocess.PIPE, stderr=err, env=environ, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"open http://[^:]+:(\d+)", line)
        if found is None:
            raise RuntimeError(f"the server did not start: {line!r} {log.read_text()[-2000:]}")
        yield int(found.group(1)), process.pid, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m soak.attack",
        description="Replay the second outside attack against a fastim server on this "
                    "machine; one line per attack: held, broken or unknown.")
    parser.add_argument("--serve", action="store_true",
                        help="start a fresh server of its own (SQLite in a temp dir) and "
                             "attack it")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--log", type=Path,
                        help="the file the server's access log goes to (to check redaction)")
    parser.add_argument("--pid", type=int,
                        help="the server's process (found from the port when not given)")
    parser.add_argument("--quick", action="store_true", help="smaller floods")
    parser.add_argument("--only", action="append", choices=list(ALL),
                        help="run this attack only (repeatable)")
    parser.add_argument("--time-limit", type=float, default=180.0,
                        help="seconds for the whole run (default 180)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def show(verdict: Verdict) -> None:
        print(verdict.line(), flush=True)

    def attack(target: Target) -> int:
        print(f"attacking {target.host}:{target.port}"
              + (f" (server pid {target.pid})" if target.pid else ""), flush=True)
        verdicts = asyncio.run(run(target, args.only, args.time_limit, show))
        held = sum(v.status == HELD for v in verdicts)
        broken = sum(v.status == BROKEN for v in verdicts)
        print(f"{held} held, {broken} broken, {len(verdicts) - held - broken} unknown",
              flush=True)
        return 1 if broken else 0

    if args.serve:
        with tempfile.TemporaryDirectory(prefix="fastim-attack-") as tmp, \
                fresh_server(Path(tmp)) as (port, pid, log):
            return attack(Target("127.0.0.1", port, args.quick, pid, log))
    require_loopback(args.host, args.port)
    pid = args.pid or listening_pid(args.port)
    return attack(Target(args.host, args.port, args.quick, pid, args.log))


if __name__ == "__main__":
    sys.exit(main())
