"""The chat client in a real browser: friends, 1:1 and group chat, receipts, typing,
presence, unread badges, history, and text that stays text.

Every user is a separate browser context (their own cookies and storage) against one
real fastim server for the module; tests/web_support.py has the fixtures.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from fastim.chat.hub import HubOptions

# web_support is also this module's plugin (its fixtures): let pytest rewrite its asserts.
pytest.register_assert_rewrite("tests.web_support")
from tests.web_support import (  # noqa: E402
    PHONE,
    WAIT_MS,
    Person,
    WebServer,
    befriend,
    bubbles,
    chat_over_socket,
    conversation_link,
    make_person,
    open_chat,
    open_conversation,
    screenshot,
    send_text,
)

# The browser, server, people and shots fixtures.
pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)
_groups = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # A higher rate limit only so that the history test can seed 95 messages over one
    # socket quickly; the browser paces itself well under the default anyway.
    web = WebServer(tmp_path_factory.mktemp("web-chat"), HubOptions(rate=500, burst=1000)).start()
    try:
        yield web
    finally:
        web.stop()


def clean(*persons: Person) -> None:
    """No script errors and no alert/confirm/prompt on anyone's page."""
    for person in persons:
        assert person.errors == [], (person.nickname, person.errors)
        assert person.dialogs == [], (person.nickname, person.dialogs)


def message(page: Any, text: str) -> Any:
    """The one bubble with exactly this text (waits for it)."""
    found = bubbles(page, text)
    expect(found).to_have_count(1)
    return found


def test_add_a_friend_and_chat_both_ways_with_read_ticks(
        browser: Any, server: WebServer, people: list[Person], shots: Path) -> None:
    alice, bob = make_person(server, "Alice"), make_person(server, "Bob")
    people += [alice, bob]
    pa, pb = open_chat(browser, server, alice), open_chat(browser, server, bob)
    expect(pa.locator("#friends-empty")).to_be_visible()

    # A number nobody registered gets the same answer as a real one: asking does not
    # tell who uses fastim.
    asked = "Asked. If this number uses fastim, you will be friends once they accept."
    pa.fill("#friend-mobile", "19999999999")
    pa.press("#friend-mobile", "Enter")
    expect(pa.locator('#add-friend [data-ok]')).to_have_text(asked)
    expect(pa.locator("#friend-mobile")).not_to_have_attribute("aria-invalid", "true")

    # Bob's number: a request, which shows up on Bob's page at once, with a badge.
    pa.fill("#friend-mobile", bob.mobile)
    pa.click('#add-friend button[type="submit"]')
    expect(pa.locator('#add-friend [data-ok]')).to_have_text(asked)
    expect(pa.locator('#request-list li[data-direction="out"]')).to_have_count(2)
    expect(pb.locator("#badge-requests")).to_have_text("1")
    request = pb.locator('#request-list li[data-direction="in"]')
    expect(request.locator(".request-name")).to_have_text("Alice")
    screenshot(pb, shots, "friend-request")

    # Bob accepts: both are friends, live, and each sees the other online.
    request.get_by_role("button", name="Accept").click()
    expect(pb.locator("#badge-requests")).to_be_hidden()
    expect(conversation_link(pb, "u", alice.id)).to_be_visible()
    expect(conversation_link(pa, "u", bob.id).locator(".avatar")).to_have_attribute("data-online", "true")
    expect(pa.locator('#request-list li[data-direction="out"]')).to_have_count(1)  # the unknown number
    open_conversation(pa, "u", bob.id)
    expect(pa).to_have_url(re.compile(f"#/u/{bob.id}$"))
    expect(pa.locator("#conv-title")).to_have_text("Bob")
    expect(pa.locator("#conv-sub")).to_have_text("online")

    send_text(pa, "Hi Bob 👋")
    mine = message(pa, "Hi Bob 👋")
    expect(mine).to_have_attribute("data-status", "sent")  # stored: one tick

    # Bob's list shows the message: unread badge and preview.
    link = conversation_link(pb, "u", alice.id)
    expect(link).to_have_attribute("data-unread", "1")
    expect(link.locator(".badge")).to_have_text("1")
    expect(link.locator(".conv-preview")).to_have_text("Hi Bob 👋")
    expect(pb.locator("#badge-friends")).to_have_text("1")

    # Keyboard only: focus the entry, Enter opens it.
    link.focus()
    pb.keyboard.press("Enter")
    expect(pb.locator("#conv-title")).to_have_text("Alice")
    message(pb, "Hi Bob 👋")
    expect(link).to_have_attribute("data-unread", "0")
    expect(pa.locator("#messages li.msg").last).to_have_attribute("data-status", "read")

    # Bob types two lines (Shift+Enter); Alice sees "typing…", then the message.
    box = pb.locator("#message")
    expect(box).to_be_focused()
    box.type("line one")
    expect(pa.locator("#conv-sub")).to_have_text("typing…")
    box.press("Shift+Enter")
    box.type("line two")
    box.press("Enter")
    expect(box).to_have_value("")
    reply = message(pa, "line one\nline two")
    expect(reply).to_have_class(re.compile(r"\btheirs\b"))
    expect(pa.locator("#conv-sub")).not_to_have_text("typing…")
    expect(pb.locator("#messages li.msg.mine").last).to_have_attribute("data-status", "read")
    # Alice had the conversation open: nothing unread for her.
    expect(conversation_link(pa, "u", bob.id)).to_have_attribute("data-unread", "0")
    screenshot(pa, shots, "chat-desktop")

    # Presence: Bob leaves and comes back; Alice's header and list follow.
    bob.context.close()
    bob.context = None
    expect(pa.locator("#conv-sub")).to_have_text("offline")
    dot = conversation_link(pa, "u", bob.id).locator(".avatar")
    expect(dot).to_have_attribute("data-online", "false")
    pb = open_chat(browser, server, bob)
    expect(pa.locator("#conv-sub")).to_have_text("online")
    expect(dot).to_have_attribute("data-online", "true")
    expect(conversation_link(pb, "u", alice.id).locator(".avatar")).to_have_attribute("data-online", "true")
    clean(alice, bob)


def test_a_blocked_user_cannot_reach_the_blocker_who_shows_offline_to_them(
        browser: Any, server: WebServer, people: list[Person], shots: Path) -> None:
    alice, mallory, carol = (make_person(server, "Alice"), make_person(server, "Mallory"),
                             make_person(server, "Carol"))
    people += [alice, mallory, carol]
    befriend(server, alice, mallory)
    befriend(server, alice, carol)
    pa, pm = open_chat(browser, server, alice), open_chat(browser, server, mallory)
    open_conversation(pm, "u", alice.id)
    expect(pm.locator("#conv-sub")).to_have_text("online")
    send_text(pm, "hello alice")
    open_conversation(pa, "u", mallory.id)
    message(pa, "hello alice")

    # Alice blocks Mallory from the header of their chat (the button asks once more).
    pa.click("#conv-who")
    expect(pa.locator("#person-title")).to_have_text("Mallory")
    pa.click("#person-block")
    expect(pa.locator("#person-block")).to_have_text("Click again to block")
    pa.click("#person-block")
    expect(pa.locator("#person-unblock")).to_be_visible()
    expect(pa.locator("#person-unfriend")).to_be_hidden()
    pa.keyboard.press("Escape")
    expect(conversation_link(pa, "u", mallory.id)).to_have_count(0)

    # Mallory sees what an unfriend shows: Alice offline and gone from the list; the
    # history stays, and what she sends now is refused and never reaches Alice.
    expect(pm.locator("#conv-sub")).to_have_text("offline")
    expect(conversation_link(pm, "u", alice.id)).to_have_count(0)
    message(pm, "hello alice")
    send_text(pm, "let me in")
    expect(message(pm, "let me in")).to_have_attribute("data-status", "failed")
    screenshot(pm, shots, "blocked-sender")
    # Carol, still a friend, gets through: the message Mallory sent before hers did not.
    chat_over_socket(server, carol, 10, alice.id, ["still friends"])
    expect(conversation_link(pa, "u", carol.id).locator(".conv-preview")).to_have_text("still friends")
    expect(bubbles(pa, "let me in")).to_have_count(0)
    # Asking again reaches no one: no request on Alice's page.
    assert server.running.post("/contact/addfriend", {"dstid": alice.id},
                               token=mallory.token).data == {"status": "requested"}
    expect(pa.locator("#badge-requests")).to_be_hidden()

    # Alice's profile lists whom she blocks; unblocking there empties it.
    pa.click("#tab-profile")
    blocked = pa.locator("#blocked-list li")
    expect(blocked).to_have_count(1)
    expect(blocked.locator(".member-name")).to_have_text("Mallory")
    screenshot(pa, shots, "blocked-list")
    blocked.get_by_role("button", name="Unblock").click()
    expect(blocked).to_have_count(0)
    expect(pa.locator("#blocked-empty")).to_be_visible()
    clean(alice, mallory, carol)


def test_a_group_of_three(browser: Any, server: WebServer, people: list[Person],
                          shots: Path) -> None:
    alice, bob, carol = (make_person(server, n) for n in ("Alice", "Bob", "Carol"))
    people += [alice, bob, carol]
    befriend(server, alice, bob)  # Carol is nobody's friend: a group is enough to talk
    name = "Weekend hikers ⛰️"  # the module's server is new: no other group has it
    pa, pb = open_chat(browser, server, alice), open_chat(browser, server, bob)
    pc = open_chat(browser, server, carol, viewport=PHONE)

    pa.click("#tab-groups")
    pa.fill("#group-new-name", name)
    pa.select_option("#group-new-visibility", "public")  # joined by name below
    pa.press("#group-new-name", "Enter")
    expect(pa.locator("#conv-title")).to_have_text(name)
    for page in (pb, pc):
        page.click("#tab-groups")
        page.fill("#group-join-name", "no such group")
        page.press("#group-join-name", "Enter")
        expect(page.locator('#join-group [data-error-for="name"]')).to_have_text(
            "There is no group with that name.")
        page.fill("#group-join-name", name)
        page.press("#group-join-name", "Enter")
        expect(page.locator("#conv-title")).to_have_text(name)
        expect(page.locator("#conv-sub")).to_have_text("3 members" if page is pc else re.compile("members"))

    send_text(pa, "Who is in for Saturday? 🥾")
    for page in (pb, pc):
        welcome = message(page, "Who is in for Saturday? 🥾")
        expect(welcome.locator(".sender")).to_have_text("Alice")
    # Both others have it on screen: Alice's message counts two readers.
    mine = message(pa, "Who is in for Saturday? 🥾")
    expect(mine).to_have_attribute("data-status", "read")
    expect(mine.locator(".read-count")).to_have_text("2")

    pb.locator("#message").type("Me!")
    expect(pc.locator("#conv-sub")).to_have_text("Bob is typing…")
    pb.locator("#message").press("Enter")
    send_text(pc, "Count me in 🙌")
    for page in (pa, pb):
        expect(message(page, "Count me in 🙌").locator(".sender")).to_have_text("Carol")
    expect(message(pa, "Me!").locator(".sender")).to_have_text("Bob")
    # Carol is nobody's friend: her name comes from the members list, in the list too.
    group_link = pa.locator('#friends a.conv-item[data-key^="g"]')
    expect(group_link.locator(".conv-preview")).to_have_text("Carol: Count me in 🙌")
    expect(message(pc, "Me!")).to_have_class(re.compile(r"\btheirs\b"))
    screenshot(pa, shots, "group-desktop")
    screenshot(pc, shots, "group-phone")

    # The members: owner first. The owner cannot simply leave.
    pa.click("#conv-members")
    members = pa.locator("#member-list li")
    expect(members).to_have_count(3)
    expect(members.first.locator(".member-name")).to_have_text("Alice")
    expect(members.first.locator(".tag.owner")).to_have_count(1)
    pa.click("#leave-group")
    expect(pa.locator("#members-error")).to_contain_text("the owner cannot leave")
    pa.keyboard.press("Escape")
    expect(pa.locator("#members-dialog")).not_to_be_visible()

    # Carol leaves (on her phone): back to the list, the group gone from it.
    pc.click("#conv-members")
    expect(pc.locator("#member-list li")).to_have_count(3)
    pc.click("#leave-group")
    expect(pc.locator("#app")).to_have_attribute("data-view", "list")
    expect(pc.locator("#communities li")).to_have_count(0)
    pa.click("#conv-members")
    expect(pa.locator("#member-list li")).to_have_count(2)
    clean(alice, bob, carol)


def test_markup_in_messages_names_and_group_names_is_shown_as_text(
        browser: Any, server: WebServer, people: list[Person]) -> None:
    evil_name = "<img src=x onerror=alert(3)>"
    evil_group = f"<b>bold</b><script>alert(4)</script>{next(_groups)}"
    evil_text = "<img src=x onerror=alert(1)>"
    mallory, victor = make_person(server, evil_name), make_person(server, "Victor")
    people += [mallory, victor]
    befriend(server, mallory, victor)
    api = server.running
    group = api.post("/contact/createcommunity", {"name": evil_group, "memo": "<i>memo</i>",
                                                     "visibility": "public"},
                     token=mallory.token).data
    assert api.post("/contact/joincommunity", {"dstid": group["id"]}, token=victor.token).status == 200
    chat_over_socket(server, mallory, 10, victor.id, [evil_text])
    chat_over_socket(server, mallory, 11, group["id"], ["<script>alert(2)</script>"])

    pv = open_chat(browser, server, victor)
    expect(conversation_link(pv, "u", mallory.id).locator(".conv-name")).to_have_text(evil_name)
    open_conversation(pv, "u", mallory.id)
    expect(pv.locator("#conv-title")).to_have_text(evil_name)
    message(pv, evil_text)
    send_text(pv, "<svg onload=alert(5)>")  # and back the other way
    message(pv, "<svg onload=alert(5)>")

    open_conversation(pv, "g", group["id"])
    expect(pv.locator("#conv-title")).to_have_text(evil_group)
    expect(message(pv, "<script>alert(2)</script>").locator(".sender")).to_have_text(evil_name)
    pv.click("#conv-members")
    expect(pv.locator("#members-memo")).to_have_text("<i>memo</i>")
    expect(pv.locator("#member-list .member-name").first).to_have_text(evil_name)

    pm = open_chat(browser, server, mallory)
    open_conversation(pm, "u", victor.id)
    message(pm, "<svg onload=alert(5)>")

    for page in (pv, pm):
        # Nothing was parsed as markup anywhere on the page.
        assert page.locator('img[src="x"], svg[onload], b, i, #messages script').count() == 0
    clean(mallory, victor)


def test_history_loads_older_pages_on_scrolling_up_and_survives_a_reload(
        browser: Any, server: WebServer, people: list[Person], shots: Path) -> None:
    ann, ben = make_person(server, "Ann"), make_person(server, "Ben")
    people += [ann]
    befriend(server, ann, ben)
    chat_over_socket(server, ben, 10, ann.id, [f"message {n}" for n in range(1, 96)])

    pa = open_chat(browser, server, ann)
    link = conversation_link(pa, "u", ben.id)
    expect(link.locator(".badge")).to_have_text("95")
    expect(link.locator(".conv-preview")).to_have_text("message 95")
    # Opened with 95 unread: the view starts at the divider above the first of them
    # (the older pages loaded for it), and only what is on screen counts as read.
    open_conversation(pa, "u", ben.id)
    divider = pa.locator("#messages .unread-divider")
    expect(divider).to_have_text("95 unread messages")
    expect(bubbles(pa, "message 1")).to_be_in_viewport()
    expect(bubbles(pa, "message 95")).not_to_be_in_viewport()
    jump = pa.locator("#jump-latest")
    expect(jump).to_be_visible()
    expect(link).not_to_have_attribute("data-unread", "0")
    expect(link).not_to_have_attribute("data-unread", "95")  # the first ones are read
    jump.click()
    expect(bubbles(pa, "message 95")).to_be_in_viewport()
    expect(link).to_have_attribute("data-unread", "0")
    expect(jump).to_be_hidden()

    # Nothing unread now: a reload opens it at the newest page, and scrolling up fetches
    # older pages until the beginning, keeping the order.
    pa.reload()
    expect(pa.locator("#conv-title")).to_have_text("Ben")  # the open conversation came back
    message(pa, "message 95")
    expect(bubbles(pa)).to_have_count(40)  # the newest page only
    expect(pa.locator("#messages .unread-divider")).to_have_count(0)
    state = pa.locator("#history-state")
    for _ in range(5):
        if state.get_attribute("data-state") == "start":
            break
        pa.locator("#scroller").evaluate("s => { s.scrollTop = 0; s.dispatchEvent(new Event('scroll')); }")
        expect(state).not_to_have_attribute("data-state", "loading-older")
    expect(state).to_have_attribute("data-state", "start")
    texts = pa.locator("#messages p.text").all_text_contents()
    assert texts == [f"message {n}" for n in range(1, 96)]

    send_text(pa, "Read them all!")
    expect(message(pa, "Read them all!")).to_have_attribute("data-status", "sent")
    pa.reload()
    message(pa, "Read them all!")
    message(pa, "message 95")
    expect(conversation_link(pa, "u", ben.id)).to_have_attribute("data-unread", "0")
    clean(ann)
