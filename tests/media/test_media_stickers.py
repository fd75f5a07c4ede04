"""Sticker packs: the shipped manifests, GET /sticker/packs, the files served, and a
sticker sent in a chat message — over real sockets against a real server (SQLite)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastim.chat.protocol import ChatMessage, Media, parse
from fastim.config import PROJECT_DIR
from fastim.media import PackError, load_pack, load_packs
from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer, api_config

STICKERS = PROJECT_DIR / "asset" / "stickers"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(api_config(f"sqlite:///{tmp_path}/fastim.db", tmp_path)) as running:
        yield running


def test_the_shipped_packs_are_all_valid(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="fastim.media.stickers"):
        packs = load_packs(STICKERS)
    assert caplog.records == []
    directories = [p for p in STICKERS.iterdir() if p.is_dir()]
    assert len(packs) == len(directories) >= 2
    for pack in packs:
        assert len(pack.stickers) >= 4 and pack.name
        manifest = json.loads((STICKERS / pack.id / "info.json").read_text("utf-8"))
        assert set(manifest) >= {"id", "name", "icon", "assets"}  # fastIM's fields, and name
        # Every SVG in the directory is listed: nothing drawn is left out of the picker.
        assert sorted(manifest["assets"]) == sorted(p.name for p in (STICKERS / pack.id).glob("*.svg"))


def test_sticker_packs_lists_files_that_exist_and_are_served(server: ApiServer) -> None:
    reply = server.get("/sticker/packs")
    assert reply.status == 200 and reply.header("cache-control") == "public, max-age=300"
    data = reply.list
    assert data["total"] == len(data["rows"]) >= 2
    for pack in data["rows"]:
        assert set(pack) == {"id", "name", "names", "size", "icon", "assets"}
        # Named in Chinese too: a Chinese page does not show the packs in English.
        assert pack["names"]["zh-CN"]
        assert pack["icon"] in [a["url"] for a in pack["assets"]]
        for sticker in pack["assets"]:
            url = sticker["url"]
            assert url.startswith(f"/asset/stickers/{pack['id']}/") and sticker["title"]
            assert sticker["titles"]["zh-CN"]
            served = server.get(url)
            assert served.status == 200, url
            assert (served.header("content-type") or "").startswith("image/svg+xml")
            assert served.header("x-content-type-options") == "nosniff"
            on_disk = PROJECT_DIR / url.lstrip("/")
            assert served.body == on_disk.read_bytes()
            # The chat hub accepts it as the url of an image message.
            command = parse(json.dumps({"cmd": 10, "dstid": 1, "media": 4, "url": url}))
            assert isinstance(command, ChatMessage) and command.url == url


@pytest.mark.parametrize("path", sorted(STICKERS.glob("*/*.svg")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sticker_is_a_self_contained_svg_without_script(path: Path) -> None:
    text = path.read_text("utf-8")
    root = ET.fromstring(text)  # well-formed XML
    assert root.tag == f"{SVG}svg" and root.get("viewBox") == "0 0 128 128"
    assert root.find(f"{SVG}title") is not None  # a name for screen readers
    for element in root.iter():
        assert element.tag.split("}")[-1] not in ("script", "foreignObject", "image", "use")
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (path, name)
            assert "http" not in value or name == "xmlns", (path, name, value)
    assert not re.search(r"(?i)javascript:|<!ENTITY|xlink:href", text)


def write_pack(root: Path, directory: str, manifest: object, files: list[str]) -> None:
    pack = root / directory
    pack.mkdir(parents=True)
    for name in files:
        (pack / name).write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (pack / "info.json").write_text(text)


BROKEN = [
    ("listed file missing", {"id": "p", "name": "P", "icon": "a.svg", "assets": ["a.svg", "b.svg"]},
     ["a.svg"], "b.svg is listed but does not exist"),
    ("id is not the directory", {"id": "other", "name": "P", "icon": "a.svg", "assets": ["a.svg"]},
     ["a.svg"], "id must be the directory's name"),
    ("path out of the pack", {"id": "p", "name": "P", "icon": "a.svg", "assets": ["../a.svg"]},
     ["a.svg"], "not a plain sticker file name"),
    ("not an image type", {"id": "p", "name": "P", "icon": "a.svg", "assets": ["a.html"]},
     ["a.svg", "a.html"], "not a plain sticker file name"),
    ("icon missing", {"id": "p", "name": "P", "icon": "z.svg", "assets": ["a.svg"]},
     ["a.svg"], "z.svg is listed but does not exist"),
    ("no name", {"id": "p", "icon": "a.svg", "assets": ["a.svg"]}, ["a.svg"], "name"),
    ("bad size", {"id": "p", "name": "P", "size": "huge", "icon": "a.svg", "assets": ["a.svg"]},
     ["a.svg"], "size"),
    ("twice", {"id": "p", "name": "P", "icon": "a.svg", "assets": ["a.svg", "a.svg"]},
     ["a.svg"], "listed twice"),
    ("not JSON", "{nope", ["a.svg"], "cannot read info.json"),
    ("a language we do not ship", {"id": "p", "name": "P", "icon": "a.svg", "assets": ["a.svg"],
                                   "i18n": {"fr": {"name": "P"}}}, ["a.svg"], "i18n has 'fr'"),
    ("a title for no sticker", {"id": "p", "name": "P", "icon": "a.svg", "assets": ["a.svg"],
                                "i18n": {"zh-CN": {"titles": {"b.svg": "乙"}}}},
     ["a.svg"], "names 'b.svg', which is not in assets"),
    ("an empty translated name", {"id": "p", "name": "P", "icon": "a.svg", "assets": ["a.svg"],
                                  "i18n": {"zh-CN": {"name": " "}}}, ["a.svg"], "i18n.zh-CN.name"),
]


@pytest.mark.parametrize(("what", "manifest", "files", "message"), BROKEN,
                         ids=[b[0] for b in BROKEN])
def test_a_broken_manifest_is_refused_with_the_reason(
    tmp_path: Path, what: str, manifest: object, files: list[str], message: str
) -> None:
    write_pack(tmp_path, "p", manifest, files)
    with pytest.raises(PackError, match=re.escape(message)):
        load_pack(tmp_path / "p", "/asset/stickers/")


def test_a_broken_pack_is_left_out_and_the_others_still_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_pack(tmp_path, "good", {"id": "good", "name": "Good", "icon": "a.svg",
                                  "assets": ["a.svg", "b.svg"], "titles": {"a.svg": "ay"}},
               ["a.svg", "b.svg"])
    write_pack(tmp_path, "bad", {"id": "bad", "name": "Bad", "icon": "a.svg",
                                 "assets": ["gone.svg"]}, ["a.svg"])
    with caplog.at_level(logging.ERROR, logger="fastim.media.stickers"):
        packs = load_packs(tmp_path, "/asset/stickers/")
    assert [p.id for p in packs] == ["good"]
    assert [(s.url, s.title) for s in packs[0].stickers] == [
        ("/asset/stickers/good/a.svg", "ay"), ("/asset/stickers/good/b.svg", "b")]
    assert "gone.svg" in caplog.text
    assert load_packs(tmp_path / "missing") == []


def test_a_pack_names_its_stickers_in_each_language_it_has(tmp_path: Path) -> None:
    write_pack(tmp_path, "p", {"id": "p", "name": "Cats", "icon": "a.svg",
                               "assets": ["a.svg", "b.svg"], "titles": {"a.svg": "hello"},
                               "i18n": {"zh-CN": {"name": "猫咪", "titles": {"a.svg": "你好"}}}},
               ["a.svg", "b.svg"])
    pack = load_pack(tmp_path / "p", "/asset/stickers/").to_dict()
    assert (pack["name"], pack["names"]) == ("Cats", {"zh-CN": "猫咪"})
    assert pack["assets"] == [
        {"url": "/asset/stickers/p/a.svg", "title": "hello", "titles": {"zh-CN": "你好"}},
        {"url": "/asset/stickers/p/b.svg", "title": "b", "titles": {}}]


def test_a_sticker_is_sent_as_media_4_with_its_asset_url(server: ApiServer) -> None:
    alice, ta = server.user_with_token(nickname="alice")
    bob, tb = server.user_with_token(nickname="bob")
    befriend(server, ta, bob, tb)
    sticker = server.get("/sticker/packs").list["rows"][0]["assets"][0]["url"]

    async def scenario() -> None:
        a = await ChatClient.open(server, ta)
        b = await ChatClient.open(server, tb)
        await a.send(cmd=10, dstid=bob["id"], media=int(Media.IMAGE), url=sticker, cid="s1")
        ack = await a.expect(lambda f: f.get("cid") == "s1")
        assert ack["cmd"] == 1, ack
        got = await b.message()
        assert (got["media"], got["url"], got["userid"]) == (4, sticker, alice["id"])
        await a.close()
        await b.close()

    asyncio.run(scenario())
