"""Which image URLs a chat message may carry: an uploaded image that exists, or a sticker.

The chat parser (fastim/chat/protocol.py) already refuses anything that is not a plain
path under ``/resource/`` or ``/asset/``; that is the shape. This is the substance, which
needs the disk and the sticker packs, so it lives here and the hub is handed it
(fastim/services.py): without it any ``/asset/`` path (``/asset/js/app.js``) or the name of
an upload that never happened was stored and delivered as an image.

* ``/resource/ab/ab12…ef.png``: the content-addressed name of an upload
  (fastim/media/storage.py) with an image type's extension, and the file exists: one
  ``stat()`` per image message, no database query;
* ``/asset/stickers/<pack>/<file>``: a sticker of a loaded pack (a set lookup: packs are
  checked when they load, fastim/media/stickers.py);
* ``/asset/plugins/doutu//emoj/2.gif``: a sticker in fastIM's form (its pages write the
  double slash) when that image file exists under the asset directory (one ``stat()``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .images import GIF, JPEG, PNG, WEBP

_EXTENSIONS = "|".join(kind.extension for kind in (PNG, JPEG, GIF, WEBP))
#: An upload's name: the first two hex digits of its SHA-256, then all 64, then the type.
_UPLOAD = re.compile(rf"([0-9a-f]{{2}})/(\1[0-9a-f]{{62}})\.(?:{_EXTENSIONS})")


#: Where fastIM's pages found their stickers (asset/plugins/doutu/...), and the exact
#: form its pages wrote them in, double slash included.
FASTIM_STICKERS = "/asset/plugins/"
FASTIM_DOUTU = "/asset/plugins/doutu//"
_STICKER_FILE = re.compile(r"\.(?:gif|png|jpe?g|webp)$")


class ImageLinks:
    """Checks the ``url`` and ``pic`` of a chat message against what this server holds."""

    def __init__(self, resource_dir: Path, stickers: Iterable[str],
                 resource_prefix: str = "/resource/", asset_dir: Path | None = None) -> None:
        self.resource_dir = Path(resource_dir)
        self.stickers = frozenset(stickers)
        self.resource_prefix = resource_prefix
        self.asset_dir = asset_dir

    def problem(self, url: str) -> str | None:
        """None when `url` names an uploaded image that exists or a sticker; otherwise
        what is wrong with it, in words a user can act on."""
        if url.startswith(self.resource_prefix):
            name = url[len(self.resource_prefix):]
            if not _UPLOAD.fullmatch(name):
                return (f"{url} is not the name of an uploaded image (upload it with "
                        "/attach/upload and send the url it returns)")
            if not (self.resource_dir / name).is_file():
                return f"{url} is not an uploaded image: nothing was uploaded under that name"
            return None
        if url in self.stickers:
            return None
        if url.startswith(FASTIM_STICKERS):
            return self._fastim_sticker(url)
        return f"{url} is not a sticker of this server (see /sticker/packs)"

    def _fastim_sticker(self, url: str) -> str | None:
        # The parser has refused `..`, queries and anything but [A-Za-z0-9_-./]. The
        # double slash is served only right after doutu/ (fastim/app.py mounts it).
        rest = url[len(FASTIM_DOUTU):] if url.startswith(FASTIM_DOUTU) else url[len("/asset/"):]
        if "//" in rest:
            return (f"{url} has an empty path segment ('//') where fastIM's stickers have "
                    f"none (they are {FASTIM_DOUTU}<pack>/<file>)")
        relative = f"plugins/doutu/{rest}" if url.startswith(FASTIM_DOUTU) else rest
        if not _STICKER_FILE.search(relative):
            return f"{url} is not a sticker: a sticker is a .gif, .png, .jpg or .webp image"
        if self.asset_dir is None or not (self.asset_dir / relative).is_file():
            return (f"{url} is not a sticker of this server: there is no file "
                    f"asset/{relative} (see /sticker/packs)")
        return None
