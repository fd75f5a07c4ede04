"""`GET /chat/search`: find messages by their text (docs/api.md "Search messages")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastim.accounts import fields
from fastim.handlers.auth import ListReply, endpoint
from fastim.http import Request, Router

if TYPE_CHECKING:
    from fastim.app import App


def _optional(values: dict[str, Any], name: str) -> int | None:
    value = fields.integer(values, name, minimum=0, maximum=fields.ID_MAX, default=0)
    return value or None


def register(router: Router, app: App) -> None:
    """Add /chat/search."""

    @router.get("/chat/search")
    @endpoint(app)
    async def search(request: Request, values: dict[str, Any], user: Any) -> Any:
        """Rows of messages with `matches` (offsets, not HTML), newest first, paged with
        `before`; `total` counts the matches up to a bound, `total_capped` says whether
        there are more (docs/api.md "Search messages")."""
        query = values.get("q")
        page = await app.services.search.search(
            user.id, query if isinstance(query, str) else "",
            _optional(values, "cmd"), _optional(values, "dstid"),
            _optional(values, "before"),
            fields.integer(values, "pagesize", minimum=0, maximum=fields.ID_MAX, default=20))
        return ListReply(page.rows, page.total, page.capped)
