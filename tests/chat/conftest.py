"""Fixtures shared by the chat tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fastim.chat.hub import HubOptions
from tests.store_fixtures import ApiServer, api_config


@pytest.fixture
def roomy_api(request: pytest.FixtureRequest, db_url: str, tmp_path: Any) -> Iterator[ApiServer]:
    """A server whose rate limit lets one client send hundreds of messages quickly. A test
    module may set ``ROOMY_OUTBOUND_BUFFER`` (bytes; 256 KiB when it does not)."""
    config = api_config(db_url, tmp_path)
    config.hub = HubOptions(rate=1e6, burst=1e6)
    config.chat_outbound_buffer = getattr(request.module, "ROOMY_OUTBOUND_BUFFER", 256 * 1024)
    with ApiServer(config) as server:
        yield server
