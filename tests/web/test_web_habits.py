"""The messenger habits of issue 24 in a real browser: one list of chats, start-up in one
request, joins and leaves in a group, the member count, non-friends' names, presence while
offline, links and emoji, "jump to latest", the phone layout with the longest allowed
content, Enter on a touch keyboard, the outbox kept across a closed tab, log out with a
confirmation and Back after it, phone numbers as people type them.

One server and one browser for the module; each user is their own browser context.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.web_support", "tests.axe_support")
from tests.axe_support import assert_accessible  # noqa: E402
from tests.web_support import (  # noqa: E402
    DESKTOP,
    PHONE,
    WAIT_MS,
    Lang,
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
    wait_online,
    watch,
)

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)

#: Everything in the page's width: elements that stick out of the viewport, except those
#: an ancestor clips (that ancestor is checked itself), and the document's own width.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const clipped = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== 'visible') return true;
    }
    return false;
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
    if ((r.right > width + 1 || r.left < -1) && !clipped(el)) {
      out.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className} ${Math.round(r.left)}..${Math.round(r.right)}`);
    }
  }
  return { width, scrollWidth: document.documentElement.scrollWidth, out: out.slice(0, 8) };
}"""


def clean(*persons: Person) -> None:
    for person in persons:
        assert person.errors == [], (person.nickname, person.errors)
        assert person.dialogs == [], (person.nickname, person.dialogs)


def open_phone(browser: Any, server: WebServer, person: Person, locale: str) -> Any:
    """`person` on a phone: a small touch screen, no mouse; `locale` its language."""
    person.context = browser.new_context(base_url=server.url, viewport=PHONE, has_touch=True,
                                         is_mobile=True, locale=locale,
                                         timezone_id="Europe/London")
    person.context.set_default_timeout(WAIT_MS)
    person.context.add_cookies([{"name": "fastim_token", "value": person.token,
                                 "url": server.url}])
    person.page = person.context.new_page()
    watch(person.page, person)
    person.page.goto("/chat")
    wait_online(person.page)
    return person.page


def inside(page: Any, where: str) -> None:
    """Nothing leaves the viewport sideways, and the page cannot scroll sideways."""
    found = page.evaluate(OVERFLOW)
    assert found["out"] == [] and found["scrollWidth"] <= found["width"], (where, found)


def test_the_longest_allowed_content_stays_inside_a_phone_and_a_desktop(
        browser: Any, server: WebServer, people: list[Person], shots: Path, lang: Lang) -> None:
    # Every field at its maximum, without a space to break at.
    name = "W" * 32  # a nickname: 32 characters
    pat = make_person(server, name, memo="M" * 140)
    ray = make_person(server, "Ray")
    asker = make_person(server, "Q" * 32)
    people += [pat, ray]
    befriend(server, pat, ray)
    api = server.running
    # Group names are unique: a Latin one in English, a CJK one (each character twice as
    # wide) in Chinese.
    group_name = ("G" if lang.language == "en" else "群") * 64
    group = api.post("/contact/createcommunity", {"name": group_name, "memo": "m" * 140,
                                                   "visibility": "public"},
                     token=ray.token).data["id"]
    assert api.post("/contact/joincommunity", {"dstid": group}, token=pat.token).status == 200
    url = "https://example.com/" + "x" * 3960  # a message: 4000 characters
    chat_over_socket(server, ray, 10, pat.id, [url])
    chat_over_socket(server, ray, 11, group, ["Z" * 4000])
    assert api.post("/contact/addfriend", {"dstid": pat.id}, token=asker.token).status == 200

    for viewport, page in ((PHONE, open_phone(browser, server, pat, lang.locale)),
                           (DESKTOP, None)):
        if page is None:
            pat.context.close()
            url = url.replace("example.com", "example.org")  # unread again: badges
            chat_over_socket(server, ray, 10, pat.id, [url])
            chat_over_socket(server, ray, 11, group, ["Y" * 4000])
            page = open_chat(browser, server, pat, viewport=viewport, locale=lang.locale)
        expect(page.locator("#tab-groups")).to_contain_text(lang.t("tab.groups"))
        expect(page.locator("#request-list li")).to_have_count(1)
        expect(conversation_link(page, "u", ray.id).locator(".conv-preview")).to_have_text(url)
        inside(page, f"{viewport} chats")
        # What was pushed off the screen before: the Ask button, the times, the badges,
        # the tabs.
        for selector in ('#add-friend button[type="submit"]', "#friends .conv-time",
                         "#friends .badge", "#tab-groups", "#tab-profile"):
            expect(page.locator(selector).first).to_be_in_viewport()
        if viewport is PHONE:
            screenshot(page, shots, lang.shot("phone-longest-names"))
            assert_accessible(page, f"the list of chats on a phone ({lang.locale})")
        page.click("#tab-groups")
        inside(page, f"{viewport} groups")
        page.click("#tab-profile")
        page.locator("#logout").scroll_into_view_if_needed()  # at the panel's end
        expect(page.locator("#logout")).to_be_in_viewport()
        expect(page.locator("#logout")).to_have_text(lang.t("profile.logout"))
        inside(page, f"{viewport} profile")
        for kind, dstid in (("u", ray.id), ("g", group)):
            if page.locator("#app").get_attribute("data-view") == "chat" and viewport is PHONE:
                page.click("#conv-back")
            open_conversation(page, kind, dstid)
            expect(bubbles(page).first).to_be_visible()
            inside(page, f"{viewport} conversation {kind}")
            expect(page.locator("#send")).to_be_in_viewport()
        page.click("#conv-who")  # the group's members: the long name and memo
        expect(page.locator("#members-dialog")).to_be_visible()
        inside(page, f"{viewport} members")
        page.keyboard.press("Escape")
        if viewport is PHONE:
            page.click("#conv-back")
        open_conversation(page, "u", ray.id)
        page.click("#conv-who")
        expect(page.locator("#person-dialog")).to_be_visible()
        inside(page, f"{viewport} person")
        page.keyboard.press("Escape")
    clean(pat)


def test_enter_on_a_touch_keyboard_and_links_emoji_and_jump_to_latest(
        browser: Any, server: WebServer, people: list[Person], shots: Path, lang: Lang) -> None:
    ann, ben = make_person(server, "Ann"), make_person(server, "Ben")
    people += [ann, ben]
    befriend(server, ann, ben)
    chat_over_socket(server, ann, 10, ben.id, [f"earlier {n}" for n in range(30)])
    # The new parts in the dark too.
    pa = open_chat(browser, server, ann, scheme="dark", locale=lang.locale)
    pb = open_phone(browser, server, ben, lang.locale)
    open_conversation(pa, "u", ben.id)
    open_conversation(pb, "u", ann.id)  # 30 unread: it starts at the first of them
    expect(pb.locator("#messages .unread-divider")).to_have_text(lang.tn("chat.unread_divider", 30))
    expect(pb.locator("#messages .unread-divider")).to_be_in_viewport()
    expect(bubbles(pb, "earlier 0")).to_be_in_viewport()
    screenshot(pb, shots, lang.shot("unread-divider-phone"))
    assert_accessible(pb, f"a conversation opened at its unread divider, on a phone ({lang.locale})")

    # A phone: Enter is a new line, the send button sends.
    box = pb.locator("#message")
    box.click()
    box.press_sequentially("first line")
    box.press("Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    expect(bubbles(pb, "first line")).to_have_count(0)
    pb.locator("#send").tap()
    expect(box).to_have_value("")
    expect(pa.locator("#messages p.text", has_text="second line")).to_have_text(
        "first line\nsecond line")

    # Links (http and https only), built from text: the markup stays text.
    text = ('see https://example.com/a_(b)?q=1&r=2. or http://例子.测试/路径, '
            'not javascript:alert(1) nor <a href="https://evil.test">x</a>')
    box.fill(text)
    pb.locator("#send").tap()
    received = pa.locator("#messages li.msg").last.locator("p.text")
    expect(received).to_have_text(text)
    links = received.locator("a")
    expect(links).to_have_count(3)
    expect(links.nth(0)).to_have_attribute("href", "https://example.com/a_(b)?q=1&r=2")
    expect(links.nth(0)).to_have_text("https://example.com/a_(b)?q=1&r=2")
    for n in range(3):
        expect(links.nth(n)).to_have_attribute("rel", "noopener noreferrer")
        expect(links.nth(n)).to_have_attribute("target", "_blank")
    expect(links.nth(1)).to_have_text("http://例子.测试/路径")
    expect(links.nth(2)).to_have_attribute("href", "https://evil.test/")  # as text
    assert received.evaluate("p => [...p.querySelectorAll('*')].every(e => e.tagName === 'A')")
    assert received.evaluate("p => p.querySelectorAll('a')[2].previousSibling.textContent"
                             ".endsWith('<a href=\"')")

    # Emoji alone: up to three large without a bubble, more larger in one.
    for emoji, size in (("👍", "is-jumbo"), ("🎉🎉🎉🎉🎉", "is-emoji"), ("ok 👍", None)):
        box.fill(emoji)
        pb.locator("#send").tap()
        bubble = pa.locator("#messages li.msg").last.locator(".bubble")
        expect(bubble.locator("p.text")).to_have_text(emoji)
        if size:
            expect(bubble).to_have_class(re.compile(rf"\b{size}\b"))
        else:
            expect(bubble).not_to_have_class(re.compile(r"\bis-(jumbo|emoji)\b"))

    # Scrolled up, a new message: "jump to latest" with the count, and back down.
    pa.locator("#scroller").evaluate("s => { s.scrollTop = 0; s.dispatchEvent(new Event('scroll')); }")
    jump = pa.locator("#jump-latest")
    expect(jump).to_be_hidden()
    box.fill("are you there?")
    pb.locator("#send").tap()
    expect(jump).to_be_visible()
    expect(jump).to_contain_text(lang.t("chat.jump_to_latest_new", count=1))
    expect(jump).to_have_accessible_name(re.compile(re.escape(lang.t("chat.jump_to_latest"))))
    expect(conversation_link(pa, "u", ben.id)).to_have_attribute("data-unread", "1")
    screenshot(pa, shots, lang.shot("jump-to-latest"))
    assert_accessible(pa, f"links, emoji and jump to latest, dark ({lang.locale})")
    jump.click()
    expect(bubbles(pa, "are you there?")).to_be_in_viewport()
    expect(jump).to_be_hidden()
    expect(conversation_link(pa, "u", ben.id)).to_have_attribute("data-unread", "0")
    pb.locator("#conv-back").tap()  # the phone's list of chats
    expect(conversation_link(pb, "u", ann.id).locator(".conv-preview")).to_have_text(
        lang.t("preview.mine", text="are you there?"))
    screenshot(pb, shots, lang.shot("chats-phone"))
    clean(ann, ben)


def test_one_list_of_chats_group_changes_member_count_and_presence_while_offline(
        browser: Any, server: WebServer, people: list[Person], shots: Path) -> None:
    amy, bo, cy = (make_person(server, n) for n in ("Amy", "Bo", "Cy"))
    people += [amy, bo]
    befriend(server, amy, bo)  # Cy is nobody's friend
    api = server.running
    group = api.post("/contact/createcommunity", {"name": "Climbing 🧗", "visibility": "public"},
                     token=amy.token).data["id"]
    assert api.post("/contact/joincommunity", {"dstid": group}, token=bo.token).status == 200
    chat_over_socket(server, bo, 10, amy.id, ["just us"])
    chat_over_socket(server, bo, 11, group, ["hello group"])

    # Start-up: one request for every chat's summary, none per conversation.
    amy.context = browser.new_context(base_url=server.url, viewport=DESKTOP, locale="en-GB",
                                      timezone_id="Europe/London")
    amy.context.set_default_timeout(WAIT_MS)
    amy.context.add_cookies([{"name": "fastim_token", "value": amy.token, "url": server.url}])
    pa = amy.context.new_page()
    watch(pa, amy)
    asked: list[str] = []
    pa.on("request", lambda r: asked.append(r.url) if "/chat/" in r.url else None)
    pa.goto("/chat")
    wait_online(pa)
    chats = pa.locator("#friends a.conv-item")
    # Friends and groups together, the newest first.
    expect(chats).to_have_count(2)
    expect(chats.nth(0)).to_have_attribute("data-key", f"g{group}")
    expect(chats.nth(0).locator(".conv-preview")).to_have_text("Bo: hello group")
    expect(chats.nth(1)).to_have_attribute("data-key", f"u{bo.id}")
    expect(pa.locator("#badge-friends")).to_have_text("2")
    assert [u for u in asked if "/chat/summaries" in u] and not [u for u in asked if "/chat/history" in u]
    chat_over_socket(server, bo, 10, amy.id, ["now me"])
    expect(chats.nth(0)).to_have_attribute("data-key", f"u{bo.id}")
    screenshot(pa, shots, "chats-desktop")

    # The group: its count, and Cy (no friend of Amy's) joining, writing and leaving.
    open_conversation(pa, "g", group)
    sub = pa.locator("#conv-sub")
    expect(sub).to_have_text("2 members")
    assert api.post("/contact/joincommunity", {"dstid": group}, token=cy.token).status == 200
    notices = pa.locator("#messages li.notice")
    expect(notices).to_have_text(["Bo joined the group", "Cy joined the group"])
    expect(sub).to_have_text("3 members")
    chat_over_socket(server, cy, 11, group, ["hi, I am Cy"])
    expect(pa.locator("#messages li.msg").last.locator(".sender")).to_have_text("Cy")
    assert api.post("/contact/leavecommunity", {"dstid": group}, token=cy.token).status == 200
    expect(notices).to_have_text(["Bo joined the group", "Cy joined the group", "Cy left the group"])
    expect(sub).to_have_text("2 members")
    screenshot(pa, shots, "group-changes")
    assert_accessible(pa, "a group with joins and leaves")
    pa.reload()  # the lines are where they happened, after a reload too
    wait_online(pa)
    expect(notices).to_have_text(["Bo joined the group", "Cy joined the group", "Cy left the group"])
    order = pa.evaluate("() => [...document.querySelectorAll('#messages > li')]"
                        ".map(li => li.classList.contains('notice') ? li.textContent"
                        " : (li.querySelector('p.text') || {}).textContent).filter(Boolean)")
    assert order == ["Bo joined the group", "hello group", "Cy joined the group", "hi, I am Cy",
                     "Cy left the group"]

    # Offline, Bo's presence is unknown, not "online"; back, it is known again.
    pb = open_chat(browser, server, bo)
    open_conversation(pa, "u", bo.id)
    expect(sub).to_have_text("online")
    pa.context.set_offline(True)
    expect(sub).to_have_text("status unknown while you are offline")
    expect(pa.locator("#conv-avatar .avatar")).not_to_have_attribute("data-online", "true")
    expect(conversation_link(pa, "u", bo.id).locator(".presence")).to_have_count(0)
    pa.context.set_offline(False)
    expect(sub).to_have_text("online")
    expect(conversation_link(pa, "u", bo.id).locator(".avatar")).to_have_attribute("data-online", "true")
    expect(pb.locator("#conn")).to_have_attribute("data-state", "online")
    clean(amy, bo)


def test_the_outbox_outlives_the_tab_and_log_out_asks_and_back_after_it(
        browser: Any, server: WebServer, people: list[Person], shots: Path, lang: Lang) -> None:
    dan, eve = make_person(server, "Dan"), make_person(server, "Eve")
    fay = make_person(server, "Fay")
    people += [dan, eve]
    befriend(server, dan, eve)
    # Dan's page records its errors; its dialogs are this test's to answer.
    dan.context = browser.new_context(base_url=server.url, viewport=DESKTOP, locale=lang.locale,
                                      timezone_id="Europe/London")
    dan.context.set_default_timeout(WAIT_MS)
    dan.context.add_cookies([{"name": "fastim_token", "value": dan.token, "url": server.url}])
    pd = dan.context.new_page()
    pd.on("pageerror", lambda error: dan.errors.append(str(error)))
    pd.goto("/chat")
    wait_online(pd)
    open_conversation(pd, "u", eve.id)
    pd.context.set_offline(True)
    expect(pd.locator("#conn")).to_have_attribute("data-state", "waiting-network")
    send_text(pd, "typed on the train")
    expect(bubbles(pd, "typed on the train")).to_have_attribute("data-status", "pending")
    expect(bubbles(pd, "typed on the train").locator(".status")).to_have_attribute(
        "aria-label", lang.t("status.pending"))
    stored = pd.evaluate(f"() => JSON.parse(localStorage.getItem('fastim.outbox.{dan.id}'))")
    assert [f["content"] for f in stored] == ["typed on the train"]

    # Closing the tab warns; staying keeps it, leaving keeps the message on the device.
    asked: list[str] = []

    def on_unload(dialog: Any) -> None:
        asked.append(dialog.type)
        dialog.dismiss() if len(asked) == 1 else dialog.accept()

    pd.on("dialog", on_unload)
    pd.close(run_before_unload=True)
    expect(pd.locator("#messages")).to_be_attached()  # stayed
    pd.close(run_before_unload=True)
    pd.wait_for_event("close")
    assert asked == ["beforeunload", "beforeunload"]

    # The next open, online: sent once.
    pd.context.set_offline(False)
    pd = dan.context.new_page()
    watch(pd, dan)
    pd.goto("/chat")
    wait_online(pd)
    open_conversation(pd, "u", eve.id)  # a step in the tab's history, for Back below
    expect(bubbles(pd, "typed on the train")).to_have_attribute("data-status", re.compile("sent|read"))
    pe = open_chat(browser, server, eve, locale=lang.locale)
    open_conversation(pe, "u", dan.id)
    expect(bubbles(pe, "typed on the train")).to_have_count(1)
    assert pd.evaluate(f"() => localStorage.getItem('fastim.outbox.{dan.id}')") == "[]"

    # Ask a friend by a number typed as people type it.
    pe.click("#tab-friends")
    spaced = "+86 " + " ".join([fay.mobile[:3], fay.mobile[3:7], fay.mobile[7:]])
    pe.fill("#friend-mobile", spaced)
    pe.press("#friend-mobile", "Enter")
    expect(pe.locator("#add-friend [data-ok]")).to_have_text(lang.t("friends.asked"))
    rows = server.running.get("/contact/requests", token=fay.token).list["rows"]
    assert [r["user"]["id"] for r in rows] == [eve.id]

    # Log out sits apart from Save and asks first; Escape keeps the session.
    pd.click("#tab-profile")
    logout = pd.locator("#logout")
    assert pd.evaluate("() => !document.querySelector('#profile').contains(document.querySelector('#logout'))")
    logout.click()
    dialog = pd.locator("#logout-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_accessible_name(lang.t("profile.logout_title"))
    expect(pd.locator("#logout-cancel")).to_have_text(lang.t("profile.logout_cancel"))
    expect(pd.locator("#logout-cancel")).to_be_focused()
    assert_accessible(pd, "the log out dialog")
    pd.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(logout).to_be_focused()
    logout.click()
    pd.click("#logout-confirm")
    expect(pd).to_have_url(re.compile("/login$"))
    # Back after logging out: the chat page asks, and the login page comes again, with
    # no error on the way.
    pd.go_back()
    expect(pd).to_have_url(re.compile("/login$"))
    assert dan.errors == []
    # Logging in with the number in another form.
    pd.fill("#mobile", "+86-" + dan.mobile[:3] + "-" + dan.mobile[3:])
    pd.fill("#passwd", dan.passwd)
    pd.click('button[type="submit"]')
    expect(pd).to_have_url(re.compile("/chat"))
    wait_online(pd)
    clean(dan, eve)
