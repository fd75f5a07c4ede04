"""fastim.media without the HTTP layer: the Pillow work, the content-addressed store and
the service's thread pool, on real files."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from fastim.errors import AppError
from fastim.media import (
    ContentStore,
    MediaOptions,
    MediaService,
    UploadIndex,
    process_image,
    sha256_file,
)
from fastim.media.images import gif_blocks


def picture(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    img = Image.new(mode, size, "white")
    draw = ImageDraw.Draw(img)
    w, h = size
    for i in range(0, w, max(1, w // 16)):
        draw.line((i, 0, w - i, h), fill="teal" if mode != "CMYK" else (200, 0, 0, 0), width=3)
    draw.ellipse((w // 4, h // 4, w * 3 // 4, h * 3 // 4), fill="orange" if mode != "CMYK" else (0, 90, 200, 0))
    return img


def write(tmp_path: Path, img: Image.Image, fmt: str, name: str = "upload", **params: Any) -> Path:
    path = tmp_path / name
    img.save(path, fmt, **params)
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_an_untouched_jpeg_is_re_encoded_with_its_own_tables_and_barely_changes(
    tmp_path: Path, work: Path
) -> None:
    source = write(tmp_path, picture((600, 400)), "JPEG", quality=95, comment=b"hello")
    result = process_image(source, work, MediaOptions())
    try:
        assert result.image.temporary and result.image.path != source
        with Image.open(source) as a, Image.open(result.image.path) as b:
            assert b.quantization == a.quantization  # quality="keep"
            assert "comment" not in b.info
            difference = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB")))
            assert max(difference.mean) < 2.0
    finally:
        result.discard()
    assert list(work.iterdir()) == []


def test_a_cmyk_jpeg_is_accepted_and_gets_an_rgb_thumbnail(tmp_path: Path, work: Path) -> None:
    source = write(tmp_path, picture((3000, 1000), "CMYK"), "JPEG")
    result = process_image(source, work, MediaOptions())
    try:
        with Image.open(result.image.path) as img:
            assert (img.mode, img.size) == ("CMYK", (2048, 683))
        assert result.thumbnail is not None
        with Image.open(result.thumbnail.path) as thumb:
            assert (thumb.mode, thumb.size) == ("RGB", (320, 107))
    finally:
        result.discard()


def test_a_palette_png_keeps_its_transparency_when_downscaled(tmp_path: Path, work: Path) -> None:
    img = Image.new("P", (3000, 300), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    ImageDraw.Draw(img).rectangle((0, 0, 1500, 300), fill=1)
    source = write(tmp_path, img, "PNG", transparency=0)
    result = process_image(source, work, MediaOptions())
    try:
        with Image.open(result.image.path) as back:
            rgba = back.convert("RGBA")
            assert back.size == (2048, 205)
            assert rgba.getpixel((100, 100)) == (255, 0, 0, 255)
            assert rgba.getpixel((2000, 100))[3] == 0
    finally:
        result.discard()


def test_an_animated_webp_with_exif_is_cleaned_and_stays_animated(
    tmp_path: Path, work: Path
) -> None:
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "lime", "blue")]
    source = write(tmp_path, frames[0], "WEBP", save_all=True, append_images=frames[1:],
                   duration=50, exif=exif, xmp=b"<x>where</x>")
    result = process_image(source, work, MediaOptions())
    try:
        assert result.image.animated and result.image.temporary
        data = result.image.path.read_bytes()
        assert b"EXIF" not in data and b"where" not in data
        with Image.open(result.image.path) as back:
            assert back.n_frames == 3 and "exif" not in back.info
    finally:
        result.discard()


def test_a_gif_that_needs_no_change_is_the_upload_itself(tmp_path: Path, work: Path) -> None:
    source = write(tmp_path, picture((100, 100)).convert("P"), "GIF")
    result = process_image(source, work, MediaOptions())
    assert result.image.path == source and not result.image.temporary
    assert result.thumbnail is None and result.temporaries == []


def test_refusals_leave_no_temporary_file(tmp_path: Path, work: Path) -> None:
    text = tmp_path / "text.png"
    text.write_text("plain text")
    with pytest.raises(AppError) as refused:
        process_image(text, work, MediaOptions())
    assert refused.value.status == 415
    big = write(tmp_path, Image.new("L", (300, 300)), "PNG")
    with pytest.raises(AppError) as refused:
        process_image(big, work, MediaOptions(max_pixels=300 * 300 - 1))
    assert refused.value.status == 413 and "90,000 pixels" in refused.value.message
    frames = [Image.new("L", (100, 100), v) for v in (0, 90, 180)]
    anim = write(tmp_path, frames[0], "GIF", "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(AppError) as refused:
        process_image(anim, work, MediaOptions(max_animation_pixels=29_999))
    assert refused.value.status == 413 and "3 frames" in refused.value.message
    assert list(work.iterdir()) == []


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        MediaOptions(thumb_side=4096)
    with pytest.raises(ValueError):
        MediaOptions(jpeg_quality=0)
    with pytest.raises(ValueError):
        MediaOptions(rate_limit=0)
    assert MediaOptions().fingerprint() != MediaOptions(thumb_side=100).fingerprint()


# --- the content-addressed store -----------------------------------------------------------

def test_the_store_names_files_by_their_sha256(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "resource")
    store.prepare()
    source = tmp_path / "a.bin"
    source.write_bytes(b"some image bytes")
    stored = store.put(source, "png")
    digest = sha256_file(source)
    assert stored.digest == digest and stored.created
    assert stored.path == tmp_path / "resource" / digest[:2] / f"{digest}.png"
    assert stored.url == f"/resource/{digest[:2]}/{digest}.png"
    assert stored.path.read_bytes() == b"some image bytes" and stored.size == 16
    assert store.exists(stored.url) and not store.exists("/elsewhere/x.png")
    again = store.put(source, "png")
    assert not again.created and again.path == stored.path


def test_the_same_bytes_stored_at_once_from_many_threads_make_one_file(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "resource")
    store.prepare()
    sources = []
    for i in range(8):
        path = tmp_path / f"copy{i}"
        path.write_bytes(b"identical content" * 1000)
        sources.append(path)
    barrier = threading.Barrier(len(sources))

    def put(path: Path) -> bool:
        barrier.wait()
        return store.put(path, "gif").created

    with ThreadPoolExecutor(len(sources)) as pool:
        created = list(pool.map(put, sources))
    assert created.count(True) == 1
    files = [p for p in (tmp_path / "resource").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].read_bytes() == b"identical content" * 1000


def test_a_file_from_another_file_system_is_copied_into_place(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to upload from")
    store = ContentStore(tmp_path / "resource")
    store.prepare()
    fd, name = tempfile.mkstemp(dir=shm)
    os.write(fd, b"from another file system")
    os.close(fd)
    try:
        stored = store.put(Path(name), "jpg")
    finally:
        os.unlink(name)
    assert stored.created and stored.path.read_bytes() == b"from another file system"
    assert list((tmp_path / "resource" / ".incoming").iterdir()) == []


def test_the_index_forgets_results_of_other_options(tmp_path: Path) -> None:
    index = UploadIndex(tmp_path / "index")
    assert index.get("ab" * 32, "v1") is None
    index.put("ab" * 32, "v1", {"url": "/resource/x"})
    assert index.get("ab" * 32, "v1") == {"url": "/resource/x"}
    assert index.get("ab" * 32, "v2") is None
    (tmp_path / "index" / "ab" / f"{'ab' * 32}.json").write_text("{broken")
    assert index.get("ab" * 32, "v1") is None


# --- the service ---------------------------------------------------------------------------

class RecordingService(MediaService):
    """The real service, noting which thread did the image work."""

    threads: list[str]

    def process(self, path: Path) -> dict[str, Any]:
        self.threads.append(threading.current_thread().name)
        return super().process(path)


def test_image_work_runs_in_the_media_threads_not_on_the_loop(tmp_path: Path) -> None:
    service = RecordingService(MediaOptions(), tmp_path / "resource", tmp_path / "index")
    service.threads = []
    source = write(tmp_path, picture((1200, 900)), "PNG")

    async def main() -> tuple[dict[str, Any], str]:
        return await service.upload(source), threading.current_thread().name

    try:
        result, loop_thread = asyncio.run(main())
    finally:
        service.close()
    assert result["width"] == 1200 and result["thumb_width"] == 320
    assert len(service.threads) == 1
    assert service.threads[0].startswith("fastim-media") and service.threads[0] != loop_thread


def test_changed_options_process_an_earlier_upload_again(tmp_path: Path) -> None:
    source = write(tmp_path, picture((1000, 1000)), "JPEG")
    first = MediaService(MediaOptions(), tmp_path / "resource", tmp_path / "index")
    try:
        big_thumb = first.process(source)
    finally:
        first.close()
    second = MediaService(MediaOptions(thumb_side=100), tmp_path / "resource", tmp_path / "index")
    try:
        small_thumb = second.process(source)
    finally:
        second.close()
    assert small_thumb["url"] == big_thumb["url"]
    assert small_thumb["thumb"] != big_thumb["thumb"]
    thumb_path = tmp_path / "resource" / small_thumb["thumb"][len("/resource/"):]
    with Image.open(thumb_path) as thumb:
        assert thumb.size == (100, 100)


def test_a_multi_picture_jpeg_is_stored_as_its_first_picture(tmp_path: Path, work: Path) -> None:
    # Cameras put depth maps and previews after the photo (Pillow calls that MPO).
    main, extra = picture((400, 300)), Image.new("RGB", (400, 300), "black")
    source = write(tmp_path, main, "MPO", save_all=True, append_images=[extra])
    with Image.open(source) as check:
        assert check.format == "MPO" and check.n_frames == 2
    result = process_image(source, work, MediaOptions())
    try:
        assert (result.image.type.mime, result.image.animated) == ("image/jpeg", False)
        with Image.open(result.image.path) as back:
            assert back.format == "JPEG" and getattr(back, "n_frames", 1) == 1
            assert back.convert("RGB").getpixel((200, 150))[0] > 200  # the orange photo
    finally:
        result.discard()


def _gif(frames: list[Image.Image], **params: Any) -> bytes:
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=len(frames) > 1, append_images=frames[1:],
                   **params)
    return buffer.getvalue()


def test_data_after_a_gifs_trailer_is_not_stored(tmp_path: Path, work: Path) -> None:
    """A GIF with an HTML page after its trailer was stored byte for byte."""
    gif = _gif([picture((60, 40)).convert("P")])
    source = tmp_path / "upload.gif"
    source.write_bytes(gif + b"<html><script>alert(1)</script></html>")
    result = process_image(source, work, MediaOptions())
    try:
        assert result.image.path != source and result.image.temporary
        assert result.image.path.read_bytes() == gif  # the image, byte for byte
    finally:
        result.discard()


def test_an_animated_gif_keeps_its_frames_and_loop_and_loses_comments(
        tmp_path: Path, work: Path) -> None:
    frames = [Image.new("L", (40, 40), v) for v in (0, 90, 180)]
    gif = _gif(frames, duration=[100, 200, 300], loop=0, comment=b"secret note")
    assert b"secret note" in gif
    with Image.open(io.BytesIO(gif)) as original:
        assert original.n_frames == 3
    source = tmp_path / "anim.gif"
    source.write_bytes(gif + b"trailing")
    result = process_image(source, work, MediaOptions())
    try:
        stored = result.image.path.read_bytes()
        assert b"secret note" not in stored and stored.endswith(b"\x3b")
        with Image.open(result.image.path) as back:
            assert back.n_frames == 3 and back.info.get("loop") == 0
            durations = []
            for index in range(3):
                back.seek(index)
                durations.append(back.info.get("duration"))
            assert durations == [100, 200, 300]
    finally:
        result.discard()


@pytest.mark.parametrize("tail", [b"", b"\x00\x01garbage", b"\x21\xfe\x05ab"])
def test_gif_blocks_ends_after_the_last_whole_image(tail: bytes) -> None:
    gif = _gif([picture((10, 10)).convert("P")])
    body = gif[:-1]  # without its trailer
    assert gif_blocks(body + tail) == gif


def test_gif_blocks_refuses_what_has_no_whole_image() -> None:
    for data in [b"GIF89a", b"GIF89a<script>alert(1)</script>", b"PNG", b"GIF89a" + b"\0" * 7]:
        with pytest.raises(ValueError):
            gif_blocks(data)
