"""Images and stickers: safe uploads, de-duplicated storage, thumbnails, sticker packs.

* :class:`MediaService` — ``await service.upload(path)`` checks, cleans, resizes and
  stores an uploaded image and returns the reply of ``POST /attach/upload``;
* :class:`MediaOptions` — the limits and sizes (``Config.media``);
* :func:`process_image` — the Pillow work alone (blocking);
* :class:`ContentStore` — files named by the SHA-256 of their bytes;
* :func:`load_packs` — the sticker packs under ``asset/stickers/``;
* :class:`ImageLinks` — whether a chat message's image URL names an upload or a sticker;
* :class:`Attachments` — voice messages and files: checked, stored, served to whom may
  have them (:func:`check_audio` judges a recording, :func:`read_webm` reads WebM).

See docs/media.md.
"""

from .attachments import Attachments, Download, clean_name, served_type
from .audio import Audio, check_audio, looks_like_audio
from .images import ACCEPTED, GIF, JPEG, PNG, WEBP, ImageType, Processed, process_image
from .links import ImageLinks
from .options import MediaOptions
from .service import MediaService
from .stickers import PackError, Sticker, StickerPack, load_pack, load_packs
from .storage import ContentStore, StoredFile, UploadIndex, sha256_file
from .webm import WebMError, WebMInfo, read_webm

__all__ = [
    "ACCEPTED",
    "Attachments",
    "Audio",
    "Download",
    "WebMError",
    "WebMInfo",
    "check_audio",
    "clean_name",
    "looks_like_audio",
    "read_webm",
    "served_type",
    "GIF",
    "JPEG",
    "PNG",
    "WEBP",
    "ContentStore",
    "ImageLinks",
    "ImageType",
    "MediaOptions",
    "MediaService",
    "PackError",
    "Processed",
    "Sticker",
    "StickerPack",
    "StoredFile",
    "UploadIndex",
    "load_pack",
    "load_packs",
    "process_image",
    "sha256_file",
]
