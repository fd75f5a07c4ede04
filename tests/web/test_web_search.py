"""Message search in a real browser: the box over all conversations finds Chinese and
English text in the user's own chats and groups only, marks the match as text (markup in
a message stays characters), and a click opens the conversation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from fastim.chat.hub import HubOptions
from fastim.store import search as searching

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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # A higher rate limit only so that a test can seed many messages over one socket.
    web = WebServer(tmp_path_factory.mktemp("web-search"),
                    HubOptions(rate=500, burst=1000)).start()
    try:
        yield web
    finally:
        web.stop()


def indexed(server: WebServer) -> None:
    """Let the search indexer catch up now (it follows the messages about a second
    behind, docs/store.md "Search"), rather than wait for it."""
    server.running.call(server.running.app.services.search.indexer.catch_up())


def test_search_all_conversations_and_open_one(browser: Any, server: WebServer,
                                               people: list[Person], shots: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, carol, dave = (make_person(server, n)
                               for n in ("Alice", "Bob", "Carol", "Dave"))
    people += [alice, bob, carol, dave]
    befriend(server, alice, bob)
    befriend(server, carol, dave)
    api = server.running
    group = api.post("/contact/createcommunity", {"name": "读书会 📚", "visibility": "public"},
                     token=carol.token).data
    joined = api.post("/contact/joincommunity", {"dstid": group["id"]}, token=alice.token)
    assert joined.status == 200, joined.body
    chat_over_socket(server, bob, 10, alice.id, ["我们每周五晚上见", "Hello, <b>world</b> 🌍"])
    chat_over_socket(server, carol, 11, group["id"], ["周五 group plan 🍕"])
    chat_over_socket(server, dave, 10, carol.id, ["周五 secret between Carol and Dave"])
    indexed(server)

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

    # A count the server stopped at its bound (total_capped) is shown as "more than".
    monkeypatch.setattr(searching, "TOTAL_CAP", 1)
    page.fill("#search-q", "周五 ")  # another text than the box's, so it searches again
    page.press("#search-q", "Enter")
    expect(page.locator("#search-status")).to_have_text("More than 1 messages found")
    expect(hits).to_have_count(2)
    monkeypatch.undo()

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


def test_search_one_conversation_and_jump_to_an_old_message(
        browser: Any, server: WebServer, people: list[Person], shots: Path) -> None:
    erin, frank, gus = (make_person(server, n) for n in ("Erin", "Frank", "Gus"))
    people += [erin, frank, gus]
    befriend(server, erin, frank)
    befriend(server, erin, gus)
    chat_over_socket(server, frank, 10, erin.id, ["the old 周五 plan"])
    chat_over_socket(server, frank, 10, erin.id, [f"filler {n}" for n in range(120)])
    chat_over_socket(server, gus, 10, erin.id, ["Gus also says 周五"])
    indexed(server)

    page = open_chat(browser, server, erin)
    page.click("#tab-friends")
    page.locator(f'a.conv-item[data-key="u{frank.id}"]').click()
    expect(page.locator("#conv-title")).to_have_text("Frank")
    page.click("#conv-search")
    expect(page.locator("#search-scope-text")).to_have_text("In Frank only.")
    expect(page.locator("#search-q")).to_be_focused()
    page.fill("#search-q", "周五")
    page.press("#search-q", "Enter")
    hits = page.locator("#search-list a.search-hit")
    expect(hits).to_have_count(1)
    expect(hits.locator(".search-text")).to_have_text("the old 周五 plan")
    # The message is 121 messages back: older pages load until it is there.
    hits.first.click()
    found = page.locator("#messages li.msg", has_text="the old 周五 plan")
    expect(found).to_be_in_viewport()
    expect(found).to_have_attribute("data-found", "true")
    screenshot(page, shots, "search-jump")
    # All conversations again.
    page.click("#search-scope-clear")
    expect(page.locator("#search-scope")).to_be_hidden()
    expect(hits).to_have_count(2)
    assert erin.errors == [] and erin.dialogs == []
