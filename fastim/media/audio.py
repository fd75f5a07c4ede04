"""Judging an uploaded voice message by its content: container, audio only, duration.

What a browser's ``MediaRecorder`` gives is Opus in WebM (Chrome, Edge, Firefox) or Ogg
(Firefox), or AAC in MP4 (Safari). The type is decided by the bytes, never by the file
name or the declared Content-Type:

* WebM: our own reader of the EBML header and block times (fastim/media/webm.py),
  because the recorder writes no Duration and a tag library has nothing to read;
* Ogg (Opus or Vorbis) and MP4: ``mutagen``, a well-kept pure-Python library that reads
  the duration from the stream headers (the last page's granule position, the ``mdhd``
  box) without decoding any audio.

Anything else, or a file with a video track, is a 415; a recording longer than
``max_seconds`` is a 413. Blocking file I/O: call it from a worker thread.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis

from fastim.errors import AppError

from .webm import WebMError, read_webm

log = logging.getLogger(__name__)

ACCEPTED_AUDIO = "Opus or Vorbis in WebM or Ogg, and AAC in MP4"


@dataclass(frozen=True)
class AudioType:
    mime: str
    extension: str


WEBM_AUDIO = AudioType("audio/webm", "webm")
OGG_AUDIO = AudioType("audio/ogg", "ogg")
MP4_AUDIO = AudioType("audio/mp4", "m4a")


@dataclass(frozen=True)
class Audio:
    """A checked recording: its type and its length in seconds."""

    type: AudioType
    seconds: float

    @property
    def amount(self) -> int:
        """The length as fastIM's ``amount``: whole seconds, at least 1."""
        return max(1, round(self.seconds))


def not_audio(detail: str) -> AppError:
    """415: not a recording of an accepted type."""
    return AppError(415, f"only voice recordings ({ACCEPTED_AUDIO}) can be sent as voice: "
                         f"{detail}")


def _is_audio_container(head: bytes) -> bool:
    return head.startswith((b"\x1a\x45\xdf\xa3", b"OggS")) or head[4:8] == b"ftyp"


def looks_like_audio(path: Path) -> bool:
    """Whether the file starts like a WebM, Ogg or MP4 file (then it is judged as a
    recording; whether it really is one, check_audio says)."""
    with open(path, "rb") as fh:
        return _is_audio_container(fh.read(12))


def check_audio(path: Path, max_seconds: float, max_bytes: int) -> Audio:
    """The type and duration of the recording in `path`; raises AppError 413 or 415."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # A voice message is small (60 s of Opus is about 250 KB) and bounded by the upload
        # limit, so the reader works on the bytes in memory.
        data = path.read_bytes()[:max_bytes]
        try:
            webm = read_webm(data)
        except WebMError as exc:
            raise not_audio(f"the WebM file is damaged ({exc})") from None
        if not webm.audio_only:
            raise not_audio("the WebM file has no audio track, or has a video track")
        audio = Audio(WEBM_AUDIO, webm.duration)
    elif head.startswith(b"OggS"):
        audio = Audio(OGG_AUDIO, _mutagen_length(path, "Ogg"))
    elif head[4:8] == b"ftyp":
        audio = Audio(MP4_AUDIO, _mutagen_length(path, "MP4"))
    else:
        raise not_audio("this file is none of them")
    if not math.isfinite(audio.seconds) or audio.seconds < 0:
        raise not_audio("its duration cannot be read")
    if audio.seconds > max_seconds:
        raise AppError(413, f"the recording is {audio.seconds:.1f} seconds long; voice "
                            f"messages may be at most {max_seconds:g} seconds")
    return audio


def _mutagen_length(path: Path, container: str) -> float:
    """The stream length mutagen reads from the headers of an Ogg or MP4 file."""
    kinds = (OggOpus, OggVorbis) if container == "Ogg" else (MP4,)
    for kind in kinds:
        try:
            parsed = kind(path)
        except Exception:
            # mutagen raises its own errors and, on malformed input, others too: the
            # file is then not one of ours, whatever the reason.
            log.debug("not %s", kind.__name__, exc_info=True)
            continue
        length = getattr(parsed.info, "length", None)
        if isinstance(length, (int, float)):
            if isinstance(parsed, MP4) and not _mp4_audio_only(parsed):
                raise not_audio("the MP4 file has a video track")
            return float(length)
    raise not_audio(f"the {container} file holds no {'Opus or Vorbis' if container == 'Ogg' else 'audio'} "
                    "stream mutagen can read")


def _mp4_audio_only(parsed: MP4) -> bool:
    """mutagen reads the first audio track; the codec it names must be an audio one."""
    codec = str(getattr(parsed.info, "codec", ""))
    return codec.startswith(("mp4a", "alac", "Opus", "ac-3", "ec-3"))
