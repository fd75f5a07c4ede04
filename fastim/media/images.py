"""Judging, cleaning and resizing an uploaded image with Pillow.

Everything here is blocking, CPU-bound work on files: call it from a worker thread
(``MediaService`` does), never on the event loop.

What an upload becomes (docs/media.md):

* The type is decided by Pillow decoding the content, restricted to PNG, JPEG, GIF and
  WebP; the file name and the declared Content-Type are never consulted. Anything else
  (text, HTML, SVG, BMP, a damaged image) is a 415.
* Size limits are checked on the header's dimensions, before any pixel is decoded: too
  many pixels in one frame, too many frames, or too many pixels over all frames is a 413
  (a decompression bomb: a small file that would decode to gigabytes).
* JPEG and PNG are always re-encoded, which drops every metadata block (EXIF with its GPS
  position, XMP, comments, text chunks); the colour profile and transparency are kept.
  An untouched JPEG is re-encoded with its own quantisation tables (``quality="keep"``)
  so it loses next to nothing. GIF and WebP are stored byte for byte unless they must be
  downscaled or (WebP) carry EXIF or XMP. A GIF's blocks are walked first (``gif_blocks``):
  anything after its trailer (an HTML page, say) and its comment and XMP blocks are
  cut, so what is stored is the image and nothing else; the image data itself is kept
  byte for byte.
* The EXIF orientation is applied to the pixels before the EXIF goes, so a photo taken
  sideways is still upright.
* A long side above ``max_side`` is scaled down (animations frame by frame, and they stay
  animated); a JPEG is decoded at a reduced scale first (libjpeg's DCT scaling) when that
  is enough, which saves most of the memory and time.
* A thumbnail of the first frame with a long side of ``thumb_side`` (JPEG, or PNG when
  the image has transparency), unless the image is already that small.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageSequence, UnidentifiedImageError

from fastim.errors import AppError

from .options import MediaOptions

log = logging.getLogger(__name__)

# Pillow warns about images between its limit and twice its limit, then decodes them.
# Our own limit (MediaOptions.max_pixels) is checked right after opening, before any
# decoding, and refuses them with a 413; the warning would only be noise in the log.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageType:
    """One accepted image type: Pillow's format name, the MIME type, the file extension."""

    format: str
    mime: str
    extension: str


PNG = ImageType("PNG", "image/png", "png")
JPEG = ImageType("JPEG", "image/jpeg", "jpg")
GIF = ImageType("GIF", "image/gif", "gif")
WEBP = ImageType("WEBP", "image/webp", "webp")

#: Pillow's format name -> the type we store it as. Pillow calls a JPEG that holds
#: several pictures (cameras add depth maps and previews) "MPO"; we keep the first.
_TYPES = {"PNG": PNG, "JPEG": JPEG, "MPO": JPEG, "GIF": GIF, "WEBP": WEBP}
#: Only these decoders are tried on an upload: never BMP, TIFF, PSD, EPS or the rest.
_DECODERS = ("PNG", "JPEG", "GIF", "WEBP")

#: EXIF orientation (tag 0x0112) -> the transpose that makes the pixels upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_LANCZOS = Image.Resampling.LANCZOS
#: The only `info` entries that survive re-encoding: neither can say who or where.
_KEPT_INFO = ("transparency", "icc_profile")

ACCEPTED = "PNG, JPEG, GIF and WebP"


def unsupported(detail: str) -> AppError:
    """415: not one of the accepted image types."""
    return AppError(415, f"only {ACCEPTED} images can be uploaded: {detail}")


def too_large(detail: str) -> AppError:
    """413: the image would take too much memory or time to decode."""
    return AppError(413, f"the image is too large to process: {detail}")


@dataclass
class Encoded:
    """An image file ready to be stored."""

    path: Path
    type: ImageType
    width: int
    height: int
    animated: bool = False
    #: True when `path` is a file this module made (the caller deletes it once stored);
    #: False when it is the upload itself, kept as it came.
    temporary: bool = True


@dataclass
class Processed:
    """The image to store and its thumbnail (None: the image is small enough)."""

    image: Encoded
    thumbnail: Encoded | None = None
    temporaries: list[Path] = field(default_factory=list)

    def discard(self) -> None:
        """Delete the files this module made."""
        _remove(self.temporaries)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def _decoding() -> Iterator[None]:
    """Turn a decoder's failure on untrusted bytes into a 415.

    Pillow's decoders raise many kinds of exceptions on malformed input (OSError,
    SyntaxError, ValueError, EOFError, struct.error, IndexError...), so anything but our
    own errors and MemoryError is taken as "this is not a valid image".
    """
    try:
        yield
    except (AppError, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        raise too_large(
            f"it declares more pixels than Pillow will decode, like a decompression bomb ({exc})"
        ) from None
    except UnidentifiedImageError:
        raise unsupported("this file is not one") from None
    except Exception as exc:
        # Logged with its traceback: a bug of ours would look just like a damaged file.
        log.info("an upload did not decode", exc_info=True)
        raise unsupported(f"the image data is damaged or incomplete ({exc})") from None


def process_image(source: Path, work_dir: Path, options: MediaOptions) -> Processed:
    """Check, clean and resize the image in `source`; write what is to be stored into
    temporary files in `work_dir` (same file system as the store, so they can be linked
    into place). Raises :class:`AppError` 413 or 415.

    Two phases: everything that reads the untrusted bytes (opening, the limits, decoding,
    resizing) turns a failure into a 415; encoding is our own work, so a failure there
    is a bug and propagates (a 500), instead of passing for a damaged upload.
    """
    with _decoding():
        img = Image.open(source, formats=_DECODERS)
    temporaries: list[Path] = []
    try:
        with _decoding():
            decoded = _decode(img, options)
        image, thumbnail = _encode(decoded, source, work_dir, options, temporaries)
    except BaseException:
        _remove(temporaries)
        raise
    finally:
        img.close()
    return Processed(image, thumbnail, temporaries)


@dataclass
class _Decoded:
    """The pixels to store, decoded and already resized and upright."""

    kind: ImageType
    #: The upload is stored as it came; `frames` holds its first frame, for the thumbnail.
    keep_source: bool
    frames: list[Image.Image]
    durations: list[int]
    loop: int | None
    animated: bool
    #: A JPEG whose pixels we did not touch: re-encode it with its own tables.
    untouched_jpeg: bool = False


def _decode(img: Image.Image, options: MediaOptions) -> _Decoded:
    kind = _TYPES.get(img.format or "")
    if kind is None:  # cannot happen with the decoders restricted, but never guess
        raise unsupported(f"{img.format} is not accepted")
    width, height = img.size
    if width < 1 or height < 1:
        raise unsupported("the image has no pixels")
    if width * height > options.max_pixels:
        raise too_large(
            f"{width}×{height} is {width * height:,} pixels, at most "
            f"{options.max_pixels:,} are accepted (a guard against decompression bombs)"
        )
    # Counting GIF frames walks the frame headers only, it decodes nothing.
    frames = 1 if img.format == "MPO" else int(getattr(img, "n_frames", 1))
    if frames > options.max_frames:
        raise too_large(f"{frames} frames; at most {options.max_frames} are accepted")
    if frames * width * height > options.max_animation_pixels:
        raise too_large(
            f"{frames} frames of {width}×{height} are {frames * width * height:,} pixels; "
            f"at most {options.max_animation_pixels:,} are accepted"
        )
    animated = frames > 1
    loop = img.info.get("loop")
    loop = loop if isinstance(loop, int) else None
    orientation = _orientation(img)
    must_resize = max(width, height) > options.max_side
    has_metadata = "exif" in img.info or "xmp" in img.info
    reencode = kind in (JPEG, PNG) or must_resize or orientation != 1 or has_metadata

    if not reencode:
        img.seek(0)
        img.load()  # the first frame must decode, and the thumbnail is made from it
        return _Decoded(kind, True, [img], [], loop, animated)
    if animated:
        canvases, durations = _animation_frames(img, options, must_resize, orientation)
        return _Decoded(kind, False, canvases, durations, loop, True)
    target = _fit(width, height, options.max_side) if must_resize else None
    if target is not None and kind is JPEG:
        # DCT scaling: decode at 1/2, 1/4 or 1/8 of the size, still >= target.
        img.draft(img.mode, target)
    img.load()
    frame: Image.Image = img
    if target is not None:
        frame = _resized(frame, target)
    if orientation in _UPRIGHT:
        frame = frame.transpose(_UPRIGHT[orientation])
    # Pillow keeps the quantisation tables only for what it itself calls a JPEG (not MPO).
    untouched = frame is img and img.format == "JPEG"
    return _Decoded(kind, False, [frame], [], loop, False, untouched)


def _encode(
    decoded: _Decoded, source: Path, work_dir: Path, options: MediaOptions, made: list[Path]
) -> tuple[Encoded, Encoded | None]:
    kind, first = decoded.kind, decoded.frames[0]
    if decoded.keep_source and kind is GIF:
        data = source.read_bytes()
        with _decoding():
            clean = gif_blocks(data)
        if clean == data:
            image = Encoded(source, kind, first.width, first.height, decoded.animated, False)
        else:
            path = _new_file(work_dir, kind, made)
            path.write_bytes(clean)
            image = Encoded(path, kind, first.width, first.height, decoded.animated)
    elif decoded.keep_source:
        image = Encoded(source, kind, first.width, first.height, decoded.animated, False)
    else:
        path = _new_file(work_dir, kind, made)
        if decoded.animated:
            _save_animation(decoded.frames, decoded.durations, decoded.loop, kind, path, options)
        else:
            _save_still(first, kind, path, options, untouched=decoded.untouched_jpeg)
        image = Encoded(path, kind, first.width, first.height, decoded.animated)
    return image, _thumbnail(first, work_dir, options, made)


# GIF application extensions that change how the image shows: the loop count
# (NETSCAPE2.0, ANIMEXTS1.0) and a colour profile. Others (XMP...) are metadata.
_GIF_KEPT_APPLICATIONS = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")


class GIFFormatError(ValueError):
    """The GIF's block structure is broken before its first image."""


def gif_blocks(data: bytes) -> bytes:
    """The GIF in `data` with only the blocks that make the image (GIF89a spec: header,
    screen descriptor and colour table, images, graphic control, the loop count): bytes
    after the trailer, comments, XMP and other application data are left out, and a
    trailer is written. Image data is copied byte for byte, never decoded.

    A file that breaks off or has garbage where a block should start ends after its last
    whole image (browsers show the same); one without any whole image is an error."""
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        raise GIFFormatError("not a GIF")
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    if pos > len(data):
        raise GIFFormatError("the global colour table is cut off")
    out = [data[:pos]]
    images = 0

    def sub_blocks(start: int) -> int:
        """The position after the data sub-blocks starting at `start`, or -1 if cut off."""
        at = start
        while at < len(data):
            size = data[at]
            at += 1 + size
            if size == 0:
                return at if at <= len(data) else -1
        return -1

    while pos < len(data):
        introducer = data[pos]
        if introducer == 0x3B:  # trailer: everything after it is no part of the image
            break
        if introducer == 0x2C:  # image descriptor, local colour table, LZW data
            if pos + 10 > len(data):
                break
            flags = data[pos + 9]
            start = pos + 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            end = sub_blocks(start + 1) if start < len(data) else -1
            if end < 0:
                break
            out.append(data[pos:end])
            images += 1
        elif introducer == 0x21 and pos + 2 <= len(data):  # extension
            label = data[pos + 1]
            end = sub_blocks(pos + 2)
            if end < 0:
                break
            application = data[pos + 3:pos + 14] if data[pos + 2:pos + 3] == b"\x0b" else b""
            if label in (0xF9, 0x01) or (  # graphic control, plain text: rendering
                    label == 0xFF and application in _GIF_KEPT_APPLICATIONS):
                out.append(data[pos:end])  # applications: the loop count, the profile
            # 0xFE comments and unknown labels are left out
        else:
            break  # not a block: garbage where a block should start
        pos = end
    if images == 0:
        raise GIFFormatError("the GIF has no whole image")
    out.append(b"\x3b")
    return b"".join(out)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1 = upright), 1 when there is none or it is unreadable."""
    if "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a malformed EXIF block is dropped anyway; it cannot rotate us
        return 1
    return value if isinstance(value, int) and value in _UPRIGHT else 1


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    """The size with the same aspect ratio whose long side is `side`."""
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _resampling_mode(img: Image.Image) -> Image.Image:
    """A copy in a mode Pillow resamples smoothly (palette and bilevel images would be
    resized with nearest-neighbour, 16/32-bit ones may not resample at all)."""
    if img.mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return img
    return img.convert("RGBA" if _has_alpha(img) else "RGB")


def _resized(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    return _resampling_mode(img).resize(size, _LANCZOS, reducing_gap=3.0)


def _animation_frames(
    img: Image.Image, options: MediaOptions, must_resize: bool, orientation: int
) -> tuple[list[Image.Image], list[int]]:
    """Every frame as a full RGBA canvas (Pillow composes partial GIF/APNG frames),
    resized and made upright, with its duration in milliseconds."""
    target = _fit(img.width, img.height, options.max_side) if must_resize else None
    frames: list[Image.Image] = []
    durations: list[int] = []
    pixels = 0
    for frame in ImageSequence.Iterator(img):
        # Pillow grows a GIF's canvas to hold a frame placed outside the logical screen,
        # so a later frame can be far larger than the first, whose size the limits in
        # _decode saw: check each canvas before it is allocated (a 300-byte GIF asked
        # for 74 million pixels, twice, found by fuzzing).
        width, height = frame.size
        pixels += width * height
        if width * height > options.max_pixels or pixels > options.max_animation_pixels:
            raise too_large(
                f"a frame grows the image to {width}×{height}, {pixels:,} pixels over the "
                f"frames so far; at most {options.max_pixels:,} per frame and "
                f"{options.max_animation_pixels:,} in all are accepted"
            )
        frame.load()  # the WebP decoder sets a frame's duration only once it is loaded
        durations.append(int(frame.info.get("duration") or 0))
        canvas = frame.convert("RGBA")
        if target is not None:
            canvas = canvas.resize(target, _LANCZOS, reducing_gap=3.0)
        if orientation in _UPRIGHT:
            canvas = canvas.transpose(_UPRIGHT[orientation])
        frames.append(canvas)
    return frames, durations


def _new_file(work_dir: Path, kind: ImageType, made: list[Path]) -> Path:
    # Hidden name: the static handler never serves a name that starts with a dot, so a
    # half-written file in the resource directory cannot be fetched.
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix="." + kind.extension, dir=work_dir)
    os.close(fd)
    path = Path(name)
    made.append(path)
    return path


def _scrubbed(img: Image.Image) -> dict[str, Any]:
    """Keep only the colour profile and transparency; Pillow writes what `info` holds."""
    kept: dict[str, Any] = {key: img.info[key] for key in _KEPT_INFO if key in img.info}
    img.info = {key: value for key, value in kept.items()}  # a fresh dict: nothing else kept
    return kept


def _save_still(
    img: Image.Image, kind: ImageType, path: Path, options: MediaOptions, *, untouched: bool
) -> None:
    kept = _scrubbed(img)
    icc = {"icc_profile": kept["icc_profile"]} if "icc_profile" in kept else {}
    if kind is JPEG:
        # An untouched JPEG keeps its own quantisation tables and subsampling: re-encoding
        # it then costs next to nothing in quality. exif=b"" writes no APP1 at all.
        quality: Any = "keep" if untouched else options.jpeg_quality
        img.save(path, "JPEG", quality=quality, optimize=True, exif=b"", **icc)
    elif kind is PNG:
        img.save(path, "PNG", exif=b"", **icc)
    elif kind is WEBP:
        img.save(path, "WEBP", quality=options.webp_quality, exif=b"", xmp=b"", **icc)
    else:
        img.save(path, "GIF")


def _save_animation(
    frames: list[Image.Image],
    durations: list[int],
    loop: int | None,
    kind: ImageType,
    path: Path,
    options: MediaOptions,
) -> None:
    for frame in frames:
        _scrubbed(frame)
    extra: dict[str, Any] = {"save_all": True, "append_images": frames[1:],
                             "duration": durations}
    if loop is not None:
        extra["loop"] = loop
    first = frames[0]
    if kind is GIF:
        # Every frame is a whole canvas: clear to the background before the next one,
        # or transparent pixels would show the previous frame through.
        first.save(path, "GIF", disposal=2, **extra)
    elif kind is PNG:
        # APNG: each whole-canvas frame replaces the previous one (no blending).
        first.save(path, "PNG", disposal=0, blend=0, **extra)
    else:
        first.save(path, "WEBP", quality=options.webp_quality, exif=b"", xmp=b"", **extra)


def _thumbnail(
    first: Image.Image, work_dir: Path, options: MediaOptions, made: list[Path]
) -> Encoded | None:
    """A still of the first frame with a long side of `thumb_side`, or None if the image
    is no larger than that."""
    side = options.thumb_side
    if max(first.width, first.height) <= side:
        return None
    alpha = _has_alpha(first)
    thumb = first.convert("RGBA" if alpha else "RGB")  # a copy, with the palette applied
    thumb.thumbnail((side, side), _LANCZOS)
    thumb.info = {}
    kind = PNG if alpha else JPEG
    path = _new_file(work_dir, kind, made)
    if alpha:
        thumb.save(path, "PNG")
    else:
        thumb.save(path, "JPEG", quality=options.thumb_quality, optimize=True)
    return Encoded(path, kind, thumb.width, thumb.height, False)
