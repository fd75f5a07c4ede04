"""``GET /sticker/packs``: the sticker packs under ``asset/stickers/`` (docs/media.md).

Public (stickers are static assets anyone may fetch) and read once at start-up. A
sticker is sent in a chat message as ``media`` 4 with its ``/asset/stickers/…`` URL in
``url``, which the chat hub accepts.
"""

from __future__ import annotations

from typing import Any

from fastim.http import Request, Response, Router, json_response
from fastim.media import StickerPack, load_packs

#: Packs change only with a deployment; clients may reuse the list for a while.
CACHE_CONTROL = "public, max-age=300"


def register(router: Router, app: Any) -> None:
    """Add ``GET /sticker/packs``."""
    app.sticker_packs = load_packs(app.config.asset_dir / "stickers")

    @router.get("/sticker/packs")
    async def sticker_packs(request: Request) -> Response:
        packs: list[StickerPack] = app.sticker_packs
        response = json_response({"rows": [p.to_dict() for p in packs], "total": len(packs)})
        response.set_header("Cache-Control", CACHE_CONTROL)
        return response
