"""The client's files under a URL naming their build (`/asset/v/<version>/`): cached for
good, never mixed with another build's, while the pages that name them are not cached."""

from __future__ import annotations

import re
from pathlib import Path

from fastim.http import tree_version
from tests.store_fixtures import ApiServer, api_config

VERSIONED = re.compile(r'(?:src|href)="(/asset/v/([0-9a-f]{12})/[^"]+)"')


def test_pages_name_the_build_of_their_files_and_those_are_immutable(tmp_path: Path) -> None:
    with ApiServer(api_config(f"sqlite:///{tmp_path}/a.db", tmp_path)) as api:
        page = api.get("/chat")
        assert page.header("Cache-Control") == "no-cache"
        urls = VERSIONED.findall(page.body.decode())
        assert {url.rsplit("/", 2)[-2] + "/" + url.rsplit("/", 1)[-1] for url, _ in urls} >= {
            "js/app.js", "css/fastim.css"}
        versions = {version for _, version in urls}
        assert versions == {tree_version(api.app.config.asset_dir)}
        for url, version in urls:
            versioned = api.get(url)
            assert versioned.status == 200, url
            assert versioned.header("Cache-Control") == "public, max-age=31536000, immutable"
            assert versioned.body == api.get(url.replace(f"/v/{version}", "")).body
        # app.js imports './api.js': the browser asks for it under the same build.
        version = versions.pop()
        assert api.get(f"/asset/v/{version}/js/api.js").status == 200
        # A build this node does not have is not served as if it were this one.
        assert api.get("/asset/v/000000000000/js/app.js").status == 404
        # The bare names stay (stored sticker messages name them), cached briefly.
        assert api.get("/asset/js/app.js").header("Cache-Control") == "public, max-age=3600"


def test_the_version_changes_with_any_file(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.js").write_text("one")
    (tmp_path / "b.css").write_text("two")
    first = tree_version(tmp_path)
    assert tree_version(tmp_path) == first
    (tmp_path / "js" / "a.js").write_text("one!")
    second = tree_version(tmp_path)
    (tmp_path / "js" / "a.js").rename(tmp_path / "js" / "c.js")
    third = tree_version(tmp_path)
    assert len({first, second, third}) == 3
