"""Message search in a real browser: the box over all conversations finds Chinese and
English text in the user's own chats and groups only, marks the match as text (markup in
a message stays characters), and a click opens the conversation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.web_support")
from tests.web_support import (  # noqa: E402
    WAIT_MS,
    Person,
    WebServer,
    befriend,
    chat_over_socket,
    make_person,
    open_chat,
    screenshot,
)

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)


def test_search_all_conversations_and_open_one(browser: Any, server: WebServer,
                                               people: list[Person], shots: Path) -> None:
    alice, bob, carol, dave = (make_person(server, n)
                               for n in ("Alice", "Bob", "Carol", "Dave"))
    people += [alice, bob, carol, dave]
    befriend(server, alice, bob)
    befriend(server, carol, dave)
    api = server.running
    group = api.post("/contact/createcommunity", {"name": "读书会 📚"}, token=carol.token).data
    joined = api.post("/contact/joincommunity", {"dstid": group["id"]}, token=alice.token)
    assert joined.status == 200, joined.body
    chat_over_socket(server, bob, 10, alice.id, ["我们每周五晚上见", "Hello, <b>world</b> 🌍"])
    chat_over_socket(server, carol, 11, group["id"], ["周五 group plan 🍕"])
    chat_over_socket(server, dave, 10, carol.id, ["周五 secret between Carol and Dave"])

    page = open_chat(browser, server, alice)
    page.fill("#search-q", "周五")
    page.press("#search-q", "Enter")
    hits = page.locator("#search-list a.search-hit")
    expect(hits).to_have_count(2)
    expect(page.locator("#search-status")).to_have_text("2 messages found")
    expect(hits.nth(0).locator(".conv-name")).to_have_text("读书会 📚")
    expect(hits.nth(0).locator(".search-text")).to_have_text("Carol: 周五 group plan 🍕")
    expect(hits.nth(1).locator(".conv-name")).to_have_text("Bob")
    expect(hits.nth(1).locator("mark")).to_have_text("周五")
    expect(page.locator("#search-list")).not_to_contain_text("secret")
    expect(page.locator("#tab-friends")).to_be_hidden()
    screenshot(page, shots, "search-desktop")

    # Markup in a message is found and shown as the characters it is.
    page.fill("#search-q", "<b>WORLD")
    page.press("#search-q", "Enter")
    expect(hits).to_have_count(1)
    expect(hits.locator("mark")).to_have_text("<b>world")
    expect(hits.locator(".search-text b")).to_have_count(0)
    expect(hits.locator(".search-text")).to_have_text("Hello, <b>world</b> 🌍")

    page.fill("#search-q", "no such words")
    page.press("#search-q", "Enter")
    expect(page.locator("#search-status")).to_have_text("No message contains “no such words”.")

    # A click opens the conversation; closing the search brings the lists back.
    page.fill("#search-q", "每周")
    page.press("#search-q", "Enter")
    expect(hits).to_have_count(1)
    hits.first.click()
    expect(page.locator("#conv-title")).to_have_text("Bob")
    expect(page.locator("#messages")).to_contain_text("我们每周五晚上见")
    page.click("#search-close")
    expect(page.locator("#tab-friends")).to_be_visible()
    expect(page.locator("#search-results")).to_be_hidden()
    assert alice.errors == [] and alice.dialogs == []
