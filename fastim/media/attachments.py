"""Voice messages (``media`` 3) and files (``media`` 5): upload, check, serve (docs/media.md).

* A **voice** recording is judged by its content (fastim/media/audio.py), stored like an
  image under ``/resource/`` by the SHA-256 of its bytes (public by its unguessable name,
  like an image, so that ``<audio>`` can seek in it with Range requests), and its
  duration is remembered: a voice message's ``amount`` is the server's figure.
* A **file** may be of any type. It is stored by its SHA-256 in ``.files/`` of the
  resource directory, which the static files never serve (a hidden name), and is served
  only by ``GET /attach/file/<sha256>`` to its
  uploaders and to the members of the conversations it was sent in: the URL alone grants
  nothing (fastim/store/files.py keeps who may).
* Both count against the uploader's storage quota (each distinct upload once).

File work runs in the media service's threads, SQL in the store's.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastim.errors import AppError
from fastim.store import Store
from fastim.store import files as file_sql
from fastim.store.files import FILE_KIND, VOICE_KIND, QuotaExceeded, Upload

from .audio import Audio, check_audio
from .service import MediaService
from .storage import ContentStore, sha256_file

#: Where files are downloaded: ``/attach/file/<sha256>``.
FILE_URL_PREFIX = file_sql.FILE_URL_PREFIX
#: Bumped when the way voice uploads are judged changes (remembered results are redone).
VOICE_VERSION = 1
#: Types a downloaded file is served as. Anything else, HTML, SVG and XML above all
#: (they could run script in this origin if a browser were ever made to render them),
#: goes out as application/octet-stream; every download is an attachment with nosniff.
SAFE_TYPES = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf",
    "text/plain", "text/csv", "application/zip", "application/gzip", "application/x-tar",
    "application/x-7z-compressed", "application/vnd.rar", "application/msword",
    "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "audio/mpeg", "audio/ogg", "audio/mp4", "audio/webm", "audio/wav", "audio/x-wav",
    "video/mp4", "video/webm",
})
OCTET_STREAM = "application/octet-stream"
_MAX_NAME = 255
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\]')


def served_type(name: str) -> str:
    """The type a file named `name` is served as: its usual type if it is a safe one."""
    guessed = mimetypes.guess_type(name, strict=False)[0]
    return guessed if guessed in SAFE_TYPES else OCTET_STREAM


def clean_name(name: str | None) -> str:
    """The uploaded file's own name, made safe to keep and to send back: no directory,
    no control characters, NFC, at most 255 characters (the extension kept)."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip().lstrip(".") or "file"
    if len(name) > _MAX_NAME:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            name = stem[:_MAX_NAME - len(extension) - 1] + "." + extension
        else:
            name = name[:_MAX_NAME]
    return name


@dataclass(frozen=True)
class Download:
    """A file someone may download: where it is on disk, its name, type and size."""

    path: Path
    name: str
    type: str
    size: int


class Attachments:
    """Voice and file uploads for one server: the files on disk, the rows in the store."""

    def __init__(self, media: MediaService, store: Store, files_dir: Path) -> None:
        self.media = media
        self.options = media.options
        self.store = store
        self.files = ContentStore(files_dir, url_prefix=FILE_URL_PREFIX)
        self.files.prepare()

    # -- voice ----------------------------------------------------------------------

    async def upload_voice(self, user_id: int, path: Path) -> dict[str, Any]:
        """Check and store a recording; ``url``, ``type``, ``bytes``, ``seconds`` and
        ``amount`` (whole seconds, the figure a voice message carries). 413/415."""
        result = await self._in_thread(self._store_voice, path)
        digest = result["digest"]
        await self._record(Upload(user_id, digest, VOICE_KIND, "", result["type"],
                                  result["bytes"], round(result["seconds"] * 1000)))
        return {key: value for key, value in result.items() if key != "digest"}

    def _store_voice(self, path: Path) -> dict[str, Any]:
        options = self.options
        fingerprint = f"voice:{VOICE_VERSION}:{options.voice_max_seconds:g}"
        source_digest = sha256_file(path)
        known = self.media.index.get(source_digest, fingerprint)
        if known is not None and self.media.store.exists(str(known.get("url"))):
            return known
        audio: Audio = check_audio(path, options.voice_max_seconds, options.max_upload_bytes)
        stored = self.media.store.put(path, audio.type.extension)
        result = {"url": stored.url, "type": audio.type.mime, "bytes": stored.size,
                  "seconds": round(audio.seconds, 3), "amount": audio.amount,
                  "digest": stored.digest}
        self.media.index.put(source_digest, fingerprint, result)
        return result

    async def voice_amount(self, url: str) -> int | None:
        """The whole seconds of the voice message at `url`, None if it was never uploaded
        here (or is not a voice message's name)."""
        match = _VOICE_URL.fullmatch(url)
        if match is None:
            return None
        millis = await self.store.read(file_sql.voice_millis, match.group(1))
        if millis is None:
            return None
        return max(1, round(millis / 1000))

    # -- files ----------------------------------------------------------------------

    async def upload_file(self, user_id: int, path: Path, filename: str | None,
                          ) -> dict[str, Any]:
        """Store a file of any type; ``url``, ``name``, ``size``, ``type``. 413 when over
        the user's quota."""
        name = clean_name(filename)
        size = path.stat().st_size
        quota = self.options.upload_quota_bytes
        digest = await self._in_thread(sha256_file, path)
        # Before writing anything (checked again when recorded): the same bytes again
        # cost nothing.
        if await self.store.read(file_sql.own_file, user_id, digest) is None:
            used = await self.store.read(file_sql.used_bytes, user_id)
            if used + size > quota:
                raise _over_quota(used, quota)
        stored = await self._in_thread(self.files.put, path, "bin")
        type_ = served_type(name)
        await self._record(Upload(user_id, stored.digest, FILE_KIND, name, type_, stored.size,
                                  0))
        return {"url": FILE_URL_PREFIX + stored.digest, "name": name, "size": stored.size,
                "type": type_}

    async def download(self, user_id: int, digest: str) -> Download:
        """The file `user_id` asks for: 404 when there is none, 403 when they were not
        in a conversation it was sent in and did not upload it."""
        if file_sql.file_digest(FILE_URL_PREFIX + digest) is None:
            raise AppError(404, "no such file")
        path = self.files.path_for(digest, "bin")
        upload = await self.store.read(file_sql.downloadable, user_id, digest)
        if upload is None:
            if await self.store.read(file_sql.any_file, digest) is None:
                raise AppError(404, "no such file")
            raise AppError(403, "this file was not sent in a conversation you are in")
        if not path.is_file():
            raise AppError(404, "no such file")
        return Download(path, upload.name, upload.type, upload.size)

    async def file_message(self, user_id: int, url: str) -> tuple[str, int] | str:
        """The name and size a file message from `user_id` carries, or what is wrong
        with its url: the sender must be able to download the file themself."""
        digest = file_sql.file_digest(url)
        if digest is None:
            return (f"{url} is not the url of an uploaded file (upload it with "
                    "/attach/upload and kind=file, and send the url it returns)")
        upload = await self.store.read(file_sql.downloadable, user_id, digest)
        if upload is None:
            return f"{url} is not a file you uploaded or were sent"
        return upload.name, upload.size

    # -- shared ---------------------------------------------------------------------

    async def _record(self, upload: Upload) -> None:
        quota = self.options.upload_quota_bytes
        try:
            await self.store.write(file_sql.record_upload, upload, int(time.time()), quota)
        except QuotaExceeded as exc:
            raise _over_quota(exc.used, exc.quota) from None

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.media.executor, fn, *args)


_VOICE_URL = re.compile(r"/resource/[0-9a-f]{2}/([0-9a-f]{64})\.(?:webm|ogg|m4a)")


def _over_quota(used: int, quota: int) -> AppError:
    return AppError(413, f"your uploads would pass your storage quota: {used:,} of "
                         f"{quota:,} bytes are used")
