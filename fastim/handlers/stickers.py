"""``GET /sticker/packs``: the sticker packs under ``asset/stickers/`` (docs/media.md).

Public (stickers are static assets anyone may fetch) and read once at start-up. A
sticker is sent in a chat message as ``media`` 4 with its ``/asset/stickers/…`` URL in
``url``, which the chat hub accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastim.http import Request, Response, Router, list_response

if TYPE_CHECKING:
    from fastim.app import App

#: Packs change only with a deployment; clients may reuse the list for a while.
CACHE_CONTROL = "public, max-age=300"


def register(router: Router, app: App) -> None:
    """Add ``GET /sticker/packs`` (the packs are read by `fastim.services.Services`)."""

    @router.get("/sticker/packs")
    async def sticker_packs(request: Request) -> Response:
        packs = app.services.sticker_packs
        response = list_response([p.to_dict() for p in packs], len(packs))
        response.set_header("Cache-Control", CACHE_CONTROL)
        return response
