"""`GET /chat/search` over a real server, on both backends: messages sent over /chat are
found by any part of their text, only in conversations the caller may read, paged with
`before`; edits, recalls and deletes-for-me made over /chat are honoured; bad requests
get their status; a sealed server refuses search; MariaDB without Mroonga starts and
answers 503."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from fastim.config import Config
from fastim.store import search as searching
from fastim.store.sealing import write_key_file
from tests.chat.test_chat_lifecycle import change
from tests.chat_support import ChatClient, befriend
from tests.mariadb_support import mariadb_server
from tests.store_fixtures import ApiServer, api_config


def search(api: ApiServer, token: str, **query: Any) -> Any:
    # The index is kept after commit, about a second behind (INDEX_PERIOD): catch up
    # first rather than wait.
    api.call(api.app.services.search.indexer.catch_up())
    return api.get(f"/chat/search?{urlencode(query)}", token=token)


def test_search_over_the_api(db_url: str, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    with ApiServer(api_config(db_url, tmp_path)) as api:
        alice, ta = api.user_with_token(nickname="alice")
        bob, tb = api.user_with_token(nickname="bob")
        carol, tc = api.user_with_token(nickname="carol")
        dave, td = api.user_with_token(nickname="dave")
        befriend(api, ta, bob, tb)
        befriend(api, tc, dave, td)
        club = api.post("/contact/createcommunity", {"name": "读书会"}, token=ta).data
        closed = api.post("/contact/createcommunity", {"name": "closed"}, token=tc).data

        async def chat() -> list[int]:
            a = await ChatClient.open(api, ta)
            c = await ChatClient.open(api, tc)
            ids = [(await a.say(10, bob["id"], "我们每周五晚上见", "a1"))["id"],
                   (await a.say(11, club["id"], "Hello, world 🌍", "a2"))["id"],
                   (await c.say(10, dave["id"], "周五 secret", "c1"))["id"],
                   (await c.say(11, closed["id"], "周五 closed hello", "c2"))["id"]]
            for i in range(4):
                ids.append((await a.say(10, bob["id"], f"周五 page {i}", f"p{i}"))["id"])
            await a.close()
            await c.close()
            return ids

        ids = asyncio.run(chat())
        found = search(api, tb, q="周五").list
        assert found["total"] == 5
        assert search(api, tb, q="周五").json["total_capped"] is False
        # A count that stops at its bound says so (fastim/store/search.py TOTAL_CAP).
        monkeypatch.setattr(searching, "TOTAL_CAP", 3)
        capped = search(api, tb, q="周五").json
        assert (capped["total"], capped["total_capped"], len(capped["rows"])) == (3, True, 5)
        monkeypatch.undo()
        assert [m["id"] for m in found["rows"]] == [ids[7], ids[6], ids[5], ids[4], ids[0]]
        first = found["rows"][-1]
        assert first["content"] == "我们每周五晚上见" and first["matches"] == [[3, 5]]
        assert first["conversation"] == {"cmd": 10, "dstid": alice["id"]}
        assert first["userid"] == alice["id"]
        hello = search(api, ta, q="HELLO").list["rows"]
        assert [(m["content"], m["matches"], m["conversation"]) for m in hello] == [
            ("Hello, world 🌍", [[0, 5]], {"cmd": 11, "dstid": club["id"]})]
        assert search(api, ta, q="🌍").list["rows"][0]["matches"] == [[13, 15]]
        # Paged: newest first, `before` the last id of the page before.
        page = search(api, ta, q="周五", pagesize=2).list
        assert [m["id"] for m in page["rows"]] == [ids[7], ids[6]] and page["total"] == 5
        page = search(api, ta, q="周五", pagesize=2, before=ids[6]).list
        assert [m["id"] for m in page["rows"]] == [ids[5], ids[4]]
        # One conversation; the caller's own rights, as /chat/history checks them.
        one = search(api, ta, q="周五", cmd=10, dstid=bob["id"]).list
        assert one["total"] == 5
        assert search(api, ta, q="周五", cmd=11, dstid=club["id"]).list["rows"] == []
        refused = search(api, ta, q="周五", cmd=10, dstid=dave["id"])
        assert refused.status == 403 and refused.json["code"] == -1
        assert search(api, ta, q="周五", cmd=11, dstid=closed["id"]).status == 403
        # Never a stranger's 1:1 nor a group the caller is not in.
        assert [m["content"] for m in search(api, ta, q="secret").list["rows"]] == []
        assert [m["content"] for m in search(api, ta, q="closed").list["rows"]] == []
        assert [m["content"] for m in search(api, tc, q="周五").list["rows"]] == [
            "周五 closed hello", "周五 secret"]
        # Bad requests.
        assert search(api, ta, q=" ").status == 400
        assert search(api, ta).status == 400
        assert search(api, ta, q="x" * 101).status == 400
        assert search(api, ta, q="a\x00bc").status == 400
        assert search(api, ta, q="ab\ncd").status == 400
        assert search(api, ta, q="x", pagesize=0).status == 400
        assert search(api, ta, q="x", cmd=10).status == 400
        assert api.get("/chat/search?q=x").status == 401


def test_a_sealed_server_refuses_search(db_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "message.keys"
    write_key_file(keys, "k1")
    config: Config = api_config(db_url, tmp_path)
    config.message_key_file = keys
    with ApiServer(config) as api:
        _, token = api.user_with_token()
        refused = search(api, token, q="anything")
        assert refused.status == 501
        assert refused.json["code"] == -1 and "sealed" in refused.json["msg"]


def test_edits_recalls_and_deletes_for_me_over_the_chat(db_url: str, tmp_path: Path) -> None:
    with ApiServer(api_config(db_url, tmp_path)) as api:
        alice, ta = api.user_with_token(nickname="alice")
        bob, tb = api.user_with_token(nickname="bob")
        befriend(api, ta, bob, tb)

        async def chat() -> list[int]:
            a = await ChatClient.open(api, ta)
            ids = [(await a.say(10, bob["id"], text, f"s{i}"))["id"]
                   for i, text in enumerate(["周五 typo", "周五 regret", "周五 private"])]
            await a.close()
            return ids

        typo, regret, private = asyncio.run(chat())
        assert len(search(api, tb, q="周五").list["rows"]) == 3  # indexed before the changes

        async def changes() -> None:
            a, b = await ChatClient.open(api, ta), await ChatClient.open(api, tb)
            assert (await change(a, 60, "e1", id=typo, content="周五 fixed"))["cmd"] == 1
            assert (await change(a, 61, "r1", id=regret))["cmd"] == 1
            assert (await change(b, 63, "d1", id=private))["cmd"] == 1
            await a.close()
            await b.close()

        asyncio.run(changes())
        found = search(api, tb, q="周五").list
        assert [m["content"] for m in found["rows"]] == ["周五 fixed"] and found["total"] == 1
        assert search(api, tb, q="typo").list["rows"] == []
        assert search(api, tb, q="regret").list["rows"] == []
        # Alice deleted nothing for herself: she still finds hers.
        assert [m["id"] for m in search(api, ta, q="周五").list["rows"]] == [private, typo]


def test_without_mroonga_mariadb_serves_and_search_says_why(tmp_path: Path) -> None:
    """A MariaDB whose plugin directory has no Mroonga: the server starts, chats, and
    answers a search with 503 and the reason, not a crash."""
    (tmp_path / "no-plugins").mkdir()
    server = mariadb_server(tmp_path / "mariadb",
                            options=(f"--plugin-dir={tmp_path / 'no-plugins'}",))
    try:
        with ApiServer(api_config(server.url("fastim"), tmp_path)) as api:
            alice, ta = api.user_with_token(nickname="alice")
            bob, tb = api.user_with_token(nickname="bob")
            befriend(api, ta, bob, tb)
            refused = api.get("/chat/search?q=hello", token=ta)
            assert refused.status == 503 and "Mroonga" in refused.json["msg"]

            async def chat() -> None:
                a = await ChatClient.open(api, ta)
                await a.say(10, bob["id"], "hello", "h1")
                await a.close()

            asyncio.run(chat())
            history = api.get(f"/chat/history?cmd=10&dstid={alice['id']}", token=tb)
            assert [m["content"] for m in history.list["rows"]] == ["hello"]
    finally:
        server.close()
