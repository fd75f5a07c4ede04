"""The knobs of image uploads and their defaults (docs/media.md, docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class MediaOptions:
    """Limits and sizes for ``POST /attach/upload`` (``Config.media``)."""

    #: Largest accepted file, bytes (413 once the upload passes it).
    max_upload_bytes: int = 10 * MIB
    #: Images whose long side is longer are downscaled to this many pixels.
    max_side: int = 2048
    #: Long side of the thumbnail made for chat previews.
    thumb_side: int = 320
    #: Most pixels (width x height) of one frame; more is a decompression bomb -> 413.
    #: Below Pillow's own warning threshold (about 89 million), so our limit decides first.
    max_pixels: int = 64_000_000
    #: Most frames of an animated GIF or WebP (413 beyond).
    max_frames: int = 1000
    #: Most pixels over all frames of an animation together: decoding and resizing hold
    #: every frame in memory, so this bounds the memory one upload can take (4 bytes/pixel).
    max_animation_pixels: int = 100_000_000
    #: Quality of re-encoded JPEGs (and JPEG thumbnails) and of re-encoded WebP.
    jpeg_quality: int = 85
    webp_quality: int = 90
    thumb_quality: int = 80
    #: Uploads one user may make per `rate_window` seconds (429 beyond, with Retry-After).
    rate_limit: int = 30
    rate_window: float = 60.0
    #: Threads that decode and encode images: the work is CPU-bound and Pillow releases
    #: the GIL while it runs, so more threads than cores only adds memory.
    workers: int = 2
    #: Longest voice message, seconds, as the server reads it from the recording (413).
    voice_max_seconds: float = 60.0
    #: Largest file (``media`` 5), bytes (413 beyond); streamed to disk as it arrives.
    file_max_bytes: int = 25 * MIB
    #: Bytes of voice and files one user may have uploaded in all (413 beyond).
    upload_quota_bytes: int = 1024 * MIB

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1 or self.max_side < 1 or self.thumb_side < 1:
            raise ValueError("upload size, max_side and thumb_side must be positive")
        if self.thumb_side > self.max_side:
            raise ValueError("thumb_side cannot be larger than max_side")
        if self.max_pixels < 1 or self.max_frames < 1 or self.max_animation_pixels < 1:
            raise ValueError("pixel and frame limits must be positive")
        for quality in (self.jpeg_quality, self.webp_quality, self.thumb_quality):
            if not 1 <= quality <= 100:
                raise ValueError("qualities are between 1 and 100")
        if self.rate_limit < 1 or self.rate_window <= 0 or self.workers < 1:
            raise ValueError("rate_limit, rate_window and workers must be positive")
        if (self.voice_max_seconds <= 0 or self.file_max_bytes < 1
                or self.upload_quota_bytes < 1):
            raise ValueError("voice length, file size and quota limits must be positive")

    def fingerprint(self) -> str:
        """The options that shape the stored files: a re-upload may reuse an earlier
        result only if they have not changed since."""
        return (
            f"{PROCESSING_VERSION}:{self.max_side}:{self.thumb_side}:"
            f"{self.jpeg_quality}:{self.webp_quality}:{self.thumb_quality}"
        )


#: Bumped whenever the way images are processed changes, so that remembered results of
#: the old way are not handed out for new uploads.
PROCESSING_VERSION = 1
