"""The fuzzing targets (fuzz/targets.py) on their seed corpora, replayed, so that a
parser regression fails here; the inputs that once found a bug, as regression cases; and
one short coverage-guided run through `python -m fuzz`. `make fuzz` runs them longer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.coverage import corpus
from fuzz.targets import MODULES, TARGETS

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
def test_corpus_replays_without_an_unexpected_exception(target: str) -> None:
    if target == "chat-structured":
        pytest.importorskip("atheris")  # its inputs are read by atheris.FuzzedDataProvider
    inputs = corpus(target)
    assert inputs, f"fuzz/corpus/{target}/ is empty: python -m fuzz seeds"
    for path in inputs:
        try:
            TARGETS[target](path.read_bytes())
        except Exception as exc:
            raise AssertionError(f"{path.relative_to(ROOT)} raised {exc!r}") from exc


def test_every_target_names_its_module_and_has_a_dictionary() -> None:
    assert set(MODULES) == set(TARGETS)
    for target, module in MODULES.items():
        assert (ROOT / module).is_file()
        if target != "chat-structured":  # its bytes are not text a dictionary could seed
            assert (ROOT / "fuzz" / f"{target}.dict").is_file(), target


def test_short_fuzzing_run_finds_no_crash(tmp_path: Path) -> None:
    """One short run through the command line, with the target's dictionary and seed
    corpus as `python -m fuzz` passes them; the corpus is replayed above for every target."""
    pytest.importorskip("atheris")
    scratch = tmp_path / "corpus"
    scratch.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "fuzz", "http-parser", "-runs=2000",
         f"-artifact_prefix={tmp_path}/", str(scratch)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    crashes = list(tmp_path.glob("crash-*"))
    assert result.returncode == 0 and not crashes, result.stderr[-3000:]
    assert "Dictionary:" in result.stderr and "fuzz/corpus/http-parser" in result.stderr
