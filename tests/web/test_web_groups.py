"""Safe groups in a real browser (issue 17): Alice makes a private group and an invite
link in its settings; Carol opens the link, logs in, joins, and does not see what was
said before she joined; Alice makes Bob an admin, and removes Carol, who stops
receiving at once.

Every user is a separate browser context against one real fastim server for the module
(tests/web_support.py has the fixtures)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.web_support")
from tests.web_support import (  # noqa: E402
    WAIT_MS,
    Person,
    WebServer,
    bubbles,
    chat_over_socket,
    conversation_link,
    make_person,
    new_context,
    open_chat,
    open_conversation,
    screenshot,
    send_text,
    wait_online,
    watch,
)

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)


def clean(*persons: Person) -> None:
    for person in persons:
        assert person.errors == [], (person.nickname, person.errors)
        assert person.dialogs == [], (person.nickname, person.dialogs)


def test_an_invite_link_a_late_joiner_and_a_removal(browser: Any, server: WebServer,
                                                   people: list[Person], shots: Path) -> None:
    alice, bob, carol = (make_person(server, n) for n in ("Alice", "Bob", "Carol"))
    people += [alice, bob, carol]
    api = server.running
    pa = open_chat(browser, server, alice)
    pa.click("#tab-groups")
    pa.fill("#group-new-name", "Book club 📚")
    expect(pa.locator("#group-new-visibility")).to_have_value("private")
    pa.press("#group-new-name", "Enter")
    expect(pa.locator("#conv-title")).to_have_text("Book club 📚")
    group = api.post("/contact/loadcommunity", {}, token=alice.token).list["rows"][0]["id"]
    # Private: Bob cannot find it by name.
    assert api.post("/contact/joincommunity", {"dstname": "Book club 📚"},
                    token=bob.token).status == 404
    send_text(pa, "before anyone came")
    expect(bubbles(pa, "before anyone came")).to_have_count(1)

    # The owner's settings: an invite link.
    pa.click("#conv-members")
    expect(pa.locator("#group-admin")).to_be_visible()
    pa.click("#invite-create")
    link = pa.locator("#invite-link")
    expect(link).to_have_value(re.compile(r"/join/[A-Za-z0-9_-]{22,}$"))
    url = link.input_value()
    expect(pa.locator("#invite-list li")).to_have_count(1)
    screenshot(pa, shots, "group-settings-invite")
    pa.click("#members-close")

    # Bob joins with the link (logged in already).
    bob.context = new_context(browser, server, bob)
    bob.page = pb = bob.context.new_page()
    watch(pb, bob)
    pb.goto(url)
    expect(pb.locator("#join-name")).to_have_text("Book club 📚")
    expect(pb.locator("#join-count")).to_have_text("1 member")
    pb.click("#join-button")
    pb.wait_for_url(re.compile(r"/chat"))
    wait_online(pb)
    open_conversation(pb, "g", group)
    expect(pb.locator("#history-state")).not_to_have_attribute("data-state", "loading")
    expect(bubbles(pb, "before anyone came")).to_have_count(0)

    # Carol is not logged in: the page sends her to log in, and back.
    carol.context = new_context(browser, server)
    carol.page = pc = carol.context.new_page()
    watch(pc, carol)
    pc.goto(url)
    expect(pc.locator("#join-count")).to_have_text("2 members")
    screenshot(pc, shots, "group-join-page")
    pc.click("#join-button")
    pc.wait_for_url(re.compile(r"/login"))
    pc.fill("#mobile", carol.mobile)
    pc.fill("#passwd", carol.passwd)
    pc.press("#passwd", "Enter")
    pc.wait_for_url(re.compile(r"/join/"))
    pc.click("#join-button")
    pc.wait_for_url(re.compile(r"/chat"))
    wait_online(pc)
    open_conversation(pc, "g", group)
    send_text(pa, "welcome both")
    for page in (pb, pc):
        expect(bubbles(page, "welcome both")).to_have_count(1)
    expect(bubbles(pc, "before anyone came")).to_have_count(0)

    # Alice sees three members with roles, makes Bob an admin, removes Carol.
    pa.click("#conv-members")
    rows = pa.locator("#member-list li.member")
    expect(rows).to_have_count(3)
    bob_row = pa.locator(f'#member-list li[data-userid="{bob.id}"]')
    bob_row.locator('[data-action="role"]').click()
    expect(bob_row.locator(".tag.admin")).to_have_text("admin")
    carol_row = pa.locator(f'#member-list li[data-userid="{carol.id}"]')
    carol_row.locator('[data-action="remove"]').click()
    expect(rows).to_have_count(2)
    screenshot(pa, shots, "group-members-roles")
    # Carol's page drops the group at once, and nothing more reaches her.
    expect(conversation_link(pc, "g", group)).to_have_count(0)
    chat_over_socket(server, alice, 11, group, ["after carol left"])
    expect(bubbles(pb, "after carol left")).to_have_count(1)
    history = api.get(f"/chat/history?cmd=11&dstid={group}", token=carol.token)
    assert [r["content"] for r in history.list["rows"]] == ["welcome both"]
    clean(alice, bob, carol)


def test_a_group_made_on_another_device_is_listed_and_live_at_once(
        browser: Any, server: WebServer, people: list[Person]) -> None:
    # Uma's laptop is open; she makes a group on her phone; Val joins it and writes.
    uma, val = make_person(server, "Uma"), make_person(server, "Val")
    people += [uma, val]
    uma_phone = replace(uma, errors=[], dialogs=[])  # the same user, another device
    people.append(uma_phone)
    laptop = open_chat(browser, server, uma)
    phone = open_chat(browser, server, uma_phone)
    phone.click("#tab-groups")
    phone.fill("#group-new-name", "Made on the phone")
    phone.locator("#group-new-visibility").select_option("public")
    phone.press("#group-new-name", "Enter")
    expect(phone.locator("#conv-title")).to_have_text("Made on the phone")
    group = server.running.post("/contact/loadcommunity", {}, token=uma.token).list["rows"][0]["id"]
    # The laptop lists it without a reload, on the Groups tab and among the chats.
    laptop.click("#tab-groups")
    expect(laptop.locator(f'#communities a[data-group="{group}"]')).to_have_count(1)
    open_conversation(laptop, "g", group)
    expect(laptop.locator("#conv-title")).to_have_text("Made on the phone")
    # And it is live there: what a newcomer says arrives at once.
    assert server.running.post("/contact/joincommunity", {"dstid": group},
                               token=val.token).status == 200
    [said] = chat_over_socket(server, val, 11, group, ["hello, laptop"])
    expect(bubbles(laptop, "hello, laptop")).to_have_count(1)
    # Its changes too: the owner reads the whole group (an edit reaches a member's device
    # only for a message inside the member's window, which the hub must know).
    edit_over_socket(server, val, said, "hello, edited")
    expect(bubbles(laptop, "hello, edited")).to_have_count(1)
    clean(uma, uma_phone)


def edit_over_socket(server: WebServer, sender: Person, message_id: int, text: str) -> None:
    """`sender` edits their message over a WebSocket of the test (cmd 60), and waits
    for the server's answer."""
    from tests.chat_support import ChatClient

    async def run() -> None:
        client = await ChatClient.open(server.running, sender.token)
        try:
            await client.send(cmd=60, id=message_id, content=text, cid=f"edit-{message_id}")
            answer = await client.expect(lambda f: f.get("cid") == f"edit-{message_id}")
            assert answer["cmd"] == 1, answer
        finally:
            await client.close()

    server.running.call(run())
