"""Small, valid recordings built byte by byte, for the voice upload tests and the fuzz
seeds: WebM as MediaRecorder writes it (unknown sizes, no Duration) or with a Duration,
Ogg Opus, and MP4/AAC. No audio is encoded: the server reads headers and timecodes only.
"""

from __future__ import annotations

import struct

from mutagen.ogg import OggPage


def _vint_size(size: int | None) -> bytes:
    if size is None:
        return b"\x01\xff\xff\xff\xff\xff\xff\xff"  # unknown size (RFC 8794 §6.2)
    return b"\x01" + size.to_bytes(7, "big")  # always 8 bytes: simple and valid


def element(element_id: int, body: bytes, *, unknown: bool = False) -> bytes:
    ident = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return ident + _vint_size(None if unknown else len(body)) + body


def _uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def webm(seconds: float, *, stated: bool = False, video: bool = False,
         doc_type: str = "webm") -> bytes:
    """A WebM file `seconds` long: blocks every 20 ms in clusters of one second."""
    header = element(0x1A45DFA3, element(0x4282, doc_type.encode()))
    info_body = element(0x2AD7B1, _uint(1_000_000))
    if stated:
        info_body += element(0x4489, struct.pack(">d", seconds * 1000))
    tracks = element(0xAE, element(0xD7, b"\x01") + element(0x83, b"\x02")
                     + element(0x86, b"A_OPUS"))
    if video:
        tracks += element(0xAE, element(0xD7, b"\x02") + element(0x83, b"\x01")
                          + element(0x86, b"V_VP8"))
    body = element(0x1549A966, info_body) + element(0x1654AE6B, tracks)
    total_ms = int(seconds * 1000)
    for start in range(0, total_ms + 1, 1000):
        blocks = b"".join(
            element(0xA3, b"\x81" + struct.pack(">h", offset) + b"\x80" + b"\xfc" * 8)
            for offset in range(0, min(1000, total_ms - start + 1), 20))
        body += element(0x1F43B675, element(0xE7, _uint(start)) + blocks, unknown=True)
    return header + element(0x18538067, body, unknown=True)


def ogg_opus(seconds: float) -> bytes:
    """An Ogg Opus stream whose last granule position says `seconds`."""
    pre_skip = 312
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 6) + b"fastim" + struct.pack("<I", 0)
    pages = []
    for sequence, (packet, granule) in enumerate(
            [(head, 0), (tags, 0), (b"\xfc" * 20, pre_skip + int(seconds * 48000))]):
        page = OggPage()
        page.serial = 0x1234
        page.sequence = sequence
        page.position = granule
        page.packets = [packet]
        page.first = sequence == 0
        page.last = sequence == 2
        pages.append(page.write())
    return b"".join(pages)


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def mp4_audio(seconds: float) -> bytes:
    """An MP4 (M4A) with one AAC track of `seconds`, as Safari's MediaRecorder gives."""
    timescale = 48000
    mdhd = _box(b"mdhd", b"\0" * 4 + struct.pack(">IIII", 0, 0, timescale,
                                                 int(seconds * timescale)) + b"\x55\xc4\0\0")
    hdlr = _box(b"hdlr", b"\0" * 8 + b"soun" + b"\0" * 12 + b"SoundHandler\0")
    esds = _box(b"esds", b"\0" * 4 + bytes([0x03, 25, 0, 1, 0, 0x04, 17, 0x40, 0x15])
                + b"\0" * 13 + bytes([0x06, 1, 2]))
    mp4a = _box(b"mp4a", b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 8
                + struct.pack(">HHHHI", 1, 16, 0, 0, timescale << 16) + esds)
    stsd = _box(b"stsd", b"\0" * 4 + struct.pack(">I", 1) + mp4a)
    stbl = _box(b"stbl", stsd)
    minf = _box(b"minf", stbl)
    mdia = _box(b"mdia", mdhd + hdlr + minf)
    trak = _box(b"trak", mdia)
    mvhd = _box(b"mvhd", b"\0" * 4 + struct.pack(">IIII", 0, 0, 1000, int(seconds * 1000))
                + b"\0" * 80)
    moov = _box(b"moov", mvhd + trak)
    ftyp = _box(b"ftyp", b"M4A \0\0\0\0M4A isom")
    return ftyp + moov + _box(b"mdat", b"\0" * 16)
