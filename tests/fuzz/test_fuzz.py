"""Short coverage-guided runs of every fuzzing target (fuzz/targets.py), and the inputs
that once found a bug, replayed as regression cases. `make fuzz` runs them longer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]

# Inputs worth keeping: each target must take them without an unexpected exception.
REGRESSIONS: list[tuple[str, bytes]] = [
    ("http-parser", b"\x05GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("http-parser", b"\x01POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n"),
    ("http-parser", b"\x10GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
    ("ws-frames-server", b"\x03\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00"),
    ("ws-frames-server", b"\x01\x88\x82\x00\x00\x00\x00\x03\xe7"),
    ("ws-frames-client", b"\x00\x01\x05\xed\xa0\x80\x80\x80"),
    ("ws-frames-deflate", b"\x02\xc1\x85\x00\x00\x00\x00\xff\xff\xff\xff\xff"),
    ("ws-handshake", b"GET / HTTP/1.1\r\nSec-WebSocket-Key: \xff\r\nUpgrade: websocket"),
    ("chat-message", b'{"cmd": 10, "dstid": "0099999999999999999999"}'),
    ("chat-message", '{"cmd": "\u00b2"}'.encode()),  # isdigit() but not int(): once escaped the parser
    ("chat-message", b"[" * 30000),  # RecursionError in json.loads: once escaped the parser
    ("chat-message", b"\x00\xff\xc2\xb2"),  # the shapes: "²" as cmd, 10,200 levels deep
]


@pytest.mark.parametrize(("target", "data"), REGRESSIONS)
def test_regression_inputs(target: str, data: bytes) -> None:
    TARGETS[target](data)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_fuzzing_run_finds_no_crash(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    result = subprocess.run(
        [sys.executable, "-m", "fuzz", target, "-max_total_time=2",
         f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    crashes = list(tmp_path.glob("crash-*"))
    assert result.returncode == 0 and not crashes, result.stderr[-3000:]
