"""fastIM's own client calls, replayed as its pages make them: form-encoded bodies (the
page's `post()` helper), friends asked and groups joined by name (`dstname`), fields it
sent that fastim checks or ignores (`userid`, `ownerid`, `filetype`), `res.rows` and `res.total` of list replies at the top level, the WebSocket
at ``/chat?id=&token=``, an upload without a `kind`, a sticker in fastIM's own
``/asset/plugins/doutu//emoj/2.gif`` form, and a group message with an image and a
voice message. On both backends.

One difference stays, on purpose: fastIM trusted the `userid` a page sent; fastim's
pages are logged in by the session cookie that ``/user/login`` sets (a browser sends it
with every call), and its changes come from the app's own Origin.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from PIL import Image

from fastim.config import Config
from tests.chat_support import ChatClient
from tests.media.audio_samples import webm
from tests.media.test_media_upload import multipart
from tests.store_fixtures import ApiServer, Reply, api_config, new_mobile

DOUTU = "/asset/plugins/doutu//emoj/2.gif"


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    """A server whose asset directory also holds fastIM's doutu sticker 2.gif."""
    config: Config = api_config(db_url, tmp_path)
    assets = tmp_path / "asset"
    shutil.copytree(config.asset_dir, assets)
    sticker = assets / "plugins" / "doutu" / "emoj" / "2.gif"
    sticker.parent.mkdir(parents=True)
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "orange").save(out, "GIF")
    sticker.write_bytes(out.getvalue())
    config.asset_dir = assets
    with ApiServer(config) as running:
        yield running


class Page:
    """One browser tab of fastIM's client: form posts, the cookie, the app's Origin."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.cookie = ""
        self.origin = f"http://127.0.0.1:{server.port}"

    def post(self, path: str, form: dict[str, Any]) -> dict[str, Any]:
        """fastIM's `util.post(uri, data)`: a form-encoded POST; the parsed `res`."""
        headers = {"Origin": self.origin}
        if self.cookie:
            headers["Cookie"] = self.cookie
        reply = self.server.request("POST", path, body=urlencode(form).encode(),
                                    headers={**headers,
                                             "Content-Type": "application/x-www-form-urlencoded"})
        return self._res(reply)

    def upload(self, content: bytes, filename: str, filetype: str) -> dict[str, Any]:
        """fastIM's upload: the multipart field `file` and its `filetype`; no `kind`."""
        body, ctype = multipart([("file", filename, content, "application/octet-stream"),
                                 ("filetype", None, filetype.encode(), None)])
        reply = self.server.request("POST", "/attach/upload", body=body, headers={
            "Content-Type": ctype, "Cookie": self.cookie, "Origin": self.origin})
        return self._res(reply)

    def _res(self, reply: Reply) -> dict[str, Any]:
        for value in reply.header_all("Set-Cookie"):
            if value.startswith("fastim_token="):
                self.cookie = value.split(";", 1)[0]
        assert 200 <= reply.status < 300, (reply.status, reply.body)
        res: dict[str, Any] = json.loads(reply.body)
        assert res["code"] == 0, res
        return res


def register_and_login(server: ApiServer, nickname: str) -> tuple[Page, dict[str, Any]]:
    page = Page(server)
    mobile = new_mobile()
    page.post("/user/register", {"mobile": mobile, "passwd": "correct horse",
                                 "nickname": nickname, "avatar": "", "sex": "U", "memo": ""})
    user = page.post("/user/login", {"mobile": mobile, "passwd": "correct horse"})["data"]
    assert user["id"] and user["token"] and page.cookie
    return page, user


def test_fastims_client_calls_from_register_to_a_group_voice_message(
        server: ApiServer) -> None:
    alice_page, alice = register_and_login(server, "alice")
    bob_page, bob = register_and_login(server, "bob")

    # Friends: fastIM's page asks by mobile number (`dstname`) with its own `userid`; by
    # consent, both ask.
    alice_page.post("/contact/addfriend", {"dstname": bob["mobile"], "userid": alice["id"]})
    bob_page.post("/contact/addfriend", {"dstname": alice["mobile"], "userid": bob["id"]})
    res = alice_page.post("/contact/loadfriend", {"userid": alice["id"]})
    assert [row["id"] for row in res["rows"]] == [bob["id"]] and res["total"] == 1
    assert "data" not in res or res["data"] is None

    # A group: created with fastIM's fields (its own `ownerid`; `visibility` is fastim's,
    # for when groups become private by default and joining by name needs a public one),
    # joined by name (`dstname`) as fastIM's page does, listed with res.rows.
    group = alice_page.post("/contact/createcommunity", {
        "ownerid": alice["id"], "icon": "/asset/images/community.png", "cate": 1,
        "name": "compat 读书会", "memo": "fastIM", "visibility": "public"})["data"]
    bob_page.post("/contact/joincommunity", {"dstname": "compat 读书会", "userid": bob["id"]})
    res = bob_page.post("/contact/loadcommunity", {"userid": bob["id"]})
    assert [row["id"] for row in res["rows"]] == [group["id"]] and res["total"] == 1

    # Uploads as fastIM's page makes them: no kind; the bytes decide image or voice.
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "teal").save(out, "PNG")
    image = alice_page.upload(out.getvalue(), "photo.png", ".png")["data"]
    assert image["url"].startswith("/resource/") and image["type"] == "image/png"
    voice = alice_page.upload(webm(2.0), "voice.mp3", ".mp3")["data"]
    assert voice["url"].endswith(".webm") and voice["amount"] == 2

    async def chat() -> None:
        # fastIM's page: new WebSocket("ws://host/chat?id=" + userid + "&token=" + token).
        a = await ChatClient.open(server.port, f"{alice['token']}&id={alice['id']}")
        b = await ChatClient.open(server.port, f"{bob['token']}&id={bob['id']}")
        try:
            sent = [
                {"media": 1, "content": "大家好"},
                {"media": 4, "url": image["url"], "pic": image["thumb"]},
                {"media": 4, "url": DOUTU},
                # fastIM's client sent its own guess of the length; the server's is kept.
                {"media": 3, "url": voice["url"], "amount": 7},
            ]
            for n, fields in enumerate(sent):
                # As fastIM's client wrote them: ids as strings, its userid included.
                frame = {"id": n, "userid": str(alice["id"]), "cmd": 11,
                         "dstid": str(group["id"]), "content": "", "pic": "", "url": "",
                         "memo": "", "amount": 0, **fields, "cid": f"c{n}"}
                await a.send(**frame)
                ack = await a.expect(lambda f, n=n: f.get("cid") == f"c{n}")
                assert ack["cmd"] == 1, ack
            got = [await b.message() for _ in sent]
            assert [(m["media"], m["userid"], m["dstid"]) for m in got] == [
                (1, alice["id"], group["id"]), (4, alice["id"], group["id"]),
                (4, alice["id"], group["id"]), (3, alice["id"], group["id"])]
            assert got[0]["content"] == "大家好"
            assert got[1]["url"] == image["url"] and got[2]["url"] == DOUTU
            assert (got[3]["url"], got[3]["amount"]) == (voice["url"], 2)
            # A doutu sticker that does not exist is refused, and the error says why.
            await a.send(cmd=11, dstid=group["id"], media=4,
                         url="/asset/plugins/doutu//emoj/99.gif", cid="gone")
            refused = await a.expect(lambda f: f.get("cid") == "gone")
            assert refused["error"] == "bad_url"
            assert "no file asset/plugins/doutu/emoj/99.gif" in refused["msg"]
        finally:
            await a.close()
            await b.close()

    asyncio.run(chat())

    # The image and the voice message are served to fastIM's <img> and <audio>.
    for url in (image["url"], voice["url"], DOUTU):
        assert server.get(url).status == 200, url
