"""Just enough of WebM (Matroska's EBML) to tell an audio recording and its duration.

A browser's ``MediaRecorder`` writes WebM (Chrome, Edge, Firefox) as a live stream: the
Segment and its Clusters have an unknown size, and the Info element has no Duration,
because the recorder cannot know it when it writes the header. So the duration is taken
from the header's Duration when there is one, and otherwise from the timecodes of the
audio blocks: the last block's time is the length of the recording (to within one Opus
frame, 20 ms).

EBML (RFC 8794) is a tree of elements, each an ID, a size and a body, both the ID and the
size being variable-length integers (§4). This reader walks the elements in file order,
without recursion: it steps *into* the few master elements it needs (Segment, Info,
Tracks, TrackEntry, Cluster, BlockGroup), so an unknown size (§6.2) does not matter for
them, and *over* every other element by its size. Element IDs are from the Matroska
specification (RFC 9559 §5.1).

Untrusted bytes: every failure is a :class:`WebMError`; nothing else escapes, nothing is
allocated beyond the input, and the walk only goes forward, so it ends.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

EBML = 0x1A45DFA3  # the EBML header (RFC 8794 §11.2)
DOC_TYPE = 0x4282
SEGMENT = 0x18538067
INFO = 0x1549A966
TIMESTAMP_SCALE = 0x2AD7B1  # nanoseconds per timecode unit; 1,000,000 (1 ms) by default
DURATION = 0x4489  # a float, in timecode units
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
TRACK_TYPE = 0x83  # 1 video, 2 audio (RFC 9559 §5.1.4.1.3)
CODEC_ID = 0x86
CLUSTER = 0x1F43B675
CLUSTER_TIMESTAMP = 0xE7
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
SIMPLE_BLOCK = 0xA3

#: Master elements whose children this reader needs: it steps into them.
_ENTERED = {SEGMENT, INFO, TRACKS, TRACK_ENTRY, CLUSTER, BLOCK_GROUP}
VIDEO, AUDIO = 1, 2
#: A value element we read is never longer than this (a codec id, a float, an integer).
_MAX_VALUE = 64


class WebMError(ValueError):
    """The bytes are not a WebM file this reader understands."""


@dataclass
class Track:
    number: int = 0
    type: int = 0
    codec: str = ""


@dataclass
class WebMInfo:
    """What the header and blocks say."""

    doc_type: str = ""
    timestamp_scale: int = 1_000_000
    #: The Duration of the Info element, in seconds, when the file states one.
    stated_duration: float | None = None
    #: The time of the last block, in seconds (0.0 when there is no block).
    last_block: float = 0.0
    tracks: list[Track] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """The length of the recording in seconds: the stated one, else the blocks'."""
        return self.stated_duration if self.stated_duration is not None else self.last_block

    @property
    def audio_only(self) -> bool:
        """At least one audio track and no other."""
        return bool(self.tracks) and all(t.type == AUDIO for t in self.tracks)


def read_vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer at `pos` (RFC 8794 §4): its value, the position
    after it, and whether it is the reserved "unknown" value (all value bits set).

    The count of leading zero bits of the first byte, plus one, is its length; an
    element ID keeps that marker bit (``keep_marker``), a size drops it."""
    if pos >= len(data):
        raise WebMError("the file ends inside an element header")
    first = data[pos]
    if first == 0:
        raise WebMError(f"an integer longer than 8 bytes at offset {pos}")
    length = 9 - first.bit_length()
    if pos + length > len(data):
        raise WebMError("the file ends inside an element header")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[pos + 1:pos + length]:
        value = (value << 8) | byte
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, pos + length, unknown


def _uint(body: bytes) -> int:
    return int.from_bytes(body, "big")


def _float(body: bytes) -> float:
    if len(body) == 4:
        return float(struct.unpack(">f", body)[0])
    if len(body) == 8:
        return float(struct.unpack(">d", body)[0])
    raise WebMError("a Duration is a 4- or 8-byte float")


def _block_time(body: bytes) -> int:
    """The timecode of a (Simple)Block relative to its cluster: a signed 16-bit integer
    after the track number (RFC 9559 §10.1)."""
    _, pos, _ = read_vint(body, 0, keep_marker=False)
    if pos + 2 > len(body):
        raise WebMError("a block is too short")
    return int(struct.unpack(">h", body[pos:pos + 2])[0])


def read_webm(data: bytes) -> WebMInfo:
    """Read the header, tracks and block times of a WebM file. Raises WebMError."""
    if not data.startswith(b"\x1a\x45\xdf\xa3"):
        raise WebMError("no EBML header")
    info = WebMInfo()
    track: Track | None = None
    cluster_time = 0
    last_time = 0
    pos = 0
    end = len(data)
    while pos < end:
        element, pos, _ = read_vint(data, pos, keep_marker=True)
        size, pos, unknown = read_vint(data, pos, keep_marker=False)
        if element in _ENTERED:
            if element == TRACK_ENTRY:
                track = Track()
                info.tracks.append(track)
            continue  # its children follow: known size or not, walk on into them
        if unknown:
            raise WebMError(f"element {element:#x} has an unknown size")
        if size > end - pos:
            raise WebMError(f"element {element:#x} runs past the end of the file")
        if element == EBML:
            info.doc_type = _doc_type(data[pos:pos + size])
        elif element in (SIMPLE_BLOCK, BLOCK):
            last_time = max(last_time, cluster_time + _block_time(data[pos:pos + size]))
        elif size <= _MAX_VALUE:
            body = data[pos:pos + size]
            if element == TIMESTAMP_SCALE:
                info.timestamp_scale = _uint(body)
            elif element == DURATION:
                info.stated_duration = _float(body)
            elif element == CLUSTER_TIMESTAMP:
                cluster_time = _uint(body)
            elif track is not None and element == TRACK_NUMBER:
                track.number = _uint(body)
            elif track is not None and element == TRACK_TYPE:
                track.type = _uint(body)
            elif track is not None and element == CODEC_ID:
                track.codec = body.decode("ascii", "replace")
        pos += size
    if info.doc_type not in ("webm", "matroska"):
        raise WebMError(f"not a WebM file (DocType {info.doc_type!r})")
    if not 0 < info.timestamp_scale <= 10**12:
        raise WebMError("the timestamp scale is out of range")
    seconds_per_unit = info.timestamp_scale / 1e9
    if info.stated_duration is not None:
        duration = info.stated_duration * seconds_per_unit
        if not 0 <= duration < 1e9:  # also refuses NaN
            raise WebMError("the stated duration is out of range")
        info.stated_duration = duration
    info.last_block = last_time * seconds_per_unit
    return info


def _doc_type(header: bytes) -> str:
    """The DocType inside the EBML header's body."""
    pos = 0
    while pos < len(header):
        element, pos, _ = read_vint(header, pos, keep_marker=True)
        size, pos, unknown = read_vint(header, pos, keep_marker=False)
        if unknown or size > len(header) - pos:
            raise WebMError("the EBML header is damaged")
        if element == DOC_TYPE:
            return header[pos:pos + size].rstrip(b"\0").decode("ascii", "replace")
        pos += size
    return ""
