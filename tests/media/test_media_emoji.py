"""Unicode emoji in chat text survive storage and every delivery, on SQLite and MariaDB.

4-byte UTF-8 (outside the BMP: MySQL's old ``utf8`` cannot hold it, ``utf8mb4`` can),
skin-tone modifiers, ZWJ sequences, flags and variation selectors: the text must come
back code point for code point, live, through sync (cmd 20) and through /chat/history.
"""

from __future__ import annotations

import asyncio
import unicodedata

from tests.chat_support import ChatClient, befriend
from tests.store_fixtures import ApiServer

EMOJI = [
    "😀",                            # U+1F600: 4 bytes in UTF-8
    "👍🏽",                           # thumbs up + medium skin tone modifier
    "👩🏿‍💻",                          # woman, dark skin tone, ZWJ, laptop
    "👨‍👩‍👧‍👦",                          # family: four people joined by ZWJ
    "🏳️‍🌈",                          # white flag, VS16, ZWJ, rainbow
    "🇨🇳🇫🇷",                          # two flags: regional indicator pairs
    "❤️",                             # BMP heart + variation selector 16
    "1️⃣",                             # keycap sequence
    "𝄞 𠜎",                          # a musical symbol and a CJK ideograph outside the BMP
    "e\u0301 vs é",                  # decomposed and precomposed: neither is normalised
]
TEXT = "emoji: " + " | ".join(EMOJI)
GROUP_TEXT = "🎉🎉 " + "".join(reversed(EMOJI))


def test_emoji_survive_the_chat_round_trip_and_storage(api: ApiServer) -> None:
    alice, ta = api.user_with_token(nickname="alice 👩🏻‍🚀")
    bob, tb = api.user_with_token(nickname="bob 🧔🏾")
    befriend(api, ta, bob, tb)
    group = api.post("/contact/createcommunity", {"name": "🎉 party 🇯🇵", "visibility": "public"}, token=ta).data
    assert api.post("/contact/joincommunity", {"dstid": group["id"]}, token=tb).status == 200
    assert unicodedata.normalize("NFC", TEXT) != TEXT  # the test text would notice NFC

    async def scenario() -> None:
        a = await ChatClient.open(api, ta)
        b = await ChatClient.open(api, tb)
        ack = await a.say(10, bob["id"], TEXT, "e1")
        assert ack["cmd"] == 1, ack
        live = await b.message()
        assert live["content"] == TEXT
        group_ack = await b.say(11, group["id"], GROUP_TEXT, "e2")
        assert group_ack["cmd"] == 1, group_ack
        assert (await a.message())["content"] == GROUP_TEXT
        await a.close()
        await b.close()

        # From the database: a fresh device syncs what it missed.
        fresh = await ChatClient.open(api, tb)
        await fresh.send(cmd=20, since=0)
        page = await fresh.cmd(21)
        contents = [row["content"] for row in page["rows"]]
        assert contents == [TEXT, GROUP_TEXT]
        await fresh.close()

    asyncio.run(scenario())
    history = api.get(f"/chat/history?cmd=10&dstid={alice['id']}", token=tb)
    assert history.status == 200, history.body
    assert [row["content"] for row in history.list["rows"]] == [TEXT]
    # Names with emoji came back unchanged too (profiles and groups).
    friends = api.post("/contact/loadfriend", {}, token=tb).list["rows"]
    assert [f["nickname"] for f in friends] == ["alice 👩🏻‍🚀"]
    groups = api.post("/contact/loadcommunity", {}, token=tb).list["rows"]
    assert [g["name"] for g in groups] == ["🎉 party 🇯🇵"]
