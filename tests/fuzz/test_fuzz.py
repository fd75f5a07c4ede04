"""The fuzzing targets (fuzz/targets.py) on their seed corpora, replayed, so that a
parser regression fails here; the inputs that once found a bug, as regression cases; and
one short coverage-guided run through `python -m fuzz`. `make fuzz` runs them longer."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fastim.errors import AppError
from fastim.media.images import process_image
from fastim.media.options import MediaOptions
from fuzz.coverage import corpus
from fuzz.targets import _MEDIA, MODULES, TARGETS

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
    seeds = corpus("http-parser")
    result = subprocess.run(
        [sys.executable, "-m", "fuzz", "http-parser", "-runs=2000",
         f"-artifact_prefix={tmp_path}/", str(scratch)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    crashes = list(tmp_path.glob("crash-*"))
    assert result.returncode == 0 and not crashes, result.stderr[-3000:]
    assert "Dictionary:" in result.stderr and "fuzz/corpus/http-parser" in result.stderr
    assert corpus("http-parser") == seeds  # what it finds goes to the scratch directory


# Found by `make fuzz` (media-upload, 60 s): a 312-byte GIF whose second frame lies far
# outside its 4×4 screen. Pillow grows the canvas to 36096×2051 to hold it, and the
# pixel limits had only seen the first frame: 650 MB and 2 s before a 415.
GROWING_GIF = bytes.fromhex(
    "4749463839610400040080000000000000000021ff0b4e45545343584d5020415045322e0300034749463837"
    "61030003008000000000000000007e000000000000002c00000000030003000008070001081c383020ffffff"
    "ffffffff3d003b008000000000000040002c000000474946383961040000e60000002c0000fd000300030000"
    "08070001081c38302004000f0000002c000000636f6d6d656e740021f904fd00030003000021fe096120636f"
    "6d6d656e20000000000000003761038003008000000000000000002c00000008030003000008070001081c38"
    "302004000f0000002c00890000000400030003000008070001081c38302004000f0000002c000000636f6d6d"
    "656e740021f904000f0000002c00000000040004000008090001081c48b02080800000040000083b00090001"
    "3b000000"
)


def _gif(screen: tuple[int, int], frames: list[tuple[int, int, int, int]]) -> bytes:
    """An animated GIF with a `screen`-sized logical screen and one blank frame per
    (left, top, width, height), wherever that puts it."""
    out = b"GIF89a" + struct.pack("<HH", *screen) + b"\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    out += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for left, top, width, height in frames:
        made = io.BytesIO()
        Image.new("P", (width, height), 0).save(made, "GIF")
        raw = made.getvalue()
        at = raw.index(b",", 13)  # Pillow's image descriptor; its LZW data follows
        flags = raw[at + 9]
        start = at + 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        out += (b"!\xf9\x04\x00\x0a\x00\x00\x00," + struct.pack("<HHHH", left, top, width, height)
                + b"\x00" + raw[start:-1])
    return out + b";"


SMALL = MediaOptions(max_side=64, thumb_side=16, max_pixels=10_000, max_frames=100,
                     max_animation_pixels=50_000)


@pytest.mark.parametrize(("gif", "options"), [
    (GROWING_GIF, _MEDIA),
    # one frame outside the screen: a 200×200 canvas, over max_pixels
    (_gif((4, 100), [(0, 0, 4, 100), (196, 196, 4, 4)]), SMALL),
    # each canvas under max_pixels, all of them over max_animation_pixels
    (_gif((4, 100), [(0, 0, 4, 100)] + [(86, 86, 4, 4)] * 19), SMALL),
], ids=["found-by-fuzzing", "one-far-frame", "many-grown-frames"])
def test_gif_frames_outside_the_screen_cannot_grow_past_the_pixel_limits(
    gif: bytes, options: MediaOptions, tmp_path: Path
) -> None:
    source = tmp_path / "upload"
    source.write_bytes(gif)
    with pytest.raises(AppError) as refused:
        process_image(source, tmp_path, options)
    assert refused.value.status == 413
    assert list(tmp_path.iterdir()) == [source]
