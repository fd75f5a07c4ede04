"""Uploads end to end: check and process an uploaded file, store it, say where it is.

Decoding, resizing and encoding images is CPU-bound blocking work: it runs in a small
thread pool of its own (Pillow releases the GIL while it works), never on the event loop,
and not in the loop's default executor either, so image work cannot starve the other
users of that pool.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .images import process_image
from .options import MediaOptions
from .storage import ContentStore, UploadIndex, sha256_file


class MediaService:
    """Turns an uploaded file into stored, cleaned images and the reply describing them.

    `resource_dir` is where the stored files go (served at ``/resource/``); `index_dir`
    keeps what earlier uploads became, for instant re-uploads.
    """

    def __init__(self, options: MediaOptions, resource_dir: Path, index_dir: Path) -> None:
        self.options = options
        self.store = ContentStore(resource_dir)
        self.index = UploadIndex(index_dir)
        self.store.prepare()
        self.executor = ThreadPoolExecutor(options.workers, thread_name_prefix="fastim-media")

    async def upload(self, path: Path) -> dict[str, Any]:
        """Process and store the image in `path` (the caller's file: it is not moved or
        deleted). Returns ``url``, ``thumb``, ``width``, ``height``, ``bytes``, ``type``,
        ``animated``, ``thumb_width``, ``thumb_height``. Raises ``AppError`` 413/415."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.process, path)

    def process(self, path: Path) -> dict[str, Any]:
        """The blocking body of :meth:`upload`."""
        fingerprint = self.options.fingerprint()
        source_digest = sha256_file(path)
        known = self.index.get(source_digest, fingerprint)
        if known is not None and self._still_stored(known):
            return known
        processed = process_image(path, self.store.incoming, self.options)
        try:
            image = processed.image
            stored = self.store.put(image.path, image.type.extension)
            thumb = processed.thumbnail
            stored_thumb = self.store.put(thumb.path, thumb.type.extension) if thumb else stored
        finally:
            processed.discard()
        result = {
            "url": stored.url,
            "thumb": stored_thumb.url,
            "width": image.width,
            "height": image.height,
            "bytes": stored.size,
            "type": image.type.mime,
            "animated": image.animated,
            "thumb_width": thumb.width if thumb else image.width,
            "thumb_height": thumb.height if thumb else image.height,
        }
        self.index.put(source_digest, fingerprint, result)
        return result

    def _still_stored(self, result: dict[str, Any]) -> bool:
        urls = (result.get("url"), result.get("thumb"))
        return all(isinstance(url, str) and self.store.exists(url) for url in urls)

    def close(self) -> None:
        """Wait for the images being processed, then stop the threads."""
        self.executor.shutdown(wait=True, cancel_futures=True)
